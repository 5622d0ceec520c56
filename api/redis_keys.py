"""Where the HTTP layer keeps its state in Redis, next to the checkpoints.

Everything durable lives under `<CPA_REDIS_PREFIX>:srv:` (T = tenant, C = conversation id,
M = message id):

    srv:conv:C       hash   tenant, created (epoch s), request (the opening LAM request),
                            error (why the last run raised, if it did)
    srv:tenant:T     zset   the tenant's conversation ids, score = created
    srv:running      set    conversations with a run queued or under way: resumed at start-up
    srv:pending:C    hash   accepted answers not yet applied (survive a crash)
    srv:msg:T:M      string the response to message M (idempotency: SET NX)
    srv:ev:C         list   the conversation's LAM messages in the order first seen (SSE)
    srv:evi:C        hash   message id -> index in srv:ev:C (Last-Event-ID)

A finished conversation's keys get the checkpointer's TTL (CPA_REDIS_TTL_S) together with
its checkpoints.
"""

from __future__ import annotations

from api.settings import digest


class RedisKeys:
    """The key names above, for one key prefix."""

    def __init__(self, prefix: str) -> None:
        self.base = f"{prefix.rstrip(':')}:srv"
        self.running = f"{self.base}:running"

    def conversation(self, cid: str) -> str:
        return f"{self.base}:conv:{cid}"

    def tenant(self, tenant: str) -> str:
        return f"{self.base}:tenant:{tenant}"

    def pending(self, cid: str) -> str:
        return f"{self.base}:pending:{cid}"

    def message(self, tenant: str, message_id: str) -> str:
        # Message ids are free text: hash them into the key.
        return f"{self.base}:msg:{tenant}:{digest(message_id)[:40]}"

    def events(self, cid: str) -> str:
        return f"{self.base}:ev:{cid}"

    def event_index(self, cid: str) -> str:
        return f"{self.base}:evi:{cid}"

    def per_conversation(self, cid: str) -> list[str]:
        """The keys that expire with the conversation."""
        return [
            self.conversation(cid),
            self.pending(cid),
            self.events(cid),
            self.event_index(cid),
        ]
