"""LAM protocol v1: message rules, content per performative, wire format, factory, schema."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from lam import (
    DEFAULT_MAX_MESSAGE_BYTES,
    LAM_VERSION,
    AssignContent,
    LAMMessage,
    LAMValidationError,
    MessageFactory,
    Performative,
    Plan,
    ToDo,
    message_json_schema,
)

ROOT = Path(__file__).resolve().parent.parent


def make_plan() -> Plan:
    return Plan(
        goal="Remind me to call Anna tomorrow at 9",
        todos=[
            ToDo(id="t1", title="Parse time", executor="time_parser", inputs={"text": "9"}),
            ToDo(id="t2", title="Set reminder", executor="reminder", depends_on=["t1"]),
        ],
    )


@pytest.fixture
def planner() -> MessageFactory:
    return MessageFactory("planner", conversation_id="thread-1")


def every_message(planner: MessageFactory) -> list[LAMMessage]:
    """One message per performative (two for inform), as the factory builds them."""
    user = MessageFactory("user", "thread-1")
    executor = MessageFactory("executor:reminder", "thread-1")
    proposal = planner.propose("user", make_plan())
    assignment = planner.assign("executor:reminder", make_plan().todos[1], {"when": "09:00"})
    return [
        MessageFactory("user").request("Remind me to call Anna", locale="en-GB"),
        planner.inform("user", "status", state="planning", progress=0.5),
        planner.inform_intent("planner", "set_reminder", 0.93, "rules"),
        proposal,
        user.agree(proposal, "go"),
        user.refuse(proposal, "not now"),
        planner.confirm("user", received=True),
        executor.failure("planner", "timeout", "took too long", todo_id="t2"),
        executor.done(assignment, {"reminder_id": 7}),
        planner.route("executor:reminder", "reminder", "intent set_reminder"),
        planner.discover("cpa-desktop", "open_app"),
        MessageFactory("cpa-desktop", "thread-1").offer(
            "planner", ["open_app"], ["launch"], lam_version="1.0"
        ),
        assignment,
    ]


def wire(**overrides: Any) -> dict[str, Any]:
    """A valid ``inform`` on the wire, with some fields replaced (or dropped, given ...)."""
    data: dict[str, Any] = {
        "lam_version": "1.0",
        "id": "m-1",
        "performative": "inform",
        "sender": "planner",
        "receiver": "user",
        "conversation_id": "thread-1",
        "in_reply_to": None,
        "timestamp": "2025-01-31T09:00:00.000000Z",
        "reply_by": None,
        "content": {"topic": "status", "state": "running"},
        "metadata": {},
    }
    for key, value in overrides.items():
        if value is ...:
            data.pop(key)
        else:
            data[key] = value
    return data


def fields_of(exc: pytest.ExceptionInfo[LAMValidationError]) -> list[str]:
    return [e["field"] for e in exc.value.errors]


# --- constants and enum ----------------------------------------------------------------------


def test_constants() -> None:
    assert LAM_VERSION == "1.0"
    assert DEFAULT_MAX_MESSAGE_BYTES == 256 * 1024


def test_performatives_are_the_twelve_lower_case_strings() -> None:
    assert [p.value for p in Performative] == [
        "request", "inform", "propose", "agree", "refuse", "confirm",
        "failure", "done", "route", "discover", "offer", "assign",
    ]  # fmt: skip
    assert isinstance(Performative.DONE, str)
    assert Performative("done") is Performative.DONE
    assert not hasattr(Performative, "done")  # one spelling: the upper-case member
    assert json.dumps(Performative.ASSIGN) == '"assign"'


# --- round trips -------------------------------------------------------------------------------


def test_every_performative_round_trips(planner: MessageFactory) -> None:
    for message in every_message(planner):
        data = message.to_dict()
        assert json.loads(json.dumps(data)) == data  # plain JSON
        assert LAMMessage.from_dict(data) == message
        assert LAMMessage.from_json(message.to_json()) == message
        assert LAMMessage.from_json(message.to_json().encode()) == message
        assert LAMMessage.from_dict(data).to_dict() == data


def test_to_dict_has_every_field_and_to_json_is_compact_and_deterministic() -> None:
    message = LAMMessage.from_dict(wire())
    assert list(message.to_dict()) == [
        "lam_version", "id", "performative", "sender", "receiver", "conversation_id",
        "in_reply_to", "timestamp", "reply_by", "content", "metadata",
    ]  # fmt: skip
    text = message.to_json()
    assert " " not in text.replace("9:00", "")
    shuffled = wire(content={"state": "running", "topic": "status"})
    assert LAMMessage.from_dict(shuffled).to_json() == text


def test_to_dict_is_a_copy() -> None:
    message = LAMMessage.from_dict(wire())
    message.to_dict()["content"]["state"] = "changed"
    assert message.content["state"] == "running"


def test_message_is_frozen_and_hashable() -> None:
    message = LAMMessage.from_dict(wire())
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error
        message.sender = "someone"  # type: ignore[misc]
    assert {message, LAMMessage.from_dict(wire())} == {message}


def test_defaults_id_and_timestamp() -> None:
    a = LAMMessage(performative="request", sender="user", receiver="planner", content={"text": "x"})
    b = LAMMessage(performative="request", sender="user", receiver="planner", content={"text": "x"})
    assert a.id != b.id and len(a.id) == 36
    assert a.lam_version == "1.0"
    assert a.timestamp.tzinfo is UTC
    assert abs(datetime.now(UTC) - a.timestamp) < timedelta(minutes=1)
    # id and timestamp may be left out on the wire as well: they are set on creation.
    parsed = LAMMessage.from_dict(wire(id=..., timestamp=...))
    assert parsed.id and parsed.timestamp.tzinfo is UTC


# --- timestamps -------------------------------------------------------------------------------


def test_timestamps_keep_microseconds_and_print_z() -> None:
    when = datetime(2025, 1, 31, 9, 0, 0, 123456, tzinfo=UTC)
    message = LAMMessage.from_dict(wire(timestamp="2025-01-31T09:00:00.123456Z"))
    assert message.timestamp == when
    assert message.to_dict()["timestamp"] == "2025-01-31T09:00:00.123456Z"


@pytest.mark.parametrize(
    "text",
    [
        "2025-01-31T10:00:00.123456+01:00",
        "2025-01-31T04:00:00.123456-05:00",
        "2025-01-31t09:00:00.1234569z",  # extra digits are dropped
        "2025-01-31 09:00:00.123456Z",
    ],
)
def test_any_offset_is_normalised_to_utc(text: str) -> None:
    message = LAMMessage.from_dict(wire(timestamp=text, reply_by=text))
    assert message.timestamp == datetime(2025, 1, 31, 9, 0, 0, 123456, tzinfo=UTC)
    assert message.to_dict()["reply_by"] == "2025-01-31T09:00:00.123456Z"


def test_python_datetimes_in_any_zone_are_normalised() -> None:
    tokyo = datetime(2025, 1, 31, 18, 0, tzinfo=timezone(timedelta(hours=9)))
    message = LAMMessage(**{**wire(), "timestamp": tokyo})
    assert message.timestamp == datetime(2025, 1, 31, 9, 0, tzinfo=UTC)
    assert message.timestamp.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "value",
    [
        "2025-01-31T09:00:00",  # no offset
        "2025-01-31",
        "yesterday",
        "2025-02-30T09:00:00Z",
        "2025-01-31T25:00:00Z",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        1738314000,
        datetime(2025, 1, 31, 9),  # naive
        None,
    ],
)
def test_bad_timestamps_are_refused(value: Any) -> None:
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_dict(wire(timestamp=value))
    assert fields_of(exc) == ["timestamp"]


# --- envelope rules ---------------------------------------------------------------------------


def test_version_is_required_on_the_wire_but_defaulted_in_python() -> None:
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_dict(wire(lam_version=...))
    assert fields_of(exc) == ["lam_version"]
    assert "lam_version" in str(exc.value)
    data = wire()
    del data["lam_version"]
    assert LAMMessage(**data).lam_version == "1.0"


@pytest.mark.parametrize("version", ["2.0", "1", 1.0, None, ""])
def test_wrong_version_says_which_are_supported(version: Any) -> None:
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_dict(wire(lam_version=version))
    assert fields_of(exc) == ["lam_version"]
    assert "supported versions: 1.0" in exc.value.errors[0]["message"]


@pytest.mark.parametrize("field", ["performative", "sender", "receiver", "content"])
def test_missing_required_field_is_named(field: str) -> None:
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_dict(wire(**{field: ...}))
    assert fields_of(exc) == [field]
    assert field in str(exc.value)


def test_unknown_performative_lists_the_known_ones() -> None:
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_dict(wire(performative="shout"))
    assert fields_of(exc) == ["performative"]
    assert "'shout'" in str(exc.value) and "assign" in str(exc.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sender", ""),
        ("receiver", ""),
        ("sender", 7),
        ("id", ""),
        ("id", 12),
        ("performative", 3),
        ("performative", "INFORM"),
        ("conversation_id", ""),
        ("content", []),
        ("content", "text"),
        ("metadata", {"k": 1}),
        ("metadata", []),
        ("reply_by", "soon"),
    ],
)
def test_wrong_types_name_the_field(field: str, value: Any) -> None:
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_dict(wire(**{field: value}))
    assert exc.value.errors[0]["field"].split(".")[0] == field


def test_unknown_top_level_field_is_refused() -> None:
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_dict(wire(priority="high"))
    assert fields_of(exc) == ["priority"]


def test_conversation_id_is_optional_only_on_request() -> None:
    request = wire(performative="request", content={"text": "hi"}, conversation_id=None)
    assert LAMMessage.from_dict(request).conversation_id is None
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_dict(wire(conversation_id=None))
    assert fields_of(exc) == ["conversation_id"]
    assert "'inform'" in str(exc.value)
    with pytest.raises(LAMValidationError):
        LAMMessage.from_dict(wire(conversation_id=...))


@pytest.mark.parametrize(
    ("performative", "content"),
    [
        ("agree", {}),
        ("refuse", {"reason": "no"}),
        ("done", {"todo_id": "t1", "output": None}),
    ],
)
def test_in_reply_to_is_required_for_answers(performative: str, content: dict[str, Any]) -> None:
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_dict(wire(performative=performative, content=content))
    assert fields_of(exc) == ["in_reply_to"]
    ok = LAMMessage.from_dict(wire(performative=performative, content=content, in_reply_to="m-0"))
    assert ok.in_reply_to == "m-0"


def test_failure_may_or_may_not_answer_something() -> None:
    content = {"error": {"code": "boom", "message": "it broke"}}
    assert LAMMessage.from_dict(wire(performative="failure", content=content)).in_reply_to is None
    answer = LAMMessage.from_dict(wire(performative="failure", content=content, in_reply_to="a-1"))
    assert answer.in_reply_to == "a-1"


def test_metadata_must_stay_small() -> None:
    assert LAMMessage.from_dict(wire(metadata={"trace": "abc"})).metadata == {"trace": "abc"}
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_dict(wire(metadata={f"k{i}": "v" for i in range(33)}))
    assert fields_of(exc) == ["metadata"]
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_dict(wire(metadata={"k": "v" * 1025}))
    assert fields_of(exc) == ["metadata.k"]
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_dict(wire(metadata={"k" * 65: "v"}))
    assert "64" in str(exc.value)


def test_several_errors_are_reported_together() -> None:
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_dict(wire(sender="", receiver=..., lam_version="9"))
    assert set(fields_of(exc)) == {"sender", "receiver", "lam_version"}


# --- content per performative -----------------------------------------------------------------


def intent(**fields: Any) -> dict[str, Any]:
    return {"topic": "intent", "intent": "x", "confidence": 0.5, "source": "llm", **fields}


def assign(**todo_fields: Any) -> dict[str, Any]:
    return {"todo": {"id": "t", "title": "T", "executor": "e", **todo_fields}, "inputs": {}}


def propose(*todos: dict[str, Any]) -> dict[str, Any]:
    return {"plan": {"goal": "g", "todos": list(todos)}}


VALID_CONTENT: list[tuple[str, dict[str, Any]]] = [
    ("request", {"text": "hi"}),
    ("request", {"text": "hi", "locale": "de-DE"}),
    ("inform", {"topic": "answer", "text": "done", "anything": [1, {"a": None}]}),
    ("inform", intent(confidence=1, slots={"when": "9:00"})),
    ("propose", {"plan": {"goal": "g", "todos": []}}),
    ("agree", {}),
    ("agree", {"comment": "fine"}),
    ("refuse", {"reason": "no"}),
    ("confirm", {}),
    ("confirm", {"whatever": {"deep": [1, 2.5, "x", True, None]}}),
    ("failure", {"error": {"code": "c", "message": ""}}),
    ("failure", {"todo_id": "t1", "error": {"code": "c", "message": "m"}}),
    ("done", {"todo_id": "t1", "output": None}),
    ("done", {"todo_id": "t1", "output": [1, "two", {"three": 3.0}]}),
    ("route", {"target": "reminder", "reason": "intent"}),
    ("discover", {}),
    ("discover", {"capability": "open_app"}),
    ("offer", {"executors": [], "intents": ["a"], "lam_version": "1.0"}),
    ("assign", {"todo": {"id": "t", "title": "T", "executor": "e"}, "inputs": {}}),
]


@pytest.mark.parametrize(("performative", "content"), VALID_CONTENT)
def test_valid_content(performative: str, content: dict[str, Any]) -> None:
    message = LAMMessage.from_dict(
        wire(performative=performative, content=content, in_reply_to="x")
    )
    assert LAMMessage.from_dict(message.to_dict()) == message


INVALID_CONTENT: list[tuple[str, dict[str, Any], str]] = [
    ("request", {}, "content.text"),
    ("request", {"text": ""}, "content.text"),
    ("request", {"text": "hi", "extra": 1}, "content.extra"),
    ("request", {"text": "hi", "locale": 5}, "content.locale"),
    ("inform", {"state": "x"}, "content.topic"),
    ("inform", intent(confidence=1.5), "content.confidence"),
    ("inform", intent(confidence=-0.1), "content.confidence"),
    ("inform", intent(confidence="0.5"), "content.confidence"),
    ("inform", intent(confidence=True), "content.confidence"),
    ("inform", intent(source="guess"), "content.source"),
    ("inform", intent(intent=""), "content.intent"),
    ("propose", {}, "content.plan"),
    ("propose", propose({"id": "t"}), "content.plan.todos.0.title"),
    ("propose", propose({"id": 1, "title": "T", "executor": "e"}), "content.plan.todos.0.id"),
    ("agree", {"comment": 3}, "content.comment"),
    ("agree", {"reason": "x"}, "content.reason"),
    ("refuse", {}, "content.reason"),
    ("failure", {"error": {"code": "c"}}, "content.error.message"),
    ("failure", {"error": "boom"}, "content.error"),
    ("done", {"todo_id": "t1"}, "content.output"),
    ("done", {"output": 1}, "content.todo_id"),
    ("route", {"target": "x"}, "content.reason"),
    ("discover", {"capability": ["x"]}, "content.capability"),
    ("offer", {"executors": "a", "intents": []}, "content.executors"),
    ("offer", {"executors": ["a"]}, "content.intents"),
    ("assign", {"todo": {"id": "t", "title": "T", "executor": "e"}}, "content.inputs"),
    ("assign", assign(id=""), "content.todo.id"),
    ("assign", assign(status="odd"), "content.todo.status"),
    ("assign", assign(depends_on=["a", 2]), "content.todo.depends_on.1"),
    ("assign", assign(requires_approval="no"), "content.todo.requires_approval"),
    ("assign", assign(colour="red"), "content.todo.colour"),
]


@pytest.mark.parametrize(("performative", "content", "field"), INVALID_CONTENT)
def test_content_that_does_not_fit_names_the_path(
    performative: str, content: dict[str, Any], field: str
) -> None:
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_dict(wire(performative=performative, content=content, in_reply_to="x"))
    assert field in fields_of(exc)
    assert field in str(exc.value)


def test_content_is_normalised_with_todo_defaults() -> None:
    todo = {"id": "t", "title": "T", "executor": "e"}
    message = LAMMessage.from_dict(
        wire(performative="assign", content={"todo": todo, "inputs": {"a": 1}})
    )
    assert message.content["todo"] == {
        "id": "t", "title": "T", "description": "", "executor": "e", "inputs": {},
        "depends_on": [], "requires_approval": False, "status": "pending", "output": None,
        "error": None,
    }  # fmt: skip
    again = LAMMessage.from_dict(message.to_dict())
    assert again == message and again.to_dict() == message.to_dict()


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ({"topic": "x", "bad": float("nan")}, "content.bad"),
        ({"topic": "x", "bad": float("inf")}, "content.bad"),
        ({"topic": "x", "bad": {1: "int key"}}, "content.bad"),
        ({"topic": "x", "bad": {"deep": [1, (2, 3)]}}, "content.bad.deep.1"),
        ({"topic": "x", "bad": {"s"}}, "content.bad"),
        ({"topic": "x", "bad": datetime(2025, 1, 1)}, "content.bad"),
    ],
)
def test_content_must_be_plain_json(content: dict[str, Any], field: str) -> None:
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage(**wire(content=content))
    assert fields_of(exc) == [field]


def test_deep_and_cyclic_content_is_refused_not_crashed() -> None:
    deep: Any = "leaf"
    for _ in range(500):
        deep = [deep]
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_dict(wire(content={"topic": "x", "deep": deep}))
    assert "nested" in str(exc.value)
    with pytest.raises(LAMValidationError):
        LAMMessage.from_json(json.dumps(wire(content={"topic": "x", "deep": deep})))
    very_deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(LAMValidationError):
        LAMMessage.from_json(f'{{"x": {very_deep}}}', max_bytes=None)
    loop: dict[str, Any] = {"topic": "x"}
    loop["self"] = loop
    with pytest.raises(LAMValidationError):
        LAMMessage.from_dict(wire(content=loop))
    with pytest.raises(LAMValidationError):
        LAMMessage(**wire(content=loop))


def test_typed_accessors() -> None:
    planner = MessageFactory("planner", "c")
    proposal = planner.propose("user", make_plan())
    assert proposal.plan() == make_plan()
    assignment = planner.assign("executor:reminder", make_plan().todos[0], {"x": 1})
    assert assignment.todo() == make_plan().todos[0]
    parsed = assignment.parsed_content()
    assert isinstance(parsed, AssignContent) and parsed.inputs == {"x": 1}
    with pytest.raises(ValueError, match="'assign'"):
        proposal.todo()
    with pytest.raises(ValueError, match="'propose'"):
        assignment.plan()


# --- bad input of every kind -------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not json",
        "[]",
        "null",
        '"a string"',
        "42",
        "{",
        b"\xff\xfe\x00",
        '{"a": NaN}',
        '{"a": Infinity}',
        '{"a": 1, "a": 2}',
        '{"a": ' + "9" * 5000 + "}",
        "{}",
    ],
)
def test_bad_json_gives_lam_validation_error(raw: str | bytes) -> None:
    with pytest.raises(LAMValidationError):
        LAMMessage.from_json(raw)


@pytest.mark.parametrize("data", [None, [], "x", 3, 2.5, object(), b"{}"])
def test_from_dict_refuses_non_objects(data: Any) -> None:
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_dict(data)
    assert fields_of(exc) == [""]


def test_from_json_refuses_non_text() -> None:
    with pytest.raises(LAMValidationError):
        LAMMessage.from_json(123)  # type: ignore[arg-type]


def test_oversize_is_refused_naming_the_size() -> None:
    data = wire(content={"topic": "x", "blob": "y" * DEFAULT_MAX_MESSAGE_BYTES})
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_dict(data)
    assert str(DEFAULT_MAX_MESSAGE_BYTES) in str(exc.value) and "bytes" in str(exc.value)
    text = json.dumps(data)
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_json(text)
    assert str(len(text.encode())) in str(exc.value)
    small = LAMMessage.from_dict(wire()).to_json()
    size = len(small.encode())
    assert LAMMessage.from_json(small, max_bytes=size)
    with pytest.raises(LAMValidationError, match=f"{size} bytes"):
        LAMMessage.from_json(small, max_bytes=size - 1)
    # Multi-byte characters count as bytes, not characters.
    wide = LAMMessage.from_dict(wire(content={"topic": "x", "t": "é" * 10})).to_json()
    with pytest.raises(LAMValidationError):
        LAMMessage.from_json(wide, max_bytes=len(wide))
    assert LAMMessage.from_dict(data, max_bytes=None).content["blob"]


def test_constructor_raises_lam_validation_error_too() -> None:
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage(performative="assign", sender="p", receiver="e", conversation_id="c", content={})
    assert set(fields_of(exc)) == {"content.todo", "content.inputs"}
    with pytest.raises(LAMValidationError):
        LAMMessage.model_validate({"performative": "nope"})


def test_error_is_a_value_error_with_field_list_and_pickles() -> None:
    with pytest.raises(ValueError) as exc:
        LAMMessage.from_dict(wire(sender=""))
    err = exc.value
    assert isinstance(err, LAMValidationError)
    assert err.errors == [{"field": "sender", "message": "String should have at least 1 character"}]
    assert err.fields == ["sender"]
    assert str(err).startswith("invalid LAM message (1 error): sender:")
    clone = pickle.loads(pickle.dumps(err))
    assert isinstance(clone, LAMValidationError) and clone.errors == err.errors


# --- factory ------------------------------------------------------------------------------------


def test_factory_builds_each_performative(planner: MessageFactory) -> None:
    messages = every_message(planner)
    assert {m.performative for m in messages} == set(Performative)
    for message in messages:
        assert message.lam_version == "1.0"


def test_request_opens_a_conversation() -> None:
    request = MessageFactory("user").request("Remind me", locale="en")
    assert request.receiver == "planner"
    assert request.conversation_id is None
    assert request.content == {"text": "Remind me", "locale": "en"}
    assert MessageFactory("user").request("x", receiver="cpa-desktop").receiver == "cpa-desktop"


def test_answers_carry_conversation_and_in_reply_to(planner: MessageFactory) -> None:
    proposal = planner.propose("user", make_plan())
    user = MessageFactory("user", "thread-1")
    agree = user.agree(proposal)
    assert agree.content == {}
    assert (agree.sender, agree.receiver) == ("user", "planner")
    assert agree.in_reply_to == proposal.id and agree.conversation_id == "thread-1"
    assert user.agree(proposal, comment="ok").content == {"comment": "ok"}
    refuse = user.refuse(proposal, "too risky")
    assert refuse.content == {"reason": "too risky"} and refuse.in_reply_to == proposal.id


def test_done_defaults_todo_id_to_the_assigned_todo(planner: MessageFactory) -> None:
    assignment = planner.assign("executor:reminder", make_plan().todos[1], {"a": 1})
    executor = MessageFactory("executor:reminder", "thread-1")
    done = executor.done(assignment, {"ok": True})
    assert done.content == {"todo_id": "t2", "output": {"ok": True}}
    assert done.in_reply_to == assignment.id and done.receiver == "planner"
    assert executor.done(assignment, None, todo_id="other").content["todo_id"] == "other"
    with pytest.raises(LAMValidationError) as exc:
        executor.done(planner.propose("user", make_plan()), 1)
    assert fields_of(exc) == ["content.todo_id"]


def test_failure_helper(planner: MessageFactory) -> None:
    failure = planner.failure("user", "no_route", "nobody can", todo_id="t1", in_reply_to="a-1")
    assert failure.content == {
        "todo_id": "t1",
        "error": {"code": "no_route", "message": "nobody can"},
    }
    assert failure.in_reply_to == "a-1"
    assert planner.failure("user", "x", "y").content == {"error": {"code": "x", "message": "y"}}


def test_inform_offer_discover_confirm_route(planner: MessageFactory) -> None:
    intent = planner.inform_intent("planner", "set_reminder", 0.5, "llm")
    assert intent.content == {
        "topic": "intent", "intent": "set_reminder", "confidence": 0.5, "source": "llm"
    }  # fmt: skip
    with pytest.raises(LAMValidationError) as exc:
        planner.inform_intent("planner", "x", 2.0, "llm")
    assert fields_of(exc) == ["content.confidence"]
    assert planner.inform("user", "answer", text="hi").content == {"topic": "answer", "text": "hi"}
    assert planner.discover("cpa-desktop").content == {}
    offer = MessageFactory("cpa-desktop", "c").offer("planner", ("a",), ["i"])
    assert offer.content == {"executors": ["a"], "intents": ["i"]}
    assert planner.confirm("user").content == {}
    assert planner.route("r", "t", "why").content == {"target": "t", "reason": "why"}


def test_every_helper_takes_reply_by_and_metadata(planner: MessageFactory) -> None:
    deadline = datetime(2030, 1, 1, tzinfo=UTC)
    meta = {"trace_id": "abc"}
    proposal = planner.propose("user", make_plan(), reply_by=deadline, metadata=meta)
    assert proposal.reply_by == deadline and proposal.metadata == meta
    agree = MessageFactory("user", "thread-1").agree(proposal, reply_by=deadline, metadata=meta)
    assert agree.reply_by == deadline and agree.metadata == meta
    request = MessageFactory("user").request("x", reply_by=deadline, metadata=meta)
    assert request.to_dict()["reply_by"] == "2030-01-01T00:00:00.000000Z"


def test_factory_accepts_plan_and_todo_as_dicts(planner: MessageFactory) -> None:
    proposal = planner.propose("user", make_plan().model_dump())
    assert proposal.plan() == make_plan()
    assignment = planner.assign("e", {"id": "t", "title": "T", "executor": "e"}, {})
    assert assignment.todo().status == "pending"


def test_factory_without_conversation_can_only_request() -> None:
    with pytest.raises(LAMValidationError) as exc:
        MessageFactory("planner").inform("user", "status")
    assert fields_of(exc) == ["conversation_id"]
    assert (
        MessageFactory("planner").with_conversation("c").inform("user", "x").conversation_id == "c"
    )


def test_reply_swaps_parties_and_links_the_message(planner: MessageFactory) -> None:
    request = MessageFactory("user").request("Remind me")
    reply = planner.reply(request, Performative.INFORM, {"topic": "status", "state": "planning"})
    assert (reply.sender, reply.receiver) == ("planner", "user")
    assert reply.in_reply_to == request.id
    assert reply.conversation_id == "thread-1"  # the opening request had none: the factory's
    assert reply.content == {"topic": "status", "state": "planning"}

    proposal = planner.propose("user", make_plan())
    agree = MessageFactory("anyone").reply(proposal, "agree")
    assert (agree.sender, agree.receiver) == ("user", "planner")
    assert agree.conversation_id == "thread-1" and agree.in_reply_to == proposal.id
    other = planner.reply(proposal, "refuse", {"reason": "x"}, sender="user:2")
    assert other.sender == "user:2"
    with pytest.raises(LAMValidationError) as exc:
        MessageFactory("planner").reply(request, "agree")
    assert fields_of(exc) == ["conversation_id"]
    with pytest.raises(LAMValidationError):
        planner.reply(proposal, "refuse")  # refuse needs a reason
    assert planner.reply(request, "confirm", conversation_id="t-9").conversation_id == "t-9"


# --- schema -------------------------------------------------------------------------------------


def test_schema_is_valid_2020_12_and_accepts_factory_messages(planner: MessageFactory) -> None:
    schema = message_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    for message in every_message(planner):
        validator.validate(message.to_dict())
        validator.validate(json.loads(message.to_json()))


@pytest.mark.parametrize(
    "overrides",
    [
        {"lam_version": "2.0"},
        {"lam_version": ...},
        {"performative": "shout"},
        {"sender": ""},
        {"conversation_id": None},
        {"content": {"state": "no topic"}},
        {"content": {"topic": "intent", "intent": "x", "confidence": 3, "source": "llm"}},
        {"performative": "assign", "content": {"todo": {"id": "t"}, "inputs": {}}},
        {"performative": "agree", "content": {}},
        {"performative": "request", "content": {}},
        {"metadata": {"k": 1}},
        {"extra": 1},
    ],
)
def test_schema_rejects_what_the_validator_rejects(overrides: dict[str, Any]) -> None:
    data = wire(**overrides)
    with pytest.raises(LAMValidationError):
        LAMMessage.from_dict(data)
    validator = jsonschema.Draft202012Validator(message_json_schema())
    assert not validator.is_valid(data)


def test_python_m_lam_schema_and_validate(tmp_path: Path) -> None:
    run = [sys.executable, "-m", "lam"]
    out = subprocess.run([*run, "schema"], capture_output=True, text=True, check=True, cwd=ROOT)
    assert json.loads(out.stdout) == message_json_schema()
    assert out.stdout.startswith('{\n  "$schema"')

    good = tmp_path / "good.json"
    good.write_text(MessageFactory("user").request("hi").to_json())
    ok = subprocess.run([*run, "validate", str(good)], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: request")

    bad = json.dumps(wire(sender="", content={"nope": 1}))
    res = subprocess.run(
        [*run, "validate", "-"], input=bad, capture_output=True, text=True, cwd=ROOT
    )
    assert res.returncode == 1
    assert "sender" in res.stderr and "content.topic" in res.stderr


# --- ids and text (issue 10: SSE injection, lone surrogates, blank requests) -----------------


@pytest.mark.parametrize("field", ["id", "conversation_id", "in_reply_to"])
@pytest.mark.parametrize(
    "bad",
    ["x" * 129, "x" * 10_000, " ", "a b", "a\nid: forged", "a\n", "a\rb", "a/b", "ä", "", "a\x00"],
)
def test_ids_are_plain_and_short(field: str, bad: str) -> None:
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_dict(wire(**{field: bad}))
    assert fields_of(exc) == [field]
    with pytest.raises(LAMValidationError):
        LAMMessage(**wire(**{field: bad}))  # the Python constructor keeps the same rule


@pytest.mark.parametrize("good", ["x" * 128, "a", "A-Z_a.z:0-9", "tenant:conv.1"])
def test_ids_of_the_allowed_characters_pass(good: str) -> None:
    message = LAMMessage.from_dict(wire(id=good, conversation_id=good, in_reply_to=good))
    assert (message.id, message.conversation_id, message.in_reply_to) == (good, good, good)


def test_generated_ids_follow_the_rule() -> None:
    schema = jsonschema.Draft202012Validator(message_json_schema())
    request = MessageFactory("user").request("hi")
    assert len(request.id) == 36
    schema.validate(request.to_dict())
    assert not schema.is_valid(wire(id="a b"))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"metadata": {"trace": "ok\ud800"}}, "metadata.trace"),
        ({"content": {"topic": "status", "note": "\udfff"}}, "content.note"),
        ({"content": {"topic": "status", "deep": [{"x": "a\ud83d"}]}}, "content.deep.0.x"),
        ({"sender": "pla\udc00nner"}, "sender"),
        ({"metadata": {"k\ud800": "v"}}, "metadata"),
    ],
)
def test_lone_surrogates_are_refused_naming_the_field(
    overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_dict(wire(**overrides))
    assert fields_of(exc) == [field]
    assert "unpaired surrogate" in str(exc.value)
    # The same from JSON text, where a client writes it as an escape.
    with pytest.raises(LAMValidationError) as from_json:
        LAMMessage.from_json(json.dumps(wire(**overrides)))
    assert fields_of(from_json) == [field]


def test_a_lone_surrogate_in_done_output_is_refused() -> None:
    assign = MessageFactory("planner", "c").assign("cpa-desktop", make_plan().todos[0], {})
    text = json.dumps(
        {
            **MessageFactory("cpa-desktop", "c").done(assign, "x").to_dict(),
            "content": {"todo_id": "t1", "output": {"files": ["report\ud800.txt"]}},
        }
    )
    with pytest.raises(LAMValidationError) as exc:
        LAMMessage.from_json(text)
    assert fields_of(exc) == ["content.output.files.0"]


def test_surrogate_pairs_are_text_like_any_other() -> None:
    # JSON writes characters outside the BMP as a pair of escapes; decoded, they are one.
    text = json.dumps(wire(metadata={"mood": "\U0001f600"}))
    assert "\\ud83d\\ude00" in text
    assert LAMMessage.from_json(text).metadata == {"mood": "\U0001f600"}


@pytest.mark.parametrize("blank", [" ", "\t\n ", "\u3000"])
def test_a_blank_request_is_refused_with_a_clear_message(blank: str) -> None:
    with pytest.raises(LAMValidationError) as exc:
        MessageFactory("user").request(blank)
    assert fields_of(exc) == ["content.text"]
    assert "blank" in exc.value.errors[0]["message"]
