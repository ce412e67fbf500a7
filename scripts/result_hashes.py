"""The four runs of issue 25's "Identical results" line, and the SHA-256 of what they must keep.

For each run: ``lr_trace.csv`` as written, and ``results.csv`` without its ``*_seconds`` columns (wall-clock
times differ from run to run). ``--record`` writes the hashes to tests/data/refactor_hashes.json (the baseline);
without it the script compares against that file and exits 1 on a difference.

    OMP_NUM_THREADS=1 python scripts/result_hashes.py [--record] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "tests" / "data" / "refactor_hashes.json"
COMMON = ["deterministic=true", "pruner.rounds=4", "dataset.train_subset=4000", "wandb.mode=disabled",
          "progress=false"]  # fmt: skip
RUNS = {
    "default": [],
    "oracle": ["schedule=oracle"],
    "lamp_rewind_init": ["pruner=lamp", "pruner.reset=rewind_init"],
    "gradscale": ["schedule=gradscale"],
}


def results_hash(path: Path) -> str:
    """SHA-256 of results.csv with the ``*_seconds`` columns removed (the CSV rewritten, the rest as read)."""
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    keep = [i for i, name in enumerate(rows[0]) if not name.endswith("_seconds")]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for row in rows:
        writer.writerow([row[i] for i in keep])
    return hashlib.sha256(out.getvalue().encode()).hexdigest()


def run_hashes(name: str, workdir: Path) -> dict[str, str]:
    run_dir = workdir / name
    cmd = [sys.executable, str(ROOT / "train.py"), *COMMON, *RUNS[name], f"hydra.run.dir={run_dir}"]
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return {
        "lr_trace.csv": hashlib.sha256((run_dir / "lr_trace.csv").read_bytes()).hexdigest(),
        "results.csv (no *_seconds)": results_hash(run_dir / "results.csv"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--record", action="store_true", help="write the hashes as the baseline")
    parser.add_argument("--only", nargs="*", choices=sorted(RUNS), help="only these runs")
    args = parser.parse_args()
    names = args.only or list(RUNS)
    baseline = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    hashes, differ = {}, []
    with tempfile.TemporaryDirectory(prefix="scyc_hashes_") as tmp:
        for name in names:
            hashes[name] = run_hashes(name, Path(tmp))
            same = baseline.get(name) == hashes[name]
            print(f"{name}: {'identical' if same else 'DIFFERENT'} {json.dumps(hashes[name])}", flush=True)
            differ += [] if same else [name]
    if args.record:
        BASELINE.parent.mkdir(parents=True, exist_ok=True)
        BASELINE.write_text(json.dumps({**baseline, **hashes}, indent=2) + "\n")
        print(f"recorded in {BASELINE.relative_to(ROOT)}")
        return 0
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
