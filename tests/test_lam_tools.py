"""Tools in the LAM protocol: `Tool`, `ToDo.tool`, an agent's `offer`, an `assign`'s `tool`.

Old plans stay valid and dump as before (no `tool` key); bad tools are refused naming the
field; references to earlier steps are found and resolved at any depth.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from lam import (
    LAMMessage,
    LAMValidationError,
    MessageFactory,
    Plan,
    ToDo,
    Tool,
    ToolCall,
    changes_world,
    message_json_schema,
)
from lam.tools import references, resolve_references

FIND = Tool(
    name="find_files",
    description="Find files.",
    input_schema={"type": "object", "properties": {"query": {"type": "string"}}},
    returns="the paths",
    effect="read",
)


def offer(actions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "lam_version": "1.0",
        "performative": "offer",
        "sender": "cpa-desktop",
        "receiver": "planner",
        "conversation_id": "c1",
        "content": {"actions": actions},
    }


def test_a_todo_without_a_tool_dumps_as_before_tools_existed() -> None:
    todo = ToDo(id="t1", title="Look", executor="desktop", inputs={"request": "x"})
    assert "tool" not in todo.model_dump(mode="json")
    assert ToDo.model_validate(todo.model_dump(mode="json")) == todo
    plan = Plan(goal="g", todos=[todo])
    assert "tool" not in json.dumps(plan.model_dump(mode="json"))


def test_a_todo_with_a_tool_round_trips() -> None:
    call = ToolCall(name="delete_files", arguments={"paths": {"$step": "t1"}})
    todo = ToDo(id="t2", title="Shred", executor="desktop", depends_on=["t1"], tool=call)
    data = todo.model_dump(mode="json")
    assert data["tool"] == {"name": "delete_files", "arguments": {"paths": {"$step": "t1"}}}
    assert ToDo.model_validate(data) == todo
    propose = MessageFactory("planner", "c1").propose("user", Plan(goal="g", todos=[todo]))
    assert LAMMessage.from_json(propose.to_json()).plan().todos[0].tool == call


def test_an_agent_offers_its_tools_and_they_round_trip() -> None:
    message = MessageFactory("cpa-desktop", "c1").actions("planner", [FIND])
    again = LAMMessage.from_json(message.to_json())
    assert again == message
    (tool,) = again.content["actions"]
    assert "executor" not in tool  # left out: the offering agent runs it
    assert Tool.model_validate(tool) == FIND
    # The planner's own offer still lists executors and intents.
    planner = MessageFactory("planner", "c1").offer("cpa-desktop", ["llm"], ["calendar"])
    assert planner.content == {"executors": ["llm"], "intents": ["calendar"]}


@pytest.mark.parametrize(
    ("actions", "field", "says"),
    [
        ([{"name": "x", "effect": "Delete!"}], "content.actions.0.effect", "lower-case word"),
        ([{"name": " x"}], "content.actions.0.name", "white space"),
        ([{"name": ""}], "content.actions.0.name", "at least 1"),
        (
            [{"name": "x", "input_schema": {"type": "array"}}],
            "content.actions.0.input_schema",
            "object",
        ),
        ([{"name": "x"}, {"name": "x"}], "content.actions.1.name", "offered twice"),
        ([{"name": "x", "colour": "red"}], "content.actions.0.colour", "Extra inputs"),
    ],
)
def test_bad_tools_are_refused_naming_the_field(
    actions: list[dict[str, Any]], field: str, says: str
) -> None:
    with pytest.raises(LAMValidationError) as refused:
        LAMMessage.from_dict(offer(actions))
    assert field in refused.value.fields, refused.value.errors
    assert says in str(refused.value)


def test_an_offer_says_something() -> None:
    with pytest.raises(LAMValidationError) as refused:
        LAMMessage.from_dict(offer([]) | {"content": {}})
    assert set(refused.value.fields) == {"content.executors", "content.intents"}


def test_an_assign_names_the_tool_to_run() -> None:
    todo = ToDo(id="t1", title="Find", executor="desktop", tool=ToolCall(name="find_files"))
    call = ToolCall(name="find_files", arguments={"query": "tax"})
    assign = MessageFactory("planner", "c1").assign("cpa-desktop", todo, {}, tool=call)
    assert assign.content["tool"] == {"name": "find_files", "arguments": {"query": "tax"}}
    assert LAMMessage.from_json(assign.to_json()) == assign
    bare = MessageFactory("planner", "c1").assign("cpa-desktop", todo, {})
    assert "tool" not in bare.content


def test_effects_an_unknown_word_changes_the_world() -> None:
    assert not changes_world("none") and not changes_world("read")
    for word in ("write", "send", "delete", "pay", "shred", "change"):
        assert changes_world(word)
    assert Tool(name="x").effect == "change"  # declared by nobody: it may change anything


def test_references_are_found_and_resolved_at_any_depth() -> None:
    arguments = {
        "paths": {"$step": "t1"},
        "mail": {"to": [{"$step": "t2"}, "anna@example.com"], "subject": "hi"},
        "not_a_reference": {"$step": "t1", "and": "more"},
    }
    assert sorted(references(arguments)) == [("mail.to.0", "t2"), ("paths", "t1")]
    outputs = {"t1": ["a.pdf"], "t2": "tom@example.com"}
    assert resolve_references(arguments, outputs) == {
        "paths": ["a.pdf"],
        "mail": {"to": ["tom@example.com", "anna@example.com"], "subject": "hi"},
        "not_a_reference": {"$step": "t1", "and": "more"},
    }
    with pytest.raises(KeyError):
        resolve_references({"x": {"$step": "t9"}}, outputs)


def test_the_published_schema_describes_tools() -> None:
    schema = message_json_schema()
    tool = schema["$defs"]["Tool"]
    assert set(tool["required"]) == {"name"}
    assert tool["properties"]["effect"]["pattern"]
    assert "tool" in schema["$defs"]["ToDo"]["properties"]
    assert "actions" in schema["$defs"]["OfferContent"]["properties"]
