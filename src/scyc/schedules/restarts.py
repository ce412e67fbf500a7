"""Cosine annealing with warm restarts (SGDR, Loshchilov & Hutter 2017) inside each pruning round."""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import CosineAnnealingWarmRestarts, LRScheduler

from scyc.foundations.registry import ConfigError
from scyc.schedules.shapes import SHAPES, Shape, check_int, check_lr, set_lr


def fitted_bounds(total_steps: int, t0_steps: int, t_mult: int) -> list[int]:
    """Cycle boundaries 0 = B_0 < ... < B_n = total_steps of n cycles in the ratio 1 : t_mult : t_mult**2 ...

    n is the largest count whose cycles tile the round with a first cycle of at least ``t0_steps`` steps and
    every cycle at least 2 steps long (one cycle when none fits): B_k = round(total * G(k) / G(n)) with
    G(k) = 1 + t_mult + ... + t_mult**(k-1), so rounding goes to the cycles' ends and the last one absorbs it.
    """

    def bounds(n: int) -> list[int]:
        g = [sum(t_mult**i for i in range(k)) for k in range(n + 1)]
        return [round(total_steps * gk / g[n]) for gk in g]

    n = 1
    while t0_steps * sum(t_mult**i for i in range(n + 1)) <= total_steps:
        b = bounds(n + 1)
        if min(y - x for x, y in zip(b, b[1:])) < 2:
            break
        n += 1
    return bounds(n)


class FittedRestarts(LRScheduler):
    """At step t of a cycle of T steps: eta_min + (base - eta_min) * (1 + cos(pi * t / (T - 1))) / 2, so every
    cycle starts at the base LR and its last step, the round's last one included, is at eta_min."""

    def __init__(self, optimizer, bounds: list[int], eta_min: float) -> None:
        self.bounds, self.eta_min = list(bounds), eta_min
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        t = min(self.last_epoch, self.bounds[-1] - 1)
        k = max(i for i, b in enumerate(self.bounds[:-1]) if b <= t)
        span = max(self.bounds[k + 1] - self.bounds[k] - 1, 1)
        c = (1 + math.cos(math.pi * (t - self.bounds[k]) / span)) / 2
        return [self.eta_min + (base - self.eta_min) * c for base in self.base_lrs]


@SHAPES.register("cosine_restarts")
class CosineRestarts(Shape):
    """Cosine annealing from max_lr to eta_min with warm restarts, the first cycle ``t0_epochs`` epochs long and
    each next one ``t_mult`` times longer; the restarts count from the start of each round.

    ``fit_round=true`` (conf/schedule/sgdr.yaml): the cycles tile the round exactly (``fitted_bounds``: as many cycles as fit with
    a first cycle of at least t0_epochs, stretched to fill the round) and each ends at eta_min on its last step,
    so a round ends, and is scored, at eta_min. ``fit_round=false``: torch's ``CosineAnnealingWarmRestarts`` with
    T_0 = t0_epochs * steps_per_epoch, T_i = T_0 * t_mult**i and lr = eta_min + (max_lr - eta_min) *
    (1 + cos(pi * t / T_i)) / 2, which may end a round mid-cycle.
    """

    def __init__(self, t0_epochs: int, t_mult: int, eta_min: float, fit_round: bool) -> None:
        self.t0_epochs = check_int("t0_epochs", t0_epochs, 1)
        self.t_mult = check_int("t_mult", t_mult, 1)
        self.eta_min = check_lr("eta_min", eta_min)
        if not isinstance(fit_round, bool):
            raise ConfigError(f"schedule.fit_round={fit_round} is not allowed: it must be true or false")
        self.fit_round = fit_round

    def check_max_lr(self, lowest):
        if self.eta_min > lowest:
            raise ConfigError(
                f"schedule.eta_min={self.eta_min} is above the smallest max_lr the policy can give ({lowest})"
            )

    def build(self, optimizer, max_lr, total_steps, steps_per_epoch):
        set_lr(optimizer, max_lr)
        t0 = self.t0_epochs * steps_per_epoch
        if self.fit_round:
            return FittedRestarts(optimizer, fitted_bounds(total_steps, t0, self.t_mult), self.eta_min)
        return CosineAnnealingWarmRestarts(optimizer, T_0=t0, T_mult=self.t_mult, eta_min=self.eta_min)
