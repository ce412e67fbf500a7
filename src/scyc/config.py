"""The typed config: the sections' dataclasses, the schemas stored for Hydra, and the one conversion to typed objects.

Defaults live in YAML only (``conf/``); the dataclasses hold types. A field without a default is required
(OmegaConf's ``???``): composition fails if no YAML sets it. Hydra refuses, at composition, a key that does not
exist (struct mode) and a value of the wrong type (``pruner.rate=abc``), naming the key.

- **pruner, model, dataset**: ``PrunerConfig``, ``ModelConfig`` and ``DatasetConfig`` hold only the keys every
  option of the group has. Each option composes against its own schema, a subclass generated from its class's
  constructor (``scyc.foundations.schema.option_schema``, made by ``option_schemas``) and named first in its YAML's defaults list
  (``- /schema/pruner/snip@_here_``): a key of another option (``pruner=snip pruner.seed=3``) or a wrongly
  typed one (``pruner.batches=abc``) is refused by Hydra.
- **schedule**: a policy x shape pair whose pieces swap on the command line (``schedule.shape=step_decay
  +schedule.gamma=0.2``; ``+`` or not: the key exists, unset; ``schedule.base_lr=null`` unsets a key the new
  piece does not use), so its keys stay flat: the composed section's schema is ``ScheduleConfig`` plus every
  registered piece's keys, typed and ``null`` unless set (``scyc.foundations.schema.union_schema``); ``build_schedule``
  refuses a set key that neither piece in use takes.
- **train**'s ``eval_batch_size`` (auto or an integer), ``channels_last`` and ``cuda_graphs`` (auto, true or
  false): OmegaConf 2.3 has no union and its Enum nodes refuse YAML's true/false, so Hydra checks them as strings
  (``TrainSchema``) and ``TrainConfig`` turns them into ``int | None`` and ``Switch``, refusing anything else in
  one line naming the key.

``load`` converts the composed config once (``OmegaConf.to_container``) into a ``Config`` whose group sections
are instances of their options' schemas, and keeps the plain containers as ``config.raw`` (what a run records);
``validate`` is the one start-up check of the values Hydra's types cannot express (ranges, combinations). The
constructors (pruner, schedule, data set, model) check their own parameters when the run is built, still before
anything is written.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import typing
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from scyc.foundations.registry import ConfigError
from scyc.foundations.schema import option_schema, union_schema


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
    """Every model's keys: ``name`` (a registered model, a timm name or a dotted path). Each option's own keys are
    its schema's (``scyc.foundations.schema``: the factory's keyword parameters)."""


@dataclass(kw_only=True)
class DatasetConfig(Group):
    """Every data set's keys: what ``build_data`` reads (the split, the subsets, the training augmentation). Each
    option's own keys (root, download, ...) are its schema's (``scyc.foundations.schema``: the factory's keyword parameters)."""

    crop_padding: int | None = None  # training augmentation: random crop of the image padded by this; null: none
    flip: bool | None = None  # random horizontal flip (training); null: none
    val_size: int
    split_seed: int
    train_subset: int | None  # train on the first N remaining training examples (null: all)
    test_subset: int | None  # evaluate on the first N test examples (null: all); val_size sizes val


@dataclass(kw_only=True)
class PrunerConfig(Group):
    """Every pruner's keys: the round loop's (conf/config.yaml sets them) and ``rate``/``min_remaining``, which every
    pruner's constructor takes. Each option's own keys (``snip``'s batches) are its schema's (``scyc.foundations.schema``)."""

    rate: float
    rounds: int
    reset: str
    rewind_epoch: int
    exclude: list[str]
    min_remaining: float

    def pruner_options(self) -> dict[str, Any]:
        """What the pruner's constructor takes; the round loop uses the rest."""
        return self.options("rounds", "reset", "rewind_epoch", "exclude")


@dataclass(kw_only=True)
class ScheduleConfig(Group):
    """A schedule's own keys; the composed section's type adds every policy's and shape's keys, each null unless
    set (``scyc.foundations.schema.union_schema``), and ``build_schedule`` gives each piece those of its signature."""

    policy: str
    shape: str
    lag_rounds: int | None = None  # every policy: read max_lr at the sparsity of round r - lag_rounds (null: 0)

    def options(self, *skip: str) -> dict[str, Any]:
        return {"name": self.name, **super().options(*skip)}  # build_schedule reads the name too


class Switch(str, Enum):
    """``auto | true | false`` (``train.channels_last``, ``train.cuda_graphs``): ``auto`` lets the run decide."""

    AUTO = "auto"
    ON = "true"
    OFF = "false"

    @classmethod
    def parse(cls, key: str, value: object) -> Switch:
        """The switch written as ``value`` (YAML's or the command line's true/false, or the schema's string)."""
        if isinstance(value, cls):
            return value
        if isinstance(value, bool):
            return cls.ON if value else cls.OFF
        switch = {"auto": cls.AUTO, "true": cls.ON, "false": cls.OFF}.get(str(value).lower())
        if switch is None:
            raise ConfigError(f"{key}={_shown(value)} is not allowed: choose auto, true or false")
        return switch

    def resolve(self, auto: bool) -> bool:
        """On or off: ``auto`` the run's choice, else as set."""
        return auto if self is Switch.AUTO else self is Switch.ON

    @property
    def written(self) -> str | bool:
        """As YAML writes it (what a run's recorded config holds)."""
        return self.value if self is Switch.AUTO else self is Switch.ON


def _shown(value: object) -> object:
    """A value as written on the command line: true, not True (a bool, or the schema's string of one)."""
    return str(value).lower() if isinstance(value, bool) or value in ("True", "False") else value


def parse_batch_size(key: str, value: object) -> int | None:
    """``auto`` (None) or an integer >= 1, written as a number or (the schema's string) its digits."""
    if value is None or value == "auto":
        return None
    number = int(value) if isinstance(value, str) and value.isdigit() else value
    if not _int(number) or number < 1:
        raise ConfigError(f"{key}={_shown(value)} is not allowed: it must be auto or an int >= 1")
    return number


@dataclass(kw_only=True)
class TrainConfig:
    epochs: int
    batch_size: int
    eval_batch_size: int | None  # None: auto (256 for conv nets on the CPU, else 1000)
    momentum: float
    weight_decay: float
    nesterov: bool
    skip_nonfinite: bool
    precision: str
    channels_last: Switch
    compile: bool
    cuda_graphs: Switch  # one CUDA graph per training step

    def __post_init__(self) -> None:  # the values as written (YAML, the command line, the schema's strings)
        self.eval_batch_size = parse_batch_size("train.eval_batch_size", self.eval_batch_size)
        self.channels_last = Switch.parse("train.channels_last", self.channels_last)
        self.cuda_graphs = Switch.parse("train.cuda_graphs", self.cuda_graphs)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"train.precision={self.precision} is not allowed: choose one of {', '.join(PRECISIONS)}")


PRECISIONS = ("auto", "bf16", "fp32")  # auto: bf16 autocast on CUDA, fp32 elsewhere (scyc.platforms.speed)


# What Hydra checks of ``train``: OmegaConf 2.3 has no Union (``auto`` or an integer), and its Enum nodes refuse
# YAML's true/false, so the three switches are strings there; TrainConfig turns them into typed values.
SWITCHES = ("eval_batch_size", "channels_last", "cuda_graphs")


def written_switches(train: dict[str, Any]) -> dict[str, Any]:
    """The ``train`` switches of a plain section as YAML writes them (``auto``, ``512``, ``true``; the schema holds
    them as strings): what a run records, in ``config.raw`` and in .hydra/config.yaml. An interpolation is left."""
    written: dict[str, Any] = {}
    for key in SWITCHES:
        if key not in train or str(train[key]).startswith("${"):
            continue
        if key == "eval_batch_size":
            size = parse_batch_size(f"train.{key}", train[key])
            written[key] = "auto" if size is None else size
        else:
            written[key] = Switch.parse(f"train.{key}", train[key]).written
    return written


TrainSchema = dataclasses.make_dataclass(
    "TrainSchema",
    [(k, str if k in SWITCHES else t) for k, t in typing.get_type_hints(TrainConfig).items()],
    kw_only=True,
)
TrainSchema.__module__ = __name__


@dataclass(kw_only=True)
class WandbConfig:
    mode: str
    project: str
    entity: str | None
    group: str | None
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
    hist_range: float | None
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


MODEL_FROM_DATA = ("name", "num_classes", "in_channels", "image_size")  # a model factory's, given by the data set
DATA_FROM_RUN = ("data_dir",)  # a data-set factory's, given by the run


@functools.cache
def option_schemas() -> dict[str, dict[str, type]]:
    """``{group: {option: schema}}`` for every registered pruner, model (and ``timm``: any timm name) and data set,
    each generated from its constructor (``scyc.foundations.schema.option_schema``)."""
    from scyc.data import DATASETS  # the registries (torch): their constructors are the schemas
    from scyc.models import MODELS
    from scyc.models.timm_models import timm_model
    from scyc.pruning import PRUNERS

    models = {name: MODELS.get(name) for name in MODELS.names()} | {"timm": timm_model}
    return {
        "pruner": {n: option_schema(PrunerConfig, PRUNERS.get(n), n) for n in PRUNERS.names()},
        "model": {n: option_schema(ModelConfig, f, n, MODEL_FROM_DATA) for n, f in models.items()},
        "dataset": {n: option_schema(DatasetConfig, DATASETS.get(n), n, DATA_FROM_RUN) for n in DATASETS.names()},
    }


@functools.cache
def schedule_schema() -> type:
    """The ``schedule`` section: ``ScheduleConfig`` and every registered piece's keys (``scyc.foundations.schema.union_schema``)."""
    from scyc.schedules import POLICIES, SHAPES

    return union_schema(ScheduleConfig, {f"{r.kind} {n}": r.get(n) for r in (POLICIES, SHAPES) for n in r.names()})


@functools.cache
def config_schema() -> type:
    """The top-level schema Hydra composes against (``scyc_schema``): ``Config`` with the union schedule and the
    train section as written (``TrainSchema``)."""
    specs = [("schedule", schedule_schema()), ("train", TrainSchema)]
    cls = dataclasses.make_dataclass("ConfigSchema", specs, bases=(Config,), kw_only=True)
    cls.__module__ = __name__
    return cls


def __getattr__(name: str) -> type:
    """A generated schema by its class name: what unpickling a composed config asks this module for (a joblib or
    submitit worker's composed config holds those types)."""
    if not name.startswith("__"):  # not the import system's questions (``__path__``)
        made = [config_schema(), schedule_schema(), *(c for g in option_schemas().values() for c in g.values())]
        found = [c for c in made if c.__name__ == name]
        if found:
            return found[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


SCHEMA_ENTRY = re.compile(r"^\s*-\s*/schema/(\w+)/(\w+)@_here_", re.M)  # an option YAML's schema


def register_configs(untyped_from: Path | None = None) -> None:
    """Store the schemas in Hydra's ConfigStore: ``scyc_schema`` (conf/config.yaml's defaults list names it) and
    ``schema/<group>/<option>`` for every pruner, model and data set (each option's YAML names its own).

    ``untyped_from`` (a ``conf/`` folder): empty nodes under the names its YAMLs name instead, for what only shows
    the YAML's keys and values (``train.py --help``, shell completion): the typed schemas are the registries'
    constructors, and importing them (torch) takes seconds where these take milliseconds. A run never uses them."""
    store = ConfigStore.instance()
    if untyped_from is not None:
        store.store(name="scyc_schema", node={})
        named = {m.groups() for p in untyped_from.rglob("*.yaml") for m in SCHEMA_ENTRY.finditer(p.read_text())}
        for group, name in sorted(named):
            store.store(group=f"schema/{group}", name=name, node={})
        return
    store.store(name="scyc_schema", node=config_schema())
    for group, options in option_schemas().items():
        for name, node in options.items():
            store.store(group=f"schema/{group}", name=name, node=node)


def _typed(cls: type, data: dict[str, object], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:  # e.g. +pruner.seed=3 for a pruner that has no seed (``+`` adds a key Hydra would refuse)
        keys = ", ".join(f"{where}.{k}" for k in unknown)
        raise ConfigError(f"unknown key(s) {keys}; allowed: {', '.join(sorted(known))}")
    return cls(**{name: data.get(name) for name in known})


def load(cfg: DictConfig | Config) -> Config:
    """The composed Hydra config as typed objects: the one ``to_container`` of a run. Each section's class is the
    one Hydra composed it with (a pruner's, model's, data set's own schema) when it extends the declared one.
    ``config.raw`` keeps the resolved config as plain containers (what a checkpoint, the resume check and W&B
    record), the train switches as YAML writes them (``512``, ``true``; the schema holds them as strings)."""
    if isinstance(cfg, Config):
        return cfg
    raw = OmegaConf.to_container(cfg, resolve=True)
    declared = typing.get_type_hints(Config)
    values = {}
    for f in fields(Config):
        value, cls = raw.get(f.name), declared[f.name]
        if isinstance(value, dict) and dataclasses.is_dataclass(cls):
            composed = OmegaConf.get_type(cfg, f.name)
            cls = composed if isinstance(composed, type) and issubclass(composed, cls) else cls
            value = _typed(cls, value, f.name)
        values[f.name] = value
    config = Config(**values)  # sections a script adds to the schema (e.g. ``benchmark``) are its own
    if isinstance(raw.get("train"), dict):
        raw["train"].update(written_switches(raw["train"]))
    config.raw = raw  # type: ignore[attr-defined]  (an attribute, not a config key)
    return config


def _int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


SEED_RANGE = (-(2**63), 2**63 - 1)  # a 64-bit integer: what torch.manual_seed and torch.Generator take


def validate(cfg: Config) -> None:
    """Refuse bad input before anything is written; each message names the key and what is allowed."""
    low, high = SEED_RANGE
    seed_ok, seeds = (lambda v: _int(v) and low <= v <= high), "an integer in [-2**63, 2**63 - 1] (64 bits)"
    nesterov = f"false with train.momentum={cfg.train.momentum} (Nesterov momentum needs train.momentum > 0)"
    checks = [
        ("seed", cfg.seed, seed_ok, seeds),
        ("dataset.split_seed", cfg.dataset.split_seed, seed_ok, seeds),
        ("pruner.rounds", cfg.pruner.rounds, lambda v: v >= 1, "an integer >= 1"),
        ("train.epochs", cfg.train.epochs, lambda v: v >= 1, "an integer >= 1"),
        ("train.batch_size", cfg.train.batch_size, lambda v: v >= 1, "an integer >= 1"),
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
            raise ConfigError(f"{key}={_shown(value)} is not allowed: it must be {allowed}")
    from scyc.analysis.gradients import check_analysis_config  # torch: imported when a run is validated

    check_analysis_config(cfg.analysis)
    check_combinations(cfg)
    subset = cfg.dataset.test_subset  # its upper bound (the test set's size) is checked when the data are read
    if subset is not None and subset < 1:
        raise ConfigError(f"dataset.test_subset={subset} is not allowed: it must be null (the whole test set) or "
                          "an integer >= 1 (the first N test examples)")  # fmt: skip


def check_combinations(cfg: Config) -> None:
    """The combinations of keys a config alone decides (a part of ``validate``). Those that need a built object (a
    pruner's rounds against the model's size, a shape's floor against the policy's lowest max_lr, a switch against
    the device) are checked when ``build_run`` builds it, still before anything is written."""
    epochs, rewind = cfg.train.epochs, cfg.pruner.rewind_epoch
    if cfg.pruner.reset == "rewind_epoch" and not 0 <= rewind <= epochs:
        raise ConfigError(f"pruner.rewind_epoch={rewind} is not allowed with train.epochs={epochs}: it must be an "
                          f"integer in [0, {epochs}] (0 = the initialisation, e = after e epochs of round 0)")  # fmt: skip
    from scyc.schedules import POLICIES, MeasuredPolicy

    policy = POLICIES.get(cfg.schedule.policy)
    if isinstance(policy, type) and issubclass(policy, MeasuredPolicy) and not cfg.analysis.grad_every_round:
        raise ConfigError(f"schedule={cfg.schedule.name} reads max_lr from the gradient measurement: it needs "
                          "analysis.grad_every_round=true")  # fmt: skip
