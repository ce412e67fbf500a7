"""The oracle's across-round policy: a grid of ``max_lr`` candidates searched in every round.

``GridPolicy.candidates`` returns the whole grid (ascending); the round loop hands a round with several
candidates to ``scyc.lifecycle.oracle.Oracle.search``, which trains one candidate per value from the same post-prune
state, keeps the one with the best validation accuracy (ties go to the smaller ``max_lr``) and carries
it to the next round. A round costs ``len(grid)`` times a normal round.
"""

from __future__ import annotations

from collections.abc import Sequence

from scyc.foundations.registry import ConfigError
from scyc.schedules.policies import POLICIES, MaxLRPolicy
from scyc.schedules.shapes import check_lr


@POLICIES.register("grid")
class GridPolicy(MaxLRPolicy):
    """Every value of ``schedule.grid`` is a candidate ``max_lr`` in every round."""

    def __init__(self, grid: Sequence[float]) -> None:
        if isinstance(grid, (str, bytes)) or not isinstance(grid, Sequence) or len(grid) == 0:
            raise ConfigError(
                f"schedule.grid={grid} is not allowed: it must be a non-empty list of max_lr values, "
                "e.g. schedule.grid=[0.01,0.05,0.1]"
            )
        values = [check_lr("grid", v) for v in grid]
        if any(v <= 0 for v in values):
            raise ConfigError(f"schedule.grid={list(grid)} is not allowed: every max_lr must be > 0")
        if len(set(values)) != len(values):
            raise ConfigError(f"schedule.grid={list(grid)} is not allowed: it lists a max_lr more than once")
        self.grid = sorted(values)

    def max_lr(self, round_idx: int, sparsity: float) -> float:
        raise NotImplementedError("the grid policy has no single max_lr: the round loop searches candidates()")

    def candidates(self, round_idx: int, sparsity: float) -> list[float]:
        return list(self.grid)

    def lowest(self) -> float:
        return self.grid[0]
