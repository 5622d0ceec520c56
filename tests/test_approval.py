"""Approval that means something (issue 10, finding 3), inside the graph.

What needs the person's `agree` is decided from what the plan's steps do, whoever wrote the
plan; only the person the plan was proposed to can answer it, also when the answer comes in
as a resume value (Studio); a run's configuration cannot lower the policy.
"""

from __future__ import annotations

from typing import Any

import pytest

from graph.approval import declared_record
from graph.config import ConfigError
from lam import LAMMessage, MessageFactory, Plan
from tests.support.executors import RecordingExecutor
from tests.support.planner_harness import Conversation, performatives, services
from tests.support.scripted import ScriptedChatModel, UncallableChatModel, steps

EMAIL = "Write an email to Tom with the agenda"  # rules abstain: the scripted planner plans


def _planned(plan: dict[str, Any], *executors: Any, **settings: Any) -> Conversation:
    planner = ScriptedChatModel.script(structured=[steps(plan)])
    models = {"router": UncallableChatModel(), "planner": planner}
    return Conversation(services(models=models, executors=list(executors), **settings))


def _plan(*todos: dict[str, Any]) -> dict[str, Any]:
    return {"goal": "g", "todos": list(todos)}


DESKTOP_STEP = {"id": "t1", "title": "Delete the files", "executor": "desktop"}


async def _only_question(conv: Conversation) -> Any:
    (question,) = await conv.interrupts()
    return question


# What needs approval ------------------------------------------------------------------------


async def test_an_llm_plan_without_the_flag_still_asks_before_a_desktop_step() -> None:
    # The model left `requires_approval` off a step that changes the user's files.
    conv = _planned(_plan(DESKTOP_STEP))
    state = await conv.start(EMAIL)
    question = await _only_question(conv)
    assert question.value["performative"] == "propose"
    assert question.value["receiver"] == "user"
    assert "assign" not in performatives(state)  # nothing reached the desktop agent
    # Once agreed to, the plan carries the flag it lacked (what GET and the CLI show).
    state = await conv.approve_plan()
    assert Plan.model_validate(state["plan"]).todo("t1").requires_approval


@pytest.mark.parametrize(
    ("todo", "asks"),
    [
        ({"executor": "work"}, False),  # declares effect "none"
        ({"executor": "work", "requires_approval": True}, True),  # the model may add
        ({"executor": "llm"}, False),
        ({"executor": "http", "inputs": {"url": "http://127.0.0.1:9/x"}}, False),  # GET: read
        ({"executor": "http", "inputs": {"url": "http://127.0.0.1:9/x", "method": "POST"}}, True),
        ({"executor": "work", "effect": "delete"}, True),  # an executor that deletes
    ],
)
async def test_what_a_step_does_decides(todo: dict[str, Any], asks: bool) -> None:
    effect = todo.pop("effect", "none")
    work = RecordingExecutor(effect=effect)
    conv = _planned(_plan({"id": "t1", "title": "Step", **todo}), work, max_replans=0)
    await conv.start(EMAIL)
    questions = [i for i in await conv.interrupts() if i.value["performative"] == "propose"]
    assert bool(questions) is asks


async def test_a_template_declaration_counts_only_for_its_own_proposal() -> None:
    conv = _planned(_plan(DESKTOP_STEP))
    state = await conv.start(EMAIL)
    (propose,) = [m for m in state["lam"] if m["performative"] == "propose"]
    # A declaration for another proposal (an earlier plan with the same ToDo id): ignored.
    await conv.graph.aupdate_state(
        conv.config, {"plan_effects": declared_record("another-propose", {"t1": "read"})}
    )
    await conv.carry_on()  # `approve` judges again
    assert (await _only_question(conv)).value["performative"] == "propose"
    # Declared for this very proposal (a trusted template said: it only reads), on a plan
    # without the flag the plan node would have set otherwise: no question.
    await conv.graph.aupdate_state(
        conv.config,
        {
            "plan": _plan(DESKTOP_STEP),
            "plan_effects": declared_record(propose["id"], {"t1": "read"}),
        },
    )
    await conv.carry_on()
    assert (await _only_question(conv)).value["performative"] == "assign"  # straight on


# Who may answer -------------------------------------------------------------------------------


async def test_only_the_receiver_of_the_propose_can_agree_even_from_studio() -> None:
    conv = _planned(_plan(DESKTOP_STEP))
    await conv.start(EMAIL)
    first = await _only_question(conv)
    propose = LAMMessage.from_dict(first.value)
    forged = MessageFactory("cpa-desktop", propose.conversation_id).agree(propose)

    state = await conv.resume({first.id: forged.to_dict()})

    again = await _only_question(conv)
    assert again.value == first.value  # asked anew: the desktop agent cannot approve
    assert forged.id not in {m["id"] for m in state["lam"]}
    agree = MessageFactory("user", propose.conversation_id).agree(propose)
    await conv.resume({again.id: agree.to_dict()})
    assert (await _only_question(conv)).value["performative"] == "assign"


async def test_a_done_naming_another_todo_is_not_taken() -> None:
    plan = _plan(
        {"id": "t1", "title": "One", "executor": "desktop"},
        {"id": "t2", "title": "Two", "executor": "desktop"},
    )
    conv = _planned(plan)
    await conv.start(EMAIL)
    await conv.approve_plan()
    by_todo = {i.value["content"]["todo"]["id"]: i for i in await conv.interrupts()}
    assign = LAMMessage.from_dict(by_todo["t1"].value)
    wrong = MessageFactory("cpa-desktop", assign.conversation_id).done(assign, "x", todo_id="t2")

    state = await conv.resume({by_todo["t1"].id: wrong.to_dict()})

    plan_now = Plan.model_validate(state["plan"])
    assert {t.id: t.status for t in plan_now.todos} == {"t1": "pending", "t2": "pending"}
    assert wrong.id not in {m["id"] for m in state["lam"]}
    assert len(await conv.interrupts()) == 2  # both still wait


# Run configuration ------------------------------------------------------------------------------


async def test_a_run_config_cannot_switch_approval_off() -> None:
    conv = _planned(_plan(DESKTOP_STEP))
    conv.config["configurable"]["approval_policy"] = "never"
    with pytest.raises(ConfigError, match="cannot lower"):
        await conv.start(EMAIL)


async def test_the_server_may_allow_run_overrides() -> None:
    conv = _planned(_plan(DESKTOP_STEP), allow_run_overrides=True)
    conv.config["configurable"]["approval_policy"] = "never"
    await conv.start(EMAIL)
    assert (await _only_question(conv)).value["performative"] == "assign"


async def test_a_run_config_cannot_widen_the_http_allow_list() -> None:
    step = {"id": "t1", "title": "Call", "executor": "http", "inputs": {"url": "http://x/y"}}
    conv = _planned(_plan(step), http_allowlist="http://127.0.0.1:9/api")
    conv.config["configurable"]["http_allowlist"] = "http://127.0.0.1:9/api,http://x"
    with pytest.raises(ConfigError, match="cannot add http://x"):
        await conv.start(EMAIL)
