"""Plans made of real tools, through the graph, with a scripted planner and real Redis.

The desktop agent's actions (`examples/desktop_agent.ACTIONS`) are offered the way the
server keeps them (`graph.tools.offers`, on Valkey); the planner model is scripted
(tests/support/scripted.py); the desktop agent's answers are LAM messages resumed into the graph.

- an offer changes what the planner may plan: its schema and prompt show the new tools,
  and a plan naming a tool nobody offered goes back for repair;
- "Find my tax files and shred them": a read tool, then a delete tool fed the read tool's
  output; the shredding waits for the person's approval before anything is handed out;
- the issue's repro: eight `template` steps without `inputs.text` are refused by `check`
  and repaired, never run into `bad_inputs`;
- bad arguments are named by step, tool and argument, repaired, or end the turn cleanly;
- effects decide approval; a tool that left the catalogue fails its step cleanly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from examples.desktop_agent import ACTIONS
from graph.plan_schema import step_variants
from graph.services import Services
from graph.tools.offers import OfferStore
from lam import LAMMessage, MessageFactory, Tool
from tests.support.planner_harness import Conversation, performatives, services
from tests.support.scripted import ScriptedChatModel, steps

INTENTS = Path(__file__).parent / "data" / "tools_intents.yaml"
SHRED = "Find my tax files and shred them"
MEETING = "Schedule a meeting with Tom on Friday at 10 and email him the agenda"
TAX_FILES = ["tax/2023.pdf", "tax/2024.pdf"]


def tool_step(todo_id: str, tool: str, arguments: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "id": todo_id,
        "title": more.pop("title", tool.replace("_", " ").capitalize()),
        "executor": "desktop",
        "tool": {"name": tool, "arguments": arguments},
        **more,
    }


SHRED_PLAN = steps(
    {
        "goal": "Shred the tax files",
        "todos": [
            tool_step("t1", "find_files", {"query": "tax"}, title="Find the tax files"),
            tool_step(
                "t2", "delete_files", {"paths": {"$step": "t1"}}, title="Shred them"
            ),  # no `after`: the reference is the dependency
        ],
    }
)
FREE_FORM_PLAN = steps(
    {
        "goal": "Shred the tax files",
        "todos": [
            {"id": "t1", "title": "Find the tax files", "executor": "desktop"},
            {"id": "t2", "title": "Shred them", "executor": "desktop", "after": ["t1"]},
        ],
    }
)


@pytest.fixture
async def offers(valkey_url: str, redis_prefix: str) -> AsyncIterator[OfferStore]:
    client = aioredis.from_url(valkey_url)
    try:
        yield OfferStore(client, redis_prefix)
    finally:
        await client.aclose()


async def offer(store: OfferStore, actions: list[Tool] = ACTIONS) -> None:
    """The desktop agent's offer, kept as `POST /v1/lam` keeps it (tenant `local`)."""
    await store.put(
        "local", "cpa-desktop", "desktop", actions, message_id="o1", offered_at="2026-12-01"
    )


def planning(
    store: OfferStore, *answers: Any, **settings: Any
) -> tuple[Services, ScriptedChatModel]:
    planner = ScriptedChatModel.script(structured=answers)
    settings = {"intents_path": str(INTENTS), **settings}
    svc = services(models={"planner": planner}, **settings)
    return replace(svc, tools=svc.tools.with_offers(store)), planner


def variants(schema: dict[str, Any], number: int = 2) -> dict[str, dict[str, Any]]:
    """The variants step `number` of a plan schema may be, by the tool each names."""
    return {v["properties"]["tool"]["const"]: v for v in step_variants(schema, number)}


def failures(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [m["content"] for m in state["lam"] if m["performative"] == "failure"]


async def answer(conv: Conversation, output: Any) -> tuple[LAMMessage, dict[str, Any]]:
    """Answer the one `assign` waiting for the desktop agent with `done(output)`."""
    (waiting,) = await conv.interrupts()
    assign = LAMMessage.from_dict(waiting.value)
    assert assign.performative.value == "assign" and assign.receiver == "cpa-desktop"
    done = MessageFactory("cpa-desktop", assign.conversation_id).done(assign, output)
    return assign, await conv.resume({waiting.id: done.to_dict()})


# -- what the planner may plan --------------------------------------------------------------


async def test_an_offer_changes_what_the_planner_may_plan(offers: OfferStore) -> None:
    # Before the offer, a plan naming the agent's tools goes back: they are not in the
    # catalogue. After it, the same plan is taken.
    svc, planner = planning(offers, SHRED_PLAN, FREE_FORM_PLAN, SHRED_PLAN)
    before = await Conversation(svc).start(SHRED)
    schema, prompt = planner.schemas[0], planner.calls[0][2][0].text
    assert "delete_files" not in variants(schema) and "delete_files" not in prompt
    refused = failures(before)[0]["error"]
    assert refused["code"] == "invalid_plan"
    assert (
        "ToDo 't1' names 'find_files', which is neither a tool nor an executor (tools: none; "
        "executors: desktop, http, human, llm, template)" in refused["message"]
    )
    assert before["plan"].todos[0].tool is None  # the repair: a free-form desktop step

    await offer(offers)
    after = await Conversation(svc).start(SHRED)
    schema, prompt = planner.schemas[2], planner.calls[2][2][0].text
    # Step 2 shreds what step 1 found ("them"): its one argument is step 1's output.
    (following,) = variants(schema)["delete_files"]["properties"]["arguments"]["anyOf"]
    assert following["required"] == ["paths"] and following["additionalProperties"] is False
    assert following["properties"]["paths"]["properties"] == {"$step": {"const": 1}}
    # Past the request's actions, the tool's own arguments, each of which may also be an
    # earlier step's output.
    arguments = variants(schema, 3)["delete_files"]["properties"]["arguments"]
    assert arguments["required"] == ["paths"] and arguments["additionalProperties"] is False
    paths = arguments["properties"]["paths"]["anyOf"]
    assert paths[0] == {
        "type": "array",
        "items": {"type": "string", "maxLength": 200},
        "minItems": 1,
        "maxItems": 8,
    }
    assert paths[1] == {"$ref": "#/$defs/step_output_3"}
    assert "- delete_files: Delete files for good" in prompt
    assert "[effect: delete, needs the person's approval]" in prompt
    assert "- find_files: Find files and folders by name or content." in prompt
    assert [t.tool.name for t in after["plan"].todos if t.tool] == ["find_files", "delete_files"]
    assert not failures(after)


@pytest.mark.parametrize("registry", ["tests", "default"])
async def test_find_my_tax_files_and_shred_them_waits_for_approval_first(
    offers: OfferStore, registry: str
) -> None:
    # With the packaged intent registry the front door sees two actions and sends the
    # request to the planner with the `files` hint; with the tests' registry no intent fits.
    await offer(offers)
    paths = {"intents_path": None} if registry == "default" else {}
    svc, planner = planning(offers, SHRED_PLAN, **paths)
    conv = Conversation(svc)
    state = await conv.start(SHRED)
    if registry == "default":
        prompt = planner.calls[0][2][0].text
        assert "The request asks for 2 actions" in prompt and "files" in prompt

    # The plan: find (read), then shred what was found (delete), its argument a reference.
    find, shred = state["plan"].todos
    assert find.tool is not None and find.tool.arguments == {"query": "tax"}
    assert shred.tool is not None and shred.tool.arguments == {"paths": {"$step": "t1"}}
    assert shred.depends_on == ["t1"]
    # The model asked for no approval; the delete tool's effect does, the read one's not.
    assert [t.requires_approval for t in state["plan"].todos] == [False, True]
    (question,) = await conv.interrupts()
    assert question.value["performative"] == "propose"
    assert "assign" not in performatives(state)  # nothing handed out, nothing shredded

    await conv.resume({question.id: "agree"})
    assign, _ = await answer(conv, TAX_FILES)
    assert assign.content["tool"] == {"name": "find_files", "arguments": {"query": "tax"}}
    # The shredding gets what was found, resolved and checked against its schema.
    assign, state = await answer(conv, TAX_FILES)
    assert assign.content["tool"] == {"name": "delete_files", "arguments": {"paths": TAX_FILES}}
    assert assign.content["todo"]["tool"]["arguments"] == {"paths": {"$step": "t1"}}
    assert state["status"] == "done"
    assert [t.output for t in state["plan"].todos] == [TAX_FILES, TAX_FILES]


async def test_the_issue_repro_eight_template_steps_without_text_are_repaired(
    offers: OfferStore,
) -> None:
    # SmolLM2 planned eight `template` steps with no inputs; all of them failed with
    # `bad_inputs` when they ran. Now the schema says that `template` needs `text`, and a
    # model that ignores the schema has its plan refused and repaired before anything runs.
    eight = {
        "goal": "Meeting with Tom",
        "steps": [
            {
                "title": f"Step {n}",
                "description": "",
                "tool": "template",
                "arguments": {},
                "after": [],
            }
            for n in range(1, 9)
        ],
    }
    good = steps(
        {
            "goal": "Meeting with Tom",
            "todos": [
                {
                    "id": "t1",
                    "title": "Agenda",
                    "executor": "template",
                    "inputs": {"text": "Agenda: {request}"},
                },
                {
                    "id": "t2",
                    "title": "Mail",
                    "executor": "template",
                    "inputs": {"text": "To Tom: {t1}"},
                    "depends_on": ["t1"],
                },
            ],
        }
    )
    svc, planner = planning(offers, eight, good)
    conv = Conversation(svc)
    state = await conv.start(MEETING)

    template = variants(planner.schemas[0])["template"]["properties"]["arguments"]
    assert template["required"] == ["text"]
    assert template["properties"]["text"]["anyOf"][0]["minLength"] == 1
    refused = failures(state)[0]["error"]
    assert refused["code"] == "invalid_plan"
    for n in range(1, 9):
        assert (
            f"ToDo 't{n}' (executor template): input 'text' is missing (required)"
            in refused["message"]
        )
    repair = planner.calls[1][2][-1].text
    assert "ToDo 't8' (executor template): input 'text' is missing (required)" in repair
    assert state["status"] == "done"
    assert [t.status for t in state["plan"].todos] == ["done", "done"]
    assert state["plan"].todos[1].output == f"To Tom: Agenda: {MEETING}"
    assert all(f["error"]["code"] != "bad_inputs" for f in failures(state))


# -- bad arguments ------------------------------------------------------------------------------

BAD_ARGUMENTS = steps(
    {
        "goal": "Shred the tax files",
        "todos": [
            tool_step("t1", "find_files", {"query": 2024}),
            tool_step("t2", "delete_files", {"path": "tax"}, depends_on=["t1"]),
            tool_step("t3", "shred_everything", {}),
        ],
    }
)
BAD_NAMED = [
    "ToDo 't1' (tool find_files): argument 'query' 2024 is not of type 'string'",
    "ToDo 't2' (tool delete_files): argument 'paths' is missing (required)",
    "ToDo 't2' (tool delete_files): argument 'path' is not an argument of this tool "
    "(its arguments: paths)",
    "ToDo 't3' names 'shred_everything', which is neither a tool nor an executor (tools: "
    "find_files, delete_files, move_files,",
]


async def test_bad_arguments_are_named_and_repaired(offers: OfferStore) -> None:
    await offer(offers)
    svc, planner = planning(offers, BAD_ARGUMENTS, SHRED_PLAN)
    conv = Conversation(svc)
    state = await conv.start(SHRED)
    refused = failures(state)[0]["error"]
    repair = planner.calls[1][2]
    for problem in BAD_NAMED:
        assert problem in refused["message"] and problem in repair[-1].text
    # The model sees its own plan again, in its own form: the tools and arguments it wrote
    # (and the approval the tool's effect asks for).
    shown = json.loads(repair[-2].text)
    assert shown["steps"][1] == {
        "title": "Delete files",
        "description": "",
        "tool": "delete_files",
        "arguments": {"path": "tax"},
        "after": [1],
        "requires_approval": True,
    }
    assert [t.tool.name for t in state["plan"].todos if t.tool] == ["find_files", "delete_files"]
    (question,) = await conv.interrupts()
    assert question.value["performative"] == "propose"


async def test_bad_arguments_end_the_turn_cleanly_when_no_repair_is_left(
    offers: OfferStore,
) -> None:
    await offer(offers)
    svc, _ = planning(offers, BAD_ARGUMENTS, max_plan_repairs=0)
    state = await Conversation(svc).start(SHRED)
    assert state["status"] == "failed"
    (failure,) = failures(state)
    assert failure["error"]["code"] == "invalid_plan"
    assert BAD_NAMED[1] in failure["error"]["message"]
    assert "assign" not in performatives(state)
    assert state["lam"][-1]["content"]["topic"] == "answer"


async def test_arguments_that_no_longer_fit_once_resolved_fail_the_step(
    offers: OfferStore,
) -> None:
    # find_files answers with a sentence, not the list of paths delete_files needs.
    await offer(offers)
    svc, _ = planning(offers, SHRED_PLAN, max_replans=0)
    conv = Conversation(svc)
    await conv.start(SHRED)
    (question,) = await conv.interrupts()
    await conv.resume({question.id: "agree"})
    _, state = await answer(conv, "no tax files here")
    assert [t.status for t in state["plan"].todos] == ["done", "failed"]
    error = state["plan"].todos[1].error
    assert error.startswith("bad_arguments: the arguments of 'delete_files' do not fit its schema")
    assert "paths: 'no tax files here' is not of type 'array'" in error
    assigns = [m for m in state["lam"] if m["performative"] == "assign"]
    assert [a["content"]["todo"]["id"] for a in assigns] == ["t1"]  # t2 never handed out


# -- approval from effects ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("effect", "flagged", "asks"),
    [
        ("read", False, False),  # a read-only tool runs without asking
        ("none", False, False),
        ("read", True, True),  # the model's flag adds an approval...
        ("delete", False, True),  # ...but cannot take one away
        ("send", False, True),
        ("shred", False, True),  # a word nobody knows counts as changing something
    ],
)
async def test_the_tools_effect_decides_approval(
    offers: OfferStore, effect: str, flagged: bool, asks: bool
) -> None:
    tool = Tool(name="do_it", description="Does it.", effect=effect)
    await offer(offers, [tool])
    plan = steps({"goal": "g", "todos": [tool_step("t1", "do_it", {}, requires_approval=flagged)]})
    svc, _ = planning(offers, plan)
    conv = Conversation(svc)
    state = await conv.start("Please do it now")
    (waiting,) = await conv.interrupts()
    expected = "propose" if asks else "assign"
    assert waiting.value["performative"] == expected
    assert state["plan"].todos[0].requires_approval is asks


async def test_a_template_step_that_runs_a_tool_takes_its_effect_from_the_catalogue(
    offers: OfferStore,
) -> None:
    # The template declares `effect: read`; the catalogue says delete_files deletes.
    await offer(offers)
    svc, planner = planning(offers)
    conv = Conversation(svc)
    state = await conv.start("Clean up the old drafts")
    assert state["plan"].todos[0].tool.name == "delete_files"
    assert state["plan"].todos[0].requires_approval
    (waiting,) = await conv.interrupts()
    assert waiting.value["performative"] == "propose"
    assert planner.calls == []  # a template: no LLM


async def test_a_tool_that_left_the_catalogue_fails_its_step_with_a_clear_code(
    offers: OfferStore,
) -> None:
    await offer(offers)
    svc, _ = planning(offers, SHRED_PLAN, max_replans=0)
    conv = Conversation(svc)
    await conv.start(SHRED)
    (question,) = await conv.interrupts()
    await offers.put("local", "cpa-desktop", "desktop", [], message_id="o2", offered_at="x")
    state = await conv.resume({question.id: "agree"})
    assert [t.status for t in state["plan"].todos] == ["failed", "skipped"]
    (failure,) = failures(state)
    assert failure["todo_id"] == "t1" and failure["error"]["code"] == "tool_unavailable"
    assert "'find_files' is no longer in the catalogue" in failure["error"]["message"]
    assert "assign" not in performatives(state)
    assert state["status"] != "running"
