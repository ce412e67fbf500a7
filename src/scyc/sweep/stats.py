"""Small-sample statistics for the results tables: difference-of-means t-intervals (quantiles from SciPy)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Difference:
    """``a − b`` with a two-sided confidence interval (``low``/``high`` are NaN when it cannot be formed)."""

    estimate: float
    low: float
    high: float
    method: str  # "paired", "welch", or why there is no interval
    df: float
    p: float = math.nan  # two-sided p-value of "no difference" (the t-test behind the interval)


def _interval(est: float, se: float, df: float, level: float, method: str) -> Difference:
    half = float(stats.t.ppf(0.5 + level / 2.0, df)) * se if se > 0.0 else 0.0
    p = float(2.0 * stats.t.sf(abs(est) / se, df)) if se > 0.0 else (1.0 if est == 0.0 else 0.0)
    return Difference(est, est - half, est + half, method, df, p)


def welch_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Difference:
    """Welch's t-interval for mean(a) − mean(b) (unequal variances, Welch–Satterthwaite df)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    est = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return Difference(est, math.nan, math.nan, "no interval (n < 2)", math.nan)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se2 = float(va + vb)
    # Welch–Satterthwaite in shares of se2: the same number, but no underflow of va**2 for tiny variances
    wa, wb = (va / se2, vb / se2) if se2 > 0.0 else (0.0, 0.0)
    df = float(1.0 / (wa**2 / (len(a) - 1) + wb**2 / (len(b) - 1))) if se2 > 0.0 else math.inf
    return _interval(est, math.sqrt(se2), df, level, "welch")


def paired_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Difference:
    """t-interval for the mean of the paired differences a_i − b_i (same seeds on both sides)."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    est = float(diffs.mean())
    if len(diffs) < 2:
        return Difference(est, math.nan, math.nan, "no interval (n < 2)", math.nan)
    se = math.sqrt(diffs.var(ddof=1) / len(diffs))
    return _interval(est, se, float(len(diffs) - 1), level, "paired")


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of ``pvalues`` (family-wise error control across the comparisons): the i-th
    smallest p times (m - i), made monotone, capped at 1; in the input's order. NaN stays NaN (not counted)."""
    order = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    m, adjusted, running = len(order), [math.nan] * len(pvalues), 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def mean_interval(values: Sequence[float], level: float = 0.95) -> Difference:
    """One-sample t-interval for the mean of ``values`` (``estimate`` = the mean)."""
    x = np.asarray(values, dtype=float)
    est = float(x.mean())
    if len(x) < 2:
        return Difference(est, math.nan, math.nan, "no interval (n < 2)", math.nan)
    return _interval(est, math.sqrt(x.var(ddof=1) / len(x)), float(len(x) - 1), level, "one-sample")
