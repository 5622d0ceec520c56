"""Read-only views for a person watching conversations (the web console, `api.console`).

Two endpoints, computed from what the replica already gives (`Tenants.list_conversations`,
`Views.view`, `Views.inbox`) and from the services' registries; nothing here writes:

    GET /v1/overview                          the tenant's newest conversations, each with its
                                              status, intent, request and what it waits for
    GET /v1/conversations/{id}/effects        each ToDo of the plan: its effect on the world,
                                              who declared it, whether it needs approval

Why a ToDo needs approval is not in the LAM log (a `propose` carries the flags only): the
effect comes from the tool the step runs (the tenant's catalogue as it is now), or from what
the plan template declared for this very proposal (the state's `plan_effects`), else from
the executor, else the default of `graph.approval` (a step nobody vouched for changes
something).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from api.auth import TenantDep
from api.dependencies import ConversationId, ReplicaDep
from api.errors import error_responses
from api.local_mode import local_only
from api.models import Status
from api.replica import Replica
from graph.approval import step_effect
from graph.conversations import ConversationNotFoundError
from graph.effects import Effect
from graph.executor_registry import ExecutorRegistry
from graph.tools.catalogue import Catalogue
from lam import LAMMessage, Performative, Plan, ToDo
from lam.log import LamLog

# Like every route: without API keys, only this machine's programs (`api.local_mode`).
router = APIRouter(tags=["overview"], dependencies=[Depends(local_only)])

DEFAULT_ROWS = 50
MAX_ROWS = 500


class WaitingFor(BaseModel):
    """A message that waits for an answer (the inbox's entries, in short)."""

    message_id: str
    performative: Literal["propose", "assign"]
    receiver: str = Field(description="who is to answer: `user`, `cpa-desktop`, ...")
    todo_id: str | None = Field(description="the assigned ToDo; null for a `propose`")
    title: str = Field(description="the ToDo's title, or the proposed plan's goal")


class ConversationOverview(BaseModel):
    conversation_id: str
    created: float = Field(description="when it was opened, seconds since the epoch")
    updated: str | None = Field(description="the timestamp of its latest LAM message")
    status: Status
    intent: str | None
    request: str | None = Field(description="the text of its latest `request`")
    refused: bool = Field(
        False, description="done because the person refused the plan: nothing of it ran"
    )
    waiting_for: list[WaitingFor] = Field(description="empty unless the status is `waiting`")


class Overview(BaseModel):
    conversations: list[ConversationOverview]


DeclaredBy = Literal["tool", "template", "executor", "assumed"]


class StepEffect(BaseModel):
    todo_id: str
    title: str
    executor: str
    tool: str | None = Field(None, description="the tool the step runs, if it runs one")
    effect: Effect = Field(description="what the step does to the world (`graph.effects`)")
    declared_by: DeclaredBy = Field(
        description="`tool`: the catalogue's entry of the tool it runs; `template`: the plan "
        "template's `effect:`; `executor`: the executor declares it; `assumed`: nobody did "
        "(or its tool is no longer in the catalogue), so it is taken to change something"
    )
    requires_approval: bool = Field(description="the plan's flag: the person's `agree` first")


class PlanEffects(BaseModel):
    conversation_id: str
    todos: list[StepEffect] = Field(description="in plan order; empty while there is no plan")


# Computing them ------------------------------------------------------------------------


def waiting_for(inbox: list[dict[str, Any]]) -> list[WaitingFor]:
    """The inbox's messages in short (a `propose` or an `assign` each)."""
    rows = []
    for message in map(LAMMessage.from_dict, inbox):
        if message.performative is Performative.ASSIGN:
            todo = message.todo()
            todo_id, title = todo.id, todo.title
        else:
            todo_id, title = None, message.plan().goal
        rows.append(
            WaitingFor(
                message_id=message.id,
                performative=message.performative.value,
                receiver=message.receiver,
                todo_id=todo_id,
                title=title,
            )
        )
    return rows


async def conversation_overview(
    replica: Replica, tenant: str, cid: str, created: float
) -> ConversationOverview | None:
    """One row of the overview; None for a conversation gone meanwhile (expired)."""
    try:
        view = await replica.views.view(tenant, cid)
        inbox = await replica.views.inbox(tenant, cid, None) if view["status"] == "waiting" else []
    except ConversationNotFoundError:
        return None
    messages = view["messages"]
    turn = LamLog.of_current_turn(messages).current
    return ConversationOverview(
        conversation_id=cid,
        created=created,
        updated=messages[-1]["timestamp"] if messages else None,
        status=view["status"],
        intent=view["intent"],
        request=turn.text if turn is not None else None,
        refused="refused" in (view.get("result") or {}),
        waiting_for=waiting_for(inbox),
    )


def _executor_declares(todo: ToDo, executors: ExecutorRegistry) -> bool:
    if todo.executor not in executors:
        return False
    executor = executors.get(todo.executor)
    per_step = getattr(executor, "effect_for", None)
    if callable(per_step):
        return per_step(todo) is not None
    return getattr(executor, "effect", None) is not None


def _declared_by(
    todo: ToDo, own: Effect | None, executors: ExecutorRegistry, catalogue: Catalogue
) -> DeclaredBy:
    if todo.tool is not None:
        return "tool" if catalogue.tool(todo.tool.name) is not None else "assumed"
    if own is not None:
        return "template"
    return "executor" if _executor_declares(todo, executors) else "assumed"


def plan_effects(
    plan: Plan, declared: dict[str, Effect], executors: ExecutorRegistry, catalogue: Catalogue
) -> list[StepEffect]:
    """Each ToDo's effect and who declared it, the way `graph.approval` decides it."""
    rows = []
    for todo in plan.todos:
        own = declared.get(todo.id)
        rows.append(
            StepEffect(
                todo_id=todo.id,
                title=todo.title,
                executor=todo.executor,
                tool=todo.tool.name if todo.tool is not None else None,
                effect=step_effect(todo, executors, own, catalogue),
                declared_by=_declared_by(todo, own, executors, catalogue),
                requires_approval=todo.requires_approval,
            )
        )
    return rows


# Endpoints -----------------------------------------------------------------------------


@router.get(
    "/v1/overview",
    response_model=Overview,
    responses=error_responses(401, 503),
)
async def overview(
    replica: ReplicaDep,
    tenant: TenantDep,
    status: Annotated[
        list[Status] | None,
        Query(description="only conversations with one of these statuses (repeatable)"),
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_ROWS, description="how many of the newest conversations")
    ] = DEFAULT_ROWS,
) -> Overview:
    """Your `limit` newest conversations, newest first, each with its status, intent, latest
    request and what it waits for; with `status`, only those of them in one of these."""
    listed = await replica.tenants.list_conversations(tenant, limit)
    rows = await asyncio.gather(
        *(
            conversation_overview(replica, tenant, c["conversation_id"], c["created"])
            for c in listed
        )
    )
    wanted = set(status or ())
    return Overview(
        conversations=[r for r in rows if r is not None and (not wanted or r.status in wanted)]
    )


@router.get(
    "/v1/conversations/{conversation_id}/effects",
    response_model=PlanEffects,
    responses=error_responses(401, 404, 503),
)
async def effects(
    conversation_id: ConversationId, replica: ReplicaDep, tenant: TenantDep
) -> PlanEffects:
    """Each ToDo of the current plan: its effect, who declared it, and its approval flag."""
    await replica.tenants.check_owner(tenant, conversation_id)
    try:
        view = await replica.conversations.view(conversation_id, owner=tenant)
    except ConversationNotFoundError:
        # Accepted, first checkpoint not written yet: no plan so far.
        return PlanEffects(conversation_id=conversation_id, todos=[])
    if not view.plan:
        return PlanEffects(conversation_id=conversation_id, todos=[])
    plan = Plan.model_validate(view.plan)
    return PlanEffects(
        conversation_id=conversation_id,
        todos=plan_effects(
            plan,
            view.declared_effects,
            replica.services.executors,
            await replica.services.tools.catalogue(tenant),
        ),
    )
