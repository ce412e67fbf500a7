"""The round loop: the paper's algorithm over a built run (``scyc.lifecycle.build``).

Round 0 trains the dense network. Every later round removes ``pruner.rate`` of the surviving prunable weights
and applies ``pruner.reset``; then each round measures the network about to be trained, takes its ``max_lr``
from the schedule's across-round policy (from the sparsity, or from that measurement for ``gradscale``),
trains it under the within-round shape, records its rows and checkpoints. A resumed run is put back in its
checkpointed state before the loop; a round an epoch checkpoint interrupted is finished first, without pruning
or measuring it again. Everything the loop changes lives in ``RunState``; everything it writes goes through
``RunOutputs``; callbacks see the run through ``RunView``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from scyc.foundations.utils import write_failure
from scyc.lifecycle import checkpoint, guards, rundir
from scyc.lifecycle.callbacks import Callback
from scyc.lifecycle.rounds import Resumed, RoundProgress
from scyc.lifecycle.tracking import provenance
from scyc.pruning import PruneContext
from scyc.sweep.sweeps import wandb_settings

if TYPE_CHECKING:
    from scyc.analysis.gradients import Measurement
    from scyc.lifecycle.build import Run
    from scyc.lifecycle.state import EpochRecord, RoundResult

log = logging.getLogger("scyc")


def run_rounds(run: Run) -> dict[str, Any]:
    """Train ``run`` round after round; returns summary.json's contents. Every way out once summary.json is open
    (W&B failing to start included) leaves it complete, failed or interrupted."""
    start = time.perf_counter()
    run.trainer.bars = bars = bool(run.cfg.progress) and run.dist.is_main
    run.stop.install()
    console = contextlib.ExitStack()
    try:
        if bars:  # log lines go through tqdm.write, above the bars, never over them
            console.enter_context(logging_redirect_tqdm())
        open_outputs(run)
        each(run, lambda cb: cb.on_run_start(run.view))
        first, resumed = restore(run) if run.resume else (0, None)
        bar = tqdm(total=run.rounds - first, desc="rounds", disable=not bars)
        phase = lambda r, what: bar.set_description_str(f"rounds [round {r}: {what}]")  # noqa: E731  what it waits on
        if resumed is not None:  # inside round `first`: pruned and measured before the checkpoint
            started = time.perf_counter() - resumed.progress["elapsed"]  # its training so far counts
            result = train(run, first, next_max_lr(run, first, None), phase, resumed)
            record_and_checkpoint(run, result, started, phase, bar)
            first += 1
        for r in range(first, run.rounds):
            started = time.perf_counter()
            if r > 0:
                phase(r, "pruning")
                prune(run)
            phase(r, "measuring gradients" if run.gradients else "starting")
            measurement = measure(run, r)
            result = train(run, r, next_max_lr(run, r, measurement), phase)
            record_and_checkpoint(run, result, started, phase, bar)
        bar.close()  # the rounds bar's last state stays on the console, as a finished loop over it leaves it
        return finish(run, time.perf_counter() - start)
    except BaseException as exc:
        fail(run, exc)
        raise
    finally:
        console.close()
        run.stop.uninstall()


def each(run: Run, hook: Callable[[Callback], None]) -> None:
    """``hook(cb)`` for every callback, in order (e.g. ``lambda cb: cb.on_round_start(run.view, r)``)."""
    for cb in run.callbacks:
        hook(cb)


# ----------------------------------------------------------------------------------------- the round's steps
def prune(run: Run) -> None:
    """Prune the surviving weights, then apply the reset (``pruner.reset``)."""
    state, dist = run.state, run.dist
    loader = functools.partial(
        run.data.loader, "train", run.cfg.train.batch_size, train=True, generator=state.generator
    )
    ctx = PruneContext(model=state.model, batches=lambda: iter(loader()), generator=state.generator)
    # Data-parallel runs: rank 0 decides, every rank installs its masks, generator state and weights.
    new_masks = run.pruner.prune(state.masks, ctx) if dist.is_main else None
    state.masks.set_(dist.broadcast_masks(new_masks, state.masks.masks))
    dist.broadcast_generator(state.generator)
    run.reset(state.model, state.masks, state.snapshots, state.generator)
    dist.broadcast_module(state.model)


def measure(run: Run, round_idx: int) -> Measurement | None:
    """The round's start: the callbacks' ``on_round_start``, then the gradient measurement of the network about to
    be trained (``analysis.grad_every_round``; None without it)."""
    each(run, lambda cb: cb.on_round_start(run.view, round_idx))
    return run.gradients.measure(run.view, round_idx, "start") if run.gradients is not None else None


def next_max_lr(run: Run, round_idx: int, measurement: Measurement | None) -> list[float]:
    """The round's ``max_lr`` (several: the oracle's grid). A policy read from the measurement (gradscale) gets it
    first; a resumed round has none, its policy state was checkpointed."""
    measured = run.measured
    if measured is not None and measurement is not None:
        measured.observe(round_idx, measurement.global_stats(measured.population))
    sparsities = [x.sparsity for x in run.state.results] + [run.state.masks.sparsity()]
    return run.schedule.candidates(round_idx, sparsities)


def train(run: Run, round_idx: int, candidates: list[float], phase: Callable[[int, str], None],
          resumed: Resumed | None = None) -> RoundResult:  # fmt: skip
    """Train the round at its ``max_lr``, recording each epoch; with several candidates the oracle trains each
    from the same state and keeps the best by validation accuracy (its epochs are recorded then)."""
    if len(candidates) == 1:
        phase(round_idx, "training")
        result, _ = run.trainer.train_round(round_idx, candidates[0], functools.partial(after_epoch, run), resumed)
        return result
    phase(round_idx, f"{len(candidates)} candidates")
    result, epochs = run.oracle.search(round_idx, candidates, functools.partial(run.trainer.train_round, round_idx),
                                       run.state, has_val=len(run.data.val[1]) > 0)  # fmt: skip
    for record in epochs:  # the path actually taken
        record_epoch(run, record)
    return result


def after_epoch(run: Run, record: EpochRecord, progress: RoundProgress) -> None:
    """The recording path's epoch end: its rows, then an epoch checkpoint (after the last epoch the round's)."""
    record_epoch(run, record)
    if record.epoch + 1 < run.cfg.train.epochs:
        save_checkpoint(run, "epoch", (record.round, record.epoch + 1), progress)
        run.stop.raise_if_requested(f"after round {record.round} epoch {record.epoch}")


def record_and_checkpoint(run: Run, result: RoundResult, started: float, phase: Callable[[int, str], None],
                          bar: tqdm) -> None:  # fmt: skip
    """The round's row (callbacks' ``on_round_end``: the end-of-round measurement), then its checkpoint."""
    r = result.round
    phase(r, "measuring gradients" if run.gradients else "recording")
    record_round(run, result)
    phase(r, "checkpoint")
    result.other_seconds = time.perf_counter() - started - result.round_seconds
    save_checkpoint(run, "round", (r + 1, 0))  # holds other_seconds without its own write
    result.other_seconds = time.perf_counter() - started - result.round_seconds
    run.outputs.update_round(result)
    run.stop.raise_if_requested(f"after round {r}")
    bar.update(1)
    bar.set_postfix(sparsity=f"{result.sparsity:.3f}", test=f"{result.test_acc:.4f}")


# ------------------------------------------------------------------------------------------------ recording
def record_epoch(run: Run, record: EpochRecord) -> None:
    state = run.state
    run.outputs.epoch(record, first_step=state.global_step)
    state.global_step += len(record.lrs)
    row = record.row()
    state.epochs.append(row)
    each(run, lambda cb: cb.on_epoch_end(run.view, record.round, record.epoch, row))


def record_round(run: Run, result: RoundResult) -> None:
    run.state.results.append(result)
    run.outputs.round(result)
    each(run, lambda cb: cb.on_round_end(run.view, result))
    log.info(
        "round %d/%d | sparsity %.4f | max_lr %.5f | train loss %.4f | val acc %.4f | test acc %.4f | %.1f s/epoch",
        result.round, run.rounds - 1, result.sparsity, result.max_lr, result.train_loss,
        result.val_acc, result.test_acc, result.epoch_seconds,
    )  # fmt: skip


# ------------------------------------------------------------------------------ outputs, checkpoints, resume
def open_outputs(run: Run) -> None:
    cfg, state = run.cfg, run.state
    summary = {
        "status": "running", "run_dir": str(run.run_dir), "schedule": run.schedule.name,
        "pruner": cfg.pruner.name, "model": cfg.model.name, "dataset": cfg.dataset.name, "seed": int(cfg.seed),
        "rounds": run.rounds, "device": str(run.device), "world_size": run.dist.world_size,
        "prunable_weights": state.masks.total, "parameters": sum(p.numel() for p in state.model.parameters()),
        **provenance(),
    }  # fmt: skip
    wandb_id = run.outputs.start(summary, run.resume)  # on resume: tables back to the checkpoint
    run.checkpointer.adopt(run.resume)
    if run.resume is not None:
        ckpt, path = run.resume
        saved = ckpt["config"]["pruner"]["rounds"]
        extend = f"; extending the run from {saved} to {run.rounds} rounds" if run.rounds > saved else ""
        log.info("resuming %s from %s (round %d, %d epoch(s) of it done)%s", run.run_dir, path.name,
                 *checkpoint.position(ckpt), extend)  # fmt: skip
        if run.data_change and run.outputs.is_main:  # rank 0 keeps the list of resumes
            run.outputs.summary["resumes"][-1]["data_changed"] = run.data_change
    elif cfg.resume:
        log.info("resume=true: no checkpoint in %s yet, starting the run from the beginning", run.run_dir)
    run.outputs.write_summary()
    # tags, and the sweep's name as group in a multirun
    run.outputs.open_wandb(wandb_settings(cfg), cfg.raw, run_id=wandb_id)


def save_checkpoint(run: Run, kind: str, position: tuple[int, int], progress: RoundProgress | None = None) -> None:
    """Checkpoint the run at ``position`` = (round, epochs of it done) and note it in summary.json (a heartbeat
    for running runs). In a data-parallel run only rank 0 writes (every rank holds the same state)."""
    outputs = run.outputs
    if not outputs.is_main:
        return
    path = run.checkpointer.save(checkpoint.payload(
        kind, position, config=run.cfg.raw, state=run.state.state_dict(),
        round=progress.state_dict() if progress is not None else None,
        callbacks=[cb.state_dict() if hasattr(cb, "state_dict") else None for cb in run.callbacks],
        schedule=run.schedule.state_dict(), wandb_id=outputs.summary.get("wandb_id"), threads=torch.get_num_threads(),
        saved_at=time.time(), torch_version=str(torch.__version__), data=run.data_fingerprint,
    ))  # fmt: skip
    outputs.write_summary(
        checkpoint={"path": str(path), "round": position[0], "epochs_done": position[1],
                    "step": run.state.global_step},
        rounds_completed=len(run.state.results),
        updated_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )  # fmt: skip


def restore(run: Run) -> tuple[int, Resumed | None]:
    """Put the run (built afresh from the same config) into the checkpointed state; returns the round to continue
    from and, for an epoch checkpoint, the round in progress."""
    ckpt, _ = run.resume
    for cb, cb_state in zip(run.callbacks, ckpt["callbacks"]):
        if cb_state is not None and hasattr(cb, "load_state_dict"):
            cb.load_state_dict(cb_state)
    if run.cfg.deterministic and ckpt.get("threads") and torch.get_num_threads() != ckpt["threads"]:
        log.info("deterministic=true: using %d CPU threads as the checkpointed process did", ckpt["threads"])
        torch.set_num_threads(int(ckpt["threads"]))
    run.state.load_state_dict(ckpt["state"])
    run.schedule.load_state_dict(ckpt.get("schedule") or {})
    round_idx, epochs_done = checkpoint.position(ckpt)
    inside = ckpt["kind"] == "epoch" and epochs_done > 0
    return round_idx, Resumed(round_idx, epochs_done, ckpt["round"]) if inside else None


def finish(run: Run, seconds: float) -> dict[str, Any]:
    outputs, last = run.outputs, run.state.results[-1]
    outputs.summary.update(
        status="complete", rounds_completed=len(run.state.results), final_sparsity=last.sparsity,
        final_val_acc=last.val_acc, final_test_acc=last.test_acc, seconds=seconds,
        wandb_dir=str(run.run_dir / "wandb") if outputs.wandb.run is not None else None,
    )  # fmt: skip
    each(run, lambda cb: cb.on_run_end(run.view, outputs.summary))
    outputs.wandb.summary({k: v for k, v in outputs.summary.items() if k.startswith("final_")})
    where = outputs.finish()  # the run's files to W&B, W&B closed
    outputs.write_summary()
    for line in where if outputs.is_main else ():  # the run's last lines: where its results are
        log.info(line)
    return outputs.summary


def fail(run: Run, exc: BaseException) -> None:
    """summary.json says failed or interrupted, and why; a write failure becomes one line (exit 2, scyc.cli)."""
    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    failure = write_failure(exc) if isinstance(exc, Exception) else None  # a full disk, a read-only folder
    why = failure or exc
    resume = {"resume_command": rundir.resume_command(run.run_dir)} if run.checkpointer.candidates() else {}
    with guards.signals_ignored():  # a further Ctrl-C must not leave the summary saying running
        run.outputs.write_summary(status=status, reason=f"{type(why).__name__}: {why}",
                                  rounds_completed=len(run.state.results), **guards.failure_fields(exc),
                                  **resume)  # fmt: skip
    run.outputs.wandb.finish(exit_code=1)
    if failure is not None and failure is not exc:
        raise failure from exc
