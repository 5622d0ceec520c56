"""Benchmarks; run each from the project root as `python -m benchmarks.<name>`.

(As scripts, `benchmarks/http.py` would hide the standard library's `http` package.)
"""
