"""What telemetry costs per conversation turn, in one process (issue 14).

The HTTP benchmark's turn (`benchmarks/http.py`: a rule-matched `note`, one template ToDo,
no LLM) run through `graph.conversations.Conversations` (in-memory checkpoints, so the
graph's own work is all there is), in four set-ups taking turns round after round in the
same process: `off` (no callback), `metrics`, `metrics+traces` (every span exported over
OTLP/HTTP by the SDK's batch processor to a sink in this process), `metrics+traces 10%`
(one turn in ten traced, `OTEL_TRACES_SAMPLER=traceidratio`). Each round takes them in
another order; the heap is settled as the server settles it. CPU time is the process's,
export threads included. Per set-up: the median over rounds, the best round (on a machine
others share, the one least disturbed by them), and the overhead: the median over rounds
of the ratio to `off` in the same round (noise that drifts over a run cancels out of it).

    python -m benchmarks.telemetry [--turns N] [--rounds R] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from benchmarks.http import REGISTRY, TEXT, otlp_sink
from graph.builder import build_graph, make_services
from graph.config import Settings
from graph.conversations import Conversations
from graph.telemetry import Telemetry, TelemetrySettings
from lam import MessageFactory
from server import settle_heap


async def turns(conversations: Conversations, count: int) -> tuple[float, float]:
    """(wall ms, CPU ms) per turn over `count` turns."""
    factory = MessageFactory("user")
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        cid = str(uuid.uuid4())
        request = factory.with_conversation(cid).request(TEXT)
        async for _ in conversations.stream(cid, Conversations.opening(request), owner="bench"):
            pass
    return (
        (time.perf_counter() - wall) * 1000 / count,
        (time.process_time() - cpu) * 1000 / count,
    )


async def measure(setups: dict[str, Telemetry], count: int, rounds: int) -> dict[str, Any]:
    svc = make_services(Settings(intents_path=str(REGISTRY)))
    conversations = {}
    for name, telemetry in setups.items():
        saver = InMemorySaver()
        conversations[name] = Conversations(build_graph(svc, checkpointer=saver), saver, telemetry)
    for name in setups:  # warm-up: imports, first compiled paths
        await turns(conversations[name], 20)
    walls: dict[str, list[float]] = {name: [] for name in setups}
    cpus: dict[str, list[float]] = {name: [] for name in setups}
    settle_heap()  # as the server does after its start-up
    names = list(setups)
    for round_no in range(rounds):
        # Each round in another order: whichever set-up comes after another pays for the
        # garbage it left (the collector), so a fixed order would favour the first.
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            wall, cpu = await turns(conversations[name], count)
            walls[name].append(wall)
            cpus[name].append(cpu)
    for telemetry in setups.values():
        telemetry.shutdown()  # the last batch of spans is sent (and counted) too
    results: dict[str, Any] = {}
    for name in setups:
        results[name] = {
            "wall_ms_per_turn": round(statistics.median(walls[name]), 3),
            "cpu_ms_per_turn": round(statistics.median(cpus[name]), 3),
            "cpu_ms_per_turn_best": round(min(cpus[name]), 3),
        }
    base = results["off"]
    for name, figures in results.items():
        figures["cpu_ms_per_turn_best_over_off_pct"] = round(
            100 * (figures["cpu_ms_per_turn_best"] / base["cpu_ms_per_turn_best"] - 1), 1
        )
        paired = [mine / off for mine, off in zip(cpus[name], cpus["off"], strict=True)]
        figures["cpu_ms_per_turn_over_off_pct"] = round(100 * (statistics.median(paired) - 1), 1)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--turns", type=int, default=50, help="turns per set-up and round")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with otlp_sink() as (sink_url, received):
        # The OTLP exporter reads its endpoint from the environment, as in production.
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink_url
        setups = {
            "off": Telemetry(TelemetrySettings(metrics=False)),
            "metrics": Telemetry(TelemetrySettings(), tenants=["bench"]),
            "metrics+traces": Telemetry(
                TelemetrySettings(otlp_endpoint=sink_url), tenants=["bench"]
            ),
            "metrics+traces 10%": Telemetry(
                TelemetrySettings(
                    otlp_endpoint=sink_url, traces_sampler="traceidratio", traces_sampler_arg=0.1
                ),
                tenants=["bench"],
            ),
        }
        results = asyncio.run(measure(setups, args.turns, args.rounds))
        sent = dict(received)
    if args.json:
        print(json.dumps({"setups": results, "otlp_sink": sent}))
        return 0
    for name, figures in results.items():
        print(
            f"{name:>18}: {figures['wall_ms_per_turn']:6.3f} ms per turn; CPU median "
            f"{figures['cpu_ms_per_turn']:6.3f} ms "
            f"({figures['cpu_ms_per_turn_over_off_pct']:+.1f} %)"
            f", best round {figures['cpu_ms_per_turn_best']:6.3f} ms "
            f"({figures['cpu_ms_per_turn_best_over_off_pct']:+.1f} %)"
        )
    print(f"{'OTLP sink':>18}: {sent['requests']} exports, {sent['bytes']} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
