"""scyc: learning-rate schedules for iterative pruning (S-Cyc and its benchmarks).

``scyc.run(overrides=[...], run_dir=...)`` runs an experiment from Python (``scyc.cli``, which imports its
dependencies only when called: importing the package loads nothing else).
"""

from scyc.cli import run
from scyc.version import __version__

__all__ = ["__version__", "run"]
