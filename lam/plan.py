"""The plan a planner proposes: a goal and ToDos that depend on each other (a DAG).

The models hold any plan, even a broken one (duplicate ids, cycles...): structural checks
live in :mod:`lam.dag` so a broken plan can be reported in full and repaired.

A ToDo may name the tool it runs (``tool``: a :class:`lam.tools.ToolCall`). The field is
optional and left out of the JSON when unset, so a plan without tools is the same JSON as
before tools existed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from lam.jsonvalue import check_json
from lam.tools import ToolCall

__all__ = ["TODO_STATUSES", "Plan", "PlannedToDo", "ToDo", "TodoStatus"]

TodoStatus = Literal["pending", "running", "done", "failed", "skipped"]
TODO_STATUSES: tuple[TodoStatus, ...] = ("pending", "running", "done", "failed", "skipped")

NonEmptyStr = Annotated[str, Field(min_length=1)]


class PlannedToDo(BaseModel):
    """A step as a plan states it, before it runs: what, by which executor, after which steps.

    :class:`ToDo` adds the run state; the intent registry's plan templates add the step's
    effect (``graph.intents.registry_model``). One definition of a step's fields for both.
    """

    # strict: a plan comes from an LLM or the wire; "false" is not a bool and 1 is not an id.
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)

    id: NonEmptyStr
    title: NonEmptyStr
    description: str = ""
    executor: NonEmptyStr
    inputs: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    requires_approval: bool = False

    @field_validator("inputs")
    @classmethod
    def _plain_inputs(cls, value: Any) -> Any:
        return check_json(value)


class ToDo(PlannedToDo):
    """One step of a plan, run by one executor once all of ``depends_on`` are done."""

    status: TodoStatus = "pending"
    output: Any = None
    error: str | None = None
    # The tool this step runs and its arguments; None: a free-form step of its executor.
    tool: ToolCall | None = None

    @field_validator("output")
    @classmethod
    def _plain_output(cls, value: Any) -> Any:
        return check_json(value)

    @model_serializer(mode="wrap")
    def _without_unset_tool(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A step without a tool dumps as it did before tools existed (old plans, checkpoints).
        data: dict[str, Any] = handler(self)
        if data.get("tool") is None:
            data.pop("tool", None)
        return data


class Plan(BaseModel):
    """A goal and the ToDos that reach it."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)

    goal: str
    todos: list[ToDo] = Field(default_factory=list)

    def todo(self, todo_id: str) -> ToDo:
        """The ToDo with this id (the first one, if ids repeat); KeyError if there is none."""
        for todo in self.todos:
            if todo.id == todo_id:
                return todo
        raise KeyError(todo_id)

    def by_id(self) -> dict[str, ToDo]:
        """ToDos by id (the first one wins if ids repeat: see ``lam.dag.validate_plan``)."""
        index: dict[str, ToDo] = {}
        for todo in self.todos:
            index.setdefault(todo.id, todo)
        return index

    @property
    def ids(self) -> list[str]:
        """ToDo ids in plan order."""
        return [todo.id for todo in self.todos]
