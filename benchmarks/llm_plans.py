"""How often a real model's first plan passes the check: the plan schema before and after issue 13.

Each request below goes to the planner model once per variant, with the prompt the `plan`
node sends on its first try (the hints and actions the tiers without an LLM found); an
answer passes when it fits the schema, becomes a plan, and that plan has no problem the
`check` node would send back (`lam.dag.validate_plan` against the real executors, the
steps' arguments against their schemas, and a ToDo for every action of a compound request).
No repair, no router: first answers only.

    before  the plan as the model wrote it until issue 13: ToDo ids and `depends_on` ids
            of its own making, executor any string, inputs any object, no bounds; the
            prompt named no JSON keys
    after   numbered steps (graph/plan_steps.py): each naming one entry of the action
            catalogue (here the executors, described as tools) with that entry's own
            arguments object, dependencies by step number, bounded strings and lists; a
            prompt naming every key

Both with the same token limit and timeout (the planner's defaults), and the structured
output method of the run (json_schema, the default; `--methods` for others). The model is
llama.cpp's llama-server with SmolLM2-135M-Instruct (`make llm-server`), started on a free
port, or any OpenAI-compatible server (`--base-url`, `--model`).

    python -m benchmarks.llm_plans [--methods json_schema,function_calling,json_mode]
        [--base-url URL --model NAME] [--json]

REQUESTS holds the `llm` tests' requests that reach the planner (tests/test_llm_server.py)
and more of the same kinds, in English and German.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, Field, ValidationError

from graph.builder import make_services
from graph.config import Settings
from graph.llm import ChatModels, LLMError, LLMOutputError, LLMTruncatedError
from graph.plan_schema import plan_json_schema
from graph.plan_steps import max_steps, plan_draft_model
from graph.services import Services
from graph.state import IntentFound, PlannerState
from lam import Plan, ToDo
from nodes.check import problems_of
from nodes.plan import _hints, plan_messages
from prompts.templates import LANGUAGE_NAMES

REQUESTS = [
    # The `llm` tests' requests that reach the planner.
    "Find a free slot with Tom next week, book it and email him the agenda",
    "Organise a three-day trip to Lisbon with flights, a hotel and a museum visit",
    # More of the same kinds: several actions, a task no intent fits, an intent with no
    # template (planned with the intent as a hint); English and German.
    "Book a table for four on Friday, then send Anna the address and set an alarm",
    "Download the March invoices, add them up and email the total to accounting",
    "Plan a birthday party for my daughter next Saturday",
    "Prepare a short report on our website traffic for the team meeting",
    "Write an email to Tom with the agenda",
    "Buch den Tisch und schick Anna die Adresse",
    "Such einen freien Termin mit Tom, trag ihn ein und schick ihm die Tagesordnung",
    "Organisiere eine Reise nach Wien für zwei Personen",
    "Bereite die Präsentation für Montag vor",
    "Schreib Martin eine Mail wegen der Rechnung",
]


# -- the plan schema and prompt before issue 13 (graph/plan_steps.py, prompts/templates.py) --


class TodoBefore(BaseModel):
    """One ToDo as the planner model proposes it (status and results come later)."""

    id: str = Field(description="short unique id, e.g. t1")
    title: str = Field(description="a few words")
    description: str = Field("", description="what exactly to do")
    executor: str = Field(description="the executor's name")
    inputs: dict[str, Any] = Field(default_factory=dict, description="the executor's inputs")
    depends_on: list[str] = Field(default_factory=list, description="ids of ToDos needed first")
    requires_approval: bool = Field(False, description="true if a person must approve it")


class PlanBefore(BaseModel):
    """A plan as the planner model proposes it."""

    goal: str = Field(description="what the plan achieves, in one sentence")
    todos: list[TodoBefore]

    def to_plan(self) -> Plan:
        return Plan(goal=self.goal, todos=[ToDo(**t.model_dump()) for t in self.todos])


PlanBefore.__name__ = "PlanDraft"  # the schema's name the model saw

PLAN_SYSTEM_BEFORE = """\
You are the planner of a desktop assistant. Break the user's request into a small plan of
ToDos that together do everything the request asks for: every action it names needs a ToDo.
Each ToDo has a short unique id (t1, t2, ...), a title, a description of what to do,
the executor that does it, its inputs (an object) and the ids of the ToDos it depends on
(depends_on). A ToDo receives the outputs of the ToDos it depends on. ToDos without a
dependency between them run in parallel, so only add a dependency where a ToDo really needs
another's output. Set requires_approval for a ToDo that sends, books, deletes or buys
something. Use at most {max_todos} ToDos.

Executors:
{executors}
{hints}
Write the goal, the titles and the descriptions in {language}."""


# -- one first answer, checked ------------------------------------------------------------


@dataclass
class Outcome:
    request: str
    variant: str
    method: str
    verdict: str  # "valid", "truncated", "bad_output", "not_a_plan", "invalid_plan", ...
    detail: str
    seconds: float


def _state(services: Services, text: str) -> PlannerState:
    """What the `plan` node starts from: the request and what the tiers found."""
    decision = services.intents.decide(text)
    found: IntentFound = {
        "intent": decision.intent,
        "hints": list(decision.hints),
        "language": decision.language,
        "compound": (
            {"reason": decision.compound.reason, "parts": list(decision.compound.parts)}
            if decision.compound is not None
            else None
        ),
    }
    return {"request": text, "intent": found}


def executors_listing(services: Services) -> str:
    """The executors as the prompt before issue 13 listed them."""
    return "\n".join(f"- {name}: {text}" for name, text in services.executors.describe().items())


async def _check(plan: Plan, state: PlannerState, services: Services) -> list[str]:
    """What `check` would send back (validate_plan, the tools' arguments, the actions'
    coverage)."""
    catalogue = await services.tools.catalogue()
    problems = problems_of(plan, catalogue, services.executors.names(), services.settings.max_todos)
    parts = ((state.get("intent") or {}).get("compound") or {}).get("parts") or []
    if len(plan.todos) < len(parts):
        problems.append(f"{len(plan.todos)} ToDos for {len(parts)} actions")
    return problems


async def first_answer(
    services: Services, models: ChatModels, text: str, variant: str
) -> tuple[str, str]:
    state = _state(services, text)
    found = state.get("intent") or {}
    if variant == "before":
        messages: list[Any] = [
            SystemMessage(
                PLAN_SYSTEM_BEFORE.format(
                    max_todos=services.settings.max_todos,
                    executors=executors_listing(services),
                    hints=_hints(found),
                    language=LANGUAGE_NAMES[found.get("language", "en")],
                )
            ),
            HumanMessage(text),
        ]
        schema: type[BaseModel] = PlanBefore
        json_schema = None
    else:
        catalogue = await services.tools.catalogue()
        steps = max_steps(services.settings.max_todos)
        messages = plan_messages(state, catalogue, steps)
        schema = plan_draft_model(steps)
        json_schema = plan_json_schema(catalogue, steps)
    try:
        draft = await models.structured(
            "planner", schema, messages, what="plan this request", json_schema=json_schema
        )
    except LLMTruncatedError as exc:
        return "truncated", str(exc)
    except LLMOutputError as exc:
        return "bad_output", exc.detail
    except LLMError as exc:
        return exc.code, str(exc)
    try:
        plan = draft.to_plan()  # type: ignore[attr-defined]
    except ValidationError as exc:  # the crash of issue 13: empty ids, titles, executors
        return "not_a_plan", f"{exc.error_count()} problem(s)"
    problems = await _check(plan, state, services)
    return ("invalid_plan", "; ".join(problems)) if problems else ("valid", "")


async def measure(base_url: str, model: str, methods: list[str]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for method in methods:
        settings = Settings.model_validate(
            {
                "llm_base_url": base_url,
                "llm_model": model,
                "llm_structured_output": method,
                "llm_max_retries": 0,
            }
        )
        services = make_services(settings)
        for variant in ("before", "after"):
            for text in REQUESTS:
                started = time.monotonic()
                verdict, detail = await first_answer(services, services.models, text, variant)
                took = time.monotonic() - started
                outcomes.append(Outcome(text, variant, method, verdict, detail, took))
                print(
                    f"{method:16} {variant:6} {verdict:12} {took:5.1f} s  {text}", file=sys.stderr
                )
    return outcomes


def summary(outcomes: list[Outcome]) -> list[dict[str, Any]]:
    rows = []
    keys = dict.fromkeys((o.method, o.variant) for o in outcomes)
    for method, variant in keys:
        mine = [o for o in outcomes if (o.method, o.variant) == (method, variant)]
        verdicts = Counter(o.verdict for o in mine)
        rows.append(
            {
                "method": method,
                "variant": variant,
                "requests": len(mine),
                "valid": verdicts["valid"],
                "share": verdicts["valid"] / len(mine),
                "verdicts": dict(verdicts),
                "mean_s": sum(o.seconds for o in mine) / len(mine),
            }
        )
    return rows


@contextmanager
def llama_server(context: int = 4096, threads: int | None = None) -> Iterator[str]:
    """llama-server with SmolLM2-135M-Instruct on a free port (the `llm` tests' server),
    with `context` tokens of context and `threads` threads (None: llama.cpp's choice)."""
    from tests.support.llama_server import LlamaServer, find_llama

    found = find_llama()
    if found.missing:
        raise SystemExit(found.missing)
    with tempfile.TemporaryDirectory() as tmp:
        server = LlamaServer(
            found, Path(tmp) / "llama-server.log", context=context, threads=threads
        )
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--methods", default="json_schema", help="comma-separated")
    parser.add_argument("--base-url", help="an OpenAI-compatible server (default: llama-server)")
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--json", action="store_true", help="every outcome as JSON")
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]

    if args.base_url:
        outcomes = asyncio.run(measure(args.base_url, args.model, methods))
    else:
        with llama_server() as url:
            outcomes = asyncio.run(measure(url, args.model, methods))
    rows = summary(outcomes)
    if args.json:
        print(json.dumps({"summary": rows, "outcomes": [o.__dict__ for o in outcomes]}, indent=2))
        return 0
    print("| method | schema | first answer passes the check | other outcomes | mean s |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        others = ", ".join(f"{k} {v}" for k, v in sorted(row["verdicts"].items()) if k != "valid")
        print(
            f"| {row['method']} | {row['variant']} | {row['valid']}/{row['requests']} "
            f"({row['share']:.0%}) | {others or '-'} | {row['mean_s']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
