"""Across-round policies: which ``max_lr`` the cycle of a pruning round reaches.

A policy maps (round, sparsity of the network trained in that round) to a list of candidate
``max_lr`` values. Ordinary policies give one candidate; a grid-search policy (the oracle) gives
several, and the round loop trains each and keeps the best by validation accuracy.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping

from scyc.foundations.registry import ConfigError, Registry
from scyc.schedules.shapes import check_lr

POLICIES: Registry[MaxLRPolicy] = Registry("schedule.policy")


def s_curve(sparsity: float, beta: float) -> float:
    """S(s) = 1 / (1 + (s / (1 - s)) ** -beta), with S(0) = 0, S(1/2) = 1/2 and S(1) = 1."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must lie in [0, 1], got {sparsity}")
    if sparsity == 0.0:
        return 0.0
    if sparsity == 1.0:
        return 1.0
    # 1 / (1 + r^-beta) written as a logistic function of beta*log(r): no overflow for any beta.
    z = beta * math.log(sparsity / (1.0 - sparsity))
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class MaxLRPolicy(ABC):
    @abstractmethod
    def max_lr(self, round_idx: int, sparsity: float) -> float:
        """The peak LR of round ``round_idx`` whose network has the given sparsity."""

    def candidates(self, round_idx: int, sparsity: float) -> list[float]:
        return [self.max_lr(round_idx, sparsity)]

    def lowest(self) -> float | None:
        """The smallest ``max_lr`` this policy can give in any round (None: unknown), so that shapes can
        refuse a floor above it at start-up."""
        return None


class MeasuredPolicy(MaxLRPolicy):
    """A policy that reads a round's ``max_lr`` from a measurement of the network about to be trained (gradscale).

    The round loop finds it by this type: it needs ``analysis.grad_every_round=true``, gets each round's
    start-of-round statistics of ``population`` through ``observe`` before ``candidates``, and its ``bounds`` are
    what the start-up check builds (no measurement exists yet then)."""

    population: str

    @abstractmethod
    def observe(self, round_idx: int, stats: Mapping[str, float]) -> None:
        """Round ``round_idx``'s start-of-round global gradient statistics of ``self.population``."""

    @abstractmethod
    def bounds(self) -> tuple[float, float]:
        """The smallest and largest ``max_lr`` any round can get."""


@POLICIES.register("constant")
class ConstantPolicy(MaxLRPolicy):
    """The same peak LR every round: ``schedule.lr`` or ``schedule.max_lr`` (exactly one of them).

    Both names exist because options read better with one or the other: ``lr`` for a flat or
    decaying schedule (constant, lr_rewind), ``max_lr`` for one with a peak (cyclic, warmup, sgdr, one_cycle).
    """

    def __init__(self, lr: float | None = None, max_lr: float | None = None) -> None:
        if (lr is None) == (max_lr is None):
            raise ConfigError(
                f"schedule: the constant policy needs exactly one of schedule.lr or schedule.max_lr "
                f"(got lr={lr}, max_lr={max_lr})"
            )
        key, value = ("lr", lr) if lr is not None else ("max_lr", max_lr)
        check_lr(key, value)
        self.lr = float(value)

    def max_lr(self, round_idx: int, sparsity: float) -> float:
        return self.lr

    def lowest(self) -> float:
        return self.lr


@POLICIES.register("scurve")
class SCurvePolicy(MaxLRPolicy):
    """S-Cyc's envelope: max_lr = max_lr_low + (max_lr_high - max_lr_low) * S(sparsity; beta)."""

    def __init__(self, max_lr_low: float, max_lr_high: float, beta: float) -> None:
        check_lr("max_lr_low", max_lr_low)
        check_lr("max_lr_high", max_lr_high)
        if max_lr_low > max_lr_high:
            raise ConfigError(
                f"schedule.max_lr_low={max_lr_low} > schedule.max_lr_high={max_lr_high}: "
                "the S-curve needs max_lr_low <= max_lr_high"
            )
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not math.isfinite(beta) or beta <= 0:
            raise ConfigError(f"schedule.beta={beta} is not allowed: beta must be > 0")
        self.low, self.high, self.beta = float(max_lr_low), float(max_lr_high), float(beta)

    def max_lr(self, round_idx: int, sparsity: float) -> float:
        return self.low + (self.high - self.low) * s_curve(sparsity, self.beta)

    def lowest(self) -> float:
        return self.low
