"""Step decay, with or without a linear warmup: the LR-rewinding and lottery-ticket shapes.

Milestones are fractions of the round, so the same YAML fits any number of epochs: at the first step
``t`` with ``t >= m * total_steps`` the LR is multiplied by ``gamma``. Every round starts again from the
top (``max_lr``), which is what LR rewinding (Renda et al. 2020) does after each pruning step.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch.optim.lr_scheduler import ChainedScheduler, LinearLR, MultiStepLR

from scyc.foundations.registry import ConfigError
from scyc.schedules.shapes import SHAPES, Shape, check_fraction, fraction_step, set_lr


def check_milestones(milestones: Sequence[float]) -> list[float]:
    if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence):
        raise ConfigError(
            f"schedule.milestones={milestones} is not allowed: it must be a list of fractions of the round, "
            "e.g. [0.5,0.75]"
        )
    values = [check_fraction("milestones", m, closed_low=False) for m in milestones]
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ConfigError(f"schedule.milestones={list(milestones)} is not allowed: they must be strictly increasing")
    return values


def check_gamma(gamma: float) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not 0 < gamma <= 1:
        raise ConfigError(f"schedule.gamma={gamma} is not allowed: the decay factor must lie in (0, 1]")
    return float(gamma)


@SHAPES.register("step_decay")
class StepDecay(Shape):
    """lr(t) = max_lr * gamma ** #{m in milestones : t >= m * total_steps}  (``MultiStepLR``)."""

    def __init__(self, milestones: Sequence[float], gamma: float) -> None:
        self.milestones = check_milestones(milestones)
        self.gamma = check_gamma(gamma)

    def milestone_steps(self, total_steps: int) -> list[int]:
        return [fraction_step(m, total_steps) for m in self.milestones]

    def decay(self, optimizer, total_steps: int) -> MultiStepLR:
        # Two milestones may share a step in a very short round; MultiStepLR then applies gamma once per
        # milestone, as the closed form says.
        return MultiStepLR(optimizer, milestones=self.milestone_steps(total_steps), gamma=self.gamma)

    def build(self, optimizer, max_lr, total_steps, steps_per_epoch):
        set_lr(optimizer, max_lr)
        return self.decay(optimizer, total_steps)


@SHAPES.register("warmup_step_decay")
class WarmupStepDecay(StepDecay):
    """A linear rise over the first ``warmup_fraction`` of the round, times step decay.

    With W = ceil(warmup_fraction * total_steps) warmup steps:
    lr(t) = max_lr * min(1, (t + 1) / W) * gamma ** #{m : t >= m * total_steps}  (W = 0: no warmup).
    The first step already moves (max_lr / W) and step W - 1 reaches max_lr. The two factors multiply,
    so a milestone inside the warmup also scales it (``ChainedScheduler`` of ``LinearLR`` and
    ``MultiStepLR``), as in the SILO code (Liu et al. 2023).
    """

    def __init__(self, warmup_fraction: float, milestones: Sequence[float], gamma: float) -> None:
        super().__init__(milestones, gamma)
        self.warmup_fraction = check_fraction("warmup_fraction", warmup_fraction, closed_low=True)

    def warmup_steps(self, total_steps: int) -> int:
        return min(total_steps, fraction_step(self.warmup_fraction, total_steps))

    def build(self, optimizer, max_lr, total_steps, steps_per_epoch):
        warm = self.warmup_steps(total_steps)
        if warm <= 1:  # W = 1: the factor (t + 1) / W is 1 from the first step
            return super().build(optimizer, max_lr, total_steps, steps_per_epoch)
        set_lr(optimizer, max_lr)
        # LinearLR from 1/W to 1 over W - 1 steps gives the factor (t + 1) / W, then 1.
        warmup = LinearLR(optimizer, start_factor=1.0 / warm, end_factor=1.0, total_iters=warm - 1)
        return ChainedScheduler([warmup, self.decay(optimizer, total_steps)], optimizer=optimizer)
