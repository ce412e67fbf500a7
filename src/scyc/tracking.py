"""What a run writes: CSV tables, summary.json, checkpoints, and the W&B run (offline by default)."""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scyc.utils import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)


class CsvTable:
    """A CSV file with a fixed header. ``append`` rewrites the file atomically (small tables: results);
    ``stream`` appends in place (large tables such as the per-step LR trace)."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path, self.columns = Path(path), list(columns)
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
        atomic_write_text(self.path, self._render(self.rows, header=True))

    def reset(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Replace the table's rows (e.g. with a checkpoint's on resume); no rows removes the file."""
        self.rows = [dict(r) for r in rows]
        if self.rows:
            atomic_write_text(self.path, self._render(self.rows, header=True))
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
        new = not self.path.exists()
        with open(self.path, "a") as fh:
            fh.write(self._render(rows, header=new))
            fh.flush()
            os.fsync(fh.fileno())


class WandbRun:
    """Thin wrapper: offline by default (no account needed), a no-op when ``wandb.mode=disabled``."""

    def __init__(
        self, cfg: Mapping[str, Any], run_dir: Path, config: dict[str, Any], name: str, run_id: str | None = None
    ) -> None:
        self.run = None
        self.mode = cfg["mode"]
        if self.mode not in ("offline", "online", "disabled"):
            from scyc.registry import ConfigError

            raise ConfigError(f"wandb.mode={self.mode} is not allowed; use offline, online or disabled")
        if self.mode == "disabled":
            return
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(
            project=cfg["project"],
            entity=cfg.get("entity"),
            group=cfg.get("group"),
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

    def summary(self, data: Mapping[str, Any]) -> None:
        if self.run is not None:
            self.run.summary.update(dict(data))

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None


def write_summary(path: Path, summary: Mapping[str, Any]) -> None:
    atomic_write_json(path, dict(summary))
