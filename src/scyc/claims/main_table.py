"""The main table's blocks of docs/claims.md and the README (LeNet-300-100, the protocol fixed before its runs):
pure functions of the committed CSVs (the tuning runs' long CSV, the table's long CSV), each returning the
markdown of one generated block. ``scyc.claims`` registers them; every number in them is computed here."""

from __future__ import annotations

import math

import pandas as pd

from scyc.sweep.stats import mean_interval
from scyc.sweep.tables import LEVEL, aggregate, primary_endpoints, runs_from_long

SHALLOW_ROUNDS = 5  # the earlier protocol's window: the first 5 rounds (sparsity <= 59 %)
DEEP_TUNING = 0.98  # the tuning objective's window
ENDPOINT = 0.985  # the primary endpoint's window
BENCHMARKS = ("lr_rewind", "warmup", "cyclic", "sgdr")
NAMES = {"scyc": "S-Cyc", "lr_rewind": "LR rewinding", "warmup": "warmup", "cyclic": "cyclical LR", "sgdr": "SGDR",
         "cyclic_flat_top": "cyclical LR flat at S-Cyc's top", "oracle": "oracle", "gradscale": "gradscale",
         "scurve_fit": "fitted S-curve"}  # fmt: skip


def _top(point: str) -> float:
    """A tuning point's peak LR: the last of its values (S-Cyc's max_lr_high, or the single knob)."""
    return float(str(point).split("/")[-1])


def _sign(x: float, d: int = 2) -> str:
    return f"{x:+.{d}f}".replace("-", "−")


def tuning_windows(runs: pd.DataFrame, metric: str = "best_val_acc") -> pd.DataFrame:
    """Per schedule: the best grid point (by the mean of ``metric`` over the window) on the shallow window (the
    first 5 rounds) and on the deep one (sparsity >= 98 %), from the same full-length tuning runs."""
    rows = []
    for schedule, g in runs.groupby("schedule", sort=False):
        out = {"schedule": schedule}
        for name, window in (
            ("shallow", g[g["round"] < SHALLOW_ROUNDS]),
            ("deep", g[g["sparsity"] >= DEEP_TUNING - 1e-9]),
        ):
            score = window.groupby("point", sort=False)[metric].mean()
            order = sorted(score.index, key=_top)
            best = max(order, key=lambda p: (round(score[p], 12), -order.index(p)))  # ties: the smaller LR
            out |= {f"{name}_point": best, f"{name}_top": _top(best), f"{name}_score": 100 * score[best]}
        rows.append(out)
    return pd.DataFrame(rows)


def block_tuning_shift(runs: pd.DataFrame) -> str:
    """Claim (i)'s consequence, from the tuning runs: which peak LR each schedule wants in the shallow rounds
    and which in the deep ones, on the same runs."""
    t = tuning_windows(runs)
    up = int((t["deep_top"] > t["shallow_top"]).sum())
    same = int((t["deep_top"] == t["shallow_top"]).sum())
    top = runs.loc[runs["round"] < SHALLOW_ROUNDS, "sparsity"].max()
    lines = [f"| schedule | best peak LR, rounds 0–{SHALLOW_ROUNDS - 1} (≤ {100 * top:.0f} %) | best peak LR, rounds at "
             f"≥ {100 * DEEP_TUNING:g} % |", "|---|:---:|:---:|"]  # fmt: skip
    for _, r in t.iterrows():
        lines.append(f"| {NAMES.get(r['schedule'], r['schedule'])} | {r['shallow_top']:g} ({r['shallow_score']:.2f} %) | "
                     f"{r['deep_top']:g} ({r['deep_score']:.2f} %) |")  # fmt: skip
    lines += ["", f"On the same 32-round tuning runs (seed {', '.join(map(str, sorted(runs['seed'].unique())))}), the "
              f"peak LR that is best in the deep rounds is higher than the one best in the shallow rounds for {up} of "
              f"the {len(t)} schedules, the same for {same}, and lower for {len(t) - up - same}."]  # fmt: skip
    return "\n".join(lines)


def endpoint_table(long: pd.DataFrame, select: str = "best_val", endpoint: float = ENDPOINT):
    """The table and its primary endpoints (over the levels >= ``endpoint``), rebuilt from the long CSV."""
    runs = runs_from_long(long, select)
    table = aggregate(runs, select=select)
    return table, primary_endpoints(table, endpoint)


def block_endpoints(long: pd.DataFrame, endpoint: float = ENDPOINT) -> str:
    """Claim (iii)'s primary endpoints, in words and a table."""
    table, e = endpoint_table(long, endpoint=endpoint)
    lines = [
        f"| S-Cyc minus | seeds | difference (points) | {LEVEL:.0%} CI | p | p (Holm) |",
        "|---|:---:|:---:|:---:|:---:|:---:|",
    ]
    for c in e.comparisons:
        d = c.difference
        lines.append(f"| {NAMES.get(c.versus, c.versus)} | {len(c.seeds)} | {_sign(d.estimate)} | "
                     f"[{_sign(d.low)}, {_sign(d.high)}] | {_p(d.p)} | {_p(c.p_holm)} |")  # fmt: skip
    wins = [c for c in e.comparisons if c.p_holm < 0.05 and c.difference.estimate > 0]
    losses = [c for c in e.comparisons if c.p_holm < 0.05 and c.difference.estimate < 0]
    ties = [c for c in e.comparisons if not c.p_holm < 0.05]
    lines += ["", f"Endpoint levels: {len(e.levels)} ({100 * e.levels[0]:.2f} % … {100 * e.levels[-1]:.2f} %). "
              f"S-Cyc is significantly ahead (Holm-adjusted p < 0.05) of {_names(wins)}, significantly behind "
              f"{_names(losses)}, and not resolved from {_names(ties)}."]  # fmt: skip
    return "\n".join(lines)


def _p(p: float) -> str:
    return "–" if math.isnan(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def _names(cs) -> str:
    return ", ".join(NAMES.get(c.versus, c.versus) for c in cs) or "none"


def gradient_ratios(
    long: pd.DataFrame, when: str = "end", columns: dict[str, str] | None = None, at: float | None = None
) -> pd.DataFrame:
    """Per run: each column (default: each population's global gradient std) at the first round at sparsity >=
    ``at`` (None: the deepest round) over the dense round's; runs missing a value are left out."""
    cols = columns or {p: f"grad_std_{when}_{p}" for p in ("surviving", "all_zeroed", "all_raw")}
    rows = []
    for run, g in long.groupby("run"):
        g = g.sort_values("round")
        if not all(c in g and g[c].notna().all() for c in cols.values()):
            continue
        k = g.iloc[-1] if at is None else g[g["sparsity"] >= at - 1e-9].iloc[0]
        rows.append({"run": run, "schedule": g["schedule"].iloc[0], "sparsity": k["sparsity"],
                     **{p: k[c] / g[c].iloc[0] for p, c in cols.items()}})  # fmt: skip
    return pd.DataFrame(rows)


def block_gradients(
    long: pd.DataFrame, benchmarks: tuple[str, ...] = BENCHMARKS, label: str = "the four benchmarks"
) -> str:
    """Claim (i)'s premise: the std ratios (deepest round / dense round) per population, S-Cyc and the
    benchmarks, mean with a t-interval over runs, and each run's range (every run: the ablation row too)."""
    r = gradient_ratios(long)
    deepest = 100 * r["sparsity"].max()
    lines = [f"| population | S-Cyc ({(r['schedule'] == 'scyc').sum()} runs) | {label} "
             f"({r['schedule'].isin(benchmarks).sum()} runs) | every run | verdict |", "|---|:---:|:---:|:---:|:---:|"]  # fmt: skip
    for pop in ("surviving", "all_zeroed", "all_raw"):
        cells = []
        for rows in (r[r["schedule"] == "scyc"][pop], r[r["schedule"].isin(benchmarks)][pop]):
            ci = mean_interval(list(rows), LEVEL)
            cells.append(f"× {ci.estimate:.3g}" + ("" if math.isnan(ci.low) else f" [{ci.low:.3g}, {ci.high:.3g}]"))
        verdict = "**widens**" if r[pop].min() > 1 else ("**narrows**" if r[pop].max() < 1 else "mixed")
        lines.append(f"| {pop} | {cells[0]} | {cells[1]} | × {r[pop].min():.3g} – {r[pop].max():.3g} | {verdict} |")
    lines += ["", f"Ratio of the global std at the end of the deepest round ({deepest:.2f} % sparsity) to the dense "
              f"round's; {LEVEL:.0%} t-interval over the runs. Dilution alone would give all_zeroed × "
              f"{math.sqrt(1 - r['sparsity'].max()):.3f} × (surviving's ratio)."]  # fmt: skip
    return "\n".join(lines)


def ablation_difference(long: pd.DataFrame) -> tuple[float, float, float] | None:
    """S-Cyc minus the ablation on the primary endpoint: (estimate, low, high), or None without the row."""
    _, e = endpoint_table(long)
    c = next((c for c in e.comparisons if c.versus == "cyclic_flat_top"), None)
    return None if c is None else (c.difference.estimate, c.difference.low, c.difference.high)


def oracle_choices(long: pd.DataFrame) -> tuple[float, float, int]:
    """Spearman's rho (and p) between sparsity and the max_lr the oracle chose, over its runs' rounds."""
    from scipy.stats import spearmanr

    o = long[long["schedule"] == "oracle"]
    rho, p = spearmanr(o["sparsity"], o["max_lr"])
    return float(rho), float(p), len(o)


def block_oracle(long: pd.DataFrame) -> str:
    """Claim (iv): S-Cyc minus the oracle on the primary endpoint (their common seeds), and how often the oracle
    is below the best fixed schedule at a level (means of the per-level table)."""
    table, _ = endpoint_table(long)
    e = primary_endpoints(table, ENDPOINT, ["oracle"])
    lines = []
    if e.comparisons:
        c = e.comparisons[0]
        d = c.difference
        lines.append(f"S-Cyc minus the oracle on the primary endpoint (seeds {', '.join(map(str, c.seeds))}, paired): "
                     f"{_sign(d.estimate)} points [{_sign(d.low)}, {_sign(d.high)}], p {_p(d.p)}.")  # fmt: skip
    fixed = [row for row in table.rows if row[0] not in ("oracle",)]
    below = total = 0
    for s in table.columns:
        if ("oracle", s) not in table.cells.index:
            continue
        best = max(table.cells.loc[(*row, s), "mean"] for row in fixed if (*row, s) in table.cells.index)
        total += 1
        below += bool(table.cells.loc[("oracle", s), "mean"] < best)
    rho, p, n = oracle_choices(long)
    lines.append(f"The oracle's mean is below the best fixed schedule's at {below} of the {total} levels. Its choices "
                 f"of max_lr against sparsity ({n} run-rounds): Spearman ρ {rho:+.2f}, p {_p(p)}.")  # fmt: skip
    return "\n".join(lines)


def block_readme(long: pd.DataFrame) -> str:
    """The README's headline sentence on claim (iii), from the primary endpoints."""
    _, e = endpoint_table(long)
    parts = []
    for c in e.comparisons:
        d = c.difference
        parts.append(f"{NAMES.get(c.versus, c.versus)} {_sign(d.estimate)} [{_sign(d.low)}, {_sign(d.high)}]"
                     f"{' (Holm p ' + _p(c.p_holm) + ')' if c.p_holm < 0.05 else ''}")  # fmt: skip
    return (f"On the primary endpoint fixed before the runs (per seed, the mean test accuracy over the "
            f"{len(e.levels)} levels at ≥ {100 * ENDPOINT:g} % sparsity; 6 seeds, paired, Holm-adjusted), S-Cyc minus: "
            + "; ".join(parts) + " points.")  # fmt: skip


# the sections of scyc.claims.sections: Data -> markdown
def main_tuning(d) -> str:
    return block_tuning_shift(d.tuning("fmnist_lenet300_runs"))


def main_endpoints(d) -> str:
    return block_endpoints(d.long("fashion_mnist_default"))


def main_gradients(d) -> str:
    return block_gradients(d.long("fashion_mnist_default"))


def main_oracle(d) -> str:
    return block_oracle(d.long("fashion_mnist_default"))


def readme_main(d) -> str:
    return block_readme(d.long("fashion_mnist_default"))
