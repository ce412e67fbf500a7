"""Paper-style results tables for a sweep: accuracy of each schedule at each sparsity, over seeds.

``make_table(sweep_dir)`` reads every run under a sweep dir (``results.csv``, ``summary.json`` and
``.hydra/overrides.yaml`` / ``.hydra/config.yaml``) and writes into it:

- ``table.md`` / ``table.tex`` / ``table.csv`` — rows = schedules (and any other key that differs between
  runs, seed excepted), columns = sparsity levels (fraction of prunable weights removed, rounded to 4
  decimals so equal grids align; runs with different grids give the union of columns, empty cells where a
  row has no run at that sparsity), cells = mean ± std (sample std, ddof=1) of the test accuracy in percent
  over seeds, with n. The best row per column is marked (bold in md/tex, ``best`` in the csv); the oracle is
  a per-round grid search, an upper bound rather than a competitor, so it is not eligible for the mark.
- a row "S-Cyc − best benchmark" per group of rows: S-Cyc's mean minus the mean of the benchmark with the
  highest mean at that sparsity, in points, with a 95% t-interval from the seeds — paired over seeds when
  both rows ran exactly the same seeds (the same seed gives both schedules the same initial weights and
  data order), Welch's unequal-variance interval otherwise. Benchmarks are the paper's four (lr_rewind,
  warmup, cyclic, sgdr) that are present, or, when none of them is, every schedule other than S-Cyc and the
  oracle.
- ``accuracy_vs_sparsity.png`` — one line (mean) and band (± std) per row.
- ``excluded_runs.csv`` — every run that is not complete (failed, interrupted, still running, missing or
  unreadable files); such runs are listed in ``table.md`` as well and never averaged in.

The number reported for a round is the test accuracy at the end of the round's training (``select="end"``)
or, as a documented alternative, the test accuracy at the epoch of best validation accuracy
(``select="best_val"``). Never the best test accuracy: that would select on the test set.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from scyc.foundations.keys import changes_no_result, meant
from scyc.sweep.rundirs import RunDir, find_run_dirs
from scyc.sweep.stats import Difference, holm, paired_interval, welch_interval

log = logging.getLogger(__name__)

SELECT = {"end": "test_acc", "best_val": "test_acc_at_best_val"}
SELECT_TEXT = {
    "end": "test accuracy (%) at the end of each round's training",
    "best_val": "test accuracy (%) at the epoch of best validation accuracy within each round",
}
PAPER_BENCHMARKS = ("lr_rewind", "warmup", "cyclic", "sgdr")
REFERENCE = "scyc"
ORACLE = "oracle"
SPARSITY_DECIMALS = 4
LEVEL = 0.95
# Override keys that never define a row: the seed (averaged over), the schedule (the row's name) and every key
# that changes nothing computed (scyc.foundations.keys: resume, checkpoint.*, dataset.root, ...).
ROW_NEVER = {"seed", "schedule"}
MARGIN_LABEL = "S-Cyc − best benchmark (picked per level after the fact; descriptive)"
ABLATION = "cyclic_flat_top"  # cyclical LR flat at S-Cyc's tuned top: the shape-against-level row
LONG_COLUMNS = ["round", "sparsity", "max_lr", "best_val_acc", "test_acc_at_best_val", "test_acc"]
WIDE_COLUMNS = 12  # more sparsity levels than this: table.md lists them down the page (one line each)
OUTPUT_FILES = (
    "table.md",
    "table.csv",
    "table.tex",
    "accuracy_vs_sparsity.png",
    "excluded_runs.csv",
    "runs.csv",
    "margins.png",
)


@dataclass
class Run:
    path: Path
    status: str
    reason: str = ""
    schedule: str | None = None
    seed: int | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    results: pd.DataFrame | None = None
    setting: str = ""  # model / data set / pruner (reset), for the title
    identity: str = ""  # the config (keys that change nothing computed left out) and seed: equal for copies

    @property
    def complete(self) -> bool:
        return self.status == "complete"


@dataclass
class Endpoint:
    """One comparison of the primary endpoint: S-Cyc minus ``versus``, paired over ``seeds``."""

    versus: str
    group: tuple
    seeds: tuple[int, ...]
    difference: Difference
    p_holm: float = math.nan


@dataclass
class Endpoints:
    """The primary endpoint, fixed before the run: per seed, the mean accuracy over the levels at sparsity >=
    ``min_sparsity``; S-Cyc minus each named comparison row, paired over seeds, Holm-adjusted across them."""

    min_sparsity: float
    levels: list[float]
    comparisons: list[Endpoint]
    per_seed: pd.DataFrame  # index: the rows' labels, columns: seeds; the per-seed endpoint values


@dataclass
class Table:
    sweep_dir: Path
    select: str
    row_keys: list[str]  # swept keys besides the schedule that define rows
    rows: list[tuple]  # (schedule, *values of row_keys), in display order
    columns: list[float]  # sparsity levels
    cells: pd.DataFrame  # index (row, sparsity) -> mean, std, n, seeds, round, best
    margins: dict[tuple, dict[float, tuple[str, Difference]]]  # group -> sparsity -> (benchmark, difference)
    benchmarks: list[str]
    runs: list[Run]
    common: dict[str, str]
    endpoints: Endpoints | None = None  # the primary endpoints, when a threshold was stated

    @property
    def title(self) -> str:
        """The setting(s) of the included runs: model / data set / pruner (reset)."""
        return "; ".join(dict.fromkeys(r.setting for r in self.included if r.setting)) or str(self.sweep_dir.name)

    @property
    def common_n(self) -> int | None:
        """The number of runs in every cell when all cells share it (then said once, in a note)."""
        counts = set(self.cells["n"].astype(int)) if len(self.cells) else set()
        return counts.pop() if len(counts) == 1 else None

    @property
    def included(self) -> list[Run]:
        return [r for r in self.runs if r.complete]

    @property
    def excluded(self) -> list[Run]:
        return [r for r in self.runs if not r.complete]

    def label(self, row: tuple) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in zip(self.row_keys, row[1:]))
        return f"{row[0]} ({extra})" if extra else str(row[0])

    def margin_label(self, group: tuple) -> str:
        extra = ", ".join(f"{k}={v}" for k, v in zip(self.row_keys, group))
        return f"{MARGIN_LABEL} ({extra})" if extra else MARGIN_LABEL


# ------------------------------------------------------------------------------------------------
# Reading runs
# ------------------------------------------------------------------------------------------------
class _Unusable(Exception):
    """``(status, reason)`` of a run that cannot be tabulated."""


def load_run(path: Path, select: str = "end") -> Run:
    """Read one run dir; a run that cannot be used says why in ``status``/``reason``."""
    files = RunDir(path)
    run = Run(path=files.path, status="complete")
    try:
        run.results = _read(run, files, select)
    except _Unusable as exc:
        run.status, run.reason = exc.args
    return run


def _read(run: Run, files: RunDir, select: str) -> pd.DataFrame:
    """Fill ``run``'s overrides, schedule and seed; return its results, or raise ``_Unusable``."""
    try:
        run.overrides, config = files.overrides, files.config
    except (OSError, yaml.YAMLError, AttributeError, TypeError) as exc:
        raise _Unusable("unreadable", f".hydra: {type(exc).__name__}: {exc}") from exc
    if not isinstance(config, dict):
        raise _Unusable("unreadable", f".hydra/config.yaml is not a mapping (a {type(config).__name__})")
    groups = {g: config.get(g) if isinstance(config.get(g), dict) else {} for g in ("schedule", "model", "dataset",
                                                                                      "pruner")}  # fmt: skip
    run.schedule = groups["schedule"].get("name") or run.overrides.get("schedule")
    named = [groups[g].get("name") for g in ("model", "dataset", "pruner")]
    reset = groups["pruner"].get("reset")
    run.setting = " / ".join(str(n) for n in named if n) + (f" (reset: {reset})" if reset and any(named) else "")
    run.seed = _seed(config.get("seed", run.overrides.get("seed")), ".hydra")
    run.identity = _identity(config, run.overrides, run.seed)
    try:
        summary = files.summary
    except (OSError, ValueError) as exc:
        raise _Unusable("unreadable", f"summary.json: {exc}") from exc
    if summary is None:
        raise _Unusable("missing", "no summary.json (the run never started or was killed at start-up)")
    if not isinstance(summary, dict):
        raise _Unusable("unreadable", f"summary.json is not a mapping (a {type(summary).__name__})")
    run.schedule = summary.get("schedule", run.schedule)
    if summary.get("seed") is not None:
        run.seed = _seed(summary["seed"], "summary.json")
    if (status := summary.get("status", "unknown")) != "complete":
        reason, done = str(summary.get("reason") or ""), summary.get("rounds_completed")
        if done is not None:
            reason = f"{reason} ({done}/{summary.get('rounds', '?')} rounds done)".strip()
        raise _Unusable(str(status), reason)
    if not (files.path / "results.csv").exists():
        raise _Unusable("missing", "summary.json says complete but results.csv is missing")
    try:
        results = files.results
    except (OSError, ValueError) as exc:
        raise _Unusable("unreadable", f"results.csv: {exc}") from exc
    if missing := {"round", "sparsity", SELECT[select]} - set(results.columns if results is not None else ()):
        raise _Unusable("unreadable", f"results.csv lacks column(s) {sorted(missing)}")
    if results.empty:
        raise _Unusable("unreadable", "results.csv has no rows")
    needed = ["round", "sparsity", SELECT[select]]
    for col in needed:
        numbers = pd.to_numeric(results[col], errors="coerce")
        bad = numbers.isna() & results[col].notna()
        if bad.any():
            line = int(bad.to_numpy().nonzero()[0][0])
            raise _Unusable("unreadable", f"results.csv: {col} {results[col].iloc[line]!r} in line {line + 2} is "
                            "not a number")  # fmt: skip
        results[col] = numbers
    blank = results[needed].isna()
    if blank.any().any():
        row, col = blank.stack()[lambda b: b].index[0]
        raise _Unusable("incomplete", f"results.csv has a blank {col} in line {int(row) + 2}")
    rounds, done = summary.get("rounds"), len(results)
    if isinstance(rounds, int) and (done != rounds or list(results["round"]) != list(range(rounds))):
        raise _Unusable("incomplete", f"results.csv has {done} round(s) (rounds {_span(results['round'])}) but "
                        f"summary.json says the run completed {rounds}")  # fmt: skip
    if run.schedule is None:
        raise _Unusable("unreadable", "no schedule name in summary.json or .hydra/config.yaml")
    return results


def _seed(value: Any, where: str) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _Unusable("unreadable", f"{where}: seed {value!r} is not an integer") from None


def _span(rounds: pd.Series) -> str:
    return f"{rounds.min()}-{rounds.max()}" if len(rounds) else "none"


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix[:-1]: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}."))
    return out


def _identity(config: dict[str, Any], overrides: dict[str, str], seed: int | None) -> str:
    """What makes two runs the same run: the resolved config and the overrides (a config group's choice, which
    the config resolves, aside), both without the keys that change nothing computed, and the seed."""
    flat = {k: meant(k, v) for k, v in (_flat(config) if config else {}).items()}
    # a null key is an unset one: runs written before the per-option schemas hold every option's keys, null
    kept = {k: v for k, v in flat.items() if v is not None and not changes_no_result(k) and k != "seed"}
    kept |= {f"override:{k}": v for k, v in overrides.items() if not _is_ignored(k)}
    return yaml.safe_dump({"seed": seed, **kept}, sort_keys=True, default_flow_style=True)


def drop_copies(runs: Sequence[Run]) -> list[Run]:
    """Mark every later copy of a complete run (same config and seed, e.g. a run dir copied or a sweep tabulated
    together with its copy) as ``duplicate``: one run is one seed, never counted twice."""
    first: dict[str, Run] = {}
    for r in runs:
        if not r.complete:
            continue
        if r.identity in first:
            r.status, r.reason = "duplicate", f"same config and seed {r.seed} as {first[r.identity].path}"
        else:
            first[r.identity] = r
    return list(runs)


# ------------------------------------------------------------------------------------------------
# Aggregation
# ------------------------------------------------------------------------------------------------
def _is_ignored(key: str) -> bool:
    return key in ROW_NEVER or changes_no_result(key)


def _row_order(schedule: str) -> tuple:
    if schedule == REFERENCE:
        return (0, 0, schedule)
    if schedule in PAPER_BENCHMARKS:
        return (1, PAPER_BENCHMARKS.index(schedule), schedule)
    if schedule == ORACLE:
        return (3, 0, schedule)
    return (2, 0, schedule)


def _value_order(value: Any) -> tuple:
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def aggregate(
    runs: Sequence[Run], select: str = "end", benchmarks: Sequence[str] | None = None, sweep_dir: Path | None = None
) -> Table:
    if select not in SELECT:
        raise ValueError(f"select={select!r} is not allowed; use one of {sorted(SELECT)}")
    included = [r for r in runs if r.complete]
    keys = sorted({k for r in included for k in r.overrides if not _is_ignored(k)})
    row_keys = [k for k in keys if len({r.overrides.get(k) for r in included}) > 1]
    common = {k: included[0].overrides[k] for k in keys if k not in row_keys} if included else {}

    frames = []
    for r in included:
        df = r.results[["round", "sparsity", SELECT[select]]].copy()
        df["acc"] = 100.0 * df.pop(SELECT[select]).astype(float)
        df["sparsity"] = df["sparsity"].astype(float).round(SPARSITY_DECIMALS)
        df["schedule"] = r.schedule
        for k in row_keys:
            df[k] = r.overrides.get(k, "(default)")
        df["seed"] = r.seed
        frames.append(df)
    row_cols = ["schedule", *row_keys]
    long = pd.concat(frames, ignore_index=True).dropna(subset=["acc"]) if frames else None
    if long is not None:  # sorted by seed: each cell's values then pair up by seed
        cells = (
            long.sort_values("seed", kind="stable")
            .groupby([*row_cols, "sparsity"], sort=False)
            .agg(
                mean=("acc", "mean"),
                std=("acc", "std"),
                n=("acc", "size"),
                round=("round", "min"),
                seeds=("seed", lambda s: tuple(int(x) for x in s if x is not None and not pd.isna(x))),
                values=("acc", tuple),
            )
        )
    else:
        cells = pd.DataFrame(
            columns=["mean", "std", "n", "round", "seeds", "values"],
            index=pd.MultiIndex.from_tuples([], names=[*row_cols, "sparsity"]),
        )
    rows = sorted(
        {tuple(idx[:-1]) for idx in cells.index},
        key=lambda row: (_row_order(row[0]), *(_value_order(v) for v in row[1:])),
    )
    columns = sorted({float(idx[-1]) for idx in cells.index})

    # best per column, the oracle excluded (unless it is all there is)
    cells["best"] = False
    for s in columns:
        col = cells.xs(s, level="sparsity", drop_level=False)
        eligible = col[[idx[0] != ORACLE for idx in col.index]]
        eligible = eligible if len(eligible) else col
        top = eligible["mean"].max()
        cells.loc[eligible.index[(eligible["mean"] >= top - 1e-9).to_numpy()], "best"] = True

    present = {row[0] for row in rows}
    if benchmarks is None:
        benchmarks = [b for b in PAPER_BENCHMARKS if b in present] or sorted(present - {REFERENCE, ORACLE})
    benchmarks = [b for b in benchmarks if b in present and b != REFERENCE]

    margins: dict[tuple, dict[float, tuple[str, Difference]]] = {}
    groups = sorted({row[1:] for row in rows}, key=lambda g: tuple(_value_order(v) for v in g))
    for group in groups:
        ref = (REFERENCE, *group)
        if ref not in rows:
            continue
        per_col: dict[float, tuple[str, Difference]] = {}
        for s in columns:
            if (*ref, s) not in cells.index:
                continue
            cands = [(b, *group) for b in benchmarks if (b, *group, s) in cells.index]
            if not cands:
                continue
            best = max(cands, key=lambda row: cells.loc[(*row, s), "mean"])
            per_col[s] = (best[0], _difference(cells.loc[(*ref, s)], cells.loc[(*best, s)]))
        if per_col:
            margins[group] = per_col
    return Table(
        sweep_dir=Path(sweep_dir) if sweep_dir is not None else Path("."),
        select=select,
        row_keys=row_keys,
        rows=rows,
        columns=columns,
        cells=cells,
        margins=margins,
        benchmarks=list(benchmarks),
        runs=list(runs),
        common=common,
    )


def _difference(a: pd.Series, b: pd.Series) -> Difference:
    """Paired by seed when both cells have the same seeds, each once (values are in seed order); Welch otherwise."""
    seeds = a["seeds"]
    if len(seeds) == a["n"] >= 2 and seeds == b["seeds"] and len(set(seeds)) == len(seeds):
        return paired_interval(list(a["values"]), list(b["values"]), LEVEL)
    return welch_interval(list(a["values"]), list(b["values"]), LEVEL)


def primary_endpoints(table: Table, min_sparsity: float, comparisons: Sequence[str] | None = None) -> Endpoints:
    """The primary endpoint of every (S-Cyc, comparison) pair in each row group: per seed, the mean of the
    selected accuracy over the levels >= ``min_sparsity`` (a seed missing a level is left out of that row);
    S-Cyc minus the comparison, paired over their common seeds, with a t-interval and p-value; then Holm's
    adjustment across all the comparisons. ``comparisons`` default: the paper's four present, then the
    ablation row (cyclic_flat_top) if present."""
    levels = [s for s in table.columns if s >= min_sparsity - 1e-9]
    present = {row[0] for row in table.rows}
    if comparisons is None:
        comparisons = [b for b in (*PAPER_BENCHMARKS, ABLATION) if b in present]
    per_seed: dict[tuple, dict[int, float]] = {}
    for row in table.rows:
        values: dict[int, list[float]] = {}
        for s in levels:
            if (*row, s) not in table.cells.index:
                continue
            c = table.cells.loc[(*row, s)]
            for seed, v in zip(c["seeds"], c["values"]):
                values.setdefault(seed, []).append(v)
        per_seed[row] = {seed: sum(v) / len(v) for seed, v in values.items() if len(v) == len(levels)}
    frame = pd.DataFrame.from_dict({table.label(r): v for r, v in per_seed.items()}, orient="index").sort_index(axis=1)
    out: list[Endpoint] = []
    for row in table.rows:
        if row[0] != REFERENCE:
            continue
        for b in comparisons:
            other = (b, *row[1:])
            if other not in per_seed:
                continue
            seeds = tuple(sorted(set(per_seed[row]) & set(per_seed[other])))
            if not seeds:
                continue
            d = paired_interval([per_seed[row][x] for x in seeds], [per_seed[other][x] for x in seeds], LEVEL)
            out.append(Endpoint(b, row[1:], seeds, d))
    for e, p in zip(out, holm([e.difference.p for e in out])):
        e.p_holm = p
    return Endpoints(min_sparsity, levels, out, frame)


def long_frame(table: Table) -> pd.DataFrame:
    """``runs.csv``: every included run's rows, one line per run and round (what the table is made of, so it
    can be rebuilt and re-analysed without the run dirs): run (its folder, relative to the sweep), schedule,
    seed, the row keys, round, sparsity, max_lr, the validation accuracy at the best-validation epoch, the test
    accuracy there and at the end of the round, and, where the run measured gradients, the global gradient std
    of each population at the start and end of the round (``grad_std_<when>_<population>``)."""
    frames = []
    for r in table.included:
        df = r.results[[c for c in LONG_COLUMNS if c in r.results.columns]].copy()
        df.insert(0, "run", _rel(r.path, table.sweep_dir))
        df.insert(1, "schedule", r.schedule)
        df.insert(2, "seed", r.seed)
        for i, k in enumerate(table.row_keys):
            df.insert(3 + i, k, r.overrides.get(k, "(default)"))
        grads = _grad_std(r.path)
        if grads is not None:
            df = df.merge(grads, on="round", how="left")
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["run", "schedule", "seed"])


def _grad_std(path: Path) -> pd.DataFrame | None:
    """Per round, the global gradient std of each population at the start and at the end of the round
    (``grad_std_<when>_<population>``), from the run's grad_stats.csv; None where it measured none."""
    try:
        stats_ = RunDir(path).grad_stats
    except (OSError, ValueError):
        return None
    if stats_ is None or not {"when", "layer", "population", "std"} <= set(stats_.columns):
        return None
    rows = stats_[stats_["layer"] == "global"]
    wide = rows.pivot_table(index="round", columns=["when", "population"], values="std", aggfunc="first")
    wide.columns = [f"grad_std_{when}_{pop}" for when, pop in wide.columns]
    if "weight_norm" in stats_.columns:
        surv = rows[rows["population"] == "surviving"]
        wide = wide.join(surv.pivot_table(index="round", columns="when", values="weight_norm", aggfunc="first")
                         .rename(columns=lambda when: f"wnorm_{when}"))  # fmt: skip
        bn = _bn_widths(stats_)
        if bn is not None:
            wide = wide.join(bn)
    return wide.reset_index()


def _bn_widths(stats_: pd.DataFrame) -> pd.DataFrame | None:
    """Per round and when, over the layers followed by BatchNorm (surviving gradients): the geometric means of
    the gradient std, of the weight norm and of their product (the scale-free width: a BN-followed layer's
    gradient scales as 1 / its weight norm), as ``grad_std_<when>_surviving_bn``, ``wnorm_<when>_bn`` and
    ``grad_std_x_wnorm_<when>_bn``; None where no layer is followed by BatchNorm. A layer that loses every
    surviving weight (or whose gradient is 0) at some measurement is left out of every round."""
    if "bn_followed" not in stats_.columns:
        return None
    bn = stats_[(stats_["layer"] != "global") & (stats_["population"] == "surviving")
                & (pd.to_numeric(stats_["bn_followed"], errors="coerce") == 1)]  # fmt: skip
    ok = (bn["std"] > 0) & (bn["weight_norm"] > 0) & np.isfinite(bn["std"]) & np.isfinite(bn["weight_norm"])
    bad = set(bn.loc[~ok, "layer"])  # a layer with no surviving weight (or no gradient) at some point: left out of
    bn = bn[~bn["layer"].isin(bad)]  # every round, so each geometric mean is over the same layers throughout
    if bn.empty:
        return None
    logs = bn.assign(std=np.log(bn["std"]), weight_norm=np.log(bn["weight_norm"]),
                     std_x_wnorm=np.log(bn["std_x_wnorm"]))  # fmt: skip
    geo = np.exp(logs.groupby(["round", "when"])[["std", "weight_norm", "std_x_wnorm"]].mean()).unstack("when")
    names = {"std": "grad_std_{}_surviving_bn", "weight_norm": "wnorm_{}_bn", "std_x_wnorm": "grad_std_x_wnorm_{}_bn"}
    geo.columns = [names[stat].format(when) for stat, when in geo.columns]
    return geo


def runs_from_long(path: str | Path | pd.DataFrame, select: str = "end") -> list[Run]:
    """The runs of a ``runs.csv`` (``long_frame``; a path or the frame), as ``load_run`` would read them."""
    if isinstance(path, pd.DataFrame):
        frame, path = path.astype({"run": str, "schedule": str}), Path("runs.csv")
    else:
        path = Path(path)
        try:
            frame = pd.read_csv(path, dtype={"run": str, "schedule": str})
        except (OSError, ValueError) as exc:
            raise FileNotFoundError(f"{path}: cannot be read as a long CSV ({exc})") from exc
    missing = {"run", "schedule", "seed", "round", "sparsity", SELECT[select]} - set(frame.columns)
    if missing:
        raise FileNotFoundError(f"{path}: not a long CSV of runs (lacks column(s) {', '.join(sorted(missing))})")
    keys = list(frame.columns[3 : frame.columns.get_loc("round")])
    runs = []
    for name, df in frame.groupby("run", sort=False):
        first = df.iloc[0]
        runs.append(Run(path=path.parent / str(name), status="complete", schedule=str(first["schedule"]),
                        seed=int(first["seed"]), overrides={k: str(first[k]) for k in keys},
                        results=df.reset_index(drop=True), identity=str(name)))  # fmt: skip
    return runs


# ------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------
def _fmt_sparsity(s: float) -> str:
    return f"{100 * s:.2f}%"


def _fmt_cell(cell: pd.Series, decimals: int, show_n: bool = True) -> str:
    std = "" if pd.isna(cell["std"]) else f" ± {cell['std']:.{decimals}f}"
    return f"{cell['mean']:.{decimals}f}{std}" + (f" (n={int(cell['n'])})" if show_n else "")


def _fmt_signed(x: float, decimals: int) -> str:
    return f"{x:+.{decimals}f}".replace("-", "−")


def _fmt_margin(bench: str, d: Difference, decimals: int) -> str:
    interval = (
        f" [{_fmt_signed(d.low, decimals)}, {_fmt_signed(d.high, decimals)}]" if not math.isnan(d.low) else " [n<2]"
    )
    return f"{_fmt_signed(d.estimate, decimals)}{interval} vs {bench}"


def display_frame(table: Table, decimals: int = 2, bold: tuple[str, str] = ("**", "**")) -> pd.DataFrame:
    """The table as strings: one row per table row and margin row, one column per sparsity."""
    header = [_fmt_sparsity(s) for s in table.columns]
    body: dict[str, list[str]] = {}
    for row in table.rows:
        cells = []
        for s in table.columns:
            key = (*row, s)
            if key not in table.cells.index:
                cells.append("")
                continue
            cell = table.cells.loc[key]
            text = _fmt_cell(cell, decimals, show_n=table.common_n is None)
            cells.append(f"{bold[0]}{text}{bold[1]}" if cell["best"] else text)
        body[table.label(row)] = cells
    for group, per_col in table.margins.items():
        body[table.margin_label(group)] = [
            _fmt_margin(*per_col[s], decimals) if s in per_col else "" for s in table.columns
        ]
    return pd.DataFrame.from_dict(body, orient="index", columns=header)


def tidy_frame(table: Table) -> pd.DataFrame:
    """``table.csv``: one line per (row, sparsity), machine-readable (accuracies in percent)."""
    records = []
    for row in table.rows:
        for s in table.columns:
            key = (*row, s)
            if key not in table.cells.index:
                continue
            c = table.cells.loc[key]
            records.append({
                "kind": "schedule", "label": table.label(row), "schedule": row[0],
                **dict(zip(table.row_keys, row[1:])), "sparsity": s, "round": int(c["round"]),
                "mean": c["mean"], "std": c["std"], "n": int(c["n"]), "seeds": " ".join(map(str, c["seeds"])),
                "best": bool(c["best"]),
            })  # fmt: skip
    for group, per_col in table.margins.items():
        for s, (bench, d) in per_col.items():
            records.append({
                "kind": "margin", "label": table.margin_label(group), "schedule": REFERENCE,
                **dict(zip(table.row_keys, group)), "sparsity": s, "mean": d.estimate, "vs": bench,
                "ci_low": d.low, "ci_high": d.high, "interval": d.method, "df": d.df,
            })  # fmt: skip
    columns = [
        "kind", "label", "schedule", *table.row_keys, "sparsity", "round", "mean", "std", "n", "seeds", "best",
        "vs", "ci_low", "ci_high", "interval", "df",
    ]  # fmt: skip
    frame = pd.DataFrame.from_records(records, columns=columns)
    for col in ("round", "n"):
        frame[col] = frame[col].astype("Int64")
    frame["best"] = frame["best"].astype("boolean")
    for col in ("mean", "std", "ci_low", "ci_high", "df"):
        frame[col] = frame[col].astype(float).round(6)
    return frame


def excluded_frame(table: Table) -> pd.DataFrame:
    return pd.DataFrame.from_records(
        [
            {
                "run": _rel(r.path, table.sweep_dir),
                "status": r.status,
                "schedule": r.schedule,
                "seed": r.seed,
                "reason": r.reason,
            }
            for r in table.excluded
        ],
        columns=["run", "status", "schedule", "seed", "reason"],
    )


def _rel(path: Path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root)) or "."
    except ValueError:
        return str(path)


def _md_table(frame: pd.DataFrame, index_name: str) -> str:
    """A GitHub/pipe markdown table (tabulate), first column left-aligned, the others centred."""
    cell = lambda x: str(x).replace("|", "\\|").replace("\n", " ")  # noqa: E731  (pipes and newlines break a row)
    frame = frame.map(cell).rename(index=cell).rename_axis(index_name)
    align = ["left"] + ["center"] * len(frame.columns)
    return frame.to_markdown(tablefmt="pipe", colalign=align, disable_numparse=True)


def _notes(table: Table) -> list[str]:
    n = f"n = {table.common_n} seeds in every cell" if table.common_n else "n = number of seeds"
    lines = "Lines" if len(table.columns) > WIDE_COLUMNS else "Columns"
    notes = [
        f"Cells: {SELECT_TEXT[table.select]}, mean ± sample std over seeds ({n}). {lines}: sparsity = fraction of "
        "prunable weights removed. Best per sparsity in bold (the oracle, a per-round grid search, is not eligible).",
    ]
    if table.margins:
        notes.append(
            f"{MARGIN_LABEL}: S-Cyc's mean minus the mean of the best benchmark at that sparsity, in points, with a "
            f"{LEVEL:.0%} t-interval over seeds (paired by seed when both rows ran the same seeds, Welch otherwise). "
            f"Benchmarks: {', '.join(table.benchmarks) or 'none'}."
        )
    elif table.rows:
        notes.append(f"No {MARGIN_LABEL} row: it needs a '{REFERENCE}' row and at least one benchmark row.")
    repeated = sorted({table.label(idx[:-1]) for idx, c in table.cells.iterrows() if len(set(c["seeds"])) < c["n"]})
    if repeated:
        notes.append(f"Repeated seeds (each run counted) in: {', '.join(repeated)}; intervals for them are Welch's.")
    if table.common:
        notes.append("Common overrides: " + " ".join(f"`{k}={v}`" for k, v in sorted(table.common.items())) + ".")
    notes.append(f"Runs: {len(table.included)} included, {len(table.excluded)} excluded.")
    return notes


def _sweep_task(sweep_dir: Path) -> list[str] | None:
    """The overrides of the multirun that made ``sweep_dir`` (its multirun.yaml), if Hydra wrote one."""
    try:
        return list(yaml.safe_load((sweep_dir / "multirun.yaml").read_text())["hydra"]["overrides"]["task"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def _fmt_p(p: float) -> str:
    return "–" if math.isnan(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def render_endpoints(table: Table, decimals: int = 2) -> list[str]:
    """The primary-endpoint section of table.md."""
    e = table.endpoints
    if e is None:
        return []
    span = f"{_fmt_sparsity(e.levels[0])} … {_fmt_sparsity(e.levels[-1])}" if e.levels else "none"
    parts = ["", "## Primary endpoint (fixed before the run)", "",
             f"Per seed: the mean {SELECT_TEXT[table.select]} over the {len(e.levels)} levels at sparsity ≥ "
             f"{100 * e.min_sparsity:g} % ({span}). S-Cyc minus each named comparison row, paired over the seeds both "
             f"ran, {LEVEL:.0%} t-interval; p: two-sided paired t-test; Holm: adjusted across the "
             f"{len(e.comparisons)} comparisons. The per-level table above is descriptive.", ""]  # fmt: skip
    if not e.comparisons:
        return [*parts, "No comparison: it needs an S-Cyc row and a named comparison row with common seeds."]
    rows = {}
    for c in e.comparisons:
        ref, other = (REFERENCE, *c.group), (c.versus, *c.group)
        d = c.difference
        ci = f"[{_fmt_signed(d.low, decimals)}, {_fmt_signed(d.high, decimals)}]" if not math.isnan(d.low) else "[n<2]"
        label = table.label(other).replace(c.versus, f"S-Cyc − {c.versus}", 1)
        rows[label] = {
            "n seeds": str(len(c.seeds)),
            "S-Cyc": f"{e.per_seed.loc[table.label(ref), list(c.seeds)].mean():.{decimals}f}",
            "comparison": f"{e.per_seed.loc[table.label(other), list(c.seeds)].mean():.{decimals}f}",
            "difference": _fmt_signed(d.estimate, decimals),
            f"{LEVEL:.0%} CI": ci,
            "p": _fmt_p(d.p),
            "p (Holm)": _fmt_p(c.p_holm),
        }
    parts.append(_md_table(pd.DataFrame.from_dict(rows, orient="index"), "comparison"))
    seeds = e.per_seed.map(lambda v: "" if pd.isna(v) else f"{v:.{decimals}f}").rename(columns=lambda x: f"seed {x}")
    parts += ["", "Per-seed endpoint values:", "", _md_table(seeds, "row")]
    return parts


def render_markdown(table: Table, decimals: int = 2) -> str:
    parts = [
        f"# Results: {table.title}",
        "",
        f"Sweep: `{_rel(table.sweep_dir, Path.cwd())}`"
        + (f", made by `python train.py -m {' '.join(task)}`." if (task := _sweep_task(table.sweep_dir)) else "."),
        "",
    ]
    if table.rows and len(table.columns) > WIDE_COLUMNS:  # deep sweeps: one line per sparsity, readable
        parts += [_md_table(display_frame(table, decimals).T, "sparsity"), ""]
    elif table.rows:
        parts += [_md_table(display_frame(table, decimals), "schedule"), ""]
    else:
        parts += ["No complete run to tabulate.", ""]
    parts += [f"- {n}" for n in _notes(table)]
    parts += render_endpoints(table, decimals)
    if table.excluded:
        parts += ["", "## Excluded runs (not averaged in)", ""]
        ex = excluded_frame(table).fillna("").set_index("run")
        parts.append(_md_table(ex, "run"))
    return "\n".join(parts) + "\n"


def render_latex(table: Table, decimals: int = 2) -> str:
    """A booktabs table (``\\usepackage{booktabs}``), best cells in bold; pandas' Styler escapes the text."""
    marked = display_frame(table, decimals, bold=("\x00", "")).rename_axis("schedule").reset_index()
    best = marked.map(lambda c: c.startswith("\x00"))
    frame = marked.map(lambda c: c.lstrip("\x00"))
    math_signs = lambda text: text.replace("±", r"$\pm$").replace("−", "$-$")  # noqa: E731
    styler = (
        frame.style.hide(axis="index")
        .format(escape="latex", formatter=math_signs)
        .format_index(escape="latex", axis="columns")
        .apply(lambda _: best.replace({True: "textbf: --rwrap;", False: ""}), axis=None)
    )
    caption = f"{SELECT_TEXT[table.select].capitalize()}: mean ± std over seeds (n). Columns: sparsity."
    return styler.to_latex(
        hrules=True,
        column_format="l" + "c" * (len(frame.columns) - 1),
        caption=math_signs(caption.replace("%", r"\%")),
        position_float=None,
    )


def preload() -> None:
    """Import the plotting stack (non-interactive backend) ahead of time; see ``ResultsTableCallback``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401
    import pandas.io.formats.style  # noqa: F401  (render_latex: jinja2)
    import scipy.stats  # noqa: F401
    import tabulate  # noqa: F401  (DataFrame.to_markdown)


def plot(table: Table, path: Path, log_remaining: bool = False) -> None:
    preload()
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in table.rows:
        sub = table.cells.xs(row, level=list(range(len(row)))).sort_index()
        x = 1 - sub.index.to_numpy(dtype=float) if log_remaining else 100 * sub.index.to_numpy(dtype=float)
        mean = sub["mean"].to_numpy(dtype=float)
        std = sub["std"].fillna(0.0).to_numpy(dtype=float)
        (line,) = ax.plot(x, mean, marker="o", ms=3, label=table.label(row), ls="--" if row[0] == ORACLE else "-")
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
    if log_remaining:  # the high-sparsity end, crowded on a linear axis, spreads out
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("fraction of prunable weights remaining, 1 − s (log scale)")
    else:
        ax.set_xlabel("sparsity (% of prunable weights removed)")
    ax.set_ylabel("test accuracy (%)" + (" at best val epoch" if table.select == "best_val" else ""))
    ax.set_title(f"{table.title}: mean ± std over seeds", fontsize=10)
    ax.grid(alpha=0.3)
    if table.rows:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)


def plot_margins(table: Table, path: Path) -> bool:
    """``margins.png``: S-Cyc minus each comparison row (the primary endpoint's, else every benchmark) at each
    level, with its 95 % t-interval over seeds (paired when both rows ran the same seeds), one panel per
    comparison on a shared y axis; x = the fraction remaining, 1 − s, on a log axis. The primary endpoint's
    levels are shaded. False (nothing drawn) without an S-Cyc row and a comparison."""
    groups = [g for g in sorted({row[1:] for row in table.rows}) if (REFERENCE, *g) in table.rows]
    versus = ([c.versus for c in table.endpoints.comparisons] if table.endpoints else None) or table.benchmarks
    versus = list(dict.fromkeys(versus))
    panels = [(g, b) for g in groups for b in versus if (b, *g) in table.rows]
    if not panels:
        return False
    preload()
    import matplotlib.pyplot as plt

    cols = min(len(panels), 3)
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), sharey=True, squeeze=False)
    for ax, (group, b) in zip(axes.flat, panels):
        xs, est, lo, hi = [], [], [], []
        for s in table.columns:
            ref, other = (REFERENCE, *group, s), (b, *group, s)
            if ref in table.cells.index and other in table.cells.index and s < 1:
                d = _difference(table.cells.loc[ref], table.cells.loc[other])
                xs.append(1 - s)
                est.append(d.estimate)
                lo.append(d.estimate - d.low if not math.isnan(d.low) else 0.0)
                hi.append(d.high - d.estimate if not math.isnan(d.high) else 0.0)
        ax.axhline(0, color="black", lw=0.8)
        if table.endpoints is not None:
            deepest = min(xs, default=1 - table.endpoints.min_sparsity)  # a log axis: no span from 0
            ax.axvspan(deepest / 1.5, 1 - table.endpoints.min_sparsity + 1e-12, color="tab:orange", alpha=0.12, lw=0)
        ax.errorbar(xs, est, yerr=[lo, hi], fmt="o", ms=3, capsize=2, color="tab:blue")
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_title(f"S-Cyc − {table.label((b, *group))}", fontsize=9)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("difference (points)")
    for ax in axes[-1, :]:
        ax.set_xlabel("fraction remaining, 1 − s (log)")
    shade = " (shaded: the primary endpoint's levels)" if table.endpoints is not None else ""
    title = f"{table.title}: S-Cyc minus each comparison, {LEVEL:.0%} t-interval over seeds{shade}"
    fig.suptitle(textwrap.fill(title, 60 * cols), fontsize=9)  # wrapped to the figure's width
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# ------------------------------------------------------------------------------------------------
# Entry points
# ------------------------------------------------------------------------------------------------
def make_table(
    sweep_dir: str | Path,
    select: str = "end",
    benchmarks: Sequence[str] | None = None,
    out_dir: str | Path | None = None,
    decimals: int = 2,
    log_remaining: bool = False,
    endpoint: float | None = None,
    comparisons: Sequence[str] | None = None,
    from_long: str | Path | None = None,
) -> Table:
    """Read every run under ``sweep_dir`` (or the runs of the long CSV ``from_long``), write the tables, the
    figures, the exclusion list and the long CSV of every included run's rows (``runs.csv``), return the Table.
    ``endpoint``: the primary endpoint's threshold (levels at sparsity >= it), with ``comparisons``."""
    sweep_dir = Path(sweep_dir)
    if select not in SELECT:
        raise ValueError(f"select={select!r} is not allowed; use one of {sorted(SELECT)}")
    if from_long is not None:
        runs = runs_from_long(from_long, select)
    else:
        if not sweep_dir.is_dir():
            raise FileNotFoundError(f"sweep dir {sweep_dir} does not exist")
        runs = drop_copies([load_run(p, select) for p in find_run_dirs(sweep_dir)])
    if not runs:  # nothing is written for no runs: an empty table would look like a result
        raise FileNotFoundError(f"no run dirs found under {sweep_dir}")
    out = Path(out_dir) if out_dir is not None else sweep_dir
    table = aggregate(runs, select=select, benchmarks=benchmarks, sweep_dir=sweep_dir)
    if endpoint is not None:
        table.endpoints = primary_endpoints(table, endpoint, comparisons)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(render_markdown(table, decimals))
    tidy_frame(table).to_csv(out / "table.csv", index=False)
    (out / "table.tex").write_text(render_latex(table, decimals))
    excluded_frame(table).to_csv(out / "excluded_runs.csv", index=False)
    if from_long is None:  # the long CSV, and how to rebuild this table from it (make_table.py --from-long)
        long_frame(table).to_csv(out / "runs.csv", index=False, float_format="%.6g")
        args = ["--select", select, *(["--endpoint", f"{endpoint:g}"] if endpoint is not None else []),
                *(["--compare", ",".join(comparisons)] if comparisons else []),
                *(["--benchmarks", ",".join(benchmarks)] if benchmarks else [])]  # fmt: skip
        (out / "runs.json").write_text(json.dumps({"args": args}, indent=1) + "\n")
    plot(table, out / "accuracy_vs_sparsity.png", log_remaining)
    if not plot_margins(table, out / "margins.png"):
        (out / "margins.png").unlink(missing_ok=True)
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make_table.py",
        description="Tabulate a sweep: accuracy per schedule and sparsity, mean ± std over seeds, S-Cyc's margin.",
    )
    parser.add_argument("sweep_dir", type=Path, help="a Hydra sweep dir (hydra.sweep.dir), or any folder of run dirs")
    parser.add_argument(
        "--select",
        choices=sorted(SELECT),
        default="end",
        help="end: test accuracy at the end of each round (default); best_val: at the epoch of best val accuracy",
    )
    parser.add_argument(
        "--benchmarks",
        default=None,
        help="comma-separated schedules S-Cyc is compared with (default: the paper's four present, else all others)",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the outputs here instead of into SWEEP_DIR")
    parser.add_argument("--decimals", type=int, default=2, help="decimals of the accuracies shown (default 2)")
    parser.add_argument(
        "--log-remaining", action="store_true",
        help="figure: x = the fraction remaining, 1 - s, on a log axis (the high-sparsity end spread out)",
    )  # fmt: skip
    parser.add_argument("--endpoint", type=float, default=None, metavar="S",
                        help="primary endpoint: per seed, the mean accuracy over the levels at sparsity >= S "
                             "(e.g. 0.985); S-Cyc minus each --compare row, paired, Holm-adjusted")  # fmt: skip
    parser.add_argument("--compare", default=None,
                        help="comma-separated rows of the primary endpoint (default: the paper's four present, "
                             f"then {ABLATION})")  # fmt: skip
    parser.add_argument("--from-long", type=Path, default=None, metavar="CSV",
                        help="rebuild from a long CSV of runs (runs.csv) instead of run dirs; needs --out")  # fmt: skip
    args = parser.parse_args(argv)
    if args.from_long is None and not args.sweep_dir.is_dir():
        parser.error(f"{args.sweep_dir} is not a directory")
    if args.from_long is not None and args.out is None:
        parser.error("--from-long needs --out (where the rebuilt table goes)")
    if args.endpoint is not None and not 0 < args.endpoint < 1:
        parser.error(f"--endpoint {args.endpoint}: must be a sparsity between 0 and 1 (exclusive)")
    if args.decimals < 0 or args.decimals > 6:
        parser.error(f"--decimals {args.decimals}: must be an integer from 0 to 6")
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: is a file; give a folder")
    benchmarks = [b for b in args.benchmarks.split(",") if b] if args.benchmarks else None
    compare = [b for b in args.compare.split(",") if b] if args.compare else None
    try:
        table = make_table(args.sweep_dir, args.select, benchmarks, args.out, args.decimals, args.log_remaining,
                           args.endpoint, compare, args.from_long)  # fmt: skip
    except FileNotFoundError as exc:
        print(f"error: {exc}; nothing written", file=sys.stderr)
        return 1
    out = args.out or args.sweep_dir
    print(f"{len(table.included)} run(s) tabulated, {len(table.excluded)} excluded; wrote {out}/table.md")
    for r in table.excluded:
        print(f"  excluded {_rel(r.path, args.sweep_dir)}: {r.status} {r.reason}".rstrip())
    unreadable = [r for r in table.excluded if r.status == "unreadable"]
    if unreadable:  # a corrupt file is a fault to look at, not a result: the exit says so
        print(f"error: {len(unreadable)} run(s) have unreadable files (listed above and in table.md)", file=sys.stderr)
    return 0 if table.included and not unreadable else 1
