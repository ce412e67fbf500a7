"""Random unstructured pruning (the baseline of Liu et al. 2022): uniformly random among the survivors.

Scores are i.i.d. uniform draws in float64 (ties among 25M draws are then practically impossible, so
the removed set is a uniformly random subset of the survivors), taken from ``ctx.generator`` (the run's
seeded generator on the model's device), so a run is deterministic under its seed. Without a generator
in the context the draws come from a generator seeded with ``seed`` (default 0).
"""

from __future__ import annotations

import torch

from scyc.pruning.base import PRUNERS, PruneContext, Pruner
from scyc.pruning.masks import MaskSet


@PRUNERS.register("random")
class RandomPruner(Pruner):
    scope = "global"

    def __init__(self, rate: float, min_remaining: float, seed: int = 0) -> None:
        super().__init__(rate, min_remaining)
        self.seed = int(seed)
        self._fallback: torch.Generator | None = None

    def scores(self, masks: MaskSet, ctx: PruneContext) -> list[torch.Tensor]:
        device = masks.params[0].device
        dtype = torch.float32 if device.type == "mps" else torch.float64
        gen = ctx.generator
        if gen is None or gen.device != device:
            if self._fallback is None or self._fallback.device != device:
                self._fallback = torch.Generator(device=device).manual_seed(self.seed)
            gen = self._fallback
        return [torch.rand(p.shape, generator=gen, device=device, dtype=dtype) for p in masks.params]
