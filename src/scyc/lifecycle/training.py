"""The training hot path: one epoch of masked SGD, and evaluation.

Per step: forward, backward, optimiser step, one foreach multiply for the masks, one scheduler step.
Loss and accuracy are accumulated on the device and read once per epoch, so the loop never waits on
the GPU; the LR of each step is read from the optimiser (a Python float, no device sync).

``train.cuda_graphs`` (``CudaGraphStep``) replays that whole step as one CUDA graph instead of hundreds of
kernel launches: ResNet-20 at batch 64 is launch-bound on a large GPU.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from scyc.platforms.speed import autocast
from scyc.pruning.masks import MaskSet


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


class CudaGraphStep:
    """The training step of one optimiser (one round) as a CUDA graph: forward, loss, backward, the fused SGD
    step reading its LR from a device tensor, the mask multiply and the epoch's loss/accuracy sums.

    The first ``warmup`` steps run eagerly on a side stream (they are real steps: lazy state such as the
    momentum buffers and cuDNN plans is created there), then the step is captured once on a full batch and
    replayed: per step, the batch is copied into the static input buffers and the scheduler's LR (a Python
    float) into the LR tensor. The kernels are those of the eager step (autocast without its weight cache,
    which capture forbids, in the warm-up steps too, so that a compiled model meets the capture with the
    autocast state it was compiled for and is not recompiled inside it); a batch of another shape (a short
    last batch) runs eagerly, and so does every step if the capture fails (a warning says why; the start-up
    preflight, ``scyc.lifecycle.preflight``, refuses a run whose capture fails). Momentum is baked in at capture: a
    step whose optimiser momentum differs raises (``scyc.platforms.speed`` refuses such schedules at start-up).
    ``replays`` counts the replayed steps. ``release`` frees the graph and its memory pool with its round.
    """

    def __init__(self, model: nn.Module, optimizer: Optimizer, masks: MaskSet | None, amp_dtype, warmup: int = 3):
        if len(optimizer.param_groups) != 1 or not optimizer.defaults.get("fused"):
            raise ValueError("train.cuda_graphs needs one parameter group and the fused SGD of make_optimizer")
        self.model, self.optimizer, self.masks, self.amp_dtype, self.warmup = model, optimizer, masks, amp_dtype, warmup
        device = next(model.parameters()).device
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.lr = torch.zeros((), device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.failed = False
        self.error: str | None = None  # why the capture failed
        self.replays = 0
        self.momentum: float | None = None  # the momentum captured into the graph
        self.stream = torch.cuda.Stream(device)

    @classmethod
    def of(cls, model, optimizer, masks, amp_dtype) -> CudaGraphStep:
        """The graph of this optimiser (captured once, replayed in every epoch of its round, freed with it)."""
        step = getattr(optimizer, "_scyc_graph", None)
        if step is None or step.model is not model:
            step = optimizer._scyc_graph = cls(model, optimizer, masks, amp_dtype)
        return step

    @staticmethod
    def release(optimizer: Optimizer) -> None:
        """Free this optimiser's captured step (the graph, its private memory pool, the gradients allocated in
        it, the static buffers) now, not at the next full garbage collection: the step refers back to the
        optimiser, a reference cycle. Called at the end of every round (and by the preflight)."""
        step = optimizer.__dict__.pop("_scyc_graph", None)
        if step is None:
            return
        optimizer.zero_grad(set_to_none=True)
        if step.graph is not None:
            step.graph.reset()
        step.__dict__.clear()

    def ready(self, x: torch.Tensor, y: torch.Tensor) -> bool:
        """True once the step is captured for batches shaped like ``x`` (capturing it now if it is time)."""
        if self.graph is None and self.warmup <= 0 and not self.failed:
            try:
                self._capture(x, y)
            except Exception as exc:  # e.g. an op that cannot be captured: eager steps from here on
                warnings.warn(f"train.cuda_graphs: the capture failed, eager steps instead ({exc})", stacklevel=2)
                self.failed, self.graph, self.error = True, None, str(exc).strip().split("\n")[0]
                self.optimizer.zero_grad(set_to_none=True)
                torch.cuda.synchronize()
        return self.graph is not None and x.shape == self.x.shape and x.stride() == self.x.stride()

    @contextlib.contextmanager
    def eager(self):
        """Context of an eager step: the side stream during warm-up."""
        if self.graph is not None or self.failed:
            yield
            return
        self.warmup -= 1
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            yield
        torch.cuda.current_stream().wait_stream(self.stream)

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x.clone(memory_format=torch.preserve_format), y.clone()
        group = self.optimizer.param_groups[0]
        self.momentum = group["momentum"]
        lr, group["lr"] = group["lr"], self.lr  # the captured fused step reads the LR tensor
        self.optimizer.zero_grad(set_to_none=True)  # gradients are allocated in the graph's memory pool
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                with autocast(self.x.device, self.amp_dtype, cache_enabled=False):
                    out = self.model(self.x)
                    loss = F.cross_entropy(out, self.y)
                loss.backward()
                self.optimizer.step()
                if self.masks is not None:
                    self.masks.apply_()
                self.loss = loss.detach()
                self.loss_sum += self.loss * len(self.y)
                self.correct += (out.detach().argmax(1) == self.y).sum()
        finally:
            group["lr"] = lr
        self.graph = graph

    def __call__(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
        momentum = self.optimizer.param_groups[0]["momentum"]
        if momentum != self.momentum:
            raise RuntimeError(
                f"train.cuda_graphs: the schedule changed SGD's momentum to {momentum} inside the round, but the "
                f"captured step keeps {self.momentum}; set train.cuda_graphs=false"
            )
        self.x.copy_(x)
        self.y.copy_(y)
        self.lr.fill_(lr)
        self.graph.replay()
        self.replays += 1
        return self.loss.clone()


def train_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    optimizer: Optimizer,
    scheduler: LRScheduler,
    masks: MaskSet | None,
    skip_nonfinite: bool = False,
    amp_dtype: torch.dtype | None = None,
    cuda_graphs: bool = False,
) -> EpochResult:
    """One epoch. ``amp_dtype`` (e.g. bf16) autocasts the forward pass and the loss. Each step's loss tensor
    is kept (no sync) so a non-finite epoch loss can be traced to its first bad step
    (``scyc.lifecycle.guards.check_finite``); ``skip_nonfinite`` skips such batches instead, at the cost of one device
    sync per step. ``cuda_graphs`` replays the step as a CUDA graph (``CudaGraphStep``; not with
    ``skip_nonfinite``, which ``scyc.platforms.speed`` refuses)."""
    model.train()
    device = next(model.parameters()).device
    graph = CudaGraphStep.of(model, optimizer, masks, amp_dtype) if cuda_graphs else None
    loss_sum = torch.zeros((), device=device) if graph is None else graph.loss_sum.zero_()
    correct = torch.zeros((), device=device, dtype=torch.long) if graph is None else graph.correct.zero_()
    seen = 0
    lrs: list[float] = []
    step_losses: list[torch.Tensor] = []
    skipped = 0
    for x, y in batches:
        lrs.append(optimizer.param_groups[0]["lr"])
        if graph is not None and graph.ready(x, y):
            step_losses.append(graph(x, y, lrs[-1]))
            scheduler.step()
            seen += len(y)
            continue
        with graph.eager() if graph is not None else contextlib.nullcontext():
            with autocast(device, amp_dtype, cache_enabled=graph is None):  # as the capture, under graphs
                out = model(x)
                loss = F.cross_entropy(out, y)
            step_losses.append(loss.detach())
            if skip_nonfinite and not bool(torch.isfinite(loss)):
                skipped += 1
                scheduler.step()
                continue
            optimizer.zero_grad(set_to_none=graph is None or graph.graph is None)  # keep a captured graph's grads
            loss.backward()
            optimizer.step()
            if masks is not None:
                masks.apply_()
            loss_sum += loss.detach() * len(y)
            correct += (out.detach().argmax(1) == y).sum()
        scheduler.step()
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
