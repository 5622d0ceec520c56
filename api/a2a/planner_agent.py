"""The planner as an A2A agent: the SDK's request handler over our conversations.

The a2a-sdk's `DefaultRequestHandler` speaks the protocol (JSON-RPC methods, SSE framing,
the in-memory event fan-out while a request is served); two pieces of ours plug into it:

- `PlannerAgent` (the SDK's `AgentExecutor`): a message that opens a task opens a turn of
  the conversation (`Accepting.open`); a reply to an input-required task answers what waits for
  the user (`Accepting.answer`: the plan's `agree`/`refuse`). Either way it then follows the
  conversation and reports each new LAM message as a `working` status update, until the
  conversation waits for the user (input-required, the plan as a data part), is done
  (completed, the answer as an artifact) or failed.
- `ConversationTaskStore` (the SDK's `TaskStore`): a task is read from the conversation
  each time (`mapping.task_from`), so any process, after any restart, answers `tasks/get`
  for any task; what the SDK writes is not kept (the conversation is the record), except a
  cancel, which ends the waiting conversation.

`PlannerRequestHandler` checks a reply before the SDK starts work on it: a reply to a task
that waits for nothing, or that neither approves nor refuses the plan, is the client's
error, answered as a JSON-RPC error (the SDK logs an executor's exception with its
traceback, as a server error).

The tenant comes from the API key, as for the LAM API (`TenantContextBuilder`).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator
from typing import Any, cast

from a2a.server.agent_execution import (
    AgentExecutor,
    RequestContext,
    SimpleRequestContextBuilder,
)
from a2a.server.context import ServerCallContext
from a2a.server.events import EventQueue
from a2a.server.id_generator import IDGenerator, IDGeneratorContext
from a2a.server.jsonrpc_models import InternalError as RpcInternalError
from a2a.server.jsonrpc_models import JSONRPCError
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import DefaultServerCallContextBuilder
from a2a.server.routes.jsonrpc_dispatcher import JsonRpcDispatcher
from a2a.server.tasks import TaskStore, TaskUpdater
from a2a.types import (
    AgentCard,
    InternalError,
    InvalidParamsError,
    ListTasksRequest,
    ListTasksResponse,
    SendMessageRequest,
    Task,
    TaskNotCancelableError,
    TaskNotFoundError,
    TaskState,
    UnsupportedOperationError,
)
from a2a.utils.errors import A2AError
from starlette.requests import Request

from api.a2a import mapping
from api.errors import ApiError
from api.principals import Principal, authorize
from api.replica import Replica
from graph.conversations import ConversationNotFoundError, thread_id
from graph.state import LamDict
from lam import LAMValidationError, Performative
from lam.log import LamLog

TENANT_STATE = "cpa_tenant"
PRINCIPAL_STATE = "cpa_principal"
# How often a followed conversation is looked at: while it runs, and while it waits for
# another agent (the desktop, an A2A agent), which may take hours.
RUNNING_POLL_S = 0.2
WAITING_POLL_S = 1.0
# An input-required task's in-memory part is dropped after this long; a reply rebuilds it.
IDLE_RELEASE_S = 300.0


class TenantContextBuilder(DefaultServerCallContextBuilder):
    """The SDK's call context (headers: the protocol version), with the request's tenant,
    as the route authenticated it."""

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        context.state[TENANT_STATE] = request.state.cpa_tenant
        context.state[PRINCIPAL_STATE] = request.state.cpa_principal
        return context


def tenant_of(context: ServerCallContext | None) -> str:
    if context is None or TENANT_STATE not in context.state:
        raise RuntimeError("an A2A call without a tenant: it did not come through our route")
    return str(context.state[TENANT_STATE])


def principal_of(context: ServerCallContext | None) -> Principal:
    if context is None or PRINCIPAL_STATE not in context.state:
        raise RuntimeError("an A2A call without a principal: it did not come through our route")
    return cast(Principal, context.state[PRINCIPAL_STATE])


def _a2a_error(exc: ApiError) -> A2AError:
    """Our API's refusal as the JSON-RPC error an A2A client understands."""
    text = f"{exc.code}: {exc.message}"
    if exc.status == 404:
        return TaskNotFoundError(message=text)
    if exc.status in (409, 429):
        return UnsupportedOperationError(message=text)
    return InvalidParamsError(message=text)


class ConversationTaskStore(TaskStore):
    """Tasks read from the conversations of the caller's tenant (see the module docstring)."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica

    async def get(self, task_id: str, context: ServerCallContext) -> Task | None:
        tenant = tenant_of(context)
        cid = mapping.conversation_of(task_id)
        if cid is None:
            return None
        try:
            view = await self.replica.views.view(tenant, cid)
        except (ConversationNotFoundError, ApiError):
            return None
        waiting = await self._waiting_for_user(tenant, cid, view, task_id)
        return mapping.task_from(view, waiting, task_id)

    async def _waiting_for_user(
        self, tenant: str, cid: str, view: dict[str, Any], task_id: str
    ) -> list[LamDict]:
        """What waits for the person who opened the task."""
        if view.get("status") != "waiting":
            return []
        user = mapping.requester(view["messages"], task_id)
        with contextlib.suppress(ConversationNotFoundError):
            return await self.replica.views.inbox(tenant, cid, user)
        return []

    async def save(self, task: Task, context: ServerCallContext) -> None:
        # The conversation is the record; only a cancel changes it (a task cancelled while
        # no request of this process serves it, e.g. after a restart). The SDK saves the
        # cancelled task after `PlannerAgent.cancel` ended the conversation: nothing to do.
        if task.status.state == TaskState.TASK_STATE_CANCELED:
            await cancel_conversation(
                self.replica, tenant_of(context), task.context_id, again_is_fine=True
            )

    async def list(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        """The latest turn of each of the tenant's conversations (or of `context_id`'s)."""
        tenant = tenant_of(context)
        limit = params.page_size or 50
        if params.context_id:
            cids = [params.context_id]
        else:
            rows = await self.replica.tenants.list_conversations(tenant, limit)
            cids = [str(r["conversation_id"]) for r in rows]
        tasks = []
        for cid in cids:
            try:
                view = await self.replica.views.view(tenant, cid)
            except (ConversationNotFoundError, ApiError):
                continue
            task_ids = [
                turn.request.metadata[mapping.TASK_ID_KEY]
                for turn in LamLog(view["messages"]).turns
                if mapping.TASK_ID_KEY in turn.request.metadata
            ]
            if task_ids:
                waiting = await self._waiting_for_user(tenant, cid, view, task_ids[-1])
                task = mapping.task_from(view, waiting, task_ids[-1])
                if task is not None:
                    tasks.append(task)
        return ListTasksResponse(tasks=tasks[:limit], page_size=limit, total_size=len(tasks))

    async def delete(self, task_id: str, context: ServerCallContext) -> None:
        """Nothing to delete: a finished conversation expires with its TTL."""


async def cancel_conversation(
    replica: Replica, tenant: str, cid: str, *, again_is_fine: bool = False
) -> None:
    """End a waiting conversation as failed, code `canceled`; refuse one that runs.

    A running turn cannot be stopped from outside its run; it can be cancelled as soon as it
    waits (for the user, the desktop or another agent). `again_is_fine`: a conversation
    cancelled already is no error.
    """
    try:
        view = await replica.views.view(tenant, cid)
    except ConversationNotFoundError:
        raise TaskNotFoundError(message=f"no conversation {cid}") from None
    if again_is_fine and ((view.get("result") or {}).get("error") or {}).get("code") == (
        mapping.CANCELED
    ):
        return
    if view["status"] in ("done", "failed"):
        raise TaskNotCancelableError(message=f"conversation {cid} has ended ({view['status']})")
    if view["status"] != "waiting":
        raise TaskNotCancelableError(
            message=f"conversation {cid} is running; it can be cancelled once it waits"
        )
    reason = "cancelled by the A2A client (tasks/cancel)"
    if not await replica.expiry.end_waiting(thread_id(cid, tenant), mapping.CANCELED, reason):
        raise TaskNotCancelableError(message=f"conversation {cid} no longer waits")


class PlannerAgent(AgentExecutor):
    """Opens and answers conversations, and follows them (see the module docstring)."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        tenant = tenant_of(context.call_context)
        principal = principal_of(context.call_context)
        task_id, cid = str(context.task_id), str(context.context_id)
        if context.message is None:
            raise InvalidParamsError(message="message/send needs a message")
        current = context.current_task
        try:
            if current is None:
                if mapping.conversation_of(task_id) != cid:
                    raise InvalidParamsError(
                        message=f"task {task_id} does not exist; leave taskId out to start one"
                    )
                sender = principal.sender(mapping.A2A_USER)
                request = mapping.request_from(context.message, cid, task_id, sender)
                request = authorize(principal, request, keep=(mapping.TASK_ID_KEY,))
                await self.replica.accepting.open(tenant, request)
                seen: set[str] = set()
            else:
                await self._reply(principal, cid, current, context)
                seen = {m.message_id for m in current.history}
        except (mapping.ReplyNotUnderstoodError, LAMValidationError) as exc:
            raise InvalidParamsError(message=str(exc)) from None
        except ApiError as exc:
            raise _a2a_error(exc) from None
        await self._follow(tenant, cid, task_id, TaskUpdater(event_queue, task_id, cid), seen)

    async def _reply(
        self, principal: Principal, cid: str, current: Task, context: RequestContext
    ) -> None:
        if current.status.state != TaskState.TASK_STATE_INPUT_REQUIRED:
            state = TaskState.Name(current.status.state)
            raise UnsupportedOperationError(
                message=f"task {current.id} is {state}: nothing waits for a reply"
            )
        tenant = principal.tenant
        view = await self.replica.views.view(tenant, cid)
        user = mapping.requester(view["messages"], current.id)
        waiting = await self.replica.views.inbox(tenant, cid, user)
        if not waiting:
            raise UnsupportedOperationError(message=f"task {current.id}: nothing waits any more")
        assert context.message is not None
        sender = principal.sender(mapping.A2A_USER)
        answer = authorize(principal, mapping.answer_to(waiting[0], context.message, sender))
        await self.replica.accepting.answer(tenant, answer, principal)

    async def _follow(
        self, tenant: str, cid: str, task_id: str, updater: TaskUpdater, seen: set[str]
    ) -> None:
        """Report the turn's new messages until it waits for the user or has ended."""
        while True:
            view = await self.replica.views.view(tenant, cid)
            turn = LamLog(view["messages"]).turn_of(mapping.TASK_ID_KEY, task_id)
            messages = turn.messages if turn is not None else []
            language = mapping.turn_language(turn) if turn is not None else "en"
            for message in messages:
                if message.id in seen or message.performative is Performative.REQUEST:
                    continue
                seen.add(message.id)
                if turn is not None and message is turn.answer:
                    continue  # the final status carries it
                await updater.update_status(
                    TaskState.TASK_STATE_WORKING, mapping.a2a_message(message, task_id, language)
                )
            status = view["status"]
            if status in ("done", "failed") or status == "waiting":
                user = mapping.requester(view["messages"], task_id)
                task = mapping.task_from(
                    view,
                    await self.replica.views.inbox(tenant, cid, user)
                    if status == "waiting"
                    else [],
                    task_id,
                )
                if task is not None and task.status.state == TaskState.TASK_STATE_WORKING:
                    # Waiting for another agent (the desktop, an A2A agent), which may take
                    # hours: the call returns now, the task working; `tasks/get` follows it.
                    return
                if task is not None and task.status.state != TaskState.TASK_STATE_WORKING:
                    for artifact in task.artifacts:
                        await updater.add_artifact(
                            list(artifact.parts), artifact.artifact_id, artifact.name
                        )
                    said = task.status.message if task.status.HasField("message") else None
                    await updater.update_status(task.status.state, said)
                    return
            await asyncio.sleep(WAITING_POLL_S if status == "waiting" else RUNNING_POLL_S)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        tenant = tenant_of(context.call_context)
        cid = str(context.context_id)
        await cancel_conversation(self.replica, tenant, cid)
        await TaskUpdater(event_queue, str(context.task_id), cid).cancel()


class PlannerRequestHandler(DefaultRequestHandler):
    """The SDK's request handler; a reply to a task is checked before work starts on it."""

    def __init__(self, replica: Replica, store: ConversationTaskStore, **kwargs: Any) -> None:
        super().__init__(task_store=store, **kwargs)
        self.replica = replica
        self.store = store

    async def on_message_send(self, params: SendMessageRequest, context: ServerCallContext) -> Any:
        await self._check_reply(params, context)
        return await super().on_message_send(params, context)

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Any, None]:
        await self._check_reply(params, context)
        async for event in super().on_message_send_stream(params, context):
            yield event

    async def _check_reply(self, params: SendMessageRequest, context: ServerCallContext) -> None:
        """Raise the JSON-RPC error for a reply that cannot answer its task (see the module)."""
        task_id = params.message.task_id
        if not task_id:
            return  # a new task
        task = await self.store.get(task_id, context)
        if task is None:
            return  # the SDK says "task not found"
        if task.status.state != TaskState.TASK_STATE_INPUT_REQUIRED:
            state = TaskState.Name(task.status.state)
            raise UnsupportedOperationError(
                message=f"task {task_id} is {state}: nothing waits for a reply"
            )
        cid = task.context_id
        tenant = tenant_of(context)
        view = await self.replica.views.view(tenant, cid)
        waiting = await self.replica.views.inbox(
            tenant, cid, mapping.requester(view["messages"], task_id)
        )
        if waiting:
            try:
                mapping.answer_to(waiting[0], params.message)
            except (mapping.ReplyNotUnderstoodError, LAMValidationError) as exc:
                raise InvalidParamsError(message=str(exc)) from None


class TaskIds(IDGenerator):
    """A new task's id: `<conversation id>/<suffix>` (`mapping.new_task_id`)."""

    def generate(self, context: IDGeneratorContext) -> str:
        return mapping.new_task_id(context.context_id or str(uuid.uuid4()))


class ConversationIds(IDGenerator):
    """A new context's id: the conversation its task id names (a new one: made for it)."""

    def generate(self, context: IDGeneratorContext) -> str:
        return mapping.conversation_of(context.task_id or "") or str(uuid.uuid4())


def without_insides(error: Any) -> Any:
    """An internal error as the client may see it: no exception text (a Redis outage's host
    and port); the server log has it (the SDK logs the exception)."""
    if isinstance(error, InternalError | RpcInternalError) or not isinstance(
        error, A2AError | JSONRPCError
    ):
        return RpcInternalError(message="internal error; the server log has details")
    return error


class Dispatcher(JsonRpcDispatcher):
    """The SDK's dispatcher, whose internal errors say nothing of the server's insides (the
    SDK puts an unexpected exception's text into the JSON-RPC error), for the A2A 1.0
    methods and, through its adapter, the 0.3 ones."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        adapter = getattr(self, "_v03_adapter", None)
        if adapter is not None:
            answer = adapter._generate_error_response
            adapter._generate_error_response = lambda request_id, error: answer(
                request_id, without_insides(error)
            )

    def _generate_error_response(self, request_id: Any, error: Any) -> Any:
        return super()._generate_error_response(request_id, without_insides(error))


class A2AServer:
    """The pieces that serve A2A for one replica: handler, store, JSON-RPC dispatcher."""

    def __init__(self, replica: Replica, card: AgentCard) -> None:
        self.replica = replica
        self.store = ConversationTaskStore(replica)
        self.handler = PlannerRequestHandler(
            replica,
            self.store,
            agent_executor=PlannerAgent(replica),
            agent_card=card,
            request_context_builder=SimpleRequestContextBuilder(
                should_populate_referred_tasks=False,
                task_store=None,
                task_id_generator=TaskIds(),
                context_id_generator=ConversationIds(),
            ),
            interrupted_task_timeout=IDLE_RELEASE_S,
        )
        # Both method sets on one endpoint: A2A 1.0 (`SendMessage`, ...) and 0.3
        # (`message/send`, `message/stream`, `tasks/get`, `tasks/cancel`).
        self.dispatcher = Dispatcher(
            self.handler, context_builder=TenantContextBuilder(), enable_v0_3_compat=True
        )

    async def close(self) -> None:
        await self.handler.aclose()
