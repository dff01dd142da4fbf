"""Benchmarks: runnable scripts (``python -m benchmarks.NAME`` from the repository root) that print
side-by-side ratios and a final ``RESULT {json}`` line; see benchmarks/README.md."""
