"""Issue 14 off the GPU: the device check's CPU smoke (every section, packed sweeps included), the speed
switches chosen by device (train.cuda_graphs, channels_last, eval_batch_size) and Fashion-MNIST at 32x32."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_train
from options import build_model, dataset_cfg, train_cfg

from scyc.foundations.registry import ConfigError
from scyc.platforms.speed import Speed

SECTIONS = [
    "cuda_tests",
    "bench_eager",
    "bench_compile",
    "bench_reference",
    "torchrun",
    "packed",
    "paper",
    "paper_preset",
]


def driver():
    """scripts/device_check.py as a module (its section runner and process-tree kill)."""
    spec = importlib.util.spec_from_file_location("device_check", ROOT / "scripts" / "device_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_device_check_cpu_smoke_writes_every_section(tmp_path):
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["bash", "scripts/device_check.sh", "--cpu-smoke", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    report = json.loads((tmp_path / "device_check.json").read_text())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # what a device call brings back: <= 8 files, none deeper than two folders, device_check.json among them
    files = [p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()]
    assert sorted(map(str, files)) == ["device_check.json", "device_check.log", "device_check_logs.tar.gz"]
    assert all(p.is_file() for p in tmp_path.iterdir()) and not Path(report["scratch"]).exists()  # scratch removed
    with tarfile.open(tmp_path / "device_check_logs.tar.gz") as tar:
        names = tar.getnames()
    assert "cuda_tests.log" in names and any(n.endswith("benchmark.json") for n in names)
    assert not any(n.startswith("cifar10/") or n.endswith(".pt") for n in names)  # no data, no checkpoints
    assert json.loads(proc.stdout[proc.stdout.index("{") : proc.stdout.rindex("}") + 1])["sections"]  # printed too
    assert list(report["sections"]) == SECTIONS and all(s["ok"] for s in report["sections"].values())
    assert report["cpu_smoke"] and (tmp_path / "device_check.log").read_text().count(" ok ") == len(SECTIONS)
    bench = report["sections"]["bench_reference"]["runs"][0]
    assert bench["reference_images_per_s"] > 0 and bench["per_epoch_speedup"] > 0
    assert {r["precision"] for r in report["sections"]["bench_eager"]["runs"]} == {"fp32", "bf16"}
    packed = report["sections"]["packed"]
    assert packed["1"]["runs"] == 1 and packed["2"]["runs"] == 2 and packed["2"]["aggregate_epochs_per_s"] > 0
    paper = {k: v for k, v in report["sections"]["paper"].items() if isinstance(v, dict)}
    assert set(paper) == {"scyc", "cyclic"} and {r["status"] for r in paper.values()} == {"complete"}
    assert report["sections"]["torchrun"]["status"] == "complete"
    preset = {k: v for k, v in report["sections"]["paper_preset"].items() if isinstance(v, dict)}
    assert set(preset) == {"oracle", "scyc"} and all(len(r["rounds"]) == 2 for r in preset.values())
    print(f"cpu smoke: {seconds:.1f} s")  # the acceptance bar is a minute on the 2-core machine (not timed here)


def test_a_section_past_its_deadline_is_killed_with_its_process_tree_and_the_others_run(tmp_path):
    """A section that sleeps, its children in its process group and one in a session of its own (as torchrun's
    workers): past its budget all are killed, the section is recorded as timed out, the next one still runs."""
    dc, pids = driver(), tmp_path / "pids"
    sleeper = f"setsid sleep 300 & echo $! >> {pids}; sleep 300 & echo $! >> {pids}; echo $$ >> {pids}; wait"
    report = {"sections": {}}
    runner = dc.Sections({"sleepy": 2, "after": 30}, 60, tmp_path, report)
    t0 = time.perf_counter()
    runner.run_all({"sleepy": lambda sec: sec.run(["bash", "-c", sleeper]), "after": lambda sec: {"ran": True}})
    assert time.perf_counter() - t0 < 15
    sleepy = report["sections"]["sleepy"]
    assert not sleepy["ok"] and sleepy["error"].startswith("SectionTimeout: timed out after 2 s (its 3 processes")
    assert report["sections"]["after"] == {"ok": True, "ran": True, "seconds": report["sections"]["after"]["seconds"]}
    started = [int(p) for p in pids.read_text().split()]
    assert len(started) == 3 and not any(dc.alive(p) for p in started)
    assert "timed out after 2 s: killed its process group and tree" in (tmp_path / "sleepy.log").read_text()


def test_device_check_into_a_used_dir_moves_the_old_files_aside(tmp_path):
    """A rerun (after a timeout on the lent GPU) into the same <dir> starts clean, and loses nothing."""
    out = tmp_path / "dc"
    out.mkdir()
    (out / "device_check.json").write_text("{}")
    env = {"PATH": "/usr/bin:/bin", "PYTHON": "true"}  # every python step a no-op: only the shell's own logic runs
    proc = subprocess.run(
        ["bash", "scripts/device_check.sh", str(out)], cwd=ROOT, capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (old,) = tmp_path.glob("dc.old-*")
    assert (old / "device_check.json").read_text() == "{}" and "moved the previous" in proc.stdout
    assert out.is_dir() and not (out / "device_check.json").exists()


def speed(model: str, device: str, **train) -> Speed:
    net = build_model(model, num_classes=10, in_channels=1, image_size=(28, 28))
    return Speed.from_config(train_cfg(precision="fp32", **train), torch.device(device), net)


def test_speed_switches_by_device():
    mlp, conv = speed("lenet300", "cpu"), speed("lenet5", "cpu")
    assert (mlp.eval_batch_size, mlp.channels_last, mlp.cuda_graphs) == (1000, False, False)  # the default run
    assert (conv.eval_batch_size, conv.channels_last, conv.cuda_graphs) == (256, True, False)
    assert speed("lenet5", "cpu", eval_batch_size=500, channels_last=False).eval_batch_size == 500
    gpu = speed("lenet5", "cuda")  # no CUDA call is made: the choice alone
    assert (gpu.eval_batch_size, gpu.channels_last, gpu.cuda_graphs) == (1000, True, True)
    assert not speed("lenet5", "cuda", skip_nonfinite=True).cuda_graphs
    assert speed("lenet5", "cuda", cuda_graphs=False).cuda_graphs is False
    with pytest.raises(ConfigError, match="train.cuda_graphs=true cannot be used with train.skip_nonfinite"):
        speed("lenet5", "cuda", cuda_graphs=True, skip_nonfinite=True)
    with pytest.raises(ConfigError, match="train.cuda_graphs=maybe is not allowed"):
        speed("lenet5", "cpu", cuda_graphs="maybe")


def test_cuda_graphs_true_is_refused_on_the_cpu(tmp_path):
    proc = run_train(tmp_path / "run", "device=cpu", "train.cuda_graphs=true", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "error: train.cuda_graphs=true cannot be used on cpu: CUDA graphs need a CUDA device; "
        "set train.cuda_graphs=auto or false"
    )


def test_fashion_mnist_padded_to_32():
    from scyc.data import COMMON_KEYS, DATASETS

    own = {k: v for k, v in dataset_cfg("fashion_mnist", data_dir="data").items() if k not in COMMON_KEYS}
    plain, padded = DATASETS.build("fashion_mnist", own), DATASETS.build("fashion_mnist", own | {"pad": 2})
    assert padded.image_size == (32, 32) and torch.equal(padded.test_x[:, :, 2:30, 2:30], plain.test_x)
    assert padded.train_x[:, :, :2].sum() == 0 and padded.train_x[:, :, :, -2:].sum() == 0
