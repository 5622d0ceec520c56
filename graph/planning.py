"""The plan as the LLM writes it, as a person reads it, and as the planner proposes it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field

from graph import lamlog
from graph.approval import declared_record
from graph.effects import Effect
from graph.executors import ExecutorRegistry
from graph.state import PlannerState
from graph.telemetry import trace_metadata
from lam import Plan, ToDo


class TodoDraft(BaseModel):
    """One ToDo as the planner model proposes it (status and results come later)."""

    id: str = Field(description="short unique id, e.g. t1")
    title: str = Field(description="a few words")
    description: str = Field("", description="what exactly to do")
    executor: str = Field(description="the executor's name")
    inputs: dict[str, Any] = Field(default_factory=dict, description="the executor's inputs")
    depends_on: list[str] = Field(default_factory=list, description="ids of ToDos needed first")
    requires_approval: bool = Field(False, description="true if a person must approve it")


class PlanDraft(BaseModel):
    """A plan as the planner model proposes it."""

    goal: str = Field(description="what the plan achieves, in one sentence")
    todos: list[TodoDraft]

    def to_plan(self) -> Plan:
        return Plan(goal=self.goal, todos=[ToDo(**t.model_dump()) for t in self.todos])


class RemainingTodos(BaseModel):
    """The ToDos a replanning round adds."""

    todos: list[TodoDraft]


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
        "plan": plan.model_dump(mode="json"),
        "plan_problems": [],
        "plan_effects": declared_record(propose.id, declared or {}),
        "lam": [propose.to_dict()],
        "messages": [AIMessage(plan_text(plan))],
    }
