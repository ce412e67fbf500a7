"""What an invocation does with its run directory, decided before anything is written there: start a
fresh run, resume the newest loadable checkpoint (``resume=true``), or refuse.

- A directory that holds a run (``RUN_MARKERS`` or checkpoints) is never overwritten: without
  ``resume=true`` the invocation is refused with the command that resumes it, and Hydra's rewrite of
  ``.hydra/`` by the refused invocation is undone from the first invocation's backup.
- ``resume=true`` needs the checkpoint's config, minus ``RESUME_MAY_CHANGE``; a finished run raises
  ``RunComplete``; a directory with results but no checkpoint is refused.
- ``<run_dir>/.lock`` (``filelock``) keeps a second process out while the run lives; the OS releases
  it on any exit, SIGKILL included.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from scyc.checkpoint import Checkpointer, load_checkpoint, position
from scyc.registry import ConfigError
from scyc.utils import atomic_write

log = logging.getLogger("scyc")

# Files whose presence means a run already lives in a directory.
RUN_MARKERS = ("summary.json", "results.csv", "epochs.csv", "lr_trace.csv")
# Config keys a resumed run may change: none of them alters what is computed.
RESUME_MAY_CHANGE = ("resume", "progress", "wandb", "device", "data_dir", "dataset.root", "dataset.download",
                     "checkpoint")  # fmt: skip
Resume = tuple[dict[str, Any], Path]  # a loaded checkpoint and its path


class RunComplete(Exception):
    """``resume=true`` on a run that already finished: nothing to do."""

    def __init__(self, run_dir: Path, summary: dict[str, Any]) -> None:
        self.summary = summary
        super().__init__(
            f"the run in {run_dir} is complete ({summary.get('rounds_completed')} rounds, final test accuracy "
            f"{summary.get('final_test_acc')}); nothing to resume"
        )


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


API_CALL: list[str] | None = None  # the overrides of a running scyc.run() call (sys.argv is then the notebook's)


def command() -> str:
    """How this run was started, for summary.json: the command line, or the scyc.run() call."""
    return f"scyc.run(overrides={API_CALL!r}, ...)" if API_CALL is not None else " ".join(sys.argv)


def resume_command(run_dir: Path) -> str:
    """The command line that resumes this run: this invocation's arguments plus hydra.run.dir and resume=true
    (for a job of a sweep: the sweep again, with its hydra.sweep.dir and resume=true; for scyc.run(): that call
    with resume=true)."""
    drop = ("hydra.run.dir=", "hydra.sweep.dir=", "resume=", "+resume=")
    if API_CALL is not None:
        kept = [a for a in API_CALL if not a.startswith(drop)]
        return f"scyc.run(overrides={[*kept, 'resume=true']!r}, run_dir={str(run_dir)!r})"
    args = [a for a in sys.argv[1:] if not a.startswith(drop)]
    script = os.path.relpath(sys.argv[0]) if sys.argv and sys.argv[0] else "train.py"
    if "-m" in args or "--multirun" in args:
        return shlex.join(["python", script, *args, f"hydra.sweep.dir={run_dir.parent}", "resume=true"])
    return shlex.join(["python", script, *args, f"hydra.run.dir={run_dir}", "resume=true"])


_LOCKS: dict[Path, FileLock] = {}  # held for the life of the process


def lock(run_dir: Path) -> None:
    """Take ``<run_dir>/.lock`` so that a second process cannot write into the same run."""
    path = (run_dir / ".lock").resolve()
    if path in _LOCKS:  # this process holds it already (e.g. main() called twice in one interpreter)
        return
    held = FileLock(path)
    try:
        held.acquire(timeout=0)
    except Timeout as exc:
        summary = _read_summary(run_dir)
        holder = f"pid {summary['pid']} on {summary.get('host')}" if "pid" in summary else "another process"
        raise ConfigError(f"{run_dir} is in use by {holder}; wait for it or use another hydra.run.dir") from exc
    _LOCKS[path] = held


def _read_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        return {"status": "unreadable summary.json"}


def _copy_yaml(src: Path, dst: Path) -> None:
    if src.is_dir():
        dst.mkdir(exist_ok=True)
        for f in src.glob("*.yaml"):
            atomic_write(dst / f.name, f.read_text())


def check_usable(run_dir: Path, key: str = "hydra.run.dir") -> None:
    """Refuse a run directory that cannot hold a run: a file, or under a file, or one this process may not write
    (read-only or immutable). Checked before Hydra creates it or writes ``.hydra/`` into it; writes nothing."""
    existing = next(p for p in (run_dir, *run_dir.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{key}={run_dir}: {existing} is a file, not a directory; choose another {key}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{key}={run_dir}: {existing} is not writable (read-only); choose another {key}")


class RunDirCheck(Callback):
    """Hydra callback: ``check_usable`` on ``hydra.run.dir`` (``hydra.sweep.dir`` in a multirun), one line, exit 2."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.run.dir")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check(config, "hydra.sweep.dir")

    @staticmethod
    def _check(config: DictConfig, key: str) -> None:
        try:
            check_usable(Path(str(OmegaConf.select(config, key))), key)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)


def prepare(config: Any, run_dir: Path) -> Resume | None:
    """Decide what this invocation does with ``run_dir``. Returns the checkpoint (state, path) to resume
    from, or None to start afresh. Raises ``ConfigError`` when the directory holds a run and ``resume`` is
    not set (or the config changed), and ``RunComplete`` when ``resume=true`` finds a finished run."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock(run_dir)
    ckpt = Checkpointer(run_dir / "checkpoints")
    summary = _read_summary(run_dir)
    present = [m for m in RUN_MARKERS if (run_dir / m).exists()] + (["checkpoints/"] if ckpt.candidates() else [])
    hydra_dir = run_dir / ".hydra"
    backup = hydra_dir / "first_invocation"  # Hydra rewrites .hydra/ on every invocation: keep the first's

    if not config.resume:
        if present:
            if backup.is_dir():  # Hydra has just overwritten .hydra/ with this refused invocation: undo that
                _copy_yaml(backup, hydra_dir)
            raise ConfigError(
                f"{run_dir} already holds a run (status: {summary.get('status', 'unknown')}; found "
                f"{', '.join(present)}). To continue it: {resume_command(run_dir)}  -- or choose another "
                "hydra.run.dir for a new run"
            )
        _copy_yaml(hydra_dir, backup)
        return None

    try:
        loaded = ckpt.load_latest()
    except ConfigError:
        if summary.get("status") != "complete":
            raise
        loaded = None  # a finished run whose checkpoints were removed or damaged: still finished
    if loaded is not None:
        diffs = config_differences(loaded[0]["config"], config.raw)
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
        _copy_yaml(hydra_dir, backup)
        return None
    state, path = loaded
    log.info("resuming %s from %s (round %d, %d epoch(s) of it done)", run_dir, path.name, *position(state))
    return state, path


def prepare_all_ranks(config: Any, run_dir: Path, env: Any) -> Resume | None:
    """``prepare`` for every process of a run: rank 0 decides (it owns the directory and its lock), the
    others follow its decision and load the same checkpoint. A single process calls ``prepare`` directly."""
    if not env.enabled:
        return prepare(config, run_dir)
    outcome: tuple[str, str | None] = ("ok", None)
    resume, error = None, None
    if env.is_main:
        try:
            resume = prepare(config, run_dir)
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


def release(run_dir: Path) -> None:
    """Release this process's ``<run_dir>/.lock`` (the Python API, at the end of each run; a CLI process
    keeps it until it exits)."""
    held = _LOCKS.pop((Path(run_dir) / ".lock").resolve(), None)
    if held is not None:
        held.release()
