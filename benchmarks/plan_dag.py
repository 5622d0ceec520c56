"""Benchmark of lam.dag on big random plans, against graphlib in the same process.

    python -m benchmarks.plan_dag            # 10k, 20k and 40k ToDos, a table
    python -m benchmarks.plan_dag --json     # the same as one JSON object

Each size: a random DAG (every ToDo depends on 0-3 earlier ToDos, plan order shuffled a
little), then best-of-N timings of validate_plan, topological_order, dependency_levels and
critical_path, and of a baseline: graphlib.TopologicalSorter over the same edges. The
per-ToDo time staying flat from 10k to 40k shows the operations grow linearly.
"""

from __future__ import annotations

import argparse
import gc
import graphlib
import json
import platform
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from lam import Plan, ToDo
from lam.dag import critical_path, dependency_levels, topological_order, validate_plan


def random_plan(size: int, seed: int = 7) -> Plan:
    rng = random.Random(seed)
    todos = []
    for k in range(size):
        deps = rng.sample(range(max(0, k - 200), k), min(k, rng.randint(0, 3))) if k else []
        todos.append(
            ToDo(
                id=f"t{k}",
                title=f"step {k}",
                executor=f"executor{k % 7}",
                depends_on=[f"t{d}" for d in deps],
            )
        )
    # Swap some neighbours so plan order is not already a topological order.
    for _ in range(size // 10):
        i = rng.randrange(size - 1)
        todos[i], todos[i + 1] = todos[i + 1], todos[i]
    return Plan(goal=f"benchmark with {size} ToDos", todos=todos)


def best_ms(action: Callable[[], object], repeat: int) -> float:
    """Best wall time in ms. The cyclic GC is off while timing (as timeit does): its full
    passes walk every live object, so with a 40k-ToDo plan alive they would time the heap,
    not the algorithm."""
    best = float("inf")
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            action()
            best = min(best, time.perf_counter() - start)
    finally:
        gc.enable()
    return best * 1000.0


def graphlib_order(plan: Plan) -> list[str]:
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for todo in plan.todos:
        sorter.add(todo.id, *todo.depends_on)
    return list(sorter.static_order())


def measure(size: int, repeat: int) -> dict[str, Any]:
    start = time.perf_counter()
    plan = random_plan(size)
    build_ms = (time.perf_counter() - start) * 1000.0
    durations = {t.id: float(len(t.id)) for t in plan.todos}
    executors = {f"executor{i}" for i in range(7)}
    assert validate_plan(plan, executors=executors, max_todos=size) == []

    def all_ops() -> None:
        validate_plan(plan, executors=executors, max_todos=size)
        topological_order(plan)
        dependency_levels(plan)
        critical_path(plan, durations)

    ms = {
        "validate_plan": best_ms(
            lambda: validate_plan(plan, executors=executors, max_todos=size), repeat
        ),
        "topological_order": best_ms(lambda: topological_order(plan), repeat),
        "dependency_levels": best_ms(lambda: dependency_levels(plan), repeat),
        "critical_path": best_ms(lambda: critical_path(plan, durations), repeat),
        "validate_plus_order": best_ms(
            lambda: (validate_plan(plan, max_todos=size), topological_order(plan)), repeat
        ),
        "all_four": best_ms(all_ops, repeat),
        "baseline_graphlib_static_order": best_ms(lambda: graphlib_order(plan), repeat),
        "baseline_iterate_plan": best_ms(
            lambda: [(t.id, list(t.depends_on)) for t in plan.todos], repeat
        ),
        "build_plan_once": build_ms,
    }
    baseline = ms["baseline_graphlib_static_order"]
    return {
        "todos": size,
        "edges": sum(len(t.depends_on) for t in plan.todos),
        "ms": {k: round(v, 3) for k, v in ms.items()},
        "ratio_validate_plus_order_to_graphlib": round(ms["validate_plus_order"] / baseline, 2),
        "ratio_all_four_to_graphlib": round(ms["all_four"] / baseline, 2),
        "us_per_todo_all_four": round(ms["all_four"] * 1000.0 / size, 3),
        "us_per_todo_graphlib": round(baseline * 1000.0 / size, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000, 40_000])
    parser.add_argument("--repeat", type=int, default=7, help="best of this many runs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    results = [measure(size, args.repeat) for size in args.sizes]
    if args.json:
        report = {
            "benchmark": "lam.dag",
            "python": sys.version.split()[0],
            "machine": platform.machine(),
            "repeat": args.repeat,
            "results": results,
        }
        print(json.dumps(report))
        return 0

    print(f"lam.dag on random plans (Python {sys.version.split()[0]}, best of {args.repeat})")
    header = (
        f"{'ToDos':>7} {'edges':>7} {'validate':>9} {'topo':>8} {'levels':>8} {'crit.path':>9} "
        f"{'val+topo':>9} {'all four':>9} {'graphlib':>9} {'ratio':>6} {'us/ToDo':>8} "
        f"{'graphlib us/ToDo':>16}"
    )
    print(header)
    for r in results:
        ms = r["ms"]
        print(
            f"{r['todos']:>7} {r['edges']:>7} {ms['validate_plan']:>7.1f}ms "
            f"{ms['topological_order']:>6.1f}ms {ms['dependency_levels']:>6.1f}ms "
            f"{ms['critical_path']:>7.1f}ms {ms['validate_plus_order']:>7.1f}ms "
            f"{ms['all_four']:>7.1f}ms {ms['baseline_graphlib_static_order']:>7.1f}ms "
            f"{r['ratio_all_four_to_graphlib']:>5.2f}x {r['us_per_todo_all_four']:>8.2f} "
            f"{r['us_per_todo_graphlib']:>16.2f}"
        )
    print("ratio = all four operations / graphlib.TopologicalSorter static_order on the same plan;")
    print("linear growth shows as a flat ratio and a flat time per ToDo (both drift up alike with")
    print("plan size as the working set outgrows the CPU caches)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
