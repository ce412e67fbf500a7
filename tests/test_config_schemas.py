"""One typed schema per option (issue 25, item 2): every pruner, model and data set composes against the schema
generated from its constructor, so Hydra refuses, at composition and naming the key, a key of another option and a
wrongly typed value; the train switches are typed once, and a run records them as YAML writes them."""

from __future__ import annotations

import dataclasses
import typing

import pytest
from hydra.errors import ConfigCompositionException

from scyc.cli import CONF, compose
from scyc.config import Config, DatasetConfig, ModelConfig, PrunerConfig, Switch, TrainConfig, option_schemas
from scyc.foundations.registry import ConfigError
from scyc.help import options

BASES = {"pruner": PrunerConfig, "model": ModelConfig, "dataset": DatasetConfig}
OPTIONS = [(group, name) for group in BASES for name in options(CONF, group)]
WRONG = {int: "abc", float: "abc", bool: "abc", list[int]: "abc", list[str]: "abc", list[float]: "abc"}


def keys(cls: type) -> dict[str, typing.Any]:
    """A schema's keys and their types (``X | None`` as ``X``)."""
    hints = typing.get_type_hints(cls)
    return {f.name: next((a for a in typing.get_args(hints[f.name]) if a is not type(None)), hints[f.name])
            for f in dataclasses.fields(cls)}  # fmt: skip


def composed_schema(group: str, name: str) -> type:
    section = getattr(compose([f"{group}={name}", "pruner.rounds=1"]), group)
    assert isinstance(section, BASES[group])
    return type(section)


def refusal(overrides: list[str]) -> str:
    with pytest.raises(ConfigCompositionException) as err:
        compose(overrides)
    return f"{err.value} {err.value.__cause__}"


@pytest.mark.parametrize("group, name", OPTIONS, ids=[f"{g}={n}" for g, n in OPTIONS])
def test_a_key_of_another_option_is_refused_at_composition(group, name):
    own = keys(composed_schema(group, name))
    others = {k for schema in option_schemas()[group].values() for k in keys(schema)} - set(own)
    assert others, f"{group}={name} has every key of its group"
    key = sorted(others)[0]
    message = refusal([f"{group}={name}", f"{group}.{key}=1"])
    assert f"{group}.{key}" in message, message


@pytest.mark.parametrize("group, name", OPTIONS, ids=[f"{g}={n}" for g, n in OPTIONS])
def test_a_wrongly_typed_key_is_refused_at_composition(group, name):
    """The option's own keys first (those its schema adds to the group's base), else a key every option has."""
    schema = composed_schema(group, name)
    base = keys(BASES[group])
    own = {k: t for k, t in keys(schema).items() if k not in base and t in WRONG}
    common = {k: t for k, t in base.items() if t in WRONG}
    key, hint = next(iter(own.items() or common.items()), (None, None))
    if key is None:  # a model without keys of its own: its name is its one key (a string: no wrong type)
        assert group == "model" and set(keys(schema)) == {"name", "extra"}
        return
    message = refusal([f"{group}={name}", f"{group}.{key}={WRONG[hint]}"])
    assert f"{group}.{key}" in message, message


def test_each_option_has_the_keys_of_its_constructor_and_its_groups():
    """snip's batches is snip's only (and an int); every pruner has the loop keys; a data set's ``root`` may be null."""
    snip = keys(composed_schema("pruner", "snip"))
    assert snip["batches"] is int and {f.name for f in dataclasses.fields(PrunerConfig)} <= set(snip)
    assert "seed" not in snip and "seed" in keys(composed_schema("pruner", "random"))
    assert "batches" not in keys(composed_schema("pruner", "global_magnitude"))
    assert keys(composed_schema("model", "resnet20")).keys() - keys(ModelConfig).keys() == {"width", "shortcut"}
    assert compose(["dataset=cifar10"]).dataset.root is None


def test_a_key_added_with_plus_that_the_option_lacks_is_refused_naming_it():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) pruner.seed; allowed: "):
        compose(["pruner=snip", "+pruner.seed=3"])


def test_the_train_switches_are_typed_and_recorded_as_written():
    cfg = compose(["train.eval_batch_size=512", "train.channels_last=true", "train.cuda_graphs=false"])
    assert (cfg.train.eval_batch_size, cfg.train.channels_last, cfg.train.cuda_graphs) == (512, Switch.ON, Switch.OFF)
    raw = cfg.raw["train"]  # what a checkpoint and the resume check hold: as YAML writes it, as before the typing
    assert (raw["eval_batch_size"], raw["channels_last"], raw["cuda_graphs"]) == (512, True, False)
    auto = compose([])
    assert (auto.train.eval_batch_size, auto.train.channels_last, auto.train.cuda_graphs) == (None, "auto", "auto")
    assert (auto.raw["train"]["eval_batch_size"], auto.raw["train"]["channels_last"]) == ("auto", "auto")
    assert Switch.AUTO.resolve(auto=True) and not Switch.OFF.resolve(auto=True) and Switch.ON.resolve(auto=False)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("eval_batch_size", "abc", "train.eval_batch_size=abc is not allowed: it must be auto or an int >= 1"),
        ("eval_batch_size", "0", "train.eval_batch_size=0 is not allowed: it must be auto or an int >= 1"),
        ("eval_batch_size", "true", "train.eval_batch_size=true is not allowed: it must be auto or an int >= 1"),
        ("channels_last", "maybe", "train.channels_last=maybe is not allowed: choose auto, true or false"),
        ("cuda_graphs", "1", "train.cuda_graphs=1 is not allowed: choose auto, true or false"),
    ],
)
def test_a_bad_train_switch_is_refused_in_one_line_naming_it(key, value, message):
    with pytest.raises(ConfigError) as err:
        compose([f"train.{key}={value}"])
    assert str(err.value) == message


def test_no_config_key_is_typed_any():
    """Every key of the schema Hydra composes against has a type OmegaConf checks (no ``Any``, ``extra`` excepted:
    a plug-in's own keys, which its class checks)."""
    from scyc.config import config_schema, schedule_schema

    schemas = [config_schema(), schedule_schema(), *(s for g in option_schemas().values() for s in g.values())]
    for schema in schemas:
        for f in dataclasses.fields(schema):
            if f.name != "extra" and not dataclasses.is_dataclass(typing.get_type_hints(schema)[f.name]):
                assert typing.Any not in (typing.get_type_hints(schema)[f.name],), (schema.__name__, f.name)
    assert {f.name for f in dataclasses.fields(TrainConfig)} == set(keys(config_schema())["train"].__dataclass_fields__)
    assert set(keys(Config)) == set(keys(config_schema()))


def test_the_dataset_base_holds_exactly_what_build_data_reads():
    """``DatasetConfig``'s keys are those ``build_data`` keeps for itself; every other key goes to the factory."""
    from scyc.data import COMMON_KEYS

    assert set(COMMON_KEYS) == {f.name for f in dataclasses.fields(DatasetConfig)} - {"extra"}


def test_hydra_config_yaml_records_the_train_switches_as_written(tmp_path):
    """.hydra/config.yaml (what the tables read) holds 512 and true, as before the schema held them as strings."""
    import yaml
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from scyc.config import register_configs
    from scyc.lifecycle import rundir

    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose("config", overrides=["train.eval_batch_size=512", "train.channels_last=true"])
    assert cfg.train.eval_batch_size == "512"  # the schema's string
    rundir.accept(tmp_path, cfg, overrides=["train.eval_batch_size=512", "train.channels_last=true"])
    train = yaml.safe_load((tmp_path / ".hydra" / "config.yaml").read_text())["train"]
    assert (train["eval_batch_size"], train["channels_last"], train["cuda_graphs"]) == (512, True, "auto")
