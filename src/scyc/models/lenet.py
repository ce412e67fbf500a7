"""LeNet-300-100 (ReLU MLP) and LeNet-5 (ReLU conv net), the lottery-ticket work's small models."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from scyc.models import MODELS


@MODELS.register("lenet300")
class LeNet300(nn.Module):
    """Fully connected ReLU network, hidden sizes 300 and 100 by default (266,610 parameters on 28x28)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        image_size: tuple[int, int],
        hidden: Sequence[int],
    ) -> None:
        super().__init__()
        if not all(isinstance(h, int) and h >= 1 for h in hidden):
            raise ValueError(f"model.hidden={list(hidden)} is not allowed: every hidden size must be an integer >= 1")
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_channels * math.prod(image_size)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@MODELS.register("lenet5")
class LeNet5(nn.Module):
    """Two 5x5 conv layers (6 and 16 channels, max-pooled) and three ReLU linear layers (120, 84, classes)."""

    def __init__(self, num_classes: int, in_channels: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        )
        h, w = image_size
        h, w = (h // 2 - 4) // 2, (w // 2 - 4) // 2
        if h < 1 or w < 1:
            raise ValueError(f"lenet5 needs inputs of at least 12x12, got {image_size}")
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * h * w, 120),
            nn.ReLU(inplace=True),
            nn.Linear(120, 84),
            nn.ReLU(inplace=True),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
