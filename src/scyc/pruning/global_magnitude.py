"""Global magnitude pruning (Han et al. 2015; Frankle & Carbin 2019): one threshold on |w| over all layers."""

from __future__ import annotations

import torch

from scyc.pruning.base import PRUNERS, PruneContext, Pruner
from scyc.pruning.masks import MaskSet


@PRUNERS.register("global_magnitude")
class GlobalMagnitude(Pruner):
    scope = "global"

    def scores(self, masks: MaskSet, ctx: PruneContext) -> list[torch.Tensor]:
        return [p.detach().abs() for p in masks.params]
