"""Equal tuning budget: every schedule of the table gets its LR knobs from a grid of the same size.

    make tune SETTING=fmnist_lenet300            # = python scripts/tune.py fmnist_lenet300
    python scripts/tune.py fmnist_conv --schedules scyc,sgdr
    python scripts/tune.py paper_resnet20_cifar10  # a GPU's work

A setting (conf/tuning/<setting>.yaml, or a path to such a file) gives the Hydra overrides of its runs, the
tuning seeds (disjoint from the reporting seeds 0-5), the length of every tuning run (``rounds``), the objective
(``metric`` averaged over the rounds ``score`` selects: ``{min_sparsity: s}``, the rounds at sparsity >= s, or
``{first_rounds: K}``), and the grids. ``peaks`` is the one peak-LR grid shared by every schedule (lr_rewind:
lr; warmup, cyclic, sgdr: max_lr; gradscale: max_lr_dense). S-Cyc's and the fitted S-curve's grid is either a
list of (max_lr_low, max_lr_high) pairs (``scyc: [[lo, hi], ...]``) or the top on the shared grid with the bottom
at a fixed fraction of it (``scyc: {low_fraction: f}``; the fitted S-curve keeps its own low/high ratio). Each
grid point is one Hydra multirun over the seeds into <runs-dir>/<schedule>/<point>/seed<s>, ``jobs`` points at a
time; finished runs are skipped and unfinished ones resumed (resume=true), so a second call continues an
interrupted tuning and, once all is done, only rewrites the outputs, with the same choices. A point's score is
the objective's mean over the seeds; the best wins, ties going to the smaller LR. The oracle's grid is then
``oracle_points`` values spaced geometrically from max_lr_low / oracle_widen to max_lr_high * oracle_widen of the
tuned S-Cyc envelope, with S-Cyc's base_lr. ``ablation: true`` also writes cyclic_flat_top: cyclical LR flat at
S-Cyc's tuned top (the shape-against-level row of the table).

Writes conf/schedule/tuned/<setting>/<schedule>.yaml (use: schedule=tuned/<setting>/scyc; the schedule's name
is kept, so tables find its rows), docs/tuning/<setting>.md (the grid table) and docs/tuning/<setting>_runs.csv
(every tuning run's rows).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TABLE = ("scyc", "lr_rewind", "warmup", "cyclic", "sgdr", "gradscale", "scurve_fit")
PEAK_KNOB = {"lr_rewind": "lr", "warmup": "max_lr", "cyclic": "max_lr", "sgdr": "max_lr", "gradscale": "max_lr_dense"}
FIXED = ["progress=false", "wandb.mode=disabled", "analysis.grad_every_round=false", "analysis.figures=false"]
NEEDS = {"gradscale": ["analysis.grad_every_round=true"]}  # gradscale reads the gradient measurement
ABLATION = "cyclic_flat_top"  # cyclical LR flat at S-Cyc's tuned max_lr_high
RUN_COLUMNS = ["round", "sparsity", "max_lr", "val_acc", "best_val_acc", "test_acc_at_best_val"]


class SettingError(ValueError):
    """A setting file or argument that cannot be used: the message names the value and what is allowed."""


def _g(x: float) -> float:
    return float(f"{x:.4g}")


def points(setting: dict, schedule: str, base: dict[str, dict]) -> list[dict[str, float]]:
    """The schedule's grid. S-Cyc: its pairs, or each shared peak as the top with the bottom at low_fraction of
    it. The fitted S-curve: with pairs, its envelope scaled by the multiples S-Cyc's pairs are of S-Cyc's own
    envelope; with low_fraction, each shared peak as the top and its own low/high ratio below. The others: one
    peak-LR knob on the shared grid (gradscale: max_lr_dense)."""
    scyc = setting["scyc"]
    if schedule == "scyc":
        if isinstance(scyc, dict):
            return [{"max_lr_low": _g(scyc["low_fraction"] * p), "max_lr_high": float(p)} for p in setting["peaks"]]
        return [{"max_lr_low": float(lo), "max_lr_high": float(hi)} for lo, hi in scyc]
    if schedule == "scurve_fit":
        lo, hi = base[schedule]["max_lr_low"], base[schedule]["max_lr_high"]
        if isinstance(scyc, dict):
            return [{"max_lr_low": _g(lo / hi * p), "max_lr_high": float(p)} for p in setting["peaks"]]
        factors = [float(pair[0]) / base["scyc"]["max_lr_low"] for pair in scyc]
        return [{"max_lr_low": _g(lo * f), "max_lr_high": _g(hi * f)} for f in factors]
    return [{PEAK_KNOB[schedule]: float(v)} for v in setting["peaks"]]


def label(point: dict[str, float], sep: str = "_") -> str:
    return sep.join(f"{v:g}" for v in point.values())


def status(run_dir: Path) -> str | None:
    try:
        return json.loads((run_dir / "summary.json").read_text()).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def complete(run_dir: Path) -> bool:
    return status(run_dir) == "complete"


def short_of(run_dir: Path, rounds: int) -> bool:
    """A complete run of fewer rounds than the setting's (the setting was made longer): it is extended."""
    try:
        done = json.loads((run_dir / "summary.json").read_text()).get("rounds_completed")
    except (OSError, ValueError, AttributeError):
        return False
    return complete(run_dir) and isinstance(done, int) and done < rounds


def scored_rounds(res, score: dict, rounds: int):
    """The results rows the objective averages: sparsity >= min_sparsity, or the first K rounds."""
    if "min_sparsity" in score:
        return res[res["sparsity"] >= float(score["min_sparsity"]) - 1e-9]
    return res[res["round"] < int(score.get("first_rounds", rounds))]


def expected_rounds(score: dict, rounds: int, rate: float) -> int:
    """How many rounds of a complete run the objective averages (sparsity after round r is 1 - (1 - rate)^r)."""
    if "min_sparsity" in score:
        return sum(1 - (1 - rate) ** r >= float(score["min_sparsity"]) - 1e-9 for r in range(rounds))
    return min(int(score.get("first_rounds", rounds)), rounds)


def score(point_dir: Path, seeds: list[int], rounds: int, objective: dict, metric: str, rate: float):
    """Mean and std over seeds of the metric's mean over the scored rounds; NaN unless every seed finished.
    Also returns the finished runs' rows (for the long CSV)."""
    import pandas as pd

    per_seed, frames = [], []
    need = expected_rounds(objective, rounds, rate)
    for s in seeds:
        run = point_dir / f"seed{s}"
        res = pd.read_csv(run / "results.csv") if complete(run) else None
        if res is None or len(res) != rounds or res[RUN_COLUMNS].isna().any().any():
            return math.nan, math.nan, len(per_seed), frames
        rows = scored_rounds(res, objective, rounds)
        if len(rows) != need:
            return math.nan, math.nan, len(per_seed), frames
        per_seed.append(float(rows[metric].mean()))
        frames.append(res[RUN_COLUMNS].assign(seed=s))
    mean = sum(per_seed) / len(per_seed)
    return mean, math.sqrt(sum((x - mean) ** 2 for x in per_seed) / max(len(per_seed) - 1, 1)), len(per_seed), frames


def load_setting(arg: str) -> tuple[dict, Path]:
    """Read and check a setting; a SettingError names the file and the value."""
    import yaml

    path = Path(arg) if arg.endswith(".yaml") else ROOT / "conf" / "tuning" / f"{arg}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in (ROOT / "conf" / "tuning").glob("*.yaml")))
        raise SettingError(f"setting {arg!r}: no file {path}; known settings: {known}")
    try:
        setting = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SettingError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(setting, dict):
        raise SettingError(f"{path}: must be a mapping of keys (overrides, rounds, seeds, peaks, scyc, ...)")
    missing = [k for k in ("overrides", "rounds", "seeds", "peaks", "scyc") if k not in setting]
    if missing:
        raise SettingError(f"{path}: missing key(s) {', '.join(missing)}")

    def integer(key, value, least):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise SettingError(f"{path}: {key} must be an integer >= {least}, got {value!r}")
        return value

    integer("rounds", setting["rounds"], 1)
    integer("jobs", setting.get("jobs", 1), 1)
    integer("oracle_points", setting.get("oracle_points", 5), 2)
    if not isinstance(setting["seeds"], list) or not setting["seeds"]:
        raise SettingError(f"{path}: seeds must be a non-empty list of integers, got {setting['seeds']!r}")
    for s in setting["seeds"]:
        integer("each seed", s, 0)
    if not isinstance(setting["overrides"], list) or not all(isinstance(o, str) for o in setting["overrides"]):
        raise SettingError(f"{path}: overrides must be a list of key=value strings, got {setting['overrides']!r}")
    peaks = setting["peaks"]
    if not isinstance(peaks, list) or not peaks or not all(_positive(p) for p in peaks):
        raise SettingError(f"{path}: peaks must be a non-empty list of positive learning rates, got {peaks!r}")
    scyc = setting["scyc"]
    if isinstance(scyc, dict):
        if set(scyc) != {"low_fraction"} or not _positive(scyc["low_fraction"]) or scyc["low_fraction"] >= 1:
            raise SettingError(
                f"{path}: scyc must be {{low_fraction: f}} with 0 < f < 1, or a list of pairs; got {scyc!r}"
            )
    elif (
        not isinstance(scyc, list)
        or len(scyc) != len(peaks)
        or not all(isinstance(p, list) and len(p) == 2 and all(_positive(x) for x in p) and p[0] <= p[1] for p in scyc)
    ):
        raise SettingError(f"{path}: scyc must list as many (max_lr_low <= max_lr_high) positive pairs as peaks "
                           f"({len(peaks)}), or be {{low_fraction: f}}; got {scyc!r}")  # fmt: skip
    objective = setting.get("score", {"first_rounds": setting["rounds"]})
    if not (isinstance(objective, dict) and len(objective) == 1 and (
        (set(objective) == {"min_sparsity"} and _positive(objective["min_sparsity"]) and objective["min_sparsity"] < 1)
        or (set(objective) == {"first_rounds"} and isinstance(objective["first_rounds"], int)
            and 1 <= objective["first_rounds"] <= setting["rounds"])
    )):  # fmt: skip
        raise SettingError(f"{path}: score must be {{min_sparsity: s}} (0 < s < 1) or {{first_rounds: K}} "
                           f"(1 <= K <= rounds), got {objective!r}")  # fmt: skip
    setting["score"] = objective
    return setting, path


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("setting", help="conf/tuning/<setting>.yaml's name, or a path to a setting file")
    parser.add_argument("--schedules", default=",".join(TABLE), help="a subset of " + ",".join(TABLE))
    parser.add_argument("--metric", default=None, help="results.csv column scored (default: the setting's metric)")
    parser.add_argument("--runs-dir", type=Path, default=None, help="default: outputs/tuning/<setting>")
    parser.add_argument("--conf-dir", type=Path, default=ROOT / "conf" / "schedule" / "tuned")
    parser.add_argument("--docs-dir", type=Path, default=ROOT / "docs" / "tuning")
    parser.add_argument("--retry-failed", action="store_true",
                        help="run again the points whose run failed (a deterministic run fails the same way: by "
                             "default a failed point stays failed)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        return tune(args)
    except SettingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def tune(args) -> dict[str, dict]:
    import pandas as pd
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from scyc.config import register_configs
    from scyc.foundations.registry import ConfigError
    from scyc.schedules import build_schedule

    setting, path = load_setting(args.setting)
    name, rounds, objective = path.stem, int(setting["rounds"]), setting["score"]
    seeds, overrides = [int(s) for s in setting["seeds"]], list(setting["overrides"])
    metric = args.metric or setting.get("metric", "val_acc")
    if metric not in RUN_COLUMNS[3:]:
        raise SettingError(f"metric {metric!r}: must be one of {', '.join(RUN_COLUMNS[3:])}")
    options = {s: s for s in TABLE} | dict(setting.get("options") or {})
    schedules = [s for s in args.schedules.split(",") if s]
    if not schedules or set(schedules) - set(TABLE):
        raise SettingError(f"--schedules {args.schedules!r}: must be among {', '.join(TABLE)}")
    runs_dir = args.runs_dir or ROOT / "outputs" / "tuning" / name
    register_configs()
    try:
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            composed = {s: compose("config", overrides=[*overrides, f"schedule={options[s]}"]) for s in TABLE}
            oracle = compose("config", overrides=[*overrides, f"schedule={setting.get('oracle', 'oracle')}"]).schedule
    except (HydraException, OmegaConfBaseException) as exc:
        raise SettingError(f"{path}: overrides {overrides} do not compose: {str(exc).splitlines()[0]}") from None
    rate = float(composed["scyc"].pruner.rate)
    base = {s: OmegaConf.to_container(c.schedule, resolve=True) for s, c in composed.items()}
    try:
        for s in schedules:  # every grid point must build before anything runs
            for p in points(setting, s, base):
                build_schedule({**base[s], **p})
    except ConfigError as exc:
        raise SettingError(f"{path}: a grid point does not build: {exc}") from None

    def run_point(s: str, p: dict) -> None:
        point_dir = runs_dir / s / label(p)
        done = ("complete",) if args.retry_failed else ("complete", "failed")
        todo = [
            x for x in seeds if status(point_dir / f"seed{x}") not in done or short_of(point_dir / f"seed{x}", rounds)
        ]
        if not todo:
            return
        cmd = [sys.executable, str(ROOT / "train.py"), "-m", *overrides, f"schedule={options[s]}",
               *[f"schedule.{key}={v!r}" for key, v in p.items()], f"seed={','.join(map(str, todo))}",
               f"pruner.rounds={rounds}", "resume=true", *FIXED, *NEEDS.get(s, []),
               f"hydra/launcher={setting.get('launcher', 'basic')}", f"hydra.sweep.dir={point_dir}",
               "hydra.sweep.subdir=seed${seed}", "hydra.callbacks.results_table.enabled=false"]  # fmt: skip
        print(f"tune {name}: {s} {p} seeds {todo}", flush=True)
        point_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        with open(point_dir / "tune.log", "a") as log:
            proc = subprocess.run(cmd, cwd=ROOT, check=False, stdout=log, stderr=subprocess.STDOUT, env=env)
        print(f"tune {name}: {s} {p} done (exit {proc.returncode}; log {point_dir / 'tune.log'})", flush=True)

    jobs = [(s, p) for s in schedules for p in points(setting, s, base)]
    with ThreadPoolExecutor(max_workers=int(setting.get("jobs", 1))) as pool:
        list(pool.map(lambda job: run_point(*job), jobs))

    results: dict[str, dict] = {}
    long_rows = []
    for s in schedules:
        rows = []
        for p in points(setting, s, base):
            mean, std, got, frames = score(runs_dir / s / label(p), seeds, rounds, objective, metric, rate)
            rows.append((p, mean, std, got))
            long_rows += [f.assign(schedule=s, point=label(p, "/")) for f in frames]
        scored = [i for i, r in enumerate(rows) if not math.isnan(r[1])]
        if not scored:
            sys.exit(f"error: no grid point of {s} finished (see {runs_dir / s})")
        best = max(scored, key=lambda i: (rows[i][1], -i))  # ties: the earlier (smaller) grid point
        results[s] = {"rows": rows, "best": best, "values": rows[best][0]}

    window = (f"the rounds at sparsity >= {100 * objective['min_sparsity']:g} %" if "min_sparsity" in objective
              else f"the first {objective['first_rounds']} rounds")  # fmt: skip
    header = f"# Tuned by `python scripts/tune.py {name}` ({rounds}-round runs, {metric} over {window}, seeds {seeds}): docs/tuning/{name}.md\n"
    out = args.conf_dir / name
    out.mkdir(parents=True, exist_ok=True)
    for s, r in results.items():
        chosen = {k: v for k, v in {**base[s], **r["values"]}.items() if v not in (None, {})}  # the schema's defaults
        (out / f"{s}.yaml").write_text(header + OmegaConf.to_yaml(chosen))
    setting_name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    scyc_rule = (f"S-Cyc: max_lr_high on the shared grid, max_lr_low = {setting['scyc']['low_fraction']:g} x it; the "
                 "fitted S-curve: max_lr_high on the shared grid, its own low/high ratio"
                 if isinstance(setting["scyc"], dict) else "S-Cyc: its listed pairs")  # fmt: skip
    lines = [f"# LR tuning: {name}", "",
             f"`python scripts/tune.py {name}` (`make tune SETTING={name}`); setting `{setting_name}`: "
             f"`{' '.join(overrides)}`, every tuning run {rounds} rounds long, tuning seeds {seeds} (disjoint from "
             f"the reporting seeds). Objective: mean `{metric}` over {window}, then the mean over the seeds (%"
             + (", ± std over the seeds" if len(seeds) > 1 else "") + "). Shared peak-LR grid "
             f"{[float(p) for p in setting['peaks']]} (lr_rewind: lr; warmup, cyclic, sgdr: max_lr; gradscale: "
             f"max_lr_dense); {scyc_rule}. **Bold**: chosen (ties: the smaller LR). Every run's rows: "
             f"`docs/tuning/{name}_runs.csv`. Use `schedule=tuned/{name}/<schedule>`.", ""]  # fmt: skip
    n = max(len(r["rows"]) for r in results.values())
    lines += ["| schedule | knob | " + " | ".join(f"point {i + 1}" for i in range(n)) + " |", "|---" * (n + 2) + "|"]
    for s, r in results.items():
        cells = []
        for i, (p, mean, std, _got) in enumerate(r["rows"]):
            value = f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if len(seeds) > 1 else "")
            cell = f"{label(p, ' / ')}: " + (value if not math.isnan(mean) else "failed")
            cells.append(f"**{cell}**" if i == r["best"] else cell)
        lines.append(f"| {s} | {' / '.join(r['rows'][0][0])} | " + " | ".join(cells) + " |")
    if "scyc" in results:
        lo, hi = results["scyc"]["values"]["max_lr_low"], results["scyc"]["values"]["max_lr_high"]
        widen, m = float(setting.get("oracle_widen", 1.5)), int(setting.get("oracle_points", 5))
        floor = base["scyc"]["base_lr"]
        a, b = max(lo / widen, floor), hi * widen
        grid = sorted({_g(a * (b / a) ** (i / (m - 1))) for i in range(m)})
        oracle_cfg = {**OmegaConf.to_container(oracle, resolve=True), "grid": grid, "base_lr": floor}
        oracle_cfg = {k: v for k, v in oracle_cfg.items() if v not in (None, {})}
        build_schedule(oracle_cfg)
        (out / "oracle.yaml").write_text(header + OmegaConf.to_yaml(oracle_cfg))
        lines += ["", f"oracle: grid {grid} (the tuned S-Cyc envelope {lo:g}-{hi:g} widened x{widen:g} each way), "
                  f"base_lr {floor:g} (S-Cyc's)."]  # fmt: skip
        results["oracle"] = {"values": {"grid": grid, "base_lr": floor}}
        if setting.get("ablation"):
            flat = {k: v for k, v in {**base["cyclic"], "name": ABLATION, "max_lr": hi}.items() if v not in (None, {})}
            build_schedule(flat)
            (out / f"{ABLATION}.yaml").write_text(
                f"# The shape-against-level ablation: cyclical LR flat at S-Cyc's tuned max_lr_high ({hi:g}).\n"
                + header
                + OmegaConf.to_yaml(flat)
            )
            lines += ["", f"{ABLATION} (the ablation row, not tuned): cyclical LR with max_lr = S-Cyc's tuned "
                      f"max_lr_high = {hi:g}, base_lr {flat['base_lr']:g}."]  # fmt: skip
            results[ABLATION] = {"values": {"max_lr": hi}}
    if untuned := [s for s in TABLE if s not in results]:
        lines += ["", f"Not tuned by this call: {', '.join(untuned)} (their YAMLs in conf/schedule/tuned/{name}/, if "
                  "any, are from an earlier tuning and say so in their first line)."]  # fmt: skip
    args.docs_dir.mkdir(parents=True, exist_ok=True)
    (args.docs_dir / f"{name}.md").write_text("\n".join(lines) + "\n")
    if long_rows:
        cols = ["schedule", "point", "seed", *RUN_COLUMNS]
        pd.concat(long_rows)[cols].to_csv(args.docs_dir / f"{name}_runs.csv", index=False, float_format="%.6g")
    print(f"wrote {out}/*.yaml, {args.docs_dir / f'{name}.md'} and {name}_runs.csv")
    return results


if __name__ == "__main__":
    main()
