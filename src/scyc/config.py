"""The typed config: the schema Hydra checks overrides against, and the one conversion to typed objects.

Defaults live in YAML only (``conf/``); the dataclasses below hold types. Hydra refuses, at composition,
a key that does not exist (struct mode) and a value of the wrong type (``pruner.rate=abc``), naming the
key. Group keys that only some options use (a shape's ``gamma``, a model's ``width``) are ``Optional``
and ``null`` when unset: an unset key is not passed on, so the constructor's own default applies. A
schedule option composes from the command line: ``schedule.shape=step_decay +schedule.gamma=0.2``
(``+`` or not: the key exists, unset), and ``schedule.base_lr=null`` unsets a key the new piece does not use.

``load`` converts the composed config once (``OmegaConf.to_container``) into a ``Config``; ``validate``
is the one start-up check of the values Hydra's types cannot express (ranges, combinations). The
constructors (pruner, schedule, data set, model) check their own parameters when the run is built,
still before anything is written.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from scyc.registry import ConfigError


@dataclass
class Group:
    """A config group: ``name`` picks the registered class, ``options()`` are the keys set for it."""

    name: str = MISSING
    extra: Optional[dict[str, Any]] = None  # keys of a plug-in class (dotted-path name) the schema does not know

    def options(self, *skip: str) -> dict[str, Any]:
        """The keys that are set (not null), without ``name`` and ``skip``, plus ``extra``."""
        drop = {"name", "extra", *skip}
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in drop}
        return {k: v for k, v in values.items() if v is not None} | (self.extra or {})


@dataclass
class ModelConfig(Group):
    hidden: Optional[list[int]] = None  # lenet300
    width: Optional[int] = None  # resnet20
    shortcut: Optional[str] = None  # resnet20
    small_input: Optional[bool] = None  # resnet50, timm


@dataclass
class DatasetConfig(Group):
    root: Optional[str] = None
    download: Optional[bool] = None
    verify_checksums: Optional[bool] = None
    cache: Optional[bool] = None
    crop_padding: Optional[int] = None  # every data set: training augmentation (build_data), unset = none
    flip: Optional[bool] = None
    val_size: int = MISSING
    split_seed: int = MISSING
    train_subset: Optional[int] = None
    pad: Optional[int] = None  # fashion_mnist: zero padding on every side (2: 32x32 for the CIFAR models)


@dataclass
class PrunerConfig(Group):
    rate: float = MISSING
    rounds: int = MISSING
    reset: str = MISSING
    rewind_epoch: int = MISSING
    exclude: list[str] = MISSING
    min_remaining: float = MISSING
    batches: Optional[int] = None  # snip
    seed: Optional[int] = None  # random

    def pruner_options(self) -> dict[str, Any]:
        """What the pruner's constructor takes; the round loop uses the rest."""
        return self.options("rounds", "reset", "rewind_epoch", "exclude")


@dataclass
class ScheduleConfig(Group):
    policy: str = MISSING
    shape: str = MISSING
    # policies: constant (lr | max_lr), scurve (max_lr_low, max_lr_high, beta), grid (grid)
    lr: Optional[float] = None
    max_lr: Optional[float] = None
    max_lr_low: Optional[float] = None
    max_lr_high: Optional[float] = None
    beta: Optional[float] = None
    grid: Optional[list[float]] = None
    max_lr_dense: Optional[float] = None  # gradscale (max_lr_dense, exponent, min/max_factor, population, statistic)
    exponent: Optional[float] = None
    min_factor: Optional[float] = None
    max_factor: Optional[float] = None
    population: Optional[str] = None
    statistic: Optional[str] = None
    lag_rounds: Optional[int] = None  # every policy: read max_lr at the sparsity of round r - lag_rounds
    # shapes: triangular, step_decay, warmup_step_decay, cosine_restarts, one_cycle
    base_lr: Optional[float] = None
    cycles_per_round: Optional[int] = None
    milestones: Optional[list[float]] = None
    gamma: Optional[float] = None
    warmup_fraction: Optional[float] = None
    t0_epochs: Optional[int] = None
    t_mult: Optional[int] = None
    eta_min: Optional[float] = None
    fit_round: Optional[bool] = None
    pct_start: Optional[float] = None
    div_factor: Optional[float] = None
    final_div_factor: Optional[float] = None
    anneal_strategy: Optional[str] = None
    three_phase: Optional[bool] = None
    cycle_momentum: Optional[bool] = None

    def options(self, *skip: str) -> dict[str, Any]:
        return {"name": self.name, **super().options(*skip)}  # build_schedule reads the name too


@dataclass
class TrainConfig:
    epochs: int = MISSING
    batch_size: int = MISSING
    eval_batch_size: Any = MISSING  # auto (256 for conv nets on the CPU, else 1000) | an integer
    momentum: float = MISSING
    weight_decay: float = MISSING
    nesterov: bool = MISSING
    skip_nonfinite: bool = MISSING
    precision: str = MISSING
    channels_last: Any = MISSING  # auto | true | false
    compile: bool = MISSING
    cuda_graphs: Any = MISSING  # auto | true | false (one CUDA graph per training step)


@dataclass
class WandbConfig:
    mode: str = MISSING
    project: str = MISSING
    entity: Optional[str] = MISSING
    group: Optional[str] = MISSING
    tags: list[str] = MISSING
    log_every_steps: int = MISSING


@dataclass
class CheckpointConfig:
    keep: int = MISSING


@dataclass
class AnalysisConfig:
    grad_every_round: bool = MISSING
    grad_batches: int = MISSING
    normalize: bool = MISSING
    hist_bins: int = MISSING
    hist_range: Optional[float] = MISSING
    figures: bool = MISSING


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    seed: int = MISSING
    device: str = MISSING
    data_dir: str = MISSING
    progress: bool = MISSING
    resume: bool = MISSING
    resume_allow_data_change: bool = MISSING
    deterministic: bool = MISSING


def register_configs() -> None:
    ConfigStore.instance().store(name="scyc_schema", node=Config)


def _typed(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown and where:  # top level: sections a script adds to the schema (e.g. ``benchmark``) are its own
        keys = ", ".join(f"{where}.{k}" for k in unknown)
        raise ConfigError(f"unknown key(s) {keys}; allowed: {', '.join(sorted(known))}")
    values = {}
    for name, f in known.items():
        value = data.get(name)
        if isinstance(value, dict) and dataclasses.is_dataclass(_FIELD_TYPES.get(f.type, None)):
            value = _typed(_FIELD_TYPES[f.type], value, name)
        values[name] = value
    return cls(**values)


_FIELD_TYPES = {t.__name__: t for t in (ModelConfig, DatasetConfig, PrunerConfig, ScheduleConfig, TrainConfig,
                                        WandbConfig, AnalysisConfig, CheckpointConfig)}  # fmt: skip


def load(cfg: DictConfig | Config) -> Config:
    """The composed Hydra config as typed objects: the one ``to_container`` of a run. ``config.raw`` keeps
    the resolved config as plain containers (what a checkpoint, the resume check and W&B record)."""
    if isinstance(cfg, Config):
        return cfg
    raw = OmegaConf.to_container(cfg, resolve=True)
    config = _typed(Config, raw, "")
    config.raw = raw  # type: ignore[attr-defined]  (an attribute, not a config key)
    return config


def validate(cfg: Config) -> None:
    """Refuse bad input before anything is written; each message names the key and what is allowed."""
    checks = [
        ("pruner.rounds", cfg.pruner.rounds, lambda v: v >= 1, "an integer >= 1"),
        ("train.epochs", cfg.train.epochs, lambda v: v >= 1, "an integer >= 1"),
        ("train.batch_size", cfg.train.batch_size, lambda v: v >= 1, "an integer >= 1"),
        ("train.eval_batch_size", cfg.train.eval_batch_size, lambda v: v == "auto" or v >= 1, "auto or an int >= 1"),
        ("train.momentum", cfg.train.momentum, lambda v: 0 <= v < 1, "a number in [0, 1)"),
        ("train.weight_decay", cfg.train.weight_decay, lambda v: 0 <= v < math.inf, "a finite number >= 0"),
        ("dataset.val_size", cfg.dataset.val_size, lambda v: v >= 1, "an integer >= 1 (it picks the best epochs)"),
        ("checkpoint.keep", cfg.checkpoint.keep, lambda v: v >= 0, "an integer >= 0"),
        ("wandb.mode", cfg.wandb.mode, lambda v: v in ("offline", "online", "disabled"), "offline, online or disabled"),
    ]
    for key, value, ok, allowed in checks:
        if value is None or not ok(value):
            raise ConfigError(f"{key}={value} is not allowed: it must be {allowed}")
