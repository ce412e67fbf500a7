"""Claim (i) from a table's long CSV: the global weight-gradient std of each population against the fraction of
weights remaining, relative to the dense round, for S-Cyc and for the four benchmarks pooled (mean over the runs,
band: min to max over them), with the dilution line sqrt(1 - s) that all_zeroed follows when the surviving
gradients keep their width.

    python scripts/plot_grad_long.py docs/results/fashion_mnist_default_runs.csv --out docs/figures/grad_std_deep.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

POPULATIONS = ("surviving", "all_zeroed", "all_raw")
BENCHMARKS = ("lr_rewind", "warmup", "cyclic", "sgdr")


def ratios(long: pd.DataFrame, when: str) -> pd.DataFrame:
    """Per run and round: each population's std divided by the run's dense-round std."""
    cols = [f"grad_std_{when}_{p}" for p in POPULATIONS]
    missing = [c for c in cols if c not in long]
    if missing:
        raise ValueError(f"the long CSV has no gradient column(s) {', '.join(missing)} (runs without measurement)")
    out = []
    for _, run in long.groupby("run"):
        run = run.sort_values("round")
        dense = run.iloc[0][cols].astype(float).to_numpy()
        out.append(run[["run", "schedule", "seed", "round", "sparsity"]].assign(
            **{p: run[c].astype(float).to_numpy() / d for p, c, d in zip(POPULATIONS, cols, dense)}))  # fmt: skip
    return pd.concat(out, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("long_csv", type=Path, help="a table's runs.csv (docs/results/<table>_runs.csv)")
    parser.add_argument("--out", type=Path, required=True, help="the figure (png)")
    parser.add_argument("--when", choices=("start", "end"), default="end", help="start or end of each round")
    args = parser.parse_args(argv)
    try:
        long = pd.read_csv(args.long_csv)
        r = ratios(long, args.when)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {args.long_csv}: {exc}", file=sys.stderr)
        return 2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bench = r[r["schedule"].isin(BENCHMARKS)]
    groups = {
        "S-Cyc": r[r["schedule"] == "scyc"],
        "benchmarks (" + ", ".join(sorted(bench["schedule"].unique())) + ")": bench,
    }
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), sharey=True)
    for ax, pop in zip(axes, POPULATIONS):
        for (label, g), color in zip(groups.items(), ("tab:blue", "tab:orange")):
            if g.empty:
                continue
            agg = g.groupby("round").agg(s=("sparsity", "mean"), mean=(pop, "mean"), lo=(pop, "min"), hi=(pop, "max"))
            x = 1 - agg["s"].to_numpy()
            ax.plot(x, agg["mean"], color=color, lw=1.4, label=f"{label} ({g['run'].nunique()} runs)")
            ax.fill_between(x, agg["lo"], agg["hi"], color=color, alpha=0.2, lw=0)
        x = 1 - np.sort(r["sparsity"].unique())
        ax.plot(x, np.sqrt(x), color="0.4", ls=":", lw=1, label="√(1 − s): dilution by zeros")
        ax.axhline(1, color="black", lw=0.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.invert_xaxis()
        ax.set_title(pop, fontsize=10)
        ax.set_xlabel("fraction remaining, 1 − s (log)")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(f"global gradient std / dense round's ({args.when} of round)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Claim (i): gradient width as the network is pruned ({args.long_csv.name}; band: min–max over runs)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
