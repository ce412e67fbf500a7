"""The committed data the pages quote (docs/results/*.csv, docs/tuning/*.csv), loaded once, and the record of
every number a section puts on a page: a section writes each number through ``Data``'s methods, which give the
page's text and remember it under the block's name, so ``scripts/claims.py`` can print them all."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from scyc.claims import fmt
from scyc.claims.errors import ClaimsError
from scyc.claims.runs import Runs
from scyc.claims.table import Table

NUMBER = re.compile(r"(?<![\w.\-/])[−+]?\d+(?:,\d{3})*(?:\.\d+)?(?: ?%)?")  # a number as a page writes it
RESULTS = Path("docs/results")
TUNING = Path("docs/tuning")


class Data:
    def __init__(self, root: Path):
        self.root = Path(root)
        self._tables: dict[str, Table] = {}
        self._runs: dict[tuple[str, str], Runs] = {}
        self.quoted: dict[str, list[tuple[str, str, str]]] = {}  # block -> [(name, text, note)]
        self._block = ""

    # --- loading --------------------------------------------------------------------------------------
    def table(self, name: str) -> Table:
        """docs/results/<name>.csv, the tidy table make_table.py writes."""
        if name not in self._tables:
            path = self.root / RESULTS / f"{name}.csv"
            if not path.is_file():
                raise ClaimsError(f"table {name}: no file {RESULTS / (name + '.csv')} under {self.root}")
            self._tables[name] = Table.read(path)
        return self._tables[name]

    def long(self, name: str) -> pd.DataFrame:
        """docs/results/<name>_runs.csv as committed: the long CSV of every run's rows (one line per run and
        round), for sections that work on the frame themselves (scyc.claims.main_table)."""
        path = self.root / RESULTS / f"{name}_runs.csv"
        if not path.is_file():
            raise ClaimsError(f"runs of {name}: no file {RESULTS / (name + '_runs.csv')} under {self.root}")
        return pd.read_csv(path, dtype={"run": str, "schedule": str})

    def runs(self, name: str, select: str = "best_val") -> Runs:
        """docs/results/<name>_runs.csv, the long CSV of every run's rows (per seed: the primary endpoint, paired
        intervals against a named row); ``select``: best_val or end, as the table's."""
        if (name, select) not in self._runs:
            path = self.root / RESULTS / f"{name}_runs.csv"
            if not path.is_file():
                raise ClaimsError(f"runs of {name}: no file {RESULTS / (name + '_runs.csv')} under {self.root}")
            self._runs[(name, select)] = Runs.read(path, select)
        return self._runs[(name, select)]

    def tuning(self, name: str) -> pd.DataFrame:
        """docs/tuning/<name>.csv as it is committed."""
        path = self.root / TUNING / f"{name}.csv"
        if not path.is_file():
            raise ClaimsError(f"tuning {name}: no file {TUNING / (name + '.csv')} under {self.root}")
        return pd.read_csv(path)

    # --- quoting: every number on a page goes through one of these ------------------------------------
    def render(self, block: str, section) -> str:
        """The block's text: what ``section(self)`` returns, with the numbers it quoted recorded under ``block``."""
        self._block = block
        self.quoted[block] = []
        try:
            text = section(self).strip("\n")
        finally:
            self._block = ""
        if not self.quoted[block]:  # a section that wrote its numbers itself: list them as the page has them
            self.quoted[block] = [(f"number{i + 1}", m, "") for i, m in enumerate(NUMBER.findall(text))]
        return text

    def text(self, name: str, text: str, value: float | int | None = None, note: str = "") -> str:
        """Record ``text`` (a number as the page writes it) under ``name``; returns it. ``value``: the unrounded
        number, printed beside it when it says more."""
        if value is not None and str(value) != text:
            note = f"{value:.6g}" + (f"; {note}" if note else "")
        self.quoted.setdefault(self._block, []).append((name, text, note))
        return text

    def signed(self, name: str, x: float) -> str:
        return self.text(name, fmt.signed(x), x)

    def num(self, name: str, x: float, decimals: int = 2) -> str:
        return self.text(name, fmt.num(x, decimals), x)

    def count(self, name: str, n: int) -> str:
        return self.text(name, str(int(n)))

    def level(self, name: str, s: float) -> str:
        return self.text(name, fmt.level(s), s)

    def interval(self, name: str, lo: float, hi: float) -> str:
        return self.text(name, fmt.interval(lo, hi), None, f"{lo:.6g}, {hi:.6g}")

    def span(self, name: str, lo: float, hi: float, decimals: int = 2) -> str:
        """``−0.26 to +0.32``."""
        return self.text(name, fmt.span(lo, hi, decimals), None, f"{lo:.6g}, {hi:.6g}")

    def dash(self, name: str, lo: float, hi: float, decimals: int = 1) -> str:
        """``8.4–9.5``."""
        return self.text(name, fmt.dash_span(lo, hi, decimals), None, f"{lo:.6g}, {hi:.6g}")

    def recorded(self, name: str, text: str) -> str:
        """A number that is not in the committed data (a sweep's wall time, its date): kept in the section's
        template as recorded when the sweep ran, and printed as such."""
        return self.text(name, text, None, "recorded when the sweep ran; not in the committed data")

    def lines(self) -> list[str]:
        """Every quoted number, one ``name = value`` line each, grouped by block."""
        out: list[str] = []
        for block, items in self.quoted.items():
            out.append(f"[{block}]")
            out += [f"{block}.{name} = {text}" + (f"  ({note})" if note else "") for name, text, note in items]
        return out
