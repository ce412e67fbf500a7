"""A run, built: every component assembled and checked once, before anything is trained or written.

``build_run(cfg, run_dir, resume)`` returns a ``Run``: the components the round loop (``scyc.lifecycle.loop``)
works with, each owning its state. Nothing here trains; the last step is the preflight, a tiny batch through every
path the run takes, after which the run's state is as it was. ``scyc.cli.build_run`` is the public way in.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from scyc.analysis import GradientAnalysis, analysis_callbacks
from scyc.config import Config, load, validate
from scyc.data import DataSplits, build_data
from scyc.foundations.registry import ConfigError
from scyc.foundations.utils import resolve_device, seed_everything
from scyc.lifecycle import checkpoint, guards, rundir
from scyc.lifecycle.callbacks import Callback, RunView
from scyc.lifecycle.oracle import Oracle
from scyc.lifecycle.preflight import run_preflight
from scyc.lifecycle.rounds import RoundTrainer
from scyc.lifecycle.state import RunState, check_fits
from scyc.lifecycle.tracking import RunOutputs
from scyc.models import create_model
from scyc.platforms import distributed
from scyc.platforms.speed import Speed
from scyc.pruning import PRUNERS, RESETS, MaskSet
from scyc.pruning.accounting import pruning_callbacks
from scyc.pruning.base import Pruner, predicted_sparsities
from scyc.schedules import MeasuredPolicy, Schedule, build_schedule


@dataclass
class Run:
    """The parts of one run, as ``build_run`` assembled them. The loop reads and drives them; each keeps its own
    state (``state`` the model, masks, snapshots, RNG and rows; the callbacks and the schedule theirs)."""

    cfg: Config
    run_dir: Path
    dist: distributed.DistEnv
    device: torch.device
    data: DataSplits
    state: RunState
    pruner: Pruner
    reset: Any  # a reset function of scyc.pruning.resets: (model, masks, snapshots, generator) -> None
    schedule: Schedule
    speed: Speed
    trainer: RoundTrainer
    outputs: RunOutputs
    callbacks: list[Callback]
    gradients: GradientAnalysis | None  # the start-of-round measurement (analysis.grad_every_round)
    oracle: Oracle
    checkpointer: checkpoint.Checkpointer
    stop: guards.StopRequest
    resume: tuple[dict[str, Any], Path] | None  # the checkpoint to continue from (scyc.lifecycle.rundir.prepare)
    data_fingerprint: dict[str, Any]
    data_change: Any  # what differs from the checkpoint's data (resume_allow_data_change=true), else None
    view: RunView = field(init=False)  # what the callbacks see
    preflight_seconds: float = 0.0

    def __post_init__(self) -> None:
        self.view = RunView(self.cfg, self.run_dir, self.state, self.data, self.outputs)

    @property
    def rounds(self) -> int:
        return self.cfg.pruner.rounds

    @property
    def measured(self) -> MeasuredPolicy | None:
        """The schedule's policy when it reads max_lr from the start-of-round measurement (gradscale)."""
        policy = self.schedule.policy
        return policy if isinstance(policy, MeasuredPolicy) else None


def build_run(cfg: Config | DictConfig, run_dir: str | Path, resume: tuple[dict[str, Any], Path] | None = None) -> Run:
    """Assemble the run of ``cfg`` in ``run_dir`` (``resume``: the checkpoint ``scyc.lifecycle.rundir.prepare`` found)."""
    if not isinstance(cfg, Config):  # scripts and tests; train.py's entry point validates before run_dir
        cfg = load(cfg)
        validate(cfg)
    run_dir = Path(run_dir)
    dist = distributed.current()  # a single process unless distributed.init formed a group
    dist.check_global_batch(cfg.train.batch_size)
    device = dist.device or resolve_device(cfg.device)
    guards.configure_determinism(bool(cfg.deterministic), device)
    schedule = build_schedule(cfg.schedule.options())
    reset = RESETS.get(cfg.pruner.reset)
    pruner = PRUNERS.build(cfg.pruner.name, cfg.pruner.pruner_options(), key="pruner")
    seed_everything(cfg.seed)
    data = build_data({"name": cfg.dataset.name, **cfg.dataset.options()}, device, cfg.data_dir)
    fingerprint = data.raw.fingerprint()  # checkpointed: resuming on other data is refused
    data_change = rundir.check_data(resume[0].get("data") if resume else None, fingerprint,
                                    cfg.resume_allow_data_change)  # fmt: skip
    model = create_model(cfg.model.name, num_classes=data.num_classes, in_channels=data.in_channels,
                         image_size=data.image_size, **cfg.model.options()).to(device)  # fmt: skip
    speed = Speed.from_config(cfg.train, device, model, schedule.cycles_momentum)
    net = speed.prepare(model)  # what runs forward: the model itself or its compiled form
    data.channels_last = speed.channels_last
    try:  # after the memory-format conversion: the masks share the weights' layout (one foreach multiply)
        masks = MaskSet.from_model(model, exclude=cfg.pruner.exclude or ())
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    pruner.check_rounds(masks, cfg.pruner.rounds)
    if resume is not None:  # a checkpoint that loads but holds another model is skipped (rundir.refit)
        resume = rundir.refit(cfg, run_dir, resume, lambda ckpt: check_fits(model, masks, ckpt["state"]))
    generator = torch.Generator(device=device).manual_seed(int(cfg.seed))
    if resume:  # device may change on resume, its type may not (the generator's state)
        rundir.check_generator(resume[0]["state"]["rng"]["generator"], generator, cfg.device)
    state = RunState(model, masks, generator, snapshots={"init": copy.deepcopy(model.state_dict())})
    # What trains: DDP (data-parallel runs) around the model, compiled when train.compile; shares its Parameters.
    train_model = speed.prepare(dist.wrap(model)) if dist.enabled else net
    stop = guards.StopRequest()  # SIGINT/SIGTERM -> stop at the last checkpoint (scyc.lifecycle.guards)
    outputs = RunOutputs(run_dir, is_main=dist.is_main)
    trainer = RoundTrainer(cfg.train, schedule, state, data, speed, dist, net, train_model, stop, outputs)
    callbacks: list[Callback] = [
        *pruning_callbacks(cfg.pruner.reset, cfg.pruner.rewind_epoch),
        *([distributed.MaskDigestCheck(dist)] if dist.enabled else []),
        *analysis_callbacks(cfg.analysis),
    ]
    gradients = next((cb for cb in callbacks if isinstance(cb, GradientAnalysis)), None)
    run = Run(
        cfg=cfg, run_dir=run_dir, dist=dist, device=device, data=data, state=state, pruner=pruner, reset=reset,
        schedule=schedule, speed=speed, trainer=trainer, outputs=outputs, callbacks=callbacks, gradients=gradients,
        oracle=Oracle(outputs), checkpointer=checkpoint.Checkpointer(run_dir / "checkpoints", cfg.checkpoint.keep),
        stop=stop, resume=resume, data_fingerprint=fingerprint, data_change=data_change,
    )  # fmt: skip
    check_schedule(run)
    # Last: a tiny batch through every path the run takes (scyc.lifecycle.preflight); the run's state is kept as it was.
    run.preflight_seconds = run_preflight(run)
    return run


def check_schedule(run: Run) -> None:
    """The schedule's start-up checks over the rounds' predicted sparsities (scyc.lifecycle.guards.preflight_schedule)."""
    cfg, schedule, measured = run.cfg, run.schedule, run.measured  # a measured policy has the measurement (validate)
    predicted = predicted_sparsities(run.state.masks.total, cfg.pruner.rate, cfg.pruner.rounds)
    steps_per_epoch = len(run.data.loader("train", cfg.train.batch_size, train=True))
    candidates = (
        (lambda r: list(measured.bounds())) if measured else lambda r: schedule.candidates(r, predicted[: r + 1])
    )
    guards.preflight_schedule(schedule, candidates, predicted, cfg.train.epochs * steps_per_epoch, steps_per_epoch)
