"""The numbers docs/claims.md and the README headline quote, computed from the committed tables.

The pages hold generated blocks between ``<!-- claims:NAME -->`` and ``<!-- /claims:NAME -->``; each block's text
is what the section function ``SECTIONS[NAME]`` (scyc.claims.sections) returns for the committed CSVs
(docs/results/*.csv, docs/tuning/*.csv). ``python scripts/claims.py`` prints every number and checks the pages;
``--write`` rewrites the blocks.

- ``fmt``: how a number is written on the page (signed points, sparsity levels, intervals);
- ``table``: one committed table CSV and the questions the pages ask of it (best-mean counts, margin ranges
  over a sparsity window, intervals excluding 0, differences against a named schedule);
- ``data``: the committed CSVs, loaded once, and the record of every number a section quotes;
- ``blocks``: finding, checking and rewriting the generated blocks in a page;
- ``sections``: the registry of section functions; the prose lives in one module per part of the page;
- ``cli``: the command line.
"""
