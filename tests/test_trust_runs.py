"""Issue 16, 'a run's files never lie' and the run-level items: black-box tests through train.py and the public
API (items 1, 2, 3, 4, 12, 14, 16, 17, 19). Each test is named test_item<N>_... after the issue's numbering."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from trust_helpers import (
    QUICK,
    ROOT,
    TIMING,
    TOY,
    assert_one_line_error,
    copy_fmnist,
    docs_text,
    env_without,
    hydra_bytes,
    popen,
    read_gz,
    readme,
    rows,
    run,
    summary,
    train_cmd,
    tree,
    wandb_records,
    write_gz,
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished toy run with everything on (gradients, figures, W&B offline): (run dir, its process)."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    proc = run(train_cmd(run_dir, *TOY, "wandb.mode=offline"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return run_dir, proc


def wait_for(proc: subprocess.Popen, condition, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) first:\n{proc.stdout.read()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("timed out waiting for the run")
        time.sleep(0.01)


def kill_at_line(proc: subprocess.Popen, marker: str, timeout: float = 300) -> list[str]:
    """Read the run's merged output line by line; SIGKILL it as soon as a line contains ``marker``."""
    seen, deadline = [], time.monotonic() + timeout
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            return seen
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise AssertionError(f"never saw {marker!r}:\n{''.join(seen)[-3000:]}")


def table(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype=str)
    return df[[c for c in df.columns if c not in TIMING]]


# ------------------------------------------------------------------------------------------------
# 1. W&B failing to start ends in a truthful status
def test_item1_wandb_online_without_network_marks_the_run_failed(tmp_path):
    """W&B online, no API key, W&B's server unreachable (a closed loopback port): the run must not stay 'running'."""
    run_dir = tmp_path / "run"
    env = env_without(
        "WANDB_API_KEY", "WANDB_MODE", "WANDB_SILENT", WANDB_BASE_URL="http://127.0.0.1:9", WANDB_INIT_TIMEOUT="20"
    )
    env["NETRC"] = str(tmp_path / "no-netrc")  # no credentials from ~/.netrc either
    proc = run(train_cmd(run_dir, *QUICK, "wandb.mode=online"), env=env, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert (run_dir / "summary.json").exists(), f"no summary.json:\n{out[-3000:]}"
    info = summary(run_dir)
    assert info["status"] == "failed", info
    assert info.get("reason"), info
    assert "wandb.mode=offline" in proc.stderr, proc.stderr[-3000:]


# ------------------------------------------------------------------------------------------------
# 2. A refused invocation leaves the run dir exactly as it found it
def test_item2_second_run_refused_by_the_lock_leaves_hydra_untouched(tmp_path):
    run_dir = tmp_path / "run"
    first = popen(train_cmd(run_dir, *TOY[:-2], "pruner.rounds=6", "deterministic=true", "seed=0"))
    try:
        wait_for(first, lambda: (run_dir / "summary.json").exists())
        before_hydra, before_tree = hydra_bytes(run_dir), tree(run_dir / ".hydra")
        second = run(train_cmd(run_dir, *TOY[:-2], "pruner.rounds=6", "deterministic=true", "seed=7"))
        assert second.returncode == 2, second.stdout + second.stderr
        assert hydra_bytes(run_dir) == before_hydra, "the refused invocation rewrote .hydra/"
        assert tree(run_dir / ".hydra") == before_tree
        assert "seed: 7" not in (run_dir / ".hydra" / "config.yaml").read_text()
    finally:
        first.kill()
        first.wait(timeout=60)


def test_item2_refused_resume_with_a_changed_rate_leaves_the_run_dir_as_found(tmp_path, finished):
    run_dir = tmp_path / "run"
    shutil.copytree(finished[0], run_dir, symlinks=True)
    before_hydra, before_tree = hydra_bytes(run_dir), tree(run_dir)
    proc = run(train_cmd(run_dir, *TOY, "pruner.rate=0.3", "resume=true", wandb="offline"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert hydra_bytes(run_dir) == before_hydra, "the refused resume rewrote .hydra/"
    assert "rate: 0.3" not in (run_dir / ".hydra" / "config.yaml").read_text()
    assert tree(run_dir) == before_tree, "the refused resume changed files of the run"


# ------------------------------------------------------------------------------------------------
# 3. Every appended file is cut back on resume, also after a kill before the first checkpoint
def test_item3_kill_before_first_checkpoint_then_resume_does_not_duplicate_rows(tmp_path, finished):
    reference = finished[0]
    run_dir = tmp_path / "run"
    proc = popen(train_cmd(run_dir, *TOY, "hydra.verbose=scyc.analysis.gradients"))  # its lines are DEBUG (item 14)
    kill_at_line(proc, "gradients round 0 start")
    assert proc.returncode == -signal.SIGKILL
    resumed = run(train_cmd(run_dir, *TOY, "resume=true"))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    for name in ("grad_stats.csv", "layer_sparsity.csv", "results.csv", "epochs.csv", "lr_trace.csv"):
        assert rows(run_dir / name) == rows(reference / name), name
    with np.load(reference / "grad_hist.npz") as ref, np.load(run_dir / "grad_hist.npz") as got:
        assert sorted(ref.files) == sorted(got.files)
        assert {k: ref[k].shape for k in ref.files} == {k: got[k].shape for k in got.files}


# ------------------------------------------------------------------------------------------------
# 4. Resuming on different data is refused unless the user says so, and then logged
@pytest.fixture
def two_copies(tmp_path):
    """Fashion-MNIST copied twice: A as shipped, B with the training labels shuffled (same sizes)."""
    a, b = copy_fmnist(tmp_path / "A"), copy_fmnist(tmp_path / "B")
    labels = b / "train-labels-idx1-ubyte.gz"
    raw = read_gz(labels)
    body = np.frombuffer(raw[8:], dtype=np.uint8).copy()
    np.random.default_rng(0).shuffle(body)
    write_gz(labels, raw[:8] + body.tobytes())
    return a, b


def test_item4_resume_on_different_data_is_refused_then_allowed_and_logged(tmp_path, two_copies):
    a, b = two_copies
    run_dir = tmp_path / "run"
    proc = popen(train_cmd(run_dir, *QUICK, "pruner.rounds=3", f"dataset.root={a}"))
    wait_for(proc, lambda: (run_dir / "checkpoints" / "round_00.pt").exists())
    proc.kill()
    proc.wait(timeout=60)

    refused = run(train_cmd(run_dir, *QUICK, "pruner.rounds=3", f"dataset.root={b}", "resume=true"))
    line = assert_one_line_error(refused)
    assert "data" in line and "resume_allow_data_change=true" in refused.stderr, refused.stderr[-3000:]

    allowed = run(
        train_cmd(
            run_dir, *QUICK, "pruner.rounds=3", f"dataset.root={b}", "resume=true", "resume_allow_data_change=true"
        )
    )
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert summary(run_dir)["status"] == "complete"
    logged = (run_dir / "train.log").read_text() + json.dumps(summary(run_dir))
    assert "resume_allow_data_change" in logged or "data changed" in logged.lower(), logged[-3000:]


# ------------------------------------------------------------------------------------------------
# 12. README's description of train.log is true
def test_item12_readme_describes_train_log_truthfully(finished):
    run_dir = finished[0]
    n_rounds = rows(run_dir / "results.csv")
    lines = [ln for ln in (run_dir / "train.log").read_text().splitlines() if ln.strip()]
    row = [ln for ln in readme().splitlines() if ln.startswith("| `train.log`")]
    assert len(row) == 1, "README's file table has no train.log row"
    if "one line per round" in row[0]:
        assert len(lines) == n_rounds, f"README says one line per round: {len(lines)} lines for {n_rounds} rounds"


# ------------------------------------------------------------------------------------------------
# 14. The console: one INFO line per round, the gradient lines not at INFO, and a closing 'where are my results'
def test_item14_one_info_line_per_round_and_gradient_lines_below_info(finished):
    run_dir, proc = finished
    out = proc.stdout + proc.stderr
    info = [ln for ln in out.splitlines() if "[INFO]" in ln]
    assert not [ln for ln in info if "gradients round" in ln], "gradient lines must not be at INFO"
    n_rounds = rows(run_dir / "results.csv")
    round_lines = [ln for ln in info if " - round " in ln]
    assert len(round_lines) == n_rounds, round_lines


def test_item14_run_ends_by_saying_where_its_results_are(finished):
    run_dir, proc = finished
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-10:])
    assert str(run_dir) in tail, tail
    for word in ("results.csv", "figures", "wandb sync"):
        assert word in tail, (word, tail)


def run_in_terminal(cmd: list[str], timeout: float = 600) -> tuple[int, str]:
    """Run ``cmd`` with stdout and stderr on a pseudo-terminal (120 columns, raw: no newline translation), as a
    user at a terminal sees it; returns (rc, everything written)."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios
    import tty

    master, slave = pty.openpty()
    tty.setraw(slave)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env_without(), stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    if proc.poll() is None:
        proc.kill()
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


def screen(out: str) -> list[str]:
    """What a terminal shows (scrollback included) after ``out``: a minimal emulator for what tqdm and logging
    write (printable text overwrites, CR, LF, ESC[nA cursor up, ESC[K / ESC[2K erase; other escapes ignored; no
    line wrapping)."""
    import re as _re

    lines, row, col = [[]], 0, 0
    for token in _re.findall(r"\x1b\[[0-9;]*[A-Za-z]|\r|\n|[^\x1b\r\n]+|\x1b", out):
        if token == "\r":
            col = 0
        elif token == "\n":
            row, col = row + 1, 0
            if row == len(lines):
                lines.append([])
        elif token.startswith("\x1b["):
            n = int(token[2:-1] or 1) if token[2:-1].isdigit() else 1
            if token.endswith("A"):
                row = max(0, row - n)
            elif token.endswith("K"):
                del lines[row][0 if token[2:-1] == "2" else col :]
        elif token != "\x1b":
            line = lines[row]
            line.extend(" " * (col - len(line)))
            line[col : col + len(token)] = token
            col += len(token)
    return ["".join(line).rstrip() for line in lines]


def test_item14_terminal_shows_every_log_line_intact_and_a_per_step_bar(tmp_path):
    """progress=true on a terminal: every INFO line of train.log is on the screen exactly (no bar text over or
    after it, as with logging_redirect_tqdm), and a bar advances per optimiser step inside the epoch (500
    examples / batch 100 = 5 steps: a bar with total 5)."""
    run_dir = tmp_path / "run"
    cmd = [c for c in train_cmd(run_dir, *QUICK, "train.batch_size=100") if c != "progress=false"] + ["progress=true"]
    rc, out = run_in_terminal(cmd)
    assert rc == 0, out[-3000:]
    shown = screen(out)
    logged = [ln for ln in (run_dir / "train.log").read_text().splitlines() if "][INFO] - " in ln]
    assert logged
    missing = [ln for ln in logged if ln.rstrip() not in shown]
    garbled = [ln for ln in shown if "][INFO] - " in ln and ln not in {x.rstrip() for x in logged}]
    assert not missing and not garbled, f"missing: {missing}\ngarbled: {garbled}\nscreen:\n" + "\n".join(shown)
    assert re.search(r"\|\s*\d+/5 \[", out), "no per-step bar (total 5 steps) inside the epoch"


# ------------------------------------------------------------------------------------------------
# 16. A Python API through the same guards as the CLI, and a console script
API_SCRIPT = r"""
import json, sys
import scyc

run_dir, overrides = sys.argv[1], json.loads(sys.argv[2])
def status(s):
    return s["status"] if isinstance(s, dict) else getattr(s, "status")
out = {"first": status(scyc.run(overrides=overrides, run_dir=run_dir))}
with open(run_dir + "/grad_stats.csv", "rb") as fh:
    first_rows = fh.read()
try:
    scyc.run(overrides=overrides, run_dir=run_dir)
    out["second"] = "accepted"
except Exception as exc:
    out["second"] = f"refused: {type(exc).__name__}: {exc}"
with open(run_dir + "/grad_stats.csv", "rb") as fh:
    out["rows_kept_after_second"] = fh.read() == first_rows
out["resumed"] = status(scyc.run(overrides=[*overrides, "resume=true"], run_dir=run_dir))
with open(run_dir + "/grad_stats.csv", "rb") as fh:
    out["rows_kept_after_resume"] = fh.read() == first_rows
print("RESULT " + json.dumps(out))
"""


def test_item16_python_api_runs_and_guards_like_the_cli(tmp_path):
    run_dir = tmp_path / "run"
    overrides = [*TOY, "analysis.figures=false", "wandb.mode=disabled", "progress=false"]
    repo_before = sorted(p.name for p in ROOT.iterdir())
    proc = run([sys.executable, "-c", API_SCRIPT, str(run_dir), json.dumps(overrides)], timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[7:])
    assert result["first"] == "complete", result
    assert result["second"].startswith("refused"), result
    assert result["rows_kept_after_second"] and result["rows_kept_after_resume"], result
    assert result["resumed"] == "complete", result
    assert sorted(p.name for p in ROOT.iterdir()) == repo_before, "the API wrote into the working directory"
    assert not (run_dir / "data").exists() and not (run_dir / "fashion-mnist").exists(), "a second data copy"
    summary = json.loads((run_dir / "summary.json").read_text())  # the call, not the interpreter, is the command
    assert summary["command"].startswith("scyc.run(overrides="), summary["command"]
    hydra = run_dir / ".hydra"  # like a CLI run's: the composed config and the call's overrides (the resume's)
    assert yaml.safe_load((hydra / "config.yaml").read_text())["pruner"]["rounds"] >= 1
    assert yaml.safe_load((hydra / "overrides.yaml").read_text())[: len(overrides)] == overrides


def test_item16_console_script_and_api_are_declared_and_documented():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "scyc-train" in project.get("scripts", {}), "pyproject.toml [project.scripts] has no scyc-train"
    assert "scyc.run(" in docs_text(), "the Python API is not documented"


# ------------------------------------------------------------------------------------------------
# 17. W&B: tables and files as artifacts, job_type, a meaningful group for sweeps, syncing a sweep documented
def _offline_run(run_dir: Path) -> Path:
    found = sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert found, f"no offline W&B run under {run_dir / 'wandb'}"
    return found[-1]


def test_item17_offline_run_logs_tables_as_artifacts_and_sets_job_type(finished):
    records = list(wandb_records(_offline_run(finished[0])))
    run_records = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run_records and run_records[0].job_type, "the W&B run has no job_type"
    artifacts = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    assert artifacts, "no artifact logged"
    names = " ".join(
        [a.name for a in artifacts] + [e.path for a in artifacts for e in a.manifest.contents]
    )  # artifact names and the paths in their manifests
    for table in ("results", "layer_sparsity"):
        assert table in names, (table, names)
    figures = [e.path for a in artifacts for e in a.manifest.contents if e.path.endswith(".png")]
    assert figures, f"no figure among the artifacts' files: {names}"


@pytest.mark.slow
def test_item17_sweep_group_is_its_overrides_not_its_directory(tmp_path):
    sweep = tmp_path / "sweep"
    cmd = [
        sys.executable, str(ROOT / "train.py"), "-m", f"hydra.sweep.dir={sweep}", "progress=false",
        "wandb.mode=offline", "schedule=scyc,constant", *QUICK[:-3], "pruner.rounds=1",
        "analysis.grad_every_round=false", "analysis.figures=false",
    ]  # fmt: skip
    proc = run(cmd, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    groups = set()
    for run_file in sorted(sweep.glob("*/wandb/offline-run-*/run-*.wandb")):
        groups |= {r.run.run_group for r in wandb_records(run_file) if r.WhichOneof("record_type") == "run"}
    assert len(groups) == 1, groups
    group = groups.pop()
    assert group != sweep.name and "schedule" in group, group


def test_item17_docs_show_how_to_sync_a_whole_sweep():
    assert "wandb sync" in docs_text() and "*/wandb/offline-run-*" in docs_text()


# ------------------------------------------------------------------------------------------------
# 19. Users' YAMLs outside the repository; extending a finished run by more rounds
def test_item19_config_dir_outside_the_repository_adds_a_schedule(tmp_path):
    conf = tmp_path / "myconf" / "schedule"
    conf.mkdir(parents=True)
    (conf / "my.yaml").write_text("name: my\npolicy: constant\nshape: constant\nlr: 0.02\n")
    run_dir = tmp_path / "run"
    cmd = train_cmd(run_dir, "schedule=my", *QUICK[:-4], "pruner.rounds=1")
    proc = run([*cmd[:2], "--config-dir", str(tmp_path / "myconf"), *cmd[2:]])  # Hydra's options before overrides
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert pd.read_csv(run_dir / "results.csv")["max_lr"].tolist() == [0.02]


def test_item19_docs_show_config_dir_or_searchpath():
    text = docs_text()
    assert "--config-dir" in text or "hydra.searchpath" in text, "no documented way to use YAMLs outside the repo"


def test_item19_extending_a_finished_run_by_one_round(tmp_path, finished):
    """A finished 2-round run asked for 3 rounds. Without resume=true it is refused with a hint; with resume=true
    either it trains round 2 on top of rounds 0-1 (the issue's preferred outcome), or, if extending is refused,
    the first refusal's hint must not have suggested that command."""
    run_dir = tmp_path / "run"
    shutil.copytree(finished[0], run_dir, symlinks=True)
    original = table(run_dir / "results.csv")
    more = [*(o for o in TOY if not o.startswith("pruner.rounds=")), "pruner.rounds=3"]
    hint = run(train_cmd(run_dir, *more, wandb="offline"))
    assert hint.returncode == 2, hint.stdout + hint.stderr
    proc = run(train_cmd(run_dir, *more, "resume=true", wandb="offline"))
    if proc.returncode == 0:
        extended = table(run_dir / "results.csv")
        assert len(extended) == 3, extended
        pd.testing.assert_frame_equal(extended.iloc[:2].reset_index(drop=True), original)
        assert summary(run_dir)["status"] == "complete" and summary(run_dir)["rounds_completed"] == 3
    else:
        suggested = "pruner.rounds=3" in hint.stderr and "resume=true" in hint.stderr
        assert not suggested, f"the hint suggests a resume that is then refused:\n{hint.stderr}\n{proc.stderr}"
