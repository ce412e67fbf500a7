"""The pruner interface: score the surviving weights, remove the lowest-scoring ones, exactly.

A pruner subclass implements ``scores`` (higher = more important). The base class removes
``round(rate * surviving)`` weights per pruning step, exactly, with ties broken deterministically by
position (layer order, then flat index), never touching already-pruned weights. ``scope = "global"``
ranks all layers together; ``scope = "layer"`` removes the same fraction in every layer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from scyc.pruning.masks import MaskSet
from scyc.registry import ConfigError, Registry

PRUNERS: Registry[Pruner] = Registry("pruner")


@dataclass
class PruneContext:
    """What a pruner may look at besides the weights: the model, training batches, a seeded generator."""

    model: nn.Module
    batches: Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]] | None = None
    generator: torch.Generator | None = None
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = field(default=nn.functional.cross_entropy)


def select_lowest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Boolean mask of exactly ``k`` entries with the smallest scores; ties go to the lower index."""
    n = scores.numel()
    if not 0 <= k <= n:
        raise ValueError(f"cannot select {k} of {n} entries")
    out = torch.zeros(n, dtype=torch.bool, device=scores.device)
    if k == 0:
        return out
    threshold = torch.kthvalue(scores.cpu() if scores.device.type == "mps" else scores, k).values
    below = scores < threshold
    n_below = int(below.sum())
    ties = (scores == threshold).nonzero().squeeze(1)[: k - n_below]
    out |= below
    out[ties] = True
    return out


class Pruner(ABC):
    scope: str = "global"

    def __init__(self, rate: float = 0.2) -> None:
        if not 0.0 < rate < 1.0:
            raise ConfigError(f"pruner.rate={rate} is not allowed: it must lie in (0, 1)")
        self.rate = rate

    @abstractmethod
    def scores(self, masks: MaskSet, ctx: PruneContext) -> list[torch.Tensor]:
        """One score tensor per masked weight, same shapes; higher means keep."""

    @torch.no_grad()
    def prune(self, masks: MaskSet, ctx: PruneContext) -> list[torch.Tensor]:
        """New boolean masks with ``round(rate * surviving)`` more weights removed."""
        scores = self.scores(masks, ctx)
        alive = masks.bool_masks()
        if self.scope == "layer":
            return [self._prune_layer(s, a) for s, a in zip(scores, alive)]
        return self._prune_global(scores, alive)

    def _prune_layer(self, score: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        flat_alive = alive.flatten()
        k = round(self.rate * int(flat_alive.sum()))
        chosen = select_lowest(score.flatten()[flat_alive].float(), k)
        new = flat_alive.clone()
        new[flat_alive.nonzero().squeeze(1)[chosen]] = False
        return new.view_as(alive)

    def _prune_global(self, scores: Sequence[torch.Tensor], alive: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        flat_alive = torch.cat([a.flatten() for a in alive])
        flat_scores = torch.cat([s.flatten().float() for s in scores])
        k = round(self.rate * int(flat_alive.sum()))
        chosen = select_lowest(flat_scores[flat_alive], k)
        new = flat_alive.clone()
        new[flat_alive.nonzero().squeeze(1)[chosen]] = False
        return [t.view_as(a) for t, a in zip(new.split([a.numel() for a in alive]), alive)]
