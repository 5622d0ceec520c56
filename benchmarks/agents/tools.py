"""The benchmark's tools, timed: one clock every agent's tools run on, as cpa-planner's
executor, as a catalogue file for it, and as LangChain tools for the others.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from benchmarks.agents.cases import LATENCY_S, TOOLS


@dataclass
class Outcome:
    answer_s: float
    first_tool_s: float | None
    answered: bool
    tools_done_s: float | None = None


@dataclass
class ToolClock:
    """Runs the tools (a fixed sleep each) and notes when each call started."""

    scale: float
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)

    async def run(self, tool: str, arguments: dict[str, Any]) -> str:
        self.starts.append(time.monotonic())
        await asyncio.sleep(LATENCY_S[tool] * self.scale)
        self.ends.append(time.monotonic())
        shown = ", ".join(f"{k}={str(v)[:40]}" for k, v in arguments.items())
        return f"{tool}({shown}): the result"

    def outcome(self, start: float, *, answered: bool) -> Outcome:
        """An agent's run that began at `start` (`time.monotonic()`), ended now."""
        took = time.monotonic() - start
        first = self.starts[0] - start if self.starts else None
        done = max(self.ends) - start if self.ends else None
        return Outcome(took, first, answered, done)


class BenchExecutor:
    """cpa-planner's executor of the benchmark's tools (`executor: bench` in their file)."""

    name = "bench"
    description = "runs the benchmark's tools"
    receiver: str | None = None
    effect = "read"
    runs_tools = True
    free_form = False

    def __init__(self, clock: ToolClock) -> None:
        self.clock = clock

    async def __call__(self, call: Any) -> Any:
        assert call.tool is not None
        return await self.clock.run(call.tool.name, dict(call.tool.arguments))


def tools_file(directory: Path) -> Path:
    path = directory / "agents_tools.yaml"
    tools = [
        {
            "name": name,
            "description": spec["description"],
            "input_schema": {
                "type": "object",
                "properties": {arg: {"type": kind} for arg, kind in spec["arguments"].items()},
                "required": list(spec["arguments"]),
            },
            "returns": "text",
            "effect": "read",
        }
        for name, spec in TOOLS.items()
    ]
    path.write_text(yaml.safe_dump({"executor": "bench", "tools": tools}), encoding="utf-8")
    return path


def langchain_tools(clock: ToolClock) -> list[Any]:
    from langchain_core.tools import StructuredTool

    def make(name: str, spec: dict[str, Any]) -> Any:
        async def run(**kwargs: Any) -> str:
            return await clock.run(name, kwargs)

        schema = {
            "type": "object",
            "properties": {arg: {"type": kind} for arg, kind in spec["arguments"].items()},
            "required": list(spec["arguments"]),
        }
        return StructuredTool(
            name=name, description=spec["description"], args_schema=schema, coroutine=run
        )

    return [make(name, spec) for name, spec in TOOLS.items()]
