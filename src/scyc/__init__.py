"""scyc: learning-rate schedules for iterative pruning (S-Cyc and its benchmarks).

``scyc.run(overrides=[...], run_dir=...)`` runs an experiment from Python (``scyc.api``, which imports its
dependencies only when called: importing the package loads nothing else).
"""

__version__ = "0.1.0"

from scyc.api import run  # noqa: E402

__all__ = ["run"]
