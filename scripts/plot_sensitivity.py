"""How much do S-Cyc's knobs matter? Final accuracy against beta, max_lr_low and max_lr_high over sweeps.

    python train.py -m hydra/sweeper=optuna hydra.sweeper.n_trials=30 hydra.sweep.dir=outputs/sweeps/optuna
    python train.py -m schedule.beta=1,2,3,5,8,12 hydra.sweep.dir=outputs/sweeps/beta_grid
    python scripts/plot_sensitivity.py outputs/sweeps/optuna outputs/sweeps/beta_grid --out sensitivity.png

Reads every run of the given sweeps (its ``.hydra/config.yaml`` and ``summary.json``; Optuna's
``optimization_results.yaml`` names the best trial), writes ``<out>.csv`` (one row per run: sweep, knobs,
final validation and test accuracy) and a figure with one panel per knob (validation accuracy, the
quantity the sweeps maximise; each sweep its own marker). It prints, per sweep, the spread of validation
accuracy and Spearman's rank correlation of each knob with it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from scyc.sweep.rundirs import RunDir, find_run_dirs

ROOT = Path(__file__).resolve().parents[1]

KNOBS = ("beta", "max_lr_low", "max_lr_high")


def read_trials(sweeps: list[Path]) -> pd.DataFrame:
    rows = []
    for sweep in sweeps:
        for run in map(RunDir, find_run_dirs(sweep)):
            summary, schedule = run.summary or {}, run.config.get("schedule") or {}
            if summary.get("status") != "complete":
                continue  # failed or never started: nothing to plot
            rows.append(
                {"sweep": sweep.name, "run": run.path.name, **{k: schedule.get(k) for k in KNOBS},
                 "val_acc": summary.get("final_val_acc"), "test_acc": summary.get("final_test_acc")}
            )  # fmt: skip
    if not rows:
        sys.exit(f"error: no complete run under {', '.join(map(str, sweeps))}")
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweeps", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="figure (default: <first sweep>/sensitivity.png)")
    args = parser.parse_args(argv)
    from scipy.stats import spearmanr

    df = read_trials(args.sweeps)
    out = args.out or args.sweeps[0] / "sensitivity.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out.with_suffix(".csv"), index=False)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(KNOBS), figsize=(11, 3.4), sharey=True)
    for i, (name, g) in enumerate(df.groupby("sweep", sort=False)):
        for ax, knob in zip(axes, KNOBS):
            ax.scatter(g[knob], 100 * g["val_acc"], marker="osD^v"[i % 5], s=26, alpha=0.8, label=f"{name} ({len(g)})")
        spread = 100 * (g["val_acc"].max() - g["val_acc"].min())
        corr = ", ".join(
            f"{k} rho {spearmanr(g[k], g['val_acc'])[0]:+.2f}" for k in KNOBS if g[k].nunique() > 1
        )  # fmt: skip
        print(f"{name}: {len(g)} runs, validation accuracy {100 * g['val_acc'].min():.2f}-"
              f"{100 * g['val_acc'].max():.2f} % (spread {spread:.2f} points); {corr or 'no knob varies'}")  # fmt: skip
    for ax, knob in zip(axes, KNOBS):
        ax.set_xlabel(f"schedule.{knob}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("final validation accuracy (%)")
    axes[-1].legend(fontsize=7.5)
    fig.suptitle("S-Cyc: final validation accuracy against each knob", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(out)
    return df


if __name__ == "__main__":
    main()
