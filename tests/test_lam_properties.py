"""Property tests for LAM messages: exact round trips, and every kind of damage refused with
LAMValidationError (never another exception type)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lam import (
    LAMMessage,
    LAMValidationError,
    Performative,
    message_json_schema,
)
from lam.messages import WIRE_REQUIRED_FIELDS

SETTINGS = settings(max_examples=120, deadline=None)
SCHEMA = jsonschema.Draft202012Validator(message_json_schema())

names = st.text(min_size=1, max_size=12)
ids = st.from_regex(r"[A-Za-z0-9._:-]{1,16}", fullmatch=True)
# Ids that break the rule: a character outside it, or too long.
bad_ids = st.text(min_size=1, max_size=12).filter(
    lambda i: not all(c.isascii() and (c.isalnum() or c in "._:-") for c in i)
) | st.from_regex(r"[a-z]{129,140}", fullmatch=True)
small_text = st.text(max_size=16)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | small_text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(small_text, inner, max_size=3),
    max_leaves=8,
)
json_objects = st.dictionaries(small_text, json_values, max_size=3)
offsets = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
moments = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC) | offsets
)


@st.composite
def todos(draw: st.DrawFn) -> dict[str, Any]:
    todo: dict[str, Any] = {"id": draw(names), "title": draw(names), "executor": draw(names)}
    if draw(st.booleans()):
        todo.update(
            description=draw(small_text),
            inputs=draw(json_objects),
            depends_on=draw(st.lists(names, max_size=3)),
            requires_approval=draw(st.booleans()),
            status=draw(st.sampled_from(["pending", "running", "done", "failed", "skipped"])),
            output=draw(json_values),
            error=draw(st.none() | small_text),
        )
    return todo


def contents(performative: Performative) -> st.SearchStrategy[dict[str, Any]]:
    """Valid content for each performative, with the optional parts sometimes present."""
    extra = st.dictionaries(small_text.filter(lambda k: k != "topic"), json_values, max_size=2)
    match performative:
        case Performative.REQUEST:
            text = names.filter(str.strip)  # a blank request is refused
            return st.fixed_dictionaries({"text": text}, optional={"locale": names})
        case Performative.INFORM:
            intent = st.fixed_dictionaries(
                {
                    "topic": st.just("intent"),
                    "intent": names,
                    "confidence": st.floats(0, 1),
                    "source": st.sampled_from(["rules", "llm"]),
                }
            )
            other = st.builds(
                lambda topic, more: {**more, "topic": topic},
                names.filter(lambda t: t != "intent"),
                extra,
            )
            return intent | other
        case Performative.PROPOSE:
            plan = st.fixed_dictionaries(
                {"goal": small_text, "todos": st.lists(todos(), max_size=3)}
            )
            return st.fixed_dictionaries({"plan": plan})
        case Performative.AGREE:
            return st.fixed_dictionaries({}, optional={"comment": small_text})
        case Performative.REFUSE:
            return st.fixed_dictionaries({"reason": names})
        case Performative.CONFIRM:
            return json_objects
        case Performative.FAILURE:
            error = st.fixed_dictionaries({"code": names, "message": small_text})
            return st.fixed_dictionaries({"error": error}, optional={"todo_id": names})
        case Performative.DONE:
            return st.fixed_dictionaries({"todo_id": names, "output": json_values})
        case Performative.ROUTE:
            return st.fixed_dictionaries({"target": names, "reason": small_text})
        case Performative.DISCOVER:
            return st.fixed_dictionaries({}, optional={"capability": names})
        case Performative.OFFER:
            lists = st.lists(names, max_size=3)
            return st.fixed_dictionaries(
                {"executors": lists, "intents": lists}, optional={"lam_version": st.just("1.0")}
            )
        case Performative.ASSIGN:
            return st.fixed_dictionaries({"todo": todos(), "inputs": json_objects})
    raise AssertionError(performative)


@st.composite
def messages(draw: st.DrawFn) -> LAMMessage:
    performative = draw(st.sampled_from(list(Performative)))
    needs_reply = performative in (Performative.AGREE, Performative.REFUSE, Performative.DONE)
    return LAMMessage(
        id=draw(ids),
        performative=performative,
        sender=draw(names),
        receiver=draw(names),
        conversation_id=draw(st.none() | ids if performative is Performative.REQUEST else ids),
        in_reply_to=draw(ids if needs_reply else st.none() | ids),
        timestamp=draw(moments),
        reply_by=draw(st.none() | moments),
        content=draw(contents(performative)),
        metadata=draw(st.dictionaries(st.text(max_size=8), st.text(max_size=16), max_size=3)),
    )


# --- round trips -------------------------------------------------------------------------------


@SETTINGS
@given(messages())
def test_json_round_trip_is_the_identity(message: LAMMessage) -> None:
    text = message.to_json()
    again = LAMMessage.from_json(text)
    assert again == message
    assert again.to_json() == text
    assert LAMMessage.from_json(text.encode("utf-8")) == message


@SETTINGS
@given(messages())
def test_dict_round_trip_is_the_identity(message: LAMMessage) -> None:
    data = message.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert LAMMessage.from_dict(data) == message
    assert LAMMessage.from_dict(data).to_dict() == data


@settings(max_examples=60, deadline=None)
@given(messages())
def test_every_message_fits_the_published_schema(message: LAMMessage) -> None:
    SCHEMA.validate(message.to_dict())


# --- damage ------------------------------------------------------------------------------------

not_a_string: st.SearchStrategy[int | list[int] | dict[str, Any]] = (
    st.integers() | st.booleans() | st.lists(st.integers(), max_size=2) | st.just({})
)
not_an_object = (
    st.integers() | st.text(max_size=5) | st.lists(st.integers(), max_size=2) | st.none()
)
REQUIRED_KEYS: dict[str, str] = {
    "request": "text",
    "inform": "topic",
    "propose": "plan",
    "refuse": "reason",
    "failure": "error",
    "done": "todo_id",
    "route": "target",
    "offer": "executors",
    "assign": "todo",
}
CLOSED = ("request", "propose", "agree", "refuse", "failure", "done", "route", "discover", "assign")


def _not_empty_object(value: object) -> bool:
    # A function, not a lambda: typed `object`, the comparison with {} type-checks
    # (mypy's strict equality finds no overlap between not_an_object's values and a dict).
    return value != {}


@st.composite
def damaged(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A valid message's dict with one thing broken, and what was broken."""
    data = draw(messages()).to_dict()
    performative = data["performative"]
    kind = draw(
        st.sampled_from(
            [
                "drop",
                "wrong_type",
                "content",
                "performative",
                "version",
                "timestamp",
                "extra",
                "id",
                "surrogate",
            ]
        )
    )
    if kind == "drop":
        del data[draw(st.sampled_from(WIRE_REQUIRED_FIELDS))]
    elif kind == "wrong_type":
        field = draw(
            st.sampled_from(["id", "sender", "receiver", "content", "metadata", "in_reply_to"])
        )
        if field == "content":
            data[field] = draw(not_an_object)
        elif field == "metadata":
            data[field] = draw(not_an_object.filter(_not_empty_object) | st.just({"k": 1}))
        else:
            data[field] = draw(not_a_string)
    elif kind == "content":
        # Content that does not fit: a required key gone, or a key the performative forbids.
        keys = [k for k in (REQUIRED_KEYS.get(performative),) if k]
        choices = [*(("drop", k) for k in keys)]
        if performative in CLOSED:
            choices.append(("add", "zz_unexpected"))
        if not choices:  # confirm takes any object: give it something that is not one
            data["content"] = draw(not_an_object)
        else:
            action, key = draw(st.sampled_from(choices))
            if action == "drop":
                data["content"].pop(key, None)
            else:
                data["content"][key] = 1
    elif kind == "performative":
        data["performative"] = draw(
            st.text(max_size=10).filter(lambda p: p not in {q.value for q in Performative})
            | not_a_string
        )
    elif kind == "version":
        data["lam_version"] = draw(st.text(max_size=5).filter(lambda v: v != "1.0") | not_a_string)
    elif kind == "timestamp":
        data["timestamp"] = draw(
            st.just("2025-01-31T09:00:00")
            | st.text(max_size=10)
            | st.integers()
            | st.none()
            | st.just("2025-13-01T00:00:00Z")
        )
    elif kind == "id":
        field = draw(st.sampled_from(["id", "conversation_id", "in_reply_to"]))
        data[field] = draw(bad_ids)
        kind = field
    elif kind == "surrogate":
        # A lone surrogate, as JSON's \ud800 escape decodes, in a string or a key anywhere.
        where = draw(st.sampled_from(["sender", "metadata", "metadata_key", "content"]))
        lone = chr(draw(st.integers(0xD800, 0xDFFF)))
        if where == "metadata":
            data["metadata"] = {"k": f"x{lone}"}
        elif where == "metadata_key":
            data["metadata"] = {f"k{lone}": "v"}
        elif where == "content":
            data["content"] = {**data["content"], f"k{lone}": 1}
        else:
            data[where] = f"{data[where]}{lone}"
    else:
        data[draw(names.filter(lambda k: k not in data))] = draw(json_values)
    return kind, data


@settings(max_examples=250, deadline=None)
@given(damaged())
def test_damage_is_always_a_lam_validation_error(case: tuple[str, dict[str, Any]]) -> None:
    kind, data = case
    with pytest.raises(LAMValidationError) as from_dict:
        LAMMessage.from_dict(data)
    assert from_dict.value.errors and all(
        set(e) == {"field", "message"} for e in from_dict.value.errors
    )
    with pytest.raises(LAMValidationError) as from_json:
        LAMMessage.from_json(json.dumps(data))
    assert from_json.value.errors == from_dict.value.errors
    if kind in ("performative", "version", "timestamp", "id", "conversation_id", "in_reply_to"):
        field = {"performative": "performative", "version": "lam_version"}.get(kind, kind)
        assert field in from_dict.value.fields
    if kind == "surrogate":
        assert "unpaired surrogate" in str(from_dict.value)


@SETTINGS
@given(messages(), st.integers(min_value=1, max_value=64))
def test_oversize_is_refused_by_both_entry_points(message: LAMMessage, short: int) -> None:
    text = message.to_json()
    size = len(text.encode("utf-8"))
    assert LAMMessage.from_json(text, max_bytes=size) == message
    with pytest.raises(LAMValidationError, match=f"{size} bytes"):
        LAMMessage.from_json(text, max_bytes=size - short)
    with pytest.raises(LAMValidationError, match="over the limit"):
        LAMMessage.from_dict(message.to_dict(), max_bytes=size - short)


@SETTINGS
@given(st.binary(max_size=64) | st.text(max_size=64).map(lambda t: t.encode("utf-8")))
def test_random_bytes_never_raise_anything_else(raw: bytes) -> None:
    # 64 bytes are too few for any valid message, so this is always refused.
    with pytest.raises(LAMValidationError):
        LAMMessage.from_json(raw)


@SETTINGS
@given(json_values)
def test_random_json_never_raises_anything_else(value: Any) -> None:
    with pytest.raises(LAMValidationError):
        LAMMessage.from_dict(value)
    with pytest.raises(LAMValidationError):
        LAMMessage.from_json(json.dumps(value))
