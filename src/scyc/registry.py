"""One registry per concern (models, data sets, pruners, schedule pieces), as in open_lth.

A registry maps a short name to a class or factory. ``get`` also accepts a dotted import path
(``mypackage.module.MyPruner``), so code that lives outside this repository plugs in with a YAML
alone. ``build`` checks the keyword arguments against the factory's signature first, so a misspelled
config key fails with a message naming the key and the accepted ones instead of a bare TypeError.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A bad configuration value: the message names the key, the value and what is allowed."""


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(obj: Callable[..., T]) -> Callable[..., T]:
            if name in self._items and self._items[name] is not obj:
                raise KeyError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def get(self, name: str) -> Callable[..., T]:
        if name in self._items:
            return self._items[name]
        if "." in name:
            module_name, _, attr = name.rpartition(".")
            try:
                return getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as exc:
                raise ConfigError(f"cannot import {self.kind} '{name}': {exc}") from exc
        raise ConfigError(
            f"unknown {self.kind} '{name}'; choose one of: {', '.join(self.names())} (or give a dotted import path)"
        )

    def build(self, name: str, params: Mapping[str, Any] | None = None, *, key: str = "") -> T:
        factory = self.get(name)
        params = dict(params or {})
        check_kwargs(factory, params, where=key or self.kind)
        return factory(**params)


def accepted_kwargs(factory: Callable[..., Any]) -> set[str] | None:
    """Names a factory accepts as keywords, or None when it takes ``**kwargs``."""
    sig = inspect.signature(factory)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values()):
        return None
    return {
        n
        for n, p in sig.parameters.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }


def check_kwargs(factory: Callable[..., Any], params: Iterable[str], where: str) -> None:
    allowed = accepted_kwargs(factory)
    if allowed is None:
        return
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def import_submodules(package: str) -> None:
    """Import every module of a package so that their ``@register`` decorators run.

    Adding a pruner or a schedule piece is then one new file (the class) and one YAML.
    """
    import pkgutil

    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
