"""Models: one registry, one ``create_model`` (as timm's), every architecture ReLU-based.

A registered factory takes ``num_classes``, ``in_channels`` and ``image_size`` (from the data set)
plus its own keyword arguments from ``conf/model/<name>.yaml``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from scyc.registry import Registry, import_submodules

MODELS: Registry[nn.Module] = Registry("model")


def create_model(
    name: str, *, num_classes: int, in_channels: int, image_size: tuple[int, int], **kwargs: Any
) -> nn.Module:
    params = dict(kwargs, num_classes=num_classes, in_channels=in_channels, image_size=tuple(image_size))
    return MODELS.build(name, params, key="model")


import_submodules("scyc.models")

__all__ = ["MODELS", "create_model"]
