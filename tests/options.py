"""Parts of a run built from their YAML (conf/ is the one home of defaults: constructors restate none), with the
keys a test sets on top: ``build_pruner("lamp", rate=0.5)``, ``build_model("resnet20", num_classes=10, ...)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"
LOOP_KEYS = ("rounds", "reset", "rewind_epoch", "exclude")  # the round loop's, not the pruner constructor's


def option_yaml(group: str, name: str) -> dict[str, Any]:
    """conf/<group>/<name>.yaml's keys as written, without its defaults list (empty for a name with no YAML, e.g. a
    dotted path)."""
    path = CONF / group / f"{name}.yaml"
    keys = OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else {}
    keys.pop("defaults", None)  # its schema (scyc.foundations.schema), not a key
    return keys


def pruner_options(name: str, **kw: Any) -> dict[str, Any]:
    """What the pruner ``name`` is built with: conf/config.yaml's pruner keys, then its own YAML's, then ``kw``."""
    shared = OmegaConf.to_container(OmegaConf.load(CONF / "config.yaml"))["pruner"]
    keys = {**shared, **option_yaml("pruner", name), **kw}
    return {k: v for k, v in keys.items() if k not in ("name", *LOOP_KEYS)}


def build_pruner(name: str, **kw: Any):
    from scyc.pruning import PRUNERS

    return PRUNERS.build(name, pruner_options(name, **kw), key="pruner")


def build_model(name: str, **kw: Any):
    """``create_model(name, ...)`` with conf/model/<name>.yaml's keys (``kw``: the data set's shape, overrides)."""
    from scyc.models import create_model

    own = {k: v for k, v in option_yaml("model", name).items() if k != "name"}
    return create_model(name, **{**own, **kw})


def dataset_cfg(name: str, **kw: Any) -> dict[str, Any]:
    """The ``dataset`` section of ``name`` as build_data takes it: its YAML, then ``kw``."""
    return {**option_yaml("dataset", name), **kw}


def train_cfg(**kw: Any):
    """conf/config.yaml's ``train`` section with ``kw`` on top, typed (``TrainConfig`` refuses a bad switch)."""
    from scyc.config import TrainConfig

    return TrainConfig(**{**OmegaConf.to_container(OmegaConf.load(CONF / "config.yaml"))["train"], **kw})
