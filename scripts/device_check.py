"""The device check's driver (run it through scripts/device_check.sh): every GPU measurement in one go.

Sections, each in its own process(es) under its own time limit, so that one failing or hanging section is
recorded in the JSON (``ok: false`` and its ``error``) and the others still run:

- ``cuda_tests``: ``pytest -m cuda`` (on a CUDA machine none may be skipped);
- ``bench_eager``: scripts/benchmark.py for ResNet-20 and VGG-19 at 32x32, batch 64 and 128, fp32 and bf16,
  CUDA graphs off and on (masked, unmasked, mask overhead, one pruning step, one evaluation);
- ``bench_compile``: the same with ``train.compile=true``, at batch 64 (compilation dominates its time);
- ``bench_reference``: our default switches against the reference loop, per model and batch size;
- ``torchrun``: a ``torchrun --nproc_per_node=1`` run;
- ``packed``: aggregate epochs/s of a sweep of N runs under ``hydra/launcher=gpu_pack``, N = 1, 2, 4, 8;
- ``paper``: ``+experiment=paper_resnet20_cifar10`` on Fashion-MNIST padded to 32x32 (real data), 3 rounds
  of 2 epochs, S-Cyc and cyclic.

The benchmarks run on a generated CIFAR-10 (random images, the official layout: tests/miniatures.py).
``--cpu-smoke`` runs the same sections at toy size on the CPU in under a minute, two at a time: ResNet-20 of
width 4 only, the paper preset on the generated data, no compilation (inductor's CPU build takes minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
# seconds per section on the GPU (8 minutes in all); each also stops at the time left of the whole budget
GPU_BUDGET = dict(
    cuda_tests=40, bench_eager=100, bench_compile=90, bench_reference=60, torchrun=30, packed=75, paper=75
)
TOTAL = 470
QUIET = ["wandb.mode=disabled", "progress=false", "analysis.grad_every_round=false", "analysis.figures=false"]


def paper_cost(sections: dict) -> dict:
    """GPU-hours of the paper's tables (5 schedules x 3 seeds x 25 rounds x epochs per round, REFERENCES.md) at
    batch 64 from the measured per-epoch times (training + evaluations): ours alone, ours packed (ResNet-20's
    best measured aggregate), the reference loop."""
    packed = [r.get("vs_single", 0) for r in sections["packed"].values() if isinstance(r, dict)]
    cost = {}
    for r in sections["bench_reference"].get("runs", []):
        if r["batch_size"] == 64 and r["model"] in ("resnet20", "vgg19"):
            epochs = 5 * 3 * 25 * {"resnet20": 50, "vgg19": 160}[r["model"]]
            hours = {"epochs": epochs, "ours": epochs * r["epoch_seconds"] / 3600}
            hours["reference"] = epochs * r["reference_epoch_seconds"] / 3600
            if r["model"] == "resnet20" and packed:  # the packed sweep runs ResNet-20
                hours["ours_packed"] = hours["ours"] / max(packed)
            cost[r["model"]] = hours
    return cost


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cpu-smoke", action="store_true", help="toy sizes on the CPU (under a minute)")
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    out, smoke = args.out.resolve(), args.cpu_smoke
    out.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available() and not smoke
    dev = "cuda" if cuda else "cpu"
    report = {
        "device": torch.cuda.get_device_name() if cuda else f"cpu ({os.cpu_count()} cores)",
        "cpu_smoke": smoke,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "sections": {},
    }
    if not cuda and not smoke:
        report["error"] = "no CUDA device: run with --cpu-smoke on a CPU machine"
    from miniatures import make_cifar10  # random images in CIFAR-10's official layout

    per, n_test, val = (12, 8, 10) if smoke else (2000, 2000, 1000)
    make_cifar10(out / "cifar10", per_batch=per, n_test=n_test)
    data = ["dataset=cifar10", f"dataset.root={out / 'cifar10'}", "dataset.download=false"]
    data += ["dataset.verify_checksums=false", f"dataset.val_size={val}"]
    steps = ["benchmark.steps=2", "benchmark.warmup=1", "benchmark.repeats=1"] if smoke else []
    steps += ["benchmark.reference_repeats=1"] if smoke else ["benchmark.steps=50", "benchmark.repeats=2"]
    toy = ["model.width=4"] if smoke else []
    bench = [sys.executable, "scripts/benchmark.py", "-m", f"device={dev}", *data, *steps, *QUIET, *toy]
    models = "model=resnet20" if smoke else "model=resnet20,vgg19"
    train, opts = [sys.executable, "train.py"], [f"device={dev}", *QUIET, "model=resnet20", *toy]
    small = [*data, "pruner.rounds=1", "train.epochs=" + ("2" if smoke else "3")]
    start = time.perf_counter()

    def run(name: str, cmd: list[str]) -> None:
        left = TOTAL - (time.perf_counter() - start)
        limit = 150 if smoke else max(5, min(GPU_BUDGET[name], left))  # smoke: a loaded CPU must not fail it
        with open(out / f"{name}.log", "a") as log:
            log.write("$ " + " ".join(cmd) + "\n")
            log.flush()
            env = {**os.environ, **({"OMP_NUM_THREADS": "1"} if smoke else {})}  # smoke: 2 sections on 2 cores
            proc = subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=limit, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"exit {proc.returncode} (see {name}.log)")

    def benchmarks(name: str, bs: str, precision: str, compile: str, graphs: str, ref: str) -> dict:
        sweep = out / name
        grid = [models, f"train.batch_size={bs}", f"train.precision={precision}", f"train.compile={compile}"]
        grid += [f"train.cuda_graphs={graphs}", f"benchmark.reference={ref}"]
        grid += [f"benchmark.profile_steps={2 if smoke else 20}"] if ref == "true" else []  # where a step's time goes
        try:
            run(name, [*bench, *grid, f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${hydra.job.num}"])
            got = {}
        except Exception as exc:  # the runs that finished are kept
            got = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        rows = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/benchmark.json"))]
        return {**got, "runs": [{k: v for k, v in r.items() if not k.startswith("raw")} for r in rows]}

    def cuda_tests() -> dict:
        xml = out / "cuda_tests.xml"
        files = [str(p) for p in sorted((ROOT / "tests").glob("test_*.py")) if "mark.cuda" in p.read_text()]
        run(
            "cuda_tests",
            [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", *files],
        )
        suite = ET.parse(xml).getroot().find("testsuite")
        counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        if cuda and counts["skipped"]:
            raise RuntimeError(f"{counts['skipped']} CUDA tests skipped on a CUDA machine: {counts}")
        return counts

    def torchrun() -> dict:
        run_dir = out / "torchrun"
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "train.py"]
        run("torchrun", [*launch, *opts, *small, f"hydra.run.dir={run_dir}"])
        summary = json.loads((run_dir / "summary.json").read_text())
        return {k: summary[k] for k in ("status", "world_size", "final_test_acc", "seconds")}

    def packed() -> dict:
        import pandas as pd

        result = {}
        for n in (1, 2) if smoke else (1, 2, 4, 8):
            sweep, t0 = out / f"packed_{n}", time.perf_counter()
            pack = ["-m", "hydra/launcher=gpu_pack", f"hydra.launcher.n_jobs={n}", f"hydra.sweep.dir={sweep}"]
            seeds = "seed=" + ",".join(map(str, range(n)))
            run("packed", [*train, *pack, *opts, *small, seeds, "hydra.callbacks.results_table.enabled=false"])
            wall = time.perf_counter() - t0
            epochs = [pd.read_csv(p)["seconds"].tolist() for p in sorted(sweep.glob("*/epochs.csv"))]
            steady = [statistics.median(e[1:] or e) for e in epochs]  # the first epoch pays warm-up and capture
            result[str(n)] = {
                "runs": len(epochs),
                "wall_seconds": wall,
                "aggregate_epochs_per_s_wall": sum(map(len, epochs)) / wall,
                "aggregate_epochs_per_s": sum(1 / s for s in steady),  # training epochs/s of the runs together
                "epoch_seconds": steady,
            }
        for r in result.values():
            r["vs_single"] = r["aggregate_epochs_per_s"] / result["1"]["aggregate_epochs_per_s"]
        return result

    def paper() -> dict:
        import pandas as pd

        sweep = out / "paper"
        real = ["dataset=fashion_mnist", "dataset.pad=2", "train.epochs=2"]
        size = [*data, "train.epochs=1"] if smoke else real  # the smoke: no 10,000-image test set on the CPU
        cmd = [*train, "-m", "+experiment=paper_resnet20_cifar10", *opts, *size, "pruner.rounds=3"]
        run("paper", [*cmd, "schedule=scyc_resnet20_cifar10,cyclic", f"hydra.sweep.dir={sweep}"])
        runs = {}
        for summary in sorted(sweep.glob("*/summary.json")):
            s, rounds = json.loads(summary.read_text()), pd.read_csv(summary.parent / "results.csv")
            cols = ["round", "sparsity", "max_lr", "test_acc", "best_val_acc", "epoch_seconds"]
            runs[s["schedule"]] = {"status": s["status"], "rounds": rounds[cols].to_dict("records")}
        return runs

    def no_compile() -> dict:
        return {"skipped": "compilation on the CPU takes minutes: GPU run only"}

    grid_bs, graphs = ("8", "false") if smoke else ("64,128", "false,true")
    sections = {
        "cuda_tests": cuda_tests,
        "bench_eager": lambda: benchmarks("bench_eager", grid_bs, "fp32,bf16", "false", graphs, "false"),
        "bench_compile": no_compile
        if smoke
        else lambda: benchmarks("bench_compile", "64", "fp32,bf16", "true", graphs, "false"),
        "bench_reference": lambda: benchmarks("bench_reference", grid_bs, "auto", "false", "auto", "true"),
        "torchrun": torchrun,
        "packed": packed,
        "paper": paper,
    }
    lock = threading.Lock()

    def section(name: str) -> None:
        t0 = time.perf_counter()
        try:
            entry = {"ok": True, **sections[name]()}
        except Exception as exc:  # recorded; the other sections run
            entry = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        with lock:
            report["sections"][name] = entry
            print(
                f"{name:<16} {'ok' if entry['ok'] else 'FAILED: ' + entry['error']}  ({entry['seconds']} s)", flush=True
            )
            (out / "device_check.json").write_text(json.dumps(report, indent=1) + "\n")

    with ThreadPoolExecutor(2 if smoke else 1) as pool:  # GPU timings: one section at a time
        list(pool.map(section, sections))
    report["sections"] = {name: report["sections"][name] for name in sections}
    report["paper_cost"] = paper_cost(report["sections"])
    report["seconds"] = round(time.perf_counter() - start, 1)
    (out / "device_check.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {out / 'device_check.json'} in {report['seconds']} s")
    return 0 if all(s["ok"] for s in report["sections"].values()) and "error" not in report else 1


if __name__ == "__main__":
    sys.exit(main())
