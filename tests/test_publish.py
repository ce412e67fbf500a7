"""Publishing is a step of its own (issue 27, item 1): make reproduce-table writes under outputs/ only, and
make publish refuses a table whose rows, seeds or levels differ from the committed one unless forced."""

from __future__ import annotations

import subprocess

from test_tables import ROOT, fake_run

from scyc.sweep.publish import main
from scyc.sweep.tables import make_table


def _dry_run(*args: str) -> str:
    proc = subprocess.run(["make", "-n", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_reproduce_table_writes_under_outputs_only():
    for target in (["reproduce-table", "SEEDS=0", "ROUNDS=2", "ARGS=dataset.train_subset=1000 train.epochs=1"],
                   ["reproduce-table", "TABLE=smoke", "SCHEDULES=scyc,constant", "SEEDS=0,1"],
                   ["reproduce-pruners", "PRUNERS=lamp"], ["reproduce-table-conv"]):  # fmt: skip
        text = _dry_run(*target)
        assert "docs/" not in text, (target, [line for line in text.splitlines() if "docs/" in line])
        assert "hydra.sweep.dir=outputs/tables/" in text
    assert "scripts/publish_table.py outputs/tables/smoke docs/results/smoke" in _dry_run("publish", "TABLE=smoke")


def _sweep(d, seeds, rounds):
    for schedule in ("scyc", "cyclic"):
        for seed in seeds:
            fake_run(d, f"{schedule}_{seed}", schedule, seed, [0.9 - 0.01 * r for r in range(rounds)])
    make_table(d, select="best_val", endpoint=0.5)
    return d


def test_publish_copies_and_refuses_a_table_of_another_shape(tmp_path, capsys):
    dest = tmp_path / "docs" / "results" / "t"
    big = _sweep(tmp_path / "big", range(6), 4)
    assert main([str(big), str(dest)]) == 0
    published = sorted(p.name for p in dest.parent.iterdir())
    assert published == ["t.csv", "t.md", "t.png", "t_margins.png", "t_runs.csv", "t_runs.json"]
    before = {p.name: p.read_bytes() for p in dest.parent.iterdir()}

    small = _sweep(tmp_path / "small", range(1), 2)
    assert main([str(small), str(dest)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing to replace" in err and "cyclic: 6 seed(s) x 4 level(s)" in err
    assert {p.name: p.read_bytes() for p in dest.parent.iterdir()} == before  # nothing changed

    assert main([str(small), str(dest), "--force"]) == 0
    assert (dest.parent / "t.md").read_bytes() != before["t.md"]


def test_publish_refuses_a_sweep_without_a_table(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), str(tmp_path / "docs" / "x")]) == 2
    assert "no table to publish" in capsys.readouterr().err and not (tmp_path / "docs").exists()
