"""What telemetry costs per conversation turn, in one process (issue 14).

The HTTP benchmark's turn (`benchmarks/http.py`: a rule-matched `note`, one template ToDo,
no LLM) run through `graph.conversations.Conversations` (in-memory checkpoints, so the
graph's own work is all there is), in five set-ups taking turns round after round in the
same process: `off` (no callback), `idle callback` (one that does nothing: what LangChain
and LangGraph do for any callback, before ours does anything), `metrics`,
`metrics+traces` (every span exported over OTLP/HTTP by the SDK's batch processor to a sink
in this process), `metrics+traces 10%` (one turn in ten traced,
`OTEL_TRACES_SAMPLER=traceidratio`). Each round takes them in
another order; the heap is settled as the server settles it. CPU time is the process's,
export threads included. Per set-up: the median over rounds, the best round (on a machine
others share, the one least disturbed by them), and the overhead: the median over rounds
of the ratio to `off` in the same round (noise that drifts over a run cancels out of it).
Then, without that noise, what each set-up's callback costs a turn (`callback_cost`: one
turn's callbacks sent again through LangChain's dispatch, `--replays` times).

    python -m benchmarks.telemetry [--turns N] [--rounds R] [--replays N] [--json]
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

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.callbacks.manager import ahandle_event
from langgraph.checkpoint.memory import InMemorySaver

from benchmarks.http import REGISTRY, TEXT, otlp_sink
from graph.builder import build_graph, make_services
from graph.config import Settings
from graph.conversations import Conversations
from graph.telemetry import Telemetry, TelemetrySettings
from lam import MessageFactory
from server import settle_heap
from tests.support.callbacks import ChainRecorder


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


async def callback_cost(setups: dict[str, Telemetry], replays: int) -> dict[str, float]:
    """CPU µs per turn of each set-up's callback, dispatch included, without the noise.

    One turn's callbacks are recorded, then sent again `replays` times through LangChain's
    own dispatch (`ahandle_event`) to each set-up's handler, and to none (the baseline: the
    dispatch a run pays anyway). The difference is what the handler adds, spans made and
    exported included (the exporter's thread counts: process CPU time).
    """
    recorder = ChainRecorder()
    svc = make_services(Settings(intents_path=str(REGISTRY)))
    saver = InMemorySaver()
    telemetry = setups["off"]
    conversations = Conversations(build_graph(svc, checkpointer=saver), saver, telemetry)
    telemetry.handler = recorder  # type: ignore[assignment]  # records instead
    for _ in range(2):  # the second turn: what every turn sends once warm
        recorder.events.clear()
        await turns(conversations, 1)
    telemetry.handler = None

    async def replay(handlers: list[Any], setup: Telemetry | None = None) -> float:
        cpu = time.process_time()
        for n in range(replays):
            for name, args, kwargs in recorder.events:
                await ahandle_event(handlers, name, "ignore_chain", *args, **kwargs)
            if setup is not None and setup.provider is not None and n % 50 == 49:
                # Exported as they come (the exporter's queue would drop spans made this
                # fast, and a dropped span costs less than a sent one).
                setup.provider.force_flush()
        return (time.process_time() - cpu) / replays * 1e6

    await replay([])  # warm-up
    base = min([await replay([]) for _ in range(3)])
    costs = {}
    for name, setup in setups.items():
        if setup.handler is None:
            continue
        await replay([setup.handler], setup)
        spent = min([await replay([setup.handler], setup) for _ in range(3)])
        setup.shutdown()  # the spans still queued are exported (and counted) too
        costs[name] = round(spent - base, 1)
    return costs


class _Idle(BaseCallbackHandler):
    """A callback that does nothing: what LangChain's machinery costs once one is there."""

    run_inline = True


def make_setups(sink_url: str) -> dict[str, Telemetry]:
    idle = Telemetry(TelemetrySettings(metrics=False))
    idle.handler = _Idle()  # type: ignore[assignment]
    return {
        "off": Telemetry(TelemetrySettings(metrics=False)),
        "idle callback": idle,
        "metrics": Telemetry(TelemetrySettings(), tenants=["bench"]),
        "metrics+traces": Telemetry(TelemetrySettings(otlp_endpoint=sink_url), tenants=["bench"]),
        "metrics+traces 10%": Telemetry(
            TelemetrySettings(
                otlp_endpoint=sink_url, traces_sampler="traceidratio", traces_sampler_arg=0.1
            ),
            tenants=["bench"],
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--turns", type=int, default=50, help="turns per set-up and round")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--replays", type=int, default=2000, help="of one turn's callbacks")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with otlp_sink() as (sink_url, received):
        # The OTLP exporter reads its endpoint from the environment, as in production.
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink_url
        results = asyncio.run(measure(make_setups(sink_url), args.turns, args.rounds))
        # Replayed, one turn is traced always or never: the sampled set-up is left out.
        replayed = make_setups(sink_url)
        del replayed["metrics+traces 10%"]
        callbacks = asyncio.run(callback_cost(replayed, args.replays))
        sent = dict(received)
    off_ms = results["off"]["cpu_ms_per_turn"]
    for name, micros in callbacks.items():
        results[name]["callback_us_per_turn"] = micros
        results[name]["callback_pct_of_off_turn"] = round(micros / 10 / off_ms, 1)
    if args.json:
        print(json.dumps({"setups": results, "otlp_sink": sent}))
        return 0
    for name, figures in results.items():
        callback = (
            f"; its callback {figures['callback_us_per_turn']:.0f} µs a turn "
            f"({figures['callback_pct_of_off_turn']:.1f} % of off's)"
            if "callback_us_per_turn" in figures
            else ""
        )
        print(
            f"{name:>18}: {figures['wall_ms_per_turn']:6.3f} ms per turn; CPU median "
            f"{figures['cpu_ms_per_turn']:6.3f} ms "
            f"({figures['cpu_ms_per_turn_over_off_pct']:+.1f} %)"
            f", best round {figures['cpu_ms_per_turn_best']:6.3f} ms "
            f"({figures['cpu_ms_per_turn_best_over_off_pct']:+.1f} %){callback}"
        )
    print(f"{'OTLP sink':>18}: {sent['requests']} exports, {sent['bytes']} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
