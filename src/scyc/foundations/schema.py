"""The Hydra schemas generated from the constructors: one per pruner, model and data set, and the schedule's union.

A registered class's config keys are its constructor's keyword parameters, typed by their annotations; no list of
keys is written by hand. ``option_schema`` makes one dataclass per option (a subclass of its group's base in
``scyc.config``: the keys every option has), which ``scyc.config.register_configs`` makes for every registered
pruner, model and data set and stores in Hydra's ConfigStore as ``schema/<group>/<name>``; each option's YAML names its schema first in its defaults list
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
    """A dataclass of its base's module, by name: a composed config that holds it pickles (for joblib's and
    submitit's workers), and that module makes it again when asked for it (``scyc.config.__getattr__``)."""
    cls = dataclasses.make_dataclass(name, specs, bases=(base,), kw_only=True)
    cls.__module__ = base.__module__
    return cls
