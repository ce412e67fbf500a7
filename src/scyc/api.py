"""The Python API, for notebooks and scripts: ``scyc.run(overrides=[...], run_dir=...)`` does what
``python train.py <overrides> hydra.run.dir=<run_dir>`` does, through the same guards."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CONF = Path(__file__).resolve().parents[2] / "conf"  # the repository's conf/ (the package is installed editable)
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's, as in a CLI run's train.log


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
    rundir.API_CALL = list(overrides)  # summary.json's command and the resume hint name this call
    try:
        return _run(config, cfg, list(overrides), run_dir)
    finally:
        rundir.API_CALL = None


def _run(config: Any, cfg: Any, overrides: list[str], run_dir: Path) -> dict[str, Any]:
    """``run`` once the config is valid: the CLI's run-dir decision, then the run with its own log file."""
    from omegaconf import OmegaConf

    from scyc import rundir
    from scyc.experiment import Experiment
    from scyc.utils import atomic_write

    try:
        experiment = Experiment(config, run_dir, resume=rundir.prepare(config, run_dir))
    except rundir.RunComplete as done:  # nothing to do, or refused: the run dir as this call found it
        rundir.abandon(run_dir)
        return done.summary
    except BaseException:
        rundir.abandon(run_dir)
        raise
    hydra_dir = run_dir / ".hydra"
    if not (hydra_dir / "config.yaml").exists():  # a fresh run: record its config as Hydra does
        hydra_dir.mkdir(exist_ok=True)
        atomic_write(hydra_dir / "config.yaml", OmegaConf.to_yaml(cfg))
        atomic_write(hydra_dir / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(overrides)))
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
