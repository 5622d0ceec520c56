"""`RedisSaver`: LangGraph checkpoints on plain Redis commands (Redis >= 7, Valkey >= 8).

Why our own saver and not langgraph-checkpoint-plainredis: see docs/checkpointer.md (measured).
In short: the LAM log is a `DeltaChannel`, so each message is stored once as a pending write;
this saver stores those writes as raw bytes (no base64), keeps a conversation in a fixed set
of keys so a finished one can be given a TTL as a whole, and replays delta writes in LangGraph's
`writes_sort_key` order (task path first), which keeps parallel branches' messages in the order
the live run produced.

Here are the reads and the writes; the key layout is `graph.storage.base`, the scripts
`graph.storage.scripts`, the rest its parents (`history`, `maintenance`). Fencing: the
server passes each run's lease generation as `configurable[FENCE]`; LangGraph hands the
run's config to `aput` and `aput_writes`, whose scripts then refuse (`FencedError`) a write
whose generation is not the thread's current one (`graph.storage.fencing`).

The saver stands alone: `RedisSaver.from_url(url)` opens one on any Redis, without the
app's settings (`graph.storage.connect` is the app's way: REDIS_URL or the embedded Valkey).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from graph.storage.base import EMPTY, as_text, pack, unpack
from graph.storage.client import make_client
from graph.storage.errors import REDIS_DOWN, RedisUnavailableError
from graph.storage.fencing import fence_token, raise_if_fenced
from graph.storage.maintenance import Maintenance
from graph.storage.url import check_redis_url

__all__ = ["RedisSaver"]


class RedisSaver(Maintenance):
    """Async LangGraph checkpoint saver on plain Redis commands."""

    @classmethod
    @asynccontextmanager
    async def from_url(
        cls,
        url: str,
        *,
        prefix: str = "cpa",
        ttl_s: int | None = None,
        serde: Any = None,
        write_wait_s: float = 0.0,
    ) -> AsyncIterator[RedisSaver]:
        """A saver on the Redis at `url` (`redis://`, `rediss://`, `unix://` or
        `redis+sentinel://`), closed on leaving; like checkpoint-postgres's `from_conn_string`.

        `write_wait_s`: how long a write waits out Redis being down (`graph.storage.base`).
        Raises ValueError for a malformed URL (its password masked) and
        RedisUnavailableError (in seconds) when the server does not answer.
        """
        check_redis_url(url)
        saver = cls(
            make_client(url),
            prefix=prefix,
            ttl_s=ttl_s,
            url=url,
            serde=serde,
            write_wait_s=write_wait_s,
        )
        try:
            await saver.aping()
            yield saver
        finally:
            await saver.aclose()

    # Reads --------------------------------------------------------------------------

    async def _latest_id(self, thread_id: str, ns: str) -> str | None:
        ids = await self.client.zrange(
            self._ns_key(thread_id, ns, "idx"), "+", "-", desc=True, bylex=True, offset=0, num=1
        )
        return as_text(ids[0]) if ids else None

    async def _load(self, thread_id: str, ns: str, checkpoint_id: str) -> CheckpointTuple | None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self._ns_key(thread_id, ns, "cp"), checkpoint_id)
        pipe.hget(self._ns_key(thread_id, ns, "meta"), checkpoint_id)
        pipe.hgetall(self._writes_key(thread_id, ns, checkpoint_id))
        raw_cp, raw_meta, raw_writes = await pipe.execute()
        if raw_cp is None or raw_meta is None:
            return None
        payload = self.serde.loads_typed(unpack(raw_cp))
        meta = json.loads(raw_meta)
        versions: dict[str, Any] = meta["v"]
        values: dict[str, Any] = {}
        if versions:
            channels = list(versions)
            blobs = await self.client.hmget(
                self._ns_key(thread_id, ns, "blobs"),
                [f"{ch}\x00{versions[ch]}" for ch in channels],
            )
            for ch, blob in zip(channels, cast(list[bytes | None], blobs), strict=True):
                if blob is not None and blob != EMPTY:
                    values[ch] = self.serde.loads_typed(unpack(blob))
        checkpoint = cast(
            Checkpoint,
            {**payload["checkpoint"], "channel_values": values, "channel_versions": versions},
        )
        parent_id = meta["p"]
        return CheckpointTuple(
            config={
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": ns,
                    "checkpoint_id": checkpoint_id,
                }
            },
            checkpoint=checkpoint,
            metadata=payload["metadata"],
            parent_config=(
                {
                    "configurable": {
                        "thread_id": thread_id,
                        "checkpoint_ns": ns,
                        "checkpoint_id": parent_id,
                    }
                }
                if parent_id
                else None
            ),
            pending_writes=[(t, c, v) for t, c, v, _ in self._decode_writes(raw_writes)],
        )

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint `config` names, or the thread's latest one."""
        thread_id = str(config["configurable"]["thread_id"])
        ns = config["configurable"].get("checkpoint_ns", "")

        async def run() -> CheckpointTuple | None:
            checkpoint_id = get_checkpoint_id(config) or await self._latest_id(thread_id, ns)
            if checkpoint_id is None:
                return None
            return await self._load(thread_id, ns, checkpoint_id)

        return await self._io(run)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first, optionally filtered by thread, namespace and metadata."""
        try:
            async for tup in self._list(config, filter=filter, before=before, limit=limit):
                yield tup
        except REDIS_DOWN as exc:
            raise RedisUnavailableError(self.url, exc) from exc

    async def _list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> AsyncIterator[CheckpointTuple]:
        if limit is not None and limit <= 0:
            return
        if config is None:
            known = await self.client.smembers(self._threads_key())
            thread_ids = sorted(as_text(t) for t in known)
        else:
            thread_ids = [str(config["configurable"]["thread_id"])]
        wanted_ns = config["configurable"].get("checkpoint_ns") if config else None
        wanted_id = get_checkpoint_id(config) if config else None
        before_id = get_checkpoint_id(before) if before else None
        remaining = limit
        for thread_id in thread_ids:
            if wanted_ns is not None:
                namespaces = [wanted_ns]
            else:
                raw = await self.client.smembers(self._thread_key(thread_id))
                namespaces = sorted(as_text(n) for n in raw)
                if not namespaces and config is None:
                    # Expired or deleted thread (the index is a superset): drop its entry.
                    await self._unindex_threads([thread_id])
            for ns in namespaces:
                if wanted_id is not None:
                    ids = [wanted_id]
                else:
                    top = f"({before_id}" if before_id else "+"
                    found = await self.client.zrange(
                        self._ns_key(thread_id, ns, "idx"), top, "-", desc=True, bylex=True
                    )
                    ids = [as_text(i) for i in found]
                for checkpoint_id in ids:
                    if before_id is not None and not checkpoint_id < before_id:
                        continue
                    tup = await self._load(thread_id, ns, checkpoint_id)
                    if tup is None:
                        continue
                    if filter and any(tup.metadata.get(k) != v for k, v in filter.items()):
                        continue
                    yield tup
                    if remaining is not None:
                        remaining -= 1
                        if remaining <= 0:
                            return

    # Writes -------------------------------------------------------------------------

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint and the blobs of the channels that changed, atomically."""
        thread_id = str(config["configurable"]["thread_id"])
        ns = config["configurable"].get("checkpoint_ns", "")
        checkpoint_id = checkpoint["id"]
        values = checkpoint["channel_values"]
        stored = {
            k: v for k, v in checkpoint.items() if k not in ("channel_values", "channel_versions")
        }
        metadata = get_checkpoint_metadata(config, metadata)
        payload = pack(self.serde.dumps_typed({"checkpoint": stored, "metadata": metadata}))
        run_id = str(metadata.get("run_id") or "")
        meta_fields: dict[str, Any] = {
            "p": config["configurable"].get("checkpoint_id"),
            "v": checkpoint["channel_versions"],
        }
        if run_id:
            meta_fields["r"] = run_id  # `adelete_for_runs` reads this, not the payload
        meta = json.dumps(meta_fields, separators=(",", ":"))
        blobs = {
            f"{ch}\x00{version}": (
                pack(self.serde.dumps_typed(values[ch])) if ch in values else EMPTY
            )
            for ch, version in new_versions.items()
        }
        token = fence_token(config)

        async def run() -> None:
            args: list[str | bytes] = [token, checkpoint_id, payload, meta, ns, run_id]
            for field, blob in blobs.items():
                args += [field, blob]
            keys = [self.fence_key(thread_id)]
            keys += [self._ns_key(thread_id, ns, p) for p in ("cp", "meta", "blobs", "idx")]
            keys.append(self._thread_key(thread_id))
            if run_id:
                keys.append(self._runs_key(thread_id))
            # The global indexes (other slots): before the checkpoint, in its round trip,
            # once per thread (and run) this saver has not indexed yet.
            index_thread = thread_id not in self._indexed_threads
            index_run = bool(run_id) and (run_id, thread_id) not in self._indexed_runs
            before = self._index_entries(thread_id, run_id if index_run else "", index_thread)
            if before and isinstance(self.client, RedisCluster):
                # A cluster pipeline sends to each node at once, in no order between nodes:
                # the entries must be in before the checkpoint is, so they go first, alone.
                await self._send(before)
                before = []
            ttl, new_thread, new_run = await self._fenced_write(
                self._put_script, keys, args, thread_id, token, before
            )
            self._indexed_threads.add(thread_id)
            if run_id:
                self._indexed_runs.add((run_id, thread_id))
            # The thread (or the run in it) was new to Redis although this saver had indexed
            # it: it was deleted or expired since, and its entries may have gone with it.
            again = self._index_entries(
                thread_id,
                run_id if new_run and not index_run else "",
                bool(new_thread) and not index_thread,
            )
            if again:
                await self._send(again)
            if ttl > 0:
                # A finished conversation got new activity: it lives on, as a whole.
                await self._expire_all(thread_id, None)

        await self._write_io(run)
        return {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint_id,
            }
        }

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes; a write already stored is kept (idempotent)."""
        thread_id = str(config["configurable"]["thread_id"])
        ns = config["configurable"].get("checkpoint_ns", "")
        checkpoint_id = config["configurable"]["checkpoint_id"]
        key = self._writes_key(thread_id, ns, checkpoint_id)
        rows: list[tuple[str, bytes, bool]] = []
        for idx, (channel, value) in enumerate(writes):
            inner = WRITES_IDX_MAP.get(channel, idx)
            tag, data = self.serde.dumps_typed(value)
            frame = b"\x00".join((task_path.encode(), channel.encode(), tag.encode(), data))
            # Special writes (errors, interrupts, ...) replace; regular ones are set once.
            rows.append((f"{task_id}\x00{inner}", frame, inner < 0))
        if not rows:
            return

        token = fence_token(config)
        args: list[str | bytes] = [token]
        for field, frame, replace in rows:
            args += [field, frame, "1" if replace else "0"]

        async def run() -> None:
            keys = [self.fence_key(thread_id), key, self._thread_key(thread_id)]
            ttl = await self._fenced_write(self._writes_script, keys, args, thread_id, token)
            if ttl > 0:
                # A finished conversation got new activity: it lives on, as a whole.
                await self._expire_all(thread_id, None)

        await self._write_io(run)

    async def _send(self, commands: Sequence[tuple[Any, ...]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        await pipe.execute()

    def _index_entries(self, thread_id: str, run_id: str, thread: bool) -> list[tuple[str, ...]]:
        """The commands adding `thread_id` to `P:threads` (if `thread`) and to `P:r:R` of
        `run_id` (if any)."""
        commands: list[tuple[str, ...]] = []
        if thread:
            commands.append(("SADD", self._threads_key(), thread_id))
        if run_id:
            commands.append(("SADD", self._run_key(run_id), thread_id))
        return commands

    async def _fenced_write(
        self,
        script: AsyncScript,
        keys: list[str],
        args: list[Any],
        thread_id: str,
        token: str,
        before: Sequence[tuple[Any, ...]] = (),
    ) -> Any:
        """Run a write script (`graph.storage.scripts`), `before` sent just ahead of it, and
        return its reply: FencedError if it refused `token`."""
        try:
            return await self._group_commit(script, keys, args, before)
        except ResponseError as exc:
            raise_if_fenced(exc, thread_id, token)
            raise
