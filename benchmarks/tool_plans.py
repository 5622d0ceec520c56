"""How often a real model's plans name only catalogue tools with schema-valid arguments.

    python -m benchmarks.tool_plans [--catalogue FILE] [--base-url URL --model NAME]
                                    [--limit N] [--json]

Each request goes to the planner model once, as the `plan` node asks it on a first try
(`nodes.plan.draft_plan`: the catalogue's prompt and the JSON Schema generated from it),
with the planner's executors and the desktop agent's actions as the catalogue
(`examples/desktop_agent.ACTIONS`), or the tools of a catalogue file (`--catalogue`, then
narrowed to `planner_max_tools` per request like a planning call). Each answer is judged:

    tools       every step names an entry of the catalogue (a tool or an executor)
    arguments   ... and gives arguments its schema accepts (references aside)
    references  ... and its references name other steps of the plan
    checked     the plan has no problem `check` would send back (structure, tools,
                arguments, references, dependencies)
    uses_tools  at least one step runs a tool rather than a free-form executor step

The model is llama.cpp's llama-server with SmolLM2-135M-Instruct (`make llm-server`),
started on a free port, or any OpenAI-compatible server (`--base-url`, `--model`). With
llama-server the prompt's length in tokens is counted by its own tokenizer (`/tokenize`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.llm_plans import llama_server
from examples.desktop_agent import ACTIONS
from graph.builder import make_services
from graph.config import Settings
from graph.llm import LLMError
from graph.plan_steps import max_steps
from graph.tools.arguments import schema_errors
from graph.tools.catalogue import Catalogue, tool_entries
from graph.tools.executors import executor_entries
from graph.tools.files import load_tool_file
from graph.tools.narrowing import narrow
from lam import Plan
from lam.tools import references
from nodes.check import problems_of
from nodes.plan import draft_plan, planning_prompt

REQUESTS = [
    "Find my tax files and shred them",
    "Schedule a meeting with Tom on Friday at 10 and email him the agenda",
    "Remind me to call Anna tomorrow at 9",
    "Find the invoices from March and move them to the accounting folder",
    "What is on my calendar tomorrow?",
    "Search my mail for the offer from Globex and send it to Anna",
    "Delete the old drafts in my documents",
    "Email the team that the release is on Monday",
    "Such meine Steuerdateien und lösch sie",
    "Erinnere mich morgen um 9 an den Anruf bei Anna",
    "Schick Tom eine Mail mit der Tagesordnung",
    "Trag für Freitag 10 Uhr ein Treffen mit Anna ein",
]


@dataclass
class Judged:
    request: str
    error: str | None
    tools: bool
    arguments: bool
    references: bool
    checked: bool
    uses_tools: bool
    steps: int
    seconds: float
    prompt_tokens: int | None
    plan: list[dict[str, Any]]


def judge(
    plan: Plan, catalogue: Catalogue, executors: list[str], max_todos: int
) -> dict[str, bool]:
    named = arguments_ok = refs_ok = True
    for todo in plan.todos:
        name = todo.tool.name if todo.tool is not None else todo.executor
        entry = catalogue.get(name)
        if entry is None:
            named = arguments_ok = refs_ok = False
            continue
        given = todo.tool.arguments if todo.tool is not None else todo.inputs
        if schema_errors(given, entry.tool.input_schema):
            arguments_ok = False
        if any(ref == todo.id or ref not in plan.ids for _, ref in references(given)):
            refs_ok = False
    return {
        "tools": named,
        "arguments": named and arguments_ok,
        "references": named and arguments_ok and refs_ok,
        "checked": not problems_of(plan, catalogue, executors, max_todos),
        "uses_tools": any(t.tool is not None for t in plan.todos),
    }


async def prompt_tokens(base_url: str, text: str) -> int | None:
    """The prompt's length by llama-server's tokenizer (None for another server)."""
    root = base_url.removesuffix("/").removesuffix("/v1")
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(f"{root}/tokenize", json={"content": text})
            return len(response.json()["tokens"]) if response.is_success else None
    except (httpx.HTTPError, ValueError, KeyError):
        return None


async def measure(
    base_url: str, model: str, catalogue_file: Path | None, limit: int
) -> list[Judged]:
    settings = Settings.model_validate(
        {"llm_base_url": base_url, "llm_model": model, "llm_max_retries": 0}
    )
    svc = make_services(settings)
    executors = executor_entries(svc.executors)
    if catalogue_file is None:
        full = Catalogue.merge(executors, tool_entries(ACTIONS, "offer:cpa-desktop", "desktop"))
    else:
        loaded = load_tool_file(catalogue_file)
        full = Catalogue.merge(executors, tool_entries(loaded.tools, loaded.source, "desktop"))
    steps = max_steps(settings.max_todos)
    judged: list[Judged] = []
    for text in REQUESTS[:limit]:
        catalogue = narrow(full, text, settings.planner_max_tools)
        tokens = await prompt_tokens(base_url, planning_prompt(text, catalogue, steps)[0].text)
        started = time.monotonic()
        try:
            plan = await draft_plan(svc.models, text, catalogue, steps)
        except LLMError as exc:
            took = time.monotonic() - started
            judged.append(
                Judged(text, exc.code, False, False, False, False, False, 0, took, tokens, [])
            )
            print(f"{exc.code:14} {took:6.1f} s  {text}", file=sys.stderr)
            continue
        took = time.monotonic() - started
        verdict = judge(plan, full, svc.executors.names(), settings.max_todos)
        shown = [
            {
                "tool": t.tool.name if t.tool else t.executor,
                "arguments": t.tool.arguments if t.tool else t.inputs,
                "depends_on": t.depends_on,
            }
            for t in plan.todos
        ]
        judged.append(
            Judged(
                text,
                None,
                **verdict,
                steps=len(plan.todos),
                seconds=took,
                prompt_tokens=tokens,
                plan=shown,
            )
        )
        marks = " ".join(k for k, v in verdict.items() if v)
        print(f"{len(plan.todos)} steps {took:6.1f} s  [{marks}]  {text}", file=sys.stderr)
    return judged


def summary(judged: list[Judged]) -> dict[str, Any]:
    n = len(judged)
    shares = {
        key: sum(getattr(j, key) for j in judged) / n
        for key in ("tools", "arguments", "references", "checked", "uses_tools")
    }
    answered = [j for j in judged if j.error is None]
    tokens = [j.prompt_tokens for j in judged if j.prompt_tokens is not None]
    return {
        "requests": n,
        "answered": len(answered),
        **shares,
        "median_s": statistics.median(j.seconds for j in judged) if judged else None,
        "seconds": [round(j.seconds, 1) for j in judged],
        "prompt_tokens": [min(tokens), max(tokens)] if tokens else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--catalogue", type=Path, help="a catalogue file instead of the desktop agent's actions"
    )
    parser.add_argument(
        "--base-url", help="an OpenAI-compatible server (default: llama-server here)"
    )
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--limit", type=int, default=len(REQUESTS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    def run(url: str) -> list[Judged]:
        return asyncio.run(measure(url, args.model, args.catalogue, args.limit))

    if args.base_url:
        judged = run(args.base_url)
    else:
        with llama_server() as url:
            judged = run(url)
    result = summary(judged)
    if args.json:
        print(
            json.dumps(
                {"summary": result, "plans": [asdict(j) for j in judged]},
                indent=2,
                ensure_ascii=False,
            )
        )
    else:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
