"""A tenant's conversations: the list, one conversation, its inbox, its event stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from fastapi.sse import ServerSentEvent, format_sse_event
from starlette.responses import StreamingResponse

from api.auth import TenantDep
from api.dependencies import ConversationId, ReplicaDep
from api.errors import error_responses, not_found
from api.local_mode import local_only
from api.models import ConversationBody, ConversationList, ConversationSummary
from graph.conversations import ConversationNotFoundError

router = APIRouter(tags=["conversations"], dependencies=[Depends(local_only)])

# One event of a stream, as OpenAPI 3.2 describes Server-Sent Events (what FastAPI writes).
SSE = {
    "type": "object",
    "properties": {
        "data": {"type": "string"},
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer", "minimum": 0},
    },
}


class EventStream(StreamingResponse):
    """Server-Sent Events, written by us (`fastapi.sse.format_sse_event`).

    Not FastAPI's `EventSourceResponse` path (a generator endpoint): its keep-alive task can
    be writing into a stream that the request's exit stack has already closed when a client
    leaves mid-burst, which ends in an unhandled `BrokenResourceError` in the log. Our
    streams send their own keep-alives, and Starlette cancels the generator when the client
    leaves (its `finally` blocks run).
    """

    media_type = "text/event-stream"


@router.get(
    "/v1/conversations", response_model=ConversationList, responses=error_responses(401, 503)
)
async def list_conversations(
    replica: ReplicaDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ConversationList:
    """Your conversations, newest first."""
    rows = await replica.tenants.list_conversations(tenant, limit)
    return ConversationList(conversations=[ConversationSummary(**row) for row in rows])


@router.get(
    "/v1/conversations/{conversation_id}",
    response_model=ConversationBody,
    responses=error_responses(401, 404, 503),
)
async def get_conversation(
    conversation_id: ConversationId, replica: ReplicaDep, tenant: TenantDep
) -> ConversationBody:
    """Status (`running`, `waiting`, `done`, `failed`), intent, plan, result, LAM log."""
    await replica.tenants.check_owner(tenant, conversation_id)
    try:
        return ConversationBody(**await replica.views.view(tenant, conversation_id))
    except ConversationNotFoundError:
        raise not_found(conversation_id) from None


@router.get(
    "/v1/conversations/{conversation_id}/inbox",
    response_model=list[dict[str, Any]],
    responses=error_responses(401, 404, 503),
)
async def get_inbox(
    conversation_id: ConversationId,
    replica: ReplicaDep,
    tenant: TenantDep,
    receiver: Annotated[
        str | None, Query(max_length=256, description="e.g. `cpa-desktop`; all if absent")
    ] = None,
) -> list[dict[str, Any]]:
    """The `assign` and `propose` messages still waiting for an answer from `receiver`."""
    await replica.tenants.check_owner(tenant, conversation_id)
    try:
        return await replica.views.inbox(tenant, conversation_id, receiver)
    except ConversationNotFoundError:
        return []  # accepted, first checkpoint not written yet: nothing waits


class StreamStart:
    """Where an events stream starts; checked before the stream does (404 stays JSON)."""

    def __init__(self, thread: str, position: int) -> None:
        self.thread = thread
        self.position = position


async def stream_start(
    conversation_id: ConversationId,
    replica: ReplicaDep,
    tenant: TenantDep,
    last_event_id: Annotated[str | None, Header(max_length=256)] = None,
) -> StreamStart:
    thread = await replica.tenants.check_owner(tenant, conversation_id)
    position = await replica.views.start_position(tenant, conversation_id, last_event_id)
    return StreamStart(thread, position)


@router.get(
    "/v1/conversations/{conversation_id}/events",
    response_class=EventStream,
    responses={
        200: {
            "description": "Server-Sent Events: `id:` the LAM message id, `data:` the "
            "message; `:` comments keep the connection alive",
            "content": {"text/event-stream": {"schema": {"type": "string"}, "itemSchema": SSE}},
        },
        **error_responses(401, 403, 404, 503),
    },
)
async def get_events(
    start: Annotated[StreamStart, Depends(stream_start)],
    replica: ReplicaDep,
    progress: Annotated[
        bool,
        Query(
            description="also the run's progress as it happens: `event: llm` when a step "
            "starts or stops waiting on a model, `event: token` for each piece of an answer "
            "as the model writes it (no `id:`; not part of the log)"
        ),
    ] = False,
) -> EventStream:
    """Each LAM message of the conversation as it is appended.

    Starts at the first message, or right after `Last-Event-ID`; ends once the
    conversation is done or failed.
    """
    keepalive_s = replica.config.sse_keepalive_s
    events = replica.feeds.stream(start.thread, start.position, keepalive_s, progress=progress)
    return event_stream(events)


async def _encoded(events: AsyncIterator[ServerSentEvent]) -> AsyncIterator[bytes]:
    async for event in events:
        yield format_sse_event(
            data_str=event.raw_data,
            event=event.event,
            id=event.id,
            retry=event.retry,
            comment=event.comment,
        )


def event_stream(events: AsyncIterator[ServerSentEvent]) -> EventStream:
    """The events as a plain streaming response, returned rather than yielded."""
    return EventStream(
        _encoded(events), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
