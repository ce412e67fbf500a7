"""Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter 2017) inside each pruning round."""

from __future__ import annotations

from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts

from scyc.registry import ConfigError
from scyc.schedules.shapes import SHAPES, Shape, check_int, check_lr, set_lr


@SHAPES.register("cosine_restarts")
class CosineRestarts(Shape):
    """``CosineAnnealingWarmRestarts`` with T_0 = t0_epochs * steps_per_epoch steps and T_mult = t_mult.

    Cycle i lasts T_i = T_0 * t_mult**i steps; at step t of a cycle the LR is
    eta_min + (max_lr - eta_min) * (1 + cos(pi * t / T_i)) / 2, and a new cycle restarts at max_lr.
    The restarts count from the start of each round (every round begins a fresh first cycle).
    """

    def __init__(self, t0_epochs: int = 1, t_mult: int = 1, eta_min: float = 0.0) -> None:
        self.t0_epochs = check_int("t0_epochs", t0_epochs, 1)
        self.t_mult = check_int("t_mult", t_mult, 1)
        self.eta_min = check_lr("eta_min", eta_min)

    def check_max_lr(self, lowest):
        if self.eta_min > lowest:
            raise ConfigError(
                f"schedule.eta_min={self.eta_min} is above the smallest max_lr the policy can give ({lowest})"
            )

    def build(self, optimizer, max_lr, total_steps, steps_per_epoch):
        set_lr(optimizer, max_lr)
        return CosineAnnealingWarmRestarts(
            optimizer, T_0=self.t0_epochs * steps_per_epoch, T_mult=self.t_mult, eta_min=self.eta_min
        )
