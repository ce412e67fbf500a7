"""A table's per-seed data: its long CSV (docs/results/<name>_runs.csv, one line per run and round, written by
make_table.py beside the table), rebuilt into the table by scyc.sweep.tables. For what needs the seeds and the tidy
table.csv cannot give: the primary endpoint (S-Cyc minus each named row, paired, Holm-adjusted) and paired
intervals against a NAMED row at each level."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from scyc.claims.errors import ClaimsError
from scyc.claims.table import ALL, DEEP_FROM, Window
from scyc.sweep import tables
from scyc.sweep.stats import paired_interval


class Runs:
    def __init__(self, table: tables.Table, name: str):
        self.table = table
        self.name = name
        self._rows = {table.label(row): row for row in table.rows}

    @classmethod
    def read(cls, path: Path, select: str = "best_val") -> Runs:
        try:
            runs = tables.runs_from_long(path, select)
        except FileNotFoundError as e:
            raise ClaimsError(str(e)) from None
        return cls(tables.aggregate(runs, select=select, sweep_dir=path.parent), path.stem.removesuffix("_runs"))

    def row(self, label: str) -> tuple:
        if label not in self._rows:
            raise ClaimsError(f"runs of {self.name}: no row {label!r}; rows: {', '.join(self._rows)}")
        return self._rows[label]

    def endpoints(self, min_sparsity: float = DEEP_FROM, comparisons: Sequence[str] | None = None) -> tables.Endpoints:
        """The primary endpoint as make_table.py --endpoint computes it (scyc.sweep.tables.primary_endpoints)."""
        return tables.primary_endpoints(self.table, min_sparsity, comparisons)

    def paired(self, a: str, b: str, window: Window = ALL) -> pd.DataFrame:
        """Row a minus row b at each level of the window, paired over the seeds both ran (95 % t-interval):
        sparsity, mean, ci_low, ci_high, p, n."""
        ra, rb = self.row(a), self.row(b)
        out = []
        for s in self.table.columns:
            if s not in window or (*ra, s) not in self.table.cells.index or (*rb, s) not in self.table.cells.index:
                continue
            ca, cb = self.table.cells.loc[(*ra, s)], self.table.cells.loc[(*rb, s)]
            va, vb = dict(zip(ca["seeds"], ca["values"])), dict(zip(cb["seeds"], cb["values"]))
            seeds = sorted(set(va) & set(vb))
            d = paired_interval([va[x] for x in seeds], [vb[x] for x in seeds], tables.LEVEL)
            out.append(
                {"sparsity": s, "mean": d.estimate, "ci_low": d.low, "ci_high": d.high, "p": d.p, "n": len(seeds)}
            )
        return pd.DataFrame(out, columns=["sparsity", "mean", "ci_low", "ci_high", "p", "n"])
