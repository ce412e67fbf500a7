"""The registry: block name -> the section function that writes it. A page's block ``<!-- claims:NAME -->`` holds
exactly ``SECTIONS[NAME](data)``; every name here must appear in a page and every block in a page must be here.

To add a section: write ``def my_part(d: Data) -> str`` (in the module of its part of the page; numbers through
``d``'s methods and the helpers of scyc.claims.prose / scyc.claims.table), add it below, put the markers in the
page and run ``python scripts/claims.py --write``."""

from __future__ import annotations

from collections.abc import Callable

from scyc.claims import beyond, lenet5, main_table, pruners, resets
from scyc.claims.data import Data

SECTIONS: dict[str, Callable[[Data], str]] = {
    # docs/claims.md, the settings
    "lenet5_setting": lenet5.setting,
    # docs/claims.md, (i)
    "main_gradients": main_table.main_gradients,
    "main_tuning": main_table.main_tuning,
    "lenet5_gradients": lenet5.gradients,
    # docs/claims.md, (ii)
    "pruner_lamp": pruners.lamp,
    "pruner_random": pruners.random,
    "pruner_layerwise_magnitude": pruners.layerwise,
    "pruner_snip": pruners.snip,
    "pruners_verdict": pruners.verdict,
    # docs/claims.md, (iii)
    "main_endpoints": main_table.main_endpoints,
    "lenet5_benchmarks": lenet5.iii,
    "resets": resets.bullets,
    # docs/claims.md, (iv)
    "main_oracle": main_table.main_oracle,
    "lenet5_oracle": lenet5.iv,
    # docs/beyond.md
    "beyond_fit": beyond.fit,
    "beyond_rows": beyond.rows,
    "beyond_verdict": beyond.verdict,
    # README.md, the headline
    "readme_main": main_table.readme_main,
    "readme_resets": resets.readme,
}
