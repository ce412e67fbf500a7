"""Publish a sweep's table into docs/results/ (make publish TABLE=<name>); see scyc.sweep.publish.

python scripts/publish_table.py outputs/tables/fashion_mnist_default docs/results/fashion_mnist_default [--force]
"""

import sys

from scyc.sweep.publish import main

if __name__ == "__main__":
    sys.exit(main())
