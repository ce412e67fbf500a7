"""The S-curve and the triangular cycle against their closed forms."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scyc.foundations.registry import ConfigError
from scyc.schedules import build_schedule, s_curve


def lr_trace(schedule, max_lr: float, steps: int, steps_per_epoch: int | None = None) -> list[float]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=123.0)
    sched = schedule.build_round(opt, max_lr, steps, steps_per_epoch or steps)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_s_curve_ends_and_midpoint():
    for beta in (0.5, 1.0, 5.0, 20.0):
        assert s_curve(0.0, beta) == 0.0
        assert s_curve(1.0, beta) == 1.0
        assert s_curve(0.5, beta) == pytest.approx(0.5)


@given(
    s=st.floats(min_value=1e-6, max_value=1 - 1e-6),
    beta=st.floats(min_value=0.1, max_value=50),
)
def test_s_curve_formula_and_symmetry(s, beta):
    expected = 1.0 / (1.0 + (s / (1.0 - s)) ** (-beta)) if (s / (1 - s)) ** (-beta) < 1e300 else 0.0
    assert s_curve(s, beta) == pytest.approx(expected, abs=1e-12)
    assert s_curve(s, beta) + s_curve(1 - s, beta) == pytest.approx(1.0)


@given(
    a=st.floats(min_value=0.0, max_value=1.0),
    b=st.floats(min_value=0.0, max_value=1.0),
    beta=st.floats(min_value=0.1, max_value=50),
)
def test_s_curve_monotone(a, b, beta):
    lo, hi = min(a, b), max(a, b)
    assert s_curve(lo, beta) <= s_curve(hi, beta)


def scyc(**kw):
    cfg = dict(name="scyc", policy="scurve", shape="triangular", max_lr_low=0.04, max_lr_high=0.1, beta=5.0,
               base_lr=0.004, cycles_per_round=1)  # fmt: skip
    cfg.update(kw)
    return build_schedule(cfg)


@given(s=st.floats(min_value=0.0, max_value=0.999), beta=st.floats(min_value=0.5, max_value=10))
def test_scurve_policy_matches_formula(s, beta):
    sched = scyc(beta=beta)
    expected = 0.04 + 0.06 * s_curve(s, beta)
    assert sched.max_lr(3, s) == pytest.approx(expected, rel=1e-12)
    assert 0.04 <= sched.max_lr(3, s) <= 0.1


@settings(max_examples=40, deadline=None)
@given(
    steps=st.integers(min_value=2, max_value=400),
    base=st.floats(min_value=0.0, max_value=0.01),
    peak=st.floats(min_value=0.02, max_value=1.0),
)
def test_triangle_closed_form(steps, base, peak):
    sched = scyc(base_lr=base)
    trace = lr_trace(sched, peak, steps)
    half = steps / 2
    for t, lr in enumerate(trace):
        expected = base + (peak - base) * max(0.0, 1.0 - abs(t / half - 1.0))
        assert lr == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert max(trace) <= peak + 1e-12
    assert trace[0] == pytest.approx(base)


@pytest.mark.parametrize(
    "kw, word",
    [
        ({"max_lr_low": 0.2, "max_lr_high": 0.1}, "max_lr"),
        ({"beta": -1.0}, "beta"),
        ({"beta": 0.0}, "beta"),
        ({"max_lr_low": -0.1}, "max_lr_low"),
        ({"base_lr": -1.0}, "base_lr"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_schedule_input(kw, word):
    with pytest.raises(ConfigError, match=word):
        scyc(**kw)


def test_constant_schedule_is_flat():
    sched = build_schedule(dict(name="constant", policy="constant", shape="constant", lr=0.03))
    assert sched.max_lr(0, 0.0) == sched.max_lr(7, 0.9) == 0.03
    assert set(lr_trace(sched, 0.03, 57)) == {0.03}
    assert not math.isnan(sched.max_lr(1, 0.5))


def test_the_schedule_schema_is_every_pieces_constructor_keys_typed():
    """The composed schedule section's schema is generated from the pieces' signatures (no list kept by hand): each
    piece's keyword parameters are there, typed by their annotations, null unless set."""
    from dataclasses import MISSING, fields

    from scyc.config import schedule_schema
    from scyc.foundations.schema import keyword_params
    from scyc.schedules.policies import POLICIES
    from scyc.schedules.shapes import SHAPES

    schema = {f.name: f for f in fields(schedule_schema())}
    for registry in (POLICIES, SHAPES):
        for name in registry.names():
            for key in keyword_params(registry.get(name)):
                assert key in schema and schema[key].default is None, (registry.kind, name, key)
    assert {"name", "policy", "shape", "lag_rounds", "extra"} <= set(schema)
    assert schema["beta"].type == (float | None) and schema["milestones"].type == (list[float] | None)
    assert schema["policy"].default is MISSING


def test_two_pieces_that_type_one_key_differently_are_refused_when_the_schema_is_made():
    from scyc.config import ScheduleConfig
    from scyc.foundations.schema import union_schema

    class A:
        def __init__(self, gamma: float) -> None: ...

    class B:
        def __init__(self, gamma: int) -> None: ...

    with pytest.raises(TypeError, match="schedule.gamma is .*float.* for shape a but .*int.* for shape b"):
        union_schema(ScheduleConfig, {"shape a": A, "shape b": B})


def test_a_schedule_key_is_refused_by_type_and_by_piece():
    """A wrongly typed value: Hydra, at composition; a key no piece takes, added with +: load; a key of a piece not
    in use: one line from build_schedule, naming the key."""
    from hydra.errors import ConfigCompositionException

    from scyc.cli import compose

    with pytest.raises(ConfigCompositionException) as err:
        compose(["schedule=scyc", "schedule.beta=abc"])
    assert "schedule.beta" in str(err.value) + str(err.value.__cause__)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) schedule.no_such_key"):  # + adds it: load refuses it
        compose(["schedule=scyc", "+schedule.no_such_key=1"])
    with pytest.raises(ConfigError, match=r"key\(s\) gamma are used by neither policy 'scurve' nor shape 'triangular'"):
        build_schedule(compose(["schedule=scyc", "schedule.gamma=0.5"]).schedule.options())


def test_registry_turns_a_key_the_factory_does_not_take_into_a_config_error():
    from scyc.pruning import PRUNERS

    with pytest.raises(ConfigError, match=r"pruner 'lamp': unknown key: .*'batches'"):
        PRUNERS.build("lamp", {"batches": 2}, key="pruner")
    with pytest.raises(ConfigError, match=r"schedule.policy 'grid': missing key: .*'grid'"):
        build_schedule({"name": "g", "policy": "grid", "shape": "constant"})


def test_registry_tells_a_config_key_from_a_bug_inside_the_factory_also_through_a_decorator():
    import functools

    from scyc.foundations.registry import Registry

    def logged(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)

        return wrapper

    def plain(rate: float) -> float:
        return rate

    def buggy(rate: float) -> float:
        return plain(rate=rate, oops=1)  # a bug: a TypeError raised inside the body

    registry = Registry("pruner")
    for name, factory in [("plain", plain), ("wrapped", logged(plain))]:
        registry.register(name)(factory)
        assert registry.build(name, {"rate": 0.2}) == 0.2
        with pytest.raises(ConfigError, match=rf"pruner '{name}': unknown key: .*'bogus'"):
            registry.build(name, {"rate": 0.2, "bogus": 1})
        with pytest.raises(ConfigError, match=rf"pruner '{name}': missing key: .*'rate'"):
            registry.build(name, {})
    for name, factory in [("buggy", buggy), ("wrapped_buggy", logged(buggy))]:
        registry.register(name)(factory)
        with pytest.raises(TypeError, match="oops"):  # not a ConfigError: nothing is wrong with the config
            registry.build(name, {"rate": 0.2})
