"""Test-only reference: ``scyc/sweep/stats.py`` as it was before it used ``scipy.stats`` (commit 4196e57).

The hand-written t quantile (regularised incomplete beta by continued fraction, bisection on the CDF) is kept
here only so that tests/test_stats.py can show the SciPy-based intervals equal the old ones to 1e-9.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scyc.sweep.stats import Difference


def _betacf(a: float, b: float, x: float, max_iter: int = 300, eps: float = 1e-15) -> float:
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, max_iter + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x={x} must be in [0, 1]")
    if x in (0.0, 1.0):
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """CDF of Student's t with ``df`` (> 0, not necessarily integer) degrees of freedom."""
    if df <= 0:
        raise ValueError(f"df={df} must be > 0")
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t: the ``t`` with ``t_cdf(t, df) == q``."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"q={q} must be in (0, 1)")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def _var(xs: Sequence[float]) -> float:
    m = _mean(xs)
    return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Difference:
    """Welch's t-interval for mean(a) − mean(b) (unequal variances, Welch–Satterthwaite df)."""
    est = _mean(a) - _mean(b)
    if len(a) < 2 or len(b) < 2:
        return Difference(est, math.nan, math.nan, "no interval (n < 2)", math.nan)
    va, vb = _var(a) / len(a), _var(b) / len(b)
    se2 = va + vb
    if se2 == 0.0:
        return Difference(est, est, est, "welch", math.inf)
    wa, wb = va / se2, vb / se2  # shares of se2: no underflow of va**2 for subnormal variances
    df = 1.0 / (wa**2 / (len(a) - 1) + wb**2 / (len(b) - 1))
    half = t_ppf(0.5 + level / 2.0, df) * math.sqrt(se2)
    return Difference(est, est - half, est + half, "welch", df)


def paired_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Difference:
    """t-interval for the mean of the paired differences a_i − b_i (same seeds on both sides)."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    diffs = [x - y for x, y in zip(a, b)]
    est = _mean(diffs)
    if len(diffs) < 2:
        return Difference(est, math.nan, math.nan, "no interval (n < 2)", math.nan)
    se = math.sqrt(_var(diffs) / len(diffs))
    df = float(len(diffs) - 1)
    half = t_ppf(0.5 + level / 2.0, df) * se
    return Difference(est, est - half, est + half, "paired", df)
