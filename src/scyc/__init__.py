"""scyc: learning-rate schedules for iterative pruning (S-Cyc and its benchmarks)."""

__version__ = "0.1.0"
