"""A schedule = an across-round ``max_lr`` policy x a within-round shape.

``conf/schedule/<option>.yaml`` names a policy and a shape and lists their parameters flat
(``schedule.max_lr_low``, ``schedule.base_lr`` ...); each parameter goes to whichever of the two takes it as a
keyword parameter of its constructor (``scyc.foundations.schema.keyword_params``). Any pair composes from the command line (``schedule.shape=constant``),
and either piece may be a dotted import path to a user's own class. ``schedule.lag_rounds`` (default 0)
belongs to neither: round r's ``max_lr`` is read at the sparsity of round r - lag_rounds (round 0's for
r < lag_rounds); 1 is the timing of the S-Cyc/SILO public code (the sparsity before round r's pruning).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from scyc.foundations.registry import ConfigError
from scyc.foundations.schema import keyword_params
from scyc.schedules.policies import POLICIES, MaxLRPolicy
from scyc.schedules.shapes import SHAPES, Shape

RESERVED = ("name", "policy", "shape")


@dataclass
class Schedule:
    name: str
    policy: MaxLRPolicy
    shape: Shape
    lag_rounds: int = 0

    def candidates(self, round_idx: int, sparsities: Sequence[float]) -> list[float]:
        """The ``max_lr`` candidates of round ``round_idx``; ``sparsities[i]`` is the sparsity of round i's
        network, for every round up to this one (the lag is applied here, and only here)."""
        return self.policy.candidates(round_idx, sparsities[max(0, round_idx - self.lag_rounds)])

    def state_dict(self) -> dict[str, Any]:
        """A policy's measurements so far (``gradscale``); empty for the policies that have none."""
        return self.policy.state_dict() if hasattr(self.policy, "state_dict") else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if hasattr(self.policy, "load_state_dict"):
            self.policy.load_state_dict(state)

    def max_lr(self, round_idx: int, sparsity: float) -> float:
        """The policy's ``max_lr`` at the given sparsity (no lag)."""
        return self.policy.max_lr(round_idx, sparsity)

    @property
    def cycles_momentum(self) -> bool:
        """Whether the shape changes SGD's momentum inside a round (``one_cycle`` with ``cycle_momentum=true``):
        a CUDA graph bakes momentum in at capture (``scyc.platforms.speed``)."""
        return bool(getattr(self.shape, "cycle_momentum", False))

    def build_round(self, optimizer: Optimizer, max_lr: float, total_steps: int, steps_per_epoch: int) -> LRScheduler:
        if total_steps < 1:
            raise ValueError(f"a round needs at least one step, got {total_steps}")
        return self.shape.build(optimizer, max_lr, total_steps, steps_per_epoch)


def build_schedule(cfg: Mapping[str, Any]) -> Schedule:
    """The schedule of ``cfg`` (``ScheduleConfig.options()``, or the raw ``schedule`` section: a plug-in's keys
    under ``extra`` count as the section's own)."""
    cfg = dict(cfg)
    cfg.update(cfg.pop("extra", None) or {})
    for key in RESERVED:
        if key not in cfg:
            raise ConfigError(f"schedule.{key} is missing")
    lag = cfg.pop("lag_rounds", None)
    lag = 0 if lag is None else lag
    if isinstance(lag, bool) or not isinstance(lag, int) or lag < 0:
        raise ConfigError(f"schedule.lag_rounds={lag} is not allowed: it must be an integer >= 0")
    params = {k: v for k, v in cfg.items() if k not in RESERVED and v is not None}  # null: unset
    policy_keys = keyword_params(POLICIES.get(cfg["policy"]))  # a piece's keys: its constructor's parameters
    shape_keys = keyword_params(SHAPES.get(cfg["shape"]))
    policy_params = {k: v for k, v in params.items() if k in policy_keys}
    shape_params = {k: v for k, v in params.items() if k in shape_keys}
    unused = sorted(set(params) - set(policy_params) - set(shape_params))
    if unused:
        raise ConfigError(
            f"schedule: key(s) {', '.join(unused)} are used by neither policy '{cfg['policy']}' nor "
            f"shape '{cfg['shape']}' (a piece's keys are its constructor's parameters; unset them with "
            f"{' '.join(f'schedule.{k}=null' for k in unused)})"
        )
    policy = POLICIES.build(cfg["policy"], policy_params, key="schedule.policy")  # a missing key: ConfigError
    shape = SHAPES.build(cfg["shape"], shape_params, key="schedule.shape")
    lowest = policy.lowest() if hasattr(policy, "lowest") else None
    if lowest is not None and hasattr(shape, "check_max_lr"):
        shape.check_max_lr(lowest)
    return Schedule(name=str(cfg["name"]), policy=policy, shape=shape, lag_rounds=lag)
