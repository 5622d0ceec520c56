"""Tools as data: what an agent, an MCP server or one of the planner's executors can do.

A :class:`Tool` is one entry of an action catalogue: a name, a description, the JSON Schema
of its arguments, what it returns (a sentence), its *effect* and who runs it. An agent
announces its tools with an ``offer`` (``content.actions``); a plan step that runs one
carries a :class:`ToolCall` (``ToDo.tool``): the tool's name and its arguments.

The effect is one lower-case word: ``none`` or ``read`` leave the world as it was; any
other word says what the tool changes (``write``, ``send``, ``book``, ``pay``, ``delete``,
...). A word nobody knows still counts as changing something, so a step that runs such a
tool needs the person's approval.

An argument may be the output of an earlier step of the plan, which the step must depend
on: ``{"$step": "t1"}`` stands for the output of ToDo ``t1`` and is replaced by it when the
step runs (:func:`resolve_references`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from lam.jsonvalue import check_json

__all__ = [
    "EFFECT_PATTERN",
    "HARMLESS_EFFECTS",
    "STEP_REFERENCE",
    "UNDECLARED_EFFECT",
    "Tool",
    "ToolCall",
    "changes_world",
    "references",
    "resolve_references",
    "step_reference",
]

EFFECT_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"
#: Effects that leave the world as it was: no approval needed for them.
HARMLESS_EFFECTS = frozenset({"none", "read"})
#: The effect of a tool that declares none: it may change anything.
UNDECLARED_EFFECT = "change"
#: The key of an argument that stands for an earlier step's output: ``{"$step": "t1"}``.
STEP_REFERENCE = "$step"
TOOL_NAME_MAX = 128

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _tool_name(value: str) -> str:
    if value != value.strip():
        raise ValueError("a tool name must not start or end with white space")
    if _CONTROL.search(value):
        raise ValueError("a tool name must not hold control characters")
    return value


def _effect_word(value: str) -> str:
    if not re.fullmatch(EFFECT_PATTERN, value):
        raise ValueError(
            f"effect {value!r} is not one lower-case word: none, read, or what the tool "
            "changes (write, send, delete, pay, ...)"
        )
    return value


ToolName = Annotated[str, Field(min_length=1, max_length=TOOL_NAME_MAX), AfterValidator(_tool_name)]
Effect = Annotated[
    str, AfterValidator(_effect_word), Field(json_schema_extra={"pattern": EFFECT_PATTERN})
]


def changes_world(effect: str) -> bool:
    """Whether a step with this effect changes something outside the conversation."""
    return effect not in HARMLESS_EFFECTS


class Tool(BaseModel):
    """One thing an executor can do, described for the planner (docs/tools.md)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    name: ToolName
    description: str = ""
    input_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"},
        description="the JSON Schema of the arguments: an object schema",
    )
    returns: str = Field("", description="what it returns, in a sentence")
    effect: Effect = Field(
        UNDECLARED_EFFECT,
        description="none, read, or what it changes (write, send, delete, pay, ...); "
        "an unknown word counts as changing something",
    )
    executor: str | None = Field(
        None,
        min_length=1,
        description="who runs it: an executor name (desktop, mcp:<server>, ...); left out "
        "in an offer, where the agent that offers it runs it",
    )

    @field_validator("input_schema")
    @classmethod
    def _object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_json(value)
        kind = value.get("type", "object")
        if kind != "object":
            raise ValueError(f"the arguments' schema must describe an object, not {kind!r}")
        return value

    @property
    def changes_world(self) -> bool:
        return changes_world(self.effect)

    @model_serializer(mode="wrap")
    def _without_unset_executor(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("executor") is None:
            data.pop("executor", None)
        return data


class ToolCall(BaseModel):
    """A plan step's tool: which one, and its arguments (references to earlier steps allowed)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: ToolName
    arguments: dict[str, Any] = Field(default_factory=dict)

    @field_validator("arguments")
    @classmethod
    def _plain_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_json(value)
        return value


def step_reference(value: Any) -> str | None:
    """The ToDo id a value refers to (``{"$step": "t1"}`` → ``"t1"``), or None."""
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get(STEP_REFERENCE), str):
        return str(value[STEP_REFERENCE])
    return None


def references(arguments: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Every reference in the arguments, at any depth: (argument path, ToDo id)."""
    stack: list[tuple[str, Any]] = [(name, value) for name, value in arguments.items()]
    while stack:
        path, value = stack.pop(0)
        ref = step_reference(value)
        if ref is not None:
            yield path, ref
        elif isinstance(value, dict):
            stack.extend((f"{path}.{k}", v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}", v) for i, v in enumerate(value))


def resolve_references(value: Any, outputs: Mapping[str, Any]) -> Any:
    """``value`` with each reference replaced by that ToDo's output (KeyError: no output)."""
    ref = step_reference(value)
    if ref is not None:
        return outputs[ref]
    if isinstance(value, dict):
        return {k: resolve_references(v, outputs) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_references(v, outputs) for v in value]
    return value
