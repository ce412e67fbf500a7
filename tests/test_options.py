"""Every option of every config group composes and builds from exactly its YAML, and no Python default restates
(or contradicts) a value that YAML sets: conf/ is the one home of defaults (issue 25, items 3 and 8)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch

from scyc.cli import CONF, compose
from scyc.data import COMMON_KEYS, DATASETS, build_data
from scyc.foundations.schema import keyword_params
from scyc.help import options
from scyc.lifecycle.rundir import config_differences
from scyc.models import MODELS, create_model
from scyc.pruning import PRUNERS
from scyc.schedules import POLICIES, SHAPES, build_schedule

GROUPS = ("schedule", "pruner", "model", "dataset")
OPTIONS = [(group, name) for group in GROUPS for name in options(CONF, group)]
DATA_ON_DISK = ("fashion_mnist",)  # the data sets `make data` fetches; the others are checked, not read
SHAPE = {"fashion_mnist": (10, 1, (28, 28)), "cifar10": (10, 3, (32, 32)), "imagenet200": (200, 3, (64, 64))}


def constructor_params(factory) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(factory).parameters)


def pieces(group: str, name: str):
    """(the composed group section, [(constructor, the keys the YAML gives it)]) of one option."""
    section = getattr(compose([f"{group}={name}", "pruner.rounds=1"]), group)
    if group == "schedule":
        keys = section.options()
        policy, shape = POLICIES.get(keys["policy"]), SHAPES.get(keys["shape"])
        return section, [(cls, {k: v for k, v in keys.items() if k in keyword_params(cls)}) for cls in (policy, shape)]
    if group == "pruner":
        return section, [(PRUNERS.get(section.name), section.pruner_options())]
    if group == "model":
        factory = MODELS.get(section.name) if section.name in MODELS else None
        if factory is None:  # a timm name (model=timm, model=resnet50)
            from scyc.models.timm_models import timm_model as factory
        return section, [(factory, section.options())]
    return section, [(DATASETS.get(section.name), section.options(*COMMON_KEYS))]


@pytest.mark.parametrize("group, name", OPTIONS, ids=[f"{g}={n}" for g, n in OPTIONS])
def test_no_python_default_restates_a_yaml_value(group, name):
    """A constructor parameter that the option's YAML sets has no default of its own (a None default, meaning
    "unset", excepted): the YAML's value is the only one, and no Python value can differ from it or shadow it."""
    _, built = pieces(group, name)
    for factory, keys in built:
        params = constructor_params(factory)
        restated = {
            k: params[k].default
            for k in keys
            if k in params and params[k].default is not inspect.Parameter.empty and params[k].default is not None
        }
        assert not restated, f"{group}={name}: {factory.__qualname__} restates YAML key(s) {restated} (YAML: {keys})"


@pytest.mark.parametrize("group, name", OPTIONS, ids=[f"{g}={n}" for g, n in OPTIONS])
def test_every_option_composes_and_builds_from_its_yaml(group, name):
    section, built = pieces(group, name)
    if group == "schedule":
        schedule = build_schedule(section.options())
        assert schedule.lag_rounds == section.lag_rounds
        peak = schedule.policy.lowest() or 0.1  # every policy here knows its lowest max_lr
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
        lrs = [group["lr"] for group in optimizer.param_groups]
        scheduler = schedule.build_round(optimizer, peak, 20, 5)
        for _ in range(20):
            optimizer.step()
            scheduler.step()
        assert lrs and 0 <= optimizer.param_groups[0]["lr"] <= peak
    elif group == "pruner":
        assert PRUNERS.build(section.name, section.pruner_options(), key="pruner").rate == section.rate
    elif group == "model":
        classes, channels, size = SHAPE["imagenet200" if name in ("resnet50",) else "cifar10"]
        model = create_model(section.name, num_classes=classes, in_channels=channels, image_size=size,
                             **section.options())  # fmt: skip
        assert model(torch.zeros(2, channels, *size)).shape == (2, classes)
    elif name in DATA_ON_DISK:
        data = build_data({"name": section.name, **section.options()}, torch.device("cpu"), str(CONF.parent / "data"))
        assert len(data.val[0]) == section.val_size and data.num_classes == SHAPE[name][0]
    else:  # no files here: every key of its YAML binds to the factory, and nothing it needs is missing
        factory, keys = built[0]
        inspect.signature(factory).bind(**keys, data_dir="data")


def test_the_loop_keys_and_lag_rounds_live_in_config_yaml_only():
    """rate, rounds, reset, ... once for every pruner; lag_rounds once for every schedule."""
    loop = ("rate", "rounds", "reset", "rewind_epoch", "exclude", "min_remaining")
    for path in (CONF / "pruner").glob("*.yaml"):
        text = path.read_text()
        assert not [k for k in loop if f"\n{k}:" in text], path.name
    for path in (CONF / "schedule").glob("*.yaml"):
        assert "lag_rounds:" not in path.read_text(), path.name
    cfg = compose(["pruner=snip", "schedule=oracle"])
    assert (cfg.pruner.rate, cfg.pruner.rounds, cfg.pruner.batches, cfg.schedule.lag_rounds) == (0.2, 10, 1, 0)


def test_gradscale_ceiling_is_the_yaml_one():
    """The YAML's max_factor=3.0 is the one (the Python default 4.0 that disagreed with it is gone)."""
    schedule = build_schedule(compose(["schedule=gradscale"]).schedule.options())
    assert schedule.policy.max_factor == 3.0 and schedule.policy.bounds() == pytest.approx((0.025, 0.15))
    assert constructor_params(type(schedule.policy))["max_factor"].default is inspect.Parameter.empty


def test_an_old_runs_null_lag_rounds_still_resumes():
    """Runs written before lag_rounds had its YAML default hold null there: it meant 0, and still does."""
    old, now = {"schedule": {"lag_rounds": None}}, {"schedule": {"lag_rounds": 0}}
    assert config_differences(old, now) == []
    assert config_differences(old, {"schedule": {"lag_rounds": 1}}) == [
        "schedule.lag_rounds: None in the checkpoint, 1 now"
    ]


def test_an_old_runs_null_lag_rounds_is_the_same_table_row():
    """The tables compare runs as the resume check does: an older copy of a run (lag_rounds null) and the run
    written today (0) are the same run, so one of them is a duplicate, never a second seed."""
    from scyc.sweep.tables import _identity

    old, now = {"schedule": {"lag_rounds": None, "name": "scyc"}}, {"schedule": {"lag_rounds": 0, "name": "scyc"}}
    assert _identity(old, {}, 0) == _identity(now, {}, 0)
    assert _identity(old, {}, 0) != _identity({"schedule": {"lag_rounds": 1, "name": "scyc"}}, {}, 0)
    # a run written before the per-option schemas holds the other options' keys, null: the same run
    before = {"schedule": {"lag_rounds": 0, "name": "scyc"}, "pruner": {"name": "lamp", "batches": None, "seed": None}}
    assert _identity(before, {}, 0) == _identity({**now, "pruner": {"name": "lamp"}}, {}, 0)


def test_options_cover_every_group_file():
    assert {g for g, _ in OPTIONS} == set(GROUPS)
    assert len(OPTIONS) == sum(len(list((CONF / g).rglob("*.yaml"))) for g in GROUPS)
    assert Path(CONF).is_dir()
