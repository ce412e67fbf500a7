"""Layer-wise magnitude pruning: the same fraction of the surviving weights removed in every layer, by |w|."""

from __future__ import annotations

import torch

from scyc.pruning.base import PRUNERS, PruneContext, Pruner
from scyc.pruning.masks import MaskSet


@PRUNERS.register("layerwise_magnitude")
class LayerwiseMagnitude(Pruner):
    scope = "layer"

    def scores(self, masks: MaskSet, ctx: PruneContext) -> list[torch.Tensor]:
        return [p.detach().abs() for p in masks.params]
