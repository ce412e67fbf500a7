"""The schedule family: every shape against its closed form, the options' traces, bad input, composition."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scyc.config import register_configs
from scyc.foundations.registry import ConfigError
from scyc.schedules import build_schedule
from scyc.schedules.simulate import pruning_sparsities, round_trace, simulate

ROOT = Path(__file__).resolve().parents[1]
OPTIONS = sorted(p.stem for p in (ROOT / "conf" / "schedule").glob("*.yaml"))
EPS = 1e-9


def compose_cfg(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def schedule_of(*overrides: str):
    from omegaconf import OmegaConf

    return build_schedule(OmegaConf.to_container(compose_cfg(*overrides).schedule, resolve=True))


def shape_keys(shape: str) -> dict:
    """The keys of ``shape`` as the first shipped option that uses it sets them (YAML is the home of defaults)."""
    from omegaconf import OmegaConf

    from scyc.foundations.schema import keyword_params
    from scyc.schedules import SHAPES

    keys = keyword_params(SHAPES.get(shape))
    for path in sorted((ROOT / "conf" / "schedule").glob("*.yaml")):
        option = OmegaConf.to_container(OmegaConf.load(path))
        if option.get("shape") == shape:
            return {k: option[k] for k in keys if k in option}
    return {}


def make(policy="constant", shape="constant", **kw):
    """A schedule of ``policy`` x ``shape``: the keys given, the shape's others as its shipped YAML sets them."""
    if policy == "constant" and "lr" not in kw and "max_lr" not in kw:
        kw["max_lr"] = 0.1
    return build_schedule({"name": "t", "policy": policy, "shape": shape, **shape_keys(shape), **kw})


def decays(t: int, milestones, total: int) -> int:
    return sum(t >= m * total - EPS for m in milestones)


milestone_lists = st.lists(st.floats(min_value=0.01, max_value=0.99), min_size=0, max_size=4, unique=True).map(sorted)


# ------------------------------------------------------------------------------------------ closed forms
@settings(max_examples=40, deadline=None)
@given(
    steps=st.integers(min_value=1, max_value=400),
    cycles=st.integers(min_value=1, max_value=5),
    base=st.floats(min_value=0.0, max_value=0.01),
    peak=st.floats(min_value=0.02, max_value=1.0),
)
def test_triangular_cycles_closed_form(steps, cycles, base, peak):
    trace = round_trace(make(shape="triangular", base_lr=base, cycles_per_round=cycles), peak, steps, steps)
    half = steps / (2 * cycles)
    for t, lr in enumerate(trace):
        expected = base + (peak - base) * (1 - abs((t / half) % 2 - 1))
        assert lr == pytest.approx(expected, rel=1e-6, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    steps=st.integers(min_value=1, max_value=400),
    milestones=milestone_lists,
    gamma=st.floats(min_value=0.01, max_value=1.0),
    peak=st.floats(min_value=1e-3, max_value=1.0),
)
def test_step_decay_closed_form(steps, milestones, gamma, peak):
    trace = round_trace(make(shape="step_decay", milestones=milestones, gamma=gamma), peak, steps, steps)
    for t, lr in enumerate(trace):
        assert lr == pytest.approx(peak * gamma ** decays(t, milestones, steps), rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    steps=st.integers(min_value=1, max_value=400),
    warmup=st.floats(min_value=0.0, max_value=0.99),
    milestones=milestone_lists,
    gamma=st.floats(min_value=0.01, max_value=1.0),
    peak=st.floats(min_value=1e-3, max_value=1.0),
)
def test_warmup_step_decay_closed_form(steps, warmup, milestones, gamma, peak):
    sched = make(shape="warmup_step_decay", warmup_fraction=warmup, milestones=milestones, gamma=gamma)
    trace = round_trace(sched, peak, steps, steps)
    w = math.ceil(warmup * steps - EPS)
    for t, lr in enumerate(trace):
        rise = min(1.0, (t + 1) / w) if w > 0 else 1.0
        assert lr == pytest.approx(peak * rise * gamma ** decays(t, milestones, steps), rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(
    epochs=st.integers(min_value=1, max_value=6),
    steps_per_epoch=st.integers(min_value=1, max_value=60),
    t0=st.integers(min_value=1, max_value=3),
    t_mult=st.integers(min_value=1, max_value=3),
    eta_min=st.floats(min_value=0.0, max_value=1e-3),
    peak=st.floats(min_value=1e-2, max_value=1.0),
)
def test_cosine_restarts_closed_form(epochs, steps_per_epoch, t0, t_mult, eta_min, peak):
    sched = make(shape="cosine_restarts", t0_epochs=t0, t_mult=t_mult, eta_min=eta_min, fit_round=False)
    trace = round_trace(sched, peak, epochs * steps_per_epoch, steps_per_epoch)
    for t, lr in enumerate(trace):
        t_cur, t_i = t, t0 * steps_per_epoch
        while t_cur >= t_i:
            t_cur, t_i = t_cur - t_i, t_i * t_mult
        expected = eta_min + (peak - eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2
        assert lr == pytest.approx(expected, rel=1e-9, abs=1e-12)


def _anneal(start, end, pct, strategy):
    if strategy == "cos":
        return end + (start - end) / 2 * (1 + math.cos(math.pi * pct))
    return start + (end - start) * pct


@settings(max_examples=40, deadline=None)
@given(
    steps=st.integers(min_value=4, max_value=400),
    pct=st.floats(min_value=0.05, max_value=0.95),
    div=st.floats(min_value=1.0, max_value=100.0),
    final_div=st.floats(min_value=1.0, max_value=1e4),
    strategy=st.sampled_from(["cos", "linear"]),
    three_phase=st.booleans(),
    peak=st.floats(min_value=1e-2, max_value=1.0),
)
def test_one_cycle_closed_form(steps, pct, div, final_div, strategy, three_phase, peak):
    assume(pct * steps >= 2 and (not three_phase or pct < 0.5))
    sched = make(
        shape="one_cycle", pct_start=pct, div_factor=div, final_div_factor=final_div, anneal_strategy=strategy,
        three_phase=three_phase,
    )  # fmt: skip
    trace = round_trace(sched, peak, steps, steps)
    initial, low = peak / div, peak / div / final_div
    if three_phase:
        phases = [(pct * steps - 1, initial, peak), (2 * pct * steps - 2, peak, initial), (steps - 1, initial, low)]
    else:
        phases = [(pct * steps - 1, initial, peak), (steps - 1, peak, low)]
    for t, lr in enumerate(trace):
        start = 0.0
        for i, (end, a, b) in enumerate(phases):
            if t <= end or i == len(phases) - 1:
                expected = _anneal(a, b, (t - start) / (end - start), strategy)
                break
            start = end
        assert lr == pytest.approx(expected, rel=1e-6, abs=1e-12)


# ------------------------------------------------------------------------------------ the options' traces
def run_trace(option: str, *overrides: str, rounds=4, rate=0.2, epochs=3, steps_per_epoch=20) -> pd.DataFrame:
    sched = schedule_of(f"schedule={option}", *overrides)
    return pd.DataFrame(simulate(sched, pruning_sparsities(rounds, rate), epochs, steps_per_epoch))


@pytest.mark.parametrize("option", ["cyclic", "scyc"])
def test_one_triangle_per_round_peaking_mid_round(option):
    df = run_trace(option, epochs=2, steps_per_epoch=25)  # 50 steps per round
    for _, g in df.groupby("round"):
        lrs = g["lr"].to_numpy()
        peak = int(lrs.argmax())
        assert peak == 25
        assert lrs[peak] == pytest.approx(g["max_lr"].iloc[0])
        assert (lrs[1 : peak + 1] > lrs[:peak]).all() and (lrs[peak + 1 :] < lrs[peak:-1]).all()
    peaks = df.groupby("round")["lr"].max().to_numpy()
    if option == "cyclic":
        assert peaks == pytest.approx([0.1] * 4)
    else:  # the S-curve envelope rises with sparsity
        assert (peaks[1:] > peaks[:-1]).all()


@pytest.mark.parametrize("cycles", [1, 2, 3])
def test_scyc_cycles_per_round(cycles):
    df = run_trace("scyc", f"schedule.cycles_per_round={cycles}", epochs=3, steps_per_epoch=20)  # 60 steps
    for _, g in df.groupby("round"):
        lrs = g["lr"].to_numpy()
        local_peaks = [t for t in range(1, len(lrs) - 1) if lrs[t - 1] < lrs[t] > lrs[t + 1]]
        assert local_peaks == [round((2 * j + 1) * 60 / (2 * cycles)) for j in range(cycles)]
        assert lrs.max() == pytest.approx(g["max_lr"].iloc[0])


def test_lr_rewind_restarts_every_round_at_one_lr_and_never_rises():
    df = run_trace("lr_rewind")
    starts = df.groupby("round")["lr"].first()
    assert starts.nunique() == 1 and starts.iloc[0] == pytest.approx(0.1)
    for _, g in df.groupby("round"):
        assert (g["lr"].diff().dropna() <= 0).all()
        assert sorted(set(g["lr"].round(12))) == pytest.approx([0.001, 0.01, 0.1])


def test_sgdr_restarts_inside_a_round():
    df = run_trace("sgdr", "schedule.t0_epochs=1", "schedule.t_mult=1", epochs=3, steps_per_epoch=20)
    for _, g in df.groupby("round"):
        rises = (g["lr"].diff().dropna() > 0).to_numpy().nonzero()[0] + 1
        assert list(rises) == [20, 40]  # a warm restart at the start of epochs 1 and 2
        assert g["lr"].iloc[[0, 20, 40]].to_numpy() == pytest.approx([0.1] * 3)


def test_constant_is_flat_and_warmup_rises_then_decays():
    assert set(run_trace("constant")["lr"]) == {0.05}
    df = run_trace("warmup", epochs=2, steps_per_epoch=50)  # 100 steps, warmup 10
    g = df[df["round"] == 0]["lr"].to_numpy()
    assert g[:10] == pytest.approx([0.01 * (t + 1) for t in range(10)])
    assert g[10:50] == pytest.approx([0.1] * 40) and g[50:75] == pytest.approx([0.01] * 25)


def test_silo_is_warmup_step_decay_under_the_s_curve():
    df = run_trace("silo", rounds=6)
    peaks = df.groupby("round")["lr"].max().to_numpy()
    assert (peaks[1:] > peaks[:-1]).all()
    scyc = run_trace("scyc", rounds=6).groupby("round")["max_lr"].first().to_numpy()
    assert peaks == pytest.approx(scyc)


def test_oracle_traces_every_grid_value():
    df = run_trace("oracle", "schedule.grid=[0.02,0.1]", rounds=2)
    assert sorted(df["max_lr"].unique()) == [0.02, 0.1]
    assert df.groupby(["round", "candidate"])["lr"].max().to_numpy() == pytest.approx([0.02, 0.1] * 2)


@pytest.mark.parametrize("option", OPTIONS)
def test_every_option_composes_and_builds(option):
    sched = schedule_of(f"schedule={option}")
    # scyc_<preset> is S-Cyc with a paper preset's bounds: it keeps the name, so tables find their S-Cyc row
    assert sched.name == ("scyc" if option.startswith("scyc_") else option)
    if hasattr(sched.policy, "observe"):  # gradscale: a max_lr exists once the round's gradients are measured
        sched.policy.observe(0, {"std": 1e-3, "abs_mean": 1e-3, "p25": -1e-3, "p75": 1e-3})
    assert len(sched.candidates(0, [0.0])) >= 1


def test_documented_command_line_composition():
    """The README's example: S-Cyc's envelope with a step-decay shape, composed from the command line."""
    sched = schedule_of(
        "schedule=scyc", "schedule.shape=step_decay", "schedule.base_lr=null", "schedule.cycles_per_round=null",
        "+schedule.milestones=[0.5,0.75]", "+schedule.gamma=0.2",
    )  # fmt: skip
    trace = round_trace(sched, 0.1, 40, 20)
    assert trace[0] == pytest.approx(0.1) and trace[-1] == pytest.approx(0.1 * 0.2**2)
    with pytest.raises(ConfigError, match=r"schedule.base_lr=null"):
        schedule_of("schedule=scyc", "schedule.shape=step_decay")


# ------------------------------------------------------------------------------------------- bad input
BAD = [
    ({"shape": "constant", "lr": -0.1}, "schedule.lr"),
    ({"shape": "constant", "max_lr": -1.0}, "schedule.max_lr"),
    ({"shape": "constant", "lr": 0.1, "max_lr": 0.1}, "exactly one"),
    ({"shape": "constant", "lr": None}, "exactly one"),
    ({"shape": "triangular", "base_lr": -0.01}, "schedule.base_lr"),
    ({"shape": "triangular", "base_lr": 0.5}, "schedule.base_lr"),  # above max_lr
    ({"shape": "triangular", "base_lr": 0.01, "cycles_per_round": 0}, "schedule.cycles_per_round"),
    ({"shape": "step_decay", "milestones": [0.0, 0.5]}, "schedule.milestones"),
    ({"shape": "step_decay", "milestones": [0.5, 1.0]}, "schedule.milestones"),
    ({"shape": "step_decay", "milestones": [0.75, 0.5]}, "schedule.milestones"),
    ({"shape": "step_decay", "milestones": [0.5, 0.5]}, "schedule.milestones"),
    ({"shape": "step_decay", "milestones": 0.5}, "schedule.milestones"),
    ({"shape": "step_decay", "gamma": 0.0}, "schedule.gamma"),
    ({"shape": "step_decay", "gamma": 2.0}, "schedule.gamma"),
    ({"shape": "warmup_step_decay", "warmup_fraction": 1.0}, "schedule.warmup_fraction"),
    ({"shape": "warmup_step_decay", "warmup_fraction": -0.1}, "schedule.warmup_fraction"),
    ({"shape": "cosine_restarts", "t0_epochs": 0}, "schedule.t0_epochs"),
    ({"shape": "cosine_restarts", "t0_epochs": 0.5}, "schedule.t0_epochs"),
    ({"shape": "cosine_restarts", "t_mult": 0}, "schedule.t_mult"),
    ({"shape": "cosine_restarts", "eta_min": -1e-3}, "schedule.eta_min"),
    ({"shape": "cosine_restarts", "eta_min": 1.0}, "schedule.eta_min"),
    ({"shape": "one_cycle", "pct_start": 1.0}, "schedule.pct_start"),
    ({"shape": "one_cycle", "pct_start": 0.6, "three_phase": True}, "schedule.pct_start"),
    ({"shape": "one_cycle", "div_factor": 0.5}, "schedule.div_factor"),
    ({"shape": "one_cycle", "anneal_strategy": "cosine"}, "schedule.anneal_strategy"),
    ({"policy": "scurve", "max_lr_low": 0.2, "max_lr_high": 0.1, "beta": 5}, "max_lr_low"),
    ({"policy": "scurve", "max_lr_low": 0.05, "max_lr_high": 0.1, "beta": 0}, "schedule.beta"),
    ({"policy": "scurve", "max_lr_low": 0.05, "max_lr_high": 0.1, "beta": -2}, "schedule.beta"),
    ({"policy": "scurve", "max_lr_low": -0.05, "max_lr_high": 0.1, "beta": 5}, "schedule.max_lr_low"),
    ({"policy": "grid", "grid": []}, "schedule.grid"),
    ({"policy": "grid", "grid": [0.1, -0.1]}, "schedule.grid"),
    ({"policy": "grid", "grid": [0.1, 0.0]}, "schedule.grid"),
    ({"policy": "grid", "grid": [0.1, 0.1]}, "schedule.grid"),
    ({"policy": "grid", "grid": 0.1}, "schedule.grid"),
    ({"policy": "grid", "grid": [0.1], "shape": "triangular", "base_lr": 0.2}, "schedule.base_lr"),
    ({"shape": "step_decay", "base_lr": 0.01}, "schedule.base_lr=null"),
]


@pytest.mark.parametrize("kw, key", BAD, ids=[f"{k}-{i}" for i, (_, k) in enumerate(BAD)])
def test_bad_schedule_input_names_the_key(kw, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        make(**kw)


def test_one_cycle_refuses_a_round_too_short_for_its_rise():
    sched = make(shape="one_cycle", pct_start=0.3)
    with pytest.raises(ConfigError, match="pct_start"):
        round_trace(sched, 0.1, 5, 5)


# ---------------------------------------------------------------------------- every option, really trained
@pytest.mark.slow  # ~5-10 s of CPU per option, mostly data loading and evaluation
@pytest.mark.parametrize("option", OPTIONS)
def test_every_option_trains_a_tiny_run(option, tmp_path):
    from scyc.cli import build_run, run_rounds

    extra = {"sgdr": ["schedule.t0_epochs=1", "schedule.t_mult=1"], "oracle": ["schedule.grid=[0.01,0.05]"]}
    cfg = compose_cfg(
        f"schedule={option}", "pruner.rounds=2", "train.epochs=2", "dataset.train_subset=600", "dataset.val_size=500",
        "wandb.mode=disabled", "progress=false", *extra.get(option, []),
    )  # fmt: skip
    summary = run_rounds(build_run(cfg, tmp_path))
    assert summary["status"] == "complete"
    trace = pd.read_csv(tmp_path / "lr_trace.csv")
    steps = 2 * (600 // 128)
    assert trace["step"].tolist() == list(range(2 * steps))  # the path taken: one round of steps per round
    results = pd.read_csv(tmp_path / "results.csv")
    assert results["round"].tolist() == [0, 1]
    for r, g in trace.groupby("round"):
        assert g["lr"].max() <= results.loc[r, "max_lr"] + 1e-12
    assert (tmp_path / "oracle.csv").exists() == (option == "oracle")


# ------------------------------------------------------------------------------------------- the figure
def test_plot_schedules_writes_one_figure(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("plot_schedules", ROOT / "scripts" / "plot_schedules.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "lr.png"
    args = ["schedule=scyc,lr_rewind,oracle", "pruner.rounds=3", "train.epochs=2", "--steps-per-epoch", "10"]
    assert module.main([*args, "--out", str(out)]) == out
    assert out.stat().st_size > 10_000 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().out.strip() == str(out)
    with pytest.raises(SystemExit, match="t0_epochs"):
        module.main(["schedule=scyc", "schedule.t0_epochs=0", "--steps-per-epoch", "10", "--out", str(out)])
