"""Checkpoints and resuming: a killed run costs at most one epoch and never changes its results.

Layout of ``<run_dir>/checkpoints/``:

- ``last.pt``: the newest checkpoint, written at the end of every epoch (except a round's last epoch,
  where the round checkpoint follows at once) and of every round.
- ``epoch_rRR_eEEE.pt``: the previous epoch checkpoints, ``checkpoint.keep`` of them (default 2; older
  ones are deleted). ``RR`` is the round, ``EEE`` the number of its epochs completed.
- ``round_RR.pt``: the state after round ``RR`` was trained and recorded, one per round, never deleted.

Every file is written to a temporary name, flushed and fsync'ed, then renamed over the target
(``os.replace`` is atomic), so a file under one of these names is always complete. A checkpoint holds
the model, the masks (bool), the snapshots the resets need (``init``), the optimiser and LR scheduler of
the round in progress, every RNG (Python, NumPy, torch CPU and CUDA, the experiment's data/augmentation
generator), the counters (round, epochs completed, global step), the rows of ``results.csv`` and
``epochs.csv`` so far, the round's best-validation tracking, the resolved config and the W&B run id.
Its contents are tensors, dicts, lists, numbers and strings only, and it is loaded with
``torch.load(..., weights_only=True)``: a planted file cannot run code. A checkpoint that fails to load
(truncated, corrupt, foreign) is skipped with a warning and the next newest is used; it is left in
place for inspection and replaced by the run's next checkpoint of that name.

``resume=true`` with the same ``hydra.run.dir`` continues from the newest loadable checkpoint. The
streamed ``lr_trace.csv`` is cut back to the checkpoint's step count and ``results.csv`` /
``epochs.csv`` are rewritten from its rows, so whatever the killed process wrote after its last
checkpoint disappears; with ``deterministic=true`` the resumed run's results are bitwise those of an
uninterrupted run.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import random
import re
import shlex
import socket
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from scyc.registry import ConfigError
from scyc.utils import atomic_write_text

if TYPE_CHECKING:
    from torch.optim import Optimizer
    from torch.optim.lr_scheduler import LRScheduler

    from scyc.experiment import Experiment

log = logging.getLogger("scyc")

FORMAT, VERSION = "scyc-checkpoint", 1
LAST = "last.pt"
EPOCH_RE = re.compile(r"^epoch_r(\d+)_e(\d+)\.pt$")
ROUND_RE = re.compile(r"^round_(\d+)\.pt$")
REQUIRED = ("kind", "position", "global_step", "config", "model", "masks", "snapshots", "rng", "results", "epochs")
# Files whose presence means a run already lives in a directory.
RUN_MARKERS = ("summary.json", "results.csv", "epochs.csv", "lr_trace.csv")
# Config keys a resumed run may change: none of them alters what is computed.
RESUME_MAY_CHANGE = (
    "resume",
    "progress",
    "wandb",
    "device",
    "data_dir",
    "dataset.root",
    "dataset.download",
    "checkpoint",
)


class RunComplete(Exception):
    """``resume=true`` on a run that already finished: nothing to do."""

    def __init__(self, run_dir: Path, summary: dict[str, Any]) -> None:
        self.summary = summary
        super().__init__(
            f"the run in {run_dir} is complete ({summary.get('rounds_completed')} rounds, final test accuracy "
            f"{summary.get('final_test_acc')}); nothing to resume"
        )


# --------------------------------------------------------------------------------------------------
# RNG state as tensors and plain numbers (loadable with weights_only=True)
def rng_state(generator: torch.Generator | None) -> dict[str, Any]:
    version, mt, gauss = random.getstate()
    _, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {
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
    return state


def set_rng_state(state: dict[str, Any], generator: torch.Generator | None) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        if len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
        else:
            log.warning("checkpoint has %d CUDA RNG states, this machine %d GPUs: CUDA RNGs not restored",
                        len(state["cuda"]), torch.cuda.device_count())  # fmt: skip
    if generator is not None and state["generator"] is not None:
        generator.set_state(state["generator"])


# --------------------------------------------------------------------------------------------------
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


def save_atomic(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file in the same folder, fsync, rename over ``path``, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load and check one checkpoint; never unpickles anything but tensors and plain containers."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError("not a scyc checkpoint")
    if state.get("version") != VERSION:
        raise ValueError(f"checkpoint format version {state.get('version')}, this code reads {VERSION}")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise ValueError(f"checkpoint lacks {', '.join(missing)}")
    return state


def _reason(exc: Exception) -> str:
    """One line saying why a checkpoint did not load (torch's weights-only refusal is many lines)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    detail = next((ln for ln in lines if "Unpickler error" in ln), lines[0] if lines else "")
    return f"{type(exc).__name__}: {detail}"[:300]


def _position(state: dict[str, Any]) -> tuple[int, int]:
    return int(state["position"]["round"]), int(state["position"]["epoch"])


class Checkpointer:
    """Writes ``last.pt`` / ``epoch_*.pt`` / ``round_*.pt`` and finds the newest loadable one."""

    def __init__(self, directory: Path, keep: int = 2) -> None:
        if keep < 0:
            raise ConfigError(f"checkpoint.keep={keep} is not allowed: it must be an integer >= 0")
        self.dir, self.keep = Path(directory), int(keep)
        self._last: tuple[str, tuple[int, int]] | None = None  # (kind, position) of what last.pt holds

    @staticmethod
    def epoch_name(position: tuple[int, int]) -> str:
        return f"epoch_r{position[0]:02d}_e{position[1]:03d}.pt"

    def save(self, payload: dict[str, Any]) -> Path:
        """Make ``payload`` the new ``last.pt`` (plus ``round_RR.pt`` for a round checkpoint); the previous
        ``last.pt``, if an epoch checkpoint, stays as ``epoch_rRR_eEEE.pt``; old epoch files are pruned."""
        self.dir.mkdir(parents=True, exist_ok=True)
        kind, position = payload["kind"], _position(payload)
        if kind == "round":
            save_atomic(self.dir / f"round_{position[0] - 1:02d}.pt", payload)
        last = self.dir / LAST
        tmp = self.dir / f".{LAST}.new"
        try:
            with open(tmp, "wb") as fh:
                torch.save(payload, fh)
                fh.flush()
                os.fsync(fh.fileno())
            if self._last is not None and self._last[0] == "epoch" and last.exists():
                self._preserve(last, self.dir / self.epoch_name(self._last[1]))
            os.replace(tmp, last)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.dir)
        self._last = (kind, position)
        self._prune()
        return last

    def _preserve(self, last: Path, target: Path) -> None:
        """Give the current ``last.pt`` a second name (hard link: no moment without ``last.pt``)."""
        link_tmp = target.with_name(f".{target.name}.link")
        link_tmp.unlink(missing_ok=True)
        try:
            os.link(last, link_tmp)
            os.replace(link_tmp, target)
        except OSError:  # no hard links on this file system: a rename (the loader copes with a missing last.pt)
            os.replace(last, target)

    def _prune(self) -> None:
        epochs = sorted(
            (tuple(int(g) for g in m.groups()), p) for p in self.dir.iterdir() if (m := EPOCH_RE.match(p.name))
        )
        for _, path in epochs[: max(0, len(epochs) - self.keep)]:
            path.unlink(missing_ok=True)

    def adopt(self, state: dict[str, Any], path: Path) -> None:
        """After resuming from ``path``: remember what ``last.pt`` holds so the next save keeps it."""
        if path.name == LAST:
            self._last = (state["kind"], _position(state))

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

    def candidates(self) -> list[Path]:
        return ([self.dir / LAST] if (self.dir / LAST).exists() else []) + [p for _, p in self.named()]

    def load_latest(self) -> tuple[dict[str, Any], Path] | None:
        """The newest loadable checkpoint, or None when there is none at all; unloadable files are skipped
        with a warning. Raises ``ConfigError`` when checkpoint files exist but none loads.

        ``last.pt`` is normally the newest; a round file is newer when the process died between writing
        ``round_RR.pt`` and ``last.pt``."""
        for stale in self.dir.glob(".*") if self.dir.is_dir() else ():  # temporaries of a killed writer
            stale.unlink(missing_ok=True)
        tried: list[str] = []

        def attempt(path: Path) -> dict[str, Any] | None:
            try:
                return load_checkpoint(path)
            except Exception as exc:  # truncated zip, refused pickle global, wrong content ...
                reason = _reason(exc)
                tried.append(f"{path.name} ({reason})")
                log.warning("checkpoint %s cannot be used (%s); trying the previous one", path, reason)
                return None

        last = self.dir / LAST
        last_state = attempt(last) if last.exists() else None
        for position, path in self.named():
            if last_state is not None and position <= _position(last_state):
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


# --------------------------------------------------------------------------------------------------
def capture(
    exp: Experiment,
    kind: str,
    position: tuple[int, int],
    optimizer: Optimizer | None = None,
    scheduler: LRScheduler | None = None,
    progress: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything needed to continue ``exp`` at ``position`` = (round, epochs of it completed)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "position": {"round": int(position[0]), "epoch": int(position[1])},
        "global_step": int(exp.global_step),
        "config": OmegaConf.to_container(exp.cfg, resolve=True),
        "model": exp.model.state_dict(),
        "masks": exp.masks.state_dict(),
        "snapshots": exp.snapshots,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "round_progress": progress,
        "rng": rng_state(exp.generator),
        "results": [asdict(r) for r in exp.results],
        "epochs": [dict(r) for r in exp.epochs_csv.rows],
        "callbacks": [cb.state_dict() if hasattr(cb, "state_dict") else None for cb in exp.callbacks],
        "wandb_id": exp.summary.get("wandb_id"),
        "threads": torch.get_num_threads(),
        "saved_at": time.time(),
        "torch_version": str(torch.__version__),
    }


def save_state(
    exp: Experiment,
    kind: str,
    position: tuple[int, int],
    optimizer: Optimizer | None = None,
    scheduler: LRScheduler | None = None,
    progress: dict[str, Any] | None = None,
) -> None:
    """Checkpoint ``exp`` at ``position`` and note it in summary.json (a heartbeat for running runs).
    In a data-parallel run only rank 0 writes (every rank holds the same state)."""
    if not exp.dist.is_main:
        return
    path = exp.checkpointer.save(capture(exp, kind, position, optimizer, scheduler, progress))
    exp.summary.update(
        checkpoint={"path": str(path), "round": position[0], "epochs_done": position[1], "step": exp.global_step},
        rounds_completed=len(exp.results),
        updated_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    from scyc.tracking import write_summary

    write_summary(exp.run_dir / "summary.json", exp.summary)


def begin_outputs(exp: Experiment, resume: tuple[dict[str, Any], Path] | None) -> str | None:
    """At run start: provenance in the summary; on resume, outputs cut back to the checkpoint. Returns the
    W&B run id to continue (None for a new W&B run)."""
    exp.summary.update(pid=os.getpid(), host=socket.gethostname(), started_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    if not exp.dist.is_main:  # data-parallel: rank 0 owns the files
        return None
    if resume is None:  # from scratch; with resume=true, drop what a run killed before its first checkpoint left
        exp.results_csv.reset([])
        exp.epochs_csv.reset([])
        exp.lr_csv.path.unlink(missing_ok=True)
        return None
    state, path = resume
    exp.checkpointer.adopt(state, path)
    restore_outputs(exp, state)
    previous: dict[str, Any] = {}
    try:
        previous = json.loads((exp.run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        pass
    r, e = _position(state)
    exp.summary["resumes"] = list(previous.get("resumes") or []) + [
        {"checkpoint": path.name, "round": r, "epochs_done": e, "step": int(state["global_step"]),
         "at": exp.summary["started_at"], "previous_status": previous.get("status")}
    ]  # fmt: skip
    return state.get("wandb_id")


def resume_round(
    exp: Experiment, round_idx: int, max_lr: float, optimizer: Optimizer, scheduler: LRScheduler
) -> tuple[int, dict[str, Any] | None]:
    """(first epoch to train, round bookkeeping) for round ``round_idx``: (0, None) unless the run resumes
    inside this round, in which case the optimiser and scheduler get their checkpointed state."""
    if exp._resume is None:
        return 0, None
    state = exp._resume[0]
    exp._resume = None  # used once
    r, e = _position(state)
    if state["kind"] != "epoch" or r != round_idx or e == 0:
        return 0, None
    progress = state["round_progress"]
    if progress["max_lr"] != max_lr:
        raise ConfigError(
            f"round {round_idx} was checkpointed with max_lr={progress['max_lr']}, but the schedule now gives "
            f"{max_lr}: the schedule changed since the checkpoint"
        )
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    return e, progress


def restore(exp: Experiment, state: dict[str, Any]) -> tuple[int, int]:
    """Put ``exp`` (built afresh from the same config) into the checkpointed state; returns the position
    (round, epochs of it done) to continue from."""
    from scyc.experiment import RoundResult

    device = exp.device
    try:
        exp.model.load_state_dict(state["model"])
        exp.masks.load_state_dict(state["masks"])
    except (RuntimeError, KeyError) as exc:
        raise ConfigError(f"the checkpoint does not fit this model: {str(exc).splitlines()[0]}") from exc
    exp.snapshots = {k: {n: t.to(device) for n, t in sd.items()} for k, sd in state["snapshots"].items()}
    exp.global_step = int(state["global_step"])
    exp.results = [RoundResult(**row) for row in state["results"]]
    for cb, cb_state in zip(exp.callbacks, state.get("callbacks") or []):
        if cb_state is not None and hasattr(cb, "load_state_dict"):
            cb.load_state_dict(cb_state)
    if exp.cfg.get("deterministic") and state.get("threads") and torch.get_num_threads() != state["threads"]:
        log.info("deterministic=true: using %d CPU threads as the checkpointed process did", state["threads"])
        torch.set_num_threads(int(state["threads"]))
    set_rng_state(state["rng"], exp.generator)
    return _position(state)


def restore_outputs(exp: Experiment, state: dict[str, Any]) -> None:
    """Rewrite results.csv and epochs.csv from the checkpoint's rows; cut lr_trace.csv back to its step count."""
    exp.results_csv.reset(state["results"])
    exp.epochs_csv.reset(state["epochs"])
    truncate_rows(exp.lr_csv.path, int(state["global_step"]))


def truncate_rows(path: Path, rows: int) -> None:
    """Keep the header and the first ``rows`` data lines of a streamed CSV (drops a torn last line)."""
    if not path.exists():
        if rows:
            log.warning("%s is missing; the per-step trace restarts at step %d", path, rows)
        return
    with open(path) as fh:
        lines = fh.readlines()
    keep = lines[: 1 + rows]
    if keep and not keep[-1].endswith("\n"):
        keep.pop()
    if len(keep) < 1 + rows:
        log.warning("%s holds %d of the checkpoint's %d steps", path, max(0, len(keep) - 1), rows)
    if len(keep) != len(lines):
        atomic_write_text(path, "".join(keep))


# --------------------------------------------------------------------------------------------------
def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out if out or not prefix else {prefix[:-1]: {}}
    return {prefix[:-1]: d}


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Keys whose values differ between the checkpoint's config and this invocation's, minus the ones
    a resumed run may change (``RESUME_MAY_CHANGE``)."""
    a, b = _flatten(saved), _flatten(current)
    allowed = lambda k: any(k == p or k.startswith(p + ".") for p in RESUME_MAY_CHANGE)  # noqa: E731
    missing = object()
    return [
        f"{k}: {a.get(k, '(absent)')!r} in the checkpoint, {b.get(k, '(absent)')!r} now"
        for k in sorted(set(a) | set(b))
        if not allowed(k) and a.get(k, missing) != b.get(k, missing)
    ]


def resume_command(run_dir: Path) -> str:
    """The command line that resumes this run: this invocation's arguments plus hydra.run.dir and resume=true
    (for a job of a sweep: the sweep again, with its hydra.sweep.dir and resume=true)."""
    drop = ("hydra.run.dir=", "hydra.sweep.dir=", "resume=", "+resume=")
    args = [a for a in sys.argv[1:] if not a.startswith(drop)]
    script = os.path.relpath(sys.argv[0]) if sys.argv and sys.argv[0] else "train.py"
    if "-m" in args or "--multirun" in args:
        return shlex.join(["python", script, *args, f"hydra.sweep.dir={run_dir.parent}", "resume=true"])
    return shlex.join(["python", script, *args, f"hydra.run.dir={run_dir}", "resume=true"])


_LOCKS: dict[Path, Any] = {}  # held for the life of the process; the OS releases them on any exit, even SIGKILL


def _lock(run_dir: Path) -> None:
    """Take ``<run_dir>/.lock`` (flock) so that a second process cannot write into the same run."""
    path = (run_dir / ".lock").resolve()
    if path in _LOCKS:  # this process holds it already (e.g. main() called twice in one interpreter)
        return
    fh = open(path, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        fh.seek(0)
        holder = fh.read().strip() or "another process"
        fh.close()
        raise ConfigError(f"{run_dir} is in use by {holder}; wait for it or use another hydra.run.dir") from exc
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    fh.flush()
    _LOCKS[path] = fh


def _hydra_backup(run_dir: Path) -> Path:
    return run_dir / ".hydra" / "first_invocation"


def _backup_hydra(hydra_dir: Path, backup: Path) -> None:
    """Keep the starting invocation's .hydra/*.yaml: Hydra rewrites .hydra/ on every later invocation."""
    if hydra_dir.is_dir():
        backup.mkdir(exist_ok=True)
        for f in hydra_dir.glob("*.yaml"):
            atomic_write_text(backup / f.name, f.read_text())


def prepare_run_dir_all_ranks(cfg: DictConfig, run_dir: Path, env) -> tuple[dict[str, Any], Path] | None:
    """``prepare_run_dir`` for every process of a run: rank 0 decides (it owns the directory and its lock),
    the others follow its decision and load the same checkpoint. A single process calls it directly."""
    if not env.enabled:
        return prepare_run_dir(cfg, run_dir)
    outcome: tuple[str, str | None] = ("ok", None)
    resume, error = None, None
    if env.is_main:
        try:
            resume = prepare_run_dir(cfg, run_dir)
            outcome = ("ok", str(resume[1]) if resume else None)
        except (RunComplete, ConfigError) as exc:
            error, outcome = exc, ("complete" if isinstance(exc, RunComplete) else "config", str(exc))
    kind, detail = env.broadcast_object(outcome)
    if error is not None:
        raise error
    if kind == "complete":
        raise RunComplete(run_dir, {})
    if kind == "config":
        raise ConfigError(detail)
    if not env.is_main and detail is not None:
        resume = (load_checkpoint(Path(detail)), Path(detail))
    return resume


def prepare_run_dir(cfg: DictConfig, run_dir: Path) -> tuple[dict[str, Any], Path] | None:
    """Decide what this invocation does with ``run_dir``, before anything is written there.

    Returns the checkpoint (state, path) to resume from, or None to start afresh. Raises
    ``ConfigError`` when the directory holds a run and ``resume`` is not set (or the config changed), and
    ``RunComplete`` when ``resume=true`` finds a finished run.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _lock(run_dir)
    ckpt = Checkpointer(run_dir / "checkpoints", int(cfg.checkpoint.keep) if "checkpoint" in cfg else 2)
    summary_path = run_dir / "summary.json"
    try:
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    except (OSError, ValueError):
        summary = {"status": "unreadable summary.json"}
    present = [m for m in RUN_MARKERS if (run_dir / m).exists()] + (["checkpoints/"] if ckpt.candidates() else [])
    hydra_dir, backup = run_dir / ".hydra", _hydra_backup(run_dir)

    if not cfg.get("resume", False):
        if present:
            if backup.is_dir():  # Hydra has just overwritten .hydra/ with this refused invocation: undo that
                for f in backup.glob("*.yaml"):
                    atomic_write_text(hydra_dir / f.name, f.read_text())
            raise ConfigError(
                f"{run_dir} already holds a run (status: {summary.get('status', 'unknown')}; found "
                f"{', '.join(present)}). To continue it: {resume_command(run_dir)}  -- or choose another "
                "hydra.run.dir for a new run"
            )
        _backup_hydra(hydra_dir, backup)
        return None

    current = OmegaConf.to_container(cfg, resolve=True)
    try:
        loaded = ckpt.load_latest()
    except ConfigError:
        if summary.get("status") != "complete":
            raise
        loaded = None  # a finished run whose checkpoints were removed or damaged: still finished
    if loaded is not None:
        diffs = config_differences(loaded[0]["config"], current)
        if diffs:
            raise ConfigError(
                "resume=true, but the configuration differs from the run's checkpoint (resume with the run's "
                f"own settings, or start a new run in another hydra.run.dir): {'; '.join(diffs)}"
            )
    if summary.get("status") == "complete":
        raise RunComplete(run_dir, summary)
    if loaded is None:
        results = run_dir / "results.csv"
        if results.exists() and len(results.read_text().splitlines()) > 1:
            raise ConfigError(
                f"resume=true: {run_dir} holds results but no checkpoint to resume from; start a new run in "
                "another hydra.run.dir"
            )
        log.info("resume=true: no checkpoint in %s yet, starting the run from the beginning", run_dir)
        _backup_hydra(hydra_dir, backup)
        return None
    state, path = loaded
    log.info("resuming %s from %s (round %d, %d epoch(s) of it done, step %d)",
             run_dir, path.name, *_position(state), state["global_step"])  # fmt: skip
    return state, path
