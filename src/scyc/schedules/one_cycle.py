"""1cycle (Smith & Topin 2019) inside each pruning round, via ``torch.optim.lr_scheduler.OneCycleLR``."""

from __future__ import annotations

import math

from torch.optim.lr_scheduler import OneCycleLR

from scyc.foundations.registry import ConfigError
from scyc.schedules.shapes import SHAPES, Shape, check_fraction, set_lr


def _at_least(key: str, value, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < minimum:
        raise ConfigError(f"schedule.{key}={value} is not allowed: it must be a number >= {minimum}")
    return float(value)


@SHAPES.register("one_cycle")
class OneCycle(Shape):
    """Rise from max_lr / div_factor to max_lr over the first ``pct_start`` of the round, then anneal to
    max_lr / (div_factor * final_div_factor) (``anneal_strategy`` cos or linear; ``three_phase`` as in
    torch). ``cycle_momentum`` (off in conf/schedule/one_cycle.yaml, so ``train.momentum`` holds in every option) cycles SGD
    momentum inversely between 0.85 and 0.95 as Smith & Topin do.
    """

    def __init__(
        self,
        pct_start: float,
        div_factor: float,
        final_div_factor: float,
        anneal_strategy: str,
        three_phase: bool,
        cycle_momentum: bool,
    ) -> None:
        self.pct_start = check_fraction("pct_start", pct_start, closed_low=False)
        self.div_factor = _at_least("div_factor", div_factor, 1.0)
        self.final_div_factor = _at_least("final_div_factor", final_div_factor, 1.0)
        if anneal_strategy not in ("cos", "linear"):
            raise ConfigError(f"schedule.anneal_strategy={anneal_strategy} is not allowed: use cos or linear")
        self.anneal_strategy = anneal_strategy
        if three_phase and self.pct_start >= 0.5:
            raise ConfigError(
                f"schedule.pct_start={self.pct_start} is not allowed with schedule.three_phase=true: the rise and the "
                "mirrored fall take 2 * pct_start of the round, so pct_start must be < 0.5"
            )
        self.three_phase, self.cycle_momentum = bool(three_phase), bool(cycle_momentum)

    def build(self, optimizer, max_lr, total_steps, steps_per_epoch):
        set_lr(optimizer, max_lr)
        # OneCycleLR ends its rise at step pct_start * total_steps - 1 and divides by the phases' lengths:
        # a rise shorter than 2 steps is degenerate (and can divide by zero), so refuse it.
        if self.pct_start * total_steps < 2:
            raise ConfigError(
                f"schedule.pct_start={self.pct_start} leaves a rise of {self.pct_start * total_steps:g} steps in a "
                f"round of {total_steps} steps; OneCycleLR needs more (train longer or change pct_start)"
            )
        return OneCycleLR(
            optimizer,
            max_lr=max_lr,
            total_steps=total_steps,
            pct_start=self.pct_start,
            div_factor=self.div_factor,
            final_div_factor=self.final_div_factor,
            anneal_strategy=self.anneal_strategy,
            three_phase=self.three_phase,
            cycle_momentum=self.cycle_momentum,
        )
