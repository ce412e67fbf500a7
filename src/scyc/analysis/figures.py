"""The figures of a run (or of several runs: seeds pooled as mean and a +-1 std band), from its saved files.

- ``grad_distribution.png``: the global weight-gradient distribution of every round (density on the run's
  fixed bins, log scale), coloured by sparsity; one panel per measurement point (start / end of round).
- ``grad_std_vs_sparsity.png``: the gradient standard deviation against sparsity: global for each population
  (surviving, all_zeroed, all_raw: ``scyc.analysis.gradients``), and per layer (surviving).
- ``accuracy_vs_sparsity.png``: validation and test accuracy at the end of each round (results.csv).
- ``lr_schedule.png``: the learning rate of every optimiser step (lr_trace.csv), rounds marked.

The gradient figures need ``grad_stats.csv`` / ``grad_hist.npz`` (``analysis.grad_every_round=true``);
the other two are drawn for every run. Matplotlib's object API with the Agg canvas is used (no pyplot, no
global backend switch), so this module is safe to import anywhere. ``scripts/analyze_gradients.py``
calls ``make_figures`` on saved runs; the ``RunFigures`` callback calls it at the end of a run.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scyc.foundations.utils import atomic_write
from scyc.lifecycle.callbacks import Callback
from scyc.sweep.rundirs import SURVIVING, RunDir

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from scyc.lifecycle.callbacks import RunView

log = logging.getLogger(__name__)

GLOBAL = "global"
WHEN_LABELS = {"start": "start of round (after prune + reset)", "end": "end of round (after training)"}
MAX_LR_POINTS = 20_000
TOP_LAYERS = 6  # a model with more layers: these (the largest) drawn each, the others as one summary band


def load_runs(run_dirs: Sequence[str | Path]) -> list[RunDir]:
    """The saved files of each run (read lazily, through the run-directory reader the tables use too)."""
    runs = [RunDir(d) for d in run_dirs]
    for r in runs:
        if not r.path.is_dir():
            raise FileNotFoundError(f"{r.path} is not a run directory")
    return runs


def _figure(ncols: int = 1, width: float = 6.0, height: float = 4.2):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _save(fig, path: Path) -> Path:
    """The PNG, written atomically: a failed write (a full disk) leaves no half-drawn figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write(path, buf.getvalue())
    return path


def _mean_band(frames: Sequence[pd.DataFrame], by: Sequence[str], value: str) -> pd.DataFrame:
    """Mean and std (0 for one run) of ``value`` over runs, grouped by ``by``; sparsity averaged too."""
    df = pd.concat([f.assign(_run=i) for i, f in enumerate(frames)], ignore_index=True)
    g = df.groupby(list(by), sort=True)
    out = g.agg(sparsity=("sparsity", "mean"), mean=(value, "mean"), std=(value, "std"), n=("_run", "nunique"))
    out["std"] = out["std"].fillna(0.0)
    return out.reset_index()


def _line(ax: Axes, x, mean, std, **kw) -> None:
    (line,) = ax.plot(x, mean, **kw)
    if np.any(np.asarray(std) > 0):
        ax.fill_between(x, np.asarray(mean) - std, np.asarray(mean) + std, color=line.get_color(), alpha=0.2, lw=0)


def _runs_note(n: int) -> str:
    return "" if n <= 1 else f" (mean and ±1 std over {n} runs)"


# --------------------------------------------------------------------------------------------------
def plot_grad_distribution(
    runs: Sequence[RunDir], path: Path, layer: str = GLOBAL, population: str = SURVIVING
) -> Path:
    """Each round's gradient density on the fixed bins (overflow bins excluded), coloured by sparsity."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    hists = [r.hist for r in runs if r.hist is not None]
    ref = hists[0]
    li = list(zip(ref["layers"].tolist(), ref["population"].tolist())).index((layer, population))
    ref_edges = ref["edges"][li, 1:-1]
    centres = (ref_edges[:-1] + ref_edges[1:]) / 2
    resampled = any(not np.array_equal(h["edges"][li], ref["edges"][li]) for h in hists)
    whens = [w for w in ("start", "end") if any(w in set(h["when"].tolist()) for h in hists)]
    max_sparsity = max(float(h["sparsity"][:, li].max()) for h in hists)
    norm = Normalize(0.0, max(max_sparsity, 1e-9))
    cmap = colormaps["viridis"]
    fig, axes = _figure(len(whens))
    for ax, when in zip(axes, whens):
        rounds = sorted({int(r) for h in hists for r, w in zip(h["round"], h["when"]) if w == when})
        for rnd in rounds:
            dens, spars = [], []
            for h in hists:
                sel = np.flatnonzero((h["round"] == rnd) & (h["when"] == when))
                if not len(sel):
                    continue
                counts = h["counts"][sel[-1], li].astype(np.float64)
                edges = h["edges"][li, 1:-1]
                total = counts.sum()
                d = counts[1:-1] / (total * np.diff(edges)) if total > 0 else np.zeros(len(edges) - 1)
                if resampled:
                    d = np.interp(centres, (edges[:-1] + edges[1:]) / 2, d, left=0.0, right=0.0)
                dens.append(d)
                spars.append(float(h["sparsity"][sel[-1], li]))
            dens_arr = np.array(dens)
            mean = dens_arr.mean(0)
            std = dens_arr.std(0) if len(dens) > 1 else np.zeros_like(mean)
            colour = cmap(norm(np.mean(spars)))
            shown = np.where(mean > 0, mean, np.nan)
            ax.plot(centres, shown, color=colour, lw=1.2, label=f"round {rnd}")
            if len(dens) > 1:
                lo = np.where(mean - std > 0, mean - std, np.nan)
                ax.fill_between(centres, lo, mean + std, color=colour, alpha=0.15, lw=0)
        ax.set_yscale("log")
        ax.set_title(f"{layer} ({population}): {WHEN_LABELS.get(when, when)}", fontsize=10)
        unit = "gradient / weight std" if bool(ref.get("normalize", False)) else "gradient"
        ax.set_xlabel(f"{unit} (fixed bins{', resampled' if resampled else ''})")
        ax.set_ylabel("density")
        ax.grid(alpha=0.3)
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=axes, label="sparsity (fraction of weights pruned)")
    fig.suptitle(f"Weight-gradient distribution per round{_runs_note(len(hists))}", fontsize=11)
    return _save(fig, path)


def plot_grad_std_vs_sparsity(runs: Sequence[RunDir], path: Path) -> Path:
    """Left: the global gradient std of each population (start and end of round). Right: per layer, surviving
    weights (log scale)."""
    from matplotlib import colormaps

    frames = [r.grad_stats for r in runs if r.grad_stats is not None]
    fig, (ax, axl) = _figure(2)
    styles = {"start": dict(ls="--", marker="o", mfc="none"), "end": dict(ls="-", marker="o")}
    glob = _mean_band([f[f["layer"] == GLOBAL] for f in frames], ["population", "when", "round"], "std")
    for i, pop in enumerate(dict.fromkeys(frames[0]["population"])):
        for when, part in glob[glob["population"] == pop].groupby("when"):
            _line(ax, 100 * part["sparsity"], part["mean"], part["std"], color=f"C{i}",
                  label=f"{pop} ({when} of round)", **styles[when])  # fmt: skip
    ax.set_yscale("log")
    ax.set_title("global: surviving weights; all weights, pruned at 0 (all_zeroed) or raw (all_raw)", fontsize=9)
    frames = [f[f["population"] == SURVIVING] for f in frames]
    layers = [x for x in dict.fromkeys(frames[0]["layer"]) if x != GLOBAL]
    shown, rest = top_layers(layers, _layer_sizes(runs[0]))
    colours = colormaps["tab10"]
    per = _mean_band([f[f["layer"] != GLOBAL] for f in frames], ["layer", "when", "round"], "std")
    for i, layer in enumerate(shown):
        for when, part in per[per["layer"] == layer].groupby("when"):
            _line(axl, 100 * part["sparsity"], part["mean"], part["std"], color=colours(i % 10),
                  label=layer if when == "end" or len(set(per["when"])) == 1 else None, **styles[when])  # fmt: skip
    if rest:  # the other layers as one summary: their median and 10-90 % range over layers, per round
        others = per[per["layer"].isin(rest)].groupby(["when", "round"])
        band = others.agg(sparsity=("sparsity", "median"), mid=("mean", "median"),
                          lo=("mean", lambda v: v.quantile(0.1)), hi=("mean", lambda v: v.quantile(0.9))).reset_index()  # fmt: skip
        for when, part in band.groupby("when"):
            axl.plot(100 * part["sparsity"], part["mid"], color="0.35", label=None if when == "start" and
                     len(set(band["when"])) > 1 else f"other {len(rest)} layers: median, 10-90 %", **styles[when])  # fmt: skip
            axl.fill_between(100 * part["sparsity"], part["lo"], part["hi"], color="0.5", alpha=0.15, lw=0)
    axl.set_yscale("log")
    what = f"the {len(shown)} largest of {len(layers)} layers" if rest else "per layer"
    axl.set_title(f"{what} (x: that layer's sparsity; dashed: start, solid: end of round)", fontsize=9)
    for a in (ax, axl):
        a.set_xlabel("sparsity (%)")
        a.set_ylabel("std of weight gradients")
        a.grid(alpha=0.3)
        a.legend(fontsize=7)
    fig.suptitle(f"Gradient spread against sparsity{_runs_note(len(frames))}", fontsize=11)
    return _save(fig, path)


def top_layers(layers: Sequence[str], sizes: dict[str, int]) -> tuple[list[str], list[str]]:
    """The layers drawn one by one (all when there are at most ``TOP_LAYERS`` + 1, else the ``TOP_LAYERS`` with
    the most weights, in model order) and the rest (summarised)."""
    if len(layers) <= TOP_LAYERS + 1:
        return list(layers), []
    largest = set(sorted(layers, key=lambda x: -sizes.get(x, 0))[:TOP_LAYERS])
    return [x for x in layers if x in largest], [x for x in layers if x not in largest]


def _layer_sizes(run: RunDir) -> dict[str, int]:
    """Each layer's number of weights (layer_sparsity.csv; empty when the run has none)."""
    path = run.path / "layer_sparsity.csv"
    if not path.exists():
        return {}
    table = pd.read_csv(path)
    return dict(zip(table["layer"], table["numel"].astype(int)))


def plot_accuracy_vs_sparsity(runs: Sequence[RunDir], path: Path) -> Path:
    frames = [r.results for r in runs if r.results is not None]
    fig, (ax,) = _figure(1)
    for col, label in (("val_acc", "validation"), ("test_acc", "test")):
        band = _mean_band(frames, ["round"], col)
        _line(ax, 100 * band["sparsity"], 100 * band["mean"], 100 * band["std"], marker="o", label=label)
    ax.set_xlabel("sparsity (%)")
    ax.set_ylabel("accuracy at the end of the round (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"Accuracy against sparsity{_runs_note(len(frames))}", fontsize=11)
    return _save(fig, path)


def plot_lr_schedule(runs: Sequence[RunDir], path: Path) -> Path:
    """The per-step LR; dotted lines where a round begins (the round index above each)."""
    frames = [r.lr for r in runs if r.lr is not None]
    fig, (ax,) = _figure(1, width=9.0, height=3.6)
    same = all(len(f) == len(frames[0]) and (f["step"].values == frames[0]["step"].values).all() for f in frames)
    stride = max(1, len(frames[0]) // MAX_LR_POINTS)
    if same:
        lrs = np.stack([f["lr"].to_numpy() for f in frames])
        step = frames[0]["step"].to_numpy()
        _line(ax, step[::stride], lrs.mean(0)[::stride], lrs.std(0)[::stride], lw=1.0)
    else:
        for i, f in enumerate(frames):
            ax.plot(f["step"].to_numpy()[::stride], f["lr"].to_numpy()[::stride], lw=0.8, label=f"run {i}")
        ax.legend(fontsize=7)
    first = frames[0]
    starts = first.groupby("round")["step"].min()
    for rnd, s in starts.items():
        ax.axvline(s, color="grey", ls=":", lw=0.8)
        ax.text(s, 1.0, f" r{rnd}", transform=ax.get_xaxis_transform(), fontsize=7, va="bottom", ha="left")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    ax.set_title(f"Learning rate per step, rounds marked{_runs_note(len(frames))}", fontsize=11, pad=14)
    return _save(fig, path)


def make_figures(run_dirs: Sequence[str | Path], out_dir: str | Path) -> dict[str, Path]:
    """Draw every figure the saved files allow into ``out_dir``; returns name -> path of those written."""
    runs = load_runs(run_dirs)
    if not runs:
        raise ValueError("no run directories given")
    out = Path(out_dir)
    written: dict[str, Path] = {}
    plots: list[tuple[str, Any, bool]] = [
        ("grad_distribution", plot_grad_distribution, any(r.hist is not None for r in runs)),
        ("grad_std_vs_sparsity", plot_grad_std_vs_sparsity, any(r.grad_stats is not None for r in runs)),
        ("accuracy_vs_sparsity", plot_accuracy_vs_sparsity, any(r.results is not None for r in runs)),
        ("lr_schedule", plot_lr_schedule, any(r.lr is not None for r in runs)),
    ]
    for name, plot, available in plots:
        if available:
            written[name] = plot(runs, out / f"{name}.png")
    return written


class RunFiguresCallback(Callback):
    """At the end of a run: draw the figures into ``<run_dir>/figures`` and log them to W&B as images.

    A plotting error is logged in one line (its traceback at debug level) and does not fail a run whose training
    completed; ``scripts/analyze_gradients.py RUN_DIR`` redraws the figures from the saved files.
    """

    def on_run_end(self, run: RunView, summary: dict[str, Any]) -> None:
        if not run.outputs.is_main:  # data-parallel runs: rank 0 draws
            return
        try:
            paths = make_figures([run.run_dir], run.run_dir / "figures")
        except Exception as exc:
            why = " ".join(f"{type(exc).__name__}: {exc}".split())
            log.warning("drawing the run's figures failed (%s); redraw with scripts/analyze_gradients.py %s", why,
                        run.run_dir)  # fmt: skip
            log.debug("the figures' error", exc_info=True)
            return
        run.outputs.wandb.log_images({f"figures/{name}": p for name, p in paths.items()})
        log.debug("figures: %s", ", ".join(str(p) for p in paths.values()))
