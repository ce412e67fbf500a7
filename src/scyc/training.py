"""The training hot path: one epoch of masked SGD, and evaluation.

Per step: forward, backward, optimiser step, one foreach multiply for the masks, one scheduler step.
Loss and accuracy are accumulated on the device and read once per epoch, so the loop never waits on
the GPU; the LR of each step is read from the optimiser (a Python float, no device sync).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from scyc.pruning.masks import MaskSet
from scyc.speed import autocast


@dataclass
class EpochResult:
    loss: float
    accuracy: float
    examples: int
    lrs: list[float] = field(default_factory=list)
    skipped: int = 0  # batches skipped for a non-finite loss (train.skip_nonfinite)
    step_losses: list[torch.Tensor] = field(default_factory=list, repr=False)  # device scalars, read on demand


def make_optimizer(model: nn.Module, lr: float, momentum: float, weight_decay: float, nesterov: bool) -> Optimizer:
    """SGD; the fused kernel on CUDA, the multi-tensor (foreach) one elsewhere."""
    fused = next(model.parameters()).device.type == "cuda"
    return torch.optim.SGD(
        model.parameters(),
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        nesterov=nesterov,
        fused=fused or None,
        foreach=None if fused else True,
    )


def train_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: Optimizer,
    scheduler: LRScheduler,
    masks: MaskSet | None,
    skip_nonfinite: bool = False,
    amp_dtype: torch.dtype | None = None,
) -> EpochResult:
    """One epoch. ``amp_dtype`` (e.g. bf16) autocasts the forward pass and the loss. Each step's loss tensor
    is kept (no sync) so a non-finite epoch loss can be traced to its first bad step
    (``scyc.guards.check_finite``); ``skip_nonfinite`` skips such batches instead, at the cost of one device
    sync per step."""
    model.train()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    lrs: list[float] = []
    step_losses: list[torch.Tensor] = []
    skipped = 0
    for x, y in batches:
        lrs.append(optimizer.param_groups[0]["lr"])
        with autocast(device, amp_dtype):
            out = model(x)
            loss = F.cross_entropy(out, y)
        step_losses.append(loss.detach())
        if skip_nonfinite and not bool(torch.isfinite(loss)):
            skipped += 1
            scheduler.step()
            continue
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if masks is not None:
            masks.apply_()
        scheduler.step()
        loss_sum += loss.detach() * len(y)
        correct += (out.detach().argmax(1) == y).sum()
        seen += len(y)
    seen = max(seen, 1)
    return EpochResult(
        loss=loss_sum.item() / seen,
        accuracy=correct.item() / seen,
        examples=seen,
        lrs=lrs,
        skipped=skipped,
        step_losses=step_losses,
    )


@torch.no_grad()
def evaluate(
    model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], amp_dtype: torch.dtype | None = None
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (fraction in [0, 1]) over all batches."""
    model.eval()
    device = next(model.parameters()).device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for x, y in batches:
        with autocast(device, amp_dtype):
            out = model(x)
        loss_sum += F.cross_entropy(out.float(), y, reduction="sum")
        correct += (out.argmax(1) == y).sum()
        seen += len(y)
    if seen == 0:
        return float("nan"), float("nan")
    return loss_sum.item() / seen, correct.item() / seen
