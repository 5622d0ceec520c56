"""The endpoints (docs/http.md): `router`, included by `server.create_app`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from fastapi.sse import ServerSentEvent, format_sse_event
from pydantic import Field
from starlette.responses import StreamingResponse

from api.auth import Anyone, Speaker, TenantDep, check_rate
from api.errors import ApiError, error_responses, not_found, starting
from api.hub import Hub
from api.local_mode import local_only
from api.models import Accepted, ConversationBody, ConversationList, Health, Ready
from api.offers import take_offer
from api.principals import authorize
from graph.conversations import ConversationNotFoundError, thread_id
from lam import LAMMessage, Performative, message_json_schema
from lam.text import ID_PATTERN, MAX_ID_CHARS

ANSWERS = frozenset(
    {Performative.AGREE, Performative.REFUSE, Performative.DONE, Performative.FAILURE}
)
ACCEPTED = frozenset({Performative.REQUEST, Performative.DISCOVER, Performative.OFFER, *ANSWERS})


def current_hub(request: Request) -> Hub:
    """The app's hub, set by its lifespan (503 before and after)."""
    hub = getattr(request.app.state, "hub", None)
    if hub is None:
        raise starting()
    return cast(Hub, hub)


HubDep = Annotated[Hub, Depends(current_hub)]
# The LAM id rule (`lam.text`): anything else cannot name a conversation.
ConversationId = Annotated[str, Field(pattern=ID_PATTERN, max_length=MAX_ID_CHARS)]

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


# Every route: without API keys, only this machine's programs are served (`api.local_mode`).
router = APIRouter(dependencies=[Depends(local_only)])


def require_json(request: Request) -> None:
    """A POST body must be JSON: a browser sends a cross-site `text/plain` form unasked."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as Content-Type: application/json, not {media_type or 'none'}",
        )


async def read_body(request: Request, limit: int, timeout_s: float | None = None) -> bytes:
    """The request body, refusing more than `limit` bytes before reading them all, and a
    body that takes longer than `timeout_s` to arrive (408: a slow client holds no
    connection for ever)."""
    try:
        async with asyncio.timeout(timeout_s):
            return await _read_body(request, limit)
    except TimeoutError:
        raise ApiError(
            408, "body_timeout", f"the body did not arrive within {timeout_s:g} s"
        ) from None


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_big = int(declared) > limit
        except ValueError:
            raise ApiError(400, "bad_request", "Content-Length is not a number") from None
        if too_big:
            raise ApiError(413, "too_large", f"the body is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@router.get("/healthz", response_model=Health, tags=["health"])
async def healthz() -> dict[str, str]:
    """Liveness: the process answers (no key needed, nothing else checked)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Ready,
    tags=["health"],
    responses=error_responses(401, 503),
)
async def readyz(hub: HubDep, _tenant: TenantDep) -> dict[str, str]:
    """Readiness: Redis answers a PING (fails fast, 503, while it does not)."""
    await hub.saver.aping()
    return {"status": "ready", "redis": "ok"}


@router.post(
    "/v1/lam",
    status_code=202,
    response_model=Accepted,
    tags=["conversations"],
    responses={
        200: {
            "description": "a `discover` is answered with an `offer`, an agent's `offer` of "
            "its tools with a `confirm` (LAM messages)"
        },
        **error_responses(401, 403, 404, 409, 413, 415, 422, 429, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LAM"}}},
        }
    },
)
async def post_lam(
    request: Request,
    hub: HubDep,
    principal: Speaker,
    wait: Annotated[
        float,
        Query(
            ge=0,
            le=60,
            description="seconds to wait for the conversation to stop running (waiting "
            "for an answer, done or failed); the body then carries it in `conversation`",
        ),
    ] = 0,
) -> Any:
    """Take one LAM message.

    - `request` opens a conversation (or, with the `conversation_id` of a finished one of
      yours, starts its next turn) and runs it in the background.
    - `agree`/`refuse` answer a waiting `propose`, `done`/`failure` a waiting `assign`
      (`in_reply_to` = its id); the conversation resumes exactly that interrupt.
      An answer to nothing that waits: 409, and nothing changes.
    - `discover` is answered at once with an `offer` (200).
    - `offer` from an agent, its tools in `content.actions`: kept for your planner,
      replacing that agent's last offer; answered at once with a `confirm` (200).

    Sending the same message (same `id`) again is safe: the same response, no second
    effect.
    """
    require_json(request)
    body = await read_body(request, hub.config.max_body_bytes, hub.config.body_timeout_s)
    message = LAMMessage.from_json(body, max_bytes=hub.config.max_body_bytes)
    tenant = principal.tenant
    if message.performative not in ACCEPTED:
        names = ", ".join(sorted(p.value for p in ACCEPTED))
        raise ApiError(
            422,
            "unsupported_performative",
            f"the planner takes {names}; not {message.performative.value}",
            [{"field": "performative", "message": f"expected one of: {names}"}],
        )
    # Who may send what, as whom (403, nothing written); stamped with its principal.
    message = authorize(principal, message)
    if message.performative not in ANSWERS:  # answers let conversations finish: never limited
        await check_rate(request, principal)
    if message.performative is Performative.DISCOVER:
        return JSONResponse(hub.offer(message.sender, message.conversation_id))
    if message.performative is Performative.OFFER:
        return JSONResponse(await take_offer(hub, tenant, message))

    async def handle() -> dict[str, Any]:
        if message.performative is Performative.REQUEST:
            return await hub.open(tenant, message)
        return await hub.answer(tenant, message, principal)

    accepted, replayed = await hub.responses.once(tenant, message, handle)
    cid = accepted["conversation_id"]
    await hub.wait_idle(thread_id(cid, tenant), min(wait, hub.config.max_wait_s))
    try:
        view = await hub.view(tenant, cid)
    except ConversationNotFoundError:  # a replay long after the conversation expired
        raise not_found(cid) from None
    out = {**accepted, "status": view["status"]}
    if wait > 0:
        out["conversation"] = view
    headers = {"Idempotent-Replay": "true"} if replayed else {}
    return JSONResponse(out, status_code=202, headers=headers)


@router.get(
    "/v1/conversations",
    response_model=ConversationList,
    tags=["conversations"],
    responses=error_responses(401, 503),
)
async def list_conversations(
    hub: HubDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Your conversations, newest first."""
    return {"conversations": await hub.list_conversations(tenant, limit)}


@router.get(
    "/v1/conversations/{conversation_id}",
    response_model=ConversationBody,
    tags=["conversations"],
    responses=error_responses(401, 404, 503),
)
async def get_conversation(
    conversation_id: ConversationId, hub: HubDep, tenant: TenantDep
) -> dict[str, Any]:
    """Status (`running`, `waiting`, `done`, `failed`), intent, plan, result, LAM log."""
    await hub.check_owner(tenant, conversation_id)
    try:
        return await hub.view(tenant, conversation_id)
    except ConversationNotFoundError:
        raise not_found(conversation_id) from None


@router.get(
    "/v1/conversations/{conversation_id}/inbox",
    response_model=list[dict[str, Any]],
    tags=["conversations"],
    responses=error_responses(401, 404, 503),
)
async def get_inbox(
    conversation_id: ConversationId,
    hub: HubDep,
    tenant: TenantDep,
    receiver: Annotated[
        str | None, Query(max_length=256, description="e.g. `cpa-desktop`; all if absent")
    ] = None,
) -> list[dict[str, Any]]:
    """The `assign` and `propose` messages still waiting for an answer from `receiver`."""
    await hub.check_owner(tenant, conversation_id)
    try:
        return await hub.inbox(tenant, conversation_id, receiver)
    except ConversationNotFoundError:
        return []  # accepted, first checkpoint not written yet: nothing waits


class StreamStart:
    """Where an events stream starts; checked before the stream does (404 stays JSON)."""

    def __init__(self, thread: str, position: int) -> None:
        self.thread = thread
        self.position = position


async def stream_start(
    conversation_id: ConversationId,
    hub: HubDep,
    tenant: TenantDep,
    last_event_id: Annotated[str | None, Header(max_length=256)] = None,
) -> StreamStart:
    thread = await hub.check_owner(tenant, conversation_id)
    return StreamStart(thread, await hub.start_position(tenant, conversation_id, last_event_id))


@router.get(
    "/v1/conversations/{conversation_id}/events",
    tags=["conversations"],
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
    hub: HubDep,
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
    keepalive_s = hub.config.sse_keepalive_s
    events = hub.feeds.stream(start.thread, start.position, keepalive_s, progress=progress)
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


@router.get(
    "/v1/capabilities",
    tags=["capabilities"],
    responses={
        200: {"description": "an `offer` LAM message: executors, intents, lam_version"},
        **error_responses(401, 503),
    },
)
async def capabilities(hub: HubDep, tenant: TenantDep) -> dict[str, Any]:
    """What this planner can do, as an `offer`."""
    return hub.offer(tenant)


@router.get("/v1/principal", tags=["capabilities"], responses=error_responses(401))
async def whoami(principal: Anyone) -> dict[str, Any]:
    """Who your credential speaks as: `{"tenant", "principal" (null: any sender of the
    tenant), "scopes"}` (docs/http.md, credentials)."""
    return principal.to_dict()


@router.get("/v1/lam/schema", tags=["capabilities"], responses=error_responses(401))
async def lam_schema(_tenant: TenantDep) -> dict[str, Any]:
    """The JSON Schema of a LAM message."""
    return message_json_schema()
