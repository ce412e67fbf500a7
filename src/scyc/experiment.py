"""The iterative-pruning experiment: train, prune, reset, retrain, round after round.

Round 0 trains the dense network. Each later round removes ``pruner.rate`` of the surviving prunable
weights, applies ``pruner.reset`` and retrains for ``train.epochs`` epochs under the schedule: the
across-round policy picks the round's ``max_lr`` from the sparsity of the network about to be trained,
the within-round shape turns it into a per-step LR. ``Experiment.run`` is that loop; everything it
changes lives in ``RunState`` (``scyc.state``), everything it writes goes through ``RunOutputs``
(``scyc.tracking``). See docs/architecture.md.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from scyc import checkpoint, distributed, guards, rundir
from scyc.analysis import GradientAnalysis, analysis_callbacks
from scyc.callbacks import Callback, RunView
from scyc.config import Config, load, validate
from scyc.data import DataSplits, build_data
from scyc.models import create_model
from scyc.oracle import Oracle
from scyc.preflight import run_preflight
from scyc.pruning import PRUNERS, RESETS, MaskSet, PruneContext
from scyc.pruning.accounting import pruning_callbacks
from scyc.pruning.base import predicted_sparsities
from scyc.registry import ConfigError
from scyc.schedules import MeasuredPolicy, build_schedule
from scyc.speed import Speed
from scyc.state import EpochRecord, RoundResult, RunState, check_fits
from scyc.sweeps import wandb_settings
from scyc.tracking import RunOutputs, provenance
from scyc.training import CudaGraphStep, evaluate, make_optimizer, train_epoch
from scyc.utils import resolve_device, seed_everything, write_failure

log = logging.getLogger("scyc")


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


class Experiment:
    def __init__(self, cfg: Config | DictConfig, run_dir: str | Path, resume: rundir.Resume | None = None) -> None:
        if not isinstance(cfg, Config):  # scripts and tests; train.py's entry point validates before run_dir
            cfg = load(cfg)
            validate(cfg)
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.dist = distributed.current()  # a single process unless distributed.init formed a group
        self.dist.check_global_batch(cfg.train.batch_size)
        self.device = self.dist.device or resolve_device(cfg.device)
        guards.configure_determinism(bool(cfg.deterministic), self.device)
        self.schedule = build_schedule(cfg.schedule.options())
        self.rounds = cfg.pruner.rounds
        self.reset = RESETS.get(cfg.pruner.reset)
        self.pruner = PRUNERS.build(cfg.pruner.name, cfg.pruner.pruner_options(), key="pruner")
        seed_everything(cfg.seed)
        self.data: DataSplits = build_data({"name": cfg.dataset.name, **cfg.dataset.options()}, self.device,
                                           cfg.data_dir)  # fmt: skip
        self.data_fingerprint = self.data.raw.fingerprint()  # checkpointed: resuming on other data is refused
        self.data_change = rundir.check_data(resume[0].get("data") if resume else None, self.data_fingerprint,
                                             cfg.resume_allow_data_change)  # fmt: skip
        model = create_model(
            cfg.model.name,
            num_classes=self.data.num_classes,
            in_channels=self.data.in_channels,
            image_size=self.data.image_size,
            **cfg.model.options(),
        ).to(self.device)
        self.speed = Speed.from_config(cfg.train, self.device, model, self.schedule.cycles_momentum)
        self.net = self.speed.prepare(model)  # what runs forward: the model itself or its compiled form
        self.data.channels_last = self.speed.channels_last
        try:  # after the memory-format conversion: the masks share the weights' layout (one foreach multiply)
            masks = MaskSet.from_model(model, exclude=cfg.pruner.exclude or ())
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        self.pruner.check_rounds(masks, self.rounds)
        if resume is not None:  # a checkpoint that loads but holds another model is skipped (rundir.refit)
            resume = rundir.refit(cfg, self.run_dir, resume, lambda ckpt: check_fits(model, masks, ckpt["state"]))
        generator = torch.Generator(device=self.device).manual_seed(int(cfg.seed))
        if resume:  # device may change on resume, its type may not (the generator's state)
            rundir.check_generator(resume[0]["state"]["rng"]["generator"], generator, cfg.device)
        self.state = RunState(model, masks, generator, snapshots={"init": copy.deepcopy(model.state_dict())})
        # What trains: DDP (data-parallel runs) around the model, compiled when train.compile; shares its Parameters.
        self.train_model = self.speed.prepare(self.dist.wrap(model)) if self.dist.enabled else self.net
        self.outputs = RunOutputs(self.run_dir, is_main=self.dist.is_main)
        self.view = RunView(cfg, self.run_dir, self.state, self.data, self.outputs)  # what the callbacks see
        self.callbacks: list[Callback] = [
            *pruning_callbacks(cfg.pruner.reset, cfg.pruner.rewind_epoch, cfg.train.epochs),
            *([distributed.MaskDigestCheck(self.dist)] if self.dist.enabled else []),
            *analysis_callbacks(cfg.analysis),
        ]
        self.oracle = Oracle(self.outputs)
        self.checkpointer = checkpoint.Checkpointer(self.run_dir / "checkpoints", cfg.checkpoint.keep)
        self.stop = guards.StopRequest()  # SIGINT/SIGTERM -> stop at the last checkpoint (scyc.guards)
        self.resume = resume  # (checkpoint, path) to continue from, see scyc.rundir
        self._resume_round: dict[str, Any] | None = None  # the epoch checkpoint's round in progress
        self.gradients = next((cb for cb in self.callbacks if isinstance(cb, GradientAnalysis)), None)
        # a policy read from measurements (gradscale): found by its type, fed before each round's candidates
        self.measured = self.schedule.policy if isinstance(self.schedule.policy, MeasuredPolicy) else None
        if self.measured is not None and self.gradients is None:
            raise ConfigError(f"schedule={self.schedule.name} reads max_lr from the gradient measurement: it needs "
                              "analysis.grad_every_round=true")  # fmt: skip
        predicted = predicted_sparsities(masks.total, cfg.pruner.rate, self.rounds)
        steps_per_epoch = len(self.data.loader("train", cfg.train.batch_size, train=True))
        measured = self.measured
        guards.preflight_schedule(
            self.schedule, (lambda r: list(measured.bounds())) if measured else lambda r: self.schedule.candidates(r, predicted[: r + 1]),
            predicted, cfg.train.epochs * steps_per_epoch, steps_per_epoch,
        )  # fmt: skip
        # Last: a tiny batch through every path the run takes (scyc.preflight); the run's state is kept as it was.
        self.preflight_seconds = run_preflight(self)

    # The run's state, read by the loop below (callbacks see it through self.view, scyc.callbacks.RunView).
    model = property(lambda self: self.state.model)
    masks = property(lambda self: self.state.masks)
    snapshots = property(lambda self: self.state.snapshots)
    generator = property(lambda self: self.state.generator)

    def _each(self, hook: Callable[[Callback], None]) -> None:
        """``hook(cb)`` for every callback, in order (e.g. ``lambda cb: cb.on_round_start(view, r)``)."""
        for cb in self.callbacks:
            hook(cb)

    # ---------------------------------------------------------------------------------------- the loop
    def run(self) -> dict[str, Any]:
        """Round 0 trains the dense network; every later round prunes, resets and retrains. Every way out once
        summary.json is open (W&B failing to start included) leaves it complete, failed or interrupted."""
        self._no_bar = None if self.cfg.progress and self.dist.is_main else True
        start = time.perf_counter()
        self.stop.install()
        console = contextlib.ExitStack()
        try:
            if not self._no_bar:  # log lines go through tqdm.write, above the bars, never over them
                console.enter_context(logging_redirect_tqdm())
            self._open_outputs()
            view = self.view
            self._each(lambda cb: cb.on_run_start(view))
            first_round, first_epoch = self._restore() if self.resume else (0, 0)
            bar = tqdm(range(first_round, self.rounds), desc="rounds", disable=self._no_bar)
            phase = lambda what: bar.set_description_str(f"rounds [{what}]")  # noqa: E731  what the bar waits on
            for r in bar:
                resumed_inside = r == first_round and first_epoch > 0  # pruned and measured already
                # the round's clock; resumed inside round r, its training so far counts (round_seconds does too)
                round_start = time.perf_counter() - (self._resume_round["state"]["elapsed"] if resumed_inside else 0)
                if not resumed_inside:
                    if r > 0:
                        phase(f"round {r}: pruning")
                        self.prune()
                    phase(f"round {r}: measuring gradients" if self.gradients else f"round {r}: starting")
                    self._each(lambda cb, r=r: cb.on_round_start(view, r))  # measure the network about to be trained
                    if self.measured is not None:  # gradscale: max_lr from that measurement
                        self.measured.observe(r, self.gradients.latest_start.global_stats(self.measured.population))
                sparsities = [x.sparsity for x in self.state.results] + [self.masks.sparsity()]
                candidates = self.schedule.candidates(r, sparsities)  # this round's max_lr (or grid)
                phase(f"round {r}: training" if len(candidates) == 1 else f"round {r}: {len(candidates)} candidates")
                if len(candidates) == 1:
                    result, _ = self.train_round(r, candidates[0], after_epoch=self.record_epoch)
                else:
                    result, epochs = self.oracle.search(r, candidates, functools.partial(self.train_round, r),
                                                        self.state, has_val=len(self.data.val[1]) > 0)  # fmt: skip
                    for record in epochs:  # the path actually taken
                        self.record_epoch(record)
                phase(f"round {r}: measuring gradients" if self.gradients else f"round {r}: recording")
                self.record_round(result)
                phase(f"round {r}: checkpoint")
                result.other_seconds = time.perf_counter() - round_start - result.round_seconds
                self.save_checkpoint("round", (r + 1, 0))  # holds other_seconds without its own write
                result.other_seconds = time.perf_counter() - round_start - result.round_seconds
                self.outputs.update_round(result, asdict(result))
                self.stop.raise_if_requested(f"after round {r}")
                bar.set_postfix(sparsity=f"{result.sparsity:.3f}", test=f"{result.test_acc:.4f}")
            return self._finish(time.perf_counter() - start)
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            failure = write_failure(exc) if isinstance(exc, Exception) else None  # a full disk, a read-only folder
            why = failure or exc
            resume = {"resume_command": rundir.resume_command(self.run_dir)} if self.checkpointer.candidates() else {}
            with guards.signals_ignored():  # a further Ctrl-C must not leave the summary saying running
                self.outputs.write_summary(status=status, reason=f"{type(why).__name__}: {why}",
                                           rounds_completed=len(self.state.results), **guards.failure_fields(exc),
                                           **resume)  # fmt: skip
            self.outputs.wandb.finish(exit_code=1)
            if failure is not None and failure is not exc:  # one line, exit 2 (scyc.cli)
                raise failure from exc
            raise
        finally:
            console.close()
            self.stop.uninstall()

    def prune(self) -> None:
        """Prune the surviving weights, then apply the reset (``pruner.reset``)."""
        ctx = PruneContext(
            model=self.model,
            batches=lambda: iter(
                self.data.loader("train", self.cfg.train.batch_size, train=True, generator=self.generator)
            ),  # fmt: skip
            generator=self.generator,
        )
        # Data-parallel runs: rank 0 decides, every rank installs its masks, generator state and weights.
        new_masks = self.pruner.prune(self.masks, ctx) if self.dist.is_main else None
        self.masks.set_(self.dist.broadcast_masks(new_masks, self.masks.masks))
        self.dist.broadcast_generator(self.generator)
        self.reset(self.model, self.masks, self.snapshots, self.generator)
        self.dist.broadcast_module(self.model)

    def train_round(self, round_idx: int, max_lr: float, after_epoch=None) -> tuple[RoundResult, list[EpochRecord]]:
        """Train the current network for one round at ``max_lr``; returns its result and its epochs.
        ``after_epoch(record, progress)`` (the recording path) runs after each epoch and checkpoints it."""
        tcfg = self.cfg.train
        sparsity = self.masks.sparsity()
        optimizer = make_optimizer(self.model, max_lr, tcfg.momentum, tcfg.weight_decay, tcfg.nesterov)
        train_loader = self.data.loader("train", tcfg.batch_size, train=True, generator=self.generator,
                                        **self.dist.shard)  # fmt: skip
        steps_per_epoch = len(train_loader)
        scheduler = self.schedule.build_round(optimizer, max_lr, tcfg.epochs * steps_per_epoch, steps_per_epoch)
        progress = RoundProgress(max_lr, optimizer, scheduler)
        first_epoch, resumed = 0, self._resume_round
        self._resume_round = None  # used once
        if resumed is not None and resumed["position"][0] == round_idx:
            progress.load_state_dict(resumed["state"], round_idx)
            first_epoch = resumed["position"][1]
        step = self.state.global_step
        records: list[EpochRecord] = []
        for epoch in range(first_epoch, tcfg.epochs):
            t0 = time.perf_counter()
            batches = self.stop.batches(train_loader)
            # a bar per step, inside the epoch
            steps = tqdm(batches, total=steps_per_epoch, desc=f"round {round_idx} epoch {epoch + 1}/{tcfg.epochs}",
                         leave=False, disable=getattr(self, "_no_bar", True))  # fmt: skip
            res = train_epoch(
                self.train_model, steps, optimizer, scheduler, self.masks, tcfg.skip_nonfinite,
                self.speed.autocast_dtype, self.speed.cuda_graphs,
            )  # fmt: skip
            self.stop.raise_if_requested(f"in round {round_idx} epoch {epoch} after {batches.yielded} steps")
            res.loss, res.accuracy = self.dist.mean_over_ranks((res.loss, res.accuracy), res.examples)
            progress.seconds.append(time.perf_counter() - t0)
            val_loss, val_acc = self._evaluate("val")
            test_loss, test_acc = self._evaluate("test")
            if getattr(res, "skipped", 0):
                self.outputs.summary["nonfinite_skipped"] = (
                    self.outputs.summary.get("nonfinite_skipped", 0) + res.skipped
                )
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
                after_epoch(record)
                if epoch + 1 < tcfg.epochs:  # after the last epoch the round checkpoint follows
                    self.save_checkpoint("epoch", (round_idx, epoch + 1), progress)
                    self.stop.raise_if_requested(f"after round {round_idx} epoch {epoch}")
        CudaGraphStep.release(
            optimizer
        )  # the round's CUDA graph and its memory pool go with it (oracle: each candidate's)
        best_acc, best_epoch, test_at_best = progress.best
        result = RoundResult(
            round=round_idx, sparsity=sparsity, alive=self.masks.alive(), max_lr=max_lr, train_loss=res.loss,
            train_acc=res.accuracy, val_loss=val_loss, val_acc=val_acc, test_loss=test_loss, test_acc=test_acc,
            best_val_acc=best_acc, best_val_epoch=best_epoch, test_acc_at_best_val=test_at_best,
            epoch_seconds=sum(progress.seconds) / len(progress.seconds),
            round_seconds=time.perf_counter() - progress.start,
        )  # fmt: skip
        return result, records

    def _evaluate(self, split: str) -> tuple[float, float]:
        """Loss and accuracy on a split; each rank evaluates its share, the sums are all-reduced."""
        loader = self.data.loader(split, self.speed.eval_batch_size, **self.dist.shard)
        loss, acc = evaluate(self.net, loader, self.speed.autocast_dtype)  # nan, nan for no examples: weight 0
        return tuple(self.dist.mean_over_ranks((loss, acc), loader.num_examples))

    # ----------------------------------------------------------------------------------- recording
    def record_epoch(self, record: EpochRecord) -> None:
        self.outputs.epoch(record, first_step=self.state.global_step)
        self.state.global_step += len(record.lrs)
        row = record.row()
        self.state.epochs.append(row)
        self._each(lambda cb: cb.on_epoch_end(self.view, record.round, record.epoch, row))

    def record_round(self, result: RoundResult) -> None:
        self.state.results.append(result)
        self.outputs.round(result, asdict(result))
        self._each(lambda cb: cb.on_round_end(self.view, result))
        log.info(
            "round %d/%d | sparsity %.4f | max_lr %.5f | train loss %.4f | val acc %.4f | test acc %.4f | %.1f s/epoch",
            result.round, self.rounds - 1, result.sparsity, result.max_lr, result.train_loss,
            result.val_acc, result.test_acc, result.epoch_seconds,
        )  # fmt: skip

    # --------------------------------------------------------------------------- outputs, checkpoints
    def _open_outputs(self) -> None:
        cfg = self.cfg
        summary = {
            "status": "running", "run_dir": str(self.run_dir), "schedule": self.schedule.name,
            "pruner": cfg.pruner.name, "model": cfg.model.name, "dataset": cfg.dataset.name, "seed": int(cfg.seed),
            "rounds": self.rounds, "device": str(self.device), "world_size": self.dist.world_size,
            "prunable_weights": self.masks.total, "parameters": sum(p.numel() for p in self.model.parameters()),
            **provenance(),
        }  # fmt: skip
        wandb_id = self.outputs.start(summary, self.resume)  # on resume: tables back to the checkpoint
        self.checkpointer.adopt(self.resume)
        if self.resume is not None:
            ckpt, path = self.resume
            saved = ckpt["config"]["pruner"]["rounds"]
            extend = f"; extending the run from {saved} to {self.rounds} rounds" if self.rounds > saved else ""
            log.info("resuming %s from %s (round %d, %d epoch(s) of it done)%s", self.run_dir, path.name,
                     *checkpoint.position(ckpt), extend)  # fmt: skip
            if self.data_change and self.outputs.is_main:  # rank 0 keeps the list of resumes
                self.outputs.summary["resumes"][-1]["data_changed"] = self.data_change
        elif cfg.resume:
            log.info("resume=true: no checkpoint in %s yet, starting the run from the beginning", self.run_dir)
        self.outputs.write_summary()
        # tags, and the sweep's name as group in a multirun
        self.outputs.open_wandb(wandb_settings(cfg), cfg.raw, run_id=wandb_id)

    def save_checkpoint(self, kind: str, position: tuple[int, int], progress: RoundProgress | None = None) -> None:
        """Checkpoint the run at ``position`` = (round, epochs of it done) and note it in summary.json (a
        heartbeat for running runs). In a data-parallel run only rank 0 writes (every rank holds the same state)."""
        if not self.outputs.is_main:
            return
        path = self.checkpointer.save(checkpoint.payload(
            kind, position, config=self.cfg.raw, state=self.state.state_dict(),
            round=progress.state_dict() if progress is not None else None,
            callbacks=[cb.state_dict() if hasattr(cb, "state_dict") else None for cb in self.callbacks],
            schedule=self.schedule.state_dict(), wandb_id=self.outputs.summary.get("wandb_id"), threads=torch.get_num_threads(), saved_at=time.time(),
            torch_version=str(torch.__version__), data=self.data_fingerprint,
        ))  # fmt: skip
        self.outputs.write_summary(
            checkpoint={"path": str(path), "round": position[0], "epochs_done": position[1],
                        "step": self.state.global_step},
            rounds_completed=len(self.state.results),
            updated_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        )  # fmt: skip

    def _restore(self) -> tuple[int, int]:
        """Put the run (built afresh from the same config) into the checkpointed state; returns the position
        (round, epochs of it done) to continue from."""
        ckpt, _ = self.resume
        for cb, cb_state in zip(self.callbacks, ckpt["callbacks"]):
            if cb_state is not None and hasattr(cb, "load_state_dict"):
                cb.load_state_dict(cb_state)
        if self.cfg.deterministic and ckpt.get("threads") and torch.get_num_threads() != ckpt["threads"]:
            log.info("deterministic=true: using %d CPU threads as the checkpointed process did", ckpt["threads"])
            torch.set_num_threads(int(ckpt["threads"]))
        self.state.load_state_dict(ckpt["state"])
        self.schedule.load_state_dict(ckpt.get("schedule") or {})
        position = checkpoint.position(ckpt)
        if ckpt["kind"] == "epoch" and position[1] > 0:
            self._resume_round = {"position": position, "state": ckpt["round"]}
        return position

    def _finish(self, seconds: float) -> dict[str, Any]:
        last = self.state.results[-1]
        wandb = self.outputs.wandb
        self.outputs.summary.update(
            status="complete", rounds_completed=len(self.state.results), final_sparsity=last.sparsity,
            final_val_acc=last.val_acc, final_test_acc=last.test_acc, seconds=seconds,
            wandb_dir=str(self.run_dir / "wandb") if wandb.run is not None else None,
        )  # fmt: skip
        self._each(lambda cb: cb.on_run_end(self.view, self.outputs.summary))
        wandb.summary({k: v for k, v in self.outputs.summary.items() if k.startswith("final_")})
        where = self.outputs.finish()  # the run's files to W&B, W&B closed
        self.outputs.write_summary()
        for line in where if self.outputs.is_main else ():  # the run's last lines: where its results are
            log.info(line)
        return self.outputs.summary
