"""scyc: learning-rate schedules for iterative pruning (S-Cyc and its benchmarks).

``scyc.run(overrides=[...], run_dir=...)`` runs an experiment from Python (``scyc.cli``, which imports its
dependencies only when called: importing the package loads nothing else).
"""

__version__ = "0.1.0"

from scyc.cli import run  # noqa: E402

__all__ = ["run"]
