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
  of 2 epochs, S-Cyc and cyclic;
- ``paper_preset``: the command of ``make reproduce-table EXPERIMENT=paper_resnet20_cifar10`` (deterministic
  on, the oracle and S-Cyc, the gradient measurement on), seed 0, 2 rounds of one epoch, on the generated data.

Budgets: every section has its own deadline (``GPU_BUDGET``, at most what is left of ``TOTAL``); every command
of a section stops at it, and a command past it is killed with its whole process tree (its process group and
every descendant: torchrun's workers run in sessions of their own, the joblib launcher's in the group).

Files: the sections work in a scratch dir (a temporary one, removed at the end: generated data, run dirs,
logs); ``<out>`` gets only ``device_check.json`` (also printed at the end), ``device_check.log`` (the console,
written by device_check.sh) and ``device_check_logs.tar.gz`` (every log, benchmark JSON, summary and table of
the scratch dir, no data, no checkpoints, <= 15 MiB): three files, what a device call brings back (<= 8 files,
16 MiB each).

The benchmarks run on a generated CIFAR-10 (random images, the official layout: tests/miniatures.py).
``--cpu-smoke`` runs the same sections at toy size on the CPU in under a minute, two at a time: ResNet-20 of
width 4 only, the paper preset on the generated data, no compilation (inductor's CPU build takes minutes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _tests_module(name: str):
    """A helper module of tests/ (not part of the installed package), loaded from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# seconds per section on the GPU; each section also stops at what is left of the whole budget (TOTAL), so the
# check ends within TOTAL (+ the tarball), under the device tool's 600-s limit per call. cuda_tests: cold (the
# first CUDA context, cuDNN and cuBLAS handles, a deterministic paper-preset round and several graph captures).
GPU_BUDGET = dict(
    cuda_tests=160, bench_eager=70, bench_compile=60, bench_reference=40, torchrun=25, packed=55, paper=45,
    paper_preset=45,
)  # fmt: skip
TOTAL = 500
SMOKE_BUDGET, SMOKE_TOTAL = 150, 300  # smoke: a loaded CPU must not fail it (two sections at a time)
QUIET = ["wandb.mode=disabled", "progress=false", "analysis.grad_every_round=false", "analysis.figures=false"]
KEEP = ("*.log", "*.json", "*.csv", "*.xml", "*.yaml")  # what of the scratch dir goes into the tarball
TAR_LIMIT = 15 * 2**20  # bytes of files put into it (a device call brings back files of up to 16 MiB)


class SectionTimeout(RuntimeError):
    pass


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc), also those in sessions of their own (torchrun's workers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(proc: subprocess.Popen, grace: float = 5.0) -> int:
    """SIGTERM, then SIGKILL after ``grace`` s, to ``proc``'s process group (it leads one: start_new_session)
    and to every descendant found before the first signal (torchrun starts its workers in new sessions; the
    joblib launcher's workers are in the group). Returns how many processes were signalled."""
    pids = [proc.pid, *descendants(proc.pid)]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=grace if sig == signal.SIGTERM else None)
            if sig == signal.SIGTERM and not any(alive(p) for p in pids[1:]):
                break
        except subprocess.TimeoutExpired:
            continue
    deadline = time.monotonic() + grace  # signalled is not yet gone: return once the tree has ended
    while any(alive(p) for p in pids[1:]) and time.monotonic() < deadline:
        time.sleep(0.01)
    return len(pids)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def run_command(cmd: list[str], log_path: Path, timeout: float, env: dict | None = None) -> None:
    """Run ``cmd`` in its own process group with its output appended to ``log_path``; past ``timeout`` seconds
    its whole tree is killed and ``SectionTimeout`` raised; a non-zero exit raises ``RuntimeError``."""
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            code = proc.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            n = kill_tree(proc)
            log.write(f"timed out after {timeout:.0f} s: killed its process group and tree ({n} processes)\n")
            raise SectionTimeout(
                f"timed out after {timeout:.0f} s (its {n} processes killed; see {log_path.name})"
            ) from None
    if code != 0:
        raise RuntimeError(f"exit {code} (see {log_path.name})")


class Sections:
    """Runs named sections (functions of a ``Section``), ``parallel`` at a time: each gets its own deadline
    (its budget, at most what is left of ``total``), and every command it runs stops at that deadline. A
    failing or timed-out section is recorded (``ok: false`` and its ``error``); the others still run."""

    def __init__(self, budgets: dict[str, float], total: float, logs: Path, report: dict, on_update=None) -> None:
        self.budgets, self.total, self.logs, self.report = budgets, total, logs, report
        self.on_update, self.start, self.lock = on_update, time.perf_counter(), threading.Lock()

    def run_all(self, sections: dict, parallel: int = 1, first: tuple[str, ...] = ()) -> None:
        """``first``: the sections to start first (the longest, so that two at a time end sooner)."""
        order = [*[n for n in first if n in sections], *[n for n in sections if n not in first]]
        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(lambda name: self.one(name, sections[name]), order))
        self.report["sections"] = {name: self.report["sections"][name] for name in sections}

    def one(self, name: str, fn) -> None:
        t0 = time.perf_counter()
        deadline = min(t0 + self.budgets.get(name, self.total), self.start + self.total)
        try:
            entry = {"ok": True, **fn(Section(name, deadline, self.logs))}
        except Exception as exc:  # recorded; the other sections run
            entry = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        entry["seconds"] = round(time.perf_counter() - t0, 1)
        with self.lock:
            self.report["sections"][name] = entry
            status = "ok" if entry["ok"] else "FAILED: " + entry["error"]
            print(f"{name:<16} {status}  ({entry['seconds']} s)", flush=True)
            if self.on_update is not None:
                self.on_update()


class Section:
    def __init__(self, name: str, deadline: float, logs: Path) -> None:
        self.name, self.deadline, self.logs = name, deadline, logs

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def run(self, cmd: list[str], env: dict | None = None) -> None:
        if self.left() < 1:
            raise SectionTimeout(f"no time left in its budget before: {' '.join(cmd[:4])} ...")
        run_command(cmd, self.logs / f"{self.name}.log", self.left(), env)


def bundle(scratch: Path, tarball: Path) -> dict:
    """The logs, benchmark JSONs, run summaries and tables of ``scratch`` into one ``.tar.gz`` (no data, no
    checkpoints), at most ``TAR_LIMIT`` bytes of them (the rest is counted in the JSON, not packed)."""
    files = sorted({p for pattern in KEEP for p in scratch.rglob(pattern) if p.is_file()} - set(
        scratch.glob("cifar10/**/*")))  # fmt: skip
    packed, left_out, size = 0, [], 0
    with tarfile.open(tarball, "w:gz") as tar:
        for p in files:
            if size + p.stat().st_size > TAR_LIMIT:
                left_out.append(str(p.relative_to(scratch)))
                continue
            tar.add(p, arcname=str(p.relative_to(scratch)))
            size, packed = size + p.stat().st_size, packed + 1
    return {"file": tarball.name, "files": packed, "bytes": tarball.stat().st_size, "left_out": left_out}


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
    ap.add_argument("--scratch", type=Path, help="work dir (default: a new temporary dir, removed at the end)")
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    out, smoke = args.out.resolve(), args.cpu_smoke
    out.mkdir(parents=True, exist_ok=True)
    scratch = (args.scratch or Path(tempfile.mkdtemp(prefix="scyc_device_check_"))).resolve()
    scratch.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available() and not smoke
    dev = "cuda" if cuda else "cpu"
    report = {
        "device": torch.cuda.get_device_name() if cuda else f"cpu ({os.cpu_count()} cores)",
        "cpu_smoke": smoke,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "scratch": str(scratch),
        "sections": {},
    }
    if not cuda and not smoke:
        report["error"] = "no CUDA device: run with --cpu-smoke on a CPU machine"
    make_cifar10 = _tests_module("miniatures").make_cifar10  # random images in CIFAR-10's official layout

    per, n_test, val = (12, 8, 10) if smoke else (2000, 2000, 1000)
    make_cifar10(scratch / "cifar10", per_batch=per, n_test=n_test)
    data = ["dataset=cifar10", f"dataset.root={scratch / 'cifar10'}", "dataset.download=false"]
    data += ["dataset.verify_checksums=false", f"dataset.val_size={val}"]
    steps = ["benchmark.steps=2", "benchmark.warmup=1", "benchmark.repeats=1"] if smoke else []
    steps += ["benchmark.reference_repeats=1"] if smoke else ["benchmark.steps=50", "benchmark.repeats=2"]
    toy = ["model.width=4"] if smoke else []
    bench = [sys.executable, "scripts/benchmark.py", "-m", f"device={dev}", *data, *steps, *QUIET, *toy]
    models = "model=resnet20" if smoke else "model=resnet20,vgg19"
    train, opts = [sys.executable, "train.py"], [f"device={dev}", *QUIET, "model=resnet20", *toy]
    small = [*data, "pruner.rounds=1", "train.epochs=" + ("1" if smoke else "3")]
    env = {**os.environ, **({"OMP_NUM_THREADS": "1"} if smoke else {})}  # smoke: 2 sections on 2 cores

    def benchmarks(sec: Section, bs: str, precision: str, compile: str, graphs: str, ref: str) -> dict:
        sweep = scratch / sec.name
        grid = [models, f"train.batch_size={bs}", f"train.precision={precision}", f"train.compile={compile}"]
        grid += [f"train.cuda_graphs={graphs}", f"benchmark.reference={ref}"]
        grid += [f"benchmark.profile_steps={2 if smoke else 20}"] if ref == "true" else []  # where a step's time goes
        try:
            sec.run([*bench, *grid, f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${hydra.job.num}"], env)
            got = {}
        except Exception as exc:  # the runs that finished are kept
            got = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        rows = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/benchmark.json"))]
        runs = [{k: v for k, v in r.items() if not k.startswith("raw")} for r in rows]
        if graphs != "false" and cuda:  # did the "graphs" rows time replayed graphs (not eager fall-backs)?
            got["graphs_replayed"] = all(r.get("graph_replays") and min(r["graph_replays"].values()) > 0
                                         for r in runs if r.get("cuda_graphs"))  # fmt: skip
        return {**got, "runs": runs}

    def cuda_tests(sec: Section) -> dict:
        xml = scratch / "cuda_tests.xml"
        files = [str(p) for p in sorted((ROOT / "tests").glob("test_*.py")) if "mark.cuda" in p.read_text()]
        cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}"]
        sec.run([*cmd, f"--basetemp={scratch / 'pytest'}", *files], env)
        suite = ET.parse(xml).getroot().find("testsuite")
        counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        counts["names"] = [c.get("name") for c in suite.iter("testcase")]
        if cuda and counts["skipped"]:
            raise RuntimeError(f"{counts['skipped']} CUDA tests skipped on a CUDA machine: {counts}")
        return counts

    def torchrun(sec: Section) -> dict:
        run_dir = scratch / "torchrun"
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "train.py"]
        sec.run([*launch, *opts, *small, f"hydra.run.dir={run_dir}"], env)
        summary = json.loads((run_dir / "summary.json").read_text())
        return {k: summary[k] for k in ("status", "world_size", "final_test_acc", "seconds")}

    def packed(sec: Section) -> dict:  # the section's one deadline covers its N sweeps together
        import pandas as pd

        result = {}
        for n in (1, 2) if smoke else (1, 2, 4, 8):
            sweep, t0 = scratch / f"packed_{n}", time.perf_counter()
            pack = ["-m", "hydra/launcher=gpu_pack", f"hydra.launcher.n_jobs={n}", f"hydra.sweep.dir={sweep}"]
            seeds = "seed=" + ",".join(map(str, range(n)))
            sec.run([*train, *pack, *opts, *small, seeds, "hydra.callbacks.results_table.enabled=false"], env)
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

    def sweep_runs(sweep: Path) -> dict:
        import pandas as pd

        runs = {}
        for summary in sorted(sweep.glob("*/summary.json")):
            s, rounds = json.loads(summary.read_text()), pd.read_csv(summary.parent / "results.csv")
            cols = ["round", "sparsity", "max_lr", "test_acc", "best_val_acc", "epoch_seconds"]
            runs[s["schedule"]] = {"status": s["status"], "rounds": rounds[cols].to_dict("records")}
        return runs

    def paper(sec: Section) -> dict:
        sweep = scratch / "paper"
        real = ["dataset=fashion_mnist", "dataset.pad=2", "train.epochs=2"]
        size = [*data, "train.epochs=1"] if smoke else real  # the smoke: no 10,000-image test set on the CPU
        cmd = [*train, "-m", "+experiment=paper_resnet20_cifar10", *opts, *size, f"pruner.rounds={2 if smoke else 3}"]
        sec.run([*cmd, "schedule=scyc_resnet20_cifar10,cyclic", f"hydra.sweep.dir={sweep}"], env)
        return sweep_runs(sweep)

    def paper_preset(sec: Section) -> dict:
        """``make reproduce-table EXPERIMENT=paper_resnet20_cifar10``'s command (deterministic=true, the basic
        launcher, the gradient measurement on, the oracle and S-Cyc), seed 0, a pruning step, one epoch a round."""
        sweep = scratch / "paper_preset"
        cmd = [*train, "-m", "+experiment=paper_resnet20_cifar10", "schedule=oracle,scyc_resnet20_cifar10", "seed=0"]
        cmd += ["pruner.rounds=2", "deterministic=true", "hydra/launcher=basic", f"hydra.sweep.dir={sweep}"]
        cmd += ["progress=false", f"device={dev}", "wandb.mode=disabled", "analysis.figures=false", *data]
        sec.run([*cmd, "train.epochs=1", *toy], env)
        runs = sweep_runs(sweep)
        if len(runs) != 2 or {r["status"] for r in runs.values()} != {"complete"}:
            raise RuntimeError(f"not every run completed: { ({k: r['status'] for k, r in runs.items()}) }")
        return runs

    def no_compile(sec: Section) -> dict:
        return {"skipped": "compilation on the CPU takes minutes: GPU run only"}

    grid_bs, graphs = ("8", "false") if smoke else ("64,128", "false,true")
    sections = {
        "cuda_tests": cuda_tests,
        "bench_eager": lambda sec: benchmarks(sec, grid_bs, "fp32,bf16", "false", graphs, "false"),
        "bench_compile": no_compile
        if smoke
        else lambda sec: benchmarks(sec, "64", "fp32,bf16", "true", graphs, "false"),
        "bench_reference": lambda sec: benchmarks(sec, grid_bs, "auto", "false", "auto", "true"),
        "torchrun": torchrun,
        "packed": packed,
        "paper": paper,
        "paper_preset": paper_preset,
    }
    json_path = out / "device_check.json"

    def write() -> None:
        json_path.write_text(json.dumps(report, indent=1) + "\n")

    budgets = {name: SMOKE_BUDGET for name in sections} if smoke else GPU_BUDGET
    runner = Sections(budgets, SMOKE_TOTAL if smoke else TOTAL, scratch, report, on_update=write)
    # GPU timings: one section at a time; the smoke: two, the longest first
    runner.run_all(sections, parallel=2 if smoke else 1, first=("packed", "paper_preset") if smoke else ())
    report["paper_cost"] = paper_cost(report["sections"])
    report["seconds"] = round(time.perf_counter() - runner.start, 1)
    report["logs"] = bundle(scratch, out / "device_check_logs.tar.gz")
    if args.scratch is None:
        shutil.rmtree(scratch, ignore_errors=True)
    write()
    print(json.dumps(report, indent=1))
    print(f"wrote {json_path} and {report['logs']['file']} in {report['seconds']} s")
    return 0 if all(s["ok"] for s in report["sections"].values()) and "error" not in report else 1


if __name__ == "__main__":
    sys.exit(main())
