"""What an invocation does with its run directory, decided before anything is written there: start a
fresh run, resume the newest loadable checkpoint (``resume=true``), or refuse.

- A directory that holds a run (``RUN_MARKERS`` or checkpoints) is never overwritten: without
  ``resume=true`` the invocation is refused with a command that resumes it.
- ``resume=true`` needs the checkpoint's config, minus the keys that change nothing computed (``scyc.foundations.keys``); ``pruner.rounds`` may grow
  (the run is extended); a finished run raises ``RunComplete``; a directory with results but no
  checkpoint is refused.
- ``<run_dir>/.lock`` (``filelock``) keeps a second process out while the run lives; the OS releases
  it on any exit, SIGKILL included.
- A refused invocation leaves the directory as it found it: Hydra does not write ``.hydra/``
  (``hydra.output_subdir: null``, its log file opens on the first line), ``accept`` writes it once the
  invocation is accepted, and ``abandon`` removes what a refused invocation made (its lock file, the
  folders Hydra created for it, noted by ``RunDirWatch``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from scyc.foundations.keys import changes_no_result, same_value
from scyc.foundations.registry import ConfigError
from scyc.foundations.utils import atomic_write
from scyc.lifecycle.checkpoint import Checkpointer, load_checkpoint, position

log = logging.getLogger("scyc")

# Files whose presence means a run already lives in a directory.
RUN_MARKERS = ("summary.json", "results.csv", "epochs.csv", "lr_trace.csv")
# Config keys a resumed run may change: none of them alters what is computed.
RESUME_MAY_GROW = ("pruner.rounds",)  # a larger value extends the run: the rounds done stay what they are
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
        return out if out or not prefix else {prefix[:-1]: None}  # {} = no keys set = null (a plug-in's extra)
    return {prefix[:-1]: d}


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Keys whose values differ between the checkpoint's config and this invocation's, minus the ones
    a resumed run may change (``scyc.foundations.keys.NON_RESULT_KEYS``) or increase (``RESUME_MAY_GROW``)."""
    a, b = _flatten(saved), _flatten(current)

    def allowed(k: str) -> bool:
        grown = k in RESUME_MAY_GROW and isinstance(a.get(k), int) and isinstance(b.get(k), int) and b[k] > a[k]
        return grown or changes_no_result(k)

    # a key absent on one side (added to the schema after the checkpoint was written) counts as unset (null)
    return [
        f"{k}: {a.get(k, '(absent)')!r} in the checkpoint, {b.get(k, '(absent)')!r} now"
        for k in sorted(set(a) | set(b))
        if not allowed(k) and not same_value(k, a.get(k), b.get(k))
    ]


def check_data(saved: str | None, now: str, allow: bool) -> str | None:
    """A resume on data other than the checkpoint's (``RawData.fingerprint``) is refused unless
    ``resume_allow_data_change=true``; returns the change then (logged, and recorded in summary.json)."""
    if saved is None or saved == now:
        return None
    change = f"the data changed since the checkpoint ({saved} then, {now} now)"
    if not allow:
        raise ConfigError(f"resume=true, but {change}: resume on the run's own data, or set "
                          "resume_allow_data_change=true to go on with these (it is recorded)")  # fmt: skip
    log.warning("%s; going on because resume_allow_data_change=true", change)
    return change


GENERATOR_STATE_BYTES = {5056: "cpu", 16: "cuda"}  # torch.Generator.get_state().numel() by device type


def check_generator(saved: Any, generator: Any, device: str) -> None:
    """``device`` may change on resume, but not the device *type*: the data/augmentation generator's state
    (5,056 bytes for the CPU's Mersenne Twister, 16 for CUDA's Philox) cannot move between them, and the run's
    random stream would change. Refused at start-up, before the run dir is touched."""
    if saved is None or saved.numel() == generator.get_state().numel():
        return
    was = GENERATOR_STATE_BYTES.get(saved.numel(), f"another device type ({saved.numel()}-byte generator state)")
    raise ConfigError(f"resume=true with device={device}: the checkpoint was made on {was}, and its data generator "
                      f"cannot continue on {generator.device.type}; resume with the device type it was made on "
                      f"(device={was if was in ('cpu', 'cuda') else 'auto'})")  # fmt: skip


API_CALL: list[str] | None = None  # the overrides of a running scyc.run() call (sys.argv is then the notebook's)


def command() -> str:
    """How this run was started, for summary.json: the command line, or the scyc.run() call."""
    return f"scyc.run(overrides={API_CALL!r}, ...)" if API_CALL is not None else " ".join(sys.argv)


def resume_command(run_dir: Path, args: list[str] | None = None) -> str:
    """The command line that resumes this run: this invocation's arguments (or ``args``) plus hydra.run.dir and
    resume=true (for a job of a sweep: the sweep again, with its hydra.sweep.dir and resume=true; for scyc.run():
    that call with resume=true)."""
    drop = ("hydra.run.dir=", "hydra.sweep.dir=", "resume=", "+resume=")
    if API_CALL is not None and args is None:
        kept = [a for a in API_CALL if not a.startswith(drop)]
        return f"scyc.run(overrides={[*kept, 'resume=true']!r}, run_dir={str(run_dir)!r})"
    args = [a for a in (sys.argv[1:] if args is None else args) if not a.startswith(drop)]
    script = os.path.relpath(sys.argv[0]) if sys.argv and sys.argv[0] else "train.py"
    if "-m" in args or "--multirun" in args:
        return shlex.join(["python", script, *args, f"hydra.sweep.dir={hydra_value(run_dir.parent)}", "resume=true"])
    return shlex.join(["python", script, *args, f"hydra.run.dir={hydra_value(run_dir)}", "resume=true"])


def hydra_value(path: Path) -> str:
    """``path`` as the value of a Hydra override: as it is when Hydra's lexer takes it unquoted, else in Hydra's
    single quotes (spaces, non-ASCII letters, brackets, quotes ...), which Hydra reads back as the same string."""
    from hydra.core.override_parser.types import Quote, QuotedString

    text = str(path)
    return text if SAFE_UNQUOTED.fullmatch(text) else QuotedString(text=text, quote=Quote.single).with_quotes()


SAFE_UNQUOTED = re.compile(r"[A-Za-z0-9_/.+\-]+")  # a path Hydra's lexer reads unquoted, as it is


_LOCKS: dict[Path, tuple[FileLock, bool]] = {}  # held for the life of the process; True: this process made the file
_CREATED: list[str] = []  # the folders of hydra.run.dir that did not exist when Hydra started (RunDirWatch)
_NOTES: list[str] = []  # what the decision has to say (checkpoints skipped), logged by accept: a refusal logs nothing


def lock(run_dir: Path) -> None:
    """Take ``<run_dir>/.lock`` so that a second process cannot write into the same run."""
    path = (run_dir / ".lock").resolve()
    if path in _LOCKS:  # this process holds it already (e.g. main() called twice in one interpreter)
        return
    held, created = FileLock(path), not path.exists()
    _LOCKS[path] = (held, created)  # before acquiring: a Ctrl-C inside acquire still leaves the file to abandon()
    try:
        held.acquire(timeout=0)
    except Timeout as exc:
        _LOCKS.pop(path, None)  # another process's lock: never ours to remove
        summary = _read_summary(run_dir)
        holder = f"pid {summary['pid']} on {summary.get('host')}" if "pid" in summary else "another process"
        raise ConfigError(f"{run_dir} is in use by {holder}; wait for it or use another hydra.run.dir") from exc


class RunDirWatch(Callback):
    """A Hydra callback: notes which folders of ``hydra.run.dir`` do not exist yet when a run starts (Hydra
    creates them before any code of ours runs), so that a refused invocation can remove them (``abandon``)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        path = Path(os.path.abspath(str(config.hydra.run.dir)))
        _CREATED[:] = [str(p) for p in (path, *path.parents) if not p.exists()]


def abandon(run_dir: Path) -> None:
    """After a refusal, or a finished run with nothing to do: leave ``run_dir`` as this invocation found it.
    The lock is released (its file removed if this process made it); in a folder Hydra created for this
    invocation, the invocation's log goes too (it holds the lock: no one else wrote there), then every such
    folder that is empty."""
    _NOTES.clear()
    path = (run_dir / ".lock").resolve()
    held, created = _LOCKS.pop(path, (None, False))
    if held is not None:
        held.release()
        if created:
            path.unlink(missing_ok=True)
    if not _CREATED or _CREATED[0] != os.path.abspath(run_dir):
        return
    if held is not None:
        for logfile in Path(_CREATED[0]).glob("*.log"):
            logfile.unlink()
    for folder in _CREATED:  # deepest first
        try:
            os.rmdir(folder)
        except OSError:  # not empty: keep it and its parents
            break
    _CREATED.clear()


def abandon_created() -> None:
    """``abandon`` for an invocation stopped before its run dir was known to it (Ctrl-C while Hydra started it)."""
    if _CREATED:
        abandon(Path(_CREATED[0]))


def accept(run_dir: Path, cfg: DictConfig, overrides: list[str] | None = None) -> None:
    """This invocation is accepted: write ``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` as Hydra
    would (conf/config.yaml turns Hydra's own writing off: it came before our checks), and log what the decision
    noted (the checkpoints it skipped); from now on ``abandon`` leaves the lock file and the folders alone. ``overrides``: the Python API's call (no Hydra app runs, so
    there is no ``hydra.yaml``)."""
    from hydra.core.hydra_config import HydraConfig

    path = (run_dir / ".lock").resolve()
    if path in _LOCKS:
        _LOCKS[path] = (_LOCKS[path][0], False)
    _CREATED.clear()
    for note in _NOTES:
        log.warning(note)
    _NOTES.clear()
    from scyc.config import written_switches

    hydra_dir = run_dir / ".hydra"
    config = OmegaConf.to_container(cfg)  # as Hydra writes it (unresolved), the train switches as YAML writes them
    if isinstance(config.get("train"), dict):
        config["train"].update(written_switches(config["train"]))
    atomic_write(hydra_dir / "config.yaml", OmegaConf.to_yaml(config))
    if overrides is not None:
        atomic_write(hydra_dir / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(overrides)))
    elif HydraConfig.initialized():
        atomic_write(hydra_dir / "hydra.yaml", OmegaConf.to_yaml(HydraConfig.instance().cfg))
        atomic_write(hydra_dir / "overrides.yaml", OmegaConf.to_yaml(HydraConfig.get().overrides.task))


def _read_summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError):
        return {"status": "unreadable summary.json"}


def _has_results(run_dir: Path) -> bool:
    results = run_dir / "results.csv"
    return results.exists() and len(results.read_text().splitlines()) > 1


def _continue_hint(run_dir: Path, ckpt: Checkpointer, config: Any) -> str:
    """How to continue the run in ``run_dir``, only ever a command that works: this invocation with
    resume=true when its settings fit the checkpoint's, else the run's own recorded overrides."""
    try:
        loaded = ckpt.load_latest()
    except ConfigError:
        loaded = None
    if loaded is None and _has_results(run_dir) and _read_summary(run_dir).get("status") != "complete":
        return "It has no usable checkpoint to continue from."
    diffs = config_differences(loaded[0]["config"], config.raw) if loaded else []
    if not diffs:
        return f"To continue it: {resume_command(run_dir)}"
    try:
        own = [str(o) for o in OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")]
        how = f": {resume_command(run_dir, own)}"
    except (OSError, ValueError, TypeError):
        how = " and resume=true"
    return f"This invocation's settings differ from the run's ({'; '.join(diffs)}); to continue it with its own{how}"


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
    ckpt.check_writable()
    summary = _read_summary(run_dir)
    present = [m for m in RUN_MARKERS if (run_dir / m).exists()] + (["checkpoints/"] if ckpt.candidates() else [])
    if not config.resume:
        if present:
            raise ConfigError(
                f"{run_dir} already holds a run (status: {summary.get('status', 'unknown')}; found "
                f"{', '.join(present)}). {_continue_hint(run_dir, ckpt, config)}  -- or choose another "
                "hydra.run.dir for a new run"
            )
        return None

    try:
        loaded = ckpt.load_latest()
    except ConfigError:
        if summary.get("status") != "complete":
            raise
        loaded = None  # a finished run whose checkpoints were removed or damaged: still finished
    _NOTES[:] = ckpt.skipped
    done = summary.get("status") == "complete"
    if loaded is not None:
        _check_config(loaded, config)
        done = done and position(loaded[0])[0] >= config.pruner.rounds  # a larger pruner.rounds extends it
    if done:
        raise RunComplete(run_dir, summary)
    if loaded is None:
        if _has_results(run_dir):
            raise ConfigError(
                f"resume=true: {run_dir} holds results but no checkpoint to resume from; start a new run in "
                "another hydra.run.dir"
            )
        return None  # the run says so when it starts (nothing is logged before an invocation is accepted)
    return loaded


def _check_config(loaded: Resume, config: Any) -> None:
    diffs = config_differences(loaded[0]["config"], config.raw)
    if diffs:
        raise ConfigError(
            "resume=true, but the configuration differs from the run's checkpoint (resume with the run's "
            f"own settings, or start a new run in another hydra.run.dir): {'; '.join(diffs)}"
        )


def refit(config: Any, run_dir: Path, resume: Resume, fits: Callable[[dict[str, Any]], None]) -> Resume:
    """``prepare``'s checkpoint, checked against the model the run has built (``fits(state)`` raises
    ``ValueError``): one that loads but does not fit (another model's weights under the run's file name) is
    skipped like an unloadable one, and the newest one that fits is used; if none fits, ``ConfigError``, with
    the run dir as found. Called before anything is written."""
    try:
        fits(resume[0])
        return resume
    except ValueError:
        pass
    ckpt = Checkpointer(Path(run_dir) / "checkpoints")
    loaded = ckpt.load_latest(fits=fits)
    if loaded is None:  # the files went away meanwhile
        raise ConfigError(f"resume=true: no usable checkpoint in {ckpt.dir}; start a new run in another hydra.run.dir")
    _NOTES[:] = ckpt.skipped
    _check_config(loaded, config)
    return loaded


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
    held, _ = _LOCKS.pop((Path(run_dir) / ".lock").resolve(), (None, False))
    if held is not None:
        held.release()
