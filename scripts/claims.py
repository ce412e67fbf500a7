"""Print every number docs/claims.md and the README headline quote, computed from the committed tables, and check
the pages' generated blocks (``<!-- claims:NAME -->`` ... ``<!-- /claims:NAME -->``) against them.

python scripts/claims.py                 # exit 0: all match; 1: blocks differ (listed); 2: unknown/missing block
python scripts/claims.py --write         # rewrite the blocks from the data
python scripts/claims.py --pages A.md B.md   # check other copies of the pages (the tests do)
"""

import sys
from pathlib import Path

from scyc.claims.cli import main

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    sys.exit(main(root=ROOT))
