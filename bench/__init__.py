"""The benchmark suite: each figure next to its baseline, in one run, as ratios and percentiles.

``make bench`` (``python -m bench``) starts a stack of its own on free ports, measures, and writes
``bench/results/<date>.json`` plus a Markdown table (and PNG plots when matplotlib is there);
``--smoke`` runs every figure for a few seconds so the code never rots (``make test`` does).
Timing goals live here, never in tests: tests check behaviour, this prints numbers.
"""
