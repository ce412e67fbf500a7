"""The t-intervals of the results tables: SciPy's quantiles give the same intervals as the hand-written
special functions they replaced (kept test-only in tests/reference_stats.py), to 1e-9."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import reference_stats as old
from hypothesis import example, given, settings
from hypothesis import strategies as st

from scyc.sweep.stats import paired_interval, welch_interval

ROOT = Path(__file__).resolve().parents[1]
RESULTS = (
    ROOT / "docs" / "results" / "fashion_mnist_default_earlier.csv"
)  # a table.csv of make reproduce-table (3 seeds)
TOL = 1e-9


def assert_same(new, ref, relative: bool = False):
    """Equal to TOL, absolute; or, with ``relative``, to TOL x max(1, |value|): the old bisection stopped at a
    relative 1e-12 in t, so its own error grows with the interval (e.g. 1e-9 at a half-width of 2,700 points)."""
    assert new.method == ref.method
    for field in ("estimate", "low", "high", "df"):
        x, y = getattr(new, field), getattr(ref, field)
        tol = TOL * max(1.0, abs(y)) if relative and math.isfinite(y) else TOL
        assert (math.isnan(x) and math.isnan(y)) or x == y or abs(x - y) <= tol, (field, x, y)


def committed_cells() -> dict[str, list[tuple[float, float, int]]]:
    """Schedule -> [(mean, std, n)] per sparsity of the committed docs/results table (its table.csv)."""
    import pandas as pd

    cells = pd.read_csv(RESULTS).query("kind == 'schedule'").sort_values("sparsity", kind="stable")
    return {
        name: [(float(r.mean), float(r.std), int(r.n)) for r in group.itertuples()]
        for name, group in cells.groupby("schedule", sort=False)
    }


def seeds_like(mean: float, std: float, n: int, shift: int) -> list[float]:
    """n values with exactly this mean and sample std, rotated by ``shift`` so that pairing matters."""
    z = [i - (n - 1) / 2 for i in range(n)]
    scale = std / math.sqrt(sum(v * v for v in z) / (n - 1))
    values = [mean + scale * v for v in z]
    return values[shift % n :] + values[: shift % n]


def test_committed_table_intervals_equal_the_hand_written_ones():
    rows = committed_cells()
    assert {"scyc", "lr_rewind", "warmup", "cyclic", "sgdr", "oracle"} <= set(rows)
    checked = 0
    for col, (m, s, n) in enumerate(rows["scyc"]):
        a = seeds_like(m, s, n, 0)
        for k, other in enumerate(("lr_rewind", "warmup", "cyclic", "sgdr", "oracle")):
            b = seeds_like(*rows[other][col], shift=k + col)
            assert_same(paired_interval(a, b), old.paired_interval(a, b))
            assert_same(welch_interval(a, b), old.welch_interval(a, b))
            assert_same(welch_interval(a, b[:2]), old.welch_interval(a, b[:2]))
            checked += 3
    assert checked == 3 * 5 * len(rows["scyc"])


samples = st.lists(st.floats(0.0, 100.0, allow_nan=False), min_size=1, max_size=12)


@example(a=[0.0, 87.0], b=[0.0, 1.5], level=0.99)  # |low| = 2,720: 1.07e-9 apart, 4e-13 relative
@example(a=[0.0, 1e-85], b=[0.0, 0.0], level=0.95)  # va**2 underflows to 0 while va > 0: df is still 1
@settings(max_examples=200, deadline=None)
@given(a=samples, b=samples, level=st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_welch_equals_the_hand_written_interval(a, b, level):
    assert_same(welch_interval(a, b, level), old.welch_interval(a, b, level), relative=True)


@settings(max_examples=200, deadline=None)
@given(pairs=st.lists(st.tuples(st.floats(0.0, 100.0), st.floats(0.0, 100.0)), min_size=1, max_size=12),
       level=st.sampled_from([0.8, 0.9, 0.95, 0.99]))  # fmt: skip
def test_paired_equals_the_hand_written_interval(pairs, level):
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    assert_same(paired_interval(a, b, level), old.paired_interval(a, b, level), relative=True)


def test_t_quantiles_match_tables():
    # half-width of a paired interval over two samples of n with unit-variance differences: t_{0.975, n-1}/sqrt(n)
    for df, q in ((1, 12.706204736), (2, 4.302652730), (4, 2.776445105), (10, 2.228138852), (30, 2.042272456)):
        n = df + 1
        d = paired_interval([float(i % 2) for i in range(n)], [0.0] * n)
        sd = math.sqrt(sum((i % 2 - d.estimate) ** 2 for i in range(n)) / df)
        assert (d.high - d.estimate) / (sd / math.sqrt(n)) == pytest.approx(q, abs=1e-8)


def test_welch_df_survives_subnormal_variances():
    assert welch_interval([0.0, 1e-85], [0.0, 0.0]).df == pytest.approx(1.0)
    assert welch_interval([0.0, 1e-85, 2e-85], [1e-85, 0.0, 2e-85]).df == pytest.approx(4.0)


def test_intervals_without_spread_or_samples():
    assert paired_interval([1.0], [0.0]).method.startswith("no interval")
    d = paired_interval([2.0, 3.0], [1.0, 2.0])
    assert (d.estimate, d.low, d.high) == (1.0, 1.0, 1.0)
    assert math.isnan(welch_interval([1.0], [0.0, 1.0]).low)
    with pytest.raises(ValueError, match="same length"):
        paired_interval([1.0, 2.0], [1.0])
