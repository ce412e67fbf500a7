"""The start-up preflight: one tiny batch through every code path a run will take, before anything is written.

A run can fail hours in on something a tiny batch shows at once: an op without a deterministic kernel under
``deterministic=true`` (on CUDA: ``adaptive_avg_pool2d``'s backward, ``kthvalue``, ...), a dtype a kernel
lacks under ``train.precision=bf16``, a CUDA graph capture that fails, a model ``torch.compile`` cannot
compile. ``run_preflight`` takes one tiny batch (16 images; a full batch with ``train.compile``) through

1. the training step exactly as configured (precision, ``train.compile``, ``train.cuda_graphs``: with graphs,
   enough steps to warm up, capture and replay the step; a capture that fails is refused, where a run would
   silently fall back to eager steps), with a fresh optimiser;
2. the evaluation (``evaluate`` on the model that runs forward, compiled or not);
3. the gradient measurement (``analysis.grad_every_round``: a ``GradientProbe`` on that batch);
4. the pruning selection (the configured pruner's scores and its exact selection; the masks are discarded);
5. the copy of the run's state that the oracle (``scyc.lifecycle.oracle``) takes and restores for every candidate: the
   preflight itself restores the run through that path, so the run starts from exactly the state it had
   (weights, BatchNorm statistics, masks, every RNG and the data generator) and its results do not change.

A failure is refused in one line naming the stage, the op (the first line of PyTorch's message) and the key
to change (a ``ConfigError``: exit 2, and ``train.py`` leaves no run dir behind). On the CPU it runs too: it
costs a few forward/backward passes of a tiny batch.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import torch

from scyc.foundations.registry import ConfigError
from scyc.lifecycle.training import CudaGraphStep, evaluate, make_optimizer, train_epoch
from scyc.pruning import PruneContext

if TYPE_CHECKING:
    from scyc.lifecycle.build import Run

log = logging.getLogger("scyc")

BATCH = 16  # images in the tiny batch (fewer if the training split or the batch size is smaller)


class PreflightError(RuntimeError):
    """A stage of the preflight failed: ``stage`` and ``keys`` (what to change) for the one-line refusal."""

    def __init__(self, stage: str, keys: str, cause: BaseException) -> None:
        self.stage, self.keys = stage, keys
        super().__init__(first_line(cause))


def first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:400]


def hint(stage: str, message: str, cfg: Any, keys: str) -> str:
    """The key(s) to change for a failure of ``stage`` whose message is ``message``."""
    low = message.lower()
    if "deterministic" in low and cfg.deterministic:
        owner = {"gradient measurement": "analysis.grad_every_round=false",
                 "pruning selection": f"another pruner.name than {cfg.pruner.name}"}.get(stage, "another model.name")  # fmt: skip
        return f"set deterministic=false, or {owner}"
    if "cuda graph" in low or "capture" in low:
        return "set train.cuda_graphs=false"
    if cfg.train.compile and any(w in low for w in ("dynamo", "inductor", "compile", "triton")):
        return "set train.compile=false"
    if "bfloat16" in low or "half" in low:
        return "set train.precision=fp32"
    return f"change {keys}"


def run_preflight(run: Run) -> float:
    """Run the stages on ``run`` (a fully built ``Run``) and put it back as it was; returns the seconds
    taken. Raises ``ConfigError`` (one line) if a stage fails."""
    cfg, t0 = run.cfg, time.perf_counter()
    saved = run.state.clone()  # the oracle's copy of the run (stage 5 restores it)
    modes = [m.training for m in run.state.model.modules()]
    x, y = tiny_batch(run)
    try:
        try:
            stage, keys = "training step", "train.precision, train.compile or train.cuda_graphs"
            train_step(run, x, y)
            stage, keys = "evaluation", "train.precision or train.compile"
            evaluate(run.trainer.net, [(x, y)], run.speed.autocast_dtype)
            if run.gradients is not None:
                stage, keys = "gradient measurement", "analysis.grad_every_round=false"
                gradient_probe(run, x, y)
            if run.rounds > 1:
                stage, keys = "pruning selection", f"pruner.name={cfg.pruner.name}"
                ctx = PruneContext(model=run.state.model, batches=lambda: iter([(x, y)]), generator=run.state.generator)
                run.pruner.prune(run.state.masks, ctx)
        except (PreflightError, ConfigError):  # a refusal of its own (e.g. a pruner's) stays as it is
            raise
        except (RuntimeError, NotImplementedError, TypeError, ValueError, AssertionError) as exc:
            raise PreflightError(stage, keys, exc) from exc
        stage, keys = "state copy (the oracle's)", "schedule.policy"
        try:
            restore(run, saved, modes)
        except (RuntimeError, KeyError, ValueError) as exc:
            raise PreflightError(stage, keys, exc) from exc
    except PreflightError as exc:
        restore(run, saved, modes, strict=False)
        raise ConfigError(
            f"preflight on {run.device.type} ({run.state.model.__class__.__name__}, batch of {len(x)}): the "
            f"{exc.stage} failed with {exc}; {hint(exc.stage, str(exc), cfg, exc.keys)}"
        ) from exc.__cause__
    seconds = time.perf_counter() - t0
    log.debug("preflight on %s: training step, evaluation, gradients, pruning, state copy ok (%.2f s)",
              run.device, seconds)  # fmt: skip
    return seconds


def tiny_batch(run: Run) -> tuple[torch.Tensor, torch.Tensor]:
    """The first batch (augmented, normalised, in the run's memory format) of a loader over the training split
    with its own generator: the run's generator is not advanced. With ``train.compile`` a full training batch:
    the compiled graph is then the one the run uses, not an extra compilation for a tiny shape."""
    gen = torch.Generator(device=run.device).manual_seed(0)
    world, size = run.dist.world_size, int(run.cfg.train.batch_size)
    size = size if run.speed.compile else min(size, max(BATCH, 2 * world))
    loader = run.data.loader("train", size, train=True, generator=gen, **run.dist.shard)
    return next(iter(loader))


def train_step(run: Run, x: torch.Tensor, y: torch.Tensor) -> None:
    """Training steps on the tiny batch as the run takes them; with CUDA graphs: warm-up, capture, replays."""
    tcfg = run.cfg.train
    opt = make_optimizer(run.state.model, 1e-3, tcfg.momentum, tcfg.weight_decay, tcfg.nesterov)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    graphs = run.speed.cuda_graphs
    steps = 6 if graphs else 1  # three warm-up steps, the capture, replays
    try:
        train_epoch(run.trainer.train_model, [(x, y)] * steps, opt, sched, run.state.masks, tcfg.skip_nonfinite,
                    run.speed.autocast_dtype, graphs)  # fmt: skip
        step = getattr(opt, "_scyc_graph", None)
        if graphs and (step is None or step.replays == 0):
            why = getattr(step, "error", None) or "no step was replayed"
            raise RuntimeError(f"the CUDA graph capture failed: {why}")
    finally:
        CudaGraphStep.release(opt)


def gradient_probe(run: Run, x: torch.Tensor, y: torch.Tensor) -> None:
    from scyc.analysis.gradients import POPULATIONS, GradientProbe

    a = run.cfg.analysis
    probe = GradientProbe(run.state.masks, [(x, y)], bins=int(a.hist_bins), hist_range=a.hist_range,
                          normalize=bool(a.normalize), populations=POPULATIONS)  # fmt: skip
    probe.measure(run.state.model)


def restore(run: Run, saved: dict[str, Any], modes: list[bool], strict: bool = True) -> None:
    """Put the run back as ``saved`` (``RunState.clone``): weights, buffers, masks, RNGs; no gradients."""
    try:
        run.state.load_state_dict(saved)
    except Exception:
        if strict:
            raise
    for p in run.state.model.parameters():
        p.grad = None
    for m, mode in zip(run.state.model.modules(), modes):
        m.training = mode
