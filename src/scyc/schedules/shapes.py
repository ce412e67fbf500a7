"""Within-round shapes: the LR over the optimiser steps of one pruning round.

A shape builds a ``torch.optim.lr_scheduler`` scheduler for one round, given the round's peak LR
(``max_lr`` from the across-round policy), the number of optimiser steps in the round and the steps per
epoch. The scheduler is stepped after every optimiser step; the LR of step ``t`` (0-based) is the LR the
optimiser used for that step.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

from torch.optim import Optimizer
from torch.optim.lr_scheduler import ConstantLR, CyclicLR, LRScheduler

from scyc.registry import ConfigError, Registry

SHAPES: Registry[Shape] = Registry("schedule.shape")


def set_lr(optimizer: Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
        group["initial_lr"] = lr


class Shape(ABC):
    @abstractmethod
    def build(self, optimizer: Optimizer, max_lr: float, total_steps: int, steps_per_epoch: int) -> LRScheduler:
        """A scheduler for one round of ``total_steps`` optimiser steps peaking at ``max_lr``."""


@SHAPES.register("constant")
class Constant(Shape):
    """A flat LR equal to ``max_lr`` for the whole round."""

    def build(self, optimizer, max_lr, total_steps, steps_per_epoch):
        set_lr(optimizer, max_lr)
        return ConstantLR(optimizer, factor=1.0, total_iters=0)


@SHAPES.register("triangular")
class Triangular(Shape):
    """Smith's triangular cycle base_lr -> max_lr -> base_lr, ``cycles_per_round`` times per round.

    With one cycle the peak falls at mid-round: lr(t) = base + (max - base) * (1 - |t / h - 1|),
    h = total_steps / 2, for t in [0, total_steps).
    """

    def __init__(self, base_lr: float, cycles_per_round: int = 1) -> None:
        if base_lr is None or not math.isfinite(base_lr) or base_lr < 0:
            raise ConfigError(f"schedule.base_lr={base_lr} is not allowed: learning rates must be finite and >= 0")
        if cycles_per_round < 1:
            raise ConfigError(f"schedule.cycles_per_round={cycles_per_round} must be >= 1")
        self.base_lr, self.cycles = float(base_lr), int(cycles_per_round)

    def build(self, optimizer, max_lr, total_steps, steps_per_epoch):
        if self.base_lr > max_lr:
            raise ConfigError(f"schedule.base_lr={self.base_lr} exceeds this round's max_lr={max_lr}")
        half = total_steps / (2 * self.cycles)
        set_lr(optimizer, self.base_lr)
        return CyclicLR(
            optimizer,
            base_lr=self.base_lr,
            max_lr=max_lr,
            step_size_up=half,
            step_size_down=half,
            mode="triangular",
            cycle_momentum=False,
        )
