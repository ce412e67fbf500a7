"""Models: one registry, one ``create_model`` (as timm's), every architecture ReLU-based.

A name no factory claims is looked up in timm (``scyc.models.timm_models``). A registered factory takes ``num_classes``, ``in_channels`` and ``image_size`` (from the data set)
plus its own keyword arguments from ``conf/model/<name>.yaml``. Every global average pool is a mean over H and W
(``scyc.models.pooling``: deterministic on CUDA).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from scyc.foundations.registry import ConfigError, Registry, import_submodules
from scyc.models.pooling import deterministic_pools

MODELS: Registry[nn.Module] = Registry("model")


def create_model(
    name: str, *, num_classes: int, in_channels: int, image_size: tuple[int, int], **kwargs: Any
) -> nn.Module:
    params = dict(kwargs, num_classes=num_classes, in_channels=in_channels, image_size=tuple(image_size))
    if name not in MODELS and "." not in name:
        from scyc.models.timm_models import is_timm_model, timm_model

        if is_timm_model(name):
            return deterministic_pools(timm_model(name, **params))
        raise ConfigError(
            f"unknown model '{name}'; choose one of: {', '.join(MODELS.names())}, or any timm model name "
            "(timm.list_models()), or a dotted import path"
        )
    try:
        return deterministic_pools(MODELS.build(name, params, key="model"))
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"model={name}: {exc}") from exc


import_submodules("scyc.models")

__all__ = ["MODELS", "create_model"]
