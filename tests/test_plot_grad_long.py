"""scripts/plot_grad_long.py: claim (i)'s figures from a table's long CSV (the three populations, and --bn the
BatchNorm-followed layers' gradient std, weight norm and their product), relative to each run's dense round."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT


def _script():
    spec = importlib.util.spec_from_file_location("plot_grad_long", ROOT / "scripts" / "plot_grad_long.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def long_csv(tmp_path, bn: bool = True):
    rows = []
    for run, schedule in (("0_scyc", "scyc"), ("1_cyclic", "cyclic")):
        for r in range(3):
            s = 1 - 0.8**r
            row = {"run": run, "schedule": schedule, "seed": 0, "round": r, "sparsity": s}
            for when in ("start", "end"):
                row |= {f"grad_std_{when}_surviving": 1.0 + r, f"grad_std_{when}_all_zeroed": (1.0 + r) * (1 - s) ** 0.5,
                        f"grad_std_{when}_all_raw": 1.0 + r / 2, f"wnorm_{when}": 10.0 - r}  # fmt: skip
                if bn:
                    row |= {f"grad_std_{when}_surviving_bn": 2.0 * (1 + r), f"wnorm_{when}_bn": 4.0 / (1 + r),
                            f"grad_std_x_wnorm_{when}_bn": 8.0}  # fmt: skip
            rows.append(row)
    path = tmp_path / "runs.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_ratios_are_relative_to_each_runs_dense_round(tmp_path):
    plot = _script()
    long = pd.read_csv(long_csv(tmp_path))
    r = plot.ratios(long, "end")
    assert np.allclose(r.groupby("run")["surviving"].apply(list).iloc[0], [1, 2, 3])
    bn = plot.ratios(long, "end", plot.BN_PANELS)
    assert np.allclose(bn[list(plot.BN_PANELS)[2]], 1.0)  # std x norm constant: scale-free width unchanged
    assert np.allclose(bn[list(plot.BN_PANELS)[1]].iloc[:3], [1, 1 / 2, 1 / 3])


@pytest.mark.parametrize("bn", [False, True])
def test_figures_are_written(tmp_path, bn):
    out = tmp_path / "fig.png"
    assert _script().main([str(long_csv(tmp_path)), "--out", str(out), *(["--bn"] if bn else [])]) == 0
    assert out.stat().st_size > 10_000


def test_a_csv_without_the_columns_is_refused_in_one_line(tmp_path, capsys):
    out = tmp_path / "fig.png"
    assert _script().main([str(long_csv(tmp_path, bn=False)), "--bn", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "grad_std_end_surviving_bn" in err and not out.exists()
