"""``gradscale``: each round's ``max_lr`` read from the measured gradient spread instead of a curve fixed in advance.

S-Cyc's premise is that pruning narrows the gradient distribution, so sparser networks want a larger LR; its
S-curve encodes that change with three hand-tuned knobs. This policy follows the measurement itself. At the
start of every round, after pruning and reset, the gradient measurement (``scyc.analysis.gradients``, the
``start`` row of ``grad_stats.csv``) gives a spread ``sigma_r`` of the chosen population's gradients; then

    max_lr_r = max_lr_dense * clip((sigma_0 / sigma_r) ** exponent, min_factor, max_factor)

where ``sigma_0`` is round 0's (the dense network's). ``exponent = 1`` (gamma in the issue's notation) keeps the typical step ``lr * |g|``
constant as the gradients narrow; ``exponent = 0`` is a constant LR. The spread is ``statistic`` (``std``,
``abs_mean`` = mean |g|, or ``iqr`` = p75 - p25) of ``population`` (``surviving``: unpruned weights only;
``all_zeroed``: all weights with pruned ones at 0; ``all_raw``: all weights' raw gradients).

Assumptions, and when it should fail: the measurement batches are fixed for the run, so ``sigma_r`` moves
only with the network; a round's spread at its start predicts the step size that suits the whole round; and
a narrower gradient asks for a proportionally larger LR (true of plain SGD's step size, not of the loss
landscape's curvature). It will mislead where the spread widens with sparsity (then it lowers the LR: the
clip bounds how far), where a reset (``reinit``) changes the scale of the weights rather than the network's
sparsity, and with ``analysis.normalize=true`` (then sigma is relative to the weight scale). The reference
and every round's sigma are part of the policy's state (``state_dict``), so a resumed run continues with the
same reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from scyc.foundations.registry import ConfigError
from scyc.schedules.policies import POLICIES, MeasuredPolicy
from scyc.schedules.shapes import check_lr

POPULATIONS = ("surviving", "all_zeroed", "all_raw")
STATISTICS = ("std", "abs_mean", "iqr")


def spread(stats: Mapping[str, float], statistic: str) -> float:
    """The spread ``statistic`` of one row of ``grad_stats.csv`` (or the measurement's dict of it)."""
    return float(stats["p75"]) - float(stats["p25"]) if statistic == "iqr" else float(stats[statistic])


def scale_factor(sigma_ref: float, sigma_now: float, exponent: float, min_factor: float, max_factor: float) -> float:
    """``clip((sigma_ref / sigma_now) ** exponent, min_factor, max_factor)``; a zero or non-finite ratio clips."""
    ratio = sigma_ref / sigma_now if sigma_now > 0 else math.inf
    factor = ratio**exponent if math.isfinite(ratio) and ratio > 0 else (max_factor if ratio > 0 else min_factor)
    return min(max(factor, min_factor), max_factor)


@POLICIES.register("gradscale")
class GradScalePolicy(MeasuredPolicy):
    """``max_lr = max_lr_dense * clip((sigma_0 / sigma_r) ** exponent, min_factor, max_factor)`` (module doc)."""

    def __init__(
        self,
        max_lr_dense: float,
        exponent: float,
        min_factor: float,
        max_factor: float,
        population: str,
        statistic: str,
    ) -> None:
        check_lr("max_lr_dense", max_lr_dense)
        for key, value in (("exponent", exponent), ("min_factor", min_factor), ("max_factor", max_factor)):
            check_lr(key, value)
        if not 0 < min_factor <= 1 <= max_factor:
            raise ConfigError(
                f"schedule.min_factor={min_factor}, schedule.max_factor={max_factor} are not allowed: "
                "they must satisfy 0 < min_factor <= 1 <= max_factor"
            )
        if population not in POPULATIONS:
            raise ConfigError(
                f"schedule.population={population} is not allowed; choose one of {', '.join(POPULATIONS)}"
            )
        if statistic not in STATISTICS:
            raise ConfigError(f"schedule.statistic={statistic} is not allowed; choose one of {', '.join(STATISTICS)}")
        self.dense, self.exponent = float(max_lr_dense), float(exponent)
        self.min_factor, self.max_factor = float(min_factor), float(max_factor)
        self.population, self.statistic = population, statistic
        self.sigmas: dict[int, float] = {}  # round -> measured spread at the round's start

    def observe(self, round_idx: int, stats: Mapping[str, float]) -> None:
        """Record round ``round_idx``'s start-of-round global statistics of ``self.population``."""
        self.sigmas[int(round_idx)] = spread(stats, self.statistic)

    def max_lr(self, round_idx: int, sparsity: float) -> float:
        if 0 not in self.sigmas or round_idx not in self.sigmas:
            raise ConfigError(
                f"schedule=gradscale needs the gradient measurement of round {round_idx} and of round 0; keep "
                "analysis.grad_every_round=true"
            )
        factor = scale_factor(self.sigmas[0], self.sigmas[round_idx], self.exponent, self.min_factor, self.max_factor)
        return self.dense * factor

    def lowest(self) -> float:
        return self.dense * self.min_factor

    def bounds(self) -> tuple[float, float]:
        """The smallest and largest ``max_lr`` any round can get (what the start-up check builds)."""
        return self.dense * self.min_factor, self.dense * self.max_factor

    def state_dict(self) -> dict[str, Any]:
        return {"sigmas": dict(self.sigmas)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sigmas = {int(k): float(v) for k, v in state["sigmas"].items()}
