"""train.py on miniatures of CIFAR-10 and Tiny-ImageNet-200 in their official layouts, and scripts/benchmark.py."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import run_train
from miniatures import make_cifar10, make_tiny_imagenet

COMMON = ("dataset.val_size=50", "pruner.rounds=2", "train.epochs=1", "train.batch_size=50")


def check_two_rounds(run_dir, model, dataset):
    results = pd.read_csv(run_dir / "results.csv")
    assert results["round"].tolist() == [0, 1]
    assert results["sparsity"].iloc[0] == 0 and results["sparsity"].iloc[1] == pytest.approx(0.2, abs=1e-3)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["model"] == model and summary["dataset"] == dataset
    assert (run_dir / "checkpoints" / "round_01.pt").is_file()


@pytest.mark.parametrize("model", ["resnet20", pytest.param("vgg19", marks=pytest.mark.slow)])
def test_cifar10_miniature_two_rounds(tmp_path, model):
    make_cifar10(tmp_path / "mini", per_batch=30, n_test=20)  # 150 train -> 100 after the 50 held out
    run_dir = tmp_path / "run"
    run_train(
        run_dir, "dataset=cifar10", f"dataset.root={tmp_path / 'mini'}", "dataset.download=false",
        "dataset.verify_checksums=false", f"model={model}", *COMMON,
    )  # fmt: skip
    check_two_rounds(run_dir, model, "cifar10")


@pytest.mark.slow
def test_imagenet200_miniature_two_rounds_resnet50(tmp_path):
    make_tiny_imagenet(tmp_path / "mini", n_classes=4, train_per_class=25, val_per_class=5)
    run_dir = tmp_path / "run"
    run_train(run_dir, "dataset=imagenet200", f"dataset.root={tmp_path / 'mini'}", "model=resnet50", *COMMON)
    check_two_rounds(run_dir, "resnet50", "imagenet200")


def test_missing_data_is_a_clear_error(tmp_path):
    proc = run_train(
        tmp_path / "run", "dataset=cifar10", f"dataset.root={tmp_path / 'none'}", "dataset.download=false",
        check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "CIFAR-10 not found" in proc.stderr and str(tmp_path / "none") in proc.stderr


def test_benchmark_writes_its_json(tmp_path):
    make_cifar10(tmp_path / "mini", per_batch=20, n_test=20)
    run_dir = tmp_path / "bench"
    proc = run_train(
        run_dir, "dataset=cifar10", f"dataset.root={tmp_path / 'mini'}", "dataset.download=false",
        "dataset.verify_checksums=false", "dataset.val_size=20", "model=lenet5", "device=cpu", "train.batch_size=16",
        "benchmark.steps=4", "benchmark.warmup=1", "benchmark.repeats=2", "benchmark.chunk_steps=2",
        "benchmark.reference_repeats=1", "benchmark.profile_steps=2", script="scripts/benchmark.py",
    )  # fmt: skip
    out = json.loads((run_dir / "benchmark.json").read_text())
    ops = {op["op"]: op for op in out["profile"]}  # where the step's time goes, from torch.profiler
    assert 0 < sum(op["share"] for op in ops.values()) <= 1 + 1e-9 and "aten::convolution_backward" in ops
    assert ops["aten::convolution_backward"]["calls_per_step"] == 2  # LeNet-5's two conv layers, once a step
    assert "aten::convolution_backward" in (run_dir / "profile.txt").read_text() and "profile: " in proc.stdout
    assert (run_dir / ".hydra" / "config.yaml").exists() and (run_dir / ".hydra" / "overrides.yaml").exists()
    refused = tmp_path / "refused" / "bench"  # a refused benchmark leaves no folder behind, not even Hydra's
    no = run_train(refused, "benchmark.profile_steps=-1", script="scripts/benchmark.py", check=False)
    assert no.returncode == 2 and "benchmark.profile_steps=-1 is not allowed" in no.stderr
    assert not (tmp_path / "refused").exists()
    keys = ("images_per_s", "unmasked_images_per_s", "reference_images_per_s", "prune_seconds", "eval_seconds")
    for key in (*keys, "reference_eval_images_per_s", "eval_images_per_s", "epoch_seconds", "per_epoch_speedup"):
        assert out[key] > 0, key
    assert out["reference_epoch_seconds"] / out["epoch_seconds"] == pytest.approx(out["per_epoch_speedup"])
    assert -1 < out["mask_overhead"] < 1 and out["device"].startswith("cpu") and out["pairs"] == 4
    assert len(out["raw"]["ratios"]) == 4 and 0.15 < out["sparsity"] < 0.25
    assert 0 < out["mask_overhead_direct"] < 1 and out["mask_apply_seconds"] > 0
    assert "mask overhead" in proc.stdout and "reference loop" in proc.stdout and "per-epoch speed-up" in proc.stdout
