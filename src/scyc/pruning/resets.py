"""What happens to the surviving weights after a pruning step (``pruner.reset``).

A reset is a function ``(model, masks, snapshots, generator)``; ``snapshots`` holds state dicts the
experiment saved earlier: ``init`` (the weights before any training) and, when ``pruner.reset=rewind_epoch``,
``rewind`` (saved by ``scyc.pruning.accounting.RewindSnapshot`` after epoch ``pruner.rewind_epoch`` of
round 0). Every reset ends with the masks applied, so pruned weights are exactly zero.

============  =========================================================================================
finetune      keep the trained weights (fine-tuning; with a restarted LR schedule: LR rewinding, Renda
              et al. 2020)
rewind_init   every parameter and buffer back to its value at initialisation (lottery tickets, Frankle
              & Carbin 2019)
rewind_epoch  back to the weights after ``pruner.rewind_epoch`` epochs of round 0 (weight rewinding,
              Frankle et al. 2020); ``rewind_epoch=0`` is the initialisation
reinit        a fresh random initialisation under the mask: ``reset_parameters()`` of every module that
              has one, seeded from the run's generator (so from the run seed and the round)
============  =========================================================================================
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from scyc.foundations.registry import Registry
from scyc.pruning.masks import MaskSet

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


@RESETS.register("rewind_epoch")
@torch.no_grad()
def rewind_epoch(model: nn.Module, masks: MaskSet, snapshots, generator=None) -> None:
    """All parameters and buffers back to the snapshot taken early in round 0 (weight rewinding)."""
    if "rewind" not in snapshots:
        raise RuntimeError(
            "reset rewind_epoch: no 'rewind' snapshot was saved; it is taken in round 0 by the RewindSnapshot "
            "callback (scyc.pruning.accounting), which the experiment adds when pruner.reset=rewind_epoch"
        )
    model.load_state_dict(snapshots["rewind"])
    masks.apply_()


@RESETS.register("reinit")
@torch.no_grad()
def reinit(model: nn.Module, masks: MaskSet, snapshots, generator=None) -> None:
    """Fresh random initialisation of every module with ``reset_parameters()``, then the masks.

    The new initialisation draws from the global RNG inside ``torch.random.fork_rng`` seeded with a
    number taken from ``generator`` (the run's seeded generator, which has advanced by the round), so it
    is deterministic under the run seed, differs from round to round, and leaves the global RNG alone.
    """
    if generator is not None:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    else:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    devices = sorted({p.device.index or 0 for p in model.parameters() if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for module in model.modules():
            if callable(getattr(module, "reset_parameters", None)):
                module.reset_parameters()
    masks.apply_()
