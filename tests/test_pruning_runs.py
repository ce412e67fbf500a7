"""Pruners and resets inside real train.py runs: layer_sparsity.csv, checkpointed masks, plug-in pruners."""

from __future__ import annotations

import os

import pandas as pd
import pytest
import torch
from conftest import ROOT, run_train

TINY = ("model=lenet5", "schedule=constant", "train.epochs=1", "dataset.train_subset=600", "dataset.val_size=500")


def layer_table(run_dir):
    table = pd.read_csv(run_dir / "layer_sparsity.csv")
    assert list(table.columns) == ["round", "layer", "numel", "sparsity"]
    return table


def test_layerwise_rewind_epoch_run_has_equal_layer_sparsity(train):
    run_dir, _ = train(*TINY, "pruner=layerwise_magnitude", "pruner.reset=rewind_epoch", "pruner.rounds=2")
    assert pd.read_csv(run_dir / "results.csv")["sparsity"].tolist() == pytest.approx([0, 0.2], abs=1e-4)
    table = layer_table(run_dir)
    assert len(table) == 2 * 5
    for r, group in table.groupby("round"):
        assert (group["sparsity"] - [0, 0.2][r]).abs().max() <= 1.0 / group["numel"].min()


def test_lamp_reinit_with_exclusion(train):
    run_dir, _ = train(*TINY, "pruner=lamp", "pruner.reset=reinit", "pruner.rounds=2", "pruner.exclude=[features.0]")
    table = layer_table(run_dir)
    assert "features.0.weight" not in set(table["layer"])
    round1 = table[table["round"] == 1]
    assert round1["sparsity"].max() - round1["sparsity"].min() > 0.05  # global: layers differ
    ckpt = torch.load(run_dir / "checkpoints" / "round_01.pt", weights_only=True)["state"]
    assert all(m.dtype == torch.bool for m in ckpt["masks"].values())
    assert torch.count_nonzero(ckpt["model"]["features.0.weight"]) == 150  # kept dense
    for name, m in ckpt["masks"].items():
        assert torch.count_nonzero(ckpt["model"][name][~m]) == 0


def test_user_pruner_by_dotted_path(tmp_path):
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    run_dir = tmp_path / "run"
    run_train(run_dir, *TINY, "pruner.name=test_pruners.ReverseMagnitude", "pruner.rounds=2", env=env)
    assert pd.read_csv(run_dir / "results.csv")["sparsity"].tolist() == pytest.approx([0, 0.2], abs=1e-4)


def test_bad_rewind_epoch_fails_fast(train):
    run_dir, proc = train(*TINY, "pruner.reset=rewind_epoch", "pruner.rewind_epoch=3", check=False)
    assert proc.returncode == 2 and "pruner.rewind_epoch=3" in proc.stderr
    assert not (run_dir / "results.csv").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "pruner, reset",
    [(p, "finetune") for p in ("global_magnitude", "layerwise_magnitude", "random", "lamp", "snip")]
    + [("global_magnitude", r) for r in ("rewind_init", "rewind_epoch", "reinit")],
)
def test_acceptance(train, pruner, reset):
    """The issue's acceptance command for every pruner and reset (3000 training images, 3 rounds)."""
    run_dir, _ = train(
        f"pruner={pruner}", f"pruner.reset={reset}", "model=lenet5", "schedule=constant", "pruner.rounds=3",
        "train.epochs=1", "dataset.train_subset=3000",
    )  # fmt: skip
    results = pd.read_csv(run_dir / "results.csv")
    assert results["sparsity"].tolist() == pytest.approx([0, 0.2, 0.36], abs=0.002)
    assert results["test_acc"].between(0, 1).all() and results["test_acc"][0] > 0.15  # dense: above chance (0.1)
    if reset == "finetune" and pruner != "random":  # training goes on through the pruning: accuracy still rises
        assert results["test_acc"].iloc[-1] > results["test_acc"][0]
    table = layer_table(run_dir)
    spread = table[table["round"] == 2]["sparsity"].agg(lambda s: s.max() - s.min())
    if pruner == "layerwise_magnitude":
        assert spread < 0.01
    elif pruner in ("global_magnitude", "lamp", "snip"):
        assert spread > 0.05
