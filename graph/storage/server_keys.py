"""Where the HTTP layer keeps its state in Redis, next to the checkpoints.

Everything durable lives under `<CPA_REDIS_PREFIX>:srv:` (T = tenant, C = conversation id,
H = the conversation's thread `T/C`, see `graph.conversations.thread_id`, M = message id):

    srv:conv:H          hash   tenant, conversation_id, created (epoch s), request (the
                               opening LAM request), request_id, status (running, waiting,
                               done, failed), error (why the last run raised, if it did),
                               view (the conversation's body where its last run stopped,
                               JSON: what a reader gets until the next run starts)
    srv:pending:H       hash   accepted answers not yet applied (survive a crash): answer id
                               -> the answer (JSON)
    srv:answered:H      hash   message id -> the id of the answer accepted for it (each
                               `propose`/`assign` is answered once, whichever replica)
    srv:lease:H         string "<replica> <generation>" while a replica runs H (PX: it
                               expires when that replica stops renewing it, `graph.storage.leases`)
    srv:ev:H            list   the conversation's LAM messages in the order first seen (SSE)
    srv:evi:H           hash   message id -> index in srv:ev:H (Last-Event-ID)
    srv:listen:H        string present while a process has SSE listeners of H (PX, renewed
                               by them): only then are the log's appends announced
    srv:llm:H           string the run's last model news (`llm` progress): a stream that
                               joins while a step waits on a model is told at once
    srv:tenant:T        zset   the tenant's conversation ids, score = created
    srv:load:T:running  set    the tenant's threads running (the cap on running)
    srv:load:T:waiting  zset   the tenant's threads waiting, score = since (the cap on waiting)
    srv:running         set    threads with a run queued or under way
    srv:waiting         zset   threads waiting for an answer, score = since (expiry)
    srv:remote-waiting  zset   threads waiting for an A2A agent's task (an `a2a:<name>`
                               assign), score = since: what the remote-task watcher reads
    srv:msg:T:M         string the response to message M (idempotency: SET NX)
    srv:jobs            stream work to do: one entry {thread: H} per open, accepted answer
                               or hand-over; consumer group `runners`, one consumer per
                               replica; an entry is acknowledged and deleted once done
    srv:archive         stream what the history has yet to store (`api.archiver`): one entry
                               per append to a log {thread, start, messages} and per stop
                               of a run {thread, status, log_length, view}; consumer group
                               `archivers`; an entry is acknowledged and deleted once stored
    srv:archive:lead    string the archiver that reads the stream while one is enough (PX,
                               renewed as it reads; `api.archiver`)
    srv:events          pub/sub channel: a thread whose event log changed (while listened to)
    srv:status          pub/sub channel: a thread whose status changed (its feeds read it,
                               and callers waiting for the run to stop look)
    srv:ev:H:progress   pub/sub channel: the run's progress news (api.events)

The conversation's lease generation (fencing token) is the checkpointer's key
`t:H:fence` (`graph.storage.base.fence_key`): its scripts check it on every write.

Every key of one conversation is named by its thread, so two tenants' conversations with the
same id never share a key. A finished conversation's keys (`RedisKeys.expiring`) get the
checkpointer's TTL (CPA_REDIS_TTL_S) together with its checkpoints.
"""

from __future__ import annotations

import hashlib

from graph.storage.base import fence_key

JOB_GROUP = "runners"
ARCHIVE_GROUP = "archivers"


class RedisKeys:
    """The key names above, for one key prefix."""

    def __init__(self, prefix: str) -> None:
        self.base = f"{prefix.rstrip(':')}:srv"
        self.running = f"{self.base}:running"
        self.waiting = f"{self.base}:waiting"
        self.remote_waiting = f"{self.base}:remote-waiting"
        self.events_channel = f"{self.base}:events"
        self.status_channel = f"{self.base}:status"
        self.jobs = f"{self.base}:jobs"
        self.archive = f"{self.base}:archive"
        self.archive_lead = f"{self.base}:archive:lead"
        self.prefix = prefix

    def conversation(self, thread: str) -> str:
        return f"{self.base}:conv:{thread}"

    def pending(self, thread: str) -> str:
        return f"{self.base}:pending:{thread}"

    def answered(self, thread: str) -> str:
        return f"{self.base}:answered:{thread}"

    def listening(self, thread: str) -> str:
        return f"{self.base}:listen:{thread}"

    def lease(self, thread: str) -> str:
        return f"{self.base}:lease:{thread}"

    def fence(self, thread: str) -> str:
        return fence_key(self.prefix, thread)

    def events(self, thread: str) -> str:
        return f"{self.base}:ev:{thread}"

    def event_index(self, thread: str) -> str:
        return f"{self.base}:evi:{thread}"

    def model_news(self, thread: str) -> str:
        return f"{self.base}:llm:{thread}"

    def tenant(self, tenant: str) -> str:
        return f"{self.base}:tenant:{tenant}"

    def tenant_running(self, tenant: str) -> str:
        return f"{self.base}:load:{tenant}:running"

    def tenant_waiting(self, tenant: str) -> str:
        return f"{self.base}:load:{tenant}:waiting"

    def message(self, tenant: str, message_id: str) -> str:
        # Hashed (sha256 hex, as `api.settings.digest`): short and plain whatever the id.
        return f"{self.base}:msg:{tenant}:{hashlib.sha256(message_id.encode()).hexdigest()[:40]}"

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
