"""scripts/tune.py at toy size: the grid runs, the chosen values as composable YAMLs, the table, a resumed re-run."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pandas as pd
import pytest
import yaml
from conftest import ROOT
from hydra import compose, initialize_config_dir

from scyc.config import register_configs


def _tune():
    spec = importlib.util.spec_from_file_location("tune", ROOT / "scripts" / "tune.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", [p.stem for p in (ROOT / "conf" / "tuning").glob("*.yaml")])
def test_shipped_settings_have_equal_grids_that_compose(name):
    tune = _tune()
    setting, _ = tune.load_setting(name)
    assert not set(setting["seeds"]) & {0, 1, 2, 3, 4, 5}  # disjoint from the reporting seeds
    base = {"scurve_fit": {"max_lr_low": 0.046, "max_lr_high": 0.072}, "scyc": {"max_lr_low": 0.05}}
    sizes = {s: len(tune.points(setting, s, base)) for s in tune.TABLE}
    assert set(sizes.values()) == {len(setting["peaks"])}, sizes  # the same grid size for every schedule
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for s, option in ({s: s for s in _tune().TABLE} | setting.get("options", {})).items():
            assert compose("config", overrides=[*setting["overrides"], f"schedule={option}"]).schedule.name == s


def test_the_main_setting_tunes_on_full_runs_over_the_deep_rounds_on_one_shared_grid():
    tune = _tune()
    setting, _ = tune.load_setting("fmnist_lenet300")
    assert (
        setting["rounds"] == 32 and setting["score"] == {"min_sparsity": 0.98} and setting["metric"] == "best_val_acc"
    )
    assert {0.15, 0.2} <= set(setting["peaks"])
    base = {"scurve_fit": {"max_lr_low": 0.046, "max_lr_high": 0.072}}
    for s in tune.TABLE:  # every schedule's top LR is a point of the shared grid
        tops = [
            p.get("max_lr_high", p.get("lr", p.get("max_lr", p.get("max_lr_dense"))))
            for p in tune.points(setting, s, base)
        ]
        assert tops == setting["peaks"], s
    assert [p["max_lr_low"] for p in tune.points(setting, "scyc", base)][4] == pytest.approx(0.05)  # 0.15 / 3
    assert tune.expected_rounds(setting["score"], 32, 0.2) == 14  # rounds 18-31: sparsity >= 98 %


def test_the_resnet20_preset_is_the_resnet20_tuning_setting():
    """make reproduce-table-resnet20 runs +experiment=fmnist_resnet20; make tune SETTING=fmnist_resnet20 runs the
    setting's overrides and its rounds: the two must be one experiment (tuned where it is judged)."""
    from omegaconf import OmegaConf

    tune = _tune()
    setting, _ = tune.load_setting("fmnist_resnet20")
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        tuned = compose("config", overrides=[*setting["overrides"], f"pruner.rounds={setting['rounds']}"])
        preset = compose("config", overrides=["+experiment=fmnist_resnet20"])
    assert OmegaConf.to_container(tuned) == OmegaConf.to_container(preset)
    assert (preset.model.name, preset.model.shortcut, preset.pruner.rate) == ("resnet20", "B", 0.2)
    assert tune.expected_rounds(setting["score"], 24, 0.2) == 10  # rounds 14-23: sparsity >= 95 %


@pytest.mark.parametrize(("setting", "says"), [
    ("nosuch", "setting 'nosuch': no file"),
    ({"rounds": "x"}, "rounds must be an integer >= 1, got 'x'"),
    ({"peaks": [0.05, -0.1]}, "peaks must be a non-empty list of positive learning rates"),
    ({"overrides": ["nosuch.key=1"]}, "do not compose"),
    ({"score": {"min_sparsity": 2}}, "score must be {min_sparsity: s}"),
])  # fmt: skip
def test_a_bad_setting_is_refused_in_one_line_before_any_run(tmp_path, capsys, setting, says):
    if isinstance(setting, dict):
        good = yaml.safe_load((ROOT / "conf" / "tuning" / "fmnist_lenet300.yaml").read_text())
        path = tmp_path / "bad.yaml"
        path.write_text(yaml.safe_dump({**good, **setting}))
        setting = str(path)
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit) as exc:
        _tune().main([setting, "--runs-dir", str(runs), "--docs-dir", str(tmp_path / "docs"),
                      "--conf-dir", str(tmp_path / "conf")])  # fmt: skip
    err = capsys.readouterr().err
    assert exc.value.code == 2 and says in err and err.count("\n") == 1, err
    assert not runs.exists() and not (tmp_path / "docs").exists() and not (tmp_path / "conf").exists()


def test_a_finished_run_shorter_than_the_setting_is_extended_not_done(tmp_path):
    tune = _tune()
    run = tmp_path / "seed100"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"status": "complete", "rounds_completed": 20}))
    assert tune.short_of(run, 24) and not tune.short_of(run, 20)
    (run / "summary.json").write_text(json.dumps({"status": "failed", "rounds_completed": 3}))
    assert not tune.short_of(run, 24)  # a failed run stays failed (unless --retry-failed)
    assert not tune.short_of(tmp_path / "none", 24)


@pytest.mark.slow  # 4 tiny runs, one process each: 1-5 min of wall time on a busy 2-core machine
def test_toy_tuning_writes_composable_yamls_and_a_table_and_reruns_the_same(tmp_path, capsys):
    name = f"_pytest_toy_{tmp_path.name}"
    setting = tmp_path / f"{name}.yaml"
    setting.write_text(
        yaml.safe_dump(
            {"overrides": ["dataset.train_subset=640", "dataset.val_size=500", "train.epochs=1", "deterministic=true"],
             "rounds": 2, "seeds": [100], "launcher": "basic", "peaks": [0.05, 0.1],
             "scyc": [[0.05, 0.1], [0.1, 0.2]], "oracle_points": 3}
        )
    )  # fmt: skip
    conf_dir = ROOT / "conf" / "schedule" / "tuned"
    argv = [str(setting), "--schedules", "scyc,sgdr", "--runs-dir", str(tmp_path / "runs"), "--docs-dir",
            str(tmp_path / "docs")]  # fmt: skip
    try:
        first = _tune().main(argv)
        assert set(first) == {"scyc", "sgdr", "oracle"}
        assert "tune " in capsys.readouterr().out
        texts = {p.name: p.read_text() for p in (conf_dir / name).glob("*.yaml")}
        assert set(texts) == {"scyc.yaml", "sgdr.yaml", "oracle.yaml"}
        table = (tmp_path / "docs" / f"{name}.md").read_text()
        rows = [line for line in table.splitlines() if line.startswith(("| scyc |", "| sgdr |"))]
        assert "| scyc | max_lr_low / max_lr_high |" in table and [r.count("**") for r in rows] == [2, 2]
        register_configs()
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            for s in ("scyc", "sgdr", "oracle"):
                cfg = compose("config", overrides=[f"schedule=tuned/{name}/{s}"]).schedule
                assert cfg.name == s
            scyc = compose("config", overrides=[f"schedule=tuned/{name}/scyc"]).schedule
            oracle = compose("config", overrides=[f"schedule=tuned/{name}/oracle"]).schedule
        assert (scyc.max_lr_low, scyc.max_lr_high) == tuple(first["scyc"]["values"].values())
        assert len(oracle.grid) == 3 and oracle.base_lr == scyc.base_lr
        assert oracle.grid[0] <= scyc.max_lr_low and oracle.grid[-1] >= scyc.max_lr_high

        again = _tune().main(argv)  # every run finished: nothing is trained again, the same choices
        assert "tune " not in capsys.readouterr().out
        assert {s: r["values"] for s, r in again.items()} == {s: r["values"] for s, r in first.items()}
        assert {p.name: p.read_text() for p in (conf_dir / name).glob("*.yaml")} == texts

        setting.write_text(setting.read_text().replace("rounds: 2", "rounds: 3"))  # the setting made longer
        longer = _tune().main(argv)  # every run is extended to 3 rounds, not taken as done
        assert "tune " in capsys.readouterr().out and set(longer) == set(first)
        for run in (tmp_path / "runs").glob("*/*/seed100"):
            assert len(pd.read_csv(run / "results.csv")) == 3, run
    finally:
        shutil.rmtree(conf_dir / name, ignore_errors=True)
        if conf_dir.exists() and not any(conf_dir.iterdir()):
            conf_dir.rmdir()
