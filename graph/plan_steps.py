"""The plan as the LLM writes it: numbered steps, read into ToDos.

The planner model does not write a `Plan`: it writes numbered steps, a form with little room
for error, which we turn into one. Its JSON Schema, generated from the action catalogue the
call sees (`graph.tools`), is what a grammar-constrained server (llama.cpp, Ollama, OpenAI's
structured outputs) holds the answer to:

    {"goal": "...", "steps": [{"title": "...", "description": "...", "tool": "find_files",
                               "arguments": {"query": "tax"}, "after": [],
                               "requires_approval": false}]}

- a step is known by its position (1, 2, ...); `after` lists the steps it needs, by number,
  and we make the ids (`t1`, `t2`, ...) and `depends_on` from that. No id to invent, to
  mistype or to repeat; a step that names itself is read as not naming itself;
- `tool` is one of the catalogue's names: a tool (an agent's, an MCP server's, a file's) or
  an executor for a free-form step (`llm`, `desktop`, `human`, ...); nothing else;
- each name comes with its own `arguments` object, the tool's schema (bounded: strings have
  a length limit, arrays an item limit, objects no keys of their own), so grammar-constrained
  decoding cannot name an unknown tool or argument, nor leave out a required one;
- a top-level argument may instead be `{"$step": N}`: the output of step N, which the step
  then depends on (`ToDo.tool` holds `{"$step": "tN"}`, resolved when the step runs);
- strings are non-empty where a ToDo needs them, and bounded; so are the lists.

A step naming a tool becomes a ToDo with `tool` set, run by the tool's executor; a step
naming an executor becomes a free-form ToDo of it, its arguments its `inputs`.
`PlanDraft` reads the answer (leniently: the tools and their arguments are checked by
`check`, for the servers that do not hold an answer to the schema); `graph.plan_schema`
builds the schema for one catalogue and plan size, `graph.plan_text` the catalogue and the
plan as text, `graph.plan_proposal` the state update that proposes a plan.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Mapping, Sequence
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from graph.tools.catalogue import Catalogue
from lam import Plan, ToDo, ToolCall
from lam.tools import STEP_REFERENCE, step_reference

GOAL_MAX = 160
TITLE_MAX = 60
DESCRIPTION_MAX = 240
#: At most this many steps in one LLM-written plan (fewer if `max_todos` says so).
STEPS_MAX = 8


class StepDraft(BaseModel):
    """One step of a plan as the planner model writes it."""

    # Whitespace-only strings count as empty; keys the schema does not know are dropped.
    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    title: str = Field(min_length=1, max_length=TITLE_MAX, description="a few words")
    description: str = Field(max_length=DESCRIPTION_MAX, description="what exactly to do")
    tool: str = Field(min_length=1, description="the tool, or the executor, that does it")
    arguments: dict[str, Any] = Field(
        default_factory=dict, description="the tool's arguments; {\"$step\": N}: step N's output"
    )
    after: list[int] = Field(
        description="the numbers of the earlier steps whose results this step needs"
    )
    requires_approval: bool = Field(False, description="true if a person must approve it")


class PlanDraft(BaseModel):
    """A plan as the planner model writes it."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    goal: str = Field(min_length=1, max_length=GOAL_MAX, description="the plan's aim, briefly")
    steps: list[StepDraft] = Field(min_length=1)

    def to_plan(self, catalogue: Catalogue | None = None) -> Plan:
        """The plan: ToDo `tN` is step N; `after` numbers become `depends_on` ids."""
        ids = [f"t{n}" for n in range(1, len(self.steps) + 1)]
        return Plan(goal=self.goal, todos=_todos(self.steps, ids, ids, catalogue))


class RemainingSteps(BaseModel):
    """The steps a replanning round adds (none: the goal cannot be reached another way)."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    steps: list[StepDraft] = Field(default_factory=list)

    def to_todos(
        self, done: Sequence[ToDo], taken: Collection[str], catalogue: Catalogue | None = None
    ) -> list[ToDo]:
        """New ToDos after the `done` ones (steps 1..k); their ids avoid every id in `taken`."""
        fresh = _fresh_ids(len(self.steps), taken)
        return _todos(self.steps, [t.id for t in done] + fresh, fresh, catalogue)


def _fresh_ids(count: int, taken: Collection[str]) -> list[str]:
    ids: list[str] = []
    n = 0
    while len(ids) < count:
        n += 1
        if f"t{n}" not in taken:
            ids.append(f"t{n}")
    return ids


def _step_id(number: Any, numbered: list[str]) -> str:
    """The id of step `number` (1-based); a number past the end stays visible as a
    dependency nobody has, `step-N` (`check` names it)."""
    if isinstance(number, int) and not isinstance(number, bool) and 1 <= number <= len(numbered):
        return numbered[number - 1]
    return f"step-{number}"


def _with_ids(value: Any, numbered: list[str], found: list[str]) -> Any:
    """Arguments with each `{"$step": N}` turned into `{"$step": "tN"}` (ids into `found`)."""
    if isinstance(value, dict):
        if len(value) == 1 and STEP_REFERENCE in value:
            ref = _step_id(value[STEP_REFERENCE], numbered)
            found.append(ref)
            return {STEP_REFERENCE: ref}
        return {k: _with_ids(v, numbered, found) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_ids(v, numbered, found) for v in value]
    return value


def _todos(
    steps: Sequence[StepDraft],
    numbered: list[str],
    own: list[str],
    catalogue: Catalogue | None,
) -> list[ToDo]:
    """ToDos for `steps` with ids `own`; step numbers in `after` index `numbered` (from 1).

    A step's references to other steps' outputs are dependencies too. A step naming a tool
    of the catalogue runs on the tool's executor; any other name is taken as an executor's
    (`check` names the ones that are neither). A step that repeats an earlier one (the same
    tool, arguments and dependencies, once references to repeats are read as references to
    the step they repeat; for a free-form step also the same title and description) is
    left out: a small model repeats a step up to the step limit.
    What depended on it depends on the step it repeats; the ids of the others stay as
    they are (`tN` is step N as written, also when steps before it were left out).
    """
    todos: list[ToDo] = []
    same: dict[str, str] = {}  # the id of a step left out -> the step it repeats
    seen: dict[str, ToDo] = {}  # what a step does (tool, arguments, dependencies) -> it
    for step, todo_id in zip(steps, own, strict=True):
        referred: list[str] = []
        arguments = _repointed(_with_ids(step.arguments, numbered, referred), same)
        depends_on: list[str] = []
        for dep in [_step_id(n, numbered) for n in step.after] + referred:
            dep = same.get(dep, dep)
            # One that names the step itself means nothing and is dropped.
            if dep != todo_id and dep not in depends_on:
                depends_on.append(dep)
        entry = catalogue.tool(step.tool) if catalogue is not None else None
        # A free-form step's words are what it does; a tool call's are only its label.
        does = [step.tool, arguments, sorted(depends_on)]
        if entry is None:
            does += [step.title, step.description]
        key = json.dumps(does, sort_keys=True, default=str)
        if key in seen:
            kept = seen[key]
            same[todo_id] = kept.id
            if step.requires_approval and not kept.requires_approval:
                index = todos.index(kept)
                todos[index] = seen[key] = kept.model_copy(update={"requires_approval": True})
            continue
        common: dict[str, Any] = {
            "id": todo_id,
            "title": step.title,
            "description": step.description,
            "depends_on": depends_on,
            "requires_approval": step.requires_approval,
        }
        if entry is None:
            todo = ToDo(**common, executor=step.tool, inputs=arguments)
        else:
            tool = ToolCall(name=step.tool, arguments=arguments)
            todo = ToDo(**common, executor=entry.executor, tool=tool)
        todos.append(todo)
        seen[key] = todo
    return todos


def _repointed(value: Any, same: Mapping[str, str]) -> Any:
    """Arguments with each reference to a step left out pointing at the step it repeats."""
    ref = step_reference(value)
    if ref is not None:
        return {STEP_REFERENCE: same.get(ref, ref)}
    if isinstance(value, dict):
        return {k: _repointed(v, same) for k, v in value.items()}
    if isinstance(value, list):
        return [_repointed(v, same) for v in value]
    return value


def written_step(raw: Mapping[str, Any], number: int, max_steps: int, catalogue: Catalogue) -> ToDo:
    """Step `number` of a plan still being written, as its ToDo (`t<number>`), read like
    `PlanDraft.to_plan` reads it; `after` numbers up to `max_steps` are ids already.

    Raises pydantic's `ValidationError` for a step that is no step.
    """
    step = _step_model(max_steps).model_validate(raw)
    ids = [f"t{n}" for n in range(1, max_steps + 1)]
    return _todos([step], ids, [f"t{number}"], catalogue)[0]


@functools.lru_cache(maxsize=64)
def _step_model(highest: int) -> type[StepDraft]:
    number = Annotated[int, Field(ge=1, le=highest)]
    return create_model(
        "Step",
        __base__=StepDraft,
        after=(
            list[number],
            Field(
                max_length=max(highest - 1, 0),
                description="the numbers of the earlier steps whose results this step needs",
            ),
        ),
    )


@functools.lru_cache(maxsize=64)
def plan_draft_model(max_steps: int) -> type[PlanDraft]:
    """`PlanDraft` with at most `max_steps` steps (tools are checked by `check`)."""
    step = _step_model(max_steps)
    return create_model(
        "PlanDraft",
        __base__=PlanDraft,
        __doc__=PlanDraft.__doc__,
        steps=(list[step], Field(min_length=1, max_length=max_steps)),  # type: ignore[valid-type]
    )


@functools.lru_cache(maxsize=64)
def remaining_steps_model(highest: int, max_steps: int) -> type[RemainingSteps]:
    """`RemainingSteps`: at most `max_steps` steps numbered up to `highest` (done ones first)."""
    step = _step_model(highest)
    return create_model(
        "RemainingSteps",
        __base__=RemainingSteps,
        __doc__=RemainingSteps.__doc__,
        steps=(list[step], Field(default_factory=list, max_length=max_steps)),  # type: ignore[valid-type]
    )


def max_steps(max_todos: int) -> int:
    return max(1, min(STEPS_MAX, max_todos))


def draft_json(plan: Plan) -> str:
    """A plan in the form the planner model writes (steps by number), for a repair prompt."""
    position = {todo.id: n for n, todo in enumerate(plan.todos, 1)}

    def number(dep: str) -> int | None:
        if dep in position:
            return position[dep]
        tail = dep.rsplit("-", 1)[-1].lstrip("t")
        return int(tail) if tail.isdigit() else None

    def numbered(value: Any) -> Any:
        ref = step_reference(value)
        if ref is not None:
            return {STEP_REFERENCE: number(ref) or ref}
        if isinstance(value, dict):
            return {k: numbered(v) for k, v in value.items()}
        if isinstance(value, list):
            return [numbered(v) for v in value]
        return value

    steps = [
        {
            "title": t.title,
            "description": t.description,
            "tool": t.tool.name if t.tool is not None else t.executor,
            "arguments": numbered(t.tool.arguments if t.tool is not None else t.inputs),
            "after": [n for n in map(number, t.depends_on) if n is not None],
            "requires_approval": t.requires_approval,
        }
        for t in plan.todos
    ]
    return json.dumps({"goal": plan.goal, "steps": steps}, ensure_ascii=False, default=str)
