"""Issue 28, faults and bad input, second pass: no run dir that lies, no late refusal, no raw traceback, scripts
included. Black-box through train.py and the scripts (in-process only for scyc.run's threads); each test is named
test_item<N>_... after the issue's item."""

from __future__ import annotations

import errno
import gzip
import os
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from trust_helpers import QUICK, ROOT, TOY, assert_one_line_error, copy_fmnist, popen, run, summary, train_cmd, tree

QUICK3 = (*QUICK[:-1], "pruner.rounds=3")  # QUICK with a third round: a run to kill halfway


def wait_until(proc: subprocess.Popen, condition, timeout: float = 300, poll: float = 0.002) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (rc {proc.returncode}) first:\n{proc.stdout.read()[-3000:]}")
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(poll)


def interrupted_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("interrupted:")]


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> Path:
    """A 3-round run SIGKILLed once round 1's checkpoint is written (copied by each test that uses it)."""
    run_dir = tmp_path_factory.mktemp("killed") / "run"
    proc = popen(train_cmd(run_dir, *QUICK3))
    wait_until(proc, lambda: (run_dir / "checkpoints" / "round_01.pt").exists(), poll=0.005)
    proc.kill()
    proc.wait(timeout=60)
    return run_dir


def copy_run(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, symlinks=True)
    return dest


def misfit(path: Path) -> None:
    """Make ``path`` a loadable scyc checkpoint of another model: its first layer 50 wide instead of 300."""
    state = torch.load(path, weights_only=True)
    model = state["state"]["model"]
    model["net.1.weight"], model["net.1.bias"] = torch.zeros(50, 784), torch.zeros(50)
    torch.save(state, path)


# ------------------------------------------------------------------------------------------------
# 1. A loadable checkpoint of another model is skipped like a damaged one, in one line naming why
def test_item1_last_pt_of_another_model_falls_back_to_the_round_checkpoint(tmp_path, killed):
    run_dir = copy_run(killed, tmp_path / "run")
    shutil.copy(run_dir / "checkpoints" / "round_01.pt", run_dir / "checkpoints" / "last.pt")  # the newest ...
    misfit(run_dir / "checkpoints" / "last.pt")  # ... of another model
    proc = run(train_cmd(run_dir, *QUICK3, "resume=true"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    warning = next(line for line in out.splitlines() if "last.pt cannot be used" in line)
    assert "net.1.weight is 50x784 in it, 300x784 in this model" in warning, warning
    assert "round_01.pt" in out  # resumed from the newest checkpoint that fits
    assert summary(run_dir)["status"] == "complete" and summary(run_dir)["rounds_completed"] == 3


def test_item1_no_checkpoint_fits_is_refused_with_the_dir_as_found(tmp_path, killed):
    run_dir = copy_run(killed, tmp_path / "run")
    for path in (run_dir / "checkpoints").glob("*.pt"):
        misfit(path)
    before = tree(run_dir)
    proc = run(train_cmd(run_dir, *QUICK3, "resume=true"))
    line = assert_one_line_error(proc, "no usable checkpoint", "last.pt (does not fit this model: model net.1.weight")
    assert "Error(s) in loading" not in line
    assert tree(run_dir) == before


# ------------------------------------------------------------------------------------------------
# 2. The resume command of a run dir with spaces or non-ASCII letters works
@pytest.mark.parametrize(
    "path", ["/tmp/r/sp ace ü", "/tmp/it's", "/tmp/a,b=[c]", "/tmp/back\\slash'", "/tmp/plain_1.2-x"]
)
def test_item2_hydra_value_reads_back_as_the_same_path(path):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from scyc.lifecycle.rundir import hydra_value

    override = OverridesParser.create().parse_override(f"hydra.run.dir={hydra_value(Path(path))}")
    assert override.value() == path


def test_item2_printed_resume_command_works_for_a_dir_with_spaces_and_non_ascii(tmp_path):
    run_dir = tmp_path / "sp ace ü"
    cmd = [*train_cmd(None, *QUICK), f"hydra.run.dir='{run_dir}'"]  # quoted for Hydra, as the command
    first = run(cmd, timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    refused = run(cmd)
    line = assert_one_line_error(refused, "To continue it:")
    command = shlex.split(line.split("To continue it: ", 1)[1].split("  -- or choose")[0])
    assert command[0] == "python"
    resumed = run([sys.executable, *command[1:]])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "is complete" in resumed.stderr and "nothing to resume" in resumed.stderr


# ------------------------------------------------------------------------------------------------
# 3. A full disk mid-run: one line, exit 2, and summary.json says failed (never running); a figure that cannot
#    be drawn is one warning line, not a traceback
@pytest.fixture
def small_disk(tmp_path):
    """A 64 MB tmpfs (root only; skipped elsewhere), unmounted after the test."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> None:
    """Write zeros into ``disk`` until no byte more fits."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    os.write(fd, bytes(chunk))
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    "when, extra, written",
    [
        ("after_the_final_checkpoint", ("pruner.rounds=2", "train.epochs=1"), "round_01.pt"),
        ("after_an_epoch_checkpoint", ("pruner.rounds=2", "train.epochs=2"), "last.pt"),
    ],
)
def test_item3_disk_full_mid_run_one_line_and_summary_failed(small_disk, when, extra, written):
    run_dir = small_disk / "run"
    proc = popen(train_cmd(run_dir, *TOY, "analysis.figures=true", *extra))
    wait_until(proc, lambda: (run_dir / "checkpoints" / written).exists(), poll=0.001)
    proc.send_signal(signal.SIGSTOP)  # the disk fills while the run waits: its next write finds no space
    try:
        fill(small_disk)
    finally:
        proc.send_signal(signal.SIGCONT)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 2, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "no space left" in lines[0] and "resume with:" in lines[0], lines
    record = summary(run_dir)
    assert record["status"] == "failed" and "no space left" in record["reason"], record


def test_item3_a_figure_that_cannot_be_written_is_one_warning_line(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "figures").write_text("a file where the figures folder goes\n")
    proc = run(train_cmd(run_dir, *TOY, "analysis.figures=true"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert len([line for line in out.splitlines() if "drawing the run's figures failed" in line]) == 1
    assert summary(run_dir)["status"] == "complete"


# ------------------------------------------------------------------------------------------------
# 4. A refused resume leaves train.log as it was, and says what is wrong with each file
def test_item4_refused_resume_leaves_the_dir_as_found_and_names_what_is_wrong(tmp_path, killed):
    run_dir = copy_run(killed, tmp_path / "run")
    for path in (run_dir / "checkpoints").glob("*.pt"):
        path.write_bytes(os.urandom(4096))
    before = tree(run_dir)
    proc = run(train_cmd(run_dir, *QUICK3, "resume=true"))
    line = assert_one_line_error(proc, "no usable checkpoint", "last.pt (not a checkpoint: a checkpoint is a zip")
    assert "Please file an issue" not in proc.stdout + proc.stderr
    assert "cannot be used" not in proc.stdout + proc.stderr, "a refused call logs nothing"
    assert tree(run_dir) == before, line


def test_item4_skipped_checkpoints_are_logged_once_the_resume_is_accepted(tmp_path, killed):
    run_dir = copy_run(killed, tmp_path / "run")
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"")
    proc = run(train_cmd(run_dir, *QUICK3, "resume=true"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "last.pt cannot be used (the file is empty); trying the previous one" in (run_dir / "train.log").read_text()


# ------------------------------------------------------------------------------------------------
# 5. A folder where a checkpoint file goes is refused before the run starts
def test_item5_last_pt_a_directory_is_refused_with_the_dir_as_found(tmp_path, killed):
    run_dir = copy_run(killed, tmp_path / "run")
    last = run_dir / "checkpoints" / "last.pt"
    last.unlink()
    last.mkdir()
    before = tree(run_dir)
    proc = run(train_cmd(run_dir, *QUICK3, "resume=true"))
    assert_one_line_error(proc, str(last), "is a folder, not a checkpoint")
    assert tree(run_dir) == before and last.is_dir()


# ------------------------------------------------------------------------------------------------
# 6, 8, 9. Refused at start-up in one line naming the key: no run dir, no .lock, no traceback
@pytest.mark.parametrize(
    "item, overrides, words",
    [
        (6, ("train.nesterov=true", "train.momentum=0"), ("train.nesterov=true", "train.momentum > 0")),
        (8, ("train.eval_batch_size=2.5",), ("train.eval_batch_size=2.5", "int")),
        (9, ("train.eval_batch_size=abc",), ("train.eval_batch_size=abc",)),
        (9, ("model.hidden=[0]",), ("model.hidden=[0]", ">= 1")),
        (9, ("model.hidden=[-5]",), ("model.hidden=[-5]", ">= 1")),
        (9, ("dataset.pad=-14",), ("dataset.pad=-14", ">= 0")),
        (9, ("seed=99999999999999999999",), ("seed=99999999999999999999", "64 bits")),
    ],
    ids=lambda v: v if isinstance(v, int) else None,
)
def test_item6_8_9_refused_at_start_up_in_one_line(tmp_path, item, overrides, words):
    run_dir = tmp_path / "run"
    proc = run(train_cmd(run_dir, *QUICK, *overrides))
    assert_one_line_error(proc, *words)
    assert " - round 0/" not in proc.stdout + proc.stderr, "trained before the refusal"
    assert not run_dir.exists(), sorted(p.name for p in run_dir.iterdir())


# ------------------------------------------------------------------------------------------------
# 7. Test images of another size than the training images: refused when the data is loaded
def test_item7_test_images_of_another_size_refused_when_loaded(tmp_path):
    root = copy_fmnist(tmp_path / "fmnist")
    n = 100
    with gzip.open(root / "t10k-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(struct.pack(">IIII", 0x803, n, 20, 20) + bytes(n * 20 * 20))
    with gzip.open(root / "t10k-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(struct.pack(">II", 0x801, n) + bytes(n))
    run_dir = tmp_path / "run"
    proc = run(train_cmd(run_dir, *QUICK, f"dataset.root={root}", "dataset.download=false"))
    assert_one_line_error(proc, "t10k-images-idx3-ubyte.gz", "20x20", "28x28")
    assert not run_dir.exists()


# ------------------------------------------------------------------------------------------------
# 10. Ctrl-C during start-up, and a second Ctrl-C: one line, exit 130, no traceback, nothing left or not running
def test_item10_sigint_during_start_up_exits_130_and_leaves_nothing(tmp_path):
    run_dir = tmp_path / "run"
    proc = popen(train_cmd(run_dir, *QUICK))
    wait_until(proc, lambda: (run_dir / ".lock").exists(), poll=0.0005)  # start-up: the data is being read
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert len(interrupted_lines(out)) == 1, out[-3000:]
    assert not run_dir.exists(), sorted(p.name for p in run_dir.iterdir())


def test_item10_second_sigint_exits_130_without_a_traceback(tmp_path):
    run_dir = tmp_path / "run"
    proc = popen(train_cmd(run_dir, *TOY[:-2], "pruner.rounds=3", "train.epochs=3", "dataset.train_subset=5000",
                           "analysis.grad_every_round=false", "analysis.figures=false"))  # fmt: skip
    wait_until(proc, lambda: (run_dir / "checkpoints" / "last.pt").exists(), poll=0.005)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.002)
    proc.send_signal(signal.SIGINT)  # before the first stop completes: at once, no new checkpoint
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert len(interrupted_lines(out)) == 1, out[-3000:]
    assert summary(run_dir)["status"] == "interrupted"


# ------------------------------------------------------------------------------------------------
# 11. A checkpoints folder made unwritable mid-run: one line, exit 2, marked failed; it resumes afterwards
def test_item11_checkpoints_made_immutable_mid_run_one_line_then_resumes(tmp_path):
    run_dir = tmp_path / "run"
    folder = run_dir / "checkpoints"
    proc = popen(train_cmd(run_dir, *QUICK3))
    wait_until(proc, lambda: (folder / "round_00.pt").exists(), poll=0.001)
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
        proc.kill()
        pytest.skip("chattr +i is not available here")
    try:
        out, _ = proc.communicate(timeout=300)
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    assert proc.returncode == 2, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    lines = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and str(folder) in lines[0] and "resume with:" in lines[0], lines
    assert summary(run_dir)["status"] == "failed" and summary(run_dir)["resume_command"]
    resumed = run(train_cmd(run_dir, *QUICK3, "resume=true"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert summary(run_dir)["status"] == "complete" and summary(run_dir)["rounds_completed"] == 3


# ------------------------------------------------------------------------------------------------
# 13. scyc.run from two threads: the second call is refused in one line while the first runs
def test_item13_a_second_concurrent_scyc_run_is_refused(tmp_path):
    import scyc
    from scyc import cli
    from scyc.foundations.registry import ConfigError

    overrides = [*QUICK, "wandb.mode=disabled", "progress=false"]
    first: dict = {}
    thread = threading.Thread(target=lambda: first.update(scyc.run(overrides, run_dir=tmp_path / "a")))
    thread.start()
    deadline = time.monotonic() + 60
    while not cli._API_RUN.locked() and thread.is_alive():
        assert time.monotonic() < deadline
        time.sleep(0.001)
    try:
        with pytest.raises(ConfigError, match="another scyc.run call is running in this process") as refused:
            scyc.run(overrides, run_dir=tmp_path / "b")
        assert "\n" not in str(refused.value)
        assert not (tmp_path / "b").exists()
    finally:
        thread.join(timeout=300)
    assert first["status"] == "complete"
    assert scyc.run(overrides, run_dir=tmp_path / "c")["status"] == "complete"  # one after another: fine


# ------------------------------------------------------------------------------------------------
# 14. The scripts: damaged or incomplete inputs give one line naming the file or value, and exit 2
def script(name: str, *args: str | Path) -> subprocess.CompletedProcess:
    return run([sys.executable, str(ROOT / "scripts" / name), *map(str, args)], timeout=300)


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> Path:
    """A finished toy run with the gradient measurement (grad_stats.csv, grad_hist.npz)."""
    run_dir = tmp_path_factory.mktemp("measured") / "run"
    run(train_cmd(run_dir, *TOY), timeout=300).check_returncode()
    return run_dir


def _corrupt_hist(d: Path) -> tuple[str, ...]:
    (d / "grad_hist.npz").write_bytes(b"PK\x03\x04 not really a zip archive")
    return (str(d / "grad_hist.npz"),)


def _stats_without_std(d: Path) -> tuple[str, ...]:
    import pandas as pd

    pd.read_csv(d / "grad_stats.csv").drop(columns=["std"]).to_csv(d / "grad_stats.csv", index=False)
    return (str(d / "grad_stats.csv"), "std")


@pytest.mark.parametrize(
    "damage, args",
    [(_corrupt_hist, ()), (_stats_without_std, ("--no-figures",)), (None, ("--population", "nosuch", "--no-figures"))],
    ids=["corrupt_grad_hist", "grad_stats_missing_columns", "unknown_population"],
)
def test_item14_analyze_gradients_refuses_bad_input_in_one_line(tmp_path, measured, damage, args):
    run_dir = copy_run(measured, tmp_path / "run")
    words = damage(run_dir) if damage else ("--population nosuch", "surviving")
    proc = script("analyze_gradients.py", run_dir, "--out", tmp_path / "figs", *args)
    assert_one_line_error(proc, *words)
    assert not (tmp_path / "figs").exists()


ORACLE_HEADER = "round,max_lr,val_acc,test_acc,chosen,sparsity\n"


def _oracle_without_chosen(d: Path) -> tuple[str, ...]:
    (d / "oracle.csv").write_text("round,max_lr,val_acc,sparsity\n0,0.1,0.8,0.0\n1,0.1,0.8,0.2\n2,0.2,0.8,0.36\n")
    return (str(d / "oracle.csv"), "chosen")


def _oracle_one_row(d: Path) -> tuple[str, ...]:
    (d / "oracle.csv").write_text(ORACLE_HEADER + "0,0.1,0.8,0.79,1,0.0\n")  # a run killed in its first round
    return (str(d), "1 chosen max_lr", "at least 3")


@pytest.mark.parametrize("damage", [_oracle_without_chosen, _oracle_one_row], ids=lambda f: f.__name__.strip("_"))
def test_item14_fit_scurve_refuses_bad_input_in_one_line(tmp_path, damage):
    run_dir = tmp_path / "oracle_run"
    run_dir.mkdir()
    words = damage(run_dir)
    conf = tmp_path / "conf"
    proc = script("fit_scurve.py", run_dir, "--conf-dir", conf, "--figure", tmp_path / "fit.png")
    assert_one_line_error(proc, *words)
    assert not conf.exists() and not (tmp_path / "fit.png").exists()
