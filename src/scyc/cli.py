"""The entry point, the one way into a run: the command line (``python train.py``, the ``scyc-train`` console
script of pyproject.toml) and the Python API (``scyc.run``, for notebooks and scripts). Both compose the config
from ``conf/``, validate it once, take the run-directory decision (``scyc.rundir``) and run an ``Experiment``;
the CLI turns refusals into exit codes, the API raises them. Heavy imports wait until a run starts, so that
``import scyc`` and ``train.py --cfg job`` load neither torch nor the experiment."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from omegaconf import DictConfig

CONF = Path(__file__).resolve().parents[2] / "conf"  # the repository's conf/ (the package is installed editable)
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's, as in a CLI run's train.log


def main() -> None:
    """``python train.py <overrides>``: Hydra's main over ``conf/`` with the typed schema and the Optuna sweeper."""
    import hydra

    from scyc.config import register_configs
    from scyc.sweeps import register_optuna_sweeper

    register_configs()
    register_optuna_sweeper(CONF / "search" / "optuna.yaml")
    hydra.main(version_base="1.3", config_path=str(CONF), config_name="config")(train)()


PAPER_PRESETS = {("resnet20", "cifar10"): "paper_resnet20_cifar10", ("vgg19", "cifar10"): "paper_vgg19_cifar10",
                 ("resnet50", "imagenet200"): "paper_resnet50_imagenet200"}  # fmt: skip


def _note_paper_preset(choices: dict) -> None:
    """A paper's model and data set chosen without its preset: say that the defaults (LeNet-tuned) apply."""
    from scyc import distributed

    preset = PAPER_PRESETS.get((choices.get("model"), choices.get("dataset")))
    if preset and not choices.get("experiment") and distributed.is_main():
        print(f"note: model={choices['model']} dataset={choices['dataset']} runs with conf/config.yaml's defaults "
              f"(schedule bounds, epochs, batch size), not the paper's; for those: +experiment={preset}",
              file=sys.stderr)  # fmt: skip


def train(cfg: DictConfig) -> float:
    """The Hydra task of ``train.py``: one run, its refusals as exit codes; returns the final validation accuracy
    (what Hydra's sweepers optimise)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from scyc import distributed, guards, rundir
    from scyc.config import load, validate
    from scyc.experiment import Experiment
    from scyc.registry import ConfigError
    from scyc.tracking import RunOutputs, WandbStartError

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with contextlib.ExitStack() as stack:  # the process group (if any) is destroyed on every way out
        stack.enter_context(guards.determinism_scope())  # deterministic=true ends with the job
        try:
            # torchrun / Slurm tasks: a process group and rank 0's run dir on every rank; plain runs: no-ops.
            env = stack.enter_context(distributed.session(cfg.device))
            run_dir = distributed.shared_run_dir(run_dir, env)
            config = load(cfg)
            validate(config)  # the one validation pass; the constructors below check their own parameters
            _note_paper_preset(HydraConfig.get().runtime.choices)
            experiment = Experiment(config, run_dir, resume=rundir.prepare_all_ranks(config, run_dir, env))
            if env.is_main:  # accepted: now .hydra/ records this invocation
                rundir.accept(run_dir, cfg)
        except rundir.RunComplete as done:
            if env.is_main:
                rundir.abandon(run_dir)
                print(done, file=sys.stderr)
            return float(done.summary.get("final_val_acc", math.nan))
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            if HydraConfig.get().mode == RunMode.MULTIRUN:  # record it; the launcher goes on with the other runs
                summary = RunOutputs(run_dir, is_main=distributed.is_main())
                if summary.is_main and not (run_dir / "summary.json").exists():  # never clobber a run's summary
                    summary.write_summary(status="failed", reason=f"ConfigError: {exc}")
                raise
            if distributed.is_main():  # the run dir as found: no lock file, no folder, no log of this call
                rundir.abandon(run_dir)
            sys.exit(2)
        try:
            return float(experiment.run()["final_val_acc"])
        except guards.RunInterrupted as exc:
            print(f"interrupted: {exc}; resume with: {rundir.resume_command(run_dir)}", file=sys.stderr)
            sys.exit(exc.exit_code)
        except guards.NonFiniteLoss as exc:
            print(f"error: {exc}; the run is marked failed in {run_dir / 'summary.json'}", file=sys.stderr)
            sys.exit(guards.EXIT_NONFINITE)
        except ConfigError as exc:  # found only once running, e.g. a checkpoint that does not fit the model
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        except WandbStartError as exc:  # the run is marked failed with the reason
            print(f"error: {exc}; the run is marked failed in {run_dir / 'summary.json'}", file=sys.stderr)
            sys.exit(1)


def run(overrides: Sequence[str] = (), *, run_dir: str | os.PathLike, config_dir: str | None = None) -> dict[str, Any]:
    """Run one experiment in ``run_dir`` and return its summary (summary.json: ``status``, ``final_test_acc``, ...).

    The config is composed with Hydra's compose API from ``conf/`` (or ``config_dir``) and ``overrides``, exactly
    as ``train.py`` composes it; then the CLI's guards: validation, the run dir's lock, and the resume rules (a
    dir that holds a run is refused without ``resume=true``; ``resume=true`` continues from its last checkpoint,
    or returns the summary of a finished run). A relative ``data_dir`` is taken from the repository root, where
    the CLI runs. Refusals raise ``scyc.registry.ConfigError`` (the CLI's exit 2); a failed run raises after
    marking it failed in summary.json. The run dir gets ``.hydra/config.yaml`` and ``overrides.yaml`` and a
    ``train.log``, like a CLI run's.
    """
    from hydra import compose, initialize_config_dir

    from scyc import rundir
    from scyc.config import load, register_configs, validate

    register_configs()
    conf, run_dir = Path(config_dir or CONF).resolve(), Path(run_dir)
    with initialize_config_dir(config_dir=str(conf), version_base="1.3", job_name="train"):
        cfg = compose("config", overrides=list(overrides))
    if not Path(cfg.data_dir).is_absolute():
        cfg.data_dir = str(conf.parent / cfg.data_dir)
    config = load(cfg)
    validate(config)
    from scyc.guards import determinism_scope

    rundir.API_CALL = list(overrides)  # summary.json's command and the resume hint name this call
    try:
        with determinism_scope():  # deterministic=true ends with the call
            return _run(config, cfg, list(overrides), run_dir)
    finally:
        rundir.API_CALL = None


def _run(config: Any, cfg: Any, overrides: list[str], run_dir: Path) -> dict[str, Any]:
    """``run`` once the config is valid: the CLI's run-dir decision, then the run with its own log file."""
    from scyc import rundir
    from scyc.experiment import Experiment

    try:
        experiment = Experiment(config, run_dir, resume=rundir.prepare(config, run_dir))
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
        return experiment.run()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()
        rundir.release(run_dir)
