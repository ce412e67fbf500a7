"""Reading run directories: the one reader behind the sweep tables (``scyc.sweep.tables``) and the figures
(``scyc.analysis.figures``, ``scripts/analyze_gradients.py``).

A run directory is what ``train.py`` leaves: ``.hydra/{overrides,config}.yaml`` (Hydra), ``summary.json``,
``results.csv``, ``lr_trace.csv`` and, with the gradient analysis, ``grad_stats.csv`` / ``grad_hist.npz``.
Each file is read on first access; an absent file reads as None (``{}`` for the ``.hydra`` files, and an empty
table file as None too); an unreadable one raises, so that each caller decides what a broken run means to it.
"""

from __future__ import annotations

import json
import os
import re
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

SURVIVING = "surviving"  # gradient population of runs written before there were three (grad_stats, grad_hist)


class RunDir:
    """The saved files of one run, each read when first asked for."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def _read(self, name: str, reader, allow_empty: bool = True):
        p = self.path / name
        return reader(p) if p.exists() and (allow_empty or p.stat().st_size > 0) else None

    def _table(self, name: str) -> pd.DataFrame | None:
        return self._read(name, pd.read_csv, allow_empty=False)

    @cached_property
    def overrides(self) -> dict[str, str]:
        """Hydra's command-line overrides: ``["+experiment=x", "seed=1"]`` -> ``{"experiment": "x", "seed": "1"}``."""
        items = self._read(".hydra/overrides.yaml", lambda p: yaml.safe_load(p.read_text())) or []
        return {k.lstrip("+~"): v for k, sep, v in (str(i).partition("=") for i in items) if sep}

    @cached_property
    def config(self) -> dict[str, Any]:
        return self._read(".hydra/config.yaml", lambda p: yaml.safe_load(p.read_text())) or {}

    @cached_property
    def summary(self) -> dict[str, Any] | None:
        return self._read("summary.json", lambda p: json.loads(p.read_text()))

    results = cached_property(lambda self: self._table("results.csv"))
    lr = cached_property(lambda self: self._table("lr_trace.csv"))
    oracle = cached_property(lambda self: self._table("oracle.csv"))

    @cached_property
    def grad_stats(self) -> pd.DataFrame | None:
        stats = self._table("grad_stats.csv")
        if stats is not None and "population" not in stats:
            stats.insert(2, "population", SURVIVING)
        return stats

    @cached_property
    def hist(self) -> dict[str, np.ndarray] | None:
        def load(p: Path) -> dict[str, np.ndarray]:
            with np.load(p) as z:
                hist = {k: z[k] for k in z.files}
            hist.setdefault("population", np.array([SURVIVING] * len(hist["layers"])))
            return hist

        return self._read("grad_hist.npz", load, allow_empty=False)


def find_run_dirs(sweep_dir: str | Path) -> list[Path]:
    """Every run under ``sweep_dir``: folders holding ``.hydra/``, ``summary.json`` or ``results.csv`` (a run
    that failed before writing anything still has Hydra's ``.hydra/``), symlinked run folders followed. Hidden
    folders (``.submitit``) and W&B folders are skipped; so is anything nested inside a run. Natural order
    (``run2`` before ``run10``)."""
    sweep_dir = Path(sweep_dir)
    found: list[Path] = []
    for root, dirs, files in os.walk(sweep_dir, followlinks=True):
        if ".hydra" in dirs or {"summary.json", "results.csv"} & set(files):
            found.append(Path(root))
            dirs.clear()  # nothing nested inside a run is a run
        else:
            dirs[:] = [d for d in dirs if not d.startswith(".") and d != "wandb"]
    return sorted(found, key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(p))])
