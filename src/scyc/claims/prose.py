"""Phrases the sections share: schedule names, best-mean counts, margin ranges and the intervals that exclude 0,
each number written through ``Data`` (so it is recorded under ``key``)."""

from __future__ import annotations

import pandas as pd

from scyc.claims import fmt
from scyc.claims.data import Data
from scyc.claims.table import ALL, Table, Window, compare_selects

NAMES = {
    "scyc": "S-Cyc",
    "lr_rewind": "LR rewinding",
    "warmup": "warmup",
    "cyclic": "cyclical LR",
    "sgdr": "SGDR",
    "oracle": "the oracle",
    "scurve_fit": "the fitted S-curve",
    "gradscale": "gradscale",
    "cyclic_flat_top": "cyclical LR flat at S-Cyc's top",
}


def name(label: str) -> str:
    return NAMES.get(label, label)


def at_levels(d: Data, key: str, k: int, n: int, what: str = "level") -> str:
    """``at every level`` / ``at all 13 levels`` / ``at 12 of the 13 levels``."""
    if k == n:
        return "at every " + what if n > 13 else f"at all {d.count(key, n)} {what}s"
    return f"at {d.count(key, k)} of the {d.count(key + '_of', n)} {what}s"


def best_counts(d: Data, key: str, t: Table, window: Window = ALL, lead: str = "scyc", noun: str = "sparsities") -> str:
    """``S-Cyc has the best mean at 8 of the 32 sparsities (cyclical LR 12, SGDR 10, ...; ...)``, ties counted for
    every tied row (the CSV's ``best`` column), and said so."""
    counts = t.best_counts(window)
    n = len(t.levels(window))
    others = sorted(((c, lab) for lab, c in counts.items() if lab != lead and c > 0), key=lambda x: (-x[0], x[1]))
    parts = [f"{name(lab)} {d.count(f'{key}.{lab}', c)}" for c, lab in others]
    ties = t.tied_levels(window)
    if ties:
        tie_text = (
            f"a tie counts for every tied row: {d.count(key + '.tied_levels', len(ties))} tied "
            f"{'level' if len(ties) == 1 else 'levels'}, {fmt.words([d.level(f'{key}.tie{i}', s) for i, s in enumerate(ties)])}"
        )
    else:
        tie_text = "no level tied"
    lead_text = f"{name(lead)} has the best mean at {d.count(f'{key}.{lead}', counts.get(lead, 0))} of the {d.count(key + '.levels', n)} {noun}"
    text = f"{lead_text} ({'; '.join([', '.join(parts), tie_text]) if parts else tie_text})"
    return text[0].upper() + text[1:]


def margin_values(d: Data, key: str, t: Table, window: Window, mean: bool = True) -> str:
    """``−0.26 to +0.32 points (mean +0.24)`` over the window's margin row."""
    m = t.margin(window)
    text = f"{d.span(key + '.range', m['mean'].min(), m['mean'].max())} points"
    return text + (f" (mean {d.signed(key + '.mean', m['mean'].mean())})" if mean else "")


def cite(d: Data, key: str, row: pd.Series, vs: bool = False) -> str:
    """``79.0 % (−0.07 [−0.08, −0.05])``: a level and its margin with the interval."""
    s = row["sparsity"]
    tail = f" vs {name(row['vs'])}" if vs and "vs" in row else ""
    k = f"{key}@{fmt.bare_level(s)}"
    return f"{d.level(k + '.level', s)} ({d.signed(k + '.margin', row['mean'])} {d.interval(k + '.ci', row['ci_low'], row['ci_high'])}{tail})"


def cites(d: Data, key: str, frame: pd.DataFrame, vs: bool = False) -> str:
    return fmt.words([cite(d, key, row, vs) for _, row in frame.iterrows()])


def excluding_zero(d: Data, key: str, t: Table, window: Window, vs: bool = False) -> str:
    """``the interval excludes 0 at A (...) in the benchmarks' favour and at B (...) in S-Cyc's`` or
    ``no interval excludes 0``."""
    pro, con = t.excluding_zero(window)
    if pro.empty and con.empty:
        return "no interval excludes 0"
    parts = []
    if not con.empty:
        parts.append(f"at {cites(d, key, con, vs)}, in the benchmarks' favour")
    if not pro.empty:
        parts.append(f"at {cites(d, key, pro, vs)}, in S-Cyc's favour")
    return "the interval excludes 0 " + "; and ".join(parts)


def select_sentence(d: Data, key: str, best_val: Table, end: Table) -> str:
    """How the ``end`` table (test accuracy at the end of each round) compares with the ``best_val`` one."""
    diff, only_best, only_end = compare_selects(best_val, end)
    text = (
        f"The `end` table's margins are within {d.num(key + '.max_margin_difference', diff)} points of these, and its "
    )
    text += "intervals exclude 0 at the same levels"
    if only_best:
        text += f" except {fmt.words([d.level(f'{key}.only_best_val{i}', s) for i, s in enumerate(only_best)])}"
    if only_end:
        text += f" and also at {fmt.words([d.level(f'{key}.only_end{i}', s) for i, s in enumerate(only_end)])}"
    return text + "."


def shallow_tuning(d: Data, t: Table, rounds: str) -> str:
    """``LR knobs tuned on the shallow window, the first K = 4 rounds (sparsity ≤ 48.8 %)``: the tables made
    before issue 23 chose their LR knobs over the first K rounds, not over the deep rounds where the margins lie."""
    k = d.recorded("tuned_rounds", rounds)
    return (
        f"LR knobs tuned on the shallow window, the first K = {k} rounds "
        f"(sparsity ≤ {d.level('tuned_up_to', t.levels()[int(rounds) - 1])}), not on the deep rounds"
    )
