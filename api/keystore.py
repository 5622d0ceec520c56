"""Managed API keys: made, listed and revoked with `cpa-planner keys`, kept in Redis.

Besides `CPA_API_KEYS` (simple set-ups), keys can be managed at run time, in the Redis the
conversations are kept in (same prefix), without restarting any server. A key is shown once,
when it is made: `cpa_<id>_<secret>`, where `id` names it (list, revoke) and the secret is
32 random bytes. Redis keeps only its sha256 digest (an unguessable key needs no slow
hash), with what it grants:

    srv:keys            hash   sha256(key) -> JSON {id, tenant, principal, scopes, created,
                               expires (epoch s or null), note}
    srv:keyids          hash   id -> sha256(key)

The two are global keys of two slots (a Redis Cluster runs no MULTI across two), each
changed by single commands, in an order a crash between two leaves harmless: a key's id is
written before its record (a crash leaves an id of no key, which `revoke` removes, and the key
was never shown), and a key's record is deleted before its id (the key stops working first).

A server reads them when `CPA_MANAGED_KEYS=true` (`api.auth`); an expired or revoked key
is 401 from the next request on, on every replica. `cpa-planner keys pair-desktop` makes a
key for a desktop agent: principal `cpa-desktop`, scopes `answer` and `read` (it answers
its own assigns and reads its conversations, and can neither open conversations nor approve
anything).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from api.principals import Principal, Scope, check_principal_id, check_tenant
from api.settings import digest

PREFIX = "cpa_"


@dataclass(frozen=True)
class KeyRecord:
    """What a managed key grants (never the key itself)."""

    id: str
    principal: Principal
    created: float
    expires: float | None
    note: str = ""

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and self.expires <= (now or time.time())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            **self.principal.to_dict(),
            "created": self.created,
            "expires": self.expires,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, raw: bytes | str) -> KeyRecord:
        data = json.loads(raw)
        principal = Principal(
            data["tenant"], data.get("principal"), frozenset(Scope(s) for s in data["scopes"])
        )
        return cls(
            data["id"], principal, data["created"], data.get("expires"), data.get("note", "")
        )


class KeyStore:
    """Managed keys under one Redis key prefix."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis = redis
        base = f"{prefix.rstrip(':')}:srv"
        self.keys_key = f"{base}:keys"
        self.ids_key = f"{base}:keyids"

    async def create(
        self,
        principal: Principal,
        *,
        expires_in_s: float | None = None,
        note: str = "",
    ) -> tuple[str, KeyRecord]:
        """(the key, shown once; its record)."""
        check_tenant(principal.tenant)
        if principal.id is not None:
            check_principal_id(principal.id)
        key_id = secrets.token_hex(6)
        key = f"{PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        now = time.time()
        record = KeyRecord(
            key_id, principal, now, now + expires_in_s if expires_in_s else None, note
        )
        key_digest = digest(key)
        await self.redis.hset(self.ids_key, key_id, key_digest)
        await self.redis.hset(self.keys_key, key_digest, json.dumps(record.to_dict()))
        return key, record

    async def lookup(self, key: str) -> Principal | None:
        """The principal a key names; None if it is unknown, revoked or expired."""
        if not key.startswith(PREFIX):
            return None
        raw = await self.redis.hget(self.keys_key, digest(key))
        if raw is None:
            return None
        record = KeyRecord.from_json(raw)
        return None if record.expired() else record.principal

    async def list(self, tenant: str | None = None) -> list[KeyRecord]:
        records = [
            KeyRecord.from_json(raw) for raw in (await self.redis.hgetall(self.keys_key)).values()
        ]
        if tenant is not None:
            records = [r for r in records if r.principal.tenant == tenant]
        return sorted(records, key=lambda r: r.created)

    async def revoke(self, key_id: str) -> bool:
        """Remove a key by its id; False if there is none."""
        key_digest = await self.redis.hget(self.ids_key, key_id)
        if key_digest is None:
            return False
        await self.redis.hdel(self.keys_key, key_digest)
        await self.redis.hdel(self.ids_key, key_id)
        return True
