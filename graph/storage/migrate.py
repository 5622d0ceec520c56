"""`python -m graph.storage.migrate`: move the checkpoint keys of the layout before Cluster.

Since every checkpoint key of one thread carries the thread's hash tag (`graph.storage.base`:
one Redis Cluster slot per thread), the names an earlier version wrote, `P:t:T:…`, are no
longer read. This command moves them to `P:t:{T}:…` (and a run index whose run id holds a
brace; `base.legacy_key_name` says which names), once, with every server and run stopped:
one still writing old names would leave keys behind, and running the command again moves
those. Without REDIS_URL it migrates the embedded Valkey (the command line's own store).

Everything else (the global indexes, the server's keys, tool offers, API keys) kept its
name and is left as it is; members of sets and entries of streams name threads, never keys,
so no value changes.

How: SCAN `P:*` (on a Cluster, every primary: redis-py's cluster `scan_iter`), and per old
key DUMP, PTTL, RESTORE under the new name (its TTL kept), DEL. Not RENAME: on a Cluster the
new name hashes to another slot. RESTORE never overwrites: a new name that already holds the
same value (an earlier run stopped between RESTORE and DEL) only has its old key deleted; one
that holds another value is a conflict, reported and left for a person (both keys kept,
exit status 1).

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
from graph.storage import base
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
            return ["nothing to move: every checkpoint key has the current layout"]
        verb = "would move" if dry_run else "moved"
        out = [f"{verb} {self.moved} checkpoint key(s) to their thread's hash tag"]
        out += [f"conflict, both kept: {old} -> {new}" for old, new in self.conflicts]
        return out


async def migrate_keys(client: Any, prefix: str, *, dry_run: bool = False) -> Migration:
    """Move every checkpoint key of the earlier layout under `prefix` (module docstring)."""
    prefix = prefix.rstrip(":")
    migration = Migration()
    # Listed first, moved after: a SCAN may return a key again, or the new names, mid-way.
    old = [
        base.as_text(raw) async for raw in client.scan_iter(match=f"{prefix}:*", count=SCAN_COUNT)
    ]
    for key in old:
        renamed = base.legacy_key_name(prefix, key)
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
        description="Move checkpoint keys of the layout before Redis Cluster to their "
        "current names (REDIS_URL, else the embedded Valkey; CPA_REDIS_PREFIX). Stop every "
        "server and run first.",
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would move, move nothing")
    args = parser.parse_args(argv)
    migration = asyncio.run(_migrate(Settings.from_env(), dry_run=args.dry_run))
    for line in migration.lines(dry_run=args.dry_run):
        print(line)
    return 1 if migration.conflicts else 0


if __name__ == "__main__":
    sys.exit(main())
