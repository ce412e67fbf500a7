"""The entry point, the one way into a run: the command line (``python train.py``, the ``scyc-train`` console
script of pyproject.toml) and the Python API (``scyc.run``, for notebooks and scripts). Both compose the config
from ``conf/``, validate it once, take the run-directory decision (``scyc.lifecycle.rundir``) and build a run (``build_run``) and run it;
the CLI turns refusals into exit codes, the API raises them. Heavy imports wait until they are needed: ``import
scyc`` loads neither torch nor the experiment; composing (``train.py --cfg job``, ``--help``) imports the registries
and so torch (about 2 s), since their constructors are the schemas (``scyc.config.register_configs``), but not the
run's modules."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from scyc.config import Config
    from scyc.lifecycle.build import Run

CONF = Path(__file__).resolve().parents[2] / "conf"  # the repository's conf/ (the package is installed editable)
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's, as in a CLI run's train.log


def main() -> None:
    """``python train.py <overrides>``: Hydra's main over ``conf/`` with the typed schema and the Optuna sweeper."""
    import hydra

    from scyc.config import register_configs
    from scyc.foundations import overrides
    from scyc.foundations.registry import ConfigError
    from scyc.sweep.sweeps import register_optuna_sweeper

    try:  # a misspelled key: one line with the close matches, before Hydra composes (nothing written)
        overrides.check(sys.argv[1:], CONF)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.argv[1:] = overrides.normalize(sys.argv[1:])  # a plug-in's <group>.extra keys: with or without its YAML
    if "--help" in sys.argv[1:] or "-h" in sys.argv[1:]:  # the project's page; Hydra's is --hydra-help
        from scyc.help import page

        register_configs(untyped_from=CONF)  # the page shows the YAML's values: no registry (torch) to import
        print(page(CONF, [a for a in sys.argv[1:] if "=" in a and not a.startswith("-")]))
        sys.exit(0)
    # shell completion (-sc) lists the YAML's keys and options, fast on every TAB: no typed schemas (torch) needed
    completing = any(a.split("=")[0] in overrides.COMPLETION for a in sys.argv[1:])
    register_configs(untyped_from=CONF if completing else None)
    register_optuna_sweeper(CONF / "search" / "optuna.yaml")
    from scyc.sweep import sweeps

    try:
        hydra.main(version_base="1.3", config_path=str(CONF), config_name="config")(train)()
    except KeyboardInterrupt as exc:  # Ctrl-C before ``train`` took over (imports, composition): nothing written
        from scyc.lifecycle import rundir

        rundir.abandon_created()
        print(f"interrupted: {_interrupt(exc)}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 130))
    if sweeps.FAILED_RUNS:  # a multirun whose jobs ran, some of them failed: one line, exit 1
        names = ", ".join(p.name for p in sweeps.FAILED_RUNS[:5]) + (" ..." if len(sweeps.FAILED_RUNS) > 5 else "")
        print(f"error: {len(sweeps.FAILED_RUNS)} run(s) of the sweep failed ({names}); the other jobs ran; each "
              "failed run's summary.json says why, and the sweep's table lists it", file=sys.stderr)  # fmt: skip
        sys.exit(1)


def _interrupt(exc: KeyboardInterrupt) -> str:
    """What a KeyboardInterrupt says: ``RunInterrupted`` names its signal; Python's own says nothing."""
    return str(exc) or "SIGINT received during start-up: the run did not start"


PAPER_PRESETS = {("resnet20", "cifar10"): "paper_resnet20_cifar10", ("vgg19", "cifar10"): "paper_vgg19_cifar10",
                 ("resnet50", "imagenet200"): "paper_resnet50_imagenet200"}  # fmt: skip


def _note_paper_preset(choices: dict) -> None:
    """A paper's model and data set chosen without its preset: say that the defaults (LeNet-tuned) apply."""
    from scyc.platforms import distributed

    preset = PAPER_PRESETS.get((choices.get("model"), choices.get("dataset")))
    if preset and not choices.get("experiment") and distributed.is_main():
        print(f"note: model={choices['model']} dataset={choices['dataset']} runs with conf/config.yaml's defaults "
              f"(schedule bounds, epochs, batch size), not the paper's; for those: +experiment={preset}",
              file=sys.stderr)  # fmt: skip


def train(cfg: DictConfig) -> float:
    """The Hydra task of ``train.py``: one run, its refusals as exit codes; returns the final validation accuracy
    (what Hydra's sweepers optimise). In a multirun a failed or refused job returns NaN instead of exiting: its
    summary.json says ``failed``, the launcher goes on with the other jobs, and the sweep ends with one line
    naming the failed jobs and exit 1 (``main``, from ``scyc.sweep.sweeps.SweepStatus``). An interrupt stops the
    whole sweep."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from scyc.config import load, validate
    from scyc.foundations.registry import ConfigError
    from scyc.foundations.utils import WriteFailed
    from scyc.lifecycle import guards, rundir
    from scyc.lifecycle.tracking import RunOutputs, WandbStartError
    from scyc.platforms import distributed

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    if multirun:
        guards.end_with_parent()  # a parallel sweep's worker stops its run when the sweep's process dies

    def failed(code: int) -> float:
        if multirun:  # recorded failed in summary.json; the sweep goes on and says so at its end
            return math.nan
        sys.exit(code)

    with contextlib.ExitStack() as stack:  # the process group (if any) is destroyed on every way out
        stack.enter_context(guards.determinism_scope())  # deterministic=true ends with the job
        try:
            # torchrun / Slurm tasks: a process group and rank 0's run dir on every rank; plain runs: no-ops.
            env = stack.enter_context(distributed.session(cfg.device))
            run_dir = distributed.shared_run_dir(run_dir, env)
            resolve_data_dir(cfg)
            if multirun:  # runs side by side: say whose line it is
                name_console_lines(run_dir.name)
            with guards.startup_interrupts():  # Ctrl-C now: the run dir as found, exit 130
                config = load(cfg)
                validate(config)  # the one validation pass; the constructors below check their own parameters
                _note_paper_preset(HydraConfig.get().runtime.choices)
                run = build_run(config, run_dir, resume=rundir.prepare_all_ranks(config, run_dir, env))
            if env.is_main:  # accepted: now .hydra/ records this invocation
                rundir.accept(run_dir, cfg)
        except rundir.RunComplete as done:
            if env.is_main:
                rundir.abandon(run_dir)
                print(done, file=sys.stderr)
            return float(done.summary.get("final_val_acc", math.nan))
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            if multirun:  # record it; the launcher goes on with the other runs
                summary = RunOutputs(run_dir, is_main=distributed.is_main())
                if summary.is_main and not (run_dir / "summary.json").exists():  # never clobber a run's summary
                    summary.write_summary(status="failed", reason=f"ConfigError: {exc}")
            elif distributed.is_main():  # the run dir as found: no lock file, no folder, no log of this call
                rundir.abandon(run_dir)
            return failed(2)
        except KeyboardInterrupt as exc:  # SIGINT/SIGTERM during start-up (guards.startup_interrupts)
            if distributed.is_main():
                rundir.abandon(run_dir)
            print(f"interrupted: {_interrupt(exc)}; nothing was written", file=sys.stderr)
            sys.exit(getattr(exc, "exit_code", 130))
        try:
            return float(run_rounds(run)["final_val_acc"])
        except KeyboardInterrupt as exc:  # guards.RunInterrupted, or a signal that came before the run's handler
            # stopped, its files written: a further Ctrl-C while the process exits must not print a traceback
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            print(f"interrupted: {_interrupt(exc)}; resume with: {rundir.resume_command(run_dir)}", file=sys.stderr)
            code = getattr(exc, "exit_code", 130)
            if guards.PARENT_GONE.is_set():  # an orphaned worker of a parallel sweep: no one will send more work
                logging.shutdown()
                os._exit(code)
            sys.exit(code)
        except guards.NonFiniteLoss as exc:
            print(f"error: {exc}; the run is marked failed in {run_dir / 'summary.json'}", file=sys.stderr)
            return failed(guards.EXIT_NONFINITE)
        except WriteFailed as exc:  # a full disk, a folder made read-only: the run is marked failed
            print(f"error: {exc}; the run is marked failed in {run_dir / 'summary.json'}; once it can be written, "
                  f"resume with: {rundir.resume_command(run_dir)}", file=sys.stderr)  # fmt: skip
            return failed(2)
        except ConfigError as exc:  # found only once running, e.g. a checkpoint that does not fit the model
            print(f"error: {exc}", file=sys.stderr)
            return failed(2)
        except WandbStartError as exc:  # the run is marked failed with the reason
            print(f"error: {exc}; the run is marked failed in {run_dir / 'summary.json'}", file=sys.stderr)
            return failed(1)
    return math.nan  # not reached: every failure above exits or raises


def name_console_lines(name: str) -> None:
    """Log lines on the console carry the run's name (``[<time>][<run>][scyc][INFO] - ...``): the jobs of a
    parallel sweep write to one terminal. The run's own train.log keeps the plain format."""
    console = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
    for handler in console:
        handler.setFormatter(logging.Formatter(LOG_FORMAT.replace("[%(name)s]", f"[{name}][%(name)s]")))


def run(overrides: Sequence[str] = (), *, run_dir: str | os.PathLike, config_dir: str | None = None) -> dict[str, Any]:
    """Run one experiment in ``run_dir`` and return its summary (summary.json: ``status``, ``final_test_acc``, ...).

    The config is composed with Hydra's compose API from ``conf/`` and ``overrides``, exactly as ``train.py``
    composes it (``config_dir``: a folder of your own options added to ``conf/``, as ``--config-dir`` adds it);
    then the CLI's guards: validation, the run dir's lock, and the resume rules (a dir that holds a run is
    refused without ``resume=true``; ``resume=true`` continues from its last checkpoint, or returns the summary
    of a finished run). A relative ``data_dir`` is taken from the repository root, where
    the CLI runs. Refusals raise ``scyc.foundations.registry.ConfigError`` (the CLI's exit 2); a failed run raises after
    marking it failed in summary.json. The run dir gets ``.hydra/config.yaml`` and ``overrides.yaml`` and a
    ``train.log``, like a CLI run's. One call at a time per process: a call while another runs (from another
    thread) is refused with ``ConfigError``, since runs in one process share torch's global RNG and settings.
    """
    from scyc.foundations.registry import ConfigError

    if not _API_RUN.acquire(blocking=False):
        raise ConfigError(
            f"scyc.run(run_dir={str(run_dir)!r}): another scyc.run call is running in this process; runs in one "
            "process share torch's global RNG and settings and Hydra's global state: run them one after another, "
            "or in separate processes (python train.py -m ...)"
        )
    try:
        return _compose_and_run(overrides, Path(run_dir), config_dir)
    finally:
        _API_RUN.release()


_API_RUN = threading.Lock()  # held by the scyc.run call in progress: one at a time per process (refused, not queued)


def _compose_and_run(overrides: Sequence[str], run_dir: Path, config_dir: str | None) -> dict[str, Any]:
    from hydra import compose, initialize_config_dir

    from scyc.config import load, register_configs, validate
    from scyc.foundations import overrides as checked
    from scyc.foundations.registry import ConfigError
    from scyc.lifecycle import rundir

    register_configs()
    checked.check(overrides, CONF)
    composed = checked.normalize(overrides)
    if config_dir is not None:  # added to conf/, as the CLI's --config-dir adds it
        extra = Path(config_dir).resolve()
        if not extra.is_dir():
            raise ConfigError(f"config_dir={config_dir} is not a folder")
        composed.append(f"hydra.searchpath=[file://{extra}]")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="train"):
        cfg = compose("config", overrides=composed)
    resolve_data_dir(cfg)
    config = load(cfg)
    validate(config)
    from scyc.lifecycle.guards import determinism_scope

    rundir.API_CALL = list(overrides)  # summary.json's command and the resume hint name this call
    try:
        with determinism_scope():  # deterministic=true ends with the call
            return _run(config, cfg, list(overrides), run_dir)
    finally:
        rundir.API_CALL = None


def build_run(cfg: Config | DictConfig, run_dir: str | os.PathLike, resume: Any = None) -> Run:
    """The run of ``cfg`` in ``run_dir``, built: every component assembled and checked once (state, data, model,
    pruner, schedule, speed, outputs, callbacks, the start-up checks), nothing trained or written yet;
    ``run_rounds`` trains it. The one public way to build a run: ``train.py``, ``scyc.run`` and the scripts go through here
    (``resume``: the checkpoint ``scyc.lifecycle.rundir.prepare`` found, or None)."""
    from scyc.lifecycle import build

    return build.build_run(cfg, Path(run_dir), resume=resume)


def run_rounds(run: Run) -> dict[str, Any]:
    """Train a built run round after round (``scyc.lifecycle.loop``); returns its summary."""
    from scyc.lifecycle.loop import run_rounds as loop

    return loop(run)


def compose(overrides: Sequence[str] = ()) -> Config:
    """The typed, validated config of ``overrides`` composed from ``conf/`` as ``train.py`` composes it (the YAML
    defaults, the schema's types), for scripts and tests that build a run or one of its parts; refusals raise
    ``ConfigError``. A relative ``data_dir`` is taken from the repository root."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from scyc.config import load, register_configs, validate
    from scyc.foundations import overrides as checked

    register_configs()
    checked.check(overrides, CONF)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3", job_name="train"):
        cfg = hydra_compose("config", overrides=checked.normalize(overrides))
    resolve_data_dir(cfg)
    config = load(cfg)
    validate(config)
    return config


def resolve_data_dir(cfg: DictConfig) -> None:
    """A relative ``data_dir`` (``data`` by default) is taken from the repository root, wherever the command runs
    (``cd /tmp/mine && python /path/to/train.py`` finds the repository's data, and fetches nothing into /tmp/mine)."""
    if not Path(cfg.data_dir).is_absolute():
        cfg.data_dir = str(CONF.parent / cfg.data_dir)


def _run(config: Any, cfg: Any, overrides: list[str], run_dir: Path) -> dict[str, Any]:
    """``run`` once the config is valid: the CLI's run-dir decision, then the run with its own log file."""
    from scyc.lifecycle import rundir

    try:
        run = build_run(config, run_dir, resume=rundir.prepare(config, run_dir))
    except rundir.RunComplete as done:  # nothing to do, or refused: the run dir as this call found it
        rundir.abandon(run_dir)
        return done.summary
    except BaseException:
        rundir.abandon(run_dir)
        raise
    rundir.accept(run_dir, cfg, overrides)  # .hydra/ records this call, as the CLI's does
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger = logging.getLogger("scyc")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO if level == logging.NOTSET else level)
    try:
        return run_rounds(run)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()
        rundir.release(run_dir)
