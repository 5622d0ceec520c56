"""Agents' offers: the tools each agent announced, kept in Redis per tenant and agent.

An agent (the desktop agent, say) sends the planner an `offer` with `content.actions`, its
tools; the offer replaces that agent's last one, and an offer with no actions withdraws
them. They are kept until then, without expiry, in one hash per tenant:

    <prefix>:tools:offers:<tenant>   hash   agent id -> {"executor", "message_id",
                                            "offered_at", "actions": [Tool, ...]} (JSON)

so a planning call reads every agent's tools of its tenant with one HGETALL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from lam import Tool

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredOffer:
    """One agent's tools as it last offered them."""

    agent: str
    executor: str
    message_id: str
    offered_at: str
    actions: tuple[Tool, ...]


class OfferStore:
    """The offers of every tenant, in the Redis the conversations are kept in."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix.rstrip(":")

    def key(self, tenant: str) -> str:
        return f"{self.prefix}:tools:offers:{tenant}"

    async def put(
        self,
        tenant: str,
        agent: str,
        executor: str,
        actions: Sequence[Tool],
        *,
        message_id: str,
        offered_at: str,
    ) -> None:
        """Keep `actions` as `agent`'s tools (replacing its last offer); none: withdraw."""
        if not actions:
            await self.redis.hdel(self.key(tenant), agent)
            return
        record = {
            "executor": executor,
            "message_id": message_id,
            "offered_at": offered_at,
            "actions": [tool.model_dump(mode="json") for tool in actions],
        }
        await self.redis.hset(self.key(tenant), agent, json.dumps(record, ensure_ascii=False))

    async def get(self, tenant: str) -> list[StoredOffer]:
        """The tenant's offers, by agent id."""
        raw = await self.redis.hgetall(self.key(tenant))
        offers: list[StoredOffer] = []
        for agent, value in sorted(raw.items()):
            name = agent.decode() if isinstance(agent, bytes) else str(agent)
            try:
                record = json.loads(value)
                actions = tuple(Tool.model_validate(a) for a in record["actions"])
                offers.append(
                    StoredOffer(
                        name,
                        str(record["executor"]),
                        str(record["message_id"]),
                        str(record["offered_at"]),
                        actions,
                    )
                )
            except (ValueError, KeyError, TypeError, ValidationError) as exc:
                # Written by us, so only a hand-edited or older record lands here.
                logger.warning("ignoring the stored offer of %s (%s): %s", name, tenant, exc)
        return offers
