"""The runs: the scripted server in its own process, each agent on each request measured
(its calls and tokens as the server counted them), the agents' order rotated per request.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.agents.cases import CASES, Case, scripts
from benchmarks.agents.runners import AGENTS, run_cpa, run_plan_execute, run_react
from benchmarks.agents.tools import ToolClock


@contextmanager
def scripted_server(ttft: float, rate: float) -> Iterator[str]:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.scripted_llm",
            "--port",
            str(port),
            "--ttft",
            str(ttft),
            "--rate",
            str(rate),
        ],
        cwd=Path(__file__).resolve().parents[2],
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the scripted LLM server did not start")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class Measure:
    agent: str
    case: str
    run: int
    answer_s: float
    first_tool_s: float | None
    calls: int
    prompt_tokens: int
    completion_tokens: int
    answered: bool
    tools_done_s: float | None = None
    planner_s: float | None = None
    first_after_planner_start_s: float | None = None


async def measure_one(
    agent: str, case: Case, run: int, base: str, scale: float, files: Path
) -> Measure:
    key = f"r{run}-{case.name}-{agent}"
    async with httpx.AsyncClient(base_url=base) as client:
        await client.post("/scripts", json=scripts(case, key))
        await client.delete("/calls")
        clock = ToolClock(scale)
        if agent in ("streamed", "whole-plan"):
            outcome = await run_cpa(case, key, f"{base}/v1", agent == "streamed", clock, files)
        elif agent == "react":
            outcome = await run_react(case, key, f"{base}/v1", clock)
        else:
            outcome = await run_plan_execute(case, key, f"{base}/v1", clock)
        calls = (await client.get("/calls")).json()["calls"]
    mine = [c for c in calls if str(c["model"]).startswith(key)]
    result = Measure(
        agent,
        case.name,
        run,
        outcome.answer_s,
        outcome.first_tool_s,
        len(mine),
        sum(c["prompt_tokens"] for c in mine),
        sum(c["completion_tokens"] for c in mine),
        outcome.answered,
        outcome.tools_done_s,
    )
    planner = [c for c in mine if c["model"].endswith(":cpa-planner")]
    if planner and clock.starts:
        call = planner[0]
        result.planner_s = call["end"] - call["arrival"]
        result.first_after_planner_start_s = clock.starts[0] - call["arrival"]
    return result


async def run_all(
    runs: int, ttft: float, rate: float, scale: float, cases: tuple[Case, ...] = CASES
) -> list[Measure]:
    measures: list[Measure] = []
    with tempfile.TemporaryDirectory() as tmp, scripted_server(ttft * scale, rate / scale) as base:
        files = Path(tmp)
        for agent in AGENTS:  # imports, first connections, compiled schemas: not measured
            await measure_one(agent, CASES[0], -1, base, scale, files)
        for run in range(runs):
            for n, case in enumerate(cases):
                # Each request's agents in a rotated order: none always goes first.
                order = AGENTS[(run + n) % 4 :] + AGENTS[: (run + n) % 4]
                for agent in order:
                    measures.append(await measure_one(agent, case, run, base, scale, files))
    return measures
