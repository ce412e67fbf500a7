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

from scyc.registry import ConfigError

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


class NoSpaceLeft(ConfigError):
    """A write failed because the disk, a quota or the file-size limit is full (a one-line error, exit 2)."""


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
        if full := _no_space(exc):  # torch.save reports it as a RuntimeError whose context is the OSError
            raise NoSpaceLeft(f"no space left in {path.parent} (writing {path.name}: {full.strerror})") from exc
        raise
    _fsync_dir(path.parent)


def _no_space(exc: BaseException | None) -> OSError | None:
    """The OSError behind ``exc`` that says the disk, a quota or the file-size limit is full, if any."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


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
