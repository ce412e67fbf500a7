"""CIFAR ResNets of He et al. 2016 (section 4.2): ResNet-20/32/44/56/110, 6n+2 layers.

A 3x3 stem with 16 channels, three stages of ``n`` basic blocks (two 3x3 conv + BatchNorm, ReLU) with
16, 32 and 64 channels (the first block of stages 2 and 3 halves the resolution), global average pool
(a mean over H and W: deterministic on CUDA, ``scyc.models.pooling``),
one linear classifier. Shortcuts where the shape changes: option ``A`` (the paper's choice for CIFAR:
identity on every other pixel, new channels zero-padded; no parameters; ResNet-20 on CIFAR-10 has
269,722 parameters, the paper's "0.27M") or option ``B`` (1x1 convolution + BatchNorm projection, as
open_lth; 272,474).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from scyc.models import MODELS


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = 0
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            if shortcut == "A":
                self.pad = cout - cin
                self.stride = stride
            else:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        if self.pad:
            short = F.pad(
                x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2)
            )
        else:
            short = self.shortcut(x)
        return F.relu(out + short, inplace=True)


class CifarResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int, in_channels: int, width: int, shortcut: str) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
        if shortcut not in ("A", "B"):
            raise ValueError(f"model.shortcut={shortcut!r} must be 'A' (zero-padded identity) or 'B' (1x1 projection)")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        blocks: list[nn.Module] = []
        cin = width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if (stage > 0 and i == 0) else 1, shortcut))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.blocks(F.relu(self.bn1(self.conv1(x)), inplace=True))
        return self.fc(out.mean((2, 3)))  # global average pool (scyc.models.pooling)


def _factory(depth: int):
    def build(
        num_classes: int, in_channels: int, image_size: tuple[int, int], width: int, shortcut: str
    ) -> CifarResNet:
        return CifarResNet(depth, num_classes, in_channels, width=width, shortcut=shortcut)

    build.__name__ = f"resnet{depth}"
    return build


for _depth in (20, 32, 44, 56, 110):
    MODELS.register(f"resnet{_depth}")(_factory(_depth))
