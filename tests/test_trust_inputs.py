"""Issue 16, bad input and failed runs: refused before anything runs, with one clear line, and no debris
(items 5, 6, 7, 8). Black-box through train.py; each test is named test_item<N>_... after the issue."""

from __future__ import annotations

import resource
import subprocess
import time

import pytest
from trust_helpers import (
    QUICK,
    ROOT,
    assert_one_line_error,
    copy_fmnist,
    env_without,
    popen,
    read_gz,
    run,
    summary,
    train_cmd,
    write_gz,
)

NO_NET = {  # downloads fail at once: every proxy is a closed loopback port (nothing leaves the machine)
    "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
}  # fmt: skip


def no_net_env() -> dict[str, str]:
    return env_without("NO_PROXY", "no_proxy", **NO_NET)


def ran_nothing(run_dir) -> None:
    """Nothing trained: no per-epoch/per-round rows, no checkpoint."""
    for name in ("epochs.csv", "results.csv", "lr_trace.csv", "checkpoints"):
        assert not (run_dir / name).exists(), f"{name} exists: the run trained before refusing"


def assert_no_run_debris(run_dir) -> None:
    """Either no run dir at all, or one clearly marked as refused (summary.json status 'refused')."""
    if not run_dir.exists():
        return
    assert (run_dir / "summary.json").exists(), f"debris left: {sorted(p.name for p in run_dir.iterdir())}"
    assert summary(run_dir)["status"] == "refused", summary(run_dir)


# ------------------------------------------------------------------------------------------------
# 5. Failed runs leave no debris
def test_item5_refused_bad_input_leaves_no_run_looking_dir(tmp_path):
    run_dir = tmp_path / "run"
    proc = run(train_cmd(run_dir, *QUICK, "pruner.rate=2"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert_no_run_debris(run_dir)


@pytest.fixture(scope="module")
def cifar_failed(tmp_path_factory):
    """``dataset=cifar10`` with an empty data_dir and every download failing: (data_dir, run dir, process)."""
    base = tmp_path_factory.mktemp("cifar")
    data_dir, run_dir = base / "data", base / "run"
    data_dir.mkdir()
    proc = run(
        train_cmd(run_dir, "dataset=cifar10", f"data_dir={data_dir}", *QUICK[:-1]), env=no_net_env(), timeout=300
    )
    return data_dir, run_dir, proc


def test_item5_failed_cifar10_download_leaves_no_empty_data_dir(cifar_failed):
    data_dir, run_dir, proc = cifar_failed
    assert proc.returncode != 0
    target = data_dir / "cifar10"
    assert not target.exists() or any(target.iterdir()), f"an empty {target} was left behind"
    assert_no_run_debris(run_dir)


# ------------------------------------------------------------------------------------------------
# 6. Values that can only fail later are refused at start-up
@pytest.mark.parametrize(
    "override, key",
    [
        ("pruner.rate=0.999999", "pruner.rate"),
        ("dataset.val_size=0", "dataset.val_size"),
        ("train.weight_decay=inf", "train.weight_decay"),
    ],
)
def test_item6_refused_at_start_up_before_training(tmp_path, override, key):
    run_dir = tmp_path / "run"
    overrides = [o for o in QUICK if not o.startswith(override.split("=")[0] + "=")]
    proc = run(train_cmd(run_dir, *overrides, "pruner.rounds=3", override))
    assert_one_line_error(proc, key)
    assert " - round 0/" not in proc.stdout + proc.stderr, "round 0 trained before the refusal"
    ran_nothing(run_dir)


# ------------------------------------------------------------------------------------------------
# 7. Damaged data files, unusable run dirs, a full disk: one line naming the file or dir, rc 2, no traceback
def _truncated(d):
    f = d / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    return f.name


def _not_gzip(d):
    f = d / "t10k-labels-idx1-ubyte.gz"
    f.write_bytes(b"this is not a gzip stream\n" * 40)
    return f.name


def _ndim_255(d):
    f = d / "t10k-labels-idx1-ubyte.gz"
    write_gz(f, bytes([0, 0, 8, 255]) + bytes(10000))
    return f.name


def _ndim_255_header_only(d):
    f = d / "t10k-labels-idx1-ubyte.gz"
    write_gz(f, bytes([0, 0, 8, 255]))  # the header's magic and ndim, nothing after it
    return f.name


def _labels_out_of_range(d):
    f = d / "train-labels-idx1-ubyte.gz"
    raw = bytearray(read_gz(f))
    raw[8:18] = bytes([12] * 10)  # the first ten training labels become 12 (Fashion-MNIST has 0-9)
    write_gz(f, bytes(raw))
    return f.name


@pytest.mark.parametrize(
    "damage",
    [_truncated, _not_gzip, _ndim_255, _ndim_255_header_only, _labels_out_of_range],
    ids=lambda f: f.__name__.strip("_"),
)
def test_item7_damaged_data_file_one_line_naming_it(tmp_path, damage):
    root = copy_fmnist(tmp_path / "fmnist")
    name = damage(root)
    proc = run(train_cmd(tmp_path / "run", *QUICK, f"dataset.root={root}", "dataset.download=false"))
    assert_one_line_error(proc, name)


def test_item7_run_dir_naming_a_file_one_line(tmp_path):
    target = tmp_path / "a_file"
    target.write_text("not a directory\n")
    proc = run(train_cmd(target, *QUICK))
    assert_one_line_error(proc, str(target))
    assert target.read_text() == "not a directory\n"


def test_item7_read_only_run_dir_one_line(tmp_path):
    """We run as root, so chmod 555 does not stop writes: the dir is made immutable (chattr +i) instead; skipped
    when neither stops a write here."""
    run_dir = tmp_path / "ro"
    run_dir.mkdir()
    immutable = subprocess.run(["chattr", "+i", str(run_dir)], capture_output=True).returncode == 0
    if not immutable:
        run_dir.chmod(0o555)
    try:
        try:
            (run_dir / "probe").write_text("x")
            (run_dir / "probe").unlink()
            pytest.skip("cannot make a directory read-only here (root, no chattr)")
        except OSError:
            pass
        proc = run(train_cmd(run_dir, *QUICK))
        assert_one_line_error(proc, str(run_dir))
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(run_dir)], check=True)
        run_dir.chmod(0o755)


def _limit_file_size(limit: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_item7_no_space_left_says_so_and_keeps_earlier_checkpoints(tmp_path):
    """A run killed after round 0's checkpoint, resumed under a 1 MB file-size limit (a LeNet-300-100 checkpoint
    is about 2.4 MB, so the next checkpoint write fails): rc 2, one line saying there is no space left in the run
    dir, and round_00.pt as it was."""
    run_dir = tmp_path / "run"
    overrides = (*QUICK[:-4], "pruner.rounds=3", "analysis.grad_every_round=false", "analysis.figures=false")
    first = popen(train_cmd(run_dir, *overrides))
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / "round_00.pt").exists():
        assert first.poll() is None and time.monotonic() < deadline, "the run ended before round 0's checkpoint"
        time.sleep(0.01)
    first.kill()
    first.wait(timeout=60)
    kept = (run_dir / "checkpoints" / "round_00.pt").read_bytes()

    proc = subprocess.run(
        train_cmd(run_dir, *overrides, "resume=true"),
        capture_output=True, text=True, timeout=600, env=env_without(), preexec_fn=_limit_file_size(1_000_000),
        cwd=ROOT,
    )  # fmt: skip
    line = assert_one_line_error(proc, str(run_dir))
    assert "space" in line.lower(), line
    assert (run_dir / "checkpoints" / "round_00.pt").read_bytes() == kept

    import torch

    assert torch.load(run_dir / "checkpoints" / "round_00.pt", weights_only=True)  # still loadable


# ------------------------------------------------------------------------------------------------
# 8. A failed CIFAR-10 download says so, why, and where to put the files
def test_item8_failed_cifar10_download_message(cifar_failed):
    data_dir, _, proc = cifar_failed
    line = assert_one_line_error(proc)
    text = proc.stderr.lower()
    assert "download" in line.lower() and "fail" in line.lower(), line
    assert str(data_dir / "cifar10") in proc.stderr, "the message must say where to put the files"
    assert "dataset.download=true" not in proc.stderr, "suggests the default that has just failed"
    assert "127.0.0.1" in text or "connection" in text or "refused" in text, "the message must say why it failed"


def test_item8_failed_cifar10_download_needs_no_traceback(cifar_failed):
    assert "Traceback" not in cifar_failed[2].stderr
