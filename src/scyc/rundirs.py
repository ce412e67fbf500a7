"""Reading run directories: the one reader behind the sweep tables (``scyc.tables``) and the figures
(``scyc.analysis.figures``, ``scripts/analyze_gradients.py``).

A run directory is what ``train.py`` leaves: ``.hydra/{overrides,config}.yaml`` (Hydra), ``summary.json``,
``results.csv``, ``lr_trace.csv`` and, with the gradient analysis, ``grad_stats.csv`` / ``grad_hist.npz``.
Each file is read on first access; an absent (or empty) file reads as None (``{}`` for the ``.hydra`` files);
an unreadable one raises, so that each caller decides what a broken run means to it.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["schedule=scyc", "+experiment=x", "seed=1"]`` -> ``{"schedule": "scyc", "experiment": "x", "seed": "1"}``."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if sep:
            out[key.lstrip("+~")] = value
    return out


class RunDir:
    """The saved files of one run, each read when first asked for."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _file(self, name: str) -> Path | None:
        p = self.path / name
        return p if p.exists() and p.stat().st_size > 0 else None

    def _yaml(self, name: str) -> Any:
        p = self._file(f".hydra/{name}")
        return yaml.safe_load(p.read_text()) if p is not None else None

    def _csv(self, name: str) -> pd.DataFrame | None:
        p = self._file(name)
        return pd.read_csv(p) if p is not None else None

    @cached_property
    def overrides(self) -> dict[str, str]:
        """Hydra's command-line overrides of the run, ``key -> value`` (``+``/``~`` prefixes dropped)."""
        return parse_overrides(self._yaml("overrides.yaml") or [])

    @cached_property
    def config(self) -> dict[str, Any]:
        return self._yaml("config.yaml") or {}

    @cached_property
    def summary(self) -> dict[str, Any] | None:
        p = self.path / "summary.json"
        return json.loads(p.read_text()) if p.exists() else None

    @cached_property
    def results(self) -> pd.DataFrame | None:
        return self._csv("results.csv")

    @cached_property
    def lr(self) -> pd.DataFrame | None:
        return self._csv("lr_trace.csv")

    @cached_property
    def grad_stats(self) -> pd.DataFrame | None:
        return self._csv("grad_stats.csv")

    @cached_property
    def hist(self) -> dict[str, np.ndarray] | None:
        p = self._file("grad_hist.npz")
        if p is None:
            return None
        with np.load(p) as z:
            return {k: z[k] for k in z.files}


def find_run_dirs(sweep_dir: str | Path) -> list[Path]:
    """Every run under ``sweep_dir``: folders holding ``.hydra/``, ``summary.json`` or ``results.csv`` (a run
    that failed before writing anything still has Hydra's ``.hydra/``). Hidden folders (``.submitit``) and
    W&B folders are skipped; so is anything nested inside a run. Natural order (``run2`` before ``run10``)."""
    sweep_dir = Path(sweep_dir)
    found: set[Path] = set()
    for pattern in ("summary.json", "results.csv", ".hydra/overrides.yaml", ".hydra/config.yaml"):
        for p in sweep_dir.rglob(pattern):
            run = p.parent.parent if p.parent.name == ".hydra" else p.parent
            if not any(part.startswith(".") or part == "wandb" for part in run.relative_to(sweep_dir).parts):
                found.add(run)
    runs = sorted(found, key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(p))])
    return [r for r in runs if not any(other != r and other in r.parents for other in runs)]
