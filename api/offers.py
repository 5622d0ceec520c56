"""Offers over HTTP, both ways: the planner's own, and agents' offers of their tools.

The planner offers what it can do (its executors, its intents, the LAM version) to a
`discover` sent to `POST /v1/lam`, and at `GET /v1/capabilities` (`planner_offer`).

An agent offers its tools with `POST /v1/lam`, an `offer` whose content lists `actions`
(`take_offer`). Such an offer comes from an agent the planner hands work to: one that an
executor which runs tools sends its `assign`s to (`cpa-desktop` → the `desktop` executor).
Its tools' schemas must be JSON Schema. The tools are kept for the tenant
(`graph.tools.offers`), replacing the agent's last offer (an offer with no actions
withdraws them), and count from the next planning call on; the offer is answered at once
with a `confirm`.
"""

from __future__ import annotations

from typing import Any

from api.errors import ApiError
from graph.conversations import Conversations
from graph.lamlog import PLANNER
from graph.services import Services
from graph.tools.executors import runs_tools
from graph.tools.files import check_input_schema
from lam import LAM_VERSION, LAMMessage, MessageFactory, OfferContent
from lam.rfc3339 import format_rfc3339


def planner_offer(
    services: Services, receiver: str, conversation_id: str | None = None
) -> dict[str, Any]:
    """The planner's `offer` to `receiver`: its executors, its intents, the LAM version."""
    factory = MessageFactory(PLANNER, conversation_id or Conversations.new_id())
    return factory.offer(
        receiver, services.executors.names(), services.intents.names(), lam_version=LAM_VERSION
    ).to_dict()


async def take_offer(services: Services, tenant: str, message: LAMMessage) -> dict[str, Any]:
    """Keep an agent's offered tools for the tenant; the `confirm` that answers the offer."""
    content = message.parsed_content()
    assert isinstance(content, OfferContent)
    if content.actions is None:
        raise ApiError(
            422,
            "invalid_offer",
            "an agent offers its tools in content.actions (executors and intents are what "
            "the planner offers)",
            [{"field": "content.actions", "message": "required in an agent's offer"}],
        )
    executors = [e for e in services.executors if e.receiver == message.sender and runs_tools(e)]
    if not executors:
        agents = sorted(
            {str(e.receiver) for e in services.executors if e.receiver and runs_tools(e)}
        )
        raise ApiError(
            422,
            "unknown_agent",
            f"the planner hands no work to {message.sender!r}, so it cannot run its tools "
            f"(agents whose tools it runs: {', '.join(agents) or 'none'})",
            [{"field": "sender", "message": f"one of: {', '.join(agents) or 'none'}"}],
        )
    executor = executors[0].name
    problems = []
    for index, tool in enumerate(content.actions):
        where = f"content.actions.{index}"
        if tool.executor not in (None, executor):
            problems.append(
                {
                    "field": f"{where}.executor",
                    "message": f"{message.sender}'s tools are run by {executor!r}; leave it out",
                }
            )
        problem = check_input_schema(tool.input_schema)
        if problem:
            problems.append({"field": f"{where}.input_schema", "message": problem})
    if problems:
        raise ApiError(422, "invalid_offer", "the offer's tools cannot be used", problems)
    store = services.tools.offers
    if store is None:  # the server attaches one at start-up
        raise ApiError(503, "starting", "the server is starting or stopping; retry shortly")
    await store.put(
        tenant,
        message.sender,
        executor,
        content.actions,
        message_id=message.id,
        offered_at=format_rfc3339(message.timestamp),
    )
    assert message.conversation_id is not None  # required on every offer
    confirm = MessageFactory(PLANNER, message.conversation_id).confirm(
        message.sender,
        topic="tools",
        agent=message.sender,
        executor=executor,
        tools=[tool.name for tool in content.actions],
    )
    return confirm.to_dict()
