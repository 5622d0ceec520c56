"""A tenant's conversations: the thread each runs in, who owns it, the tenant's list.

A tenant's conversation `C` runs in the LangGraph thread `T/C` (`graph.conversations`), so
two tenants can use the same id, and one tenant learns nothing about another's ids: a
conversation that is not the caller's is as missing as one that never was (404, no oracle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api.errors import not_found
from graph.conversations import thread_id
from graph.storage.server_keys import RedisKeys


def split_thread(thread: str) -> tuple[str, str]:
    """(tenant, conversation id) of a server thread `T/C`."""
    tenant, _, cid = thread.partition("/")
    return tenant, cid


@dataclass(eq=False)  # a service, not a value: compared by identity
class Tenants:
    """Which conversations each tenant has (the server's records in Redis)."""

    redis: Any
    keys: RedisKeys

    async def check_owner(self, tenant: str, cid: str) -> str:
        """The conversation's thread, if the tenant has it (404 otherwise: no oracle)."""
        thread = thread_id(cid, tenant)
        if not await self.redis.exists(self.keys.conversation(thread)):
            raise not_found(cid)
        return thread

    async def list_conversations(self, tenant: str, limit: int) -> list[dict[str, Any]]:
        """The tenant's conversations, newest first: `{"conversation_id", "created"}`."""
        rows = await self.redis.zrevrange(self.keys.tenant(tenant), 0, limit - 1, withscores=True)
        ids = [r[0].decode() for r in rows]
        pipe = self.redis.pipeline(transaction=False)
        for cid in ids:
            pipe.exists(self.keys.conversation(thread_id(cid, tenant)))
        alive = await pipe.execute() if ids else []
        gone = [cid for cid, ok in zip(ids, alive, strict=True) if not ok]
        if gone:  # expired with their conversation: drop them from the index
            await self.redis.zrem(self.keys.tenant(tenant), *gone)
        return [
            {"conversation_id": cid, "created": score}
            for cid, (_, score), ok in zip(ids, rows, alive, strict=True)
            if ok
        ]
