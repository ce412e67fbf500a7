"""The typed config: the schema Hydra checks overrides against, and the one conversion to typed objects.

Defaults live in YAML only (``conf/``); the dataclasses below hold types. A field without a default is
required (OmegaConf's ``???``): composition fails if no YAML sets it. Hydra refuses, at composition,
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
from dataclasses import dataclass, fields
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from scyc.foundations.registry import ConfigError


@dataclass(kw_only=True)
class Group:
    """A config group: ``name`` picks the registered class, ``options()`` are the keys set for it."""

    name: str
    # Keys of a plug-in class (dotted-path name) that the schema does not know: a dict that is always there, so
    # ``pruner.extra.eps=1e-9`` (with or without ``+``) and ``schedule.extra={final_fraction:0.01}`` work with or
    # without an ``extra:`` block in the option's YAML; ``registry.build`` refuses a key the class does not take.
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def options(self, *skip: str) -> dict[str, Any]:
        """The keys that are set (not null), without ``name`` and ``skip``, plus ``extra``."""
        drop = {"name", "extra", *skip}
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in drop}
        return {k: v for k, v in values.items() if v is not None} | (self.extra or {})


@dataclass(kw_only=True)
class ModelConfig(Group):
    hidden: Optional[list[int]] = None  # lenet300
    width: Optional[int] = None  # resnet20
    shortcut: Optional[str] = None  # resnet20
    small_input: Optional[bool] = None  # resnet50, timm


@dataclass(kw_only=True)
class DatasetConfig(Group):
    root: Optional[str] = None
    download: Optional[bool] = None
    verify_checksums: Optional[bool] = None
    cache: Optional[bool] = None
    crop_padding: Optional[int] = None  # every data set: training augmentation (build_data), unset = none
    flip: Optional[bool] = None
    val_size: int
    split_seed: int
    train_subset: Optional[int] = None
    test_subset: Optional[int] = None  # evaluate on the first N test examples (null: all); val_size sizes val
    pad: Optional[int] = None  # fashion_mnist: zero padding on every side (2: 32x32 for the CIFAR models)


@dataclass(kw_only=True)
class PrunerConfig(Group):
    rate: float
    rounds: int
    reset: str
    rewind_epoch: int
    exclude: list[str]
    min_remaining: float
    batches: Optional[int] = None  # snip
    seed: Optional[int] = None  # random

    def pruner_options(self) -> dict[str, Any]:
        """What the pruner's constructor takes; the round loop uses the rest."""
        return self.options("rounds", "reset", "rewind_epoch", "exclude")


@dataclass(kw_only=True)
class ScheduleConfig(Group):
    policy: str
    shape: str
    # Each policy's and shape's keys (its ``keys``), unset (null) unless its YAML or an override sets them.
    lag_rounds: Optional[int] = None  # every policy: read max_lr at the sparsity of round r - lag_rounds
    # policy constant
    lr: Optional[float] = None
    max_lr: Optional[float] = None
    # policy scurve
    max_lr_low: Optional[float] = None
    max_lr_high: Optional[float] = None
    beta: Optional[float] = None
    # policy grid (the oracle)
    grid: Optional[list[float]] = None
    # policy gradscale
    max_lr_dense: Optional[float] = None
    exponent: Optional[float] = None
    min_factor: Optional[float] = None
    max_factor: Optional[float] = None
    population: Optional[str] = None
    statistic: Optional[str] = None
    # shape triangular
    base_lr: Optional[float] = None
    cycles_per_round: Optional[int] = None
    # shapes step_decay and warmup_step_decay
    milestones: Optional[list[float]] = None
    gamma: Optional[float] = None
    warmup_fraction: Optional[float] = None
    # shape cosine_restarts
    t0_epochs: Optional[int] = None
    t_mult: Optional[int] = None
    eta_min: Optional[float] = None
    fit_round: Optional[bool] = None
    # shape one_cycle
    pct_start: Optional[float] = None
    div_factor: Optional[float] = None
    final_div_factor: Optional[float] = None
    anneal_strategy: Optional[str] = None
    three_phase: Optional[bool] = None
    cycle_momentum: Optional[bool] = None

    def options(self, *skip: str) -> dict[str, Any]:
        return {"name": self.name, **super().options(*skip)}  # build_schedule reads the name too


@dataclass(kw_only=True)
class TrainConfig:
    epochs: int
    batch_size: int
    eval_batch_size: Any  # auto (256 for conv nets on the CPU, else 1000) | an integer
    momentum: float
    weight_decay: float
    nesterov: bool
    skip_nonfinite: bool
    precision: str
    channels_last: Any  # auto | true | false
    compile: bool
    cuda_graphs: Any  # auto | true | false (one CUDA graph per training step)


@dataclass(kw_only=True)
class WandbConfig:
    mode: str
    project: str
    entity: Optional[str]
    group: Optional[str]
    tags: list[str]
    log_every_steps: int


@dataclass(kw_only=True)
class CheckpointConfig:
    keep: int


@dataclass(kw_only=True)
class AnalysisConfig:
    grad_every_round: bool
    grad_batches: int
    normalize: bool
    hist_bins: int
    hist_range: Optional[float]
    figures: bool


@dataclass(kw_only=True)
class Config:
    model: ModelConfig
    dataset: DatasetConfig
    pruner: PrunerConfig
    schedule: ScheduleConfig
    train: TrainConfig
    wandb: WandbConfig
    analysis: AnalysisConfig
    checkpoint: CheckpointConfig
    seed: int
    device: str
    data_dir: str
    progress: bool
    resume: bool
    resume_allow_data_change: bool
    deterministic: bool


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


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


SEED_RANGE = (-(2**63), 2**63 - 1)  # a 64-bit integer: what torch.manual_seed and torch.Generator take


def validate(cfg: Config) -> None:
    """Refuse bad input before anything is written; each message names the key and what is allowed."""
    low, high = SEED_RANGE
    seed_ok, seeds = (lambda v: _int(v) and low <= v <= high), "an integer in [-2**63, 2**63 - 1] (64 bits)"
    ebs = "auto or an int >= 1"
    nesterov = f"false with train.momentum={cfg.train.momentum} (Nesterov momentum needs train.momentum > 0)"
    checks = [
        ("seed", cfg.seed, seed_ok, seeds),
        ("dataset.split_seed", cfg.dataset.split_seed, seed_ok, seeds),
        ("pruner.rounds", cfg.pruner.rounds, lambda v: v >= 1, "an integer >= 1"),
        ("train.epochs", cfg.train.epochs, lambda v: v >= 1, "an integer >= 1"),
        ("train.batch_size", cfg.train.batch_size, lambda v: v >= 1, "an integer >= 1"),
        ("train.eval_batch_size", cfg.train.eval_batch_size, lambda v: v == "auto" or _int(v) and v >= 1, ebs),
        ("train.momentum", cfg.train.momentum, lambda v: 0 <= v < 1, "a number in [0, 1)"),
        ("train.nesterov", cfg.train.nesterov, lambda v: not v or cfg.train.momentum > 0, nesterov),
        ("train.weight_decay", cfg.train.weight_decay, lambda v: 0 <= v < math.inf, "a finite number >= 0"),
        ("dataset.val_size", cfg.dataset.val_size, lambda v: v >= 1, "an integer >= 1 (it picks the best epochs)"),
        ("checkpoint.keep", cfg.checkpoint.keep, lambda v: v >= 0, "an integer >= 0"),
        ("wandb.mode", cfg.wandb.mode, lambda v: v in ("offline", "online", "disabled"), "offline, online or disabled"),
    ]
    for key, value, ok, allowed in checks:
        try:
            accepted = value is not None and ok(value)
        except TypeError:  # a value of another type than the check compares (e.g. eval_batch_size=abc)
            accepted = False
        if not accepted:
            shown = str(value).lower() if isinstance(value, bool) else value  # as written on the command line
            raise ConfigError(f"{key}={shown} is not allowed: it must be {allowed}")
    from scyc.analysis.gradients import check_analysis_config  # torch: imported when a run is validated

    check_analysis_config(dataclasses.asdict(cfg.analysis))
    subset = cfg.dataset.test_subset  # its upper bound (the test set's size) is checked when the data are read
    if subset is not None and subset < 1:
        raise ConfigError(f"dataset.test_subset={subset} is not allowed: it must be null (the whole test set) or "
                          "an integer >= 1 (the first N test examples)")  # fmt: skip
