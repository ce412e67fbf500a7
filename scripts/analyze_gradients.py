"""Redraw a run's figures from its saved files, or pool several runs (seeds) into mean and +-1 std bands.

    python scripts/analyze_gradients.py outputs/runs/2026-11-25/10-00-00_scyc_global_magnitude_seed0
    python scripts/analyze_gradients.py outputs/sweeps/2026-11-25/10-00-00/* --out figures/seeds

Reads results.csv, lr_trace.csv, grad_stats.csv and grad_hist.npz of each run; writes grad_distribution.png,
grad_std_vs_sparsity.png, accuracy_vs_sparsity.png and lr_schedule.png (those the files allow) into --out
(default: RUN_DIR/figures for one run, <common parent>/figures for several), and prints the global
gradient std per round. --verdict prints, for every population, the ratio of each run's global std (end of round)
at its deepest round to the dense round's, with a 95 % t-interval over the runs: < 1 narrows, > 1 widens.
Runs with histogram edges that differ (each run fixes its own unless
analysis.hist_range is set) are pooled by resampling their densities onto the first run's bins.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from scyc.analysis.figures import GLOBAL, make_figures
from scyc.sweep.rundirs import RunDir

GRAD_COLUMNS = ("round", "when", "layer", "sparsity", "std")  # what the table and the figures read of grad_stats.csv


def files_problem(run_dirs: list[Path]) -> str | None:
    """The first run file that cannot be read, or a grad_stats.csv without the columns read here, in one line
    naming the file (None: every file reads)."""
    for d in run_dirs:
        run = RunDir(d)
        for name, attr in (("results.csv", "results"), ("lr_trace.csv", "lr"), ("grad_stats.csv", "grad_stats"),
                           ("grad_hist.npz", "hist")):  # fmt: skip
            try:
                getattr(run, attr)
            except Exception as exc:  # pandas, NumPy and zipfile each raise their own errors for a damaged file
                why = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
                return f"{d / name} cannot be read ({why}): the file is damaged; rerun the run to write it again"
        missing = [c for c in GRAD_COLUMNS if run.grad_stats is not None and c not in run.grad_stats]
        if missing:
            return f"{d / 'grad_stats.csv'} lacks the column(s) {', '.join(missing)}: not a grad_stats.csv of a run"
    return None


def population_problem(run_dirs: list[Path], population: str) -> str | None:
    """``--population`` naming a population that no run's grad_stats.csv holds (one line), else None."""
    held = sorted({p for d in run_dirs if (g := RunDir(d).grad_stats) is not None for p in g["population"].unique()})
    if held and population not in held:
        return f"--population {population}: these runs' grad_stats.csv hold {', '.join(held)}"
    return None


def std_table(run_dirs: list[Path], population: str = "surviving") -> pd.DataFrame | None:
    """Global gradient std of one population per (round, when): mean and std over runs."""
    frames = []
    for i, d in enumerate(run_dirs):
        stats = RunDir(d).grad_stats
        if stats is not None:
            frames.append(stats[(stats["layer"] == GLOBAL) & (stats["population"] == population)].assign(run=i))
    if not frames:
        return None
    df = pd.concat(frames)
    out = df.groupby(["round", "when"], sort=True).agg(
        sparsity=("sparsity", "mean"), std=("std", "mean"), std_sd=("std", "std"), runs=("run", "nunique")
    )
    out = out.reset_index()
    order = out["when"].map({"start": 0, "end": 1})
    return out.assign(_order=order).sort_values(["round", "_order"]).drop(columns="_order")


def verdict_table(run_dirs: list[Path], level: float = 0.95) -> pd.DataFrame:
    """Per population: std(deepest round) / std(round 0), global, end of round; mean and t-interval over runs."""
    from scipy import stats

    rows, stats_per_run = [], [g for g in (RunDir(d).grad_stats for d in run_dirs) if g is not None]
    for population in ("surviving", "all_zeroed", "all_raw"):
        ratios, sparsity = [], []
        for g in stats_per_run:
            g = g[(g["layer"] == GLOBAL) & (g["population"] == population) & (g["when"] == "end")]
            if len(g) >= 2:
                first, last = g.loc[g["round"].idxmin()], g.loc[g["round"].idxmax()]
                ratios.append(float(last["std"] / first["std"]))
                sparsity.append(float(last["sparsity"]))
        if not ratios:
            continue
        s = pd.Series(ratios)
        half = stats.t.ppf(0.5 + level / 2, len(s) - 1) * s.std() / len(s) ** 0.5 if len(s) > 1 else float("nan")
        low, high = s.mean() - half, s.mean() + half
        says = "narrows" if high < 1 else "widens" if low > 1 else "inconclusive"
        rows.append({"population": population, "runs": len(s), "sparsity": min(sparsity), "ratio": s.mean(),
                     "ci_low": low, "ci_high": high, "min": s.min(), "max": s.max(), "verdict": says})  # fmt: skip
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--out", type=Path, default=None, help="output folder for the PNGs")
    parser.add_argument("--population", default="surviving", help="printed std: surviving, all_zeroed or all_raw")
    parser.add_argument("--verdict", action="store_true", help="print the deepest/dense std ratio per population")
    parser.add_argument("--no-figures", action="store_true", help="print only, draw nothing")
    args = parser.parse_args(argv)
    missing = [str(d) for d in args.run_dirs if not (d / "results.csv").exists()]
    if missing:
        print(f"error: not run directories (no results.csv): {', '.join(missing)}", file=sys.stderr)
        return 2
    if problem := files_problem(args.run_dirs) or population_problem(args.run_dirs, args.population):
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.out is not None:
        out = args.out
    elif len(args.run_dirs) == 1:
        out = args.run_dirs[0] / "figures"
    else:
        out = Path(os.path.commonpath([d.resolve() for d in args.run_dirs])) / "figures"
    try:
        written = {} if args.no_figures else make_figures(args.run_dirs, out)
    except (OSError, ValueError, KeyError) as exc:  # e.g. --out naming a file, a table without a column drawn
        print(f"error: drawing the figures into {out} failed ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 2
    for path in written.values():
        print(f"wrote {path}")
    table = std_table(args.run_dirs, args.population)
    if table is None:
        print("no grad_stats.csv in these runs (analysis.grad_every_round=false): gradient figures skipped")
    else:
        print(
            f"\nglobal weight-gradient std per round ({args.population})"
            + (f" over {table['runs'].max()} runs" if len(args.run_dirs) > 1 else "")
        )
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if args.verdict and table is not None:
        print("\nstd at the deepest round / std dense (global, end of round), 95 % t-interval over the runs")
        print(verdict_table(args.run_dirs).to_markdown(index=False, floatfmt=".4g"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
