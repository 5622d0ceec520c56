"""The saver's base: key layout, stored encoding, and what its parts share.

As langgraph's checkpoint-postgres keeps its SQL and shared helpers in `base.py` and the
async saver in `aio.py`, the key layout, the scripts' registration and the helpers every
part of the saver uses are here; `history`, `maintenance` and `saver` build on
`BaseRedisSaver` in that order.

Key layout (`P` = prefix, `T` = thread id, `N` = checkpoint namespace, `R` = run id; `%`,
`:` and braces inside T, N and R are percent-encoded (`key_part`) so keys are unambiguous):

    P:t:{T}                set     the thread's namespaces
    P:t:{T}:N:idx          zset    checkpoint ids, score 0, ordered by id (UUID6: by time)
    P:t:{T}:N:cp           hash    id -> checkpoint (without values and versions) + metadata
    P:t:{T}:N:meta         hash    id -> JSON {"p": parent id, "v": channel versions}
    P:t:{T}:N:blobs        hash    channel NUL version -> value (one per channel version)
    P:t:{T}:N:w:ID         hash    task id NUL idx -> task path NUL channel NUL type NUL data
    P:t:{T}:runs           set     run ids of the thread's checkpoints (metadata `run_id`)
    P:t:{T}:fence          string  the thread's current lease generation (`graph.storage.fencing`)
    P:threads              set     thread ids (for `alist(None)`): an index
    P:r:R                  set     the thread(s) run R wrote to (for `adelete_for_runs`): an index

Redis Cluster: every key of one thread carries its hash tag `{T}` (`thread_tag`, shared
with the server's keys of the conversation), so they live in one slot, and every script,
MULTI/EXEC and WATCH of the saver touches one thread's keys only. The two global indexes
are written by single-key commands outside the scripts, and are a superset of the truth:
a thread (a run's thread) is added before its first checkpoint is stored and removed after
its keys are gone, so a crash in between leaves an extra entry, never a missing one, and
their readers skip entries whose thread has no keys. To keep the shared `P:threads` off the
hot path, a saver adds a thread once (and a run's thread once per run), then remembers it
(`_Recent`); the put script tells when a thread it remembered was in fact new (deleted or
expired meanwhile), and the entry is written again.

Writes wait out a short outage (`write_wait_s`, CPA_REDIS_WRITE_WAIT_S): a checkpoint or a
task's writes that find Redis down (a restart; on a Cluster, the slot's primary failing over
to its replica) are tried again for that long before the run is stopped. A run stopped on a
failed write is carried on from its last saved checkpoint, so the ToDos whose results were
not saved run again; a write that waits instead lets the run go on as if nothing happened.
Every write is idempotent (a checkpoint's and a task's fields are set to the same values
again), so a try whose reply was lost is harmless; a run that lost its lease meanwhile is
refused by the fence as ever.

Values are stored as LangGraph's serializer types them (`tag NUL data`, raw bytes, no
base64); a channel version without a value is `EMPTY`.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis
from langgraph.checkpoint.base import BaseCheckpointSaver, writes_sort_key
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from redis.commands.core import AsyncScript

from graph.storage.errors import REDIS_DOWN, RedisUnavailableError
from graph.storage.group_commit import GroupCommit
from graph.storage.outage import retried_within
from graph.storage.scripts import PUT_LUA, WRITES_LUA

__all__ = [
    "EMPTY",
    "STATE_TYPES",
    "BaseRedisSaver",
    "as_text",
    "fence_key",
    "key_part",
    "legacy_key_name",
    "pack",
    "thread_tag",
    "unpack",
]

EMPTY = b"empty\x00"
_T = TypeVar("_T")
_K = TypeVar("_K", bound=Hashable)


def key_part(part: str) -> str:
    """A thread id or namespace as one part of a key: its ':' (subgraph namespaces always
    have one), '%', and the braces of a Redis Cluster hash tag escaped."""
    return part.replace("%", "%25").replace(":", "%3A").replace("{", "%7B").replace("}", "%7D")


def thread_tag(thread_id: str) -> str:
    """The hash tag of every key of one thread (its checkpoints and the server's keys of the
    conversation): `{T}`, so a Redis Cluster keeps them in one slot and a script may touch
    them together. The thread id escaped (`key_part`): no brace inside ends the tag early;
    the empty id is `{%}` (Redis takes `{}` for no tag, and `key_part` never yields a lone %)."""
    return "{" + (key_part(thread_id) or "%") + "}"


def pack(typed: tuple[str, bytes]) -> bytes:
    return typed[0].encode() + b"\x00" + typed[1]


def unpack(raw: bytes) -> tuple[str, bytes]:
    tag, _, data = raw.partition(b"\x00")
    return tag.decode(), data


def as_text(value: Any) -> str:
    """A Redis reply's bytes as text (a str as it is)."""
    return value.decode() if isinstance(value, bytes) else value


def fence_key(prefix: str, thread_id: str) -> str:
    """Where a thread's current lease generation is kept, for the key prefix `prefix`."""
    return f"{prefix.rstrip(':')}:t:{thread_tag(thread_id)}:fence"


# A thread's part of a key in the layout before hash tags: `key_part` without the braces.
_TAGGED = re.compile(r"\{[^{}]*\}")
_NS_PARTS = frozenset(("idx", "cp", "meta", "blobs"))


def legacy_key_name(prefix: str, key: str) -> str | None:
    """The name in this layout of `key`, a checkpoint key of the layout before hash tags
    (`P:t:T...`, T and N escaped without their braces, and `P:r:R` with a brace in R), or
    None when `key` is not one: already in this layout, a global index whose name did not
    change, someone else's key.

    One old name cannot be told from a new one: a thread id that starts with '{', ends with
    '}' and holds no other brace and no ':' (`P:t:{x}...`); it is taken as new (None).
    """
    base = prefix.rstrip(":")
    if key.startswith(f"{base}:r:"):
        run = key[len(base) + 3 :]
        return f"{base}:r:{_escape_braces(run)}" if "{" in run or "}" in run else None
    if not key.startswith(f"{base}:t:"):
        return None
    thread, sep, tail = key[len(base) + 3 :].partition(":")
    if _TAGGED.fullmatch(thread):
        return None
    new = f"{base}:t:{{{_escape_braces(thread) or '%'}}}"
    if not sep:
        return new  # the thread's namespaces
    if tail in ("runs", "fence"):
        return f"{new}:{tail}"
    parts = tail.split(":", 2)
    if (len(parts) == 2 and parts[1] in _NS_PARTS) or (
        len(parts) == 3 and parts[1] == "w" and parts[2]
    ):
        return ":".join([new, _escape_braces(parts[0]), *parts[1:]])
    return None


def _escape_braces(old_part: str) -> str:
    """An old key's part (`%` and `:` escaped) as `key_part` escapes it now."""
    return old_part.replace("{", "%7B").replace("}", "%7D")


class _Recent(Generic[_K]):
    """A bounded set of what a saver has indexed: the oldest entry leaves when it is full
    (forgetting one costs a command the next time, never a missing index entry)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: dict[_K, None] = {}

    def __contains__(self, item: _K) -> bool:
        return item in self._items

    def add(self, item: _K) -> None:
        self._items[item] = None
        if len(self._items) > self.size:
            del self._items[next(iter(self._items))]

    def discard(self, items: Callable[[_K], bool]) -> None:
        """Forget every entry `items` accepts."""
        for item in [i for i in self._items if items(i)]:
            del self._items[item]


# How many threads, and (run, thread) pairs, a saver remembers as indexed.
INDEXED_MEMORY = 10_000

# The classes of ours a checkpoint holds (the state's plan), named to LangGraph's serializer:
# unnamed, each load warns "Deserializing unregistered type" (and a future LangGraph blocks
# it). LangGraph's own safe types (messages, datetimes, ...) need no naming.
STATE_TYPES = (("lam.plan", "Plan"), ("lam.plan", "ToDo"))


class BaseRedisSaver(BaseCheckpointSaver[str]):
    """Keys, errors, versions and the reads the saver's parts share.

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
        write_wait_s: float = 0.0,
    ) -> None:
        super().__init__(serde=serde or JsonPlusSerializer(allowed_msgpack_modules=STATE_TYPES))
        if not prefix or not prefix.strip(":"):
            raise ValueError("the Redis key prefix must not be empty")
        self.client = client
        self.prefix = prefix.rstrip(":")
        self.ttl_s = ttl_s
        self.url = url
        self.write_wait_s = write_wait_s
        self._group_commit = GroupCommit(client)
        # What this saver has put in `P:threads` and `P:r:R` (thread, and (run, thread)).
        self._indexed_threads: _Recent[str] = _Recent(INDEXED_MEMORY)
        self._indexed_runs: _Recent[tuple[str, str]] = _Recent(INDEXED_MEMORY)
        # Lua scripts, so that a checkpoint or a task's writes land atomically in one round
        # trip (EVALSHA; redis-py reloads a script the server has forgotten after a restart).
        self._put_script = client.register_script(PUT_LUA)
        self._writes_script = client.register_script(WRITES_LUA)

    # Keys ---------------------------------------------------------------------------

    def _threads_key(self) -> str:
        return f"{self.prefix}:threads"

    def _thread_key(self, thread_id: str) -> str:
        return f"{self.prefix}:t:{thread_tag(thread_id)}"

    def _ns_key(self, thread_id: str, ns: str, part: str) -> str:
        return f"{self.prefix}:t:{thread_tag(thread_id)}:{key_part(ns)}:{part}"

    def _writes_key(self, thread_id: str, ns: str, checkpoint_id: str) -> str:
        return self._ns_key(thread_id, ns, f"w:{checkpoint_id}")

    def _runs_key(self, thread_id: str) -> str:
        return f"{self.prefix}:t:{thread_tag(thread_id)}:runs"

    def _run_key(self, run_id: str) -> str:
        return f"{self.prefix}:r:{key_part(run_id)}"

    def fence_key(self, thread_id: str) -> str:
        """The thread's current lease generation (set by `graph.storage.leases`)."""
        return fence_key(self.prefix, thread_id)

    # Errors -------------------------------------------------------------------------

    async def _io(self, call: Callable[[], Awaitable[_T]]) -> _T:
        try:
            return await call()
        except REDIS_DOWN as exc:
            raise RedisUnavailableError(self.url, exc) from exc

    async def _write_io(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """A write: `call()` tried again while Redis is down, for `write_wait_s` at most."""
        return await self._io(lambda: retried_within(call, self.write_wait_s))

    async def call_script(
        self,
        script: AsyncScript,
        keys: list[str],
        args: list[Any],
        before: Sequence[tuple[Any, ...]] = (),
    ) -> Any:
        """Run a script registered on this saver's client, in its group commit.

        It goes out with the checkpoint writes in flight at that moment (one round trip for
        all), keeps its own atomicity and its place in the order, and its result or error
        (a `ResponseError`) comes back to this caller alone. `before`: commands sent just
        before it in the same round trip (not atomically with it). A write, it waits out a
        short outage as the saver's own do (`write_wait_s`): the script and `before` must be
        idempotent (the event log's append is).
        """
        return await retried_within(
            lambda: self._group_commit(script, keys, args, before), self.write_wait_s
        )

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

    # Reads shared by the parts ----------------------------------------------------

    async def _thread_keys(self, thread_id: str) -> list[str]:
        """Every key of a thread: its own (`_own_keys`), and the index of each of its runs."""
        own, run_keys = await self._own_keys(thread_id)
        return own + run_keys

    async def _own_keys(self, thread_id: str) -> tuple[list[str], list[str]]:
        """The thread's own keys (namespaces, per namespace its fixed keys and writes, runs,
        fence), all in its slot; and the run indexes that name it (`P:r:R`, elsewhere)."""
        thread_key = self._thread_key(thread_id)
        namespaces = [as_text(n) for n in await self.client.smembers(thread_key)]
        pipe = self.client.pipeline(transaction=False)
        for ns in namespaces:
            pipe.zrange(self._ns_key(thread_id, ns, "idx"), 0, -1)
        pipe.smembers(self._runs_key(thread_id))
        *id_lists, run_ids = await pipe.execute()
        keys = [thread_key, self._runs_key(thread_id), self.fence_key(thread_id)]
        for ns, ids in zip(namespaces, id_lists, strict=True):
            keys += [self._ns_key(thread_id, ns, p) for p in ("idx", "cp", "meta", "blobs")]
            keys += [self._writes_key(thread_id, ns, as_text(i)) for i in ids]
        return keys, [self._run_key(as_text(r)) for r in run_ids]

    async def athread_keys(self, thread_id: str) -> list[str]:
        """Every key of a thread (what a quota measures)."""
        return await self._io(lambda: self._thread_keys(thread_id))

    async def _namespaces(self, thread_id: str) -> list[str]:
        return sorted(as_text(n) for n in await self.client.smembers(self._thread_key(thread_id)))

    async def _metas(self, thread_id: str, ns: str) -> dict[str, dict[str, Any]]:
        """Checkpoint id -> {"p": parent id, "v": channel versions[, "r": run id]}."""
        raw = await self.client.hgetall(self._ns_key(thread_id, ns, "meta"))
        return {as_text(k): json.loads(v) for k, v in raw.items()}

    def _decode_writes(
        self, raw: Mapping[bytes, bytes], channel_filter: str | None = None
    ) -> list[tuple[str, str, Any, str]]:
        """Writes of one checkpoint as (task id, channel, value, task path), in replay order;
        with `channel_filter`, that channel's only (the others are not even deserialised)."""
        rows: list[tuple[tuple[str, str, int], str, str, Any]] = []
        for field, value in raw.items():
            path, channel, tag, data = value.split(b"\x00", 3)
            if channel_filter is not None and as_text(channel) != channel_filter:
                continue
            task_id, _, idx = as_text(field).rpartition("\x00")
            rows.append(
                (
                    writes_sort_key(as_text(path), task_id, int(idx)),
                    task_id,
                    as_text(channel),
                    self.serde.loads_typed((as_text(tag), data)),
                )
            )
        rows.sort(key=lambda row: row[0])
        return [(task_id, ch, v, key[0]) for key, task_id, ch, v in rows]

    async def aping(self) -> None:
        """Raise RedisUnavailableError unless the server answers."""
        await self._io(self.client.ping)

    async def aclose(self) -> None:
        await self.client.aclose()
