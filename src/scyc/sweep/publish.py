"""Publishing a sweep's table into docs/results/ (``make publish TABLE=<name>``): a deliberate step, never a side
effect of a sweep. It copies the tables, figures and long CSV that ``make reproduce-table`` left in
``outputs/tables/<name>/`` to ``docs/results/<name>*``, and refuses, in one line and before copying anything, a
table whose rows, seeds per row or sparsity levels differ from the committed one (``--force`` publishes anyway).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

# what is published: file of the sweep dir -> suffix of the published name
FILES = {
    "table.md": ".md",
    "table.csv": ".csv",
    "accuracy_vs_sparsity.png": ".png",
    "margins.png": "_margins.png",
    "runs.csv": "_runs.csv",
    "runs.json": "_runs.json",
    "end/table.md": "_end.md",
    "end/table.csv": "_end.csv",
    "end/accuracy_vs_sparsity.png": "_end.png",
}
REQUIRED = ("table.md", "table.csv", "runs.csv", "runs.json")


class PublishError(Exception):
    """A table that is not published: the message says why and what to do."""


def shape(table_csv: Path) -> dict[str, tuple[int, int]]:
    """Per row of a table.csv: (seeds, sparsity levels): what a published table must keep."""
    frame = pd.read_csv(table_csv)
    rows = frame[frame["kind"] == "schedule"]
    return {str(label): (int(g["n"].max()), int(g["sparsity"].nunique())) for label, g in rows.groupby("label")}


def _describe(s: dict[str, tuple[int, int]]) -> str:
    return "; ".join(f"{label}: {n} seed(s) x {levels} level(s)" for label, (n, levels) in sorted(s.items()))


def publish(sweep_dir: str | Path, dest: str | Path, force: bool = False) -> list[Path]:
    """Copy ``sweep_dir``'s table files to ``<dest><suffix>`` (``dest`` = docs/results/<name>); returns the
    written paths. Raises ``PublishError`` (nothing copied) when a required file is missing or, unless ``force``,
    when the committed table has other rows, seeds or levels."""
    sweep_dir, dest = Path(sweep_dir), Path(dest)
    missing = [f for f in REQUIRED if not (sweep_dir / f).is_file()]
    if missing:
        raise PublishError(f"{sweep_dir}: no table to publish (missing {', '.join(missing)}); run make "
                           "reproduce-table first")  # fmt: skip
    committed = dest.with_name(dest.name + ".csv")
    if committed.is_file() and not force:
        old, new = shape(committed), shape(sweep_dir / "table.csv")
        if old != new:
            raise PublishError(f"refusing to replace {committed} ({_describe(old)}) with {sweep_dir}'s table "
                               f"({_describe(new)}): rows, seeds or levels differ; FORCE=1 (--force) publishes "
                               "it anyway")  # fmt: skip
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for name, suffix in FILES.items():
        if (sweep_dir / name).is_file():
            target = dest.with_name(dest.name + suffix)
            shutil.copyfile(sweep_dir / name, target)
            written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="publish_table.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="outputs/tables/<name> (what make reproduce-table wrote)")
    parser.add_argument("dest", type=Path, help="docs/results/<name>: the published files' common stem")
    parser.add_argument("--force", action="store_true", help="publish although rows, seeds or levels differ")
    args = parser.parse_args(argv)
    try:
        written = publish(args.sweep_dir, args.dest, args.force)
    except PublishError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"published {len(written)} file(s): " + ", ".join(str(p) for p in written))
    return 0
