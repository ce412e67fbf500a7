"""Data-parallel runs: one experiment on several processes (torchrun, srun, submitit) with DDP.

Every rank runs the whole experiment; what keeps them one run:

* **Launch.** ``init`` reads torchrun's environment (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``) or, inside a
  Slurm job step (``srun``; the submitit launcher's tasks are srun tasks), submitit's ``JobEnvironment`` for
  Slurm read for the step (global rank, local rank, ``SLURM_STEP_NUM_TASKS`` tasks, the step's hostnames),
  with ``MASTER_ADDR`` = the first host and ``MASTER_PORT`` derived from the job id. NCCL on CUDA (each rank
  uses ``cuda:LOCAL_RANK``), gloo on the CPU. A single process (no such variables, or a world of one) creates
  no process group and every helper here is a no-op, so plain runs are untouched. ``SCYC_SLURM_DDP=0``
  ignores the Slurm variables.
* **Data.** ``train.batch_size`` is the *global* batch; each rank takes ``batch_size / world_size`` rows
  of every global batch from a permutation all ranks draw identically (``TensorLoader(rank=,
  world_size=)``); evaluation is sharded the same way and the sums are all-reduced, once per epoch.
* **Model.** The training forward/backward goes through ``DistributedDataParallel`` (gradients averaged);
  masks, snapshots, resets and checkpoints use the unwrapped module, whose Parameters DDP shares.
* **Pruning.** Decided on rank 0 only and broadcast as boolean masks, with rank 0's generator state
  (so data order stays in step) and, after the reset, its parameters and buffers. At the start of every
  round each rank hashes its masks; the digests are all-gathered and a mismatch stops the run on every
  rank with ``MaskMismatchError``.
* **Files.** Only rank 0 writes (CSVs, summary, checkpoints, W&B, figures). Hydra creates a run dir on
  every rank before any code of ours runs, and ``${now:...}`` can differ by a second between ranks:
  ``shared_run_dir`` hands every rank rank 0's directory, and a non-zero rank whose own Hydra directory
  differs removes exactly the files Hydra put there (``.hydra/*.yaml``, its ``<job>.log``) and the then
  empty directories. Non-zero ranks also drop Hydra's log-file handler (no interleaved lines in rank 0's
  log) and log warnings only.

Files go through ``scyc.lifecycle.tracking.RunOutputs``, which writes on rank 0 only.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from submitit.slurm.slurm import SlurmJobEnvironment
from torch import nn

from scyc.foundations.registry import ConfigError
from scyc.lifecycle.callbacks import Callback, RunView

log = logging.getLogger(__name__)


class MaskMismatchError(RuntimeError):
    """The ranks of a data-parallel run hold different pruning masks: they would train different networks."""


@dataclass(frozen=True)
class LaunchEnv:
    rank: int
    world_size: int
    local_rank: int
    source: str  # torchrun | slurm


class _SlurmStep(SlurmJobEnvironment):
    """submitit's Slurm ``JobEnvironment`` read for the job step (its tasks and nodes) rather than the whole job.

    ``SLURM_STEP_NUM_TASKS`` exists only inside a job step (srun, submitit's tasks), not in the batch script,
    whose ``SLURM_NTASKS`` would otherwise make a lone ``python train.py`` wait for peers that never come.
    """

    _env = {**SlurmJobEnvironment._env, "num_tasks": "SLURM_STEP_NUM_TASKS", "nodes": "SLURM_STEP_NODELIST"}


def launch_env() -> LaunchEnv | None:
    """Rank, world size and local rank from torchrun's environment or Slurm's (through submitit's
    ``JobEnvironment``); None for a plain process."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return LaunchEnv(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)), "torchrun")
    if env.get("SCYC_SLURM_DDP", "1") != "0" and "SLURM_STEP_NUM_TASKS" in env and "SLURM_PROCID" in env:
        step = _SlurmStep()
        if step.num_tasks > 1:
            return LaunchEnv(step.global_rank, step.num_tasks, step.local_rank, "slurm")
    return None


def _slurm_master_addr() -> str:
    """The step's first host (its node list parsed by submitit), else the job's."""
    job = _SlurmStep() if os.environ.get("SLURM_STEP_NODELIST") else SlurmJobEnvironment()
    return job.hostnames[0]


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in the run. The default is a single process (every helper a no-op)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: torch.device | None = None
    source: str = "single"

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def shard(self) -> dict[str, int]:
        """Keyword arguments for ``DataSplits.loader`` / ``TensorLoader``: this rank's share of each batch."""
        return {"rank": self.rank, "world_size": self.world_size}

    # -- set-up ------------------------------------------------------------------------------------
    def check_global_batch(self, batch_size: int) -> None:
        if batch_size % self.world_size:
            lower = batch_size - batch_size % self.world_size
            raise ConfigError(
                f"train.batch_size={batch_size} is the global batch and must be divisible by the world size "
                f"{self.world_size} (each rank takes batch_size / world_size examples); use e.g. "
                f"{max(lower, self.world_size)} or {lower + self.world_size}"
            )

    def wrap(self, model: nn.Module) -> nn.Module:
        """The module to train: DDP around ``model`` in a data-parallel run, ``model`` itself otherwise.

        DDP registers hooks on ``model``'s own Parameter objects (no copies), so a MaskSet built on
        ``model`` keeps masking what DDP trains; construction broadcasts rank 0's parameters and buffers.
        """
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device is not None and self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, output_device=ids[0] if ids else None)

    # -- collectives (no-ops in a single process) ----------------------------------------------------
    def _tensor_device(self) -> torch.device:
        return self.device if self.backend == "nccl" and self.device is not None else torch.device("cpu")

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """Rank ``src``'s (picklable) object on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def mean_over_ranks(self, values: Sequence[float], count: int) -> list[float]:
        """Example-weighted means over the ranks of per-rank means ``values`` over ``count`` examples."""
        if not self.enabled:
            return list(values)
        sums = [v * count if count else 0.0 for v in values]
        t = torch.tensor([*sums, float(count)], dtype=torch.float64, device=self._tensor_device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        total = t[-1].item()
        return [s / total if total else float("nan") for s in t[:-1].tolist()]

    @torch.no_grad()
    def broadcast_masks(self, masks: Sequence[torch.Tensor] | None, like: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Rank 0's boolean masks on every rank (other ranks pass None); shapes and device from ``like``."""
        if not self.enabled:
            return list(masks)  # type: ignore[arg-type]
        dev = self._tensor_device()
        if self.is_main:
            flat = torch.cat([m.reshape(-1).to(dev, torch.uint8) for m in masks])  # type: ignore[union-attr]
        else:
            flat = torch.empty(sum(m.numel() for m in like), dtype=torch.uint8, device=dev)
        dist.broadcast(flat, src=0)
        parts = flat.split([m.numel() for m in like])
        return [p.view(m.shape).to(m.device, torch.bool) for p, m in zip(parts, like)]

    @torch.no_grad()
    def broadcast_module(self, model: nn.Module) -> None:
        """Copy rank 0's parameters and buffers into every rank's ``model`` (once per round: cheap)."""
        if not self.enabled:
            return
        for t in [*model.parameters(), *model.buffers()]:
            dist.broadcast(t.data, src=0)

    def broadcast_generator(self, generator: torch.Generator | None) -> None:
        """Rank 0's generator state on every rank, so data order and augmentation stay in step."""
        if self.enabled and generator is not None:
            generator.set_state(self.broadcast_object(generator.get_state() if self.is_main else None))

    def check_masks_identical(self, masks: Sequence[torch.Tensor], where: str = "") -> str:
        """All-gather the ranks' mask digests; raise ``MaskMismatchError`` on every rank if they differ."""
        digest = mask_digest(masks)
        if not self.enabled:
            return digest
        digests: list[Any] = [None] * self.world_size
        dist.all_gather_object(digests, digest)
        if len(set(digests)) > 1:
            listing = ", ".join(f"rank {r}: {d[:16]}" for r, d in enumerate(digests))
            raise MaskMismatchError(
                f"pruning masks differ across ranks{' ' + where if where else ''} ({listing}); the ranks would "
                "train different networks, so the run stops. Masks are decided on rank 0 and broadcast: a "
                "mismatch means a rank changed its masks on its own (a callback, a reset or a pruner that "
                "edits MaskSet.masks outside the round loop's prune step)."
            )
        return digest


class MaskDigestCheck(Callback):
    """At the start of every round (after prune + reset): the ranks' masks must be identical."""

    def __init__(self, env: DistEnv) -> None:
        self.env = env

    def on_round_start(self, run: RunView, round_idx: int) -> None:
        self.env.check_masks_identical(run.masks.masks, where=f"at the start of round {round_idx}")


def mask_digest(masks: Sequence[torch.Tensor]) -> str:
    """A hash of the masks' shapes and keep/prune pattern (BLAKE2b over the packed boolean bytes)."""
    h = hashlib.blake2b(digest_size=16)
    for m in masks:
        h.update(repr(tuple(m.shape)).encode())
        h.update(m.detach().reshape(-1).bool().cpu().numpy().tobytes())
    return h.hexdigest()


_ENV = DistEnv()


def current() -> DistEnv:
    """This process's place in the run (a single process unless ``init`` formed a process group)."""
    return _ENV


def is_main() -> bool:
    return _ENV.is_main


def _device_for(spec: str, launch: LaunchEnv) -> torch.device:
    if spec == "cpu":
        return torch.device("cpu")
    if spec not in ("auto", "cuda"):
        raise ConfigError(
            f"device={spec} cannot be used in a data-parallel run ({launch.world_size} ranks): each rank "
            "takes cuda:LOCAL_RANK; use device=cuda, device=auto or device=cpu"
        )
    if not torch.cuda.is_available():
        if spec == "cuda":
            raise ConfigError("device=cuda: no cuda device is available on this machine; use device=cpu or auto")
        return torch.device("cpu")
    if launch.source == "slurm" and torch.cuda.device_count() == 1:
        return torch.device("cuda", 0)  # the cluster binds one GPU to each task (--gpu-bind, gpus_per_task)
    if launch.local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f"local rank {launch.local_rank} has no GPU: this node has {torch.cuda.device_count()}; start at most "
            "that many processes per node (torchrun --nproc_per_node, Slurm tasks_per_node = gpus_per_node)"
        )
    return torch.device("cuda", launch.local_rank)


def init(device: str = "auto", timeout_min: float = 30.0) -> DistEnv:
    """Form the process group when launched by torchrun or as Slurm tasks; a no-op for a plain process.

    ``device`` is the ``device`` config key: cpu → gloo; auto/cuda → NCCL on cuda:LOCAL_RANK when CUDA is
    there (auto falls back to gloo on the CPU).
    """
    global _ENV
    launch = launch_env()
    if launch is None or launch.world_size == 1:
        _ENV = DistEnv()
        return _ENV
    dev = _device_for(device, launch)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if launch.source == "slurm":
        os.environ.setdefault("MASTER_ADDR", _slurm_master_addr())
        os.environ.setdefault("MASTER_PORT", str(20000 + int(os.environ.get("SLURM_JOB_ID", "0")) % 40000))
        os.environ.update(RANK=str(launch.rank), WORLD_SIZE=str(launch.world_size), LOCAL_RANK=str(launch.local_rank))
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        atexit.register(cleanup)
        dist.init_process_group(
            backend=backend,
            init_method="env://",
            rank=launch.rank,
            world_size=launch.world_size,
            timeout=datetime.timedelta(minutes=timeout_min),
            device_id=dev if dev.type == "cuda" else None,
        )
    _ENV = DistEnv(launch.rank, launch.world_size, launch.local_rank, backend, dev, launch.source)
    if not _ENV.is_main:
        _quiet_non_main_rank()
    return _ENV


def cleanup() -> None:
    """Destroy the process group (if any) and go back to the single-process default."""
    global _ENV
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _ENV = DistEnv()
    atexit.unregister(cleanup)


@contextlib.contextmanager
def session(device: str = "auto") -> Iterator[DistEnv]:
    """``init`` on entry; on an error, ``cleanup`` at once. After a normal exit the group is kept.

    The process group outlives one job on purpose: a multirun under torchrun (``train.py -m ...``) runs its
    jobs one after another in the same processes, and a group destroyed and formed again on the same
    rendezvous hangs. ``init`` reuses the live group; ``cleanup`` runs at interpreter exit (registered by
    ``init``) or here when the body raises (a ConfigError's ``sys.exit`` included).
    """
    env = init(device)
    try:
        yield env
    except BaseException:
        cleanup()
        raise


def _quiet_non_main_rank() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):  # Hydra's <job>.log: rank 0 writes it alone
            root.removeHandler(handler)
            handler.close()
    logging.getLogger("scyc").setLevel(logging.WARNING)


def shared_run_dir(own: Path, env: DistEnv | None = None) -> Path:
    """Rank 0's run directory on every rank; a non-zero rank's differing Hydra directory is removed.

    Only what Hydra writes is deleted (``.hydra/{config,hydra,overrides}.yaml`` and ``*.log`` files),
    then the directories if empty: a directory holding anything else is left alone.
    """
    env = env or _ENV
    own = Path(own)
    if not env.enabled:
        return own
    main_dir = Path(env.broadcast_object(str(own.resolve()) if env.is_main else None))
    if not env.is_main and own.resolve() != main_dir:
        _remove_hydra_dir(own)
    return main_dir


def _remove_hydra_dir(path: Path) -> None:
    hydra = path / ".hydra"
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (hydra / name).unlink(missing_ok=True)
    for logfile in path.glob("*.log"):
        logfile.unlink(missing_ok=True)
    for d in (hydra, path):
        with contextlib.suppress(OSError):
            d.rmdir()  # only if empty
    if path.exists():
        log.warning("rank %d left %s in place: it holds files Hydra did not write", _ENV.rank, path)
