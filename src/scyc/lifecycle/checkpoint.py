"""Checkpoint files: save, load and rotate them, atomically. What goes into one is ``RunState`` and the
components' ``state_dict``s (``scyc.lifecycle.state``, the round loop); deciding to resume is ``scyc.lifecycle.rundir``'s job.

Layout of ``<run_dir>/checkpoints/``:

- ``last.pt``: the newest checkpoint, written at the end of every epoch (except a round's last epoch,
  where the round checkpoint follows at once) and of every round.
- ``epoch_rRR_eEEE.pt``: the previous epoch checkpoints, ``checkpoint.keep`` of them (default 2; older
  ones are deleted). ``RR`` is the round, ``EEE`` the number of its epochs completed.
- ``round_RR.pt``: the state after round ``RR`` was trained and recorded, one per round, never deleted.

Every file is written with ``scyc.foundations.utils.atomic_write`` (temporary name, fsync, ``os.replace``), so a file
under one of these names is always complete. Contents are tensors, dicts, lists, numbers and strings
only, loaded with ``torch.load(..., weights_only=True)``: a planted file cannot run code. A checkpoint
that fails to load (truncated, corrupt, foreign, an older format version) is skipped with a warning and
the next newest is used; it is left in place and replaced by the run's next checkpoint of that name.
"""

from __future__ import annotations

import logging
import os
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from scyc.foundations.registry import ConfigError
from scyc.foundations.utils import atomic_write

log = logging.getLogger("scyc")

# Version 2: the run's state under "state" (RunState.state_dict), the round in progress under "round".
FORMAT, VERSION = "scyc-checkpoint", 2
LAST = "last.pt"
EPOCH_RE = re.compile(r"^epoch_r(\d+)_e(\d+)\.pt$")
ROUND_RE = re.compile(r"^round_(\d+)\.pt$")
REQUIRED = ("kind", "position", "config", "state", "round", "callbacks")


def payload(kind: str, position: tuple[int, int], **parts: Any) -> dict[str, Any]:
    """A checkpoint at ``position`` = (round, epochs of it completed); ``parts`` are the state dicts."""
    return {"format": FORMAT, "version": VERSION, "kind": kind,
            "position": {"round": int(position[0]), "epoch": int(position[1])}, **parts}  # fmt: skip


def _check_file(path: Path) -> None:
    """Say what is wrong with a file that cannot be a checkpoint before torch reads it (torch's own errors
    name torch's internals): ``torch.save`` writes a zip archive."""
    if not path.is_file():
        raise ValueError("a directory, not a file" if path.is_dir() else "not a regular file")
    if path.stat().st_size == 0:
        raise ValueError("the file is empty")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head != b"PK\x03\x04":
        raise ValueError("not a checkpoint: a checkpoint is a zip archive (torch.save's format), this file is not")
    if not zipfile.is_zipfile(path):
        raise ValueError("a truncated or damaged zip archive: the file was cut short or overwritten")


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load and check one checkpoint; never unpickles anything but tensors and plain containers."""
    _check_file(Path(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError("not a scyc checkpoint")
    if state.get("version") != VERSION:
        raise ValueError(
            f"checkpoint format version {state.get('version')}, this code reads version {VERSION} only "
            "(resume it with the scyc release that wrote it)"
        )
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise ValueError(f"checkpoint lacks {', '.join(missing)}")
    return state


def position(state: dict[str, Any]) -> tuple[int, int]:
    return int(state["position"]["round"]), int(state["position"]["epoch"])


def _reason(exc: Exception) -> str:
    """One line saying why a checkpoint did not load (torch's weights-only refusal is many lines, and asks to
    file an issue: what matters is what it refused)."""
    if isinstance(exc, ValueError):  # load_checkpoint's own reasons, and a misfit (Checkpointer.load_latest)
        return str(exc)
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    at = next((i for i, ln in enumerate(lines) if "Unpickler error" in ln), None)
    if at is not None:
        refused = " ".join([lines[at].split("Unpickler error:", 1)[1].strip(), *lines[at + 1 : at + 2]]).strip()
        return f"it holds objects other than tensors and plain containers, refused unloaded ({refused})"[:300]
    return f"{type(exc).__name__}: {' '.join(lines)}"[:300]


class Checkpointer:
    """Writes ``last.pt`` / ``epoch_*.pt`` / ``round_*.pt`` and finds the newest loadable one."""

    def __init__(self, directory: Path, keep: int = 2) -> None:
        self.dir, self.keep = Path(directory), int(keep)
        self._last: tuple[str, tuple[int, int]] | None = None  # (kind, position) of what last.pt holds
        self.skipped: list[str] = []  # load_latest: a warning for each file it skipped

    @staticmethod
    def epoch_name(pos: tuple[int, int]) -> str:
        return f"epoch_r{pos[0]:02d}_e{pos[1]:03d}.pt"

    def save(self, state: dict[str, Any]) -> Path:
        """Make ``state`` the new ``last.pt`` (plus ``round_RR.pt`` for a round checkpoint); the previous
        ``last.pt``, if an epoch checkpoint, stays as ``epoch_rRR_eEEE.pt``; old epoch files are pruned."""
        kind, pos = state["kind"], position(state)
        write = lambda fh: torch.save(state, fh)  # noqa: E731
        if kind == "round":
            atomic_write(self.dir / f"round_{pos[0] - 1:02d}.pt", write)
        last = self.dir / LAST
        if self._last is not None and self._last[0] == "epoch" and last.exists():
            self._preserve(last, self.dir / self.epoch_name(self._last[1]))
        atomic_write(last, write)
        self._last = (kind, pos)
        self._prune()
        return last

    def _preserve(self, last: Path, target: Path) -> None:
        """Give the current ``last.pt`` a second name (hard link: no moment without ``last.pt``)."""
        link_tmp = target.with_name(f".{target.name}.link")
        link_tmp.unlink(missing_ok=True)
        try:
            os.link(last, link_tmp)
            os.replace(link_tmp, target)
        except OSError:  # no hard links on this file system: a copy (the loader copes either way)
            atomic_write(target, last.read_bytes())

    def _prune(self) -> None:
        epochs = sorted(
            (tuple(int(g) for g in m.groups()), p) for p in self.dir.iterdir() if (m := EPOCH_RE.match(p.name))
        )
        for _, path in epochs[: max(0, len(epochs) - self.keep)]:
            path.unlink(missing_ok=True)

    def adopt(self, resume: tuple[dict[str, Any], Path] | None) -> None:
        """When the run starts: remove the temporaries of a killed writer; after resuming from a checkpoint,
        remember what ``last.pt`` holds so the next save keeps it."""
        for stale in self.dir.glob(".*") if self.dir.is_dir() else ():
            stale.unlink(missing_ok=True)
        if resume is not None and resume[1].name == LAST:
            self._last = (resume[0]["kind"], position(resume[0]))

    def named(self) -> list[tuple[tuple[int, int], Path]]:
        """Epoch and round files with the position each holds, newest first (round files after epoch files
        of the same position: they are written first, so an epoch file there is never older)."""
        if not self.dir.is_dir():
            return []
        out = []
        for p in self.dir.iterdir():
            if m := EPOCH_RE.match(p.name):
                out.append(((int(m[1]), int(m[2])), 1, p))
            elif m := ROUND_RE.match(p.name):
                out.append(((int(m[1]) + 1, 0), 0, p))  # round r done = round r+1 with 0 epochs done
        return [(pos, p) for pos, _, p in sorted(out, key=lambda t: t[:2], reverse=True)]

    def check_writable(self) -> None:
        """Refuse a checkpoints folder the run could not save into: a file in the folder's place, or a folder
        under a checkpoint's name (``last.pt``, ...), which the run's next save would fail on."""
        if self.dir.exists() and not self.dir.is_dir():
            raise ConfigError(f"{self.dir} is a file, not a folder: the run cannot save checkpoints there; "
                              "move it away, or use another hydra.run.dir")  # fmt: skip
        for path in self.candidates():
            if not path.is_file():
                raise ConfigError(f"{path} is a {'folder' if path.is_dir() else 'special file'}, not a checkpoint: "
                                  "the run cannot save its checkpoints under that name; move it away and run again")  # fmt: skip

    def candidates(self) -> list[Path]:
        return ([self.dir / LAST] if (self.dir / LAST).exists() else []) + [p for _, p in self.named()]

    def load_latest(self, fits: Callable[[dict[str, Any]], None] | None = None) -> tuple[dict[str, Any], Path] | None:
        """The newest loadable checkpoint, or None when there is none at all. Unloadable files are skipped,
        and so are those ``fits`` (``fits(state)`` raises ``ValueError`` saying why) finds unusable; ``skipped``
        then holds a warning for each, for the caller to log once the invocation is accepted (a refused one
        logs nothing). Raises ``ConfigError`` when checkpoint files exist but none is usable.

        ``last.pt`` is normally the newest; a round file is newer when the process died between writing
        ``round_RR.pt`` and ``last.pt``."""
        tried: list[str] = []
        self.skipped = []

        def attempt(path: Path) -> dict[str, Any] | None:
            try:
                state = load_checkpoint(path)
                if fits is not None:
                    fits(state)
                return state
            except Exception as exc:  # truncated zip, refused pickle global, wrong content, version or model ...
                reason = _reason(exc)
                tried.append(f"{path.name} ({reason})")
                self.skipped.append(f"checkpoint {path} cannot be used ({reason}); trying the previous one")
                return None

        last = self.dir / LAST
        last_state = attempt(last) if last.exists() else None
        for pos, path in self.named():
            if last_state is not None and pos <= position(last_state):
                return last_state, last
            if (state := attempt(path)) is not None:
                return state, path
        if last_state is not None:
            return last_state, last
        if tried:
            raise ConfigError(
                f"resume=true: no usable checkpoint in {self.dir}; tried {'; '.join(tried)}. Start a new run in "
                "another hydra.run.dir"
            )
        return None
