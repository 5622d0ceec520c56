"""A registry's plan templates: lam's ToDo as a plan states it, plus the effect of each step.

A template step is :class:`lam.plan.PlannedToDo` (the fields of a ToDo before it runs)
with its ``effect``, so the shape of a ToDo is written once, in ``lam/plan.py``. A ``read``
template's steps must declare that they only look. A template is checked as the plan it
will be (:func:`lam.dag.validate_plan`: ids, dependencies, no cycle, and the executors a run
has, given in the validation context as ``{"executors": names}``; None: not checked).
"""

from __future__ import annotations

import re
from typing import Any, Literal, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails

from graph.intents.registry_values import (
    LanguageCode,
    StepEffect,
    Strict,
    Text,
    error_at,
    one_line,
    problem,
    raise_all,
)
from graph.intents.spec import TemplateSpec
from lam.dag import PlanProblem, validate_plan
from lam.plan import Plan, PlannedToDo
from lam.tools import ToolCall

__all__ = ["PlanTemplate", "ReadPlanTemplate", "ReadToDo", "TemplateToDo", "Templates"]

_PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_.-]+)\}")


class TemplateToDo(PlannedToDo):
    """A step of a plan template: lam's ToDo as a plan states it, and the effect it has."""

    # The tool this step runs and its arguments; its effect then comes from the catalogue.
    tool: ToolCall | None = None
    effect: StepEffect | None = Field(
        None,
        description="What the step does to the world: none, read, or what it changes "
        "(change, send, book, buy, delete, ...); a step that changes anything needs approval.",
    )

    @field_validator("title")
    @classmethod
    def _title_one_line(cls, title: str) -> str:
        one_line(title)
        return title

    @model_validator(mode="after")
    def _template_text(self) -> Self:
        """The no-LLM ``template`` executor fills ``{request}`` and ``{<dependency id>}``;
        anything else would reach the person unfilled."""
        if self.executor != "template":
            return self
        text = self.inputs.get("text")
        if not isinstance(text, str):
            raise problem("a 'template' ToDo needs inputs.text (a string)")
        known = {"request", *self.depends_on}
        raise_all(
            [
                error_at(
                    ("inputs",),
                    self.inputs,
                    f"inputs.text uses {{{name}}}, which is neither {{request}} "
                    "nor one of its depends_on",
                )
                for name in sorted(set(_PLACEHOLDER.findall(text)) - known)
            ]
        )
        return self


class ReadToDo(TemplateToDo):
    """A step of a read template: it may only look."""

    effect: Literal["read", "none"] = Field(
        description="A read template's step may only read: read or none."
    )


# Which key of a ToDo each problem of lam.dag.validate_plan is about.
_PROBLEM_KEY = {
    "unknown_dependency": "depends_on",
    "self_dependency": "depends_on",
    "unknown_executor": "executor",
    "duplicate_id": "id",
}


class PlanTemplate(Strict):
    """A plan made without an LLM when an intent is decided; {request} is the request."""

    goal: Text
    todos: list[TemplateToDo] = Field(min_length=1)

    @model_validator(mode="after")
    def _is_a_plan(self, info: ValidationInfo) -> Self:
        """Ids, dependencies, no cycle, and executors the run has (when known)."""
        executors = (info.context or {}).get("executors")
        plan = Plan.model_validate(self.plan())
        found = [self._where(p) for p in validate_plan(plan, executors=executors)]
        raise_all(found)
        return self

    def _where(self, found: PlanProblem) -> InitErrorDetails:
        indexes = [i for i, todo in enumerate(self.todos) if todo.id == found.todo_id]
        if found.code == "duplicate_id":
            indexes = indexes[1:]  # the id given again, not the first use
        if not indexes:
            return error_at((), None, found.message)
        if found.code == "cycle":
            return error_at(("todos", indexes[0]), found.todo_id, found.message)  # the ToDo's line
        key = _PROBLEM_KEY.get(found.code, "id")
        return error_at(("todos", indexes[0], key), found.todo_id, found.message)

    def plan(self) -> dict[str, Any]:
        """The template as a Plan's dict, as written (no defaults added, no effects)."""
        return self.model_dump(exclude_unset=True, exclude={"todos": {"__all__": {"effect"}}})

    def to_spec(self) -> TemplateSpec:
        effects: dict[str, str] = {}
        for todo in self.todos:
            if todo.effect is not None:
                effects.setdefault(todo.id, todo.effect)
        return TemplateSpec(self.plan(), effects)


class ReadPlanTemplate(PlanTemplate):
    """A template for a request that only asks to look: every step reads, or does nothing."""

    # a narrower list of steps (pydantic validates it as such; mypy sees list invariance)
    todos: list[ReadToDo] = Field(min_length=1)  # type: ignore[assignment]


class Templates(Strict):
    """Plan templates per variant and language (en, de, ...)."""

    act: dict[LanguageCode, PlanTemplate] = Field(
        default_factory=dict, description="Does what was asked."
    )
    read: dict[LanguageCode, ReadPlanTemplate] = Field(
        default_factory=dict,
        description="Serves a request that only asks to look; every step's effect is read "
        "or none. {query} is what it looks up.",
    )
