"""The LR of every optimiser step of a whole pruning run, without training (for plots and tests).

Each round's scheduler is built exactly as the round loop builds it (``Schedule.build_round`` on a fresh
SGD optimiser) and stepped once per step, so the trace is what a run would use, given each round's
sparsity. With a grid policy (the oracle) every candidate is traced (``candidate`` column).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from scyc.schedules.schedule import Schedule


def round_trace(schedule: Schedule, max_lr: float, total_steps: int, steps_per_epoch: int) -> list[float]:
    """The LR used by each of the ``total_steps`` optimiser steps of one round peaking at ``max_lr``."""
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=max_lr)
    scheduler = schedule.build_round(optimizer, max_lr, total_steps, steps_per_epoch)
    lrs = []
    for _ in range(total_steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # no gradient: parameters stay put, but the scheduler sees a stepped optimiser
        scheduler.step()
    return lrs


def pruning_sparsities(rounds: int, rate: float) -> list[float]:
    """Nominal sparsity of the network trained in round r: 1 - (1 - rate) ** r (round 0 is dense)."""
    return [1.0 - (1.0 - rate) ** r for r in range(rounds)]


def simulate(
    schedule: Schedule, sparsities: Sequence[float], epochs: int, steps_per_epoch: int
) -> list[dict[str, float]]:
    """Rows (round, candidate, max_lr, sparsity, step, lr); ``step`` counts from the start of the run."""
    total = epochs * steps_per_epoch
    rows: list[dict[str, float]] = []
    for r, sparsity in enumerate(sparsities):
        for c, max_lr in enumerate(schedule.candidates(r, sparsities[: r + 1])):
            for i, lr in enumerate(round_trace(schedule, max_lr, total, steps_per_epoch)):
                rows.append(
                    {
                        "round": r,
                        "candidate": c,
                        "max_lr": max_lr,
                        "sparsity": sparsity,
                        "step": r * total + i,
                        "lr": lr,
                    }
                )
    return rows
