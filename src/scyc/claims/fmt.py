"""How a number is written on the claims page: the same rules as the committed tables (scyc.sweep.tables)."""

from __future__ import annotations

from collections.abc import Sequence

MINUS = "−"  # U+2212, as the tables write it
DEEP_DECIMALS_FROM = 0.985  # sparsity levels from here on are written with 2 decimals (98.56 %), below with 1


def signed(x: float, decimals: int = 2) -> str:
    """``+0.32`` / ``−0.26``: a difference in points, its sign always written (as the tables write margins)."""
    return f"{x:+.{decimals}f}".replace("-", MINUS)


def num(x: float, decimals: int = 2) -> str:
    """``0.07`` / ``−0.07``: a value without a forced sign."""
    return f"{x:.{decimals}f}".replace("-", MINUS)


def level(s: float) -> str:
    """A sparsity level in percent: ``0 %``, ``73.8 %`` below 98.5 %, ``98.56 %`` / ``99.90 %`` from there on
    (where consecutive levels are closer than 0.1 point)."""
    if s == 0:
        return "0 %"
    return f"{100 * s:.{2 if s >= DEEP_DECIMALS_FROM else 1}f} %"


def bare_level(s: float) -> str:
    """A sparsity level without the unit, for ranges: ``98.56`` in ``98.56–99.70 %``."""
    return level(s).removesuffix(" %")


def level_range(lo: float, hi: float) -> str:
    """``98.56–99.70 %`` (both ends with 2 decimals when either has them), or one level when lo == hi."""
    if lo == hi:
        return level(lo)
    if hi >= DEEP_DECIMALS_FROM and lo > 0:
        return f"{100 * lo:.2f}–{100 * hi:.2f} %"
    return f"{bare_level(lo)}–{level(hi)}"


def interval(lo: float, hi: float) -> str:
    """``[−0.18, −0.03]``: a 95 % interval in points."""
    return f"[{signed(lo)}, {signed(hi)}]"


def span(lo: float, hi: float, decimals: int = 2, sign: bool = True) -> str:
    """``−0.26 to +0.32``: the range of a set of values, low to high."""
    f = signed if sign else num
    return f"{f(lo, decimals)} to {f(hi, decimals)}"


def dash_span(lo: float, hi: float, decimals: int = 1) -> str:
    """``8.4–9.5``: an unsigned range (losses, accuracies); one value when both round alike."""
    a, b = num(lo, decimals), num(hi, decimals)
    return a if a == b else f"{a}–{b}"


def words(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def count(n: int, one: str, many: str | None = None) -> str:
    """``1 level`` / ``3 levels``."""
    return f"{n} {one if n == 1 else (many or one + 's')}"
