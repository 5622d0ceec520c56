"""Where the HTTP layer keeps its state in Redis, next to the checkpoints.

Everything durable lives under `<CPA_REDIS_PREFIX>:srv:` (T = tenant, C = conversation id,
H = the conversation's thread `T/C`, see `graph.conversations.thread_id`, M = message id).
Every key carries a Redis Cluster hash tag (the part in braces): a Cluster keeps the keys of
one tag in one slot, and runs a script or a MULTI only on keys of one slot. So each script
below touches the keys of one tag, and what spans two (a conversation and its tenant's
counts) is done in steps, in an order `graph.storage.records` explains.

A conversation's keys, tag `{H}` (`graph.storage.base.thread_tag`: the checkpointer's keys of
the thread, among them its fence `t:{H}:fence`, share it, so a script may check the fence
and write these together):

    srv:{H}:conv        hash   tenant, conversation_id, created (epoch s), request (the
                               opening LAM request), request_id, status (running, waiting,
                               done, failed), error (why the last run raised, if it did),
                               view (the conversation's body where its last run stopped,
                               JSON: what a reader gets until the next run starts), open,
                               holder, rev (the status's revision: the indexes below apply
                               a change only over an older one)
    srv:{H}:pending     hash   accepted answers not yet applied (survive a crash): answer id
                               -> the answer (JSON)
    srv:{H}:answered    hash   message id -> the id of the answer accepted for it (each
                               `propose`/`assign` is answered once, whichever replica)
    srv:{H}:lease       string "<replica> <generation>" while a replica runs H (PX: it
                               expires when that replica stops renewing it, `graph.storage.leases`)
    srv:{H}:ev          list   the conversation's LAM messages in the order first seen (SSE)
    srv:{H}:evi         hash   message id -> index in srv:{H}:ev (Last-Event-ID)
    srv:{H}:listen      string present while a process has SSE listeners of H (PX, renewed
                               by them): only then are the log's appends announced
    srv:{H}:llm         string the run's last model news (`llm` progress): a stream that
                               joins while a step waits on a model is told at once

A tenant's keys, tag `{tenant:T}` (`tenant_tag`; never a thread's tag: a thread's has no
raw ':'):

    srv:{tenant:T}:convs    zset   the tenant's conversation ids, score = created
    srv:{tenant:T}:running  set    the tenant's threads running (the cap on running)
    srv:{tenant:T}:waiting  zset   the tenant's threads waiting, score = since (the cap on
                                   waiting)
    srv:{tenant:T}:revs     zset   thread -> the `rev` of the conversation's status these
                                   two sets show
    srv:{tenant:T}:msg:M    string the response to message M (idempotency: SET NX)
    srv:{tenant:T}:bytes, srv:{tenant:T}:bytes-exp, srv:{tenant:T}:rate:<minute>
                                   the storage quota and the rate limit (`api.limits`)

The global index, in INDEX_SHARDS (16) shards, tags `{:index:k:s}` (k = 0 … 15, `INDEX_TAGS`):
the same three as a tenant's, over every tenant, each shard holding the threads whose
`index_shard` is k (a stable hash of the thread: crc32, the same in every process and
version):

    srv:{:index:k:s}:running  set   threads with a run queued or under way
    srv:{:index:k:s}:waiting  zset  threads waiting for an answer, score = since (expiry)
    srv:{:index:k:s}:revs     zset  thread -> the `rev` the two show

Why shards: every change of every conversation writes the global index, so with one tag
(one slot) the Cluster primary holding it carried all of that alone (11 % of all commands
under `benchmarks.replicas`' load, `benchmarks.cluster_keys`); shards on several slots
spread it over the primaries. A thread is in one shard only, so a writer
(`RedisKeys.index_of`) runs its index script on one slot as before, and the rev logic is per
thread; a reader (expiry, metrics, the repair) takes the union of every shard
(`RedisKeys.indexes`). The tags start with ':': never a thread's (no raw ':') nor a
tenant's (`tenant:`). s is the first number that puts shard k's slot in the k-th of 16 equal
ranges of the Cluster's 16384 slots: a Cluster gives each primary ranges of slots (evenly,
as `redis-cli --cluster create` does), so the shards spread evenly over the primaries (on
three: 5, 5 and 6). Plain `{:index:k}` would not: the CRC16 of names one digit apart falls
in a few ranges (8 of the 16 on one primary of three).

Global keys, each used alone (single-key commands, or a script on that key only):

    srv:tenants         set    every tenant that opened a conversation (the index repair
                               walks their sets, `graph.storage.records`)
    srv:remote-waiting  zset   threads waiting for an A2A agent's task (an `a2a:<name>`
                               assign), score = since: what the remote-task watcher reads
    srv:jobs            stream work to do: one entry {thread: H} per open, accepted answer
                               or hand-over; consumer group `runners`, one consumer per
                               replica; an entry is acknowledged and deleted once done
    srv:archive         stream what the history has yet to store (`api.archiver`): one entry
                               per append to a log {thread, start, messages} and per stop
                               of a run {thread, status, log_length, view}; consumer group
                               `archivers`; an entry is acknowledged and deleted once stored
    srv:archive:lead    string the archiver that reads the stream while one is enough (PX,
                               renewed as it reads; `api.archiver`)
    srv:keys, srv:keyids       the managed API keys (`api.keystore`)

Pub/sub channels (not keys: no slot): `srv:events` (a thread whose event log changed, while
listened to), `srv:status` (a thread whose status changed: its feeds read it, and callers
waiting for the run to stop look), `srv:{H}:ev:progress` (the run's progress news,
`api.events`).

Every key of one conversation is named by its thread, so two tenants' conversations with the
same id never share a key. A finished conversation's keys (`RedisKeys.expiring`) get the
checkpointer's TTL (CPA_REDIS_TTL_S) together with its checkpoints.

`legacy_key_name` maps a key of the previous layout (`srv:conv:H`, `srv:tenant:T`,
`srv:load:T:running`, ...: no tags) to its name here, for a migration. The previous global
index (`srv:running`, `srv:waiting`; and the unsharded `srv:{:index}:…` of a version
between) has no one new name: its members go each to its thread's shard
(`legacy_index_part`, `graph.storage.migrate`).
"""

from __future__ import annotations

import hashlib
import itertools
import zlib

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from graph.storage.base import fence_key, key_part, thread_tag

JOB_GROUP = "runners"
ARCHIVE_GROUP = "archivers"
# The global index's shards, tags `{:index:k:s}`: no thread's (no raw ':') nor tenant's. Changing
# the number re-homes threads: their entries would have to be moved (as `graph.storage.migrate`
# splits the unsharded index), which no command does yet; the repair does not add them.
INDEX_SHARDS = 16


def index_shard(thread: str) -> int:
    """The global index's shard of `thread`: stable across processes (not `hash()`)."""
    return zlib.crc32(thread.encode()) % INDEX_SHARDS


def _shard_tag(shard: int) -> str:
    """`{:index:k:s}` with the first s whose slot is in the k-th of INDEX_SHARDS equal
    ranges of the slots (module docstring)."""
    width = REDIS_CLUSTER_HASH_SLOTS // INDEX_SHARDS
    for salt in itertools.count():
        tag = "{:index:" + f"{shard}:{salt}" + "}"
        if key_slot(tag.encode()) // width == shard:
            return tag
    raise AssertionError("unreachable")  # pragma: no cover


INDEX_TAGS = tuple(_shard_tag(shard) for shard in range(INDEX_SHARDS))


def index_tag(shard: int) -> str:
    """The hash tag of the global index's shard `shard`."""
    return INDEX_TAGS[shard]


def tenant_tag(tenant: str) -> str:
    """The hash tag of a tenant's keys: `{tenant:T}`. A thread's tag (`thread_tag`) never
    holds a raw ':' (`key_part` escapes it), so the two never meet."""
    return "{tenant:" + key_part(tenant) + "}"


def message_digest(message_id: str) -> str:
    # Hashed (sha256 hex, as `api.settings.digest`): short and plain whatever the id.
    return hashlib.sha256(message_id.encode()).hexdigest()[:40]


class Index:
    """One index of conversations by status: a tenant's (its caps) or a shard of the global
    one."""

    def __init__(self, base: str, tag: str) -> None:
        self.running = f"{base}:{tag}:running"
        self.waiting = f"{base}:{tag}:waiting"
        self.revs = f"{base}:{tag}:revs"

    def keys(self) -> list[str]:
        """In the order the index scripts take them (`graph.storage.records`)."""
        return [self.running, self.waiting, self.revs]


class RedisKeys:
    """The key names above, for one key prefix."""

    def __init__(self, prefix: str) -> None:
        self.base = f"{prefix.rstrip(':')}:srv"
        self.tenants = f"{self.base}:tenants"
        self.remote_waiting = f"{self.base}:remote-waiting"
        self.events_channel = f"{self.base}:events"
        self.status_channel = f"{self.base}:status"
        self.jobs = f"{self.base}:jobs"
        self.archive = f"{self.base}:archive"
        self.archive_lead = f"{self.base}:archive:lead"
        self.prefix = prefix

    def _of_thread(self, thread: str, name: str) -> str:
        return f"{self.base}:{thread_tag(thread)}:{name}"

    def _of_tenant(self, tenant: str, name: str) -> str:
        return f"{self.base}:{tenant_tag(tenant)}:{name}"

    def conversation(self, thread: str) -> str:
        return self._of_thread(thread, "conv")

    def pending(self, thread: str) -> str:
        return self._of_thread(thread, "pending")

    def answered(self, thread: str) -> str:
        return self._of_thread(thread, "answered")

    def listening(self, thread: str) -> str:
        return self._of_thread(thread, "listen")

    def lease(self, thread: str) -> str:
        return self._of_thread(thread, "lease")

    def fence(self, thread: str) -> str:
        return fence_key(self.prefix, thread)

    def events(self, thread: str) -> str:
        return self._of_thread(thread, "ev")

    def event_index(self, thread: str) -> str:
        return self._of_thread(thread, "evi")

    def model_news(self, thread: str) -> str:
        return self._of_thread(thread, "llm")

    def index_of(self, thread: str) -> Index:
        """The global index's shard that holds `thread` (writers, and a look at one thread)."""
        return Index(self.base, index_tag(index_shard(thread)))

    def indexes(self) -> list[Index]:
        """Every shard of the global index, in shard order (readers take their union)."""
        return [Index(self.base, index_tag(k)) for k in range(INDEX_SHARDS)]

    def tenant(self, tenant: str) -> str:
        return self._of_tenant(tenant, "convs")

    def tenant_index(self, tenant: str) -> Index:
        return Index(self.base, tenant_tag(tenant))

    def tenant_running(self, tenant: str) -> str:
        return self.tenant_index(tenant).running

    def tenant_waiting(self, tenant: str) -> str:
        return self.tenant_index(tenant).waiting

    def message(self, tenant: str, message_id: str) -> str:
        return self._of_tenant(tenant, f"msg:{message_digest(message_id)}")

    def stored_bytes(self, tenant: str) -> list[str]:
        """The storage quota's keys (`api.limits`): sizes, expiries."""
        return [self._of_tenant(tenant, "bytes"), self._of_tenant(tenant, "bytes-exp")]

    def rate(self, tenant: str, window: int) -> str:
        return self._of_tenant(tenant, f"rate:{window}")

    def expiring(self, thread: str) -> list[str]:
        """What expires with the conversation, besides its checkpoints (`RedisSaver`'s keys):
        the one list `graph.storage.records` persists on a new turn and gives the TTL when it ends.

        In this order (the records' scripts address them by position): the record, pending,
        answered, the event log, its index. Not the model news: it lasts an hour on its own.
        """
        return [
            self.conversation(thread),
            self.pending(thread),
            self.answered(thread),
            self.events(thread),
            self.event_index(thread),
        ]


# The previous layout (no hash tags): a conversation's keys `srv:<name>:H`, a tenant's
# `srv:tenant:T`, `srv:load:T:running|waiting`, `srv:msg:T:M`, `srv:bytes:T`,
# `srv:bytes-exp:T`, `srv:rate:T:W`; the global index `srv:running`, `srv:waiting`.
_THREAD_NAMES = ("conv", "pending", "answered", "listen", "lease", "ev", "evi", "llm")
_TENANT_NAMES = ("bytes", "bytes-exp")


def legacy_key_name(prefix: str, key: str) -> str | None:
    """The name in this layout of server key `key` written by the previous one (no hash
    tags), for the key prefix `prefix`; None if `key` is not such a key: already named
    so, a checkpoint key, a global key whose name did not change (`srv:jobs`, ...), the
    global index of an earlier layout (no one new name: `legacy_index_part`), or not ours."""
    keys = RedisKeys(prefix)
    base = keys.base + ":"
    if not key.startswith(base):
        return None
    rest = key[len(base) :]
    if "{" in rest.partition(":")[0]:
        return None  # tagged already
    name, colon, tail = rest.partition(":")
    if not colon or not tail:
        return None
    if name in _THREAD_NAMES:
        return keys._of_thread(tail, name)
    if name == "tenant":
        return keys.tenant(tail)
    if name in _TENANT_NAMES:
        return keys._of_tenant(tail, name)
    tenant, colon, last = tail.rpartition(":")  # a tenant may hold a ":", the tail not
    if not colon or not tenant or not last:
        return None
    if name == "load" and last in ("running", "waiting"):
        return keys._of_tenant(tenant, last)
    if name == "msg":
        return keys._of_tenant(tenant, f"msg:{last}")  # the id's digest already
    if name == "rate":
        return keys.rate(tenant, int(last)) if last.isdigit() else None
    return None


_UNSHARDED = "{:index}"  # the global index's one tag before the shards


def legacy_index_part(prefix: str, key: str) -> str | None:
    """Which part of the global index (`running`, `waiting`, `revs`) server key `key` is, if
    it is one of an earlier layout: `srv:running`, `srv:waiting` (no tags) or
    `srv:{:index}:running|waiting|revs` (one tag, no shards). None for any other key. Such a
    key has no one new name: its members go to their threads' shards (`index_of`)."""
    base = RedisKeys(prefix).base + ":"
    if not key.startswith(base):
        return None
    rest = key[len(base) :]
    if rest in ("running", "waiting"):
        return rest
    name = rest.removeprefix(_UNSHARDED + ":")
    if name != rest and name in ("running", "waiting", "revs"):
        return name
    return None
