"""Tabulate a sweep: accuracy per schedule and sparsity (mean ± std over seeds), S-Cyc's margin over the best
benchmark, and a figure; written into the sweep dir.

python scripts/make_table.py outputs/tables/fashion_mnist_default
python scripts/make_table.py SWEEP_DIR --select best_val      # test acc at the epoch of best val acc
"""

import sys

from scyc.sweep.tables import main

if __name__ == "__main__":
    sys.exit(main())
