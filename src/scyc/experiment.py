"""The iterative-pruning experiment: train, prune, reset, retrain, round after round.

Round 0 trains the dense network. Each later round removes ``pruner.rate`` of the surviving prunable
weights, applies ``pruner.reset`` and retrains for ``train.epochs`` epochs under the schedule: the
across-round policy picks the round's ``max_lr`` from the sparsity of the network about to be trained,
the within-round shape turns it into a per-step LR.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from scyc import __version__, checkpoint, distributed, guards
from scyc.analysis import analysis_callbacks
from scyc.callbacks import Callback
from scyc.data import DataSplits, build_data
from scyc.models import create_model
from scyc.pruning import LOOP_KEYS, PRUNERS, RESETS, MaskSet, PruneContext
from scyc.pruning.accounting import pruning_callbacks
from scyc.registry import ConfigError
from scyc.schedules import build_schedule
from scyc.speed import Speed
from scyc.sweeps import wandb_settings
from scyc.tracking import CsvTable, WandbRun, write_summary
from scyc.training import evaluate, make_optimizer, train_epoch
from scyc.utils import resolve_device, seed_everything

log = logging.getLogger("scyc")

RESULT_COLUMNS = [
    "round", "sparsity", "alive", "max_lr", "train_loss", "train_acc", "val_loss", "val_acc",
    "test_loss", "test_acc", "best_val_acc", "best_val_epoch", "test_acc_at_best_val",
    "epoch_seconds", "round_seconds",
]  # fmt: skip
EPOCH_COLUMNS = [
    "round", "epoch", "sparsity", "max_lr", "lr_last", "train_loss", "train_acc", "val_loss", "val_acc",
    "test_loss", "test_acc", "seconds",
]  # fmt: skip
LR_COLUMNS = ["round", "epoch", "step", "lr"]


@dataclass
class RoundResult:
    round: int
    sparsity: float
    alive: int
    max_lr: float
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    test_loss: float
    test_acc: float
    best_val_acc: float
    best_val_epoch: int
    test_acc_at_best_val: float
    epoch_seconds: float
    round_seconds: float


def validate(cfg: DictConfig) -> None:
    """Refuse bad input before anything is written; each message names the key and what is allowed."""
    checks = [
        (
            "pruner.rate",
            cfg.pruner.get("rate"),
            lambda v: isinstance(v, (int, float)) and 0 < v < 1,
            "a number in (0, 1)",
        ),
        ("pruner.rounds", cfg.pruner.get("rounds"), lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
        ("train.epochs", cfg.train.epochs, lambda v: v >= 1, "an integer >= 1"),
        ("train.batch_size", cfg.train.batch_size, lambda v: v >= 1, "an integer >= 1"),
        ("train.eval_batch_size", cfg.train.eval_batch_size, lambda v: v == "auto" or v >= 1, "auto or an int >= 1"),
        ("train.momentum", cfg.train.momentum, lambda v: 0 <= v < 1, "a number in [0, 1)"),
        ("train.weight_decay", cfg.train.weight_decay, lambda v: v >= 0, "a number >= 0"),
        ("checkpoint.keep", cfg.checkpoint.keep, lambda v: v >= 0, "an integer >= 0"),
    ]
    for key, value, ok, allowed in checks:
        if value is None or not ok(value):
            raise ConfigError(f"{key}={value} is not allowed: it must be {allowed}")
    if cfg.schedule.get("policy") == "grid" and not cfg.dataset.get("val_size"):
        raise ConfigError(
            f"dataset.val_size={cfg.dataset.get('val_size')}: the oracle (grid policy) needs a validation set"
        )
    if cfg.pruner.get("reset", "finetune") not in RESETS:
        RESETS.get(cfg.pruner.reset)  # raises with the list of resets (or imports a dotted path)


class Experiment:
    def __init__(self, cfg: DictConfig, run_dir: str | Path, resume: tuple[dict, Path] | None = None) -> None:
        validate(cfg)
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.dist = distributed.current()  # a single process unless distributed.init formed a group
        self.dist.check_global_batch(cfg.train.batch_size)
        self.device = self.dist.device or resolve_device(cfg.device)
        guards.configure_determinism(bool(cfg.deterministic), self.device)
        self.schedule = build_schedule(OmegaConf.to_container(cfg.schedule, resolve=True))
        pruner_cfg = OmegaConf.to_container(cfg.pruner, resolve=True)
        self.rounds = int(pruner_cfg["rounds"])
        self.reset = RESETS.get(pruner_cfg.get("reset", "finetune"))
        self.pruner = PRUNERS.build(
            pruner_cfg["name"], {k: v for k, v in pruner_cfg.items() if k not in LOOP_KEYS}, key="pruner"
        )
        seed_everything(cfg.seed)
        self.data: DataSplits = build_data(OmegaConf.to_container(cfg.dataset, resolve=True), self.device, cfg.data_dir)
        model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
        self.model = create_model(
            model_cfg.pop("name"),
            num_classes=self.data.num_classes,
            in_channels=self.data.in_channels,
            image_size=self.data.image_size,
            **model_cfg,
        ).to(self.device)
        try:
            self.masks = MaskSet.from_model(self.model, exclude=pruner_cfg.get("exclude") or ())
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        self.speed = Speed.from_config(cfg.train, self.device, self.model)
        self.net = self.speed.prepare(self.model)  # what runs forward: self.model itself or its compiled form
        self.data.channels_last = self.speed.channels_last
        self.snapshots = {"init": copy.deepcopy(self.model.state_dict())}
        # What trains: DDP (data-parallel runs) around the model, compiled when train.compile; shares its Parameters.
        self.train_model = self.speed.prepare(self.dist.wrap(self.model)) if self.dist.enabled else self.net
        self.generator = torch.Generator(device=self.device).manual_seed(int(cfg.seed))
        self.global_step = 0
        self.results: list[RoundResult] = []
        self.callbacks: list[Callback] = self.build_callbacks()
        self.checkpointer = checkpoint.Checkpointer(self.run_dir / "checkpoints", int(cfg.checkpoint.keep))
        self.stop = guards.StopRequest()  # SIGINT/SIGTERM -> stop at the last checkpoint (scyc.guards)
        self._resume = resume  # (checkpoint state, path) to continue from, see scyc.checkpoint
        guards.preflight_schedule(self)

    def build_callbacks(self) -> list[Callback]:
        """The measurement and bookkeeping hooks of this run (see ``scyc.callbacks``)."""
        callbacks: list[Callback] = [*pruning_callbacks(self.cfg)]
        if self.dist.enabled:
            callbacks.append(distributed.MaskDigestCheck())
        callbacks += analysis_callbacks(OmegaConf.to_container(self.cfg.analysis, resolve=True))
        return callbacks

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    # ----------------------------------------------------------------------------------------------
    def _open_outputs(self) -> None:
        main = self.dist.is_main  # only rank 0 writes files and W&B in a data-parallel run
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        table = CsvTable if main else distributed.NullTable
        self.results_csv = table(self.run_dir / "results.csv", RESULT_COLUMNS)
        self.epochs_csv = table(self.run_dir / "epochs.csv", EPOCH_COLUMNS)
        self.lr_csv = table(self.run_dir / "lr_trace.csv", LR_COLUMNS)
        self.summary: dict[str, Any] = {
            "status": "running",
            "run_dir": str(self.run_dir),
            "schedule": self.schedule.name,
            "pruner": self.cfg.pruner.name,
            "model": self.cfg.model.name,
            "dataset": self.cfg.dataset.name,
            "seed": int(self.cfg.seed),
            "rounds": self.rounds,
            "device": str(self.device),
            "world_size": self.dist.world_size,
            "prunable_weights": self.masks.total,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "versions": {"scyc": __version__, "torch": torch.__version__, "python": platform.python_version()},
            "command": " ".join(sys.argv),
        }
        wandb_id = checkpoint.begin_outputs(self, self._resume)  # on resume: tables back to the checkpoint
        self._write_summary()
        wandb_cfg = wandb_settings(self.cfg)  # tags, and the sweep's name as group in a multirun
        self.wandb = WandbRun(
            wandb_cfg if main else {**wandb_cfg, "mode": "disabled"},
            self.run_dir,
            OmegaConf.to_container(self.cfg, resolve=True),
            name=self.run_dir.name,
            run_id=wandb_id,
        )
        self.summary["wandb_id"] = self.wandb.run.id if self.wandb.run is not None else None

    def prune(self) -> None:
        ctx = PruneContext(
            model=self.model,
            batches=lambda: iter(
                self.data.loader("train", self.cfg.train.batch_size, train=True, generator=self.generator)
            ),
            generator=self.generator,
        )
        # Data-parallel runs: rank 0 decides, every rank installs its masks, generator state and weights.
        new_masks = self.pruner.prune(self.masks, ctx) if self.dist.is_main else None
        self.masks.set_(self.dist.broadcast_masks(new_masks, self.masks.masks))
        self.dist.broadcast_generator(self.generator)
        self.reset(self.model, self.masks, self.snapshots, self.generator)
        self.dist.broadcast_module(self.model)

    def train_round(self, round_idx: int, max_lr: float, epoch_checkpoints: bool = True) -> RoundResult:
        tcfg = self.cfg.train
        sparsity = self.masks.sparsity()
        optimizer = make_optimizer(self.model, max_lr, tcfg.momentum, tcfg.weight_decay, tcfg.nesterov)
        train_loader = self.data.loader(
            "train", tcfg.batch_size, train=True, generator=self.generator, **self.dist.shard
        )  # fmt: skip
        steps_per_epoch = len(train_loader)
        scheduler = self.schedule.build_round(optimizer, max_lr, tcfg.epochs * steps_per_epoch, steps_per_epoch)
        best = (-math.inf, -1, math.nan)
        seconds: list[float] = []
        start = time.perf_counter()
        first_epoch, progress = checkpoint.resume_round(self, round_idx, max_lr, optimizer, scheduler)
        if progress is not None:  # resumed mid-round: the round's bookkeeping so far
            best, seconds, start = tuple(progress["best"]), list(progress["seconds"]), start - progress["elapsed"]
        epochs = tqdm(range(first_epoch, tcfg.epochs), desc=f"round {round_idx}", leave=False, disable=self._no_bar)
        for epoch in epochs:
            t0 = time.perf_counter()
            batches = self.stop.batches(train_loader)
            res = train_epoch(
                self.train_model, batches, optimizer, scheduler, self.masks, tcfg.skip_nonfinite,
                self.speed.autocast_dtype, self.speed.cuda_graphs,
            )  # fmt: skip
            self.stop.raise_if_requested(f"in round {round_idx} epoch {epoch} after {batches.yielded} steps")
            res.loss, res.accuracy = self.dist.mean_over_ranks((res.loss, res.accuracy), res.examples)
            seconds.append(time.perf_counter() - t0)
            val_loss, val_acc = self._evaluate("val")
            test_loss, test_acc = self._evaluate("test")
            guards.check_finite(self, res, val_loss, round_idx, epoch)
            if val_acc > best[0]:
                best = (val_acc, epoch, test_acc)
            self._record_epoch(
                round_idx, epoch, sparsity, max_lr, res, val_loss, val_acc, test_loss, test_acc, seconds[-1]
            )
            if epoch_checkpoints and epoch + 1 < tcfg.epochs:  # after the last epoch the round checkpoint follows
                progress = dict(best=list(best), seconds=seconds, elapsed=time.perf_counter() - start, max_lr=max_lr)
                checkpoint.save_state(self, "epoch", (round_idx, epoch + 1), optimizer, scheduler, progress)
                self.stop.raise_if_requested(f"after round {round_idx} epoch {epoch}")
            epochs.set_postfix(loss=f"{res.loss:.3f}", val=f"{val_acc:.4f}")
        return RoundResult(
            round=round_idx,
            sparsity=sparsity,
            alive=self.masks.alive(),
            max_lr=max_lr,
            train_loss=res.loss,
            train_acc=res.accuracy,
            val_loss=val_loss,
            val_acc=val_acc,
            test_loss=test_loss,
            test_acc=test_acc,
            best_val_acc=best[0],
            best_val_epoch=best[1],
            test_acc_at_best_val=best[2],
            epoch_seconds=sum(seconds) / len(seconds),
            round_seconds=time.perf_counter() - start,
        )

    def _evaluate(self, split: str) -> tuple[float, float]:
        """Loss and accuracy on a split; each rank evaluates its share, the sums are all-reduced."""
        loader = self.data.loader(split, self.speed.eval_batch_size, **self.dist.shard)
        loss, acc = evaluate(self.net, loader, self.speed.autocast_dtype)  # nan, nan for no examples: weight 0
        return tuple(self.dist.mean_over_ranks((loss, acc), loader.num_examples))

    def _write_summary(self) -> None:
        if self.dist.is_main:
            write_summary(self.run_dir / "summary.json", self.summary)

    def search_round(self, round_idx: int, candidates: list[float]) -> RoundResult:
        """The oracle: train each ``max_lr`` candidate from the same post-prune state, keep the best by
        validation accuracy (ties: the smaller max_lr) and carry it on. See ``scyc.oracle``."""
        from scyc.oracle import search_round

        return search_round(self, round_idx, candidates)

    def _record_epoch(self, r, epoch, sparsity, max_lr, res, val_loss, val_acc, test_loss, test_acc, secs) -> None:
        first = self.global_step
        self.lr_csv.stream([
            {"round": r, "epoch": epoch, "step": first + i, "lr": lr} for i, lr in enumerate(res.lrs)
        ])  # fmt: skip
        self.global_step += len(res.lrs)
        row = {
            "round": r, "epoch": epoch, "sparsity": sparsity, "max_lr": max_lr,
            "lr_last": res.lrs[-1] if res.lrs else math.nan, "train_loss": res.loss, "train_acc": res.accuracy,
            "val_loss": val_loss, "val_acc": val_acc, "test_loss": test_loss, "test_acc": test_acc, "seconds": secs,
        }  # fmt: skip
        self.epochs_csv.append(row)
        self._call("on_epoch_end", r, epoch, row)
        every = max(1, int(self.cfg.wandb.log_every_steps))
        for i in range(0, len(res.lrs), every):
            self.wandb.log({"global_step": first + i, "step/lr": res.lrs[i]})
        self.wandb.log({"global_step": self.global_step, **{f"epoch/{k}": v for k, v in row.items()}})

    def _record_round(self, result: RoundResult) -> None:
        self.results.append(result)
        row = asdict(result)
        self.results_csv.append(row)
        self.wandb.log({"round/index": result.round, **{f"round/{k}": v for k, v in row.items() if k != "round"}})
        self._call("on_round_end", result)
        log.info(
            "round %d/%d | sparsity %.4f | max_lr %.5f | train loss %.4f | val acc %.4f | test acc %.4f | %.1f s/epoch",
            result.round, self.rounds - 1, result.sparsity, result.max_lr, result.train_loss,
            result.val_acc, result.test_acc, result.epoch_seconds,
        )  # fmt: skip

    # ----------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self._no_bar = None if self.cfg.progress and self.dist.is_main else True
        self._open_outputs()
        start = time.perf_counter()
        self.stop.install()
        try:
            self._call("on_run_start")
            first_round, first_epoch = checkpoint.restore(self, self._resume[0]) if self._resume else (0, 0)
            bar = tqdm(range(first_round, self.rounds), desc="rounds", disable=self._no_bar)
            for r in bar:
                mid_round = r == first_round and first_epoch > 0  # resumed inside round r: pruned already
                if r > 0 and not mid_round:
                    self.prune()
                if not mid_round:
                    self._call("on_round_start", r)
                candidates = self.schedule.candidates(r, [x.sparsity for x in self.results] + [self.masks.sparsity()])
                if len(candidates) == 1:
                    result = self.train_round(r, candidates[0])
                else:
                    result = self.search_round(r, candidates)
                self._record_round(result)
                checkpoint.save_state(self, "round", (r + 1, 0))
                self.stop.raise_if_requested(f"after round {r}")
                bar.set_postfix(sparsity=f"{result.sparsity:.3f}", test=f"{result.test_acc:.4f}")
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            self.summary.update(
                status=status, reason=f"{type(exc).__name__}: {exc}", rounds_completed=len(self.results)
            )
            self.summary.update(guards.failure_fields(self, exc))
            self._write_summary()
            self.wandb.finish(exit_code=1)
            raise
        finally:
            self.stop.uninstall()
        last = self.results[-1]
        self.summary.update(
            status="complete",
            rounds_completed=len(self.results),
            final_sparsity=last.sparsity,
            final_val_acc=last.val_acc,
            final_test_acc=last.test_acc,
            seconds=time.perf_counter() - start,
            wandb_dir=str(self.run_dir / "wandb") if self.wandb.run is not None else None,
        )
        self._call("on_run_end", self.summary)
        self.wandb.summary({k: v for k, v in self.summary.items() if k.startswith("final_")})
        self.wandb.finish()
        self._write_summary()
        return self.summary


def main(cfg: DictConfig) -> float:
    """Entry point used by ``train.py``: returns the final validation accuracy (for Hydra sweepers)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with contextlib.ExitStack() as stack:  # the process group (if any) is destroyed on every way out
        try:
            # torchrun / Slurm tasks: a process group and rank 0's run dir on every rank; plain runs: no-ops.
            env = stack.enter_context(distributed.session(cfg.device))
            run_dir = distributed.shared_run_dir(run_dir, env)
            validate(cfg)
            experiment = Experiment(cfg, run_dir, resume=checkpoint.prepare_run_dir_all_ranks(cfg, run_dir, env))
        except checkpoint.RunComplete as done:
            if env.is_main:
                print(done, file=sys.stderr)
            return float(done.summary.get("final_val_acc", math.nan))
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            if HydraConfig.get().mode == RunMode.MULTIRUN:  # record it; the launcher goes on with the other runs
                summary = run_dir / "summary.json"
                if distributed.is_main() and not summary.exists():  # never clobber an existing run's summary
                    write_summary(summary, {"status": "failed", "reason": f"ConfigError: {exc}"})
                raise
            sys.exit(2)
        try:
            return float(experiment.run()["final_val_acc"])
        except guards.RunInterrupted as exc:
            print(f"interrupted: {exc}; resume with: {checkpoint.resume_command(run_dir)}", file=sys.stderr)
            sys.exit(exc.exit_code)
        except guards.NonFiniteLoss as exc:
            print(f"error: {exc}; the run is marked failed in {run_dir / 'summary.json'}", file=sys.stderr)
            sys.exit(guards.EXIT_NONFINITE)
        except ConfigError as exc:  # found only once running, e.g. a checkpoint that does not fit the model
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
