"""Shared fixtures: the repo root, and a helper that runs ``train.py`` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_train(
    run_dir: Path, *overrides: str, script: str = "train.py", check: bool = True, timeout: int = 600, env=None
):
    """Run ``train.py`` (or another Hydra script) with overrides into ``run_dir``; returns the CompletedProcess."""
    args = [sys.executable, str(ROOT / script), f"hydra.run.dir={run_dir}", "progress=false"]
    if not any(o.startswith("wandb.mode=") for o in overrides):
        args.append("wandb.mode=disabled")
    args += list(overrides)
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", WANDB_SILENT="true", **(env or {}))
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def train(tmp_path):
    """``train(*overrides)`` runs a tiny experiment into a fresh run dir and returns that dir."""

    def _run(*overrides: str, check: bool = True, name: str = "run"):
        run_dir = tmp_path / name
        proc = run_train(run_dir, *overrides, check=check)
        return run_dir, proc

    return _run


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Issue 16's specification (tests/test_trust_*.py): a test of a behaviour not built yet
    (``trust_helpers.NOT_BUILT``) is an expected failure, strict (once it passes, its name must leave the list),
    and slow; the specification's heaviest tests (``trust_helpers.SLOW``, 15-25 s each: several training runs)
    run with the slow tests (``make test-all``), so that CI stays within its time."""
    from trust_helpers import NOT_BUILT, SLOW

    for item in items:
        names = {item.name, getattr(item, "originalname", None)}
        if names & NOT_BUILT:
            item.add_marker(pytest.mark.xfail(strict=True, reason="issue 16: not built yet"))
            item.add_marker(pytest.mark.slow)
        elif names & SLOW:
            item.add_marker(pytest.mark.slow)
