"""Equal tuning budget: every schedule of the table gets its LR knobs from a grid of the same size.

    make tune SETTING=fmnist_lenet300            # = python scripts/tune.py fmnist_lenet300
    python scripts/tune.py fmnist_conv --schedules scyc,sgdr
    python scripts/tune.py paper_resnet20_cifar10  # a GPU's work

A setting (conf/tuning/<setting>.yaml, or a path to such a file) gives the Hydra overrides of its runs, the
tuning seeds (disjoint from the reporting seeds 0, 1, 2), K = the rounds scored, the benchmarks' peak-LR grid
(lr_rewind: lr; warmup, cyclic, sgdr: max_lr; gradscale: max_lr_dense) and as many (max_lr_low, max_lr_high) pairs
for S-Cyc; the fitted S-curve (scurve_fit) gets its envelope scaled by the multiples S-Cyc's pairs are of its own. Each grid
point is one Hydra multirun over the seeds, K rounds each, into <runs-dir>/<schedule>/<point>/seed<s>; finished
runs are skipped and unfinished ones resumed (resume=true), so a second call continues an interrupted tuning
and, once all is done, only rewrites the outputs, with the same choices. A point's score is the mean validation
accuracy (results.csv ``val_acc``, or --metric) over the K rounds and the seeds; the best wins, ties going to
the smaller LR. The oracle's grid is then ``oracle_points`` values spaced geometrically from
max_lr_low / oracle_widen to max_lr_high * oracle_widen of the tuned S-Cyc envelope, with S-Cyc's base_lr.

Writes conf/schedule/tuned/<setting>/<schedule>.yaml (use: schedule=tuned/<setting>/scyc; the schedule's name
is kept, so tables find its rows) and docs/tuning/<setting>.md (the grid table).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

TABLE = ("scyc", "lr_rewind", "warmup", "cyclic", "sgdr", "gradscale", "scurve_fit")
PEAK_KNOB = {"lr_rewind": "lr", "warmup": "max_lr", "cyclic": "max_lr", "sgdr": "max_lr", "gradscale": "max_lr_dense"}
FIXED = ["progress=false", "wandb.mode=disabled", "analysis.grad_every_round=false", "analysis.figures=false"]
NEEDS = {"gradscale": ["analysis.grad_every_round=true"]}  # gradscale reads the gradient measurement


def points(setting: dict, schedule: str, base: dict[str, dict]) -> list[dict[str, float]]:
    """The schedule's grid: S-Cyc's pairs; the fitted S-curve's envelope scaled by the same multiples as S-Cyc's
    pairs are of S-Cyc's own envelope; one peak-LR knob for the others (gradscale: max_lr_dense)."""
    if schedule == "scyc":
        return [{"max_lr_low": float(lo), "max_lr_high": float(hi)} for lo, hi in setting["scyc"]]
    if schedule == "scurve_fit":
        lo, hi = base[schedule]["max_lr_low"], base[schedule]["max_lr_high"]
        factors = [float(pair[0]) / base["scyc"]["max_lr_low"] for pair in setting["scyc"]]
        return [{"max_lr_low": float(f"{lo * f:.4g}"), "max_lr_high": float(f"{hi * f:.4g}")} for f in factors]
    return [{PEAK_KNOB[schedule]: float(v)} for v in setting["peaks"]]


def label(point: dict[str, float], sep: str = "_") -> str:
    return sep.join(f"{v:g}" for v in point.values())


def complete(run_dir: Path) -> bool:
    try:
        return json.loads((run_dir / "summary.json").read_text()).get("status") == "complete"
    except (OSError, ValueError):
        return False


def score(point_dir: Path, seeds: list[int], k: int, metric: str) -> tuple[float, float, int]:
    """Mean and std over seeds of the metric's mean over rounds 0..K-1; NaN unless every seed finished."""
    import pandas as pd

    per_seed = []
    for s in seeds:
        run = point_dir / f"seed{s}"
        res = pd.read_csv(run / "results.csv") if complete(run) else None
        if res is None or (res["round"] < k).sum() < k:
            return math.nan, math.nan, len(per_seed)
        per_seed.append(float(res.loc[res["round"] < k, metric].mean()))
    mean = sum(per_seed) / len(per_seed)
    return mean, math.sqrt(sum((x - mean) ** 2 for x in per_seed) / max(len(per_seed) - 1, 1)), len(per_seed)


def main(argv: list[str] | None = None) -> dict[str, dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("setting", help="conf/tuning/<setting>.yaml's name, or a path to a setting file")
    parser.add_argument("--schedules", default=",".join(TABLE), help="a subset of " + ",".join(TABLE))
    parser.add_argument("--metric", default="val_acc", help="results.csv column scored (e.g. best_val_acc)")
    parser.add_argument("--runs-dir", type=Path, default=None, help="default: outputs/tuning/<setting>")
    parser.add_argument("--conf-dir", type=Path, default=ROOT / "conf" / "schedule" / "tuned")
    parser.add_argument("--docs-dir", type=Path, default=ROOT / "docs" / "tuning")
    args = parser.parse_args(argv)
    import yaml
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from scyc.config import register_configs
    from scyc.schedules import build_schedule

    path = Path(args.setting) if args.setting.endswith(".yaml") else ROOT / "conf" / "tuning" / f"{args.setting}.yaml"
    setting, name = yaml.safe_load(path.read_text()), path.stem
    k, seeds, overrides = int(setting["rounds"]), [int(s) for s in setting["seeds"]], list(setting["overrides"])
    options = {s: s for s in TABLE} | dict(setting.get("options") or {})
    schedules = [s for s in args.schedules.split(",") if s]
    if len(setting["scyc"]) != len(setting["peaks"]) or set(schedules) - set(TABLE):
        sys.exit(f"error: {path}: scyc needs as many pairs as peaks; --schedules must be among {', '.join(TABLE)}")
    runs_dir = args.runs_dir or ROOT / "outputs" / "tuning" / name
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        base = {s: compose("config", overrides=[*overrides, f"schedule={options[s]}"]).schedule for s in TABLE}
        oracle = compose("config", overrides=[*overrides, f"schedule={setting.get('oracle', 'oracle')}"]).schedule
    base = {s: OmegaConf.to_container(c, resolve=True) for s, c in base.items()}
    for s in schedules:  # every grid point must build before anything runs
        for p in points(setting, s, base):
            build_schedule({**base[s], **p})

    results: dict[str, dict] = {}
    for s in schedules:
        rows = []
        for p in points(setting, s, base):
            point_dir = runs_dir / s / label(p)
            todo = [x for x in seeds if not complete(point_dir / f"seed{x}")]
            if todo:
                cmd = [sys.executable, str(ROOT / "train.py"), "-m", *overrides, f"schedule={options[s]}",
                       *[f"schedule.{key}={v!r}" for key, v in p.items()], f"seed={','.join(map(str, todo))}",
                       f"pruner.rounds={k}", "resume=true", *FIXED, *NEEDS.get(s, []), f"hydra/launcher={setting.get('launcher', 'basic')}",
                       f"hydra.sweep.dir={point_dir}", "hydra.sweep.subdir=seed${seed}",
                       "hydra.callbacks.results_table.enabled=false"]  # fmt: skip
                print(f"tune {name}: {s} {p} seeds {todo}", flush=True)
                subprocess.run(cmd, cwd=ROOT, check=False)
            rows.append((p, *score(point_dir, seeds, k, args.metric)))
        scored = [i for i, r in enumerate(rows) if not math.isnan(r[1])]
        if not scored:
            sys.exit(f"error: no grid point of {s} finished (see {runs_dir / s})")
        best = max(scored, key=lambda i: (rows[i][1], -i))  # ties: the earlier (smaller) grid point
        results[s] = {"rows": rows, "best": best, "values": rows[best][0]}

    header = (
        f"# Tuned by `python scripts/tune.py {name}` (K={k}, seeds {seeds}, {args.metric}): docs/tuning/{name}.md\n"
    )
    out = args.conf_dir / name
    out.mkdir(parents=True, exist_ok=True)
    for s, r in results.items():
        chosen = {k: v for k, v in {**base[s], **r["values"]}.items() if v is not None}  # None: the schema's default
        (out / f"{s}.yaml").write_text(header + OmegaConf.to_yaml(chosen))
    lines = [f"# LR tuning: {name}", "", f"`python scripts/tune.py {name}` (`make tune SETTING={name}`); setting "
             f"`{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}`: `{' '.join(overrides)}`, "
             f"first {k} rounds, tuning seeds {seeds}. Cells: mean {args.metric} over the rounds, mean ± std over "
             "the seeds (%); **bold**: chosen (ties: the smaller LR). Use `schedule=tuned/" + name + "/<schedule>`.",
             ""]  # fmt: skip
    n = len(setting["peaks"])
    lines += ["| schedule | knob | " + " | ".join(f"point {i + 1}" for i in range(n)) + " |", "|---" * (n + 2) + "|"]
    for s, r in results.items():
        cells = []
        for i, (p, mean, std, got) in enumerate(r["rows"]):
            cell = f"{label(p, ' / ')}: " + (f"{100 * mean:.2f} ± {100 * std:.2f}" if got else "failed")
            cells.append(f"**{cell}**" if i == r["best"] else cell)
        lines.append(f"| {s} | {' / '.join(r['rows'][0][0])} | " + " | ".join(cells) + " |")
    if "scyc" in results:
        lo, hi = results["scyc"]["values"]["max_lr_low"], results["scyc"]["values"]["max_lr_high"]
        widen, m = float(setting.get("oracle_widen", 1.5)), int(setting.get("oracle_points", 5))
        floor = base["scyc"]["base_lr"]
        a, b = max(lo / widen, floor), hi * widen
        grid = sorted({float(f"{a * (b / a) ** (i / (m - 1)):.4g}") for i in range(m)})
        oracle_cfg = {**OmegaConf.to_container(oracle, resolve=True), "grid": grid, "base_lr": floor}
        oracle_cfg = {k: v for k, v in oracle_cfg.items() if v is not None}
        build_schedule(oracle_cfg)
        (out / "oracle.yaml").write_text(header + OmegaConf.to_yaml(oracle_cfg))
        lines += ["", f"oracle: grid {grid} (the tuned S-Cyc envelope {lo:g}-{hi:g} widened x{widen:g} each way), "
                  f"base_lr {floor:g} (S-Cyc's)."]  # fmt: skip
        results["oracle"] = {"values": {"grid": grid, "base_lr": floor}}
    args.docs_dir.mkdir(parents=True, exist_ok=True)
    (args.docs_dir / f"{name}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out}/*.yaml and {args.docs_dir / f'{name}.md'}")
    return results


if __name__ == "__main__":
    main()
