"""The generated blocks of a page: ``<!-- claims:NAME -->`` and ``<!-- /claims:NAME -->``, each on its own line;
the block's text is every line between them. Blocks do not nest and each one closes before the next opens."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from scyc.claims.errors import ClaimsError

OPEN = re.compile(r"^<!-- claims:([A-Za-z0-9_]+) -->$")
CLOSE = re.compile(r"^<!-- /claims:([A-Za-z0-9_]+) -->$")
ANY = re.compile(r"<!--\s*/?\s*claims:")


@dataclass(frozen=True)
class Block:
    page: Path
    name: str
    first: int  # index of the first line inside the block (the line after the opening marker)
    end: int  # index of the closing marker
    text: str


def read_blocks(page: Path) -> list[Block]:
    """The page's blocks in order; a marker that is malformed, unclosed, nested or closes another block is
    refused (ClaimsError, naming the page and line)."""
    try:
        lines = page.read_text(encoding="utf-8").split("\n")
    except OSError as e:
        raise ClaimsError(f"page {page}: cannot read it ({e.strerror})") from None
    blocks: list[Block] = []
    open_name, open_at = None, -1
    for i, line in enumerate(lines):
        o, c = OPEN.match(line.strip()), CLOSE.match(line.strip())
        if o:
            if open_name is not None:
                raise ClaimsError(
                    f"{page}:{i + 1}: block {o.group(1)} opens inside block {open_name} (line {open_at + 1})"
                )
            open_name, open_at = o.group(1), i
        elif c:
            if open_name != c.group(1):
                raise ClaimsError(f"{page}:{i + 1}: closing marker of {c.group(1)} but the open block is {open_name}")
            blocks.append(Block(page, open_name, open_at + 1, i, "\n".join(lines[open_at + 1 : i])))
            open_name = None
        elif ANY.search(line):
            raise ClaimsError(f"{page}:{i + 1}: a claims marker must be alone on its line, as <!-- claims:NAME -->")
    if open_name is not None:
        raise ClaimsError(f"{page}:{open_at + 1}: block {open_name} is never closed (<!-- /claims:{open_name} -->)")
    return blocks


def rewrite(page: Path, texts: dict[str, str]) -> list[str]:
    """Replace the text of each of the page's blocks named in ``texts``; returns the names of those that changed
    (the page is written only if one did)."""
    lines = page.read_text(encoding="utf-8").split("\n")
    changed = []
    for block in reversed(read_blocks(page)):
        new = texts.get(block.name)
        if new is not None and new != block.text:
            lines[block.first : block.end] = new.split("\n")
            changed.append(block.name)
    if changed:
        page.write_text("\n".join(lines), encoding="utf-8")
    return sorted(changed)
