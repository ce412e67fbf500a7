"""Claim (i) from a table's long CSV: the global weight-gradient std of each population against the fraction of
weights remaining, relative to the dense round, for S-Cyc and for the four benchmarks pooled (mean over the runs,
band: min to max over them), with the dilution line sqrt(1 - s) that all_zeroed follows when the surviving
gradients keep their width.

    python scripts/plot_grad_long.py docs/results/fashion_mnist_default_runs.csv --out docs/figures/grad_std_deep.png

With ``--bn`` (a network with BatchNorm, e.g. ResNet-20): the weights' side instead, over the layers that feed a
BatchNorm (geometric means over them, surviving weights): their gradient std, their weight norm, and the product
(the scale-free width: a BN-followed layer's gradient scales as 1 / its weight norm), each relative to the dense
round, with the global weight norm of every prunable weight for reference.

    python scripts/plot_grad_long.py docs/results/fashion_mnist_resnet20_runs.csv --bn --out docs/figures/grad_bn_resnet20.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

POPULATIONS = ("surviving", "all_zeroed", "all_raw")
BENCHMARKS = ("lr_rewind", "warmup", "cyclic", "sgdr")


BN_PANELS = {  # panel title -> the long CSV's column ({when}: start or end)
    "gradient std (surviving, BN-followed layers)": "grad_std_{when}_surviving_bn",
    "weight norm (BN-followed layers; dashed: all weights)": "wnorm_{when}_bn",
    "gradient std × weight norm (BN-followed layers)": "grad_std_x_wnorm_{when}_bn",
}


def ratios(long: pd.DataFrame, when: str, panels: dict[str, str] | None = None) -> pd.DataFrame:
    """Per run and round: each panel's column divided by the run's dense-round value (default panels: the global
    gradient std of each population)."""
    panels = panels or {p: f"grad_std_{{when}}_{p}" for p in POPULATIONS}
    cols = [c.format(when=when) for c in panels.values()]
    missing = [c for c in cols if c not in long]
    if missing:
        raise ValueError(f"the long CSV has no gradient column(s) {', '.join(missing)} (runs without measurement)")
    out = []
    for _, run in long.groupby("run"):
        run = run.sort_values("round")
        dense = run.iloc[0][cols].astype(float).to_numpy()
        out.append(run[["run", "schedule", "seed", "round", "sparsity"]].assign(
            **{p: run[c].astype(float).to_numpy() / d for p, c, d in zip(panels, cols, dense)}))  # fmt: skip
    return pd.concat(out, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("long_csv", type=Path, help="a table's runs.csv (docs/results/<table>_runs.csv)")
    parser.add_argument("--out", type=Path, required=True, help="the figure (png)")
    parser.add_argument("--when", choices=("start", "end"), default="end", help="start or end of each round")
    parser.add_argument("--bn", action="store_true", help="the BatchNorm-followed layers' width, weight norm, product")
    args = parser.parse_args(argv)
    panels = BN_PANELS if args.bn else {p: f"grad_std_{{when}}_{p}" for p in POPULATIONS}
    try:
        long = pd.read_csv(args.long_csv)
        r = ratios(long, args.when, panels)
        if args.bn:
            r = r.merge(
                ratios(long, args.when, {"all": "wnorm_{when}"}), on=["run", "schedule", "seed", "round", "sparsity"]
            )
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
    for ax, pop in zip(axes, panels):
        for (label, g), color in zip(groups.items(), ("tab:blue", "tab:orange")):
            if g.empty:
                continue
            agg = g.groupby("round").agg(s=("sparsity", "mean"), mean=(pop, "mean"), lo=(pop, "min"), hi=(pop, "max"))
            x = 1 - agg["s"].to_numpy()
            ax.plot(x, agg["mean"], color=color, lw=1.4, label=f"{label} ({g['run'].nunique()} runs)")
            ax.fill_between(x, agg["lo"], agg["hi"], color=color, alpha=0.2, lw=0)
            if args.bn and pop == list(panels)[1]:
                w = g.groupby("round").agg(s=("sparsity", "mean"), mean=("all", "mean"))
                ax.plot(1 - w["s"].to_numpy(), w["mean"], color=color, lw=1, ls="--")
        x = 1 - np.sort(r["sparsity"].unique())
        if not args.bn:
            ax.plot(x, np.sqrt(x), color="0.4", ls=":", lw=1, label="√(1 − s): dilution by zeros")
        ax.axhline(1, color="black", lw=0.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.invert_xaxis()
        ax.set_title(pop, fontsize=10)
        ax.set_xlabel("fraction remaining, 1 − s (log)")
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel(f"{'value' if args.bn else 'global gradient std'} / dense round's ({args.when} of round)")
    axes[0].legend(fontsize=8)
    what = "BatchNorm-followed layers: gradient width and weight scale" if args.bn else "gradient width"
    fig.suptitle(f"Claim (i): {what} as the network is pruned ({args.long_csv.name}; band: min–max over runs)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
