"""The Hydra schemas generated from the constructors: one per pruner, model and data set, and the schedule's union.

A registered class's config keys are its constructor's keyword parameters, typed by their annotations; no list of
keys is written by hand. ``option_schema`` makes one dataclass per option (a subclass of its group's base in
``scyc.config``: the keys every option has), which ``scyc.config.register_configs`` stores in Hydra's ConfigStore
as ``schema/<group>/<name>``; each option's YAML names its schema first in its defaults list
(``- /schema/pruner/snip@_here_``), so the composed section takes that type, and Hydra refuses at composition a
key of another option (``pruner=snip pruner.seed=3``) or a wrongly typed value (``pruner.batches=abc``), naming
the key.

A parameter without a default is required (OmegaConf's ``???``: its YAML sets it, possibly to ``null`` where the
annotation allows ``None``); one with a default (a plug-in point such as ``random``'s ``seed``) may be left unset
(``null``) and is then not passed on, so the constructor's default applies.

A schedule is a policy x shape pair whose pieces swap on the command line (``schedule.shape=step_decay
+schedule.gamma=0.2``), so its keys stay flat: ``union_schema`` gives every key of every registered piece, typed,
each ``null`` unless set; ``build_schedule`` hands each piece the keys of its own signature and refuses the rest.
Two pieces that take one key with different types are refused here, when the schema is made.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
SCALARS = (int, float, str, bool)


def keyword_params(factory: Callable[..., Any], skip: Iterable[str] = ()) -> dict[str, inspect.Parameter]:
    """The keyword parameters of ``factory`` (a class: its ``__init__``'s) but ``skip``: the keys it takes."""
    skipped = set(skip)
    params = inspect.signature(factory).parameters.values()  # through functools.wraps; a class without self
    return {p.name: p for p in params if p.kind in KEYWORD and p.name not in skipped}


def _hints(factory: Callable[..., Any]) -> dict[str, Any]:
    target = inspect.unwrap(factory)
    return typing.get_type_hints(target.__init__ if isinstance(target, type) else target)


def config_type(hint: Any, where: str) -> Any:
    """``hint`` as a type OmegaConf holds: scalars, ``X | None``, a sequence as ``list[X]``; else a TypeError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and len(args) == 2:
            return typing.Union[config_type(inner[0], where), None]  # noqa: UP007 (built at run time)
    elif origin in (list, tuple, collections.abc.Sequence) and len(args) == 1 and args[0] in SCALARS:
        return list[args[0]]
    elif hint in SCALARS:
        return hint
    raise TypeError(f"{where}: its annotation {hint!r} is no type a config key can have (int, float, str, bool, "
                    "X | None, a sequence of one of them)")  # fmt: skip


def _optional(hint: Any) -> Any:
    return hint if type(None) in typing.get_args(hint) else typing.Union[hint, None]  # noqa: UP007


def typed_params(factory: Callable[..., Any], skip: Iterable[str], where: str) -> dict[str, tuple[Any, bool]]:
    """``{key: (its config type, whether it has a default)}`` for the keyword parameters of ``factory``."""
    hints = _hints(factory)
    return {
        name: (config_type(hints.get(name, p.annotation), f"{where}.{name}"), p.default is not inspect.Parameter.empty)
        for name, p in keyword_params(factory, skip).items()
    }


def option_schema(base: type, factory: Callable[..., Any], name: str, skip: Iterable[str] = ()) -> type:
    """The schema of one option: ``base`` (the group's common keys) and the keyword parameters of ``factory``."""
    common = {f.name for f in dataclasses.fields(base)}
    specs: list[Any] = []
    for key, (hint, has_default) in typed_params(factory, (*skip, *common), f"{base.__name__} {name}").items():
        specs.append((key, _optional(hint), dataclasses.field(default=None)) if has_default else (key, hint))
    cls_name = "".join(part.capitalize() for part in name.replace(".", "_").split("_")) + base.__name__
    return _made(cls_name, specs, base)


def union_schema(base: type, factories: dict[str, Callable[..., Any]]) -> type:
    """``base`` plus every keyword parameter of ``factories`` (``{"policy scurve": cls, ...}``), each ``X | None``
    and ``null`` by default; a key two factories type differently is a TypeError naming both."""
    common = {f.name for f in dataclasses.fields(base)}
    keys: dict[str, tuple[Any, str]] = {}
    for where, factory in factories.items():
        for key, (hint, _) in typed_params(factory, common, where).items():
            hint = _optional(hint)
            if key in keys and keys[key][0] != hint:
                raise TypeError(f"schedule.{key} is {keys[key][0]} for {keys[key][1]} but {hint} for {where}: one "
                                "flat key has one type (rename one of them)")  # fmt: skip
            keys.setdefault(key, (hint, where))
    specs = [(key, hint, dataclasses.field(default=None)) for key, (hint, _) in keys.items()]
    return _made(f"Union{base.__name__}", specs, base)


def _made(name: str, specs: list[Any], base: type) -> type:
    """A dataclass of this module (by name: a composed config that holds it pickles, for joblib's and submitit's
    workers, whose ``import scyc.schema`` makes it again through the module's ``__getattr__``)."""
    cls = dataclasses.make_dataclass(name, specs, bases=(base,), kw_only=True)
    cls.__module__ = __name__
    return cls


# ---------------------------------------------------------------------------------------------- this project's
MODEL_FROM_DATA = ("name", "num_classes", "in_channels", "image_size")  # a model's, given by the data set
DATA_FROM_RUN = ("data_dir",)  # a data set's, given by the run


@functools.cache
def option_schemas() -> dict[str, dict[str, type]]:
    """``{group: {option: schema}}`` for every registered pruner, model (and ``timm``: any timm name), data set."""
    from scyc import config
    from scyc.data import DATASETS
    from scyc.models import MODELS
    from scyc.models.timm_models import timm_model
    from scyc.pruning import PRUNERS

    models = {name: MODELS.get(name) for name in MODELS.names()} | {"timm": timm_model}
    return {
        "pruner": {n: option_schema(config.PrunerConfig, PRUNERS.get(n), n) for n in PRUNERS.names()},
        "model": {n: option_schema(config.ModelConfig, f, n, MODEL_FROM_DATA) for n, f in models.items()},
        "dataset": {
            n: option_schema(config.DatasetConfig, DATASETS.get(n), n, DATA_FROM_RUN) for n in DATASETS.names()
        },
    }


@functools.cache
def schedule_schema() -> type:
    """The ``schedule`` section: name, policy, shape, lag_rounds, extra and every registered piece's keys."""
    from scyc import config
    from scyc.schedules import POLICIES, SHAPES

    pieces = {f"{r.kind} {n}": r.get(n) for r in (POLICIES, SHAPES) for n in r.names()}
    return union_schema(config.ScheduleConfig, pieces)


@functools.cache
def config_schema() -> type:
    """The top-level schema Hydra composes against (``scyc_schema``): ``scyc.config.Config`` with the union schedule
    and the train section as written (``scyc.config.TrainSchema``)."""
    from scyc import config

    specs = [("schedule", schedule_schema()), ("train", config.TrainSchema)]
    cls = dataclasses.make_dataclass("ConfigSchema", specs, bases=(config.Config,), kw_only=True)
    cls.__module__ = __name__
    return cls


def __getattr__(name: str) -> type:
    """A generated schema by its class name (what unpickling a composed config asks this module for)."""
    if name.startswith("__"):  # the import system's questions (``__path__``): not a schema
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    made = [config_schema(), schedule_schema(), *(c for g in option_schemas().values() for c in g.values())]
    found = [c for c in made if c.__name__ == name]
    if not found:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return found[0]
