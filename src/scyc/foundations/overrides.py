"""The command line's ``key=value`` overrides, checked and normalised before Hydra composes them.

Two things Hydra does not do for this project's schema (``scyc.config``):

- a plug-in's own keys (``pruner.extra.eps=1e-9``, ``schedule.extra={final_fraction:0.01}``) are set whether
  or not the option's YAML has an ``extra:`` block: such overrides become Hydra's ``++`` (add or override);
- a key no schema has (``pruner.rte=0.3``) is refused in one line naming the close matches
  ("did you mean pruner.rate?") instead of Hydra's hint to add ``+``.

Both ``train.py`` (``scyc.cli.main``, on ``sys.argv``) and ``scyc.run`` (on its ``overrides``) go through here.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from collections.abc import Sequence
from pathlib import Path

from scyc.foundations.registry import ConfigError

GROUPS = ("model", "dataset", "pruner", "schedule")  # the option groups of conf/ that a plain key=value picks
EXTRA = re.compile(r"^(model|dataset|pruner|schedule)\.extra(\.|$)")


def _key(override: str) -> str | None:
    """The key of a plain ``key=value`` override; None for flags, ``+``/``++``/``~`` ones and Hydra's own."""
    if override.startswith(("-", "+", "~")) or "=" not in override:
        return None
    key = override.split("=", 1)[0]
    return None if key.startswith("hydra") or "/" in key else key


def schema_keys() -> list[str]:
    """Every dotted key of the typed schema (``scyc.config.config_schema``): sections and their fields, with the
    keys of every pruner's, model's and data set's own schema (Hydra refuses those of another option)."""
    from scyc import config

    keys: list[str] = []

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if prefix + f.name not in keys:
                keys.append(prefix + f.name)
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], f"{prefix}{f.name}.")

    walk(config.config_schema(), "")
    for group, options in config.option_schemas().items():
        for option in options.values():
            walk(option, f"{group}.")
    return keys


# Hydra's options that take a value (the next argument, never an override); shell completion: left to Hydra
TAKES_VALUE = {"-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "-p", "--package", "--cfg", "-c"}
COMPLETION = {"-sc", "--shell-completion"}


def _overrides(args: Sequence[str]) -> list[tuple[int, str]]:
    """The overrides among command-line ``args`` (with their positions); none when completing a command line."""
    if COMPLETION & set(args):
        return []
    out, skip = [], False
    for i, a in enumerate(args):
        if not skip and not a.startswith("-"):
            out.append((i, a))
        skip = a in TAKES_VALUE
    return out


def normalize(args: Sequence[str]) -> list[str]:
    """``args`` with a plug-in's ``<group>.extra...=`` keys turned into Hydra's ``++`` (add or override)."""
    out = list(args)
    for i, o in _overrides(args):
        key = _key(o)
        if key is not None and EXTRA.match(key):
            out[i] = f"++{o}"
    return out


def check(args: Sequence[str], conf: Path) -> None:
    """Refuse a plain ``key=value`` whose key the schema does not have, naming the close matches (``conf``: the
    config folder, whose sub-folders are the groups)."""
    known = schema_keys()
    for _, o in _overrides(args):
        key = _key(o)
        if key is None or key in known or EXTRA.match(key):
            continue
        if (conf / key).is_dir():  # a group outside the defaults list: experiment
            raise ConfigError(f"'{key}' is a config group that is added, not overridden: use +{o}")
        close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
        hint = f"did you mean {' or '.join(close)}?" if close else "python train.py --help lists the common keys"
        group = key.split(".", 1)[0]
        extra = f" (a plug-in class's own keys go under {group}.extra.<key>)" if group in GROUPS else ""
        raise ConfigError(f"unknown key '{key}' in '{o}': {hint}{extra}")
