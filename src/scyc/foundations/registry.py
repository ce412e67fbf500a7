"""One registry per concern (models, data sets, pruners, schedule pieces), as in open_lth.

A registry maps a short name to a class or factory. ``get`` also accepts a dotted import path
(``mypackage.module.MyPruner``), so code that lives outside this repository plugs in with a YAML
alone. ``build`` turns the call's own ``TypeError`` (a key the factory does not take, a required one
missing) into a ``ConfigError`` naming the key, so a misplaced config key fails before any training.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
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
        try:
            return factory(**dict(params or {}))
        except TypeError as exc:
            if not _binding_error(factory, exc):
                raise  # raised inside the factory: a bug, not a config key
            # raised by the call itself: a key the factory does not take, or a required one missing
            what = "unknown key" if "unexpected keyword" in str(exc) else "missing key"
            raise ConfigError(f"{key or self.kind} '{name}': {what}: {exc}") from None


def _binding_error(factory: Callable[..., Any], exc: TypeError) -> bool:
    """Whether ``exc`` is the call's own argument-binding error, not one raised inside the factory's body.

    Raised by the call itself, it has no frame below the caller's. Through a decorator (``functools.wraps``)
    it is raised one frame down, by the wrapped function, whose name Python puts first in the message.
    """
    if exc.__traceback__ is not None and exc.__traceback__.tb_next is None:
        return True
    target = inspect.unwrap(factory)  # through functools.wraps' __wrapped__ chain
    target = target.__init__ if isinstance(target, type) else target
    qualname = getattr(target, "__qualname__", "")
    return hasattr(factory, "__wrapped__") and bool(qualname) and str(exc).startswith(f"{qualname}()")


def import_submodules(package: str) -> None:
    """Import every module of a package so that their ``@register`` decorators run.

    Adding a pruner or a schedule piece is then one new file (the class) and one YAML.
    """
    import pkgutil

    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
