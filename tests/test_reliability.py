"""Reliability: checkpoints, resume after SIGKILL with identical results, safe and fallback loading,
SIGINT/SIGTERM, non-finite losses, refusal to overwrite, bad input refused at start-up."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import ROOT, run_train
from omegaconf import OmegaConf

from scyc.foundations.utils import rng_state, set_rng_state
from scyc.lifecycle import checkpoint as ckpt
from scyc.lifecycle import rundir
from scyc.lifecycle.guards import NonFiniteLoss, check_finite
from scyc.lifecycle.tracking import truncate_rows
from scyc.lifecycle.training import train_epoch
from scyc.schedules import build_schedule

TINY = (
    "dataset.train_subset=1000", "dataset.val_size=500", "pruner.rounds=3", "train.epochs=2", "deterministic=true",
)  # fmt: skip
# wall-clock columns: differ between any two runs
TIMING = {"epoch_seconds", "round_seconds", "other_seconds", "seconds"}


def popen_train(run_dir: Path, *overrides: str) -> subprocess.Popen:
    args = [sys.executable, str(ROOT / "train.py"), f"hydra.run.dir={run_dir}", "progress=false", "wandb.mode=disabled"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", WANDB_SILENT="true")
    return subprocess.Popen(
        [*args, *overrides], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def wait_for(proc: subprocess.Popen, condition, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(
                f"the run ended (rc {proc.returncode}) before the condition held:\n{proc.stdout.read()}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the run")
        time.sleep(0.01)


def table(path: Path) -> pd.DataFrame:
    """A CSV as strings (bitwise comparison of the printed floats), wall-clock columns dropped."""
    df = pd.read_csv(path, dtype=str)
    return df[[c for c in df.columns if c not in TIMING]]


def assert_same_outputs(a: Path, b: Path) -> None:
    for name in ("results.csv", "epochs.csv"):
        pd.testing.assert_frame_equal(table(a / name), table(b / name))
    assert (a / "lr_trace.csv").read_bytes() == (b / "lr_trace.csv").read_bytes()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """An uninterrupted deterministic run: the results every interrupted-and-resumed run must reproduce."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    run_train(run_dir, *TINY)
    return run_dir


def kill_then_resume(run_dir: Path, condition, sig=signal.SIGKILL, extra=()) -> subprocess.CompletedProcess:
    proc = popen_train(run_dir, *TINY, *extra)
    wait_for(proc, lambda: condition(run_dir))
    proc.send_signal(sig)
    proc.wait(timeout=120)
    assert proc.returncode == -sig, "the run must have been killed, not have finished"
    return run_train(run_dir, *TINY, *extra, "resume=true")


# --------------------------------------------------------------------------------------------------
def test_sigkill_after_second_round_then_resume_is_identical(tmp_path, reference):
    run_dir = tmp_path / "run"
    resumed = kill_then_resume(run_dir, lambda d: (d / "checkpoints" / "round_01.pt").exists())
    assert "resuming" in resumed.stderr + resumed.stdout
    assert_same_outputs(reference, run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["rounds_completed"] == 3
    assert len(summary["resumes"]) == 1 and summary["resumes"][0]["previous_status"] == "running"
    assert summary["resumes"][0]["round"] >= 2  # killed after round 1 was checkpointed


@pytest.mark.slow
@pytest.mark.parametrize("after_steps", [3, 17, 30, 38])
def test_sigkill_at_any_step_then_resume_is_identical(tmp_path, reference, after_steps):
    """Killed mid-epoch, mid-round or between rounds (by lr_trace.csv rows streamed), resumed: identical."""

    def streamed(d: Path) -> bool:
        trace = d / "lr_trace.csv"
        return trace.exists() and len(trace.read_text().splitlines()) > after_steps

    run_dir = tmp_path / "run"
    kill_then_resume(run_dir, streamed)
    assert_same_outputs(reference, run_dir)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), pytest.param(signal.SIGTERM, 143, marks=pytest.mark.slow)])
def test_signal_stops_at_checkpoint_marks_interrupted_and_resumes(tmp_path, reference, sig, code):
    run_dir = tmp_path / "run"
    proc = popen_train(run_dir, *TINY)
    wait_for(proc, lambda: (run_dir / "checkpoints" / "last.pt").exists())
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == code, out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["signal"] == signal.Signals(sig).name
    assert "resume=true" in summary["resume_command"] and f"hydra.run.dir={run_dir}" in summary["resume_command"]
    assert "resume with:" in out
    run_train(run_dir, *TINY, "resume=true")
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "complete"
    assert_same_outputs(reference, run_dir)


def test_truncated_last_checkpoint_falls_back_with_a_warning(tmp_path, reference):
    run_dir = tmp_path / "run"
    proc = popen_train(run_dir, *TINY)
    wait_for(proc, lambda: (run_dir / "checkpoints" / "round_00.pt").exists())
    proc.kill()
    proc.wait(timeout=60)
    last = run_dir / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])  # torn write, as after a full disk
    resumed = run_train(run_dir, *TINY, "resume=true")
    log = resumed.stderr + resumed.stdout
    assert "last.pt cannot be used" in log and "trying the previous one" in log
    assert_same_outputs(reference, run_dir)


class _Payload:
    """Unpickling this creates a marker file: what a hostile checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_malicious_last_pt_is_never_executed(tmp_path, reference):
    run_dir = tmp_path / "run"
    proc = popen_train(run_dir, *TINY)
    wait_for(proc, lambda: (run_dir / "checkpoints" / "round_00.pt").exists())
    proc.kill()
    proc.wait(timeout=60)
    marker = tmp_path / "pwned"
    evil = {"format": ckpt.FORMAT, "version": ckpt.VERSION, "model": _Payload(marker)}
    with open(run_dir / "checkpoints" / "last.pt", "wb") as fh:
        pickle.dump(evil, fh)
    assert pickle.loads((run_dir / "checkpoints" / "last.pt").read_bytes()) and marker.exists()  # it is armed
    marker.unlink()
    resumed = run_train(run_dir, *TINY, "resume=true")
    assert not marker.exists()
    assert "last.pt cannot be used" in resumed.stderr + resumed.stdout
    assert_same_outputs(reference, run_dir)


def test_refuses_to_overwrite_a_run_and_says_how_to_resume(tmp_path, reference):
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    before = {p.name: p.read_bytes() for p in [run_dir / "results.csv", run_dir / ".hydra" / "config.yaml"]}
    proc = run_train(run_dir, *TINY, "seed=5", check=False)
    assert proc.returncode == 2
    assert "already holds a run" in proc.stderr and f"hydra.run.dir={run_dir} resume=true" in proc.stderr
    after = {p.name: p.read_bytes() for p in [run_dir / "results.csv", run_dir / ".hydra" / "config.yaml"]}
    assert after == before  # results untouched, and Hydra's rewrite of .hydra/ undone

    done = run_train(run_dir, *TINY, "resume=true")
    assert "is complete" in done.stderr and (run_dir / "results.csv").read_bytes() == before["results.csv"]

    changed = run_train(run_dir, *TINY[:-2], "train.epochs=3", "deterministic=true", "resume=true", check=False)
    assert changed.returncode == 2 and "train.epochs: 2 in the checkpoint, 3 now" in changed.stderr


def test_extending_a_finished_run_gives_the_run_that_had_the_rounds_from_the_start(tmp_path, reference):
    run_dir = tmp_path / "run"
    two = [o for o in TINY if not o.startswith("pruner.rounds=")]
    run_train(run_dir, *two, "pruner.rounds=2")
    extended = run_train(run_dir, *two, "pruner.rounds=3", "resume=true")
    assert "extending the run from 2 to 3 rounds" in extended.stdout + extended.stderr
    assert_same_outputs(reference, run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["rounds"] == 3 and summary["rounds_completed"] == 3
    assert summary["resumes"][0]["previous_status"] == "complete"


def test_resume_true_on_an_empty_dir_starts_the_run(tmp_path):
    run_dir = tmp_path / "run"
    run_train(run_dir, "dataset.train_subset=300", "pruner.rounds=1", "train.epochs=1", "resume=true")
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "complete"


def test_nonfinite_loss_stops_the_run_and_records_where(train):
    run_dir, proc = train(
        "schedule=constant", "schedule.lr=1e6", "pruner.rounds=2", "train.epochs=1", "dataset.train_subset=600",
        check=False,
    )  # fmt: skip
    assert proc.returncode == 3
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "non-finite" in summary["reason"]
    bad = summary["nonfinite"]
    assert bad["round"] == 0 and bad["epoch"] == 0 and bad["lr"] == 1e6 and 0 <= bad["step"] < 600 // 128
    assert not (run_dir / "results.csv").exists()


# --------------------------------------------------------------------------------------------------
# in-process unit tests
def _tiny_model_and_batches(nan_at: int | None):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    batches = []
    for i in range(5):
        x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
        if i == nan_at:
            x[0, 0] = float("nan")
        batches.append((x, y))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0, total_iters=0)
    return model, batches, opt, sched


def test_check_finite_names_the_first_bad_step():
    model, batches, opt, sched = _tiny_model_and_batches(nan_at=2)
    res = train_epoch(model, batches, opt, sched, None)
    with pytest.raises(NonFiniteLoss) as info:
        check_finite(res, 1.0, round_idx=4, epoch=1, first_step=100)
    assert info.value.details["step"] == 102 and info.value.details["round"] == 4 and info.value.details["lr"] == 0.1


def test_skip_nonfinite_skips_only_the_bad_batch():
    model, batches, opt, sched = _tiny_model_and_batches(nan_at=2)
    res = train_epoch(model, batches, opt, sched, None, skip_nonfinite=True)
    assert res.skipped == 1 and res.examples == 32 and len(res.lrs) == 5
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert check_finite(res, 1.0, 0, 0, first_step=100) == 1  # no raise; the count goes to summary.json


def _payload(r: int, e: int, kind: str = "epoch") -> dict:
    return ckpt.payload(kind, (r, e), config={}, state={"model": {"w": torch.full((2,), float(r))}}, round=None,
                        callbacks=[])  # fmt: skip


def test_checkpointer_keeps_last_plus_keep_epoch_files_and_all_round_files(tmp_path):
    c = ckpt.Checkpointer(tmp_path, keep=2)
    for r in range(3):
        for e in (1, 2, 3):
            c.save(_payload(r, e))
        c.save(_payload(r + 1, 0, kind="round"))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["epoch_r02_e002.pt", "epoch_r02_e003.pt", "last.pt", "round_00.pt", "round_01.pt", "round_02.pt"]
    state, path = c.load_latest()
    assert path.name == "last.pt" and state["position"] == {"round": 3, "epoch": 0}
    assert ckpt.load_checkpoint(tmp_path / "epoch_r02_e003.pt")["position"] == {"round": 2, "epoch": 3}
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_load_latest_falls_back_past_damaged_files_and_fails_clearly(tmp_path):
    c = ckpt.Checkpointer(tmp_path, keep=1)
    c.save(_payload(0, 1))
    c.save(_payload(0, 2))
    (tmp_path / "last.pt").write_bytes(b"garbage")
    state, path = c.load_latest()
    assert path.name == "epoch_r00_e001.pt" and state["position"]["epoch"] == 1
    torch.save({"some": "dict"}, tmp_path / "epoch_r00_e001.pt")  # loads, but is not a checkpoint
    with pytest.raises(ckpt.ConfigError, match="no usable checkpoint"):
        c.load_latest()
    assert ckpt.Checkpointer(tmp_path / "none").load_latest() is None


def test_an_older_format_version_is_refused_naming_the_version(tmp_path):
    old = {
        "format": ckpt.FORMAT,
        "version": 1,
        "kind": "round",
        "position": {"round": 1, "epoch": 0},
        "global_step": 3,
        "config": {},
        "model": {},
        "masks": {},
        "snapshots": {},
        "rng": {},
        "results": [],
        "epochs": [],
    }  # fmt: skip  (the layout of format version 1)
    torch.save(old, tmp_path / "last.pt")
    with pytest.raises(ValueError, match=f"checkpoint format version 1, this code reads version {ckpt.VERSION}"):
        ckpt.load_checkpoint(tmp_path / "last.pt")
    with pytest.raises(ckpt.ConfigError, match="last.pt .*checkpoint format version 1"):
        ckpt.Checkpointer(tmp_path).load_latest()


def test_rng_state_round_trips_through_a_weights_only_load():
    gen = torch.Generator().manual_seed(3)
    state = rng_state(gen)
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    import random

    import numpy as np

    expected = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=gen).item())
    set_rng_state(loaded, gen)
    assert (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=gen).item()) == expected


@pytest.mark.parametrize("yaml", sorted((ROOT / "conf" / "schedule").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_schedule_checkpoints_with_weights_only(yaml):
    """Each shipped schedule's optimiser + scheduler state loads with weights_only=True and continues
    with the same LRs."""
    from hydra import compose, initialize_config_dir

    from scyc.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):  # YAMLs may have defaults
        cfg = compose(config_name="config", overrides=[f"schedule={yaml.stem}"])
    schedule = build_schedule(OmegaConf.to_container(cfg.schedule, resolve=True))

    def make():
        p = torch.nn.Parameter(torch.ones(3))
        opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
        return p, opt, schedule.build_round(opt, 0.1, 20, 5)

    p, opt, sched = make()
    for _ in range(7):
        p.grad = torch.ones(3)
        opt.step()
        sched.step()
    buf = io.BytesIO()
    torch.save({"o": opt.state_dict(), "s": sched.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    p2, opt2, sched2 = make()
    p2.data.copy_(p.data)
    opt2.load_state_dict(state["o"])
    sched2.load_state_dict(state["s"])
    for _ in range(10):
        assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
        for q, o, s in ((p, opt, sched), (p2, opt2, sched2)):
            q.grad = torch.ones(3)
            o.step()
            s.step()
    assert torch.equal(p, p2)


def test_config_differences_ignore_keys_a_resume_may_change():
    saved = {"seed": 0, "train": {"epochs": 2}, "wandb": {"mode": "offline"}, "resume": False, "device": "cpu"}
    now = {"seed": 0, "train": {"epochs": 3}, "wandb": {"mode": "disabled"}, "resume": True, "device": "cuda"}
    assert rundir.config_differences(saved, now) == ["train.epochs: 2 in the checkpoint, 3 now"]


def test_truncate_rows_drops_rows_written_after_the_checkpoint(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("step,lr\n0,1\n1,1\n2,1\n3,0.")  # the killed process was mid-line
    truncate_rows(path, 2)
    assert path.read_text() == "step,lr\n0,1\n1,1\n"


# --------------------------------------------------------------------------------------------------
BAD_INPUT = [
    ("pruner.rate=1.5", "rate"),
    ("pruner.rate=0", "rate"),
    ("pruner.rounds=0", "rounds"),
    ("train.epochs=-1", "epochs"),
    ("train.batch_size=0", "batch_size"),
    ("schedule=scyc schedule.max_lr_low=0.2 schedule.max_lr_high=0.1", "max_lr"),
    ("schedule=scyc schedule.beta=-1", "beta"),
    ("schedule=scyc schedule.base_lr=0.2", "base_lr"),
    ("model=nosuchnet", "nosuchnet"),
    ("dataset.root=/nonexistent/place dataset.download=false", "/nonexistent/place"),
    ("device=cuda:7", "cuda"),
    ("train.lr_typo=0.1", "lr_typo"),
    ("checkpoint.keep=-1", "checkpoint.keep"),
    ("schedule.max_lr_high=abc", "schedule.max_lr_high"),  # refused by the typed schema, at composition
    ("pruner.rate=abc", "pruner.rate"),
    ("wandb.mode=sometimes", "wandb.mode"),
]


def test_bad_input_is_refused_at_start_up(tmp_path):
    """Every case exits non-zero naming the key, and leaves nothing that looks like a run."""
    cases = list(enumerate(BAD_INPUT))
    while cases:  # a few at a time: each is a Python process that imports torch
        batch, cases = cases[:4], cases[4:]
        procs = [(i, popen_train(tmp_path / str(i), *ov.split()), ov, word) for i, (ov, word) in batch]
        for i, proc, ov, word in procs:
            out, _ = proc.communicate(timeout=300)
            assert proc.returncode != 0, ov
            assert word in out, (ov, out[-2000:])
            run_dir = tmp_path / str(i)
            assert not any((run_dir / m).exists() for m in (*rundir.RUN_MARKERS, "checkpoints")), ov
