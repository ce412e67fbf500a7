"""Run guards: stop cleanly on SIGINT/SIGTERM, stop on a non-finite loss, deterministic mode, and a
start-up check that every round's LR schedule can be built.

Signals. ``StopRequest.install`` replaces the SIGINT/SIGTERM handlers with one that only sets a flag.
The training loop reads the flag through ``StopRequest.batches(loader)``: before each batch is handed
to the optimiser a plain Python bool is tested, so the cost per step is one attribute read and the step
in flight always finishes. The experiment then stops at the epoch boundary it last checkpointed (the
unfinished epoch is redone on resume, which keeps a resumed run bitwise identical to an uninterrupted
one), marks the run ``interrupted`` and exits with 128 + the signal number (130 for SIGINT, 143 for
SIGTERM). A second signal stops at once (``RunInterrupted`` raised by the handler), without a new checkpoint.
During start-up (``startup_interrupts``) a signal stops at once: nothing has been written yet.

Non-finite loss. Testing ``torch.isfinite(loss)`` in Python every step would force a device sync per
step on CUDA. Instead ``train_epoch`` keeps each step's loss tensor (no kernel, no sync) and the epoch's
mean loss, which it reads once per epoch anyway, is tested here: cross-entropy is non-negative, so the
mean is finite exactly when every step's loss was. Only then are the step losses stacked to find the
first bad step. The price: after a blow-up the rest of that epoch still runs (wasted, never saved: the
last checkpoint is the previous epoch's). ``train.skip_nonfinite=true`` instead skips each batch whose
loss is not finite (no optimiser step; the LR schedule still advances), which costs one sync per step.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import torch

from scyc.foundations.registry import ConfigError

if TYPE_CHECKING:
    from scyc.lifecycle.training import EpochResult
    from scyc.schedules import Schedule

log = logging.getLogger("scyc")

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_NONFINITE = 3


class RunInterrupted(KeyboardInterrupt):
    """Raised at a checkpointed boundary after SIGINT/SIGTERM; ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int, where: str) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        super().__init__(f"{self.signal_name} received {where}")


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite; ``details`` holds round, epoch, step, lr and loss."""

    def __init__(self, details: dict[str, Any]) -> None:
        self.details = details
        super().__init__(
            "non-finite {what} at round {round} epoch {epoch} step {step} (lr {lr:.6g}, loss {loss})".format(**details)
        )


_PARENT_WATCH: list[threading.Thread] = []
PARENT_GONE = threading.Event()  # set once the watcher found the sweep's process gone
ORPHAN_GRACE_SECONDS = 600.0  # after that long without the run stopping, the orphaned worker exits anyway


def end_with_parent(poll_seconds: float = 1.0) -> None:
    """In a worker process of a parallel sweep (joblib/loky), SIGTERM this process once its parent is gone (the
    sweep's process killed, even by SIGKILL), so that the run stops at its last checkpoint as for any SIGTERM and
    releases its run dir, instead of running on unseen and holding the lock; the worker process then exits
    (``scyc.cli`` sees ``PARENT_GONE``) instead of waiting for work that will never come. Nothing in a process
    that has no multiprocessing parent (a plain run, Hydra's basic launcher: those end with their terminal as
    usual). One watcher per process, however many jobs it runs."""
    import multiprocessing
    import time

    if multiprocessing.parent_process() is None or _PARENT_WATCH:
        return
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        log.warning("the sweep's process (pid %d) is gone: stopping this run at its last checkpoint", parent)
        PARENT_GONE.set()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(ORPHAN_GRACE_SECONDS)  # the run stops and exits long before; if it hangs, end the process
        os._exit(128 + signal.SIGTERM)

    _PARENT_WATCH.append(threading.Thread(target=watch, name="scyc-parent-watch", daemon=True))
    _PARENT_WATCH[0].start()


class StopRequest:
    """A flag set by SIGINT/SIGTERM and polled by the training loop once per step."""

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            log.warning("not in the main thread: SIGINT/SIGTERM keep their default behaviour")
            return
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)

    def uninstall(self) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        name = signal.Signals(signum).name
        if self.requested:
            self.uninstall()
            raise RunInterrupted(signum, "again: stopping at once, without a new checkpoint")
        self.requested, self.signum = True, signum
        log.warning("%s received: finishing the current step, then stopping at the last checkpoint", name)

    def batches(self, loader: Iterable) -> _UntilStop:
        """``loader``, cut short as soon as a stop is requested (the step in flight finishes)."""
        return _UntilStop(loader, self)

    def raise_if_requested(self, where: str) -> None:
        if self.requested:
            raise RunInterrupted(self.signum or signal.SIGINT, where)


@contextlib.contextmanager
def startup_interrupts() -> Iterator[None]:
    """Start-up, before the run installs ``StopRequest``: SIGINT and SIGTERM raise ``RunInterrupted`` at once
    (there is nothing to checkpoint yet), so that the entry point can leave the run dir as it found it and exit
    with 128 + the signal number. Outside the main thread signals keep their handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: Any) -> None:
        raise RunInterrupted(signum, "during start-up: the run did not start")

    previous = {sig: signal.signal(sig, handle) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """SIGINT and SIGTERM ignored while the run writes how it ended (summary.json): one more Ctrl-C must not
    leave it ``running``. Outside the main thread, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _UntilStop:
    def __init__(self, loader: Iterable, stop: StopRequest) -> None:
        self.loader, self.stop, self.yielded = loader, stop, 0

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)

    def __iter__(self) -> Iterator:
        stop = self.stop
        for batch in self.loader:
            if stop.requested:
                return
            self.yielded += 1
            yield batch


def check_finite(res: EpochResult, val_loss: float, round_idx: int, epoch: int, first_step: int) -> int:
    """Raise ``NonFiniteLoss`` naming the first bad step if this epoch's training or validation loss blew up
    (``first_step``: the global step of the epoch's first step); else return the number of skipped batches."""
    steps = len(res.lrs)
    skipped = getattr(res, "skipped", 0)
    if skipped:
        log.warning("round %d epoch %d: skipped %d of %d batches with a non-finite loss", round_idx, epoch,
                    skipped, steps)  # fmt: skip
    if steps and skipped >= steps:
        raise NonFiniteLoss(
            dict(what="loss in every step", round=round_idx, epoch=epoch, step=first_step, lr=res.lrs[0], loss="nan")
        )
    if math.isfinite(res.loss) and math.isfinite(val_loss):
        return skipped
    what, idx, loss = "validation loss", steps - 1, val_loss
    if not math.isfinite(res.loss) and getattr(res, "step_losses", None):
        finite = torch.isfinite(torch.stack(res.step_losses)).cpu()
        idx = int((~finite).nonzero()[0, 0])
        what, loss = "training loss", float(res.step_losses[idx])
    elif not math.isfinite(res.loss):
        what, loss = "training loss", res.loss
    idx = max(idx, 0)
    lr = res.lrs[idx] if res.lrs else math.nan
    raise NonFiniteLoss(dict(what=what, round=round_idx, epoch=epoch, step=first_step + idx, lr=lr, loss=str(loss)))


def failure_fields(exc: BaseException) -> dict[str, Any]:
    """What summary.json records about a run that stopped early, besides status and reason."""
    out: dict[str, Any] = {}
    if isinstance(exc, NonFiniteLoss):
        out["nonfinite"] = exc.details
    if isinstance(exc, RunInterrupted):
        out["signal"] = exc.signal_name
    return out


def configure_determinism(enabled: bool, device: torch.device) -> None:
    """``deterministic=true``: deterministic kernels only (an op without one raises; the start-up preflight,
    ``scyc.lifecycle.preflight``, meets it on a tiny batch), no cuDNN autotuning. ``deterministic=false`` on CUDA lets
    cuDNN benchmark its algorithms (``cudnn.benchmark``: the batches have fixed shapes). ``determinism_scope``
    puts every switch back when the job ends.

    ``CUBLAS_WORKSPACE_CONFIG`` is set before any cuBLAS use of the run: this runs in ``build_run``
    before the model is built, and cuBLAS sizes a handle's workspace at its first call; workspaces that an
    earlier job of the same process (a multirun) made are dropped so that they are made again with it.

    On the CPU the training here is bitwise reproducible run to run with the same thread count; the
    checkpoint records the thread count and a resumed deterministic run uses the same one.
    """
    if not enabled:
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        return
    if device.type == "cuda":
        # cuBLAS needs this before its first use to pick deterministic reduction workspaces.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        if torch.cuda.is_initialized() and hasattr(torch._C, "_cuda_clearCublasWorkspaces"):
            torch._C._cuda_clearCublasWorkspaces()
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


@contextlib.contextmanager
def determinism_scope() -> Iterator[None]:
    """One job's deterministic mode: on the way out (any way) deterministic algorithms, cuDNN's
    ``benchmark``/``deterministic`` and ``CUBLAS_WORKSPACE_CONFIG`` are what they were when the job began, so
    the next job of a multirun (or a notebook's next ``scyc.run``) does not inherit ``deterministic=true``."""
    cudnn = torch.backends.cudnn
    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             cudnn.benchmark, cudnn.deterministic, os.environ.get("CUBLAS_WORKSPACE_CONFIG"))  # fmt: skip
    try:
        yield
    finally:
        mode, warn_only, cudnn.benchmark, cudnn.deterministic, cublas = saved
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas


def preflight_schedule(
    schedule: Schedule,
    candidates: Callable[[int], list[float]],
    sparsities: list[float],
    total_steps: int,
    steps_per_epoch: int,
) -> None:
    """Build every round's LR scheduler up front, at the sparsity the round is expected to have
    (``sparsities``; ``candidates(r)`` gives round ``r``'s max_lr values), so an impossible schedule (e.g.
    ``schedule.base_lr`` above a round's ``max_lr``) is refused at start-up, not after hours of training."""
    param = torch.nn.Parameter(torch.zeros(1))
    for r, sparsity in enumerate(sparsities):
        for max_lr in candidates(r):
            optimizer = torch.optim.SGD([param], lr=max_lr)
            try:
                schedule.build_round(optimizer, max_lr, total_steps, steps_per_epoch)
            except ConfigError:
                raise
            except (ValueError, TypeError, ZeroDivisionError) as exc:
                raise ConfigError(
                    f"schedule '{schedule.name}' cannot be built for round {r} "
                    f"(sparsity {sparsity:.4f}, max_lr {max_lr:.6g}): {exc}"
                ) from exc
