"""scripts/tune.py at toy size: the grid runs, the chosen values as composable YAMLs, the table, a resumed re-run."""

from __future__ import annotations

import importlib.util
import shutil

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
    setting = yaml.safe_load((ROOT / "conf" / "tuning" / f"{name}.yaml").read_text())
    assert len(setting["scyc"]) == len(setting["peaks"]) and not set(setting["seeds"]) & {0, 1, 2}
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for s, option in ({s: s for s in _tune().TABLE} | setting.get("options", {})).items():
            assert compose("config", overrides=[*setting["overrides"], f"schedule={option}"]).schedule.name == s


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
    finally:
        shutil.rmtree(conf_dir / name, ignore_errors=True)
        if conf_dir.exists() and not any(conf_dir.iterdir()):
            conf_dir.rmdir()
