"""The plan as the LLM writes it, as a person reads it, and as the planner proposes it.

The planner model does not write a `Plan`: it writes numbered steps, a form with little room
for error, which we turn into one. Its JSON Schema is what a grammar-constrained server
(llama.cpp, Ollama, OpenAI's structured outputs) holds the answer to:

    {"goal": "...", "steps": [{"title": "...", "description": "...", "executor": "llm",
                               "after": [1], "inputs": [{"name": "url", "value": "..."}],
                               "requires_approval": false}]}

- a step is known by its position (1, 2, ...); `after` lists the steps it needs, by number,
  and we make the ids (`t1`, `t2`, ...) and `depends_on` from that. No id to invent, to
  mistype or to repeat; a step that names itself is read as not naming itself;
- `executor` is one of the registry's names (an enum), nothing else;
- strings are non-empty where a ToDo needs them, and bounded; so are the lists;
- `inputs` are name/value pairs of bounded strings (a value written as a JSON object or
  list is read as one): an open object would let a model nest and ramble until the limit.

`plan_draft_model` builds that schema for one executor registry and plan size.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, ConfigDict, Field, create_model

from graph import lamlog
from graph.approval import declared_record
from graph.effects import Effect
from graph.executors import ExecutorRegistry
from graph.state import PlannerState
from graph.telemetry import trace_metadata
from lam import Plan, ToDo

GOAL_MAX = 160
TITLE_MAX = 60
DESCRIPTION_MAX = 240
INPUT_NAME_MAX = 40
INPUT_VALUE_MAX = 200
INPUTS_MAX = 4
#: At most this many steps in one LLM-written plan (fewer if `max_todos` says so).
STEPS_MAX = 8


class InputDraft(BaseModel):
    """One of a step's inputs: a name and its value, as text."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    name: str = Field(min_length=1, max_length=INPUT_NAME_MAX)
    value: str = Field(max_length=INPUT_VALUE_MAX)

    def parsed(self) -> Any:
        """The value; one written as a JSON object or list is that object or list."""
        if self.value[:1] in ("{", "["):
            try:
                return json.loads(self.value)
            except json.JSONDecodeError:
                pass
        return self.value


class StepDraft(BaseModel):
    """One step of a plan as the planner model writes it."""

    # Whitespace-only strings count as empty; keys the schema does not know are dropped.
    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    title: str = Field(min_length=1, max_length=TITLE_MAX, description="a few words")
    description: str = Field(max_length=DESCRIPTION_MAX, description="what exactly to do")
    executor: str = Field(min_length=1, description="the executor that does it")
    after: list[int] = Field(
        description="the numbers of the earlier steps whose results this step needs"
    )
    inputs: list[InputDraft] = Field(
        default_factory=list, max_length=INPUTS_MAX, description="the executor's inputs"
    )
    requires_approval: bool = Field(False, description="true if a person must approve it")


class PlanDraft(BaseModel):
    """A plan as the planner model writes it."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    goal: str = Field(min_length=1, max_length=GOAL_MAX, description="the plan's aim, briefly")
    steps: list[StepDraft] = Field(min_length=1)

    def to_plan(self) -> Plan:
        """The plan: ToDo `tN` is step N; `after` numbers become `depends_on` ids."""
        ids = [f"t{n}" for n in range(1, len(self.steps) + 1)]
        return Plan(goal=self.goal, todos=_todos(self.steps, ids, ids))


class RemainingSteps(BaseModel):
    """The steps a replanning round adds (none: the goal cannot be reached another way)."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")

    steps: list[StepDraft] = Field(default_factory=list)

    def to_todos(self, done: Sequence[ToDo], taken: Collection[str]) -> list[ToDo]:
        """New ToDos after the `done` ones (steps 1..k); their ids avoid every id in `taken`."""
        fresh = _fresh_ids(len(self.steps), taken)
        return _todos(self.steps, [t.id for t in done] + fresh, fresh)


def _fresh_ids(count: int, taken: Collection[str]) -> list[str]:
    ids: list[str] = []
    n = 0
    while len(ids) < count:
        n += 1
        if f"t{n}" not in taken:
            ids.append(f"t{n}")
    return ids


def _todos(steps: Sequence[StepDraft], numbered: list[str], own: list[str]) -> list[ToDo]:
    """ToDos for `steps` with ids `own`; step numbers in `after` index `numbered` (from 1)."""
    todos = []
    for step, todo_id in zip(steps, own, strict=True):
        depends_on: list[str] = []
        for number in step.after:
            # A number past the end stays visible as a dependency nobody has (`check`
            # names it); one that names the step itself means nothing and is dropped.
            dep = numbered[number - 1] if 1 <= number <= len(numbered) else f"step-{number}"
            if dep != todo_id and dep not in depends_on:
                depends_on.append(dep)
        todos.append(
            ToDo(
                id=todo_id,
                title=step.title,
                description=step.description,
                executor=step.executor,
                inputs={item.name: item.parsed() for item in step.inputs},
                depends_on=depends_on,
                requires_approval=step.requires_approval,
            )
        )
    return todos


@functools.lru_cache(maxsize=64)
def _step_model(executors: tuple[str, ...], max_steps: int) -> type[StepDraft]:
    executor: Any = Literal[executors] if executors else str
    number = Annotated[int, Field(ge=1, le=max_steps)]
    return create_model(
        "Step",
        __base__=StepDraft,
        executor=(executor, Field(description="the executor that does it")),
        after=(
            list[number],
            Field(
                max_length=max(max_steps - 1, 0),
                description="the numbers of the earlier steps whose results this step needs",
            ),
        ),
    )


@functools.lru_cache(maxsize=64)
def plan_draft_model(executors: tuple[str, ...], max_steps: int) -> type[PlanDraft]:
    """`PlanDraft` whose executors are `executors` and with at most `max_steps` steps."""
    step = _step_model(executors, max_steps)
    return create_model(
        "PlanDraft",
        __base__=PlanDraft,
        __doc__=PlanDraft.__doc__,
        steps=(list[step], Field(min_length=1, max_length=max_steps)),  # type: ignore[valid-type]
    )


@functools.lru_cache(maxsize=64)
def remaining_steps_model(executors: tuple[str, ...], max_steps: int) -> type[RemainingSteps]:
    """`RemainingSteps` for these executors; numbers count the done steps first."""
    step = _step_model(executors, max_steps)
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

    steps = [
        {
            "title": t.title,
            "description": t.description,
            "executor": t.executor,
            "after": [n for n in map(number, t.depends_on) if n is not None],
            "inputs": [
                {"name": k, "value": v if isinstance(v, str) else json.dumps(v)}
                for k, v in t.inputs.items()
            ],
            "requires_approval": t.requires_approval,
        }
        for t in plan.todos
    ]
    return json.dumps({"goal": plan.goal, "steps": steps}, ensure_ascii=False, default=str)


def current_plan(state: PlannerState) -> Plan:
    """The turn's plan, for a step that runs only once there is one (already validated)."""
    plan = state.get("plan")
    if plan is None:
        raise RuntimeError("no plan in the state")
    return plan


def executors_listing(registry: ExecutorRegistry) -> str:
    return "\n".join(f"- {name}: {text}" for name, text in registry.describe().items())


def plan_text(plan: Plan) -> str:
    """The plan in a few lines of plain text (chat view, CLI, LLM prompts)."""
    lines = [f"Plan: {plan.goal}"]
    for todo in plan.todos:
        after = f" (after {', '.join(todo.depends_on)})" if todo.depends_on else ""
        flag = " [needs approval]" if todo.requires_approval else ""
        status = "" if todo.status == "pending" else f" — {todo.status}"
        lines.append(f"{todo.id}. {todo.title} [{todo.executor}]{after}{flag}{status}")
    return "\n".join(lines)


def sentences(items: Iterable[str]) -> str:
    """Problems as one line: "a; b; c." (each item's own full stop dropped, one at the end)."""
    parts = [item.strip().rstrip(".").strip() for item in items]
    parts = [part for part in parts if part]
    return "; ".join(parts) + "." if parts else ""


def proposal(
    state: PlannerState,
    config: RunnableConfig,
    plan: Plan,
    *purpose: object,
    declared: Mapping[str, Effect] | None = None,
) -> dict[str, Any]:
    """The state update that proposes `plan` to the requester (`purpose` keys its message id).

    `declared`: the effects a trusted template declared for its steps, kept with the
    proposal's id (`plan_effects`) so that `approve` can check the plan again by them.
    """
    cid = lamlog.conversation_id(state, config)
    propose = lamlog.planner(state, config).propose(
        lamlog.requester(state),
        plan,
        message_id=lamlog.stable_id(cid, "propose", lamlog.current_request(state)["id"], *purpose),
        metadata=trace_metadata(),  # whoever approves can continue the trace
    )
    return {
        "plan": plan,
        "plan_problems": [],
        "rejected_answer": None,
        "plan_effects": declared_record(propose.id, declared or {}),
        "lam": [propose.to_dict()],
        "messages": [AIMessage(plan_text(plan))],
    }
