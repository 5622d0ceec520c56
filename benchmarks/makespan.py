"""Makespan of plan DAGs: our execute node against a plain `Send` level-by-level graph.

Each DAG of a workload file runs twice in the same process, with a sleep executor that
takes each ToDo's `duration_ms` (an accurate sleep, the same in both):

- ours: the real `execute` node (functional-API tasks, each ToDo dispatched as soon as
  its own dependencies are done), checkpointed (InMemorySaver, durability "async");
- baseline: every ready ToDo is `Send`-ed each superstep, so a superstep waits for its
  slowest branch (LangGraph's plain fan-out).

    python -m benchmarks.makespan [--dags FILE] [--only NAME ...] [--json] [--repeat N]

The default workload is `benchmarks/workloads/dags.json` (its generator is beside it).

It also reports the fixed cost per ToDo: a chain and a fan-out of 200 zero-time ToDos.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import statistics
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from graph.builder import make_services
from graph.config import Settings
from graph.executor_registry import ExecutorCall
from graph.services import SERVICES_KEY
from graph.state import PlannerState
from lam import MessageFactory, Plan
from lam.dag import critical_path
from nodes.execute import execute

DEFAULT_DAGS = Path(__file__).resolve().parent / "workloads" / "dags.json"


async def sleep_ms(ms: float) -> None:
    """Sleep `ms`, accurately: on these VMs asyncio's timers run about 2.5 % late, which
    would count as scheduling overhead. Shorter and shorter sleeps close in on the end."""
    end = time.perf_counter() + ms / 1000
    while (left := end - time.perf_counter()) > 0.0002:  # noqa: ASYNC110 - a deadline, not an event
        await asyncio.sleep(left * 0.8)


class SleepExecutor:
    name = "sleep"
    description = "sleeps for inputs.duration_ms (benchmark)"
    receiver: str | None = None

    async def __call__(self, call: ExecutorCall) -> Any:
        await sleep_ms(call.todo.inputs["duration_ms"])
        return call.todo.id


def as_plan(dag: dict[str, Any]) -> Plan:
    return Plan.model_validate(
        {
            "goal": dag["name"],
            "todos": [
                {
                    "id": t["id"],
                    "title": t["id"],
                    "executor": "sleep",
                    "inputs": {"duration_ms": t["duration_ms"]},
                    "depends_on": t["depends_on"],
                }
                for t in dag["todos"]
            ],
        }
    )


def ours_graph() -> Any:
    settings = Settings(todo_retries=0, max_todos=10_000)
    services = make_services(settings, extra_executors=[SleepExecutor()])
    builder = StateGraph(PlannerState)
    builder.add_node("execute", execute)
    builder.add_edge(START, "execute")
    builder.add_edge("execute", END)
    return builder.compile(checkpointer=InMemorySaver()).with_config(
        configurable={SERVICES_KEY: services}
    )


async def run_ours(app: Any, plan: Plan) -> float:
    cid = str(uuid.uuid4())
    request = MessageFactory("user", cid).request("benchmark")
    state = {"lam": [request.to_dict()], "request": "benchmark", "plan": plan.model_dump()}
    started = time.perf_counter()
    result = await app.ainvoke(state, {"configurable": {"thread_id": cid}})
    elapsed = time.perf_counter() - started
    assert all(t.status == "done" for t in result["plan"].todos), result["plan"]
    return elapsed * 1000


class BaselineState(TypedDict, total=False):
    done: Annotated[list[str], operator.add]


def baseline_graph(plan: Plan) -> Any:
    todos = plan.by_id()

    def ready(state: BaselineState) -> list[Send] | str:
        # Runs once per superstep, after every branch of the last one has finished.
        done = set(state.get("done", []))
        if len(done) == len(todos):
            return END
        return [
            Send("run", {"id": t.id})
            for t in todos.values()
            if t.id not in done and all(d in done for d in t.depends_on)
        ]

    async def run(payload: dict[str, str]) -> BaselineState:
        await sleep_ms(todos[payload["id"]].inputs["duration_ms"])
        return {"done": [payload["id"]]}

    def dispatch(state: BaselineState) -> BaselineState:
        return {}

    builder = StateGraph(BaselineState)
    builder.add_node("dispatch", dispatch)
    builder.add_node("run", run)  # type: ignore[arg-type]
    builder.add_edge(START, "dispatch")
    builder.add_conditional_edges("dispatch", ready, ["run", END])
    builder.add_edge("run", "dispatch")
    return builder.compile(checkpointer=InMemorySaver())


async def run_baseline(plan: Plan) -> float:
    app = baseline_graph(plan)
    started = time.perf_counter()
    await app.ainvoke(
        {}, {"configurable": {"thread_id": str(uuid.uuid4())}, "recursion_limit": 10_000}
    )
    return (time.perf_counter() - started) * 1000


def zero_plan(n: int, chain: bool) -> Plan:
    return Plan.model_validate(
        {
            "goal": "overhead",
            "todos": [
                {
                    "id": f"z{i}",
                    "title": f"z{i}",
                    "executor": "sleep",
                    "inputs": {"duration_ms": 0},
                    "depends_on": [f"z{i - 1}"] if chain and i else [],
                }
                for i in range(n)
            ],
        }
    )


async def main_async(dags: list[dict[str, Any]], repeat: int) -> dict[str, Any]:
    app = ours_graph()
    await run_ours(app, as_plan(dags[0]))  # warm-up: imports, first compile paths
    rows = []
    for dag in dags:
        plan = as_plan(dag)
        durations = {t["id"]: float(t["duration_ms"]) for t in dag["todos"]}
        cp, _ = critical_path(plan, durations)
        ours = statistics.median([await run_ours(app, plan) for _ in range(repeat)])
        base = statistics.median([await run_baseline(plan) for _ in range(repeat)])
        rows.append(
            {
                "name": dag["name"],
                "todos": len(plan.todos),
                "makespan_ms": round(ours, 1),
                "critical_path_ms": round(cp, 1),
                "baseline_makespan_ms": round(base, 1),
            }
        )
    n = 200
    overhead = {
        "chain_ms_per_todo": round(await run_ours(app, zero_plan(n, True)) / n, 3),
        "fan_out_ms_per_todo": round(await run_ours(app, zero_plan(n, False)) / n, 3),
    }
    return {"dags": rows, "fixed_cost": overhead}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dags", default=str(DEFAULT_DAGS), help="workload file (JSON)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--repeat", type=int, default=3, help="runs per DAG (median)")
    parser.add_argument(
        "--only", action="append", metavar="NAME", help="run only this DAG (repeatable)"
    )
    args = parser.parse_args()
    dags = json.loads(Path(args.dags).read_text())
    if args.only:
        unknown = sorted(set(args.only) - {d["name"] for d in dags})
        if unknown:
            parser.error(f"no DAG named {', '.join(unknown)} in {args.dags}")
        dags = [d for d in dags if d["name"] in args.only]
    report = asyncio.run(main_async(dags, args.repeat))
    if args.json:
        print(json.dumps(report))
        return
    print(
        f"{'dag':<16}{'todos':>6}{'makespan':>10}{'critical':>10}{'ratio':>7}"
        f"{'baseline':>10}{'ratio':>7}"
    )
    ratios, base_ratios = [], []
    for row in report["dags"]:
        ratio = row["makespan_ms"] / row["critical_path_ms"]
        base = row["baseline_makespan_ms"] / row["critical_path_ms"]
        ratios.append(ratio)
        base_ratios.append(base)
        print(
            f"{row['name']:<16}{row['todos']:>6}{row['makespan_ms']:>9.1f} "
            f"{row['critical_path_ms']:>9.1f} {ratio:>6.3f}{row['baseline_makespan_ms']:>9.1f} "
            f"{base:>6.3f}"
        )
    print(
        f"{'overall':<16}{'':>6}{'':>10}{'':>10}"
        f" worst {max(ratios):.3f} mean {statistics.mean(ratios):.3f};"
        f" baseline worst {max(base_ratios):.3f} mean {statistics.mean(base_ratios):.3f}"
    )
    fixed = report["fixed_cost"]
    print(
        f"fixed cost per ToDo: {fixed['chain_ms_per_todo']} ms in a chain, "
        f"{fixed['fan_out_ms_per_todo']} ms in a fan-out (200 zero-time ToDos)"
    )


if __name__ == "__main__":
    main()
