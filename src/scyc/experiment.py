"""The iterative-pruning experiment: train, prune, reset, retrain, round after round.

Round 0 trains the dense network. Each later round removes ``pruner.rate`` of the surviving prunable
weights, applies ``pruner.reset`` and retrains for ``train.epochs`` epochs under the schedule: the
across-round policy picks the round's ``max_lr`` from the sparsity of the network about to be trained,
the within-round shape turns it into a per-step LR.
"""

from __future__ import annotations

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

from scyc import __version__
from scyc.analysis import analysis_callbacks
from scyc.callbacks import Callback
from scyc.data import DataSplits, build_data
from scyc.models import create_model
from scyc.pruning import LOOP_KEYS, PRUNERS, RESETS, MaskSet, PruneContext
from scyc.registry import ConfigError
from scyc.schedules import build_schedule
from scyc.tracking import CsvTable, WandbRun, save_checkpoint, write_summary
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
        ("train.eval_batch_size", cfg.train.eval_batch_size, lambda v: v >= 1, "an integer >= 1"),
        ("train.momentum", cfg.train.momentum, lambda v: 0 <= v < 1, "a number in [0, 1)"),
        ("train.weight_decay", cfg.train.weight_decay, lambda v: v >= 0, "a number >= 0"),
    ]
    for key, value, ok, allowed in checks:
        if value is None or not ok(value):
            raise ConfigError(f"{key}={value} is not allowed: it must be {allowed}")
    if cfg.pruner.get("reset", "finetune") not in RESETS:
        RESETS.get(cfg.pruner.reset)  # raises with the list of resets (or imports a dotted path)


class Experiment:
    def __init__(self, cfg: DictConfig, run_dir: str | Path) -> None:
        validate(cfg)
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.device = resolve_device(cfg.device)
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
        self.snapshots = {"init": copy.deepcopy(self.model.state_dict())}
        self.generator = torch.Generator(device=self.device).manual_seed(int(cfg.seed))
        self.global_step = 0
        self.results: list[RoundResult] = []
        self.callbacks: list[Callback] = self.build_callbacks()

    def build_callbacks(self) -> list[Callback]:
        """The measurement and bookkeeping hooks of this run (see ``scyc.callbacks``)."""
        return [*analysis_callbacks(OmegaConf.to_container(self.cfg.analysis, resolve=True))]

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    # ----------------------------------------------------------------------------------------------
    def _open_outputs(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.results_csv = CsvTable(self.run_dir / "results.csv", RESULT_COLUMNS)
        self.epochs_csv = CsvTable(self.run_dir / "epochs.csv", EPOCH_COLUMNS)
        self.lr_csv = CsvTable(self.run_dir / "lr_trace.csv", LR_COLUMNS)
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
            "prunable_weights": self.masks.total,
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "versions": {"scyc": __version__, "torch": torch.__version__, "python": platform.python_version()},
            "command": " ".join(sys.argv),
        }
        write_summary(self.run_dir / "summary.json", self.summary)
        self.wandb = WandbRun(
            OmegaConf.to_container(self.cfg.wandb, resolve=True),
            self.run_dir,
            OmegaConf.to_container(self.cfg, resolve=True),
            name=self.run_dir.name,
        )

    def prune(self) -> None:
        ctx = PruneContext(
            model=self.model,
            batches=lambda: iter(
                self.data.loader("train", self.cfg.train.batch_size, train=True, generator=self.generator)
            ),
            generator=self.generator,
        )
        self.masks.set_(self.pruner.prune(self.masks, ctx))
        self.reset(self.model, self.masks, self.snapshots, self.generator)

    def train_round(self, round_idx: int, max_lr: float) -> RoundResult:
        tcfg = self.cfg.train
        sparsity = self.masks.sparsity()
        optimizer = make_optimizer(self.model, max_lr, tcfg.momentum, tcfg.weight_decay, tcfg.nesterov)
        train_loader = self.data.loader("train", tcfg.batch_size, train=True, generator=self.generator)
        steps_per_epoch = len(train_loader)
        scheduler = self.schedule.build_round(optimizer, max_lr, tcfg.epochs * steps_per_epoch, steps_per_epoch)
        best = (-math.inf, -1, math.nan)
        seconds: list[float] = []
        start = time.perf_counter()
        epochs = tqdm(range(tcfg.epochs), desc=f"round {round_idx}", leave=False, disable=self._no_bar)
        for epoch in epochs:
            t0 = time.perf_counter()
            res = train_epoch(self.model, train_loader, optimizer, scheduler, self.masks)
            seconds.append(time.perf_counter() - t0)
            val_loss, val_acc = evaluate(self.model, self.data.loader("val", tcfg.eval_batch_size))
            test_loss, test_acc = evaluate(self.model, self.data.loader("test", tcfg.eval_batch_size))
            if val_acc > best[0]:
                best = (val_acc, epoch, test_acc)
            self._record_epoch(
                round_idx, epoch, sparsity, max_lr, res, val_loss, val_acc, test_loss, test_acc, seconds[-1]
            )
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
        save_checkpoint(
            self.run_dir / "checkpoints" / f"round_{result.round:02d}.pt",
            {
                "round": result.round,
                "model": self.model.state_dict(),
                "masks": self.masks.state_dict(),
                "results": [asdict(r) for r in self.results],
            },
        )
        self._call("on_round_end", result)
        log.info(
            "round %d/%d | sparsity %.4f | max_lr %.5f | train loss %.4f | val acc %.4f | test acc %.4f | %.1f s/epoch",
            result.round, self.rounds - 1, result.sparsity, result.max_lr, result.train_loss,
            result.val_acc, result.test_acc, result.epoch_seconds,
        )  # fmt: skip

    # ----------------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self._no_bar = None if self.cfg.progress else True
        self._open_outputs()
        start = time.perf_counter()
        try:
            self._call("on_run_start")
            bar = tqdm(range(self.rounds), desc="rounds", disable=self._no_bar)
            for r in bar:
                if r > 0:
                    self.prune()
                self._call("on_round_start", r)
                candidates = self.schedule.candidates(r, self.masks.sparsity())
                if len(candidates) != 1:
                    raise ConfigError(f"schedule '{self.schedule.name}' gave {len(candidates)} max_lr candidates")
                result = self.train_round(r, candidates[0])
                self._record_round(result)
                bar.set_postfix(sparsity=f"{result.sparsity:.3f}", test=f"{result.test_acc:.4f}")
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            self.summary.update(
                status=status, reason=f"{type(exc).__name__}: {exc}", rounds_completed=len(self.results)
            )
            write_summary(self.run_dir / "summary.json", self.summary)
            self.wandb.finish(exit_code=1)
            raise
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
        write_summary(self.run_dir / "summary.json", self.summary)
        return self.summary


def main(cfg: DictConfig) -> float:
    """Entry point used by ``train.py``: returns the final validation accuracy (for Hydra sweepers)."""
    from hydra.core.hydra_config import HydraConfig

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        experiment = Experiment(cfg, run_dir)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    return float(experiment.run()["final_val_acc"])
