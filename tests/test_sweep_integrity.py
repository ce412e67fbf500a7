"""Sweeps and tables that cannot mislead (issue 23, item 0): a resumed sweep stays one row per schedule, a failed
job does not end the sweep, a copied run is not a second seed, a run whose results.csv is short or blank is
excluded with the reason, and a parallel sweep's workers end with their parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from filelock import FileLock
from test_tables import ROOT, TINY, cell, fake_run, multirun, read_md

from scyc.foundations.keys import NON_RESULT_KEYS, changes_no_result
from scyc.lifecycle import rundir
from scyc.sweep import sweeps
from scyc.sweep.tables import make_table


def test_resume_and_other_keys_that_change_nothing_never_split_a_row(tmp_path):
    d = tmp_path / "s"
    fake_run(d, "0_scyc_seed0", "scyc", 0, [0.90, 0.91])
    fake_run(d, "1_scyc_seed1", "scyc", 1, [0.88, 0.90],
             overrides={"resume": "true", "checkpoint.keep": "0", "dataset.root": "/moved", "data_dir": "/d",
                        "resume_allow_data_change": "true", "device": "cpu"})  # fmt: skip
    fake_run(d, "2_cyclic_seed0", "cyclic", 0, [0.89, 0.90])
    fake_run(d, "3_cyclic_seed1", "cyclic", 1, [0.87, 0.89], overrides={"resume": "true"})
    table = make_table(d)
    assert table.rows == [("scyc",), ("cyclic",)] and table.row_keys == []
    assert cell(table, ("scyc",), 0.2)["n"] == 2 and cell(table, ("cyclic",), 0.2)["n"] == 2
    assert table.margins[()][0.2][1].method == "paired"


def test_one_list_of_keys_that_change_nothing_serves_resume_group_and_tables(tmp_path):
    for key in (
        "resume",
        "checkpoint.keep",
        "dataset.root",
        "resume_allow_data_change",
        "wandb.mode",
        "hydra/launcher",
    ):
        assert changes_no_result(key) and changes_no_result("+" + key)
    for key in ("seed", "pruner.rate", "schedule.max_lr", "dataset.train_subset", "train.epochs"):
        assert not changes_no_result(key)
    assert rundir.config_differences({"resume": False, "checkpoint": {"keep": 2}, "seed": 0},
                                     {"resume": True, "checkpoint": {"keep": 0}, "seed": 0}) == []  # fmt: skip
    (tmp_path / "multirun.yaml").write_text(yaml.safe_dump(
        {"hydra": {"overrides": {"task": ["schedule=scyc,cyclic", "resume=true", "checkpoint.keep=0", "seed=0,1"]}}}
    ))  # fmt: skip
    assert sweeps.sweep_group(tmp_path) == f"{tmp_path.name} schedule=scyc,cyclic seed=0,1"
    assert "resume" in NON_RESULT_KEYS


def test_copies_of_a_run_are_one_seed_not_two(tmp_path):
    d = tmp_path / "s"
    fake_run(d, "a", "scyc", 0, [0.524, 0.53])
    fake_run(d, "a_copy", "scyc", 0, [0.524, 0.53], overrides={"resume": "true"})  # the same run, resumed elsewhere
    fake_run(d, "b", "scyc", 1, [0.50, 0.51])
    table = make_table(d)
    assert cell(table, ("scyc",), 0.0)["n"] == 2 and cell(table, ("scyc",), 0.0)["seeds"] == (0, 1)
    [dup] = table.excluded
    assert dup.path.name == "a_copy" and dup.status == "duplicate" and "same config and seed 0 as" in dup.reason
    md = read_md(d / "table.md")
    assert "Runs: 2 included, 1 excluded." in md and "duplicate" in md


def test_a_short_or_blank_results_csv_excludes_the_run_with_the_reason(tmp_path):
    d = tmp_path / "s"
    for seed in (0, 1, 2):
        fake_run(d, f"ok{seed}", "scyc", seed, [0.90, 0.91, 0.92])
    short = fake_run(d, "short", "scyc", 3, [0.90, 0.91, 0.92])
    res = pd.read_csv(short / "results.csv")
    res.iloc[:-1].to_csv(short / "results.csv", index=False)  # the last row lost, summary.json says complete
    blank = fake_run(d, "blank", "scyc", 4, [0.90, 0.91, 0.92])
    res = pd.read_csv(blank / "results.csv")
    res.loc[1, "test_acc"] = None
    res.to_csv(blank / "results.csv", index=False)
    table = make_table(d)
    assert set(table.columns) == {0.0, 0.2, 0.36} and {cell(table, ("scyc",), s)["n"] for s in table.columns} == {3}
    reasons = {r.path.name: (r.status, r.reason) for r in table.excluded}
    assert reasons["short"] == ("incomplete", "results.csv has 2 round(s) (rounds 0-1) but summary.json says the run "
                                              "completed 3")  # fmt: skip
    assert reasons["blank"] == ("incomplete", "results.csv has a blank test_acc in line 3")


def test_a_diverging_job_is_recorded_failed_and_the_sweep_goes_on(tmp_path):
    sweep = tmp_path / "diverging"
    proc = multirun(sweep, "schedule=constant", "schedule.lr=1e6,0.05")
    assert proc.returncode == 1, proc.stderr
    runs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [json.loads((r / "summary.json").read_text())["status"] for r in runs] == ["failed", "complete"]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 1 run(s) of the sweep failed (0_constant_global_magnitude_seed0)")
    md = read_md(sweep / "table.md")
    assert "Runs: 1 included, 1 excluded." in md and "schedule.lr=0.05" not in md.split("## Excluded")[1]


def test_a_refused_job_is_one_line_and_the_sweep_goes_on(tmp_path):
    sweep = tmp_path / "refused"
    proc = multirun(sweep, "schedule=scyc", "train.momentum=1.5,0.9")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: 1 run(s) of the sweep failed")
    statuses = [json.loads((r / "summary.json").read_text())["status"] for r in sorted(sweep.glob("*_seed0"))]
    assert statuses == ["failed", "complete"]


@pytest.mark.skipif(sys.platform != "linux", reason="parent-death polling is tested on Linux")
def test_parallel_workers_end_with_their_parent(tmp_path):
    """kill -9 of a parallel sweep's process: its loky workers stop their runs (SIGTERM, at the last checkpoint)
    and exit, instead of running on and holding the run dirs' locks."""
    sweep = tmp_path / "orphans"
    args = [sys.executable, str(ROOT / "train.py"), "-m", f"hydra.sweep.dir={sweep}", "wandb.mode=disabled",
            "hydra/launcher=parallel", "schedule=constant", "seed=0,1", *TINY, "pruner.rounds=100", "pruner.rate=0.02"]  # fmt: skip
    env = dict(os.environ, PYTHONUNBUFFERED="1", WANDB_SILENT="true")
    parent = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        summaries = [sweep / f"{i}_constant_global_magnitude_seed{i}" / "summary.json" for i in (0, 1)]
        deadline = time.time() + 120
        while not all(_pid(s) for s in summaries) and time.time() < deadline and parent.poll() is None:
            time.sleep(0.5)
        workers = {_pid(s) for s in summaries}
        assert all(workers), "the sweep's runs did not start"
        assert parent.pid not in workers
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.time() + 60
        while any(_alive(pid) for pid in workers) and time.time() < deadline:
            time.sleep(0.5)
        assert not any(_alive(pid) for pid in workers), "the workers outlived their parent"
        assert {json.loads(s.read_text())["status"] for s in summaries} == {"interrupted"}
        for s in summaries:  # the run dirs are free again: a resume can take them at once
            FileLock(s.parent / ".lock").acquire(timeout=0)
    finally:
        if parent.poll() is None:
            parent.kill()


def _pid(summary: Path) -> int | None:
    try:
        return json.loads(summary.read_text()).get("pid")
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        zombie = stat.read_text().split(")")[-1].split()[0] == "Z"
        tasks = len(list(Path(f"/proc/{pid}/task").iterdir()))
    except OSError:  # gone meanwhile
        return False
    # A zombie has ended, once its last thread has: a leader that exited first shows Z while the other threads are
    # still on their way out, holding the process's files (the run dir's lock) until the last one is gone.
    return not zombie or tasks > 1
