"""SGDR's cycles tile each round and end it at eta_min; ``schedule.lag_rounds`` reads the S-curve late."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scyc.schedules import build_schedule
from scyc.schedules.restarts import fitted_bounds
from scyc.schedules.simulate import round_trace

ROOT = Path(__file__).resolve().parents[1]


@settings(max_examples=60, deadline=None)
@given(
    epochs=st.integers(min_value=1, max_value=8),
    steps_per_epoch=st.integers(min_value=1, max_value=40),
    t0=st.integers(min_value=1, max_value=3),
    t_mult=st.integers(min_value=1, max_value=3),
    eta_min=st.floats(min_value=0.0, max_value=1e-3),
    peak=st.floats(min_value=1e-2, max_value=1.0),
)
def test_fitted_sgdr_tiles_the_round_and_ends_at_eta_min(epochs, steps_per_epoch, t0, t_mult, eta_min, peak):
    total = epochs * steps_per_epoch
    sched = build_schedule(
        {"name": "sgdr", "policy": "constant", "shape": "cosine_restarts", "max_lr": peak, "t0_epochs": t0,
         "t_mult": t_mult, "eta_min": eta_min, "fit_round": True}
    )  # fmt: skip
    trace = round_trace(sched, peak, total, steps_per_epoch)
    bounds = fitted_bounds(total, t0 * steps_per_epoch, t_mult)
    assert bounds[0] == 0 and bounds[-1] == total
    lengths = [b - a for a, b in zip(bounds, bounds[1:])]
    if len(lengths) > 1:
        assert min(lengths) >= 2 and lengths[0] >= t0 * steps_per_epoch
    for a, b in zip(bounds, bounds[1:]):
        span = max(b - a - 1, 1)
        for t in range(a, b):
            expected = eta_min + (peak - eta_min) * (1 + math.cos(math.pi * (t - a) / span)) / 2
            assert trace[t] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert trace[0] == pytest.approx(peak)
    if total >= 2:
        assert abs(trace[-1] - eta_min) <= 1e-9
    assert all(eta_min - 1e-12 <= lr <= peak + 1e-12 for lr in trace)


def test_fitted_bounds_examples():
    assert fitted_bounds(300, 100, 2) == [0, 100, 300]  # 1 + 2 epochs: the old default, unchanged
    assert fitted_bounds(500, 100, 2) == [0, 167, 500]  # 5 epochs: 5/3 + 10/3
    assert fitted_bounds(300, 100, 1) == [0, 100, 200, 300]
    assert fitted_bounds(50, 100, 2) == [0, 50]  # the first cycle is longer than the round: one cycle


def test_sgdr_ends_every_round_at_eta_min(train):
    run_dir, _ = train(
        "schedule=sgdr", "train.epochs=5", "pruner.rounds=3", "dataset.train_subset=640", "dataset.val_size=500"
    )
    trace = pd.read_csv(run_dir / "lr_trace.csv")
    last = trace.groupby("round")["lr"].last()
    assert len(last) == 3 and (last.abs() <= 1e-9).all()


def _plot_schedules():
    spec = importlib.util.spec_from_file_location("plot_schedules", ROOT / "scripts" / "plot_schedules.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("lag", [0, 1])
def test_lag_rounds_matches_the_public_code(lag, capsys):
    _plot_schedules().main(
        ["schedule=scyc_resnet20_cifar10", "+experiment=paper_resnet20_cifar10", f"schedule.lag_rounds={lag}",
         "--max-lr"]
    )  # fmt: skip
    df = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    assert df["round"].tolist() == list(range(25))
    for r, got in zip(df["round"], df["max_lr"]):
        x = 1 - 0.8 ** (r - lag)
        expected = 0.03 + 0.04 / (1 + (x / (1 - x)) ** -5) if r >= lag + 1 else 0.03
        assert got == pytest.approx(expected, rel=1e-12)


def test_lag_rounds_in_a_run_reads_the_previous_rounds_sparsity(train):
    run_dir, _ = train(
        "schedule=scyc", "schedule.lag_rounds=1", "pruner.rounds=3", "train.epochs=1", "dataset.train_subset=640",
        "dataset.val_size=500", "analysis.grad_every_round=false",
    )  # fmt: skip
    res = pd.read_csv(run_dir / "results.csv")
    sched = build_schedule({"name": "scyc", "policy": "scurve", "shape": "constant", "max_lr_low": 0.05,
                            "max_lr_high": 0.15, "beta": 5.0})  # fmt: skip
    previous = [0.0, *res["sparsity"].tolist()[:-1]]
    assert res["max_lr"].tolist() == pytest.approx([sched.max_lr(r, s) for r, s in enumerate(previous)], rel=1e-12)


def test_bad_lag_is_refused():
    from scyc.foundations.registry import ConfigError

    with pytest.raises(ConfigError, match="lag_rounds"):
        build_schedule({"name": "c", "policy": "constant", "shape": "constant", "lr": 0.1, "lag_rounds": -1})
