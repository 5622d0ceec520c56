"""Redis checkpoints on plain Redis commands (Redis >= 7, Valkey >= 8, no modules).

Why our own saver and not langgraph-checkpoint-plainredis: see docs/checkpointer.md (measured).
In short: the LAM log is a `DeltaChannel`, so each message is stored once as a pending write;
this saver stores those writes as raw bytes (no base64), keeps a conversation in a fixed set
of keys so a finished one can be given a TTL as a whole, and replays delta writes in LangGraph's
`writes_sort_key` order (task path first), which keeps parallel branches' messages in the order
the live run produced.

Key layout (`P` = prefix, `T` = thread id, `N` = checkpoint namespace; `%` and `:` inside T
and N are percent-encoded so keys are unambiguous):

    P:threads              set     every thread id (for `alist(None)`)
    P:t:T                  set     the thread's namespaces
    P:t:T:N:idx            zset    checkpoint ids, score 0, ordered by id (UUID6: by time)
    P:t:T:N:cp             hash    id -> checkpoint (without values and versions) + metadata
    P:t:T:N:meta           hash    id -> JSON {"p": parent id, "v": channel versions}
    P:t:T:N:blobs          hash    channel NUL version -> value (one per channel version)
    P:t:T:N:w:ID           hash    task id NUL idx -> task path NUL channel NUL type NUL data
    P:t:T:runs             set     run ids of the thread's checkpoints (metadata `run_id`)
    P:r:R                  set     the thread(s) run R wrote to (for `adelete_for_runs`)
    P:t:T:fence            string  the thread's current lease generation (fencing, below)

Fencing: the server runs each conversation under a lease (`api.leases`) whose generation
it passes as `configurable["fence_token"]`; LangGraph hands the run's config to `aput` and
`aput_writes`, whose scripts then refuse (`FencedError`) a write whose generation is not the
thread's current one, so a runner that was paused past its lease and comes back cannot
write over its successor's checkpoints. Runs without the key (CLI, Studio) write unfenced.

A checkpoint (payload, versions, blobs, index) and a task's writes are each stored by one Lua
script (EVAL is core Redis: atomic, and replicated to the append-only file as one transaction),
so a crash of the app or of Redis leaves either all of it or none of it.

Besides LangGraph's base API: `adelete_for_runs`, `acopy_thread` and `aprune` (LangGraph
API server and Studio call them), each aware of the `DeltaChannel` (a pruned or copied thread
keeps every ancestor its log is rebuilt from).

Entry points: `open_checkpointer()` (the app, the CLI, tests) and `checkpointer()` (the
`"checkpointer": {"path": ...}` key of langgraph.json, loaded standalone by the dev server,
hence the absolute imports).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import redis.asyncio as aioredis
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
    PendingWrite,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError, WatchError

from graph.config import ConfigError, Settings
from graph.redis_sentinel import is_sentinel_url, sentinel_client
from graph.redis_url import check_redis_url
from graph.storage.errors import REDIS_DOWN, RedisUnavailableError
from graph.storage.fencing import FENCE_PRELUDE, fence_token, raise_if_fenced

__all__ = ["RedisSaver", "checkpointer", "fence_key", "open_checkpointer"]

# Short timeouts: a server that is down must be reported in seconds, never hang a run.
CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 64
_EMPTY = b"empty\x00"
_T = TypeVar("_T")
_PRUNE_STRATEGIES = ("keep_latest", "delete", "delete_all")  # "delete_all": LangGraph API's name
# KEYS: fence, cp, meta, blobs, idx, thread, threads[, runs, run]. ARGV: fence token ("" for
# none), id, payload, meta, thread id, ns, run id ("" for none), blobs... Returns the thread
# key's PTTL (> 0: marked finished).
_PUT_LUA = (
    FENCE_PRELUDE
    + """
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
if #ARGV > 7 then redis.call('HSET', KEYS[4], unpack(ARGV, 8)) end
redis.call('ZADD', KEYS[5], 0, ARGV[2])
redis.call('SADD', KEYS[6], ARGV[6])
redis.call('SADD', KEYS[7], ARGV[5])
if #KEYS > 7 then
  redis.call('SADD', KEYS[8], ARGV[7])
  redis.call('SADD', KEYS[9], ARGV[5])
end
return redis.call('PTTL', KEYS[6])
"""
)
# KEYS: fence, writes, thread. ARGV: fence token, then (field, frame, replace) triples.
# Returns the thread's PTTL.
_WRITES_LUA = (
    FENCE_PRELUDE
    + """
for i = 2, #ARGV, 3 do
  if ARGV[i + 2] == '1' then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  else
    redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1])
  end
end
return redis.call('PTTL', KEYS[3])
"""
)


def _key_part(part: str) -> str:
    """A thread id or namespace as one part of a key: its ':' (subgraph namespaces always
    have one) and '%' escaped."""
    return part.replace("%", "%25").replace(":", "%3A")


def _pack(typed: tuple[str, bytes]) -> bytes:
    return typed[0].encode() + b"\x00" + typed[1]


def _unpack(raw: bytes) -> tuple[str, bytes]:
    tag, _, data = raw.partition(b"\x00")
    return tag.decode(), data


def _as_text(value: Any) -> str:
    """A Redis reply's bytes as text (a str as it is)."""
    return value.decode() if isinstance(value, bytes) else value


def fence_key(prefix: str, thread_id: str) -> str:
    """Where a thread's current lease generation is kept, for the key prefix `prefix`."""
    return f"{prefix.rstrip(':')}:t:{_key_part(thread_id)}:fence"


# The classes of ours a checkpoint holds (the state's plan), named to LangGraph's serializer:
# unnamed, each load warns "Deserializing unregistered type" (and a future LangGraph blocks
# it). LangGraph's own safe types (messages, datetimes, ...) need no naming.
STATE_TYPES = (("lam.plan", "Plan"), ("lam.plan", "ToDo"))


class RedisSaver(BaseCheckpointSaver[str]):
    """Async LangGraph checkpoint saver on plain Redis commands.

    Only the async API is implemented: every entry point (CLI, server, dev server, tests)
    drives the graph with `ainvoke`/`astream`. The sync methods raise NotImplementedError.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "cpa",
        ttl_s: int | None = None,
        url: str = "redis://?",
        serde: Any = None,
    ) -> None:
        super().__init__(serde=serde or JsonPlusSerializer(allowed_msgpack_modules=STATE_TYPES))
        if not prefix or not prefix.strip(":"):
            raise ValueError("the Redis key prefix must not be empty")
        self.client = client
        self.prefix = prefix.rstrip(":")
        self.ttl_s = ttl_s
        self.url = url
        # Lua scripts, so that a checkpoint or a task's writes land atomically in one round
        # trip (EVALSHA; redis-py reloads a script the server has forgotten after a restart).
        self._put_script = client.register_script(_PUT_LUA)
        self._writes_script = client.register_script(_WRITES_LUA)
        # Group commit: script calls issued while others are in flight go out together in
        # one pipeline (one round trip; each script stays atomic, order is kept). A round
        # trip is the main cost of a checkpoint, and LangGraph issues a task's writes and the
        # next checkpoint concurrently. Every caller still awaits its own call's reply.
        self._queue: list[tuple[AsyncScript, list[str], list[Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    # Keys ---------------------------------------------------------------------------

    def _threads_key(self) -> str:
        return f"{self.prefix}:threads"

    def _thread_key(self, thread_id: str) -> str:
        return f"{self.prefix}:t:{_key_part(thread_id)}"

    def _ns_key(self, thread_id: str, ns: str, part: str) -> str:
        return f"{self.prefix}:t:{_key_part(thread_id)}:{_key_part(ns)}:{part}"

    def _writes_key(self, thread_id: str, ns: str, checkpoint_id: str) -> str:
        return self._ns_key(thread_id, ns, f"w:{checkpoint_id}")

    def _runs_key(self, thread_id: str) -> str:
        return f"{self.prefix}:t:{_key_part(thread_id)}:runs"

    def _run_key(self, run_id: str) -> str:
        return f"{self.prefix}:r:{_key_part(run_id)}"

    def fence_key(self, thread_id: str) -> str:
        """The thread's current lease generation (set by the server's leases, `api.leases`)."""
        return fence_key(self.prefix, thread_id)

    # Errors -------------------------------------------------------------------------

    async def _io(self, call: Callable[[], Awaitable[_T]]) -> _T:
        try:
            return await call()
        except REDIS_DOWN as exc:
            raise RedisUnavailableError(self.url, exc) from exc

    async def call_script(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        """Run a script registered on this saver's client, in its group commit.

        It goes out with the checkpoint writes in flight at that moment (one round trip for
        all), keeps its own atomicity and its place in the order, and its result or error
        (a `ResponseError`) comes back to this caller alone.
        """
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, keys, args, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                if len(batch) == 1:
                    script, keys, args, _ = batch[0]
                    results: list[Any] = [await script(keys=keys, args=args)]
                else:
                    results = await self._pipelined(batch)
            except BaseException as exc:
                results = [exc] * len(batch)
            for (*_, future), result in zip(batch, results, strict=True):
                if future.done():  # its caller was cancelled
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def _pipelined(
        self, batch: list[tuple[AsyncScript, list[str], list[Any], asyncio.Future[Any]]]
    ) -> list[Any]:
        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            for script, keys, args, _ in batch:
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            results = await pipe.execute(raise_on_error=False)
            if attempt == 0 and any(isinstance(r, NoScriptError) for r in results):
                # The server lost its script cache (a restart): load, then send again.
                # Scripts are idempotent per checkpoint and write, so a resend is harmless.
                for script in {item[0] for item in batch}:
                    await self.client.script_load(script.script)
                continue
            return list(results)
        return list(results)

    # Versions -----------------------------------------------------------------------

    def get_next_version(self, current: str | None, channel: None) -> str:
        # InMemorySaver's scheme (zero-padded counter, so strings sort like numbers; a random
        # tail so two forks of a thread never share a blob key), but 20 characters instead
        # of 49: versions are repeated in every checkpoint, so their length is stored bytes.
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(str(current).split(".")[0])
        return f"{current_v + 1:012}.{random.getrandbits(28):07x}"

    # Reads --------------------------------------------------------------------------

    async def _latest_id(self, thread_id: str, ns: str) -> str | None:
        ids = await self.client.zrange(
            self._ns_key(thread_id, ns, "idx"), "+", "-", desc=True, bylex=True, offset=0, num=1
        )
        return _as_text(ids[0]) if ids else None

    async def _load(self, thread_id: str, ns: str, checkpoint_id: str) -> CheckpointTuple | None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self._ns_key(thread_id, ns, "cp"), checkpoint_id)
        pipe.hget(self._ns_key(thread_id, ns, "meta"), checkpoint_id)
        pipe.hgetall(self._writes_key(thread_id, ns, checkpoint_id))
        raw_cp, raw_meta, raw_writes = await pipe.execute()
        if raw_cp is None or raw_meta is None:
            return None
        payload = self.serde.loads_typed(_unpack(raw_cp))
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
                if blob is not None and blob != _EMPTY:
                    values[ch] = self.serde.loads_typed(_unpack(blob))
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

    def _decode_writes(
        self, raw: Mapping[bytes, bytes], channel_filter: str | None = None
    ) -> list[tuple[str, str, Any, str]]:
        """Writes of one checkpoint as (task id, channel, value, task path), in replay order;
        with `channel_filter`, that channel's only (the others are not even deserialised)."""
        rows: list[tuple[tuple[str, str, int], str, str, Any]] = []
        for field, value in raw.items():
            path, channel, tag, data = value.split(b"\x00", 3)
            if channel_filter is not None and _as_text(channel) != channel_filter:
                continue
            task_id, _, idx = _as_text(field).rpartition("\x00")
            rows.append(
                (
                    writes_sort_key(_as_text(path), task_id, int(idx)),
                    task_id,
                    _as_text(channel),
                    self.serde.loads_typed((_as_text(tag), data)),
                )
            )
        rows.sort(key=lambda row: row[0])
        return [(task_id, ch, v, key[0]) for key, task_id, ch, v in rows]

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
            thread_ids = sorted(_as_text(t) for t in known)
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
                namespaces = sorted(_as_text(n) for n in raw)
                if not namespaces and config is None:
                    # Expired or deleted thread: drop it from the registry.
                    await self.client.srem(self._threads_key(), thread_id)
            for ns in namespaces:
                if wanted_id is not None:
                    ids = [wanted_id]
                else:
                    top = f"({before_id}" if before_id else "+"
                    found = await self.client.zrange(
                        self._ns_key(thread_id, ns, "idx"), top, "-", desc=True, bylex=True
                    )
                    ids = [_as_text(i) for i in found]
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
        payload = _pack(self.serde.dumps_typed({"checkpoint": stored, "metadata": metadata}))
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
                _pack(self.serde.dumps_typed(values[ch])) if ch in values else _EMPTY
            )
            for ch, version in new_versions.items()
        }
        thread_key = self._thread_key(thread_id)
        token = fence_token(config)

        async def run() -> None:
            args: list[str | bytes] = [token, checkpoint_id, payload, meta, thread_id, ns, run_id]
            for field, blob in blobs.items():
                args += [field, blob]
            keys = [self.fence_key(thread_id)]
            keys += [self._ns_key(thread_id, ns, p) for p in ("cp", "meta", "blobs", "idx")]
            keys += [thread_key, self._threads_key()]
            if run_id:
                keys += [self._runs_key(thread_id), self._run_key(run_id)]
            try:
                ttl = await self.call_script(self._put_script, keys, args)
            except ResponseError as exc:
                raise_if_fenced(exc, thread_id, token)
                raise
            if ttl > 0:
                # A finished conversation got new activity: it lives on, as a whole.
                await self._expire_all(thread_id, None)

        await self._io(run)
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
            try:
                ttl = await self.call_script(self._writes_script, keys, args)
            except ResponseError as exc:
                raise_if_fenced(exc, thread_id, token)
                raise
            if ttl > 0:
                await self._expire_all(thread_id, None)

        await self._io(run)

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, blob and write of a thread."""

        async def run() -> None:
            keys = await self._thread_keys(thread_id)
            pipe = self.client.pipeline(transaction=True)
            if keys:
                pipe.delete(*keys)
            pipe.srem(self._threads_key(), thread_id)
            await pipe.execute()

        await self._io(run)

    # Conversation lifetime ----------------------------------------------------------

    async def _thread_keys(self, thread_id: str) -> list[str]:
        """Every key of a thread: namespaces, per namespace its fixed keys and writes, runs."""
        thread_key = self._thread_key(thread_id)
        namespaces = [_as_text(n) for n in await self.client.smembers(thread_key)]
        pipe = self.client.pipeline(transaction=False)
        for ns in namespaces:
            pipe.zrange(self._ns_key(thread_id, ns, "idx"), 0, -1)
        pipe.smembers(self._runs_key(thread_id))
        *id_lists, run_ids = await pipe.execute()
        keys = [thread_key, self._runs_key(thread_id), self.fence_key(thread_id)]
        keys += [self._run_key(_as_text(r)) for r in run_ids]
        for ns, ids in zip(namespaces, id_lists, strict=True):
            keys += [self._ns_key(thread_id, ns, p) for p in ("idx", "cp", "meta", "blobs")]
            keys += [self._writes_key(thread_id, ns, _as_text(i)) for i in ids]
        return keys

    async def athread_keys(self, thread_id: str) -> list[str]:
        """Every key of a thread (what a quota measures)."""
        return await self._io(lambda: self._thread_keys(thread_id))

    async def aforget_gone_threads(self, batch: int = 500) -> int:
        """Drop from `P:threads` the threads whose keys expired; returns how many."""

        async def run() -> int:
            gone = 0
            async for chunk in _chunks(
                self.client.sscan_iter(self._threads_key(), count=batch), batch
            ):
                pipe = self.client.pipeline(transaction=False)
                for thread_id in chunk:
                    pipe.exists(self._thread_key(_as_text(thread_id)))
                dead = [
                    t for t, alive in zip(chunk, await pipe.execute(), strict=True) if not alive
                ]
                if dead:
                    gone += await self.client.srem(self._threads_key(), *dead)
            return gone

        return await self._io(run)

    async def _expire_all(self, thread_id: str, ttl_s: int | None) -> int:
        keys = await self._thread_keys(thread_id)
        pipe = self.client.pipeline(transaction=True)
        for key in keys:
            if ttl_s is None:
                pipe.persist(key)
            else:
                pipe.expire(key, ttl_s)
        return sum(bool(r) for r in await pipe.execute())  # keys that exist

    async def expire_conversation(self, thread_id: str, ttl_s: int | None = None) -> int:
        """Give a finished (done or failed) conversation a TTL, all its keys at once.

        `ttl_s` defaults to the saver's `ttl_s` (CPA_REDIS_TTL); with neither, nothing
        expires. New activity on the conversation (a checkpoint or a write) removes the TTL
        again. Returns the number of keys that got it.
        """
        ttl = ttl_s if ttl_s is not None else self.ttl_s
        if ttl is None:
            return 0
        return await self._io(lambda: self._expire_all(thread_id, ttl))

    async def aping(self) -> None:
        """Raise RedisUnavailableError unless the server answers."""
        await self._io(self.client.ping)

    async def aclose(self) -> None:
        await self.client.aclose()

    # DeltaChannel support -----------------------------------------------------------

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Walk the parent chain once for all channels (same contract as InMemorySaver's).

        Three round trips whatever the chain length: all parents and versions of the
        namespace, the blobs of the requested channels along the chain, the chain's writes.
        """
        if not channels:
            return {}
        return await self._io(lambda: self._delta_history(config, channels))

    async def _delta_history(
        self, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        thread_id = str(config["configurable"]["thread_id"])
        ns = config["configurable"].get("checkpoint_ns", "")
        metas = await self._metas(thread_id, ns)
        target = get_checkpoint_id(config) or max(metas, default=None)
        walk, seeds = await self._walk_to_seeds(thread_id, ns, metas, target, channels)

        pipe = self.client.pipeline(transaction=False)
        for cp in walk:
            pipe.hgetall(self._writes_key(thread_id, ns, cp))
        raw_writes = await pipe.execute() if walk else []

        result: dict[str, DeltaChannelHistory] = {}
        for ch in channels:
            last = seeds[ch][0] if ch in seeds else len(walk) - 1
            collected: list[PendingWrite] = []
            # Oldest ancestor first; within one checkpoint, in writes_sort_key order.
            for pos in range(last, -1, -1):
                for task_id, channel, value, _path in self._decode_writes(raw_writes[pos], ch):
                    collected.append((task_id, channel, value))
            entry: DeltaChannelHistory = {"writes": collected}
            if ch in seeds:
                entry["seed"] = self.serde.loads_typed(_unpack(seeds[ch][1]))
            result[ch] = entry
        return result

    async def _metas(self, thread_id: str, ns: str) -> dict[str, dict[str, Any]]:
        """Checkpoint id -> {"p": parent id, "v": channel versions[, "r": run id]}."""
        raw = await self.client.hgetall(self._ns_key(thread_id, ns, "meta"))
        return {_as_text(k): json.loads(v) for k, v in raw.items()}

    async def _walk_to_seeds(
        self,
        thread_id: str,
        ns: str,
        metas: Mapping[str, Mapping[str, Any]],
        target: str | None,
        channels: Sequence[str] | set[str],
    ) -> tuple[list[str], dict[str, tuple[int, bytes]]]:
        """The ancestors of `target` (nearest first) that `channels` are rebuilt from.

        The walk ends at the ancestor where the last channel finds a stored value (its
        seed), or at the root. Returns the walk and, per channel that found one, the seed's
        position in the walk and its blob.
        """
        chain: list[str] = []
        current = metas[target]["p"] if target is not None and target in metas else None
        while current is not None and current in metas:
            chain.append(current)
            current = metas[current]["p"]

        # Which blob each channel has at each ancestor; fetch them in one go.
        fields = sorted(
            {
                f"{ch}\x00{metas[cp]['v'][ch]}"
                for cp in chain
                for ch in channels
                if ch in metas[cp]["v"]
            }
        )
        blobs: dict[str, bytes | None] = {}
        if fields:
            got = await self.client.hmget(self._ns_key(thread_id, ns, "blobs"), fields)
            blobs = dict(zip(fields, cast(list[bytes | None], got), strict=True))

        seeds: dict[str, tuple[int, bytes]] = {}
        walk: list[str] = []
        remaining = set(channels)
        for pos, cp in enumerate(chain):
            if not remaining:
                break
            walk.append(cp)
            for ch in list(remaining):
                version = metas[cp]["v"].get(ch)
                blob = blobs.get(f"{ch}\x00{version}") if version is not None else None
                if blob is not None and blob != _EMPTY:
                    seeds[ch] = (pos, blob)
                    remaining.discard(ch)
        return walk, seeds

    # Maintenance: runs, copies, pruning (LangGraph API server and Studio call these) --------

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints these runs made, with their writes, in every namespace.

        Runs are found through the run index (`P:r:R`), so only checkpoints stored with a
        metadata `run_id` by this saver are found. As LangGraph warns: deleting a run whose
        writes a later checkpoint's delta channel is rebuilt from breaks that checkpoint;
        rolling back the newest run (what the API server does) is safe.
        """
        wanted = {str(r) for r in run_ids}
        if not wanted:
            return

        async def run() -> None:
            pipe = self.client.pipeline(transaction=False)
            for run_id in sorted(wanted):
                pipe.smembers(self._run_key(run_id))
            threads = sorted({_as_text(t) for members in await pipe.execute() for t in members})

            async def made_by_the_runs(metas: dict[str, dict[str, Any]]) -> set[str]:
                return {cp for cp, meta in metas.items() if meta.get("r") in wanted}

            for thread_id in threads:
                for ns in await self._namespaces(thread_id):
                    await self._drop_checkpoints(thread_id, ns, made_by_the_runs)
                await self.client.srem(self._runs_key(thread_id), *wanted)
            await self.client.delete(*(self._run_key(r) for r in wanted))

        await self._io(run)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, write and blob of a thread to another, all namespaces.

        The whole history is copied (a delta channel is rebuilt from its ancestors' writes);
        a checkpoint's metadata `thread_id`, where there is one, names the target. What the
        target already held stays unless the copy overwrites it (same checkpoint ids).
        """
        if source_thread_id == target_thread_id:
            return

        async def run() -> None:
            namespaces = await self._namespaces(source_thread_id)
            if not namespaces:
                return
            src, dst = source_thread_id, target_thread_id
            tx = self.client.pipeline(transaction=True)
            run_ids: set[str] = set()
            for ns in namespaces:
                read = self.client.pipeline(transaction=False)
                for part in ("idx", "cp", "meta", "blobs"):
                    if part == "idx":
                        read.zrange(self._ns_key(src, ns, part), 0, -1)
                    else:
                        read.hgetall(self._ns_key(src, ns, part))
                ids, cps, metas, blobs = await read.execute()
                ids = [_as_text(i) for i in ids]
                read = self.client.pipeline(transaction=False)
                for cp in ids:
                    read.hgetall(self._writes_key(src, ns, cp))
                writes = await read.execute() if ids else []
                if ids:
                    tx.zadd(self._ns_key(dst, ns, "idx"), dict.fromkeys(ids, 0))
                if cps:
                    retargeted = {k: self._retarget(v, dst) for k, v in cps.items()}
                    tx.hset(self._ns_key(dst, ns, "cp"), mapping=retargeted)
                if metas:
                    tx.hset(self._ns_key(dst, ns, "meta"), mapping=metas)
                    run_ids |= {m["r"] for m in map(json.loads, metas.values()) if m.get("r")}
                if blobs:
                    tx.hset(self._ns_key(dst, ns, "blobs"), mapping=blobs)
                for cp, rows in zip(ids, writes, strict=True):
                    if rows:
                        tx.hset(self._writes_key(dst, ns, cp), mapping=rows)
            tx.sadd(self._thread_key(dst), *namespaces)
            tx.sadd(self._threads_key(), dst)
            if run_ids:
                tx.sadd(self._runs_key(dst), *run_ids)
                for run_id in run_ids:
                    tx.sadd(self._run_key(run_id), dst)
            await tx.execute()

        await self._io(run)

    def _retarget(self, raw_payload: bytes, thread_id: str) -> bytes:
        """A stored checkpoint payload whose metadata `thread_id` (if any) is `thread_id`."""
        payload = self.serde.loads_typed(_unpack(raw_payload))
        if "thread_id" not in payload["metadata"]:
            return raw_payload
        payload["metadata"] = {**payload["metadata"], "thread_id": thread_id}
        return _pack(self.serde.dumps_typed(payload))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Drop old checkpoints: `keep_latest` keeps each namespace's latest, `delete` all.

        `keep_latest` also keeps the ancestors (and their writes) that the latest
        checkpoint's delta channels are rebuilt from, back to each one's nearest snapshot:
        for the LAM log (a snapshot every 1000 updates) usually the latest's whole chain.
        What goes are the other branches (forks, time travel) and the blobs nothing kept
        refers to. `delete_all` is accepted for `delete` (LangGraph API's name).
        """
        if strategy not in _PRUNE_STRATEGIES:
            raise ValueError(
                f"unknown prune strategy {strategy!r}; expected one of: "
                + ", ".join(_PRUNE_STRATEGIES)
            )
        for thread_id in dict.fromkeys(str(t) for t in thread_ids):
            if strategy != "keep_latest":
                await self.adelete_thread(thread_id)
                continue

            async def run(thread_id: str = thread_id) -> None:
                for ns in await self._namespaces(thread_id):

                    async def drop(metas: dict[str, dict[str, Any]], ns: str = ns) -> set[str]:
                        kept = await self._needed_by_latest(thread_id, ns, metas)
                        return set(metas) - kept

                    await self._drop_checkpoints(thread_id, ns, drop)

            await self._io(run)

    async def _needed_by_latest(
        self, thread_id: str, ns: str, metas: dict[str, dict[str, Any]]
    ) -> set[str]:
        """The latest checkpoint and the ancestors its delta channels are rebuilt from."""
        if not metas:
            return set()
        latest = max(metas)  # UUID6 ids sort by time
        raw = await self.client.hget(self._ns_key(thread_id, ns, "cp"), latest)
        if raw is None:
            return {latest}
        metadata = self.serde.loads_typed(_unpack(cast(bytes, raw)))["metadata"]
        # LangGraph counts, per delta channel, the updates since its last snapshot; a channel
        # listed there is not stored whole at `latest` and needs its ancestors' writes.
        rebuilt = set(metadata.get("counters_since_delta_snapshot") or {})
        walk, _ = await self._walk_to_seeds(thread_id, ns, metas, latest, rebuilt)
        return {latest, *walk}

    async def _namespaces(self, thread_id: str) -> list[str]:
        return sorted(_as_text(n) for n in await self.client.smembers(self._thread_key(thread_id)))

    async def _drop_checkpoints(
        self,
        thread_id: str,
        ns: str,
        choose: Callable[[dict[str, dict[str, Any]]], Awaitable[set[str]]],
    ) -> None:
        """Delete the checkpoints `choose(metas)` names, their writes, and orphaned blobs.

        One transaction, watched: a checkpoint stored meanwhile makes it start over, so a
        blob is never dropped while a new checkpoint refers to it.
        """
        idx, cp_key, meta_key, blobs_key = (
            self._ns_key(thread_id, ns, p) for p in ("idx", "cp", "meta", "blobs")
        )
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(meta_key)
                    raw = await pipe.hgetall(meta_key)
                    metas = {_as_text(k): json.loads(v) for k, v in raw.items()}
                    drop = await choose(metas) & set(metas)
                    if not drop:
                        return  # leaving the block resets the pipeline: UNWATCH
                    kept = [metas[cp] for cp in metas if cp not in drop]
                    referenced = {f"{ch}\x00{v}" for m in kept for ch, v in m["v"].items()}
                    fields = await pipe.hkeys(blobs_key)
                    orphans = [f for f in fields if _as_text(f) not in referenced]
                    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                    pipe.hdel(cp_key, *drop)
                    pipe.hdel(meta_key, *drop)
                    pipe.zrem(idx, *drop)
                    pipe.delete(*(self._writes_key(thread_id, ns, cp) for cp in drop))
                    if orphans:
                        pipe.hdel(blobs_key, *orphans)
                    if not kept:
                        pipe.srem(self._thread_key(thread_id), ns)
                    await pipe.execute()
                    return
                except WatchError:
                    continue


async def _chunks(items: AsyncIterator[Any], size: int) -> AsyncIterator[list[Any]]:
    chunk: list[Any] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def make_client(url: str) -> aioredis.Redis:
    """An asyncio Redis client with timeouts and a short retry, so nothing hangs.

    Its pool is bounded and *waits* for a free connection (up to the read timeout) rather
    than failing: a burst of requests (200 SSE clients connecting at once) queues for a
    moment instead of getting "Too many connections". A `redis+sentinel://` URL gives a
    client of the sentinels' primary, which follows it through a failover
    (`graph.redis_sentinel`).
    """
    options: dict[str, Any] = {
        "max_connections": MAX_CONNECTIONS,
        "timeout": READ_TIMEOUT_S,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_timeout": READ_TIMEOUT_S,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        "decode_responses": False,
    }
    if is_sentinel_url(url):
        return sentinel_client(url, **options)
    return aioredis.Redis.from_pool(BlockingConnectionPool.from_url(url, **options))


@asynccontextmanager
async def open_checkpointer(settings: Settings | None = None) -> AsyncIterator[RedisSaver]:
    """The app's checkpointer: Redis at REDIS_URL, or the embedded Valkey without one.

    Raises RedisUnavailableError (quickly) when the server does not answer.
    """
    settings = settings or Settings.from_env()
    if settings.redis_url:
        async with _saver_for(settings.redis_url, settings) as saver:
            yield saver
        return
    from graph.redis_embedded import ensure_embedded_redis, release_embedded_redis

    # Starting (or joining) the embedded server touches the disk and waits on a process:
    # off the event loop, which `langgraph dev` watches for blocking calls.
    url = await asyncio.to_thread(ensure_embedded_redis, settings)
    try:
        async with _saver_for(url, settings) as saver:
            yield saver
    finally:
        await asyncio.to_thread(release_embedded_redis, settings)


@asynccontextmanager
async def _saver_for(url: str, settings: Settings) -> AsyncIterator[RedisSaver]:
    try:
        check_redis_url(url)
        client = make_client(url)
    except ValueError as exc:  # malformed: a bad setting, not a Redis that cannot be reached
        raise ConfigError(f"bad setting redis_url (CPA_REDIS_URL, REDIS_URL): {exc}") from None
    saver = RedisSaver(client, prefix=settings.redis_prefix, ttl_s=settings.redis_ttl_s, url=url)
    try:
        await saver.aping()
        yield saver
    finally:
        await saver.aclose()


def checkpointer() -> Any:
    """For langgraph.json: `"checkpointer": {"path": "./graph/checkpointer.py:checkpointer"}`."""
    return open_checkpointer()
