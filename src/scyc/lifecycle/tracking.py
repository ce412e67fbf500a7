"""What a run writes: CSV tables, summary.json and the W&B run (offline by default), behind one object.

``RunOutputs`` is the run's one writer, with one rule for data-parallel runs: rank 0 writes files and
logs to W&B; the other ranks keep the same rows in memory and write nothing. Callbacks open their own
tables through ``RunOutputs.table`` and so follow the same rule.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import platform
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from scyc.foundations.utils import NoSpaceLeft, atomic_write, atomic_write_json, overwrite_in_place
from scyc.lifecycle.state import EPOCH_COLUMNS, RESULT_COLUMNS, EpochRecord, RoundResult
from scyc.version import __version__

log = logging.getLogger(__name__)


LR_COLUMNS = ["round", "epoch", "step", "lr"]


class CsvTable:
    """A CSV file with a fixed header. ``append`` rewrites the file atomically (small tables: results);
    ``stream`` appends in place (large tables such as the per-step LR trace). ``write=False`` (ranks
    other than 0) keeps the rows in memory only."""

    def __init__(self, path: Path, columns: Sequence[str], write: bool = True) -> None:
        self.path, self.columns, self.write = Path(path), list(columns), write
        self.rows: list[dict[str, Any]] = []

    def _render(self, rows: Sequence[Mapping[str, Any]], header: bool) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="raise", lineterminator="\n")
        if header:
            writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()

    def append(self, row: Mapping[str, Any]) -> None:
        self.rows.append(dict(row))
        if self.write:
            atomic_write(self.path, self._render(self.rows, header=True))

    def update_last(self, row: Mapping[str, Any]) -> None:
        """Replace the last row (rewrites the file atomically)."""
        self.rows[-1] = dict(row)
        if self.write:
            atomic_write(self.path, self._render(self.rows, header=True))

    def add_column(self, name: str) -> None:
        """A column after the others; the rows so far leave it empty (the file is rewritten with it)."""
        self.columns.append(name)
        if self.rows and self.write:
            atomic_write(self.path, self._render(self.rows, header=True))

    def reset(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Replace the table's rows (e.g. with a checkpoint's on resume); no rows removes the file."""
        self.rows = [dict(r) for r in rows]
        if not self.write:
            return
        if self.rows:
            atomic_write(self.path, self._render(self.rows, header=True))
        else:
            self.path.unlink(missing_ok=True)

    def keep_rounds_before(self, round_idx: int) -> None:
        """Keep only the file's rows of rounds before ``round_idx`` (a resumed run redoes the later ones)."""
        rows: list[dict[str, Any]] = []
        if self.path.exists():
            with open(self.path, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["round"]) < round_idx]
        self.reset(rows)

    def stream(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if not self.write:
            return
        new = not self.path.exists()
        with open(self.path, "a") as fh:
            fh.write(self._render(rows, header=new))
            fh.flush()
            os.fsync(fh.fileno())


class WandbStartError(RuntimeError):
    """W&B could not start (online without a key or a network, ...): the run is marked failed."""


class WandbRun:
    """Thin wrapper: offline by default (no account needed), a no-op when ``wandb.mode=disabled``."""

    def __init__(
        self, cfg: Mapping[str, Any], run_dir: Path, config: dict[str, Any], name: str, run_id: str | None = None
    ) -> None:
        self.run = None
        self.mode = cfg["mode"]  # offline | online | disabled (checked by scyc.config.validate)
        self.where = "not logged (wandb.mode=disabled)"  # where the run's W&B record is, for the closing lines
        if self.mode == "disabled":
            return
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        try:
            self.run = wandb.init(
                project=cfg["project"],
                entity=cfg.get("entity"),
                group=cfg.get("group"),
                job_type=cfg.get("job_type"),
                tags=list(cfg.get("tags") or []),
                name=name,
                dir=str(run_dir),
                mode=self.mode,
                config=config,
                reinit="finish_previous",
                # a resumed run continues the same W&B run (online) or writes a new offline-run-* folder with
                # the same id, which `wandb sync` appends to the same run
                id=run_id,
                resume="allow" if run_id else None,
            )
        except Exception as exc:  # wandb raises its own error types, and others from its service
            raise WandbStartError(
                f"W&B could not start with wandb.mode={self.mode} ({type(exc).__name__}: {exc}); run with "
                "wandb.mode=offline (no account or network needed; upload later with `wandb sync`) or "
                "wandb.mode=disabled"
            ) from exc
        self.where = (f"wandb sync {run_dir / 'wandb'}/offline-run-*" if self.mode == "offline"
                      else f"online at {self.run.url}")  # fmt: skip
        self.run.define_metric("global_step")
        for prefix in ("step/*", "epoch/*"):
            self.run.define_metric(prefix, step_metric="global_step")
        self.run.define_metric("round/*", step_metric="round/index")

    def log(self, data: Mapping[str, Any]) -> None:
        if self.run is not None:
            self.run.log(dict(data))

    def define_metric(self, pattern: str, step_metric: str) -> None:
        if self.run is not None:
            self.run.define_metric(pattern, step_metric=step_metric)

    def log_histograms(self, data: Mapping[str, Any], histograms: Mapping[str, tuple[Any, Any]]) -> None:
        """Log ``data`` with ``histograms`` (key -> (counts, bin edges), as ``numpy.histogram`` returns)."""
        if self.run is not None:
            import wandb

            self.run.log({**data, **{k: wandb.Histogram(np_histogram=h) for k, h in histograms.items()}})

    def log_images(self, images: Mapping[str, str | os.PathLike]) -> None:
        """Log image files (PNG) under the given keys."""
        if self.run is not None and images:
            import wandb

            self.run.log({k: wandb.Image(str(p)) for k, p in images.items()})

    def log_files(self, run_dir: Path, paths: Sequence[Path], tables: Sequence[str]) -> None:
        """``paths`` (files under ``run_dir``) as one artifact ``run-<id>-files`` of type ``run-files`` (a resumed
        run adds a version), and the CSV ``tables`` among them also as W&B Tables (``tables/<name>``)."""
        if self.run is None or not paths:
            return
        import pandas as pd
        import wandb

        artifact = wandb.Artifact(f"run-{self.run.id}-files", type="run-files")
        for p in paths:
            artifact.add_file(str(p), name=str(Path(p).relative_to(run_dir)))
        self.run.log_artifact(artifact)
        self.run.log({f"tables/{t}": wandb.Table(dataframe=pd.read_csv(run_dir / f"{t}.csv")) for t in tables})

    def summary(self, data: Mapping[str, Any]) -> None:
        if self.run is not None:
            self.run.summary.update(dict(data))

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None


def truncate_rows(path: Path, rows: int) -> None:
    """Keep the header and the first ``rows`` data lines of a streamed CSV (drops a torn last line)."""
    if not path.exists():
        if rows:
            log.warning("%s is missing; the per-step trace restarts at step %d", path, rows)
        return
    with open(path) as fh:
        lines = fh.readlines()
    keep = lines[: 1 + rows]
    if keep and not keep[-1].endswith("\n"):
        keep.pop()
    if len(keep) < 1 + rows:
        log.warning("%s holds %d of the checkpoint's %d steps", path, max(0, len(keep) - 1), rows)
    if len(keep) != len(lines):
        atomic_write(path, "".join(keep))


class RunOutputs:
    """results.csv, epochs.csv, lr_trace.csv, summary.json and W&B of one run (rank 0 writes)."""

    def __init__(self, run_dir: Path, is_main: bool = True) -> None:
        self.run_dir, self.is_main = Path(run_dir), is_main
        self.fresh = False  # a run started afresh: every file it writes begins empty (start)
        if is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.results = self.table("results.csv", RESULT_COLUMNS)
        self.epochs = self.table("epochs.csv", EPOCH_COLUMNS)
        self.lr = self.table("lr_trace.csv", LR_COLUMNS)
        self.summary: dict[str, Any] = {}
        self.wandb = WandbRun({"mode": "disabled"}, self.run_dir, {}, name="")
        self.log_every_steps = 50
        self.added: list[str] = []  # results.csv's columns that callbacks added (add_round_column)
        self._open: RoundResult | None = None  # the round whose row is written, not yet final (update_round)

    def table(self, name: str, columns: Sequence[str]) -> CsvTable:
        """A CSV of the run; on a fresh start, emptied of what a killed earlier attempt wrote."""
        table = CsvTable(self.run_dir / name, columns, write=self.is_main)
        if self.fresh:
            table.reset([])
        return table

    def file(self, name: str) -> Path:
        """A file of the run that is rewritten whole (e.g. an .npz); on a fresh start, a killed attempt's is removed."""
        path = self.run_dir / name
        if self.fresh and self.is_main:
            path.unlink(missing_ok=True)
        return path

    def write_summary(self, **updates: Any) -> None:
        """Update summary.json. How the run ended (any status but ``running``) is written even on a full disk:
        in place, in the file's own blocks, when the atomic write finds no space."""
        self.summary.update(updates)
        if not self.is_main:
            return
        path = self.run_dir / "summary.json"
        try:
            atomic_write_json(path, self.summary)
        except NoSpaceLeft as full:
            if self.summary.get("status") == "running" or not path.is_file():
                raise
            try:
                overwrite_in_place(path, json.dumps(self.summary, indent=2, sort_keys=True, default=str) + "\n")
            except OSError:
                raise full from None

    def start(self, summary: dict[str, Any], resume: tuple[dict[str, Any], Path] | None) -> str | None:
        """At run start: the summary with provenance; every table emptied (a fresh run: whatever a run killed
        before its first checkpoint left, also in the tables callbacks open later) or cut back to the
        checkpoint's rows (resume). Returns the W&B run id to continue (None for a new W&B run)."""
        self.summary = dict(summary, pid=os.getpid(), host=socket.gethostname(),
                            started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))  # fmt: skip
        if not self.is_main:
            return None
        if resume is None:
            self.fresh = True
            for table in (self.results, self.epochs, self.lr):
                table.reset([])
            return None
        ckpt, path = resume
        rows = [RoundResult(**r).row() for r in ckpt["state"]["results"]]
        for name in dict.fromkeys(k for row in rows for k in row if k not in self.results.columns):
            self.results.add_column(name)  # a callback's column, kept with the checkpoint's rows
        self.results.reset(rows)
        self.epochs.reset(ckpt["state"]["epochs"])
        truncate_rows(self.lr.path, int(ckpt["state"]["global_step"]))
        try:
            previous = json.loads((self.run_dir / "summary.json").read_text())
        except (OSError, ValueError):
            previous = {}
        pos = ckpt["position"]
        self.summary["resumes"] = list(previous.get("resumes") or []) + [
            {"checkpoint": path.name, "round": pos["round"], "epochs_done": pos["epoch"],
             "step": int(ckpt["state"]["global_step"]), "at": self.summary["started_at"],
             "previous_status": previous.get("status")}
        ]  # fmt: skip
        return ckpt.get("wandb_id")

    def open_wandb(self, settings: dict[str, Any], config: dict[str, Any], run_id: str | None) -> None:
        settings = settings if self.is_main else {**settings, "mode": "disabled"}
        self.log_every_steps = max(1, int(settings.get("log_every_steps", 50)))
        self.wandb = WandbRun(settings, self.run_dir, config, name=self.run_dir.name, run_id=run_id)
        self.summary["wandb_id"] = self.wandb.run.id if self.wandb.run is not None else None

    def finish(self) -> list[str]:
        """At the end of a complete run: its files to W&B (``WandbRun.log_files``), W&B closed; returns the
        closing lines that say where the results are."""
        files = [p for p in sorted(self.run_dir.glob("*.csv")) + sorted(self.run_dir.glob("*.npz"))
                 + sorted(self.run_dir.glob("figures/*.png")) if p.is_file()]  # fmt: skip
        tables = [t for t in ("results", "layer_sparsity") if (self.run_dir / f"{t}.csv").exists()]
        self.wandb.log_files(self.run_dir, files, tables)
        where = self.wandb.where
        self.wandb.finish()
        figures = [p.name for p in files if p.suffix == ".png"]
        return [
            f"results in {self.run_dir}: results.csv (a row per round), epochs.csv, summary.json, train.log",
            f"figures: {self.run_dir / 'figures'} ({', '.join(figures)})" if figures else
            "figures: none (analysis.figures=false; scripts/analyze_gradients.py draws them from the run's files)",
            f"W&B: {where}",
        ]  # fmt: skip

    def epoch(self, record: EpochRecord, first_step: int) -> None:
        """One epoch: its steps to lr_trace.csv, its row to epochs.csv, both to W&B."""
        lrs = record.lrs
        self.lr.stream([
            {"round": record.round, "epoch": record.epoch, "step": first_step + i, "lr": lr}
            for i, lr in enumerate(lrs)
        ])  # fmt: skip
        row = record.row()
        self.epochs.append(row)
        for i in range(0, len(lrs), self.log_every_steps):
            self.wandb.log({"global_step": first_step + i, "step/lr": lrs[i]})
        self.wandb.log({"global_step": first_step + len(lrs), **{f"epoch/{k}": v for k, v in row.items()}})

    def add_round_column(self, name: str) -> None:
        """A column of results.csv for a callback's own per-round value, after RoundResult's columns (added in
        ``on_run_start``, filled with ``set_round_value``). A resumed run keeps it with the checkpoint's rows."""
        if name in RESULT_COLUMNS or name in self.added:
            raise ValueError(f"results.csv already has a column {name!r}")
        self.added.append(name)
        if name not in self.results.columns:  # on resume the checkpoint's rows may hold it already
            self.results.add_column(name)

    def set_round_value(self, name: str, value: Any) -> None:
        """The value of the added column ``name`` in the row of the round just recorded: called in
        ``on_round_end``, the one hook every recorded round runs (a resumed one too), after which the row is
        written final and checkpointed. A value measured earlier in the round is kept by its callback until
        then (with its ``state_dict`` if a resume inside the round must keep it). NaN where none is set."""
        if name not in self.added:
            raise ValueError(f"results.csv has no column {name!r} of a callback: add it with add_round_column first")
        if self._open is None:
            raise ValueError(f"set_round_value({name!r}) outside on_round_end: no round's row is open")
        self._open.added[name] = value

    def round(self, result: RoundResult) -> None:
        """The round's row to results.csv and W&B; the callbacks' columns are filled in ``on_round_end`` and
        written, with ``other_seconds``, by ``update_round``."""
        result.added = dict.fromkeys(self.added, math.nan)
        self._open = result
        row = result.row()
        self.results.append(row)  # other_seconds follows with update_round
        skip = ("round", "other_seconds", *self.added)
        self.wandb.log({"round/index": result.round, **{f"round/{k}": v for k, v in row.items() if k not in skip}})

    def update_round(self, result: RoundResult) -> None:
        """The round's row again, final: its rest (``other_seconds``: measurement, checkpoint) and the values
        callbacks set in ``on_round_end`` are known."""
        self.results.update_last(result.row())
        self._open = None
        added = {f"round/{k}": v for k, v in result.added.items()}
        self.wandb.log({"round/index": result.round, "round/other_seconds": result.other_seconds, **added})


def provenance() -> dict[str, Any]:
    """Versions and the command line, for summary.json."""
    from scyc.lifecycle import rundir

    return {
        "versions": {"scyc": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "command": rundir.command(),
    }
