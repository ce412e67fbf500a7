"""Iterative pruning with a learning-rate schedule per round.

python train.py                                   # S-Cyc, LeNet-300-100, Fashion-MNIST
python train.py schedule=constant pruner.rounds=5
python train.py -m schedule=scyc,constant seed=0,1,2
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from scyc.config import register_configs
from scyc.sweeps import register_optuna_sweeper

register_configs()
register_optuna_sweeper(Path(__file__).parent / "conf" / "search" / "optuna.yaml")


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    from scyc.experiment import main as run

    return run(cfg)


if __name__ == "__main__":
    main()
