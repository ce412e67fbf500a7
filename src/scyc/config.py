"""Structured-config schema: typed, so a misspelled key or a wrong type fails at start-up.

The four groups (model, dataset, pruner, schedule) are free-form here; their keys are fixed by their
YAML files (Hydra's struct mode refuses overrides of keys that do not exist) and checked against the
constructors they feed. Everything else is typed below.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


@dataclass
class TrainConfig:
    epochs: int = 3
    batch_size: int = 128
    eval_batch_size: Any = "auto"  # auto (256 for conv nets on the CPU, else 1000) | an integer
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    skip_nonfinite: bool = False  # skip batches with a NaN/inf loss (one sync per step) instead of stopping
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | bf16 | fp32
    channels_last: Any = "auto"  # auto (on for conv nets, CUDA and CPU) | true | false
    compile: bool = False  # torch.compile the model
    cuda_graphs: Any = "auto"  # one CUDA graph per training step: auto (CUDA, when allowed) | true | false


@dataclass
class WandbConfig:
    mode: str = "offline"  # offline | online | disabled
    project: str = "scyc"
    entity: Optional[str] = None
    group: Optional[str] = None
    tags: list[str] = field(default_factory=list)
    log_every_steps: int = 50


@dataclass
class CheckpointConfig:
    keep: int = 2  # epoch checkpoints kept besides last.pt (round checkpoints are always kept)


@dataclass
class AnalysisConfig:
    grad_every_round: bool = True
    grad_batches: int = 10
    normalize: bool = False
    hist_bins: int = 101
    hist_range: Optional[float] = None
    figures: bool = True


@dataclass
class Config:
    model: Any = MISSING
    dataset: Any = MISSING
    pruner: Any = MISSING
    schedule: Any = MISSING
    train: TrainConfig = field(default_factory=TrainConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    seed: int = 0
    device: str = "auto"
    data_dir: str = "data"
    progress: bool = True
    resume: bool = False
    deterministic: bool = False
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)


def register_configs() -> None:
    ConfigStore.instance().store(name="scyc_schema", node=Config)
