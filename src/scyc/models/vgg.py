"""CIFAR VGG with BatchNorm, as in the lottery-ticket work (Frankle & Carbin 2019; open_lth's ``cifar_vgg``).

Each number of the plan is a 3x3 convolution (padding 1) + BatchNorm + ReLU, each ``M`` a 2x2 max
pool; the last feature map is average-pooled to 1x1 (open_lth: a 2x2 average pool of the 2x2 map that
32x32 inputs leave; the global mean is the same there and also takes 28x28 or 64x64 inputs) and fed
to one linear classifier. VGG-19 on CIFAR-10: 20,040,522 parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from scyc.models import MODELS
from scyc.models.pooling import GlobalAvgPool

PLANS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512],
}


class CifarVGG(nn.Module):
    def __init__(self, plan: Sequence[int | str], num_classes: int, in_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for item in plan:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(width, int(item), 3, padding=1), nn.BatchNorm2d(int(item)), nn.ReLU(inplace=True)]
                width = int(item)
        self.features = nn.Sequential(*layers)
        self.pool = GlobalAvgPool(keepdim=False)  # deterministic on CUDA, unlike adaptive_avg_pool2d's backward
        self.fc = nn.Linear(width, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)))


def _check_size(name: str, plan, image_size: tuple[int, int]) -> None:
    pools = sum(1 for p in plan if p == "M")
    if min(image_size) < 2**pools:
        raise ValueError(f"{name} max-pools {pools} times and needs inputs of at least {2**pools} pixels a side")


def _factory(name: str):
    def build(num_classes: int, in_channels: int, image_size: tuple[int, int]) -> CifarVGG:
        _check_size(name, PLANS[name], image_size)
        return CifarVGG(PLANS[name], num_classes, in_channels)

    build.__name__ = name
    build.__doc__ = f"CIFAR {name.upper()} with BatchNorm (plan {PLANS[name]})."
    return build


for _name in PLANS:
    MODELS.register(_name)(_factory(_name))
