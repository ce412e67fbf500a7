"""One committed table CSV (the tidy format scyc.sweep.tables writes: ``kind`` schedule|margin, ``label``, ``sparsity``,
``mean``, ``best``, ``vs``, ``ci_low``, ``ci_high``, ...; accuracies in percent) and the questions the claims page
asks of it. Every helper takes a sparsity ``Window`` so a paragraph can say "up to 98.2 %" or "from 98.56 % on"
and be computed over exactly those levels."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from scipy import stats

from scyc.claims.errors import ClaimsError

COLUMNS = ("kind", "label", "schedule", "sparsity", "mean", "best", "vs", "ci_low", "ci_high")


@dataclass(frozen=True)
class Window:
    """The sparsity levels ``lo <= s < hi``."""

    lo: float = 0.0
    hi: float = math.inf

    def __contains__(self, s: float) -> bool:
        return self.lo <= s < self.hi


ALL = Window()
DEEP_FROM = 0.985  # the primary endpoint's levels (issue 23): from 98.56 % on
SHALLOW = Window(hi=DEEP_FROM)  # up to 98.2 %, where accuracy is within about a point of its best
DEEP = Window(lo=DEEP_FROM)


def _inside(frame: pd.DataFrame, window: Window) -> pd.Series:
    return frame["sparsity"].map(lambda s: s in window).astype(bool)


class Table:
    """A committed table: ``Table.read(path)``; ``name`` is the file's stem (``fashion_mnist_lenet5``)."""

    def __init__(self, name: str, frame: pd.DataFrame):
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            raise ClaimsError(f"table {name}: no column(s) {', '.join(missing)}; expected the tidy table.csv format")
        self.name = name
        frame = frame.copy()
        frame["sparsity"] = frame["sparsity"].astype(float).round(4)
        self.cells = frame[frame["kind"] == "schedule"].copy()
        self.cells["best"] = self.cells["best"].map(lambda v: str(v).strip().lower() == "true")
        self.margins = frame[frame["kind"] == "margin"].copy()

    @classmethod
    def read(cls, path: Path) -> Table:
        try:
            frame = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise ClaimsError(f"table {path}: cannot read it ({e})") from None
        return cls(path.stem, frame)

    # --- the rows -------------------------------------------------------------------------------------
    def labels(self) -> list[str]:
        return list(dict.fromkeys(self.cells["label"]))

    def levels(self, window: Window = ALL) -> list[float]:
        return sorted(s for s in self.cells["sparsity"].unique() if s in window)

    def deepest(self) -> float:
        return self.levels()[-1]

    def means(self, label: str, window: Window = ALL) -> pd.Series:
        """The row's mean per sparsity level (index: sparsity), over the window."""
        rows = self.cells[self.cells["label"] == label]
        if rows.empty:
            raise ClaimsError(f"table {self.name}: no row {label!r}; rows: {', '.join(self.labels())}")
        series = rows.set_index("sparsity")["mean"].astype(float).sort_index()
        return series[[s in window for s in series.index]]

    def mean(self, label: str, s: float) -> float:
        return float(self.means(label).loc[round(s, 4)])

    def loss_from_best(self, label: str) -> float:
        """Points the row loses from its best level to the deepest one."""
        m = self.means(label)
        return float(m.max() - m.iloc[-1])

    # --- best means -----------------------------------------------------------------------------------
    def best_counts(self, window: Window = ALL) -> dict[str, int]:
        """Per row, the number of levels where its mean is the best (the CSV's ``best`` column; the oracle is never
        marked). Tied rows are all marked, so each tied row counts: the counts may add up to more than the
        number of levels (``tied_levels`` says by how many)."""
        cells = self.cells[_inside(self.cells, window)]
        counts = cells[cells["best"]].groupby("label").size()
        return {label: int(counts.get(label, 0)) for label in self.labels()}

    def tied_levels(self, window: Window = ALL) -> list[float]:
        """The levels where more than one row holds the best mean."""
        cells = self.cells[self.cells["best"] & _inside(self.cells, window)]
        per_level = cells.groupby("sparsity").size()
        return sorted(float(s) for s, n in per_level.items() if n > 1)

    # --- the margin row (S-Cyc minus the best benchmark per level) ------------------------------------
    def margin_labels(self) -> list[str]:
        return list(dict.fromkeys(self.margins["label"]))

    def margin(self, window: Window = ALL, label: str | None = None) -> pd.DataFrame:
        """The margin row over the window, one line per level: sparsity, mean, vs (the benchmark it is taken
        against), ci_low, ci_high; sorted by sparsity. ``label`` picks a margin row when the table has several."""
        labels = self.margin_labels()
        if label is None:
            if len(labels) != 1:
                raise ClaimsError(f"table {self.name}: {len(labels)} margin rows ({'; '.join(labels)}): name one")
            label = labels[0]
        rows = self.margins[self.margins["label"] == label]
        if rows.empty:
            raise ClaimsError(f"table {self.name}: no margin row {label!r}; margin rows: {'; '.join(labels)}")
        rows = rows[_inside(rows, window)]
        return rows[["sparsity", "mean", "vs", "ci_low", "ci_high"]].sort_values("sparsity").reset_index(drop=True)

    def excluding_zero(self, window: Window = ALL, label: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The margin's levels whose interval excludes 0: (those in S-Cyc's favour, those in the benchmark's)."""
        m = self.margin(window, label)
        return m[m["ci_low"] > 0].reset_index(drop=True), m[m["ci_high"] < 0].reset_index(drop=True)

    def benchmark_counts(self, window: Window = ALL, label: str | None = None) -> dict[str, int]:
        """How often each benchmark is the one the margin is taken against (the best benchmark per level)."""
        return self.margin(window, label)["vs"].value_counts().to_dict()

    # --- a named comparison ---------------------------------------------------------------------------
    def difference(self, a: str, b: str, window: Window = ALL) -> pd.Series:
        """Row a's mean minus row b's, per level (points; a NAMED comparison, not the best benchmark)."""
        return (self.means(a, window) - self.means(b, window)).dropna()

    def welch(self, a: str, b: str, window: Window = ALL, level: float = 0.95) -> pd.DataFrame:
        """Row a minus row b per level with Welch's t-interval from the committed means, standard deviations and
        n (unpaired, so wider than the paired interval the per-seed values would give): sparsity, mean, ci_low,
        ci_high."""
        rows = []
        for s in self.levels(window):
            ca, cb = (self.cells[(self.cells["label"] == x) & (self.cells["sparsity"] == s)].iloc[0] for x in (a, b))
            va, vb = ca["std"] ** 2 / ca["n"], cb["std"] ** 2 / cb["n"]
            se = math.sqrt(va + vb)
            df = (va + vb) ** 2 / (va**2 / (ca["n"] - 1) + vb**2 / (cb["n"] - 1)) if se > 0 else math.inf
            half = float(stats.t.ppf(0.5 + level / 2, df)) * se if se > 0 else 0.0
            est = float(ca["mean"] - cb["mean"])
            rows.append({"sparsity": s, "mean": est, "ci_low": est - half, "ci_high": est + half})
        return pd.DataFrame(rows, columns=["sparsity", "mean", "ci_low", "ci_high"])

    def max_std(self, window: Window = ALL) -> float:
        """The largest seed standard deviation of any row over the window (points)."""
        return float(self.cells[_inside(self.cells, window)]["std"].max())

    def runs(self) -> int:
        """Runs behind the table: per row, its largest n, summed."""
        return int(self.cells.groupby("label")["n"].max().sum())

    def seeds(self) -> list[str]:
        """The seeds every row ran (the CSV's ``seeds``: space-separated), in order."""
        found = {str(s) for cell in self.cells["seeds"].dropna() for s in str(cell).split()}
        return sorted(found, key=lambda s: (len(s), s))


def compare_selects(best_val: Table, end: Table) -> tuple[float, list[float], list[float]]:
    """The same sweep's two tables (``best_val`` and ``end``): the largest difference between their margins
    (points), and the levels whose interval excludes 0 in only one of them: (only in best_val, only in end)."""
    a, b = best_val.margin().set_index("sparsity"), end.margin().set_index("sparsity")
    diff = float((a["mean"] - b["mean"]).abs().max())

    def excluding(m: pd.DataFrame) -> set[float]:
        return set(m.index[(m["ci_low"] > 0) | (m["ci_high"] < 0)])

    ea, eb = excluding(a), excluding(b)
    return diff, sorted(ea - eb), sorted(eb - ea)
