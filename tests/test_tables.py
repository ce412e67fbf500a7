"""Sweep tables: aggregation over seeds, S-Cyc's margin with its interval, failed/missing runs, sparsity grids,
the multirun callback on a tiny real sweep, and a sweep through the submitit_local launcher."""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from scyc.sweep import sweeps
from scyc.sweep.stats import welch_interval
from scyc.sweep.tables import MARGIN_LABEL, aggregate, find_run_dirs, load_run, main, make_table

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------
# synthetic run dirs
# ------------------------------------------------------------------------------------------------
def fake_run(
    sweep: Path,
    name: str,
    schedule: str,
    seed: int,
    accs: list[float],
    sparsities: list[float] | None = None,
    status: str = "complete",
    overrides: dict[str, str] | None = None,
    best_val: list[float] | None = None,
    results: bool = True,
    summary: bool = True,
) -> Path:
    """A run dir as train.py writes it (only the files the table reads)."""
    run = sweep / name
    (run / ".hydra").mkdir(parents=True)
    ov = {"schedule": schedule, "seed": str(seed), **(overrides or {})}
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"{k}={v}" for k, v in ov.items()]))
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "schedule": {"name": schedule}}))
    sparsities = sparsities if sparsities is not None else [1 - 0.8**r for r in range(len(accs))]
    if summary:
        info = {"status": status, "schedule": schedule, "seed": seed, "rounds": len(accs)}
        if status != "complete":
            info |= {"reason": "RuntimeError: boom", "rounds_completed": 1}
        (run / "summary.json").write_text(json.dumps(info))
    if results:
        pd.DataFrame({
            "round": range(len(accs)), "sparsity": sparsities, "test_acc": accs,
            "test_acc_at_best_val": best_val if best_val is not None else [a - 0.01 for a in accs],
        }).to_csv(run / "results.csv", index=False)  # fmt: skip
    return run


SCYC = {0: [0.90, 0.91, 0.92], 1: [0.88, 0.90, 0.93], 2: [0.89, 0.92, 0.91]}
CYCLIC = {0: [0.87, 0.89, 0.88], 1: [0.88, 0.86, 0.90], 2: [0.86, 0.88, 0.89]}
SGDR = {0: [0.91, 0.85, 0.86], 1: [0.90, 0.86, 0.85], 2: [0.92, 0.84, 0.87]}


@pytest.fixture
def sweep(tmp_path):
    d = tmp_path / "sweep"
    n = 0
    for schedule, accs in (("scyc", SCYC), ("cyclic", CYCLIC), ("sgdr", SGDR)):
        for seed, a in accs.items():
            fake_run(d, f"{n}_{schedule}_seed{seed}", schedule, seed, a)
            n += 1
    return d


def read_md(path: Path) -> str:
    """table.md with the column padding of its pipe tables squeezed to one space (tabulate pads cells)."""
    return re.sub(r" {2,}", " ", path.read_text())


def cell(table, row, s):
    return table.cells.loc[(*row, s)]


def test_means_stds_n_and_best_marking(sweep):
    table = make_table(sweep)
    assert table.rows == [("scyc",), ("cyclic",), ("sgdr",)]
    assert table.columns == [0.0, 0.2, 0.36]
    for name, accs in (("scyc", SCYC), ("cyclic", CYCLIC), ("sgdr", SGDR)):
        for r, s in enumerate(table.columns):
            values = [100 * a[r] for a in accs.values()]
            c = cell(table, (name,), s)
            assert c["mean"] == pytest.approx(statistics.mean(values))
            assert c["std"] == pytest.approx(statistics.stdev(values))
            assert c["n"] == 3 and c["seeds"] == (0, 1, 2)
    best = {s: [row[0] for row in table.rows if cell(table, row, s)["best"]] for s in table.columns}
    assert best == {0.0: ["sgdr"], 0.2: ["scyc"], 0.36: ["scyc"]}

    md = read_md(sweep / "table.md")
    assert "| sgdr | **91.00 ± 1.00** |" in md and "n = 3 seeds in every cell" in md
    assert "| scyc | 89.00 ± 1.00 | **91.00 ± 1.00** |" in md
    csv = pd.read_csv(sweep / "table.csv")
    rows = csv[csv["kind"] == "schedule"]
    assert len(rows) == 9 and rows["best"].sum() == 3
    assert rows.set_index(["schedule", "sparsity"]).loc[("cyclic", 0.2), "mean"] == pytest.approx(87.666667)
    tex = (sweep / "table.tex").read_text()
    assert r"\textbf{91.00 $\pm$ 1.00}" in tex and r"\toprule" in tex
    assert (sweep / "accuracy_vs_sparsity.png").stat().st_size > 10_000
    assert pd.read_csv(sweep / "excluded_runs.csv").empty


def test_margin_row_is_paired_by_seed_against_the_best_benchmark(sweep):
    table = make_table(sweep)
    assert table.benchmarks == ["cyclic", "sgdr"]
    margins = table.margins[()]
    # at sparsity 0 the best benchmark is sgdr (91.0), at 0.2 and 0.36 it is cyclic
    assert [margins[s][0] for s in table.columns] == ["sgdr", "cyclic", "cyclic"]
    for r, s in enumerate(table.columns):
        bench = {"sgdr": SGDR, "cyclic": CYCLIC}[margins[s][0]]
        diffs = [100 * (SCYC[k][r] - bench[k][r]) for k in (0, 1, 2)]
        half = 4.302652729749752 * statistics.stdev(diffs) / math.sqrt(3)  # t_{0.975, 2}
        d = margins[s][1]
        assert d.method == "paired"
        assert d.estimate == pytest.approx(statistics.mean(diffs))
        assert (d.low, d.high) == pytest.approx((d.estimate - half, d.estimate + half))
    md = read_md(sweep / "table.md")
    assert f"| {MARGIN_LABEL} | −2.00 [" in md and "vs sgdr" in md and "vs cyclic" in md
    csv = pd.read_csv(sweep / "table.csv")
    m = csv[csv["kind"] == "margin"]
    assert m["vs"].tolist() == ["sgdr", "cyclic", "cyclic"] and (m["ci_low"] < m["mean"]).all()


def test_margin_falls_back_to_welch_when_seeds_differ(tmp_path):
    d = tmp_path / "s"
    for seed, acc in ((0, 0.90), (1, 0.92), (2, 0.91)):
        fake_run(d, f"a{seed}", "scyc", seed, [acc])
    for seed, acc in ((5, 0.88), (6, 0.87)):
        fake_run(d, f"b{seed}", "constant", seed, [acc])
    table = make_table(d)
    assert table.benchmarks == ["constant"]  # none of the paper's four present: every other schedule
    diff = table.margins[()][0.0][1]
    expected = welch_interval([90.0, 92.0, 91.0], [88.0, 87.0])
    assert diff.method == "welch" and diff.df == pytest.approx(expected.df)
    assert (diff.estimate, diff.low, diff.high) == pytest.approx((3.5, expected.low, expected.high))


def test_failed_and_missing_runs_are_listed_not_averaged(sweep):
    fake_run(sweep, "9_scyc_seed3", "scyc", 3, [0.10, 0.10, 0.10], status="failed")
    fake_run(sweep, "10_scyc_seed4", "scyc", 4, [0.10], status="running")
    fake_run(sweep, "11_cyclic_seed3", "cyclic", 3, [0.1, 0.1, 0.1], summary=False)  # killed at start-up
    fake_run(sweep, "12_sgdr_seed3", "sgdr", 3, [0.1, 0.1, 0.1], results=False)  # complete but results.csv lost
    table = make_table(sweep)
    assert cell(table, ("scyc",), 0.0)["n"] == 3 and cell(table, ("scyc",), 0.0)["mean"] == pytest.approx(89.0)
    excluded = pd.read_csv(sweep / "excluded_runs.csv")
    assert excluded["run"].tolist() == ["9_scyc_seed3", "10_scyc_seed4", "11_cyclic_seed3", "12_sgdr_seed3"]
    assert excluded["status"].tolist() == ["failed", "running", "missing", "missing"]
    assert "RuntimeError: boom" in excluded["reason"].iloc[0]
    md = read_md(sweep / "table.md")
    assert "## Excluded runs (not averaged in)" in md and "| 11_cyclic_seed3 | missing |" in md
    assert "Runs: 9 included, 4 excluded." in md


def test_different_sparsity_grids_give_union_of_columns_and_rows_per_swept_key(tmp_path):
    d = tmp_path / "s"
    for seed in (0, 1):
        # rate 0.2: 0, 0.2, 0.36 (written with float noise: rounding to 4 decimals aligns them)
        fake_run(d, f"r2_scyc_{seed}", "scyc", seed, [0.9, 0.9, 0.9], [0.0, 0.2000000001, 0.36],
                 overrides={"pruner.rate": "0.2"})  # fmt: skip
        fake_run(d, f"r2_warm_{seed}", "warmup", seed, [0.8, 0.8, 0.8], [0.0, 0.19999999, 0.36],
                 overrides={"pruner.rate": "0.2"})  # fmt: skip
        fake_run(d, f"r5_scyc_{seed}", "scyc", seed, [0.7, 0.6], [0.0, 0.5], overrides={"pruner.rate": "0.5"})
    table = make_table(d)
    assert table.row_keys == ["pruner.rate"]
    assert table.columns == [0.0, 0.2, 0.36, 0.5]
    assert table.rows == [("scyc", "0.2"), ("scyc", "0.5"), ("warmup", "0.2")]
    md = read_md(d / "table.md")
    assert "| scyc (pruner.rate=0.5) | 70.00 ± 0.00 | | | **60.00 ± 0.00** |" in md and "n = 2 seeds" in md
    # a margin row only where S-Cyc has a benchmark beside it (rate 0.2), labelled with its group
    assert list(table.margins) == [("0.2",)]
    assert f"{MARGIN_LABEL} (pruner.rate=0.2) | +10.00 [+10.00, +10.00] vs warmup" in md


def test_select_best_val_and_oracle_not_marked_best(tmp_path):
    d = tmp_path / "s"
    for seed in (0, 1):
        fake_run(d, f"s{seed}", "scyc", seed, [0.90, 0.80], best_val=[0.85, 0.95])
        fake_run(d, f"o{seed}", "oracle", seed, [0.99, 0.99], best_val=[0.99, 0.99])
    end = make_table(d)
    assert cell(end, ("scyc",), 0.2)["mean"] == pytest.approx(80.0)
    assert end.rows == [("scyc",), ("oracle",)]
    assert cell(end, ("scyc",), 0.2)["best"] and not cell(end, ("oracle",), 0.2)["best"]
    assert not end.margins  # the oracle is no benchmark
    assert main([str(d), "--select", "best_val"]) == 0
    csv = pd.read_csv(d / "table.csv").set_index(["schedule", "sparsity"])
    assert csv.loc[("scyc", 0.2), "mean"] == pytest.approx(95.0)
    assert "at the epoch of best validation accuracy" in read_md(d / "table.md")


def test_find_run_dirs_skips_hidden_and_wandb_folders(sweep):
    (sweep / ".submitit" / "123").mkdir(parents=True)
    (sweep / ".submitit" / "123" / "summary.json").write_text("{}")
    (sweep / "0_scyc_seed0" / "wandb" / "run").mkdir(parents=True)
    (sweep / "0_scyc_seed0" / "wandb" / "run" / "summary.json").write_text("{}")
    runs = find_run_dirs(sweep)
    assert len(runs) == 9 and all(r.parent == sweep for r in runs)
    assert runs[0].name == "0_scyc_seed0" and load_run(runs[0]).complete


def test_cli_rejects_missing_dir_and_empty_sweep(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main([str(tmp_path / "nope")])
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 1
    assert "error: no run dirs found" in capsys.readouterr().err
    assert not any((tmp_path / "empty").iterdir())  # an empty table would look like a result: nothing is written


def test_repeated_seeds_are_flagged_and_not_paired(tmp_path):
    """Two runs of one row and seed whose configs differ (e.g. schedule=cyclic and schedule=tuned/x/cyclic, both
    named cyclic) are both counted, flagged, and not paired; a plain copy is a duplicate (test_sweep_integrity)."""
    d = tmp_path / "s"
    for i, (seed, acc) in enumerate(((0, 0.90), (0, 0.92), (1, 0.91))):
        run = fake_run(d, f"a{i}", "scyc", seed, [acc])
        (run / ".hydra" / "config.yaml").write_text(
            yaml.safe_dump({"seed": seed, "schedule": {"name": "scyc", "v": i}})
        )
    for i, (seed, acc) in enumerate(((0, 0.88), (0, 0.86), (1, 0.87))):
        run = fake_run(d, f"b{i}", "warmup", seed, [acc])
        (run / ".hydra" / "config.yaml").write_text(
            yaml.safe_dump({"seed": seed, "schedule": {"name": "warmup", "v": i}})
        )
    table = make_table(d)
    assert cell(table, ("scyc",), 0.0)["n"] == 3 and table.margins[()][0.0][1].method == "welch"
    assert "Repeated seeds (each run counted) in: scyc, warmup" in read_md(d / "table.md")


def test_callback_rejects_unknown_select():
    from scyc.foundations.registry import ConfigError

    with pytest.raises(ConfigError, match="hydra.callbacks.results_table.select=last"):
        sweeps.ResultsTableCallback(select="last")


def test_aggregate_rejects_unknown_select():
    with pytest.raises(ValueError, match="select='last' is not allowed"):
        aggregate([], select="last")


# ------------------------------------------------------------------------------------------------
# W&B group and tags
# ------------------------------------------------------------------------------------------------
def test_wandb_group_is_the_sweeps_overrides_in_a_multirun(monkeypatch, tmp_path):
    """The group is the sweep's own overrides (multirun.yaml), swept ones first, without those that change
    nothing computed; the sweep dir's name only when Hydra left no multirun.yaml (issue 16, item 17)."""
    from hydra.types import RunMode

    sweep = tmp_path / "2026-01-01_00-00-00"
    sweep.mkdir()
    task = ["progress=false", "pruner.rounds=5", "schedule=scyc,constant", "wandb.mode=offline", "seed=range(3)"]
    OmegaConf.save({"hydra": {"overrides": {"task": task}}}, sweep / "multirun.yaml")
    assert sweeps.sweep_group(sweep) == "2026-01-01_00-00-00 schedule=scyc,constant seed=range(3) pruner.rounds=5"
    other = tmp_path / "2026-01-02_00-00-00"  # the same overrides, another sweep: another group (issue 27, item 10)
    other.mkdir()
    (other / "multirun.yaml").write_text((sweep / "multirun.yaml").read_text())
    assert sweeps.sweep_group(other) != sweeps.sweep_group(sweep)
    OmegaConf.save({"hydra": {"overrides": {"task": [f"+extra.k{i}={i / 1000},0.5" for i in range(20)]}}},
                   sweep / "multirun.yaml")  # fmt: skip
    long = sweeps.sweep_group(sweep)
    assert len(long) == 128 and long.startswith("2026-01-01_00-00-00 +extra.k0=0.0,0.5 +extra.k1=") and "~" in long

    cfg = OmegaConf.create({
        "schedule": {"name": "scyc"}, "pruner": {"name": "global_magnitude"}, "model": {"name": "lenet300"},
        "dataset": {"name": "fashion_mnist"}, "seed": 2,
        "wandb": {"mode": "offline", "project": "scyc", "group": None, "tags": ["mine"]},
    })  # fmt: skip
    hc = OmegaConf.create({"mode": RunMode.MULTIRUN, "sweep": {"dir": "outputs/tables/fashion_mnist_default"}})
    monkeypatch.setattr(sweeps, "_hydra_config", lambda: hc)
    s = sweeps.wandb_settings(cfg)
    assert s["group"] == "fashion_mnist_default"
    assert s["tags"] == ["mine", "schedule:scyc", "pruner:global_magnitude", "model:lenet300",
                         "dataset:fashion_mnist", "seed:2"]  # fmt: skip
    cfg.wandb.group = "chosen"
    assert sweeps.wandb_settings(cfg)["group"] == "chosen"
    monkeypatch.setattr(sweeps, "_hydra_config", lambda: OmegaConf.create({"mode": RunMode.RUN}))
    cfg.wandb.group = None
    assert sweeps.wandb_settings(cfg)["group"] is None


# ------------------------------------------------------------------------------------------------
# real sweeps
# ------------------------------------------------------------------------------------------------
TINY = ["pruner.rounds=2", "train.epochs=1", "dataset.train_subset=600", "dataset.val_size=300", "progress=false"]


def multirun(sweep_dir: Path, *overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    args = [sys.executable, str(ROOT / "train.py"), "-m", f"hydra.sweep.dir={sweep_dir}", "wandb.mode=disabled"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", WANDB_SILENT="true")
    return subprocess.run(
        [*args, *TINY, *overrides], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )


def test_multirun_callback_writes_the_table(tmp_path):
    sweep = tmp_path / "tiny_sweep"
    proc = multirun(sweep, "schedule=scyc,constant", "seed=0,1")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == [
        "0_scyc_global_magnitude_seed0", "1_scyc_global_magnitude_seed1",
        "2_constant_global_magnitude_seed0", "3_constant_global_magnitude_seed1",
    ]  # fmt: skip
    for name in ("table.md", "table.csv", "table.tex", "accuracy_vs_sparsity.png", "excluded_runs.csv"):
        assert (sweep / name).exists(), name
    md = read_md(sweep / "table.md")
    assert (
        "| scyc | " in md
        and "| constant | " in md
        and "n = 2 seeds in every cell" in md
        and "S-Cyc − best benchmark" in md
    )
    csv = pd.read_csv(sweep / "table.csv")
    assert sorted(csv["sparsity"].unique()) == [0.0, 0.2]
    assert "Runs: 4 included, 0 excluded." in md
    assert "made by `python train.py -m " in md and "schedule=scyc,constant seed=0,1`" in md  # the sweep's command


def test_multirun_with_a_failed_run_still_writes_the_table_listing_it(tmp_path):
    sweep = tmp_path / "failing"
    proc = multirun(sweep, "schedule=scyc", "train.momentum=0.9,1.5")
    assert proc.returncode != 0  # Hydra reports the failed job
    excluded = pd.read_csv(sweep / "excluded_runs.csv")
    assert excluded["status"].tolist() == ["failed"] and "train.momentum=1.5" in excluded["reason"].iloc[0]
    md = read_md(sweep / "table.md")
    assert "| scyc | " in md and "Runs: 1 included, 1 excluded." in md


def test_submitit_local_launcher_sweep(tmp_path):
    sweep = tmp_path / "submitit"
    proc = multirun(sweep, "hydra/launcher=local", "schedule=scyc,constant", "dataset.train_subset=400")
    assert proc.returncode == 0, proc.stderr
    assert list((sweep / ".submitit").iterdir())  # the runs went through submitit
    table = pd.read_csv(sweep / "table.csv")
    assert set(table.loc[table["kind"] == "schedule", "schedule"]) == {"scyc", "constant"}
    for run in ("0_scyc_global_magnitude_seed0", "1_constant_global_magnitude_seed0"):
        assert json.loads((sweep / run / "summary.json").read_text())["status"] == "complete"
