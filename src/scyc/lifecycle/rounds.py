"""One round's training at a given ``max_lr``: the recording path and each of the oracle's candidates.

``RoundTrainer.train_round`` trains the current network (``RunState``) for ``train.epochs`` epochs under the
schedule's within-round shape and returns the round's result and its epochs; ``after_epoch(record, progress)``
(the recording path) runs after each epoch. ``RoundProgress`` is the round in progress: its optimiser, LR
scheduler and best-validation bookkeeping, the part of an epoch checkpoint a resumed round continues from.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from scyc.config import TrainConfig
from scyc.data import DataSplits
from scyc.foundations.registry import ConfigError
from scyc.lifecycle import guards
from scyc.lifecycle.state import EpochRecord, RoundResult, RunState
from scyc.lifecycle.tracking import RunOutputs
from scyc.lifecycle.training import CudaGraphStep, evaluate, make_optimizer, train_epoch
from scyc.platforms import distributed
from scyc.platforms.speed import Speed
from scyc.schedules import Schedule


@dataclass
class RoundProgress:
    """The round in progress: its optimiser and LR scheduler and its bookkeeping (an epoch checkpoint's part)."""

    max_lr: float
    optimizer: torch.optim.Optimizer
    scheduler: Any
    best: tuple[float, int, float] = (-math.inf, -1, math.nan)  # (val acc, epoch, test acc at it)
    seconds: list[float] = field(default_factory=list)
    start: float = field(default_factory=time.perf_counter)

    def state_dict(self) -> dict[str, Any]:
        return {"max_lr": self.max_lr, "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "best": list(self.best), "seconds": list(self.seconds), "elapsed": time.perf_counter() - self.start}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any], round_idx: int) -> None:
        if state["max_lr"] != self.max_lr:
            raise ConfigError(
                f"round {round_idx} was checkpointed with max_lr={state['max_lr']}, but the schedule now gives "
                f"{self.max_lr}: the schedule changed since the checkpoint"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.best, self.seconds = tuple(state["best"]), list(state["seconds"])
        self.start -= state["elapsed"]


@dataclass
class Resumed:
    """A round an epoch checkpoint interrupted: which, how many of its epochs were done, its ``RoundProgress``."""

    round: int
    epochs_done: int
    progress: dict[str, Any]


AfterEpoch = Callable[[EpochRecord, RoundProgress], None]


@dataclass
class RoundTrainer:
    """Trains the run's current network for one round; evaluates it on a split (every rank its share)."""

    train: TrainConfig
    schedule: Schedule
    state: RunState
    data: DataSplits
    speed: Speed
    dist: distributed.DistEnv
    net: nn.Module  # what evaluates: the model or its compiled form
    train_model: nn.Module  # what trains: that, or DDP around it in a data-parallel run
    stop: guards.StopRequest
    outputs: RunOutputs
    bars: bool = False  # a tqdm bar over each epoch's steps

    def train_round(self, round_idx: int, max_lr: float, after_epoch: AfterEpoch | None = None,
                    resumed: Resumed | None = None) -> tuple[RoundResult, list[EpochRecord]]:  # fmt: skip
        """Train for one round at ``max_lr``; returns its result and its epochs. ``after_epoch`` (the recording
        path) runs after each epoch; ``resumed`` continues the round an epoch checkpoint interrupted."""
        tcfg, masks = self.train, self.state.masks
        sparsity = masks.sparsity()
        optimizer = make_optimizer(self.state.model, max_lr, tcfg.momentum, tcfg.weight_decay, tcfg.nesterov)
        train_loader = self.data.loader("train", tcfg.batch_size, train=True, generator=self.state.generator,
                                        **self.dist.shard)  # fmt: skip
        steps_per_epoch = len(train_loader)
        scheduler = self.schedule.build_round(optimizer, max_lr, tcfg.epochs * steps_per_epoch, steps_per_epoch)
        progress = RoundProgress(max_lr, optimizer, scheduler)
        first_epoch = 0
        if resumed is not None:
            progress.load_state_dict(resumed.progress, round_idx)
            first_epoch = resumed.epochs_done
        step = self.state.global_step
        records: list[EpochRecord] = []
        for epoch in range(first_epoch, tcfg.epochs):
            t0 = time.perf_counter()
            batches = self.stop.batches(train_loader)
            steps = tqdm(batches, total=steps_per_epoch, desc=f"round {round_idx} epoch {epoch + 1}/{tcfg.epochs}",
                         leave=False, disable=not self.bars)  # fmt: skip
            res = train_epoch(
                self.train_model, steps, optimizer, scheduler, masks, tcfg.skip_nonfinite,
                self.speed.autocast_dtype, self.speed.cuda_graphs,
            )  # fmt: skip
            self.stop.raise_if_requested(f"in round {round_idx} epoch {epoch} after {batches.yielded} steps")
            res.loss, res.accuracy = self.dist.mean_over_ranks((res.loss, res.accuracy), res.examples)
            progress.seconds.append(time.perf_counter() - t0)
            val_loss, val_acc = self.evaluate("val")
            test_loss, test_acc = self.evaluate("test")
            if getattr(res, "skipped", 0):  # train.skip_nonfinite: the batches skipped, in summary.json
                summary = self.outputs.summary
                summary["nonfinite_skipped"] = summary.get("nonfinite_skipped", 0) + res.skipped
            guards.check_finite(res, val_loss, round_idx, epoch, first_step=step)
            step += len(res.lrs)
            if val_acc > progress.best[0]:
                progress.best = (val_acc, epoch, test_acc)
            record = EpochRecord(
                round=round_idx, epoch=epoch, sparsity=sparsity, max_lr=max_lr,
                lr_last=res.lrs[-1] if res.lrs else math.nan, train_loss=res.loss, train_acc=res.accuracy,
                val_loss=val_loss, val_acc=val_acc, test_loss=test_loss, test_acc=test_acc,
                seconds=progress.seconds[-1], lrs=res.lrs,
            )  # fmt: skip
            records.append(record)
            if after_epoch is not None:
                after_epoch(record, progress)
        CudaGraphStep.release(optimizer)  # the round's CUDA graph and its memory pool go with it (oracle: each's)
        best_acc, best_epoch, test_at_best = progress.best
        result = RoundResult(
            round=round_idx, sparsity=sparsity, alive=masks.alive(), max_lr=max_lr, train_loss=res.loss,
            train_acc=res.accuracy, val_loss=val_loss, val_acc=val_acc, test_loss=test_loss, test_acc=test_acc,
            best_val_acc=best_acc, best_val_epoch=best_epoch, test_acc_at_best_val=test_at_best,
            epoch_seconds=sum(progress.seconds) / len(progress.seconds),
            round_seconds=time.perf_counter() - progress.start,
        )  # fmt: skip
        return result, records

    def evaluate(self, split: str) -> tuple[float, float]:
        """Loss and accuracy on a split; each rank evaluates its share, the sums are all-reduced."""
        loader = self.data.loader(split, self.speed.eval_batch_size, **self.dist.shard)
        loss, acc = evaluate(self.net, loader, self.speed.autocast_dtype)  # nan, nan for no examples: weight 0
        return tuple(self.dist.mean_over_ranks((loss, acc), loader.num_examples))
