"""Speed switches of the training loop (``train.precision``, ``channels_last``, ``compile``, ``cuda_graphs``,
``eval_batch_size``).

- ``precision``: ``auto`` = bf16 autocast on CUDA, fp32 elsewhere; ``bf16`` (autocast, also on the CPU);
  ``fp32``. Autocast wraps the forward pass and the loss only; weights, gradients, the optimiser state
  and the masks stay fp32, so a pruned weight stays exactly zero.
- ``channels_last``: ``auto`` = on for models with convolutions (NHWC lets cuDNN use its fastest
  tensor-core kernels; on the CPU oneDNN's NHWC convolutions measured faster too, docs/benchmarks.md), off for
  the others; ``true`` / ``false`` force it. The loader then hands out NHWC batches.
- ``eval_batch_size``: ``auto`` = 256 for conv nets on the CPU (a batch of 1,000 measured slower there),
  1000 elsewhere (the default LeNet-300-100 run keeps its figures bit for bit); or an integer.
- ``cuda_graphs``: ``auto`` = on for CUDA runs that allow it (not with ``skip_nonfinite``, which reads every
  step's loss, nor in a data-parallel run, nor with a schedule that changes momentum inside a round:
  ``one_cycle`` with ``schedule.cycle_momentum=true``, momentum being baked into the captured step);
  ``true`` forces it and is refused off CUDA (a ConfigError: one line naming the key, exit 2) and with those
  three; ``false``: eager steps. See ``scyc.lifecycle.training.CudaGraphStep``.
- ``compile``: ``torch.compile`` the model used for training and evaluation (off by default; the
  first steps pay the compilation). The uncompiled module is kept for masks, checkpoints and resets:
  both share the same parameters.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from scyc.config import Switch
from scyc.foundations.registry import ConfigError

if TYPE_CHECKING:
    from scyc.config import TrainConfig


@dataclass
class Speed:
    autocast_dtype: torch.dtype | None
    channels_last: bool
    compile: bool
    cuda_graphs: bool = False
    eval_batch_size: int = 1000

    @classmethod
    def from_config(
        cls, train_cfg: TrainConfig, device: torch.device, model: nn.Module, cycles_momentum: bool = False
    ) -> Speed:
        """The switches for ``model`` on ``device``; ``cycles_momentum``: the schedule changes SGD's momentum
        inside a round, which a captured CUDA graph cannot follow (the fused step takes it as a number)."""
        precision = train_cfg.precision  # one of scyc.config.PRECISIONS (checked when the config was typed)
        if precision == "auto":
            precision = "bf16" if device.type == "cuda" else "fp32"
        dtype = torch.bfloat16 if precision == "bf16" else None
        if dtype is not None and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ConfigError(f"train.precision=bf16: {torch.cuda.get_device_name(device)} has no bf16; use fp32")
        conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
        comp = train_cfg.compile
        ebs = train_cfg.eval_batch_size  # None: auto
        if ebs is None:
            ebs = 256 if conv and device.type == "cpu" else 1000
        graphs = train_cfg.cuda_graphs
        dist = torch.distributed.is_available() and torch.distributed.is_initialized()
        blocker = "train.skip_nonfinite=true" if train_cfg.skip_nonfinite else "a data-parallel run" * dist
        if cycles_momentum and not blocker:
            blocker = "schedule.cycle_momentum=true (a captured step keeps the momentum it was captured with)"
        if graphs is Switch.ON and (device.type != "cuda" or blocker):
            why = f"with {blocker}" if blocker else f"on {device.type}: CUDA graphs need a CUDA device"
            raise ConfigError(f"train.cuda_graphs=true cannot be used {why}; set train.cuda_graphs=auto or false")
        cl = train_cfg.channels_last.resolve(auto=conv)
        graphs = graphs.resolve(auto=device.type == "cuda" and not blocker)
        return cls(dtype, cl, comp, graphs, ebs)

    def prepare(self, model: nn.Module) -> nn.Module:
        """Set the memory format of ``model`` in place; return the module to run (compiled or not)."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return torch.compile(model) if self.compile else model

    def autocast(self, device: torch.device):
        return autocast(device, self.autocast_dtype)


def autocast(device: torch.device, dtype: torch.dtype | None, cache_enabled: bool = True):
    """An autocast context for ``dtype`` on ``device``'s type, or a no-op for fp32 (``None``)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=cache_enabled)
