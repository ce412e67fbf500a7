"""Speed switches of the training loop (``train.precision``, ``train.channels_last``, ``train.compile``).

- ``precision``: ``auto`` = bf16 autocast on CUDA, fp32 elsewhere; ``bf16`` (autocast, also on the CPU);
  ``fp32``. Autocast wraps the forward pass and the loss only; weights, gradients, the optimiser state
  and the masks stay fp32, so a pruned weight stays exactly zero.
- ``channels_last``: ``auto`` = on for CUDA models with convolutions (NHWC lets cuDNN use its fastest
  tensor-core kernels), off elsewhere; ``true`` / ``false`` force it. The loader then hands out NHWC batches.
- ``compile``: ``torch.compile`` the model used for training and evaluation (off by default; the
  first steps pay the compilation). The uncompiled module is kept for masks, checkpoints and resets:
  both share the same parameters.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from scyc.registry import ConfigError

PRECISIONS = {"auto", "bf16", "fp32"}


@dataclass
class Speed:
    autocast_dtype: torch.dtype | None
    channels_last: bool
    compile: bool

    @classmethod
    def from_config(cls, train_cfg: Any, device: torch.device, model: nn.Module) -> Speed:
        precision = str(train_cfg.get("precision", "auto"))
        if precision not in PRECISIONS:
            raise ConfigError(f"train.precision={precision} is not allowed: choose one of auto, bf16, fp32")
        if precision == "auto":
            precision = "bf16" if device.type == "cuda" else "fp32"
        dtype = torch.bfloat16 if precision == "bf16" else None
        if dtype is not None and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"train.precision=bf16: {torch.cuda.get_device_name(device)} has no bf16; use fp32")
        cl = train_cfg.get("channels_last", "auto")
        if cl == "auto":
            cl = device.type == "cuda" and any(isinstance(m, nn.Conv2d) for m in model.modules())
        elif not isinstance(cl, bool):
            raise ConfigError(f"train.channels_last={cl} is not allowed: choose auto, true or false")
        comp = train_cfg.get("compile", False)
        if not isinstance(comp, bool):
            raise ConfigError(f"train.compile={comp} is not allowed: choose true or false")
        return cls(autocast_dtype=dtype, channels_last=bool(cl), compile=comp)

    def prepare(self, model: nn.Module) -> nn.Module:
        """Set the memory format of ``model`` in place; return the module to run (compiled or not)."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return torch.compile(model) if self.compile else model

    def autocast(self, device: torch.device):
        return autocast(device, self.autocast_dtype)


def autocast(device: torch.device, dtype: torch.dtype | None):
    """An autocast context for ``dtype`` on ``device``'s type, or a no-op for fp32 (``None``)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
