"""Beyond the paper: the S-curve fitted to the oracle's choices, and the Optuna sensitivity sweep."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import run_train
from hypothesis import given
from hypothesis import strategies as st

from scyc.schedules import build_schedule
from scyc.schedules.gradscale import scale_factor
from scyc.schedules.policies import s_curve

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_oracle_run(run: Path, low: float, high: float, beta: float, rounds: int = 12) -> None:
    """An oracle run whose chosen max_lr follows a known S-curve (the grid is dense enough to carry it)."""
    rows = []
    for r in range(rounds):
        s = 1 - 0.8**r
        target = low + (high - low) * s_curve(s, beta)
        for lr in (round(target, 6), round(target * 0.5, 6), round(target * 1.5, 6)):
            rows.append({"round": r, "max_lr": lr, "val_acc": 0.9 - abs(lr - target), "test_acc": 0.5,
                         "chosen": int(lr == round(target, 6)), "sparsity": s})  # fmt: skip
    (run / ".hydra").mkdir(parents=True)
    pd.DataFrame(rows).to_csv(run / "oracle.csv", index=False)
    schedule = {"name": "oracle", "policy": "grid", "shape": "triangular", "grid": [0.1], "base_lr": 0.005,
                "cycles_per_round": 1}  # fmt: skip
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"schedule": schedule, "seed": 0}))
    (run / "summary.json").write_text(json.dumps({"status": "complete", "schedule": "oracle"}))


def test_fit_scurve_recovers_the_curve_and_writes_a_schedule_that_builds(tmp_path):
    for seed in range(2):
        fake_oracle_run(tmp_path / "sweep" / f"{seed}_oracle", low=0.04, high=0.16, beta=3.0)
    report = _script("fit_scurve").main(
        [
            str(tmp_path / "sweep"),
            "--name",
            "fitted",
            "--conf-dir",
            str(tmp_path / "conf"),
            "--figure",
            str(tmp_path / "fit.png"),
        ]  # fmt: skip
    )
    assert report["runs"] == 2 and report["points"] == 24
    assert report["max_lr_low"] == pytest.approx(0.04, abs=2e-3)
    assert report["max_lr_high"] == pytest.approx(0.16, abs=5e-3)
    assert report["beta"] == pytest.approx(3.0, rel=0.15)
    assert report["spearman_rho"] > 0.9  # the choices rise with sparsity
    assert (tmp_path / "fit.png").stat().st_size > 10_000 and (tmp_path / "fit.json").exists()
    cfg = yaml.safe_load((tmp_path / "conf" / "fitted.yaml").read_text())
    assert cfg["policy"] == "scurve" and cfg["base_lr"] == 0.005 and cfg["name"] == "fitted"
    schedule = build_schedule(cfg)
    assert schedule.max_lr(0, 0.0) == pytest.approx(cfg["max_lr_low"])


def test_fit_scurve_without_oracle_runs_fails_clearly(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "fit_scurve.py"), str(tmp_path)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode != 0 and "no oracle.csv" in proc.stderr


def test_optuna_sweep_searches_the_scyc_knobs_and_the_figure_script_reads_it(tmp_path):
    sweep = tmp_path / "optuna"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2",
         "pruner.rounds=2", "train.epochs=1", "dataset.train_subset=1000", f"hydra.sweep.dir={sweep}",
         "wandb.mode=disabled", "progress=false", "analysis.figures=false"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(best["best_params"]) == {"schedule.beta", "schedule.max_lr_low", "schedule.max_lr_high"}
    trials = _script("plot_sensitivity").main([str(sweep), "--out", str(tmp_path / "sens.png")])
    assert len(trials) == 2 and trials["val_acc"].between(0, 1).all()
    assert trials["beta"].nunique() == 2  # the sweeper varied the knobs
    assert best["best_value"] == pytest.approx(trials["val_acc"].max())
    assert (tmp_path / "sens.png").exists() and (tmp_path / "sens.csv").exists()


# ------------------------------------------------------------------------------------------------
# gradscale: max_lr read from the measured gradient spread
GRADSCALE = ("schedule=gradscale", "pruner.rounds=4", "train.epochs=1", "dataset.train_subset=3000",
             "dataset.val_size=500", "deterministic=true", "schedule.population=all_zeroed")  # fmt: skip


@given(st.floats(1e-6, 1.0), st.floats(1e-6, 1.0), st.floats(0.0, 3.0), st.floats(0.05, 1.0), st.floats(1.0, 10.0))
def test_gradscale_factor_is_the_clipped_power_of_the_spread_ratio(ref, now, exponent, lo, hi):
    factor = scale_factor(ref, now, exponent, lo, hi)
    assert lo <= factor <= hi
    assert factor == pytest.approx(min(max((ref / now) ** exponent, lo), hi))


def test_gradscale_max_lr_follows_its_own_grad_stats_and_resumes_identically(tmp_path):
    from test_reliability import assert_same_outputs, popen_train, wait_for

    reference = tmp_path / "reference"
    run_train(reference, *GRADSCALE)
    cfg = yaml.safe_load((reference / ".hydra" / "config.yaml").read_text())["schedule"]
    stats = pd.read_csv(reference / "grad_stats.csv")
    start = stats[(stats["when"] == "start") & (stats["layer"] == "global") & (stats["population"] == "all_zeroed")]
    sigma = start.set_index("round")["std"]
    results = pd.read_csv(reference / "results.csv").set_index("round")
    for r, max_lr in results["max_lr"].items():
        factor = min(max((sigma[0] / sigma[r]) ** cfg["exponent"], cfg["min_factor"]), cfg["max_factor"])
        assert max_lr == pytest.approx(cfg["max_lr_dense"] * factor, rel=1e-12)
    assert results["max_lr"].nunique() > 1  # the measurement moved it

    killed = tmp_path / "killed"
    proc = popen_train(killed, *GRADSCALE)
    wait_for(proc, lambda: (killed / "checkpoints" / "round_02.pt").exists())
    proc.kill()
    proc.wait(timeout=60)
    run_train(killed, *GRADSCALE, "resume=true")
    assert_same_outputs(reference, killed)


def test_gradscale_without_the_measurement_is_refused_at_start_up(tmp_path):
    proc = run_train(tmp_path / "run", "schedule=gradscale", "analysis.grad_every_round=false", check=False)
    assert proc.returncode == 2 and "analysis.grad_every_round=true" in proc.stderr
    assert not (tmp_path / "run" / "results.csv").exists()
