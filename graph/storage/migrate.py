"""`python -m graph.storage.migrate`: move the keys of the layout before Redis Cluster.

Since every key of one conversation carries its thread's hash tag (one Redis Cluster slot
per thread) and a tenant's keys and the global index theirs, the names an earlier version
wrote are no longer read. This command moves them, once, with every server and run stopped
(one still writing old names would leave keys behind; running the command again moves
those). Without REDIS_URL it migrates the embedded Valkey (the command line's own store).

- checkpoint keys `P:t:T:…` to `P:t:{T}:…`, and a run index whose run id holds a brace
  (`graph.storage.base.legacy_key_name` says which);
- the server's keys: a conversation's `P:srv:conv:H` (pending, answered, lease, event
  log, …) to `P:srv:{H}:conv`, a tenant's `P:srv:tenant:T`, `P:srv:load:T:running`, … to
  `P:srv:{tenant:T}:…` (`graph.storage.server_keys.legacy_key_name`);
- the global index, `P:srv:running`/`waiting` (and the unsharded `P:srv:{:index}:…` of a
  version between): no one new name, since it is sharded by thread (`server_keys`): each
  member goes to its thread's shard `P:srv:{:index:k:s}:…` (its score with it: the wait's
  since, the rev), then the old key is deleted (`legacy_index_part`).

The rest (the checkpointer's `P:threads` and `P:r:R`, the job and archive streams, tool
offers, API keys) kept its name. Members of sets and entries of streams name threads, never
keys, so no value changes. A record of the old layout has no `rev` (the revision its
indexes compare): it reads as 0, which any change of the conversation passes, and the
server's index repair (`graph.storage.records`) brings the indexes' revisions in line.

How: SCAN `P:*` (on a Cluster, every primary: redis-py's cluster `scan_iter`), and per old
key DUMP, PTTL, RESTORE under the new name (its TTL kept), DEL. Not RENAME: on a Cluster the
new name hashes to another slot. RESTORE never overwrites: a new name that already holds the
same value (an earlier run stopped between RESTORE and DEL) only has its old key deleted; one
that holds another value is a conflict, reported and left for a person (both keys kept,
exit status 1). A global index's members are added to their shards (SADD; ZADD NX: an
entry the current layout wrote stays), then the old key is deleted: a run stopped in
between leaves the old key, and the next adds its members again (no change) and deletes
it. The index repair could not do this part: it looks only at the threads an index lists,
so a thread missing from its shard would stay missing (never expired, never counted).

It prints what it moves; `--dry-run` prints it and moves nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import ResponseError

from graph.config import Settings
from graph.storage import base, server_keys
from graph.storage.client import make_client

__all__ = ["Migration", "main", "migrate_keys"]

SCAN_COUNT = 1000


@dataclass
class Migration:
    """What a run moved (or would move), and the conflicts it left alone."""

    moved: int = 0
    conflicts: list[tuple[str, str]] = field(default_factory=list)

    def lines(self, *, dry_run: bool) -> list[str]:
        if not self.moved and not self.conflicts:
            return ["nothing to move: every key has the current layout"]
        verb = "would move" if dry_run else "moved"
        out = [f"{verb} {self.moved} key(s) to their current names"]
        out += [f"conflict, both kept: {old} -> {new}" for old, new in self.conflicts]
        return out


async def migrate_keys(client: Any, prefix: str, *, dry_run: bool = False) -> Migration:
    """Move every key of the earlier layout under `prefix` (module docstring)."""
    prefix = prefix.rstrip(":")
    migration = Migration()
    # Listed first, moved after: a SCAN may return a key again, or the new names, mid-way.
    old = [
        base.as_text(raw) async for raw in client.scan_iter(match=f"{prefix}:*", count=SCAN_COUNT)
    ]
    for key in old:
        part = server_keys.legacy_index_part(prefix, key)
        if part is not None:
            if not dry_run:
                await _split_index(client, server_keys.RedisKeys(prefix), key, part)
            migration.moved += 1
            continue
        renamed = base.legacy_key_name(prefix, key) or server_keys.legacy_key_name(prefix, key)
        if renamed is None:
            continue
        if dry_run or await _move(client, key, renamed):
            migration.moved += 1
        else:
            migration.conflicts.append((key, renamed))
    return migration


async def _move(client: Any, old: str, new: str) -> bool:
    """Move `old` to `new` with its TTL; False (nothing changed) if `new` holds another value."""
    dumped = await client.dump(old)
    if dumped is None:  # gone meanwhile (expired): nothing to move
        return True
    ttl_ms = await client.pttl(old)
    try:
        await client.restore(new, max(ttl_ms, 0), dumped)
    except ResponseError as exc:
        if "BUSYKEY" not in str(exc):
            raise
        if await client.dump(new) != dumped:
            return False
    await client.delete(old)
    return True


async def _split_index(client: Any, keys: server_keys.RedisKeys, old: str, part: str) -> None:
    """Each member of `old`, the global index's `part` of an earlier layout, into its
    thread's shard; then `old` deleted. Each shard's adds are one command on its slot."""
    shards: dict[str, dict[str, float]] = {}
    if part == "running":
        rows = [(m, 0.0) for m in await client.smembers(old)]
    else:
        rows = await client.zrange(old, 0, -1, withscores=True)
    for member, score in rows:
        thread = base.as_text(member)
        shards.setdefault(getattr(keys.index_of(thread), part), {})[thread] = float(score)
    for key, entries in shards.items():
        if part == "running":
            await client.sadd(key, *entries)
        else:
            await client.zadd(key, entries, nx=True)
    await client.delete(old)


async def _migrate(settings: Settings, *, dry_run: bool) -> Migration:
    async def on(url: str) -> Migration:
        client = make_client(url)
        try:
            return await migrate_keys(client, settings.redis_prefix, dry_run=dry_run)
        finally:
            await client.aclose()

    if settings.redis_url:
        return await on(settings.redis_url)
    from graph.storage.embedded import ensure_embedded_redis, release_embedded_redis

    url = await asyncio.to_thread(ensure_embedded_redis, settings)
    try:
        return await on(url)
    finally:
        await asyncio.to_thread(release_embedded_redis, settings)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m graph.storage.migrate",
        description="Move the keys of the layout before Redis Cluster (checkpoints, the "
        "server's records and indexes) to their current names (REDIS_URL, else the embedded "
        "Valkey; CPA_REDIS_PREFIX). Stop every server and run first.",
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would move, move nothing")
    args = parser.parse_args(argv)
    migration = asyncio.run(_migrate(Settings.from_env(), dry_run=args.dry_run))
    for line in migration.lines(dry_run=args.dry_run):
        print(line)
    return 1 if migration.conflicts else 0


if __name__ == "__main__":
    sys.exit(main())
