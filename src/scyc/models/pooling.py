"""Global average pooling as a mean over the spatial dims: deterministic on CUDA in both directions.

``adaptive_avg_pool2d``'s CUDA backward has no deterministic kernel (``torch.use_deterministic_algorithms``
raises on it), so ``deterministic=true`` could not train a model that uses it on a GPU. A mean over H and W
is the same function, with deterministic kernels forward and backward; on the CPU both give bit-identical
outputs and gradients (checked for fp32 and bf16, contiguous and channels_last, tests/test_gpu_path.py).
``create_model`` swaps every ``nn.AdaptiveAvgPool2d`` with output size 1 (timm's classifier heads among
them) for ``GlobalAvgPool``; a module without parameters or buffers, so checkpoints are unchanged.
"""

from __future__ import annotations

import torch
from torch import nn


class GlobalAvgPool(nn.Module):
    """Mean over the spatial dims: (N, C, H, W) -> (N, C, 1, 1), or (N, C) with ``keepdim=False``."""

    def __init__(self, keepdim: bool = True) -> None:
        super().__init__()
        self.keepdim = keepdim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=self.keepdim)


def _is_global(pool: nn.AdaptiveAvgPool2d) -> bool:
    size = pool.output_size
    return all(s == 1 for s in (size if isinstance(size, tuple) else (size, size)))


def deterministic_pools(model: nn.Module) -> nn.Module:
    """Replace, in place, every ``nn.AdaptiveAvgPool2d`` to 1x1 in ``model`` by ``GlobalAvgPool``; returns it."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d) and _is_global(child):
                setattr(parent, name, GlobalAvgPool(keepdim=True))
    return model
