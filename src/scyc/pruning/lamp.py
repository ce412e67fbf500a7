"""LAMP: layer-adaptive magnitude-based pruning (Lee et al., ICLR 2021), pruned globally.

Inside a layer, with the surviving weights sorted by |w| ascending, the score of weight ``u`` is
``w_u^2 / sum_{v >= u} w_v^2``: its squared magnitude over the squared mass of itself and every larger
survivor. Scores rise with |w| inside a layer and the largest survivor of every layer scores 1, so
ranking all layers together adapts the per-layer sparsity without a hand-set schedule.

Implementation: per layer one sort of the squared surviving weights (pruned weights are zero, so they
add nothing to any sum; their scores are ignored by the base class), one cumulative sum in float64
(suffix sum = total - prefix sum + own term), and a scatter back. Equal magnitudes are ordered by position (stable sort): the earlier one
gets the larger denominator and goes first, matching the base class's tie rule. A surviving weight of
value 0 scores 0. Squared magnitudes are non-negative, so their float32 bit patterns sort like the values
and the sort runs on int32 keys (a radix sort on the CPU, several times faster than a float sort).
"""

from __future__ import annotations

import torch

from scyc.pruning.base import PRUNERS, PruneContext, Pruner
from scyc.pruning.masks import MaskSet


def lamp_scores(weight: torch.Tensor, alive: torch.Tensor | None = None) -> torch.Tensor:
    """LAMP scores of one layer (float32, same shape); entries where ``alive`` is False are 0."""
    w = weight.detach().float().reshape(-1)
    if alive is not None:
        w = w * alive.reshape(-1).to(w.dtype)
    sq = w * w
    if sq.device.type == "cpu":  # non-negative floats sort like their int32 bit patterns (radix sort)
        sorted_keys, order = torch.sort(sq.view(torch.int32), stable=True)
        sorted_sq = sorted_keys.view(torch.float32)
    else:
        sorted_sq, order = torch.sort(sq, stable=True)
    x = sorted_sq.to(torch.float32 if sq.device.type == "mps" else torch.float64)
    # sum_{v >= u} x_v = total - (x_0 + ... + x_u) + x_u; a zero weight with nothing above it is 0/0 -> 0
    suffix = x.cumsum(0).neg_().add_(x).add_(x.sum())
    ratio = x.div_(suffix).nan_to_num_(0.0)
    return torch.empty_like(sq).scatter_(0, order, ratio.to(sq.dtype)).view_as(weight)


@PRUNERS.register("lamp")
class Lamp(Pruner):
    scope = "global"

    def scores(self, masks: MaskSet, ctx: PruneContext) -> list[torch.Tensor]:
        return [lamp_scores(p, m) for p, m in zip(masks.params, masks.masks)]
