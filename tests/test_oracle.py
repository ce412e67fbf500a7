"""The oracle's per-round search, with a stub trainer whose validation accuracy is known."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir

from scyc.cli import build_run, run_rounds
from scyc.config import register_configs
from scyc.foundations.registry import ConfigError
from scyc.lifecycle.state import EpochRecord, RoundResult

ROOT = Path(__file__).resolve().parents[1]
GRID = [0.2, 0.01, 0.1, 0.05]  # deliberately unsorted
# Known validation accuracy per (round, max_lr): the best differs per round; round 1 has a tie (0.05, 0.1).
VAL = {
    0: {0.01: 0.50, 0.05: 0.60, 0.1: 0.70, 0.2: 0.65},
    1: {0.01: 0.40, 0.05: 0.80, 0.1: 0.80, 0.2: 0.10},
    2: {0.01: 0.90, 0.05: 0.20, 0.1: 0.30, 0.2: 0.89},
}
BEST = {0: 0.1, 1: 0.05, 2: 0.01}


def compose_cfg(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def snapshot(exp) -> dict:
    """The run's state (``exp``: a built run, or the stub below)."""
    return {
        "model": {k: v.clone() for k, v in exp.state.model.state_dict().items()},
        "masks": [m.clone() for m in exp.state.masks.masks],
        "generator": exp.state.generator.get_state(),
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": np.random.get_state()[1].copy(),
        "global_step": exp.state.global_step,
    }


def same(a: dict, b: dict) -> bool:
    return (
        all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
        and all(torch.equal(x, y) for x, y in zip(a["masks"], b["masks"]))
        and torch.equal(a["generator"], b["generator"])
        and torch.equal(a["torch"], b["torch"])
        and a["python"] == b["python"]
        and np.array_equal(a["numpy"], b["numpy"])
        and a["global_step"] == b["global_step"]
    )


class StubTrainer:
    """Stands in for the run's ``RoundTrainer``: ``train_round`` changes the weights by an amount that depends on
    max_lr, draws from every RNG the real loop may use, returns two epochs of three steps each, and reports the
    known accuracy."""

    def __init__(self, state):
        self.state, self.bars = state, False
        self.starts: dict[tuple[int, float], dict] = {}
        self.ends: dict[tuple[int, float], dict] = {}

    def train_round(self, round_idx, max_lr, after_epoch=None, resumed=None):
        self.starts[(round_idx, max_lr)] = snapshot(self)
        model, masks, generator = self.state.model, self.state.masks, self.state.generator
        drift = torch.rand((), generator=generator) + torch.rand(()) + random.random() + np.random.rand()
        with torch.no_grad():
            for p in model.parameters():
                p.add_(max_lr * float(drift))
        masks.apply_()
        val = VAL[round_idx][max_lr]
        epochs = [
            EpochRecord(round=round_idx, epoch=epoch, sparsity=masks.sparsity(), max_lr=max_lr, lr_last=max_lr,
                        train_loss=1 - val, train_acc=val, val_loss=1 - val, val_acc=val, test_loss=1 - val,
                        test_acc=val / 2, seconds=0.0, lrs=[max_lr] * 3)
            for epoch in range(2)
        ]  # fmt: skip
        assert after_epoch is None  # the oracle records the chosen candidate's epochs itself
        self.ends[(round_idx, max_lr)] = snapshot(self)
        return RoundResult(
            round=round_idx, sparsity=masks.sparsity(), alive=masks.alive(), max_lr=max_lr,
            train_loss=1 - val, train_acc=val, val_loss=1 - val, val_acc=val, test_loss=1 - val, test_acc=val / 2,
            best_val_acc=val, best_val_epoch=1, test_acc_at_best_val=val / 2, epoch_seconds=0.0, round_seconds=0.0,
        ), epochs  # fmt: skip


@pytest.fixture(scope="module")
def oracle_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("oracle")
    cfg = compose_cfg(
        "schedule=oracle", f"schedule.grid=[{','.join(map(str, GRID))}]", "pruner.rounds=3",
        "dataset.train_subset=600", "dataset.val_size=500", "wandb.mode=disabled", "progress=false",
    )  # fmt: skip
    run = build_run(cfg, run_dir)
    run.trainer = StubTrainer(run.state)  # the loop's one trainer: the oracle trains each candidate through it
    run_rounds(run)
    return run, run_dir


def test_exactly_one_chosen_per_round_the_best_by_val_acc(oracle_run):
    exp, run_dir = oracle_run
    oracle = pd.read_csv(run_dir / "oracle.csv")
    assert list(oracle.columns[:5]) == ["round", "max_lr", "val_acc", "test_acc", "chosen"]
    assert len(oracle) == 3 * len(GRID)
    for r, g in oracle.groupby("round"):
        assert sorted(g["max_lr"]) == sorted(GRID)
        assert g["val_acc"].tolist() == [VAL[r][lr] for lr in g["max_lr"]]
        assert g["chosen"].sum() == 1
        chosen = g[g["chosen"] == 1].iloc[0]
        assert chosen["max_lr"] == BEST[r]
        assert chosen["val_acc"] == g["val_acc"].max()  # ties (round 1) go to the smaller max_lr
    results = pd.read_csv(run_dir / "results.csv")
    assert results["max_lr"].tolist() == [BEST[r] for r in range(3)]
    assert results["val_acc"].tolist() == [VAL[r][BEST[r]] for r in range(3)]


def test_candidates_start_from_identical_state(oracle_run):
    exp = oracle_run[0].trainer
    for r in range(3):
        starts = [exp.starts[(r, lr)] for lr in sorted(GRID)]
        assert all(same(starts[0], s) for s in starts[1:])
        # and the candidates really diverged, so the equality above is not vacuous
        ends = [exp.ends[(r, lr)] for lr in sorted(GRID)]
        assert not same(ends[0], ends[1])


def test_the_chosen_end_state_is_carried_on(oracle_run):
    run, run_dir = oracle_run
    exp = run.trainer
    for r in range(3):
        saved = torch.load(run_dir / "checkpoints" / f"round_{r:02d}.pt", weights_only=False)
        chosen = exp.ends[(r, BEST[r])]["model"]
        assert all(torch.equal(saved["state"]["model"][k].cpu(), chosen[k].cpu()) for k in chosen)
    final = snapshot(exp)
    assert same(final, exp.ends[(2, BEST[2])] | {"global_step": final["global_step"]})
    # the next round started from the chosen end state, pruned: every surviving weight is unchanged
    nxt = exp.starts[(1, 0.01)]["model"]
    for k, v in exp.ends[(0, BEST[0])]["model"].items():
        assert torch.equal(torch.where(nxt[k] != 0, v, torch.zeros_like(v)), nxt[k])


def test_traces_hold_the_path_taken_and_all_candidates_are_kept(oracle_run):
    _, run_dir = oracle_run
    trace = pd.read_csv(run_dir / "lr_trace.csv")
    assert trace["step"].tolist() == list(range(3 * 2 * 3))  # 3 rounds x 2 epochs x 3 steps, chosen only
    assert trace.groupby("round")["lr"].first().tolist() == [BEST[r] for r in range(3)]
    epochs = pd.read_csv(run_dir / "epochs.csv")
    assert epochs["max_lr"].tolist() == [BEST[r] for r in range(3) for _ in range(2)]
    every = pd.read_csv(run_dir / "oracle_epochs.csv")
    assert len(every) == 3 * len(GRID) * 2
    assert set(every["max_lr"]) == set(GRID)


def test_oracle_needs_a_validation_set(tmp_path):
    cfg = compose_cfg(
        "schedule=oracle", "pruner.rounds=1", "dataset.train_subset=600", "dataset.val_size=0",
        "wandb.mode=disabled", "progress=false",
    )  # fmt: skip
    with pytest.raises(ConfigError, match="val_size"):
        build_run(cfg, tmp_path)
