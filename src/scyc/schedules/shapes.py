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

from scyc.foundations.registry import ConfigError, Registry

SHAPES: Registry[Shape] = Registry("schedule.shape")

# Float slack when a fraction of the round is turned into a step index (0.7 * 10 = 7.000000000000001).
_EPS = 1e-9


def fraction_step(fraction: float, total_steps: int) -> int:
    """The first step index ``t`` (0-based) with ``t >= fraction * total_steps``: where a milestone falls."""
    return max(0, math.ceil(fraction * total_steps - _EPS))


def check_lr(key: str, value) -> float:
    """A learning rate from the config: a finite number >= 0, else ConfigError naming ``schedule.<key>``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"schedule.{key}={value} is not allowed: learning rates must be finite numbers >= 0")
    return float(value)


def check_int(key: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"schedule.{key}={value} is not allowed: it must be an integer >= {minimum}")
    return value


def check_fraction(key: str, value, *, closed_low: bool) -> float:
    """A fraction of the round: in [0, 1) with ``closed_low``, else in (0, 1)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (0 <= value < 1 if closed_low else 0 < value < 1)
    if not ok:
        interval = "[0, 1)" if closed_low else "(0, 1)"
        raise ConfigError(f"schedule.{key}={value} is not allowed: it must be a fraction of the round in {interval}")
    return float(value)


def set_lr(optimizer: Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
        group["initial_lr"] = lr


class Shape(ABC):
    @abstractmethod
    def build(self, optimizer: Optimizer, max_lr: float, total_steps: int, steps_per_epoch: int) -> LRScheduler:
        """A scheduler for one round of ``total_steps`` optimiser steps peaking at ``max_lr``."""

    def check_max_lr(self, lowest: float) -> None:
        """Refuse, at start-up, parameters that no round could use: ``lowest`` is the smallest ``max_lr``
        the policy can give (e.g. a floor LR above it). The default accepts everything."""
        return None


@SHAPES.register("constant")
class Constant(Shape):
    """A flat LR equal to ``max_lr`` for the whole round."""

    def build(self, optimizer, max_lr, total_steps, steps_per_epoch):
        set_lr(optimizer, max_lr)
        return ConstantLR(optimizer, factor=1.0, total_iters=0)


@SHAPES.register("triangular")
class Triangular(Shape):
    """Smith's triangular cycle base_lr -> max_lr -> base_lr, ``cycles_per_round`` times per round.

    With h = total_steps / (2 * cycles_per_round): lr(t) = base + (max - base) * (1 - |(t / h mod 2) - 1|) for
    t in [0, total_steps); with one cycle the peak falls at mid-round. Built on ``CyclicLR`` (triangular mode).
    """

    def __init__(self, base_lr: float, cycles_per_round: int) -> None:
        self.base_lr = check_lr("base_lr", base_lr)
        self.cycles = check_int("cycles_per_round", cycles_per_round, 1)

    def check_max_lr(self, lowest):
        if self.base_lr > lowest:
            raise ConfigError(
                f"schedule.base_lr={self.base_lr} is above the smallest max_lr the policy can give ({lowest}): "
                "the cycle needs base_lr <= max_lr"
            )

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
