"""`POST /v1/lam`: every LAM message sent to the planner.

A `request` opens a conversation, an answer (`agree`/`refuse`, `done`/`failure`) is taken
for the waiting message it answers (`api.accepting`); both once per message id
(`api.idempotency`), and then run by whichever replica claims the conversation. A
`discover` and an agent's `offer` are answered at once (`api.offers`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from api.auth import Speaker, check_rate
from api.dependencies import ReplicaDep, read_body, require_json
from api.errors import ApiError, error_responses, not_found
from api.local_mode import local_only
from api.models import Accepted
from api.offers import planner_offer, take_offer
from api.principals import authorize
from graph.conversations import ConversationNotFoundError, thread_id
from lam import LAMMessage, Performative

ANSWERS = frozenset(
    {Performative.AGREE, Performative.REFUSE, Performative.DONE, Performative.FAILURE}
)
ACCEPTED = frozenset({Performative.REQUEST, Performative.DISCOVER, Performative.OFFER, *ANSWERS})

router = APIRouter(tags=["conversations"], dependencies=[Depends(local_only)])


@router.post(
    "/v1/lam",
    status_code=202,
    response_model=Accepted,
    # `conversation` only with `wait`: left out, not null, without.
    response_model_exclude_unset=True,
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
    response: Response,
    replica: ReplicaDep,
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
) -> Accepted | JSONResponse:
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
    config = replica.config
    require_json(request)
    body = await read_body(request, config.max_body_bytes, config.body_timeout_s)
    message = LAMMessage.from_json(body, max_bytes=config.max_body_bytes)
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
        offer = planner_offer(replica.services, message.sender, message.conversation_id)
        return JSONResponse(offer)
    if message.performative is Performative.OFFER:
        return JSONResponse(await take_offer(replica.services, tenant, message))

    async def handle() -> dict[str, Any]:
        if message.performative is Performative.REQUEST:
            return await replica.accepting.open(tenant, message)
        return await replica.accepting.answer(tenant, message, principal)

    accepted, replayed = await replica.responses.once(tenant, message, handle)
    cid = accepted["conversation_id"]
    await replica.views.wait_idle(thread_id(cid, tenant), min(wait, config.max_wait_s))
    try:
        view = await replica.views.view(tenant, cid)
    except ConversationNotFoundError:  # a replay long after the conversation expired
        raise not_found(cid) from None
    if replayed:
        response.headers["Idempotent-Replay"] = "true"
    if wait > 0:
        return Accepted(**accepted, status=view["status"], conversation=view)
    return Accepted(**accepted, status=view["status"])
