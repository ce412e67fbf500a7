"""Issue 14 off the GPU: the device check's CPU smoke (every section, packed sweeps included), the speed
switches chosen by device (train.cuda_graphs, channels_last, eval_batch_size) and Fashion-MNIST at 32x32."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import torch
from conftest import ROOT, run_train
from omegaconf import OmegaConf

from scyc.models import create_model
from scyc.registry import ConfigError
from scyc.speed import Speed

SECTIONS = ["cuda_tests", "bench_eager", "bench_compile", "bench_reference", "torchrun", "packed", "paper"]


def test_device_check_cpu_smoke_writes_every_section(tmp_path):
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["bash", "scripts/device_check.sh", "--cpu-smoke", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    report = json.loads((tmp_path / "device_check.json").read_text())
    assert proc.returncode == 0, proc.stdout + proc.stderr
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
    print(f"cpu smoke: {seconds:.1f} s")  # the acceptance bar is a minute on the 2-core machine (not timed here)


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
    net = create_model(model, num_classes=10, in_channels=1, image_size=(28, 28))
    return Speed.from_config(OmegaConf.create({"precision": "fp32", **train}), torch.device(device), net)


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
    from scyc.data import DATASETS

    plain, padded = DATASETS.build("fashion_mnist", {}), DATASETS.build("fashion_mnist", {"pad": 2})
    assert padded.image_size == (32, 32) and torch.equal(padded.test_x[:, :, 2:30, 2:30], plain.test_x)
    assert padded.train_x[:, :, :2].sum() == 0 and padded.train_x[:, :, :, -2:].sum() == 0
