"""Checking a plan's tool calls against the catalogue (the `jsonschema` library).

Every step that names a tool must name one of the catalogue, run on that tool's executor,
and give arguments its schema accepts; a free-form step's `inputs` must fit its executor's
schema (the `template` executor needs `text`). A (top-level) argument may instead refer to
an earlier step's output (`{"$step": "t1"}`): its value is only known when the step runs,
so it is not checked against the schema here, but the step must depend on the one it names.
At run time the arguments are checked again, with the references resolved (`resolved_call`).

Each problem names the step, the tool and the argument, in words a planner model can act on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from jsonschema.validators import validator_for

from graph.tools.catalogue import Catalogue, Entry
from lam import Plan, ToDo, ToolCall
from lam.tools import references, resolve_references, step_reference

_MAX_LISTED = 20
_MAX_MESSAGE = 240


@dataclass(frozen=True)
class ArgumentProblem:
    """One thing wrong with a step's tool or arguments; `str()` is the message."""

    todo_id: str
    tool: str
    argument: str | None
    message: str

    def __str__(self) -> str:
        return self.message


def schema_errors(
    arguments: Mapping[str, Any], schema: Mapping[str, Any]
) -> list[tuple[str | None, str]]:
    """(argument path or None, what is wrong) for each way the arguments miss the schema.

    Top-level arguments that are references are left out of the check (and count as given).
    An argument the schema does not name is wrong unless the schema says that others are
    welcome (`additionalProperties`): JSON Schema would let it through, but to a planner it
    is a misspelt or invented argument, which the tool would ignore or refuse.
    """
    refs = {name for name, value in arguments.items() if step_reference(value) is not None}
    instance = {name: value for name, value in arguments.items() if name not in refs}
    validator = validator_for(schema, default=Draft202012Validator)(schema)
    found: list[tuple[str | None, str]] = []
    for error in sorted(
        validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))
    ):
        found.extend(_explain(error, refs))
    properties = schema.get("properties")
    if isinstance(properties, Mapping) and "additionalProperties" not in schema:
        known = ", ".join(properties) or "none"
        found += [
            (name, f"is not an argument of this tool (its arguments: {known})")
            for name in arguments
            if name not in properties
        ]
    return found


def _explain(error: ValidationError, refs: set[str]) -> list[tuple[str | None, str]]:
    path = ".".join(str(p) for p in error.absolute_path) or None
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [
            name
            for name in error.validator_value
            if name not in error.instance and not (path is None and name in refs)
        ]
        where = f"{path}." if path else ""
        return [(f"{where}{name}", "is missing (required)") for name in missing]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set((error.schema.get("properties") or {}).keys())
        extra = [name for name in error.instance if name not in allowed]
        where = f"{path}." if path else ""
        known = ", ".join(sorted(allowed)) or "none"
        return [
            (f"{where}{name}", f"is not an argument of this tool (its arguments: {known})")
            for name in extra
        ]
    return [(path, _short(error.message))]


def _short(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_MAX_LISTED])
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


def todo_problems(todo: ToDo, catalogue: Catalogue, plan_ids: set[str]) -> list[ArgumentProblem]:
    """What is wrong with one step's tool, arguments and references."""
    if todo.tool is not None:
        name = todo.tool.name
        entry = catalogue.tool(name)
        if entry is None:
            tools = _listing([e.name for e in catalogue.tools]) or "none"
            executors = _listing([e.name for e in catalogue.executors])
            return [
                ArgumentProblem(
                    todo.id,
                    name,
                    None,
                    f"ToDo {todo.id!r} names the tool {name!r}, which is not in the catalogue "
                    f"(tools: {tools}; or a free-form step of an executor: {executors}).",
                )
            ]
        if entry.executor != todo.executor:
            return [
                ArgumentProblem(
                    todo.id,
                    name,
                    None,
                    f"ToDo {todo.id!r} runs the tool {name!r} on the executor {todo.executor!r}, "
                    f"but {entry.executor!r} runs it.",
                )
            ]
        what, arguments = f"(tool {name})", todo.tool.arguments
        subject = "argument"
    else:
        executor_entry = catalogue.get(todo.executor)
        if executor_entry is None or executor_entry.kind != "executor":
            return []  # an unknown executor: `lam.dag.validate_plan` names it
        entry = executor_entry
        what, arguments, subject = f"(executor {todo.executor})", todo.inputs, "input"
    problems = [
        ArgumentProblem(
            todo.id,
            entry.name,
            path,
            f"ToDo {todo.id!r} {what}: {subject} {path!r} {message}."
            if path
            else f"ToDo {todo.id!r} {what}: {message}.",
        )
        for path, message in schema_errors(arguments, entry.tool.input_schema)
    ]
    for path, ref in references(arguments):
        if ref == todo.id:
            problems.append(
                ArgumentProblem(
                    todo.id,
                    entry.name,
                    path,
                    f"ToDo {todo.id!r} {what}: {subject} {path!r} refers to its own output: "
                    "give the value itself, or the output of another step.",
                )
            )
        elif ref not in plan_ids:
            problems.append(
                ArgumentProblem(
                    todo.id,
                    entry.name,
                    path,
                    f"ToDo {todo.id!r} {what}: {subject} {path!r} refers to {ref!r}, which is not "
                    "a ToDo of this plan.",
                )
            )
        elif ref not in todo.depends_on:
            problems.append(
                ArgumentProblem(
                    todo.id,
                    entry.name,
                    path,
                    f"ToDo {todo.id!r} {what}: {subject} {path!r} is the output of {ref!r}, but "
                    f"{todo.id!r} does not depend on {ref!r}: add it to depends_on.",
                )
            )
    return problems


def plan_problems(plan: Plan, catalogue: Catalogue) -> list[ArgumentProblem]:
    """Every pending step's tool and argument problems, in plan order."""
    ids = set(plan.ids)
    problems: list[ArgumentProblem] = []
    for todo in plan.todos:
        if todo.status == "pending":
            problems.extend(todo_problems(todo, catalogue, ids))
    return problems


class CallError(Exception):
    """A step's tool cannot be run as planned; `code` is the ToDo's failure code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def resolved_call(
    todo: ToDo, catalogue: Catalogue, outputs: Mapping[str, Any]
) -> tuple[Entry, ToolCall]:
    """The tool entry and the call its runner gets: references replaced by the outputs of
    the steps named, then the arguments checked against the tool's schema again.

    Raises CallError: `tool_unavailable` when the tool left the catalogue (or moved to
    another executor) since the plan was made; `bad_arguments` when the arguments, resolved,
    do not fit its schema.
    """
    assert todo.tool is not None
    name = todo.tool.name
    entry = catalogue.tool(name)
    if entry is None:
        raise CallError(
            "tool_unavailable",
            f"the tool {name!r} is no longer in the catalogue (the agent or server that "
            "offered it withdrew it since the plan was made)",
        )
    if entry.executor != todo.executor:
        raise CallError(
            "tool_unavailable",
            f"the tool {name!r} is now run by {entry.executor!r}, not by {todo.executor!r}",
        )
    try:
        arguments = resolve_references(todo.tool.arguments, outputs)
    except KeyError as exc:
        raise CallError(
            "bad_arguments",
            f"an argument of {name!r} refers to {exc.args[0]!r}, whose output is not at hand",
        ) from None
    errors = schema_errors(arguments, entry.tool.input_schema)
    if errors:
        listed = "; ".join(f"{path}: {message}" if path else message for path, message in errors)
        raise CallError(
            "bad_arguments", f"the arguments of {name!r} do not fit its schema: {listed}"
        )
    return entry, ToolCall(name=entry.call_name or entry.name, arguments=arguments)
