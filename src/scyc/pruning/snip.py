"""SNIP: connection sensitivity |w * dL/dw| (Lee et al., ICLR 2019), used iteratively (de Jorge et al.,
ICLR 2021) and pruned globally.

The gradient is the mean of dL/dw over the first ``batches`` training batches of ``ctx.batches`` (the
run's shuffled, augmented training loader), i.e. SNIP on a batch ``batches`` times larger; the score is
``|w * g|`` for every surviving weight.

The model runs in train mode (the mode its gradients are taken in during training, so BatchNorm uses
batch statistics and dropout is active). Nothing of the training state changes: gradients come from
``torch.autograd.grad`` (``.grad`` fields and the optimiser are never touched), every buffer (BatchNorm
running statistics and counters) is restored afterwards, and so is the module's train/eval mode.
"""

from __future__ import annotations

import itertools

import torch

from scyc.foundations.registry import ConfigError
from scyc.pruning.base import PRUNERS, PruneContext, Pruner
from scyc.pruning.masks import MaskSet


@PRUNERS.register("snip")
class Snip(Pruner):
    scope = "global"

    def __init__(self, rate: float, min_remaining: float, batches: int) -> None:
        super().__init__(rate, min_remaining)
        if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
            raise ConfigError(f"pruner.batches={batches} is not allowed: it must be an integer >= 1")
        self.batches = batches

    def scores(self, masks: MaskSet, ctx: PruneContext) -> list[torch.Tensor]:
        if ctx.batches is None:
            raise ValueError("snip needs training batches: PruneContext.batches is None")
        model = ctx.model
        was_training = model.training
        buffers = [(b, b.detach().clone()) for b in model.buffers()]
        grads = [torch.zeros_like(p) for p in masks.params]
        seen = 0
        try:
            model.train()
            with torch.enable_grad():
                for x, y in itertools.islice(ctx.batches(), self.batches):
                    loss = ctx.loss_fn(model(x), y)
                    for acc, g in zip(grads, torch.autograd.grad(loss, masks.params, allow_unused=True)):
                        if g is not None:
                            acc.add_(g)
                    seen += 1
        finally:
            with torch.no_grad():
                for b, saved in buffers:
                    b.copy_(saved)
            model.train(was_training)
        if seen == 0:
            raise ValueError("snip: the training loader gave no batches")
        return [(p.detach() * g).abs_().div_(seen) for p, g in zip(masks.params, grads)]
