"""Fit S-Cyc's S-curve to the oracle's choices: does the best max_lr rise with sparsity, and along which curve?

    python scripts/fit_scurve.py outputs/sweeps/<oracle sweep>                  # -> conf/schedule/scurve_fit.yaml
    python scripts/fit_scurve.py <dir> [<dir> ...] --name scurve_fit --figure docs/figures/scurve_fit.png
    python train.py schedule=scurve_fit                                            # the fitted schedule runs

Every run under the given folders that has an ``oracle.csv`` contributes the ``max_lr`` it chose in each
round (by validation accuracy) at that round's sparsity. ``max_lr_low``, ``max_lr_high`` and ``beta`` of
``max_lr = low + (high - low) * S(s; beta)`` are fitted by least squares over all (run, round) points
(scipy.optimize.least_squares from several starting betas; ``base_lr <= low <= high``). The YAML keeps the
oracle's within-round shape (``shape``, ``base_lr``, ``cycles_per_round``). Spearman's rank correlation
between sparsity and the chosen max_lr answers the paper's premise (that sparser networks want a larger LR).
The figure shows every candidate's validation accuracy (mean over runs, colour), each run's choice, the
fitted curve and the S-Cyc preset's curve (``--preset``, default conf/schedule/scyc.yaml).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd
import yaml

from scyc.schedules.policies import s_curve
from scyc.sweep.rundirs import RunDir, find_run_dirs

ROOT = Path(__file__).resolve().parents[1]

SHAPE_KEYS = ("shape", "base_lr", "cycles_per_round")
ORACLE_COLUMNS = ("round", "max_lr", "sparsity", "val_acc", "chosen")  # what the fit and the figure read
PARAMETERS = 3  # max_lr_low, max_lr_high, beta


def refuse(message: str) -> NoReturn:
    """One line on stderr and exit 2, as train.py refuses bad input."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def read_oracle_runs(dirs: list[Path]) -> tuple[pd.DataFrame, dict]:
    """All oracle.csv rows (with a ``run`` column) and the oracle's schedule config (of the first run)."""
    frames, schedule = [], None
    for d in dirs:
        for run in map(RunDir, find_run_dirs(d) if not (Path(d) / "oracle.csv").exists() else [d]):
            path = run.path / "oracle.csv"
            try:
                oracle = run.oracle
            except Exception as exc:  # pandas raises its own errors for a damaged file
                refuse(f"{path} cannot be read ({' '.join(f'{type(exc).__name__}: {exc}'.split())[:200]})")
            if oracle is None:
                continue
            if missing := [c for c in ORACLE_COLUMNS if c not in oracle]:
                refuse(f"{path} lacks the column(s) {', '.join(missing)}: not an oracle.csv of a schedule=oracle run")
            frames.append(oracle.assign(run=str(run.path)))
            schedule = schedule or run.config.get("schedule")
    if not frames:
        refuse(f"no oracle.csv under {', '.join(map(str, dirs))} (run schedule=oracle first)")
    return pd.concat(frames, ignore_index=True), schedule or {}


def check_points(chosen: pd.DataFrame, dirs: list[Path]) -> None:
    """Refuse too few choices to fit: at least as many as the curve has parameters, at two sparsities or more
    (what a killed oracle run leaves may be one round)."""
    points, sparsities = len(chosen), chosen["sparsity"].nunique()
    if points < PARAMETERS or sparsities < 2:
        refuse(f"the oracle.csv under {', '.join(map(str, dirs))} hold {points} chosen max_lr (rows with chosen=1) "
               f"at {sparsities} sparsit{'y' if sparsities == 1 else 'ies'}: fitting the S-curve's {PARAMETERS} "
               "parameters needs at least 3, at 2 sparsities or more (resume a killed oracle run first)")  # fmt: skip


def curve(s: np.ndarray, low: float, high: float, beta: float) -> np.ndarray:
    return low + (high - low) * np.array([s_curve(float(x), beta) for x in s])


def fit(s: np.ndarray, y: np.ndarray, floor: float) -> dict[str, float]:
    """Least squares over (low, high - low, log beta), from several starting betas; the best fit wins."""
    from scipy.optimize import least_squares

    top = float(y.max())
    best = None
    for beta0 in (1.0, 3.0, 5.0, 10.0):
        x0 = [max(floor, float(y.min())), max(top - float(y.min()), 1e-6), np.log(beta0)]
        res = least_squares(
            lambda p: curve(s, p[0], p[0] + p[1], float(np.exp(p[2]))) - y,
            x0,
            bounds=([floor, 0.0, np.log(0.1)], [max(top, floor + 1e-9), max(top, 1e-9), np.log(50.0)]),
        )
        if best is None or res.cost < best.cost - 1e-15:
            best = res
    low, delta, log_beta = best.x
    rmse = float(np.sqrt(2 * best.cost / len(y)))
    return {"max_lr_low": float(low), "max_lr_high": float(low + delta), "beta": float(np.exp(log_beta)), "rmse": rmse}


def plot(
    df: pd.DataFrame, params: dict, preset: dict | None, path: Path, title: str, rows: dict[str, dict] | None = None
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = df.groupby(["round", "max_lr"], as_index=False).agg(sparsity=("sparsity", "mean"), val=("val_acc", "mean"))
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    sc = ax.scatter(grid["sparsity"], grid["max_lr"], c=100 * grid["val"], cmap="viridis", s=90, marker="s")
    fig.colorbar(sc, ax=ax, label="validation accuracy (%), mean over runs")
    chosen = df[df["chosen"] == 1]
    runs = sorted(chosen["run"].unique())
    for i, (_, g) in enumerate(chosen.groupby("run")):
        jitter = (i - (len(runs) - 1) / 2) * 0.004
        ax.scatter(g["sparsity"] + jitter, g["max_lr"], marker="x", color="red", s=28, lw=1.2,
                   label="oracle's choice (each run)" if i == 0 else None)  # fmt: skip
    s = np.linspace(0, float(df["sparsity"].max()), 200)
    fitted = (params["max_lr_low"], params["max_lr_high"], params["beta"])
    ax.plot(s, curve(s, *fitted), color="black", lw=1.8,
            label="fitted S-curve: low {:.3g}, high {:.3g}, beta {:.3g}".format(*fitted))  # fmt: skip
    if preset:
        p = (preset["max_lr_low"], preset["max_lr_high"], preset["beta"])
        ax.plot(s, curve(s, *p), color="C1", lw=1.5, ls="--",
                label="S-Cyc preset: low {:.3g}, high {:.3g}, beta {:.3g}".format(*p))  # fmt: skip
    for i, (name, row) in enumerate((rows or {}).items()):  # the curves the results table ran
        p = (row["max_lr_low"], row["max_lr_high"], row["beta"])
        ax.plot(s, curve(s, *p), color=f"C{i + 2}", lw=1.5, ls="-.",
                label=f"table row {name}: low {{:.3g}}, high {{:.3g}}, beta {{:.3g}}".format(*p))  # fmt: skip
    ax.set_xlabel("sparsity of the network trained in the round")
    ax.set_ylabel("max_lr")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7.5, loc="upper left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="oracle sweep dirs or run dirs")
    parser.add_argument("--name", default="scurve_fit", help="schedule name: writes conf/schedule/<name>.yaml")
    parser.add_argument("--conf-dir", type=Path, default=ROOT / "conf" / "schedule")
    parser.add_argument("--figure", type=Path, default=None, help="default: <first dir>/scurve_fit.png")
    parser.add_argument("--preset", type=Path, default=ROOT / "conf" / "schedule" / "scyc.yaml")
    parser.add_argument("--row", type=Path, action="append", default=[],
                        help="an S-curve schedule YAML the results table ran (e.g. conf/schedule/tuned/"
                             "fmnist_lenet300/scurve_fit.yaml), drawn beside the fit; repeatable")  # fmt: skip
    args = parser.parse_args(argv)
    rows = {}
    for path in args.row:
        try:
            row = yaml.safe_load(path.read_text())
            rows[str(row["name"])] = {k: float(row[k]) for k in ("max_lr_low", "max_lr_high", "beta")}
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as exc:
            refuse(f"--row {path}: not an S-curve schedule YAML with max_lr_low, max_lr_high and beta ({exc})")

    df, oracle = read_oracle_runs(args.dirs)
    chosen = df[df["chosen"] == 1]
    check_points(chosen, args.dirs)
    s, y = chosen["sparsity"].to_numpy(float), chosen["max_lr"].to_numpy(float)
    params = fit(s, y, floor=float(oracle.get("base_lr") or 0.0))
    from scipy.stats import spearmanr

    rho, p_value = spearmanr(s, y)
    report = {
        **params,
        "runs": int(chosen["run"].nunique()),
        "points": len(y),
        "spearman_rho": float(rho),
        "spearman_p": float(p_value),
        "chosen_by_round": chosen.groupby("round")["max_lr"].agg(["mean", "min", "max"]).round(6).to_dict("index"),
    }
    verdict = "rise" if rho > 0 and p_value < 0.05 else "fall" if rho < 0 and p_value < 0.05 else "do not clearly move"
    header = (
        f"# Fitted by scripts/fit_scurve.py to the oracle's choices of {report['runs']} run(s) in "
        f"{', '.join(map(str, args.dirs))}\n# ({len(y)} points; RMSE {params['rmse']:.4g}; the choices {verdict} with "
        f"sparsity: Spearman rho {rho:.3f}, p {p_value:.3g}).\n"
    )
    body = {"name": args.name, "policy": "scurve", **{k: params[k] for k in ("max_lr_low", "max_lr_high", "beta")}}
    body |= {k: oracle[k] for k in SHAPE_KEYS if k in oracle}
    out = args.conf_dir / f"{args.name}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + yaml.safe_dump(body, sort_keys=False))
    figure = args.figure or args.dirs[0] / "scurve_fit.png"
    preset = yaml.safe_load(args.preset.read_text()) if args.preset and args.preset.exists() else None
    plot(df, params, preset, figure, f"oracle's choices ({report['runs']} runs) and the S-curve fitted to them", rows)
    (figure.with_suffix(".json")).write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"{out}\n{figure}\nchoices {verdict} with sparsity (Spearman rho {rho:.3f}, p {p_value:.3g}); "
          f"fit: low {params['max_lr_low']:.4g}, high {params['max_lr_high']:.4g}, beta {params['beta']:.3g}, "
          f"RMSE {params['rmse']:.3g}")  # fmt: skip
    return report


if __name__ == "__main__":
    main()
