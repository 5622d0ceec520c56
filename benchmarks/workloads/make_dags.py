"""Plan DAG workloads for scheduler benchmarks: ToDo graphs with per-ToDo durations.

Each DAG is {"name", "todos": [{"id", "depends_on": [...], "duration_ms"}],
"critical_path_ms", "sum_ms", "levels_ms"}: `critical_path_ms` is the lower bound on the
makespan with unlimited parallelism, `sum_ms` what sequential execution costs, `levels_ms`
what level-by-level execution costs (every ToDo of a dependency level waits for the slowest
ToDo of the level before).

    python -m benchmarks.workloads.make_dags --seed 7 > benchmarks/workloads/dags.json

The same seed gives the same file, byte for byte (a test checks the committed one).
"""

from __future__ import annotations

import argparse
import functools
import json
import random
from typing import Any

Todo = dict[str, Any]


def _number(todo_id: str) -> int:
    return int(todo_id[1:])


def critical_path_ms(todos: list[Todo]) -> int:
    by_id = {t["id"]: t for t in todos}

    @functools.cache
    def finish(todo_id: str) -> int:
        todo = by_id[todo_id]
        return int(todo["duration_ms"]) + max((finish(d) for d in todo["depends_on"]), default=0)

    return max(finish(t["id"]) for t in todos)


def levels_ms(todos: list[Todo]) -> int:
    by_id = {t["id"]: t for t in todos}

    @functools.cache
    def level(todo_id: str) -> int:
        return 1 + max((level(d) for d in by_id[todo_id]["depends_on"]), default=-1)

    slowest: dict[int, int] = {}
    for todo in todos:
        at = level(todo["id"])
        slowest[at] = max(slowest.get(at, 0), todo["duration_ms"])
    return sum(slowest.values())


def dag(name: str, edges: dict[str, list[str]], durations: dict[str, int]) -> dict[str, Any]:
    todos: list[Todo] = [
        {
            "id": todo_id,
            "depends_on": sorted(edges.get(todo_id, []), key=_number),
            "duration_ms": durations[todo_id],
        }
        for todo_id in sorted(durations, key=_number)
    ]
    return {
        "name": name,
        "todos": todos,
        "critical_path_ms": critical_path_ms(todos),
        "sum_ms": sum(durations.values()),
        "levels_ms": levels_ms(todos),
    }


def make(rng: random.Random) -> list[dict[str, Any]]:
    """The eight DAGs; the order of `rng` calls is the file's identity, keep it."""

    def d(lo: int = 20, hi: int = 200) -> int:
        return rng.randint(lo, hi)

    out = []
    # straggler: one slow ToDo beside a chain of fast ones (levels are worst here)
    n = 6
    durations = {"t0": 600, **{f"t{i}": d(40, 80) for i in range(1, n + 1)}}
    out.append(dag("straggler", {f"t{i}": [f"t{i - 1}"] for i in range(2, n + 1)}, durations))
    # chain: no parallelism at all
    durations = {f"t{i}": d() for i in range(8)}
    out.append(dag("chain", {f"t{i}": [f"t{i - 1}"] for i in range(1, 8)}, durations))
    # fan-out / fan-in
    w = 24
    durations = {"t0": d(), **{f"t{i}": d() for i in range(1, w + 1)}, f"t{w + 1}": d()}
    edges = {
        **{f"t{i}": ["t0"] for i in range(1, w + 1)},
        f"t{w + 1}": [f"t{i}" for i in range(1, w + 1)],
    }
    out.append(dag("fan_out_in", edges, durations))
    # parallel chains of uneven speed joined at the end
    durations, edges, k = {}, {}, 0
    ends = []
    for _ in range(4):
        prev = None
        for _ in range(rng.randint(2, 6)):
            todo_id = f"t{k}"
            k += 1
            durations[todo_id] = d(10, 300)
            if prev:
                edges[todo_id] = [prev]
            prev = todo_id
        ends.append(str(prev))
    join = f"t{k}"
    durations[join] = d()
    edges[join] = ends
    out.append(dag("uneven_chains", edges, durations))
    # layered random DAGs, heavy-tailed durations (LLM calls next to quick tool calls)
    for r in range(4):
        layers = [rng.randint(2, 6) for _ in range(rng.randint(3, 6))]
        durations, edges, k = {}, {}, 0
        previous: list[str] = []
        for size in layers:
            layer = []
            for _ in range(size):
                todo_id = f"t{k}"
                k += 1
                durations[todo_id] = rng.choice([d(5, 30), d(5, 30), d(50, 150), d(300, 700)])
                if previous:
                    edges[todo_id] = rng.sample(previous, rng.randint(1, min(2, len(previous))))
                layer.append(todo_id)
            previous = layer
        out.append(dag(f"layered_{r}", edges, durations))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(json.dumps(make(random.Random(args.seed)), indent=1))


if __name__ == "__main__":
    main()
