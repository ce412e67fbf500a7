"""The command line: ``python train.py`` and the ``scyc-train`` console script (pyproject.toml) are this."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

CONF = Path(__file__).resolve().parents[2] / "conf"  # the repository's conf/ (the package is installed editable)


def train(cfg: DictConfig) -> float:
    from scyc.experiment import main

    return main(cfg)


def main() -> None:
    from scyc.config import register_configs
    from scyc.sweeps import register_optuna_sweeper

    register_configs()
    register_optuna_sweeper(CONF / "search" / "optuna.yaml")
    hydra.main(version_base="1.3", config_path=str(CONF), config_name="config")(train)()
