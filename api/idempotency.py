"""One response per message id (per tenant): a repeated message gets the first response.

A record `srv:msg:T:M` is claimed with SET NX, then holds the response body. The claim
lives only as long as the process handling the message: it is short (`CLAIM_TTL_S`) and
renewed while the handling goes on, so after a crash a retry waits seconds, not minutes,
and is then judged afresh (the replica recognises a request or answer it already took, and
gives the original answer). A failed attempt leaves no record, so a retry is judged
afresh; the same id with different content is refused (409).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, cast

from api.errors import ApiError
from api.settings import digest
from graph.storage.client import cancel_and_wait
from graph.storage.server_keys import RedisKeys
from lam import LAMMessage

# How long a claim lives without being renewed, and how often the handler renews it.
CLAIM_TTL_S = 5.0
_RENEW_EVERY_S = CLAIM_TTL_S / 3
# How long a duplicate waits for the first copy's response.
_DUPLICATE_WAIT_S = 10.0
# Response records of messages outlive conversations a little (CPA_REDIS_TTL_S or a week).
DEFAULT_RECORD_TTL_S = 7 * 24 * 3600


class ResponseRecords:
    """The recorded response of each message id, in Redis."""

    def __init__(self, redis: Any, keys: RedisKeys, ttl_s: int) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s

    async def once(
        self, tenant: str, message: LAMMessage, handle: Callable[[], Any]
    ) -> tuple[dict[str, Any], bool]:
        """Run `handle` once per message id (per tenant); a repeat gets the first response.

        Returns (response body, replayed). A failed attempt leaves no record, so a retry
        is judged afresh; the same id with different content is refused.
        """
        key = self.keys.message(tenant, message.id)
        fingerprint = _fingerprint(message)
        claim = json.dumps({"h": fingerprint})
        if await self.redis.set(key, claim, nx=True, px=int(CLAIM_TTL_S * 1000)):
            renewing = asyncio.create_task(self._renew(key))
            try:
                body = cast(dict[str, Any], await handle())
            except BaseException:
                await _stop(renewing)
                await self.redis.delete(key)
                raise
            await _stop(renewing)
            record = json.dumps({"h": fingerprint, "b": body})
            await self.redis.set(key, record, ex=self.ttl_s)
            return body, False
        deadline = time.monotonic() + _DUPLICATE_WAIT_S
        while True:
            raw = await self.redis.get(key)
            if raw is None:  # the first attempt failed (or its process died): judge afresh
                return await self.once(tenant, message, handle)
            record = json.loads(raw)
            if record["h"] != fingerprint:
                raise ApiError(
                    409,
                    "message_id_reused",
                    f"message id {message.id} was already used for a different message",
                    [{"field": "id", "message": "already used for a different message"}],
                )
            if "b" in record:
                return cast(dict[str, Any], record["b"]), True
            if time.monotonic() > deadline:
                raise ApiError(409, "in_progress", f"message {message.id} is still being processed")
            await asyncio.sleep(0.02)

    async def _renew(self, key: str) -> None:
        """Keep the claim alive while this process handles the message."""
        while True:
            await asyncio.sleep(_RENEW_EVERY_S)
            # Cancelled (and awaited) before the record replaces the claim: never touches it.
            await self.redis.pexpire(key, int(CLAIM_TTL_S * 1000))


async def _stop(task: asyncio.Task[None]) -> None:
    # A cancellation landing in the renewal's Redis call can be swallowed by redis-py:
    # `cancel_and_wait` asks again until the task has ended.
    await cancel_and_wait(task)


def _fingerprint(message: LAMMessage) -> str:
    # The timestamp is left out: a client that omits it gets a new one on every parse.
    body = message.to_dict()
    body.pop("timestamp", None)
    return digest(json.dumps(body, sort_keys=True, separators=(",", ":")))
