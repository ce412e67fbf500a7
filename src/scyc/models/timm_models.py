"""Any timm architecture (``timm.create_model``), never pretrained (runs need no network).

``model=resnet50`` and ``model=timm model.name=<timm name>`` both land here: a model name that no
``@MODELS.register`` claims is looked up in timm. ``small_input=true`` adapts a ResNet-style stem
(timm's ``conv1`` + ``maxpool``) to small images such as Tiny-ImageNet's 64x64: a 3x3 stride-1
convolution and no max pool, so the last stage sees 8x8 instead of 2x2 feature maps. The keys under
``model.extra`` are passed to ``timm.create_model`` (e.g. ``model.extra.drop_rate=0.1``).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from scyc.foundations.registry import ConfigError


def is_timm_model(name: str) -> bool:
    try:
        import timm
    except ImportError:
        return False
    return bool(timm.is_model(name))


def timm_model(
    name: str,
    num_classes: int,
    in_channels: int,
    image_size: tuple[int, int],
    small_input: bool,
    **kwargs: Any,
) -> nn.Module:
    import timm

    if kwargs.get("pretrained"):
        raise ConfigError("model.pretrained=true is not supported: runs are offline and train from scratch")
    kwargs.pop("pretrained", None)
    try:
        model = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"model={name} (timm) refused its arguments {sorted(kwargs)}: {exc}") from exc
    if small_input:
        conv1 = getattr(model, "conv1", None)
        if not isinstance(conv1, nn.Conv2d) or not hasattr(model, "maxpool"):
            raise ConfigError(
                f"model.small_input=true needs a ResNet-style stem (conv1 + maxpool); timm's {name} has none. "
                "Set model.small_input=false"
            )
        model.conv1 = nn.Conv2d(in_channels, conv1.out_channels, 3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        model.maxpool = nn.Identity()
    return model
