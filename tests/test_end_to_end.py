"""A tiny real run on Fashion-MNIST end to end: the files a run writes and what they hold."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from scyc.schedules import s_curve


def test_tiny_scyc_run_writes_everything(train):
    run_dir, proc = train(
        "pruner.rounds=3", "train.epochs=1", "dataset.train_subset=1200", "dataset.val_size=500",
        "schedule=scyc", "schedule.max_lr_low=0.04", "schedule.max_lr_high=0.1", "schedule.beta=5",
        "wandb.mode=offline",
    )  # fmt: skip
    results = pd.read_csv(run_dir / "results.csv")
    assert results["round"].tolist() == [0, 1, 2]
    assert results["sparsity"].tolist() == pytest.approx([0.0, 0.2, 0.36], abs=1e-9)
    for s, lr in zip(results["sparsity"], results["max_lr"]):
        assert lr == pytest.approx(0.04 + 0.06 * s_curve(s, 5.0), abs=1e-9)
    assert results[["val_acc", "test_acc"]].apply(lambda c: c.between(0, 1)).all().all()

    trace = pd.read_csv(run_dir / "lr_trace.csv")
    assert list(trace.columns) == ["round", "epoch", "step", "lr"]
    steps_per_round = 1200 // 128
    assert len(trace) == 3 * steps_per_round
    assert trace["step"].tolist() == list(range(3 * steps_per_round))
    for r, group in trace.groupby("round"):
        peak = group["lr"].idxmax() - group.index[0]
        assert abs(peak - steps_per_round / 2) <= 1  # one triangle peaking mid-round
        assert group["lr"].max() <= results.loc[r, "max_lr"] + 1e-12

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["rounds_completed"] == 3
    assert summary["final_sparsity"] == pytest.approx(0.36)
    assert (run_dir / ".hydra" / "config.yaml").exists()
    assert list((run_dir / "checkpoints").glob("round_*.pt"))
    wandb_runs = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(wandb_runs) == 1 and list(wandb_runs[0].glob("*.wandb"))
    assert "round 2/2" in proc.stderr + proc.stdout


def test_constant_schedule_and_lenet5(train):
    run_dir, _ = train(
        "schedule=constant",
        "schedule.lr=0.02",
        "model=lenet5",
        "pruner.rounds=2",
        "train.epochs=1",
        "dataset.train_subset=600",
    )
    trace = pd.read_csv(run_dir / "lr_trace.csv")
    assert set(trace["lr"]) == {0.02}
    assert pd.read_csv(run_dir / "results.csv")["max_lr"].tolist() == [0.02, 0.02]


@pytest.mark.parametrize(
    "override, word",
    [
        ("pruner.rate=1.5", "rate"),
        ("pruner.rounds=0", "rounds"),
        ("train.epochs=-1", "epochs"),
        ("train.lr_typo=0.1", "lr_typo"),
        ("model=nosuchnet", "nosuchnet"),
    ],
)
def test_bad_input_fails_fast_and_writes_no_results(train, override, word):
    run_dir, proc = train(override, check=False)
    assert proc.returncode != 0
    assert word in proc.stderr + proc.stdout
    assert not (run_dir / "results.csv").exists() and not (run_dir / "summary.json").exists()
