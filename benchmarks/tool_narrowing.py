"""What a large action catalogue costs a planning call, and how well narrowing keeps the
right tools (docs/tools.md).

    python -m benchmarks.tool_narrowing [--catalogue FILE --requests FILE] [--json]

The catalogue is a catalogue file (ours, or TaskBench's `tool_desc.json`), by default the
200-tool `benchmarks/workloads/tools.json`; the requests a JSON list of `{"text",
"language", "tools": [names]}`, by default `benchmarks/workloads/tool_requests.json` (25
English, 5 German).

Measured, in one process:

- recall: of the tools each request needs, the share among the k tools a planning call
  shows (`graph.tools.narrowing.narrow`), for several k; and how many requests have all of
  theirs shown;
- cost: the planner's system prompt and the JSON Schema its answer is held to, in
  characters, for the executors alone, with the desktop agent's 8 actions, with the whole
  catalogue, and narrowed to `planner_max_tools`;
- time: building the catalogue's TF-IDF index (once per distinct catalogue) and ranking a
  request against it, each the median of several runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from examples.desktop_agent import ACTIONS
from graph.builder import make_services
from graph.config import Settings
from graph.plan_schema import plan_json_schema
from graph.plan_steps import max_steps
from graph.tools.catalogue import Catalogue, tool_entries
from graph.tools.executors import executor_entries
from graph.tools.files import load_tool_file
from graph.tools.narrowing import ToolIndex, narrow
from nodes.plan import planning_prompt

WORKLOADS = Path(__file__).resolve().parent / "workloads"
KS = (5, 8, 12, 20, 40)
RUNS = 7


def recall(catalogue: Catalogue, requests: list[dict[str, Any]], k: int) -> dict[str, Any]:
    found = wanted = complete = 0
    for request in requests:
        shown = {e.name for e in narrow(catalogue, request["text"], k).tools}
        hits = sum(t in shown for t in request["tools"])
        found += hits
        wanted += len(request["tools"])
        complete += hits == len(request["tools"])
    return {"k": k, "recall": found / wanted, "complete": complete, "requests": len(requests)}


def cost(catalogue: Catalogue, request: str, steps: int) -> dict[str, int]:
    prompt = planning_prompt(request, catalogue, steps)[0].text
    schema = json.dumps(plan_json_schema(catalogue, steps))
    return {"tools": len(catalogue.tools), "prompt_chars": len(prompt), "schema_chars": len(schema)}


def median_ms(work: Any) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(catalogue_path: Path, requests_path: Path) -> dict[str, Any]:
    settings = Settings()
    svc = make_services(settings)
    executors = executor_entries(svc.executors)
    loaded = load_tool_file(catalogue_path)
    catalogue = Catalogue.merge(executors, tool_entries(loaded.tools, loaded.source, "desktop"))
    requests = json.loads(requests_path.read_text())
    english = [r for r in requests if r.get("language", "en") == "en"]
    steps = max_steps(settings.max_todos)
    k = settings.planner_max_tools
    first = requests[0]["text"]
    desktop = Catalogue.merge(executors, tool_entries(ACTIONS, "offer:cpa-desktop", "desktop"))
    return {
        "catalogue": str(catalogue_path),
        "tools": len(catalogue.tools),
        "recall_all": [recall(catalogue, requests, k) for k in KS],
        "recall_english": [recall(catalogue, english, k) for k in KS],
        "cost": {
            "executors only": cost(Catalogue.merge(executors, []), first, steps),
            "desktop agent's actions": cost(desktop, first, steps),
            f"narrowed to {k}": cost(narrow(catalogue, first, k), first, steps),
            "whole catalogue": cost(catalogue, first, steps),
        },
        "index_build_ms": median_ms(lambda: ToolIndex(catalogue.tools)),
        "rank_ms": _rank_ms(catalogue, first),
    }


def _rank_ms(catalogue: Catalogue, request: str) -> float:
    index = ToolIndex(catalogue.tools)
    return median_ms(lambda: index.rank(request))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogue", type=Path, default=WORKLOADS / "tools.json")
    parser.add_argument("--requests", type=Path, default=WORKLOADS / "tool_requests.json")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    result = measure(args.catalogue, args.requests)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['tools']} tools ({result['catalogue']})")
    for label in ("recall_all", "recall_english"):
        rows = result[label]
        cells = "  ".join(
            f"k={r['k']}: {r['recall']:.2f} ({r['complete']}/{r['requests']} complete)"
            for r in rows
        )
        print(f"{label:15} {cells}")
    for name, row in result["cost"].items():
        print(
            f"{name:26} {row['tools']:4} tools  prompt {row['prompt_chars']:6} chars  "
            f"schema {row['schema_chars']:7} chars"
        )
    print(f"index build {result['index_build_ms']:.1f} ms, rank {result['rank_ms']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
