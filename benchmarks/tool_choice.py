"""Which tools the planner names for requests whose right tools are known (docs/tools.md).

    python -m benchmarks.tool_choice [--base-url URL] [--model NAME] [--timeout S]
        [--catalogue FILE] [--requests FILE] [--limit N] [--json]

The catalogue is the 200-tool `benchmarks/workloads/tools.json` beside the built-in
executors (the free-form steps: `llm`, `desktop`, `template`, ...), the requests the 30
labelled ones of `benchmarks/workloads/tool_requests.json` (25 English, 5 German; each with
the tools it needs). Each request goes through what the graph does before its model call
(`benchmarks.taskbench.plan_ours`: the front door's reading without an LLM, narrowing, the
prompt and the schema of the `plan` node) to one planning call of a real model, by default
SmolLM2 on a llama-server started here (`make llm-server`'s), sampled as TaskBench samples.

Measured per request, summed over all:

- right tools named: of the tools each request needs, how many the plan names;
- free-form steps: steps that name an executor instead of a tool (the catalogue had a tool
  for every request, so each is a step the desktop agent cannot run as a typed action);
- requests with no plan (the model's answer did not fit, or was cut off at every budget).

What the planner is shown decides these: the executors listed before the tools, a small
model wrote `llm`/`desktop` for most steps (docs/tools.md has the figures of each stage).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.taskbench import front_door, model_server, plan_ours, sampled, settings_for
from graph.builder import make_services
from graph.config import Settings
from graph.llm import ChatModels, LLMError
from graph.tools.catalogue import Catalogue, tool_entries
from graph.tools.executors import executor_entries
from graph.tools.files import load_tool_file

WORKLOADS = Path(__file__).resolve().parent / "workloads"


def catalogue_of(path: Path) -> Catalogue:
    """The built-in executors and the tools of a catalogue file, run by `desktop`."""
    executors = executor_entries(make_services(Settings()).executors)
    loaded = load_tool_file(path)
    return Catalogue.merge(executors, tool_entries(loaded.tools, loaded.source, "desktop"))


async def choose(
    models: ChatModels, settings: Settings, catalogue: Catalogue, request: dict[str, Any]
) -> dict[str, Any]:
    """One request's plan as a results row: the names its steps run, and the hits."""
    started = time.perf_counter()
    named: list[str] = []
    error: str | None = None
    try:
        plan, _ = await plan_ours(
            models, settings, request["text"], catalogue, front_door(request["text"])
        )
    except LLMError as exc:
        error = exc.code
    else:
        named = [t.tool.name if t.tool else t.executor for t in plan.todos]
    return {
        "text": request["text"],
        "language": request.get("language", "en"),
        "wanted": list(request["tools"]),
        "named": named,
        "hits": sum(name in named for name in request["tools"]),
        "free_form": sum(catalogue.tool(name) is None for name in named),
        "error": error,
        "seconds": round(time.perf_counter() - started, 1),
    }


def summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    wanted = sum(len(r["wanted"]) for r in rows)
    steps = sum(len(r["named"]) for r in rows)
    return {
        "requests": len(rows),
        "right_tools": sum(r["hits"] for r in rows),
        "wanted": wanted,
        "recall": sum(r["hits"] for r in rows) / wanted if wanted else 0.0,
        "steps": steps,
        "free_form": sum(r["free_form"] for r in rows),
        "no_plan": sum(r["error"] is not None for r in rows),
    }


async def measure(
    models: ChatModels, settings: Settings, catalogue: Catalogue, requests: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    rows = []
    for request in requests:
        rows.append(await choose(models, settings, catalogue, request))
        print(_progress(rows[-1]), file=sys.stderr, flush=True)
    return {
        "rows": rows,
        "all": summary(rows),
        "english": summary([r for r in rows if r["language"] == "en"]),
    }


def _progress(row: dict[str, Any]) -> str:
    named = ", ".join(row["named"]) or row["error"]
    return f"{row['hits']}/{len(row['wanted'])} {row['seconds']:5.1f}s  {row['text']}: {named}"


def main(argv: list[str] | None = None, models: ChatModels | None = None) -> int:
    """The command; `models` instead of a server, for tests."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--catalogue", type=Path, default=WORKLOADS / "tools.json")
    parser.add_argument("--requests", type=Path, default=WORKLOADS / "tool_requests.json")
    parser.add_argument("--limit", type=int, help="the first N requests only")
    parser.add_argument("--base-url", help="an OpenAI-compatible server (default: llama-server)")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--timeout", type=float, default=180, help="seconds per model call")
    parser.add_argument("--json", action="store_true", help="print the rows and totals as JSON")
    args = parser.parse_args(argv)
    catalogue = catalogue_of(args.catalogue)
    requests = json.loads(args.requests.read_text())[: args.limit]
    if models is not None:
        result = asyncio.run(measure(models, models.settings, catalogue, requests))
    else:
        with model_server(args.base_url) as url:
            settings, _ = settings_for(url, args.model, args.timeout)
            result = asyncio.run(measure(sampled(settings), settings, catalogue, requests))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print("| requests | right tools named | free-form steps | no plan |")
    print("|---|---|---|---|")
    for label in ("all", "english"):
        s = result[label]
        print(
            f"| {label} ({s['requests']}) | {s['right_tools']}/{s['wanted']} ({s['recall']:.2f}) "
            f"| {s['free_form']}/{s['steps']} | {s['no_plan']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
