"""A whole turn of a template plan of 10 and 50 ToDos: time per turn, validations per turn.

    python -m benchmarks.plan_turns [--todos 10 50] [--turns 100] [--json]
    python -m benchmarks.plan_turns --baseline REV [--rounds 5]

A turn is a request the rules decide (`run the steps`) whose intent's plan template is a
chain of N `template` ToDos (no LLM, no desktop, nothing to approve), run through the whole
graph to its answer on a new thread: in process, InMemorySaver, chat models that fail if
called. Reported per plan size: the mean time per turn and how many times a turn called
`Plan.model_validate` (the registry's template counts: that is the plan entering the state).

`--baseline REV` measures commit REV of this repository the same way (its tree from `git
archive`, the same measuring code), alternating with the working tree in child processes,
`--rounds` times each; it prints the medians and the ratio of CPU time per turn (working
tree / REV).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

import graph
from graph.builder import build_graph, make_services
from graph.config import Settings
from lam import Plan
from tests.support.scripted import UncallableChatModel

ROOT = Path(__file__).resolve().parents[1]
REQUEST = "Please run the steps for the quarterly report"
SIZES = (10, 50)


def registry_text(todos: int) -> str:
    """An intent registry with one intent whose plan template is a chain of `todos` steps."""
    steps = [
        {
            "id": f"t{n}",
            "title": f"Step {n}",
            "executor": "template",
            "inputs": {"text": f"step {n} of: {{request}}"},
            **({"depends_on": [f"t{n - 1}"]} if n > 1 else {}),
        }
        for n in range(1, todos + 1)
    ]
    registry = {
        "version": 1,
        "intents": [
            {
                "name": "steps",
                "description": "Run the steps.",
                "kind": "plan",
                "plan_template": {"goal": "Steps: {request}", "todos": steps},
                "rules": [
                    {
                        "name": "steps.en",
                        "language": "en",
                        "weight": 0.95,
                        "patterns": ["run the steps"],
                    }
                ],
            }
        ],
    }
    return yaml.safe_dump(registry, sort_keys=False)


@contextmanager
def counting_validations() -> Iterator[list[int]]:
    """Counts `Plan.model_validate` calls while the block runs (count[0])."""
    count = [0]
    validate = Plan.model_validate  # BaseModel's, bound to Plan

    @functools.wraps(validate)
    def counted(*args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        return validate(*args, **kwargs)

    Plan.model_validate = counted  # type: ignore[method-assign]
    try:
        yield count
    finally:
        del Plan.model_validate  # BaseModel's again


def make_graph(todos: int, directory: Path) -> Callable[[], Any]:
    """A function that runs one turn on a new thread and returns its final state."""
    path = directory / f"steps{todos}.yaml"
    path.write_text(registry_text(todos))
    models = {role: UncallableChatModel() for role in ("router", "planner", "executor")}
    settings = Settings(intents_path=str(path), max_todos=max(todos, 1), todo_retries=0)
    compiled = build_graph(
        make_services(settings, chat_models=models), checkpointer=InMemorySaver()
    )

    async def turn() -> Any:
        config: RunnableConfig = {"configurable": {"thread_id": str(uuid.uuid4())}}
        return await compiled.ainvoke({"request": REQUEST}, config)

    return turn


async def measure(todos: int, turns: int, directory: Path) -> dict[str, Any]:
    turn = make_graph(todos, directory)
    for _ in range(max(3, turns // 10)):  # warm-up: imports, caches, the classifier
        await turn()
    with counting_validations() as count:
        state = await turn()
    done = [t for t in _todos(state) if t["status"] == "done"]
    if state.get("status") != "done" or len(done) != todos:
        raise RuntimeError(f"the turn did not run its {todos} ToDos: {state.get('result')}")
    dumped = {"goal": "steps", "todos": _todos(state)}
    validate_s = min(timeit.repeat(lambda: Plan.model_validate(dumped), number=100, repeat=5))
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(turns):
        await turn()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "todos": todos,
        "turns": turns,
        "ms_per_turn": round(elapsed / turns * 1000, 3),
        # CPU time of the whole process (the savers' threads too): what a turn costs, and
        # less at the mercy of other processes on a shared machine than the wall time.
        "cpu_ms_per_turn": round(cpu / turns * 1000, 3),
        "validations_per_turn": count[0],
        # What one validation of this plan (as it is after the turn) costs, for scale.
        "validate_us": round(validate_s / 100 * 1e6, 1),
    }


def _todos(state: dict[str, Any]) -> list[dict[str, Any]]:
    plan: Any = state.get("plan") or {"todos": []}
    # The state's plan is a `Plan` now, a dict in older commits (--baseline).
    dumped = plan if isinstance(plan, dict) else plan.model_dump(mode="json")
    return list(dumped["todos"])


def run(sizes: tuple[int, ...], turns: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as directory:
        return [asyncio.run(measure(n, turns, Path(directory))) for n in sizes]


def _child(tree: Path, sizes: tuple[int, ...], turns: int) -> list[dict[str, Any]]:
    """`run` in a child process whose `graph`, `nodes`, `lam` ... come from `tree`."""
    command = [sys.executable, "-m", "benchmarks.plan_turns", "--json", "--turns", str(turns)]
    done = subprocess.run(
        [*command, "--todos", *map(str, sizes)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the benchmark failed in {tree}:\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout)
    if not Path(report["source"]).is_relative_to(tree):
        raise RuntimeError(f"the child ran {report['source']}, not the code in {tree}")
    rows: list[dict[str, Any]] = report["sizes"]
    return rows


def compare(revision: str, sizes: tuple[int, ...], turns: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        base = Path(directory)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", revision], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        # The same measuring code in both trees (REV may predate this file).
        shutil.copy(Path(__file__), base / "benchmarks" / "plan_turns.py")
        runs: dict[str, list[list[dict[str, Any]]]] = {"baseline": [], "current": []}
        for _ in range(rounds):  # alternating, so that a noisy minute hits both alike
            runs["baseline"].append(_child(base, sizes, turns))
            runs["current"].append(_child(ROOT, sizes, turns))
    rows = []
    for i, todos in enumerate(sizes):

        def median(tree: str, key: str, i: int = i) -> float:
            return float(statistics.median(r[i][key] for r in runs[tree]))

        rows.append(
            {
                "todos": todos,
                "baseline_ms_per_turn": median("baseline", "ms_per_turn"),
                "ms_per_turn": median("current", "ms_per_turn"),
                "baseline_cpu_ms_per_turn": median("baseline", "cpu_ms_per_turn"),
                "cpu_ms_per_turn": median("current", "cpu_ms_per_turn"),
                "ratio": round(
                    median("current", "cpu_ms_per_turn") / median("baseline", "cpu_ms_per_turn"), 3
                ),
                "baseline_validations_per_turn": runs["baseline"][0][i]["validations_per_turn"],
                "validate_us": median("current", "validate_us"),
                "validations_per_turn": runs["current"][0][i]["validations_per_turn"],
            }
        )
    return {"baseline": revision, "turns": turns, "rounds": rounds, "sizes": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--todos", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--baseline", metavar="REV", help="compare with this commit")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sizes = tuple(args.todos)
    if args.baseline:
        report = compare(args.baseline, sizes, args.turns, args.rounds)
    else:
        source = str(Path(graph.__path__[0]).parent)
        report = {"turns": args.turns, "source": source, "sizes": run(sizes, args.turns)}
    if args.json:
        print(json.dumps(report))
        return
    for row in report["sizes"]:
        line = f"{row['todos']:>3} ToDos: {row['cpu_ms_per_turn']:.2f} ms CPU per turn "
        line += f"({row['ms_per_turn']:.2f} ms wall), "
        line += f"{row['validations_per_turn']} Plan.model_validate per turn "
        line += f"({row['validate_us']:.0f} µs each)"
        if "ratio" in row:
            line += (
                f"; {args.baseline}: {row['baseline_cpu_ms_per_turn']:.2f} ms CPU "
                f"({row['baseline_ms_per_turn']:.2f} ms wall), "
                f"{row['baseline_validations_per_turn']} per turn; CPU ratio {row['ratio']:.3f}"
            )
        print(line)


if __name__ == "__main__":
    main()
