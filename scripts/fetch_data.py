"""Fetch a data set ahead of a run: ``python scripts/fetch_data.py [fashion_mnist] [--data-dir data]``."""

from __future__ import annotations

import argparse
import logging
import sys

from scyc.data.base import DATASETS
from scyc.registry import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dataset", nargs="?", default="fashion_mnist")
    parser.add_argument("--data-dir", default="data")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import scyc.data  # noqa: F401  (registers the data sets)

    try:
        raw = DATASETS.build(args.dataset, {"data_dir": args.data_dir}, key="dataset")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.dataset}: {len(raw.train_x)} train / {len(raw.test_x)} test images from {raw.source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
