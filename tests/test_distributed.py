"""Data-parallel runs: rank sharding of the loader, launch detection, and real 2-process gloo groups on the CPU.

The gloo tests start two processes with ``torch.multiprocessing`` (a free port each time); one of them forms its
group from Slurm's variables, the way submitit's tasks do. The torchrun end-to-end run is the acceptance command.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import traceback
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from scyc.data import Augment
from scyc.data.loader import TensorLoader
from scyc.foundations.registry import ConfigError
from scyc.platforms import distributed

ROOT = Path(__file__).resolve().parents[1]
TINY = ["pruner.rounds=2", "train.epochs=1", "dataset.train_subset=1024", "dataset.val_size=500", "device=cpu"]


# -- loader sharding -------------------------------------------------------------------------------------
def _loader(x, y, bs, rank=0, world=1, seed=0, train=True):
    return TensorLoader(
        x, y, bs, mean=(0.5,), std=(0.25,), shuffle=train, drop_last=train,
        augment=Augment(crop_padding=2, flip=True) if train else None,
        generator=torch.Generator().manual_seed(seed), rank=rank, world_size=world,
    )  # fmt: skip


@pytest.mark.parametrize("world", [2, 4])
def test_rank_shards_of_each_global_batch_make_the_single_process_batch(world):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (70, 1, 8, 8), dtype=torch.uint8, generator=g)
    y = torch.arange(70)
    single = _loader(x, y, 16)
    shards = [_loader(x, y, 16, r, world) for r in range(world)]
    assert all(len(s) == len(single) == 4 for s in shards)
    for epoch in range(2):  # the generator carries over: epoch 2 has another permutation and other crops
        batches = list(single)
        per_rank = [list(s) for s in shards]
        for b, (xb, yb) in enumerate(batches):
            assert all(len(p[b][1]) == 16 // world for p in per_rank)
            assert torch.equal(torch.cat([p[b][0] for p in per_rank]), xb), (epoch, b)
            assert torch.equal(torch.cat([p[b][1] for p in per_rank]), yb)
    assert sum(s.num_examples for s in shards) == single.num_examples == 64


def test_evaluation_shards_cover_the_split_once_even_with_a_short_last_batch():
    x = torch.randint(0, 256, (23, 1, 4, 4), dtype=torch.uint8)
    y = torch.arange(23)
    shards = [_loader(x, y, 10, r, 4, train=False) for r in range(4)]
    seen = torch.cat([yb for s in shards for _, yb in s])
    assert sorted(seen.tolist()) == list(range(23))  # last batch of 3 over 4 ranks: rank 3 gets nothing
    assert [s.num_examples for s in shards] == [7, 7, 5, 4]  # 10 -> 3,3,2,2 twice; 3 -> 1,1,1,0


def test_global_batch_must_divide_over_the_ranks():
    x, y = torch.zeros(64, 1, 4, 4, dtype=torch.uint8), torch.zeros(64, dtype=torch.long)
    with pytest.raises(ValueError, match="not divisible by the world size 3"):
        _loader(x, y, 16, 0, 3)
    with pytest.raises(ConfigError, match=r"train.batch_size=130 .* world size 4.*128 or 132"):
        distributed.DistEnv(rank=0, world_size=4).check_global_batch(130)
    distributed.DistEnv(rank=0, world_size=4).check_global_batch(128)


def test_launch_environment_from_torchrun_and_slurm(monkeypatch):
    def launch(env):
        monkeypatch.setattr(os, "environ", dict(env))
        return distributed.launch_env()

    assert launch({}) is None
    torchrun = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}
    assert launch(torchrun) == distributed.LaunchEnv(3, 4, 1, "torchrun")
    step = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_STEP_NUM_TASKS": "8", "SLURM_LOCALID": "1"}
    assert launch(step) == distributed.LaunchEnv(5, 8, 1, "slurm")
    batch_script = {"SLURM_PROCID": "0", "SLURM_NTASKS": "8"}  # sbatch's own shell is not a rank
    assert launch(batch_script) is None
    assert launch({**step, "SCYC_SLURM_DDP": "0"}) is None
    assert launch({**step, "SLURM_STEP_NUM_TASKS": "1"}) is None  # one task per job: plain
    # MASTER_ADDR: the step's first node, else the job's (node lists parsed by submitit's JobEnvironment)
    launch({**step, "SLURM_JOB_NODELIST": "gpu[3-4],cpu1", "SLURM_STEP_NODELIST": "gpu[4-5]"})
    assert distributed._slurm_master_addr() == "gpu4"
    launch({**step, "SLURM_JOB_NODELIST": "gpu[03-04],cpu1"})
    assert distributed._slurm_master_addr() == "gpu03"


def test_device_choice_per_rank():
    launch = distributed.LaunchEnv(1, 2, 1, "torchrun")
    assert distributed._device_for("cpu", launch) == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"device=cuda:1 cannot be used in a data-parallel run \(2 ranks\)"):
        distributed._device_for("cuda:1", launch)
    if not torch.cuda.is_available():
        assert distributed._device_for("auto", launch) == torch.device("cpu")  # gloo on the CPU
        with pytest.raises(ConfigError, match="no cuda device"):
            distributed._device_for("cuda", launch)


def test_only_what_hydra_wrote_is_removed_from_a_stray_rank_dir(tmp_path):
    for keep_extra in (False, True):
        d = tmp_path / f"d{keep_extra}"
        (d / ".hydra").mkdir(parents=True)
        for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
            (d / ".hydra" / name).write_text("a: 1\n")
        (d / "train.log").write_text("")
        if keep_extra:
            (d / "notes.txt").write_text("mine")
        distributed._remove_hydra_dir(d)
        assert d.exists() == keep_extra
        if keep_extra:
            assert [f.name for f in d.iterdir()] == ["notes.txt"]


def test_single_process_helpers_are_no_ops():
    env = distributed.current()
    assert not env.enabled and env.is_main and env.shard == {"rank": 0, "world_size": 1}
    model = nn.Linear(3, 2)
    assert env.wrap(model) is model
    assert env.mean_over_ranks([0.5, 2.0], 10) == [0.5, 2.0]
    m = [torch.ones(2, 3, dtype=torch.bool)]
    assert env.broadcast_masks(m, m) == m
    assert env.check_masks_identical(m) == distributed.mask_digest(m) != distributed.mask_digest([~m[0]])


# -- real process groups (gloo, 2 processes) -------------------------------------------------------------
def _free_port() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if 20000 <= port < 60000:
            return port
    raise RuntimeError("no free port in [20000, 60000)")


def _spawn(fn, tmp_path: Path, *args) -> list[dict]:
    """Run ``fn(rank, tmp_path, *args)`` on 2 ranks; each writes rank<r>.json; returns them (rank order)."""
    mp.spawn(_guarded, args=(fn, tmp_path, *args), nprocs=2, join=True)
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]


def _guarded(rank, fn, tmp_path, *args):
    torch.set_num_threads(1)
    try:
        out = fn(rank, tmp_path, *args)
    except BaseException as exc:  # report, do not hang the peer's join
        out = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
    finally:
        distributed.cleanup()
    (tmp_path / f"rank{rank}.json").write_text(json.dumps(out))


def _torchrun_env(rank: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK="0")


def _collectives_and_digest(rank, tmp_path, port):
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        os.environ.pop(key, None)
    # the way submitit's tasks start: Slurm variables only, no torchrun
    os.environ.update(
        SLURM_PROCID=str(rank), SLURM_NTASKS="2", SLURM_STEP_NUM_TASKS="2", SLURM_LOCALID=str(rank),
        SLURM_JOB_NODELIST="localhost", SLURM_JOB_ID=str(port - 20000), PATH="/nonexistent",  # no scontrol
    )  # fmt: skip
    env = distributed.init("cpu")
    out = {"source": env.source, "rank": env.rank, "world": env.world_size, "port": os.environ["MASTER_PORT"]}
    out["means"] = env.mean_over_ranks([float(rank), 10.0], count=rank + 1)
    masks = [torch.ones(4, 5, dtype=torch.bool), torch.ones(7, dtype=torch.bool)]
    out["digest_ok"] = env.check_masks_identical(masks)
    if rank == 1:
        masks[1][3] = False  # one weight pruned on rank 1 alone
    try:
        env.check_masks_identical(masks, where="in the test")
        out["mismatch"] = None
    except distributed.MaskMismatchError as exc:
        out["mismatch"] = str(exc)
    return out


def test_collectives_and_mask_mismatch_stop_every_rank(tmp_path):
    port = _free_port()
    outs = _spawn(_collectives_and_digest, tmp_path, port)
    for rank, out in enumerate(outs):
        assert "error" not in out, out.get("trace")
        assert (out["source"], out["rank"], out["world"], out["port"]) == ("slurm", rank, 2, str(port))
        assert out["means"] == pytest.approx([2 / 3, 10.0])  # example-weighted: (0*1 + 1*2) / 3
        msg = out["mismatch"]
        assert msg is not None and "pruning masks differ across ranks in the test" in msg
        assert "rank 0:" in msg and "rank 1:" in msg
    assert outs[0]["digest_ok"] == outs[1]["digest_ok"]


def _compose(*overrides: str):
    from hydra import compose, initialize_config_dir

    from scyc.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=["wandb.mode=disabled", "progress=false", *overrides])


def _ddp_experiment(rank, tmp_path, port, overrides):
    from scyc.cli import build_run, run_rounds

    _torchrun_env(rank, port)
    env = distributed.init("cpu")
    own = tmp_path / f"hydra_dir_rank{rank}"  # as if ${now:...} had given each rank its own Hydra dir
    (own / ".hydra").mkdir(parents=True)
    (own / ".hydra" / "config.yaml").write_text("x: 1\n")
    (own / "train.log").write_text("")
    run_dir = distributed.shared_run_dir(own, env)
    exp = build_run(_compose(*overrides), run_dir)
    summary = run_rounds(exp)
    gathered = [None, None]
    torch.distributed.all_gather_object(gathered, exp.state.masks.state_dict())
    same = all(torch.equal(gathered[0][k], gathered[1][k]) for k in gathered[0])
    if rank == 0:
        torch.save(exp.state.masks.state_dict(), tmp_path / "ddp_masks.pt")
    return {
        "run_dir": str(run_dir), "masks_equal_across_ranks": same, "world_size": summary["world_size"],
        "callbacks": [type(c).__name__ for c in exp.callbacks], "wandb": exp.outputs.wandb.mode,
    }  # fmt: skip


def test_two_rank_run_matches_the_single_process_run(tmp_path):
    from scyc.cli import build_run, run_rounds

    port = _free_port()
    overrides = [*TINY, "pruner.reset=rewind_init"]  # the reset path: load_state_dict under DDP, then broadcast
    outs = _spawn(_ddp_experiment, tmp_path, port, overrides)
    for out in outs:
        assert "error" not in out, out.get("trace")
        assert out["masks_equal_across_ranks"] and out["world_size"] == 2
        assert "MaskDigestCheck" in out["callbacks"]  # the DDP-only callback; the others are checked below
        assert out["run_dir"] == str((tmp_path / "hydra_dir_rank0").resolve())  # rank 0's dir on both ranks
    assert not (tmp_path / "hydra_dir_rank1").exists()  # rank 1's Hydra-only dir removed, nothing else written
    ddp_dir = tmp_path / "hydra_dir_rank0"
    ddp = pd.read_csv(ddp_dir / "results.csv")

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # like each rank (and torchrun's OMP_NUM_THREADS=1): 2 shared cores here
    try:
        single = build_run(_compose(*overrides), tmp_path / "single")
        run_rounds(single)
    finally:
        torch.set_num_threads(threads)
    ref = pd.read_csv(tmp_path / "single" / "results.csv")
    # every rank runs the single-process run's callbacks (rank 0 alone writes), plus the mask digest check
    for out in outs:
        assert [c for c in out["callbacks"] if c != "MaskDigestCheck"] == [type(c).__name__ for c in single.callbacks]
    # Same global batches in the same order with the same augmentation: equal up to float summation order.
    assert ddp["sparsity"].tolist() == ref["sparsity"].tolist() == [0.0, 0.2]
    assert ddp["alive"].tolist() == ref["alive"].tolist()
    assert ddp["max_lr"].tolist() == ref["max_lr"].tolist()
    for col in ("train_loss", "val_loss", "test_loss"):
        assert ddp[col].tolist() == pytest.approx(ref[col].tolist(), rel=1e-4), col
    for col in ("train_acc", "val_acc", "test_acc"):
        assert ddp[col].tolist() == pytest.approx(ref[col].tolist(), abs=2e-3), col  # a few examples at most
    ddp_masks, ref_masks = torch.load(tmp_path / "ddp_masks.pt"), single.state.masks.state_dict()
    agree = sum(int((ddp_masks[k] == ref_masks[k]).sum()) for k in ref_masks) / single.state.masks.total
    assert agree > 0.999
    assert len(pd.read_csv(ddp_dir / "lr_trace.csv")) == len(pd.read_csv(tmp_path / "single" / "lr_trace.csv"))


# -- the acceptance command through torchrun ----------------------------------------------------------------
@pytest.mark.slow  # ~10 s idle, ~30 s on the shared 2-core box: the spawn tests above cover the same machinery
def test_torchrun_two_ranks_end_to_end(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    # ${now:%f} (microseconds) differs between the ranks: each rank's Hydra makes its own dir under tmp_path.
    args = [
        str(torchrun), "--standalone", "--nproc_per_node=2", str(ROOT / "train.py"), *TINY,
        f"hydra.run.dir={tmp_path}/run_${{now:%H%M%S%f}}", "wandb.mode=offline", "progress=false",
    ]  # fmt: skip
    env = dict(os.environ, WANDB_SILENT="true", PYTHONUNBUFFERED="1")
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dirs = list(tmp_path.iterdir())
    assert len(dirs) == 1, dirs  # rank 1's Hydra dir is gone
    run_dir = dirs[0]
    results = pd.read_csv(run_dir / "results.csv")
    assert results["round"].tolist() == [0, 1] and results["sparsity"].tolist() == [0.0, 0.2]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["status"] == "complete"
    assert len(list((run_dir / "wandb").glob("offline-run-*"))) == 1  # W&B on rank 0 only
    log = (run_dir / "train.log").read_text()
    assert log.count("round 1/1") == 1  # rank 1 does not write into rank 0's log
