"""Benchmarks of niemphongd: run ``python -m bench --help`` from the repository root."""
