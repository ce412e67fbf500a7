"""Small shared helpers: seeding, device resolution, the one atomic file write, the one RNG snapshot."""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from scyc.foundations.registry import ConfigError

log = logging.getLogger("scyc")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(spec: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cpu``, ``cuda`` and ``cuda:N`` are checked to exist."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"device={spec} is not a device; use auto, cpu, cuda or cuda:N") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={spec}: no cuda device is available on this machine; use device=cpu or auto")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device={spec}: this machine has {torch.cuda.device_count()} cuda device(s) (cuda:0..)")
    elif device.type != "cpu":
        raise ConfigError(f"device={spec} is not supported; use auto, cpu, cuda or cuda:N")
    return device


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class WriteFailed(ConfigError):
    """A write the run needs failed for a reason outside the program (a one-line error, exit 2)."""


class NoSpaceLeft(WriteFailed):
    """A write failed because the disk, a quota or the file-size limit is full."""


class NotWritable(WriteFailed):
    """A write was refused: no permission, or an immutable file or folder, or a read-only file system."""


NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
REFUSED = (errno.EACCES, errno.EPERM, errno.EROFS)


def write_failure(exc: BaseException, path: str | os.PathLike | None = None) -> WriteFailed | None:
    """``exc`` as a one-line ``WriteFailed`` when an OSError behind it says the disk is full or the write was
    refused (torch.save and matplotlib report these wrapped in their own errors); None for any other failure.
    ``path``: the file being written, when the OSError does not name it."""
    if isinstance(exc, WriteFailed):
        return exc
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in NO_SPACE + REFUSED:
            where = Path(path or exc.filename or "?")
            if exc.errno in NO_SPACE:
                return NoSpaceLeft(f"no space left in {where.parent} (writing {where.name}: {exc.strerror})")
            return NotWritable(f"{where} cannot be written ({exc.strerror}): the folder or file is read-only or "
                               "immutable")  # fmt: skip
        exc = exc.__cause__ or exc.__context__
    return None


def atomic_write(path: str | os.PathLike, content: str | bytes | Callable[[IO[bytes]], None]) -> None:
    """Write a file so that readers see either the old or the new content, never half of it: a temporary
    file in the same folder, flushed and fsync'ed, renamed over ``path`` (``os.replace`` is atomic), then
    the folder fsync'ed. ``content`` is text, bytes, or a function that writes into the binary handle."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            if callable(content):
                content(fh)
            else:
                fh.write(content.encode() if isinstance(content, str) else content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        failure = write_failure(exc, path)  # torch.save wraps the OSError in a RuntimeError
        if failure is not None and failure is not exc:
            raise failure from exc
        raise
    _fsync_dir(path.parent)


def overwrite_in_place(path: str | os.PathLike, content: str) -> None:
    """Rewrite an existing small file in place, in the disk blocks it holds already: the last resort when
    ``atomic_write`` finds the disk full (its temporary file needs new blocks), for the file that must say how
    the run ended. Not atomic: a process killed during it leaves the file torn (unreadable, never wrong)."""
    with open(path, "r+b") as fh:
        fh.write(content.encode())
        fh.truncate()
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


# --------------------------------------------------------------------------------------------------
def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every RNG (Python, NumPy, torch CPU and CUDA, and ``generator``) as tensors and plain numbers, so the
    snapshot is loadable with ``torch.load(..., weights_only=True)``; also the oracle's in-memory snapshot."""
    version, mt, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": {"version": version, "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else [],
        "generator": generator.get_state() if generator is not None else None,
    }


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None = None) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        if len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        else:
            log.warning("the snapshot has %d CUDA RNG states, this machine %d GPUs: CUDA RNGs not restored",
                        len(state["cuda"]), torch.cuda.device_count())  # fmt: skip
    if generator is not None and state["generator"] is not None:
        generator.set_state(state["generator"])
