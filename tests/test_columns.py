"""results.csv / epochs.csv take their columns from the record dataclasses, and a callback adds its own column."""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest
import torch

from scyc.cli import build_run, compose, run_rounds
from scyc.lifecycle import rundir
from scyc.lifecycle.callbacks import Callback
from scyc.lifecycle.state import EPOCH_COLUMNS, RESULT_COLUMNS, EpochRecord, RoundResult, columns
from scyc.lifecycle.tracking import RunOutputs

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["dataset.train_subset=1000", "dataset.val_size=500", "train.epochs=1", "wandb.mode=disabled",
         "progress=false", "analysis.figures=false"]  # fmt: skip
# The headers the files have always had (before the columns came from the dataclasses): the regression reference.
OLD_RESULTS = ["round", "sparsity", "alive", "max_lr", "train_loss", "train_acc", "val_loss", "val_acc", "test_loss",
               "test_acc", "best_val_acc", "best_val_epoch", "test_acc_at_best_val", "epoch_seconds", "round_seconds",
               "other_seconds"]  # fmt: skip
OLD_EPOCHS = ["round", "epoch", "sparsity", "max_lr", "lr_last", "train_loss", "train_acc", "val_loss", "val_acc",
              "test_loss", "test_acc", "seconds"]  # fmt: skip


def header(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return next(csv.reader(fh))


def _result(round_idx: int, **more) -> RoundResult:
    metrics = dict(train_loss=0.5, train_acc=0.8, val_loss=0.6, val_acc=0.7, test_loss=0.6, test_acc=0.75)
    return RoundResult(round=round_idx, sparsity=0.2, alive=30, max_lr=0.1, best_val_acc=0.7, best_val_epoch=2,
                       test_acc_at_best_val=0.74, epoch_seconds=1.0, round_seconds=3.0, **metrics, **more)  # fmt: skip


class RoundTag(Callback):
    """A callback's own column: a number from the round's result and from which invocation wrote it."""

    def __init__(self, tag: int) -> None:
        self.tag = tag

    def on_run_start(self, run) -> None:
        run.outputs.add_round_column("tag")

    def on_round_end(self, run, result: RoundResult) -> None:
        run.outputs.set_round_value("tag", self.tag * 100 + result.round)


def run_with(run_dir: Path, *overrides: str, callbacks: tuple[Callback, ...] = ()) -> dict:
    """A real run built through ``scyc.cli.build_run`` (what train.py builds), with ``callbacks`` added."""
    cfg = compose([*QUICK, *overrides])
    run = build_run(cfg, run_dir, resume=rundir.prepare(cfg, run_dir))
    run.callbacks.extend(callbacks)
    try:
        return run_rounds(run)
    finally:
        rundir.release(run_dir)


# ------------------------------------------------------------------------------------------- (a) the headers
def test_columns_are_the_dataclass_fields_in_the_files_order():
    assert RESULT_COLUMNS == columns(RoundResult) == OLD_RESULTS
    assert EPOCH_COLUMNS == columns(EpochRecord) == OLD_EPOCHS
    assert list(_result(0).row()) == OLD_RESULTS  # the row follows the header


def test_the_files_written_have_the_old_headers(tmp_path):
    out = RunOutputs(tmp_path)
    result = _result(0)
    out.round(result)
    out.update_round(result)
    lrs = [0.1, 0.05]
    out.epoch(EpochRecord(round=0, epoch=0, sparsity=0.0, max_lr=0.1, lr_last=0.05, train_loss=0.5, train_acc=0.8,
                          val_loss=0.6, val_acc=0.7, test_loss=0.6, test_acc=0.75, seconds=1.0, lrs=lrs), 0)  # fmt: skip
    assert header(tmp_path / "results.csv") == OLD_RESULTS and header(tmp_path / "epochs.csv") == OLD_EPOCHS
    assert pd.read_csv(tmp_path / "lr_trace.csv")["lr"].tolist() == lrs  # lrs: a field that is no column


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("plain") / "run"
    assert run_with(run_dir, "pruner.rounds=2")["status"] == "complete"
    return run_dir


def test_a_runs_files_have_the_old_headers_and_its_checkpoint_the_old_rows(plain_run):
    assert header(plain_run / "results.csv") == OLD_RESULTS
    assert header(plain_run / "epochs.csv") == OLD_EPOCHS
    # a run without a callback's column checkpoints its rows as before: a checkpoint of the code before reads so
    ckpt = torch.load(plain_run / "checkpoints" / "round_01.pt", weights_only=True)
    assert [list(r) for r in ckpt["state"]["results"]] == [OLD_RESULTS, OLD_RESULTS]


# ------------------------------------------------------------------------------- (b) a callback's own column
def test_a_callbacks_column_lands_in_results_csv_and_survives_a_resume(tmp_path):
    run_dir = tmp_path / "run"
    assert run_with(run_dir, "pruner.rounds=2", callbacks=(RoundTag(1),))["status"] == "complete"
    first = pd.read_csv(run_dir / "results.csv")
    assert header(run_dir / "results.csv") == [*OLD_RESULTS, "tag"]
    assert first["tag"].tolist() == [100, 101]
    assert header(run_dir / "epochs.csv") == OLD_EPOCHS

    # back to the end of round 0, then on to 3 rounds: round 0's row comes from the checkpoint (tag 1), rounds 1
    # and 2 are this invocation's (tag 2)
    for name in ("last.pt", "round_01.pt"):
        (run_dir / "checkpoints" / name).unlink()
    assert run_with(run_dir, "pruner.rounds=3", "resume=true", callbacks=(RoundTag(2),))["status"] == "complete"
    resumed = pd.read_csv(run_dir / "results.csv")
    assert header(run_dir / "results.csv") == [*OLD_RESULTS, "tag"]
    assert resumed["round"].tolist() == [0, 1, 2] and resumed["tag"].tolist() == [100, 201, 202]
    not_timed = [c for c in OLD_RESULTS if not c.endswith("_seconds")]
    assert resumed.loc[0, not_timed].equals(first.loc[0, not_timed])
    ckpt = torch.load(run_dir / "checkpoints" / "round_02.pt", weights_only=True)
    assert [r["added"] for r in ckpt["state"]["results"]] == [{"tag": 100}, {"tag": 201}, {"tag": 202}]


def test_a_resumed_run_keeps_the_checkpoints_added_column_and_rows(tmp_path):
    """RunOutputs.start on resume: the checkpoint's rows (an old one without other_seconds, a later one with a
    callback's value) and their column; adding the column again in on_run_start keeps one."""
    out = RunOutputs(tmp_path)
    old_row = {k: v for k, v in asdict(_result(0)).items() if k not in ("other_seconds", "added")}
    rows = [old_row, asdict(_result(1, other_seconds=2.0, added={"tag": 7}))]
    ckpt = {"state": {"results": rows, "epochs": [], "global_step": 0}, "position": {"round": 2, "epoch": 0}}
    out.start({}, (ckpt, tmp_path / "round_01.pt"))
    out.add_round_column("tag")
    written = pd.read_csv(tmp_path / "results.csv")
    assert header(tmp_path / "results.csv") == [*OLD_RESULTS, "tag"]
    assert math.isnan(written.loc[0, "other_seconds"]) and math.isnan(written.loc[0, "tag"])
    assert written.loc[1, "other_seconds"] == 2.0 and written.loc[1, "tag"] == 7


def test_the_round_api_refuses_what_would_write_a_wrong_row(tmp_path):
    out = RunOutputs(tmp_path)
    for taken in ("val_acc", "other_seconds"):
        with pytest.raises(ValueError, match=taken):
            out.add_round_column(taken)
    out.add_round_column("tag")
    with pytest.raises(ValueError, match="already has a column 'tag'"):
        out.add_round_column("tag")
    with pytest.raises(ValueError, match="outside on_round_end"):  # no row is open: the value would be lost
        out.set_round_value("tag", 1.0)
    result = _result(0)
    out.round(result)
    with pytest.raises(ValueError, match="no column 'tagg'"):
        out.set_round_value("tagg", 1.0)
    out.set_round_value("tag", 3.0)
    out.update_round(result)
    assert result.added == {"tag": 3.0} and pd.read_csv(tmp_path / "results.csv")["tag"].tolist() == [3.0]
    with pytest.raises(ValueError, match="outside on_round_end"):  # the row is final
        out.set_round_value("tag", 4.0)


def test_other_ranks_write_no_file_but_keep_the_rows(tmp_path):
    out = RunOutputs(tmp_path, is_main=False)
    out.add_round_column("tag")
    result = _result(0)
    out.round(result)
    out.set_round_value("tag", 1.0)
    out.update_round(result)
    assert out.results.rows == [result.row()] and not (tmp_path / "results.csv").exists()


# ----------------------------------------------------------------------- (c) a new column: two files, no more
@pytest.mark.slow  # a copy of the package and a run in a subprocess: 5 s idle, 10-20 s on a busy box
def test_a_new_column_takes_the_dataclass_and_where_its_value_is_computed(tmp_path):
    """A copy of the package with a field added to RoundResult (state.py) and filled where the result is made
    (lifecycle/rounds.py), nothing else: the run's results.csv has the column, after the others, with its
    values, and a checkpoint written before the column existed still resumes."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (tmp_path / "conf").symlink_to(ROOT / "conf")  # cli.CONF: the repository's conf/, beside src/
    (tmp_path / "data").symlink_to(ROOT / "data")
    state, rounds = src / "scyc" / "lifecycle" / "state.py", src / "scyc" / "lifecycle" / "rounds.py"
    field = "    other_seconds: float = math.nan\n"
    assert state.read_text().count(field) == 1
    state.write_text(state.read_text().replace(field, field + "    alive_fraction: float = math.nan\n"))
    made = "            round_seconds=time.perf_counter() - progress.start,\n"
    assert rounds.read_text().count(made) == 1
    rounds.write_text(
        rounds.read_text().replace(made, made + "            alive_fraction=masks.alive() / masks.total,\n")
    )

    run_dir = tmp_path / "run"
    code = f"import sys, scyc; print(scyc.run(sys.argv[1:], run_dir={str(run_dir)!r})['status'])"
    env = {**os.environ, "PYTHONPATH": str(src), "OMP_NUM_THREADS": "1"}
    # an old checkpoint: the run begun with the code before the field (this repository's package) ...
    assert run_with(run_dir, "pruner.rounds=1")["status"] == "complete"
    # ... resumed and extended by the package with the field
    proc = subprocess.run([sys.executable, "-c", code, *QUICK, "pruner.rounds=2", "resume=true"], env=env,
                          capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip().endswith("complete"), proc.stderr[-3000:]
    results = pd.read_csv(run_dir / "results.csv")
    assert header(run_dir / "results.csv") == [*OLD_RESULTS, "alive_fraction"]
    assert math.isnan(results.loc[0, "alive_fraction"])  # written before the column existed
    assert results.loc[1, "alive_fraction"] == pytest.approx(1 - results.loc[1, "sparsity"])


def test_the_oracles_tables_name_columns_of_the_records():
    """oracle.csv / oracle_epochs.csv keep their own order (a selection of the records' columns): a renamed field
    fails here rather than in a run."""
    from scyc.lifecycle.oracle import ORACLE_COLUMNS, ORACLE_EPOCH_COLUMNS

    assert set(ORACLE_COLUMNS) - {"chosen"} <= set(RESULT_COLUMNS)
    assert set(ORACLE_EPOCH_COLUMNS) <= set(EPOCH_COLUMNS)
