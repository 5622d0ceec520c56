"""The A2A endpoints beside the LAM API: the agent card and the JSON-RPC endpoint.

Both sit behind the same rules as `/v1`: a credential names the principal (401 without
one; the `read` scope needed), and with no keys configured only this machine's programs are
served. The JSON-RPC body
is held to the same size limit and must be JSON; then the SDK's dispatcher takes it
(`A2AServer.dispatcher`), with the tenant in the call context.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, cast

from a2a.server.request_handlers.response_helpers import agent_card_to_dict
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import Message

from api.a2a.card import CARD_PATH, RPC_PATH, agent_card
from api.a2a.planner_agent import A2AServer
from api.auth import Reader, TenantDep
from api.dependencies import ReplicaDep, read_body, require_json
from api.errors import ApiError, error_responses, starting
from api.local_mode import local_only
from lam.text import surrogate_errors

router = APIRouter(dependencies=[Depends(local_only)], tags=["a2a"])


def current_a2a(request: Request) -> A2AServer:
    """The app's A2A server, set by its lifespan (503 before and after)."""
    server = getattr(request.app.state, "a2a", None)
    if server is None:
        raise starting()
    return cast(A2AServer, server)


A2ADep = Annotated[A2AServer, Depends(current_a2a)]


def base_url(request: Request, public_url: str | None) -> str:
    """Where clients reach this server: CPA_PUBLIC_URL; unset, this request's own URL,
    whose host a client chose (its `Host` header): fine on loopback, not behind a proxy."""
    return (public_url or str(request.base_url)).rstrip("/")


def _refuse_surrogates(body: bytes) -> None:
    """422 for a body with an unpaired surrogate anywhere (the JSON-RPC `id` too): nothing
    could encode the answer that echoes it. Bodies that are not JSON are the SDK's to answer."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return
    errors = surrogate_errors(parsed)
    if errors:
        raise ApiError(
            422,
            "invalid_json",
            "the body holds text that is not valid Unicode (an unpaired surrogate)",
            [{"field": e["field"] or "body", "message": e["message"]} for e in errors],
        )


@router.get(CARD_PATH, summary="A2A agent card", responses=error_responses(401, 403, 503))
async def get_agent_card(request: Request, replica: ReplicaDep, _tenant: TenantDep) -> JSONResponse:
    """The agent card: skills = the intents, the JSON-RPC endpoint, the bearer scheme."""
    url = base_url(request, replica.config.public_url)
    card = agent_card(replica.services, url, keys=not replica.config.open_access)
    return JSONResponse(agent_card_to_dict(card))


@router.post(
    RPC_PATH,
    summary="A2A JSON-RPC",
    responses={
        200: {"description": "a JSON-RPC response (its `error` for A2A errors), or SSE"},
        **error_responses(401, 403, 413, 415, 422, 503),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def a2a_rpc(request: Request, replica: ReplicaDep, principal: Reader, a2a: A2ADep) -> Any:
    """A2A JSON-RPC 2.0: `message/send`, `message/stream` (SSE), `tasks/get`, `tasks/cancel`
    (A2A 0.3 names), and their A2A 1.0 names (`SendMessage`, `SendStreamingMessage`,
    `GetTask`, `CancelTask`, `ListTasks`, `SubscribeToTask`)."""
    require_json(request)
    body = await read_body(request, replica.config.max_body_bytes, replica.config.body_timeout_s)
    _refuse_surrogates(body)
    # The dispatcher reads the body again: it gets a request over the same scope (and state)
    # whose body is the one read within the limit, then the connection's own messages.
    first = True

    async def receive() -> Message:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await request.receive()

    again = Request(request.scope, receive)
    again.state.cpa_tenant = principal.tenant
    again.state.cpa_principal = principal
    response: Response = await a2a.dispatcher.handle_requests(again)
    return response
