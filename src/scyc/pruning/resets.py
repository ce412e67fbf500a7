"""What happens to the surviving weights after a pruning step (``pruner.reset``).

A reset is a function ``(model, masks, snapshots, generator)``; ``snapshots`` holds state dicts the
experiment saved earlier (``init``: the weights before any training).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from scyc.pruning.masks import MaskSet
from scyc.registry import Registry

Reset = Callable[[nn.Module, MaskSet, dict[str, dict[str, torch.Tensor]], torch.Generator | None], None]
RESETS: Registry[None] = Registry("pruner.reset")


@RESETS.register("finetune")
def finetune(model: nn.Module, masks: MaskSet, snapshots, generator=None) -> None:
    """Keep the trained weights (fine-tuning; LR rewinding in Renda et al. 2020)."""
    masks.apply_()


@RESETS.register("rewind_init")
@torch.no_grad()
def rewind_init(model: nn.Module, masks: MaskSet, snapshots, generator=None) -> None:
    """All parameters and buffers back to their initial values, pruned weights zero (lottery tickets)."""
    model.load_state_dict(snapshots["init"])
    masks.apply_()
