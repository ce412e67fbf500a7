"""The package's version: a leaf module (imports nothing), so that any module can record it without a cycle."""

__version__ = "0.1.0"
