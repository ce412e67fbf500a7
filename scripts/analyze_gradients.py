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
from scyc.rundirs import RunDir


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
    if args.out is not None:
        out = args.out
    elif len(args.run_dirs) == 1:
        out = args.run_dirs[0] / "figures"
    else:
        out = Path(os.path.commonpath([d.resolve() for d in args.run_dirs])) / "figures"
    written = {} if args.no_figures else make_figures(args.run_dirs, out)
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
