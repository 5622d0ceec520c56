"""Workloads of the benchmarks: `dags.json` (plan DAGs with per-ToDo durations) and the
generator that made it (`python -m benchmarks.workloads.make_dags --seed 7`)."""
