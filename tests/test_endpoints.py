"""The primary endpoint (paired over seeds, Holm-adjusted), the long CSV of every run's rows that rebuilds a
table, the margin figure, and make_table's refusals of bad files and arguments."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats
from test_tables import ROOT, fake_run

from scyc.sweep.stats import holm
from scyc.sweep.tables import main, make_table

SPARS = [0.0, 0.9, 0.99, 0.995]
ROWS = {  # schedule -> per-seed accuracies at the four levels
    "scyc": {s: [0.80, 0.85, 0.84 + 0.003 * s, 0.83 + 0.002 * s] for s in range(6)},
    "cyclic": {s: [0.80, 0.85, 0.83 + 0.001 * s, 0.82 + 0.003 * s] for s in range(6)},
    "sgdr": {s: [0.80, 0.84, 0.80 + 0.004 * s, 0.80] for s in range(6)},
    "cyclic_flat_top": {s: [0.80, 0.85, 0.84 + 0.002 * s, 0.83 + 0.001 * s] for s in range(6)},
    "oracle": {s: [0.81, 0.86, 0.85, 0.84] for s in range(3)},
}


@pytest.fixture
def deep(tmp_path):
    d = tmp_path / "deep"
    for schedule, per_seed in ROWS.items():
        for seed, accs in per_seed.items():
            fake_run(d, f"{schedule}_seed{seed}", schedule, seed, accs, SPARS, best_val=accs)
    return d


def test_primary_endpoint_is_paired_over_seeds_and_holm_adjusted(deep):
    table = make_table(deep, select="best_val", endpoint=0.985)
    e = table.endpoints
    assert e.levels == [0.99, 0.995]
    assert [c.versus for c in e.comparisons] == ["cyclic", "sgdr", "cyclic_flat_top"]  # named, in advance
    raw = []
    for c in e.comparisons:
        ref = [100 * sum(ROWS["scyc"][s][2:]) / 2 for s in range(6)]
        other = [100 * sum(ROWS[c.versus][s][2:]) / 2 for s in range(6)]
        diffs = [a - b for a, b in zip(ref, other)]
        assert c.seeds == tuple(range(6))
        assert c.difference.estimate == pytest.approx(sum(diffs) / 6)
        assert c.difference.p == pytest.approx(stats.ttest_rel(ref, other).pvalue)
        raw.append(c.difference.p)
    assert [c.p_holm for c in e.comparisons] == pytest.approx(holm(raw))
    md = (deep / "table.md").read_text()
    assert "## Primary endpoint (fixed before the run)" in md and "S-Cyc − cyclic_flat_top" in md
    assert "picked per level after the fact; descriptive" in md
    assert (deep / "margins.png").stat().st_size > 0


def test_the_long_csv_rebuilds_the_same_table(deep, tmp_path):
    make_table(deep, select="best_val", endpoint=0.985)
    long = pd.read_csv(deep / "runs.csv")
    assert len(long) == sum(len(v) for v in ROWS.values()) * len(SPARS)
    assert {"run", "schedule", "seed", "round", "sparsity", "best_val_acc", "test_acc_at_best_val", "test_acc"} <= set(
        long.columns
    ) or {"run", "schedule", "seed", "round", "sparsity", "test_acc_at_best_val", "test_acc"} <= set(long.columns)
    out = tmp_path / "rebuilt"
    assert main([str(deep), "--from-long", str(deep / "runs.csv"), "--out", str(out), "--select", "best_val",
                 "--endpoint", "0.985"]) == 0  # fmt: skip
    pd.testing.assert_frame_equal(pd.read_csv(out / "table.csv"), pd.read_csv(deep / "table.csv"))
    body = lambda p: p.read_text().split("\n", 4)[4]  # noqa: E731  (past the title and the sweep line)
    assert body(out / "table.md") == body(deep / "table.md")


@pytest.mark.parametrize("csv", sorted((ROOT / "docs" / "results").glob("*_runs.csv")), ids=lambda p: p.name)
def test_committed_tables_rebuild_from_their_long_csv(csv, tmp_path):
    """Every committed table with a long CSV beside it is what make_table makes of that CSV."""
    stem = csv.name.removesuffix("_runs.csv")
    committed = ROOT / "docs" / "results" / f"{stem}.csv"
    meta = json.loads((csv.parent / f"{stem}_runs.json").read_text())  # how the table was made (select, endpoint)
    argv = [str(csv.parent), "--from-long", str(csv), "--out", str(tmp_path), *meta["args"]]
    assert main(argv) == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "table.csv"), pd.read_csv(committed))


@given(st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=12))
def test_holm_matches_its_definition(ps):
    adjusted = holm(ps)
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    for rank, i in enumerate(order):
        expected = min(1.0, max((m - r) * ps[order[r]] for r in range(rank + 1)))
        assert adjusted[i] == pytest.approx(expected)
        assert ps[i] <= adjusted[i] + 1e-12 <= 1 + 1e-12
    assert holm([math.nan, 0.01]) == [math.nan, 0.01] or math.isnan(holm([math.nan, 0.01])[0])


def _bad(d, kind):
    run = fake_run(d, "bad", "scyc", 0, [0.9, 0.8])
    if kind == "non-numeric":
        res = pd.read_csv(run / "results.csv")
        res["test_acc"] = res["test_acc"].astype(object)
        res.loc[1, "test_acc"] = "abc"
        res.to_csv(run / "results.csv", index=False)
        return "test_acc 'abc' in line 3 is not a number"
    if kind == "summary-list":
        (run / "summary.json").write_text(json.dumps(["complete"]))
        return "summary.json is not a mapping (a list)"
    if kind == "config-list":
        (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump([1, 2]))
        return ".hydra/config.yaml is not a mapping (a list)"
    (run / "summary.json").write_text(
        json.dumps({"status": "complete", "schedule": "scyc", "seed": "abc", "rounds": 2})
    )
    return "summary.json: seed 'abc' is not an integer"


@pytest.mark.parametrize("kind", ["non-numeric", "summary-list", "config-list", "seed"])
def test_make_table_names_a_bad_file_in_one_line_and_exits_nonzero(tmp_path, capsys, kind):
    d = tmp_path / "s"
    fake_run(d, "good", "scyc", 1, [0.9, 0.8])
    reason = _bad(d, kind)
    assert main([str(d)]) == 1
    err = capsys.readouterr()
    assert "Traceback" not in err.err and reason in err.out
    assert err.err.strip().count("\n") == 0 and err.err.startswith("error: 1 run(s) have unreadable files")


@pytest.mark.parametrize(("args", "says"), [
    (["--decimals", "-1"], "--decimals -1: must be an integer from 0 to 6"),
    (["--endpoint", "1.5"], "--endpoint 1.5: must be a sparsity between 0 and 1"),
    (["--out", "FILE"], "is a file; give a folder"),
])  # fmt: skip
def test_make_table_refuses_bad_arguments_before_writing(tmp_path, capsys, args, says):
    d = tmp_path / "s"
    fake_run(d, "good", "scyc", 1, [0.9, 0.8])
    (tmp_path / "FILE").write_text("x")
    args = [str(tmp_path / "FILE") if a == "FILE" else a for a in args]
    with pytest.raises(SystemExit) as exc:
        main([str(d), *args])
    assert exc.value.code == 2 and says in capsys.readouterr().err
    assert sorted(p.name for p in d.iterdir()) == ["good"]  # nothing written
