"""``python scripts/claims.py``: print every number the pages quote and check the pages' generated blocks.

Exit 0: every block matches its section; 1: some differ (one line each, on stderr); 2: pages or data the script
cannot check (a block unknown to the script, a section missing from the pages, a malformed marker, a missing
table), one line. ``--write`` rewrites the blocks that differ (nothing is written when exit would be 2)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from scyc.claims.blocks import read_blocks, rewrite
from scyc.claims.data import Data
from scyc.claims.errors import ClaimsError
from scyc.claims.sections import SECTIONS

PAGES = ("docs/claims.md", "README.md", "docs/gradients.md", "docs/beyond.md")


def _show(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def check(pages: Sequence[Path], root: Path, write: bool = False) -> int:
    out, err = sys.stdout, sys.stderr
    try:
        blocks = {page: read_blocks(page) for page in pages}
        named = {b.name for found in blocks.values() for b in found}
        unknown, missing = sorted(named - SECTIONS.keys()), sorted(SECTIONS.keys() - named)
        if unknown or missing:
            problems = []
            if unknown:
                problems.append(f"block(s) unknown to the script: {', '.join(unknown)}")
            if missing:
                problems.append(f"section(s) missing from the pages: {', '.join(missing)}")
            where = ", ".join(_show(p) for p in pages)
            raise ClaimsError(f"{'; '.join(problems)} (pages: {where}; sections: scyc.claims.sections.SECTIONS)")
        data = Data(root)
        texts = {name: data.render(name, section) for name, section in SECTIONS.items()}
    except ClaimsError as e:
        print(f"claims: {e}", file=err)
        return 2
    print("\n".join(data.lines()), file=out)
    if write:
        for page in pages:
            changed = rewrite(page, texts)
            if changed:
                print(f"claims: {_show(page)}: rewrote {', '.join(changed)}", file=out)
        return 0
    differ = [(page, b.name) for page, found in blocks.items() for b in found if b.text != texts[b.name]]
    for page, name in differ:
        print(f"claims: {_show(page)}: block {name} differs from the script's text (--write rewrites it)", file=err)
    if not differ:
        n = sum(len(found) for found in blocks.values())
        print(f"claims: all {n} blocks in {', '.join(_show(p) for p in pages)} match the committed data", file=out)
    return 1 if differ else 0


def main(argv: Sequence[str] | None = None, root: Path | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=root or Path.cwd(), help="repository root (the data's home)")
    parser.add_argument("--pages", type=Path, nargs="+", help=f"pages to check (default: {' '.join(PAGES)})")
    parser.add_argument("--write", action="store_true", help="rewrite the blocks that differ")
    args = parser.parse_args(argv)
    pages = args.pages or [args.root / p for p in PAGES]
    return check(pages, args.root, write=args.write)
