"""The HTTP API for the CPA Desktop AI (SPEC §5): FastAPI over `graph.conversations`.

One process serves many conversations. Each one runs as a background asyncio task, one run
at a time per conversation; everything durable lives in Redis next to the checkpoints, under
`<CPA_REDIS_PREFIX>:srv:` (T = tenant, C = conversation id, M = message id):

    srv:conv:C       hash   tenant, created (epoch s), request (the opening LAM request),
                            error (why the last run raised, if it did)
    srv:tenant:T     zset   the tenant's conversation ids, score = created
    srv:running      set    conversations with a run queued or under way: resumed at start-up
    srv:pending:C    hash   accepted answers not yet applied (survive a crash)
    srv:msg:T:M      string the response to message M (idempotency: SET NX)
    srv:ev:C         list   the conversation's LAM messages in the order first seen (SSE)
    srv:evi:C        hash   message id -> index in srv:ev:C (Last-Event-ID)

A finished conversation's keys get the checkpointer's TTL (CPA_REDIS_TTL_S) together with
its checkpoints. Run one server process per key prefix: the one-run-per-conversation rule is
kept in process (an asyncio lock), not across processes.

Configuration besides `graph.config.Settings` (read here only):

    CPA_API_KEYS          "tenant:key,tenant:key"  (or CPA_API_KEYS_FILE: one tenant:key a line)
    CPA_MAX_BODY_BYTES    request body limit, default 262144 (256 KiB)
    CPA_HOST, CPA_PORT    where `serve()` binds (default 127.0.0.1:8000)
    CPA_SSE_KEEPALIVE_S   seconds between SSE keep-alive comments (default 15)
    CPA_SERVER_SERVICES   "module:function" returning the graph's `Services` for given
                          `Settings`: a hook for tests and embedders (scripted models, extra
                          executors); unset, `graph.builder.make_services` is used.

Without any API key the server is open to one tenant, `local`, and `serve()` binds to
loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import ipaddress
import json
import logging
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, cast

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from langgraph.types import Command
from pydantic import BaseModel, Field
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from graph.config import ConfigError, Settings
from graph.conversations import (
    AnswerMismatchError,
    ConversationNotFoundError,
    Conversations,
    NothingWaitingError,
)
from graph.services import Services
from lam import (
    LAM_VERSION,
    LAMMessage,
    LAMValidationError,
    MessageFactory,
    Performative,
    message_json_schema,
)

__all__ = [
    "ApiError",
    "ServerSettings",
    "app",
    "create_app",
    "serve",
]

logger = logging.getLogger("cpa_planner.server")

LOCAL_TENANT = "local"
PLANNER = "planner"
DEFAULT_MAX_BODY_BYTES = 256 * 1024
SERVICES_FACTORY_ENV = "CPA_SERVER_SERVICES"
FINAL_STATUSES = frozenset({"done", "failed"})
ANSWERS = frozenset(
    {Performative.AGREE, Performative.REFUSE, Performative.DONE, Performative.FAILURE}
)
ACCEPTED = frozenset({Performative.REQUEST, Performative.DISCOVER, *ANSWERS})
# Client-chosen conversation ids end up in Redis keys and URLs: keep them plain.
_CONVERSATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
# How long a duplicate waits for the first copy's response, and how long a claim may live.
_DUPLICATE_WAIT_S = 10.0
_CLAIM_TTL_S = 120
# Response records of messages outlive conversations a little (CPA_REDIS_TTL_S or a week).
_DEFAULT_RECORD_TTL_S = 7 * 24 * 3600

Status = Literal["running", "waiting", "done", "failed"]
_N = TypeVar("_N", int, float)


# Configuration --------------------------------------------------------------------------


class ServerConfigError(ValueError):
    """A server setting is unusable; the message names the variable."""


@dataclass(frozen=True)
class ServerSettings:
    """Settings of the HTTP layer only (the graph's are `graph.config.Settings`)."""

    # sha256(key) -> tenant: keys are compared by digest, never kept in plain text here.
    api_keys: Mapping[str, str] = field(default_factory=dict)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    host: str = "127.0.0.1"
    port: int = 8000
    sse_keepalive_s: float = 15.0
    sse_poll_s: float = 1.0
    max_wait_s: float = 60.0
    services_factory: str | None = None

    @property
    def open_access(self) -> bool:
        return not self.api_keys

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        env = os.environ if environ is None else environ
        pairs: list[tuple[str, str]] = []
        if raw := env.get("CPA_API_KEYS", "").strip():
            pairs += _parse_keys(raw.split(","), "CPA_API_KEYS")
        if path := env.get("CPA_API_KEYS_FILE", "").strip():
            try:
                lines = Path(path).expanduser().read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ServerConfigError(f"CPA_API_KEYS_FILE {path}: {exc.strerror}") from None
            pairs += _parse_keys(
                [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")],
                f"CPA_API_KEYS_FILE {path}",
            )
        keys: dict[str, str] = {}
        for tenant, key in pairs:
            digest = _digest(key)
            if keys.get(digest, tenant) != tenant:
                raise ServerConfigError("the same API key is given to two tenants")
            keys[digest] = tenant
        return cls(
            api_keys=keys,
            max_body_bytes=_env_number(env, "CPA_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, int),
            host=env.get("CPA_HOST", "").strip() or "127.0.0.1",
            port=_env_number(env, "CPA_PORT", 8000, int),
            sse_keepalive_s=_env_number(env, "CPA_SSE_KEEPALIVE_S", 15.0, float),
            services_factory=env.get(SERVICES_FACTORY_ENV, "").strip() or None,
        )


def _parse_keys(entries: list[str], source: str) -> list[tuple[str, str]]:
    pairs = []
    for entry in entries:
        tenant, sep, key = entry.strip().partition(":")
        tenant, key = tenant.strip(), key.strip()
        if not sep or not key:
            raise ServerConfigError(f"{source}: expected tenant:key, got {tenant or entry!r}:…")
        if not _TENANT.match(tenant):
            raise ServerConfigError(
                f"{source}: tenant {tenant!r} must be letters, digits, '.', '_' or '-'"
            )
        pairs.append((tenant, key))
    return pairs


def _env_number(env: Mapping[str, str], name: str, default: _N, kind: Callable[[str], _N]) -> _N:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ServerConfigError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ServerConfigError(f"{name} must be positive, got {raw!r}")
    return value


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def load_services(settings: Settings, factory: str | None) -> Services:
    """The graph's services: `make_services(settings)`, or the `module:function` hook."""
    if not factory:
        from graph.builder import make_services

        return make_services(settings)
    module_name, _, attr = factory.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ServerConfigError(f"{SERVICES_FACTORY_ENV}={factory!r}: {exc}") from None
    services = function(settings)
    if not isinstance(services, Services):
        raise ServerConfigError(f"{SERVICES_FACTORY_ENV}={factory!r} did not return Services")
    return services


# Errors ---------------------------------------------------------------------------------


class FieldProblem(BaseModel):
    field: str = Field(description="dotted path of the field, '' for the message as a whole")
    message: str


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable, e.g. `invalid_message`, `nothing_waiting`")
    message: str = Field(description="what was wrong, for a person")
    fields: list[FieldProblem] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """An error answered as `{"error": {"code", "message", "fields"?}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: list[dict[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        detail: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields is not None:
            detail["fields"] = self.fields
        return JSONResponse({"error": detail}, status_code=self.status, headers=self.headers)


def _not_found(conversation_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no conversation {conversation_id}")


def _error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    what = {
        401: "no or unknown API key",
        404: "no such conversation (or another tenant's)",
        409: "conflicts with the conversation's state",
        413: "body over the limit",
        422: "invalid input; `fields` names the field paths",
        503: "Redis unreachable",
    }
    return {c: {"model": ErrorBody, "description": what[c]} for c in codes}


# Response models (for the OpenAPI document; bodies are built as dicts) --------------------


class Accepted(BaseModel):
    conversation_id: str
    message_id: str = Field(description="the id of the message that was accepted")
    status: Status = Field(description="the conversation's status when this was answered")
    conversation: ConversationBody | None = Field(
        None, description="with `wait`: the conversation once it stopped running"
    )


class ConversationBody(BaseModel):
    conversation_id: str
    status: Status
    intent: str | None
    plan: dict[str, Any] | None = Field(description="the plan; each ToDo carries its status")
    result: Any = None
    messages: list[dict[str, Any]] = Field(description="the LAM log")


class ConversationSummary(BaseModel):
    conversation_id: str
    created: float = Field(description="when it was opened, seconds since the epoch")


class ConversationList(BaseModel):
    conversations: list[ConversationSummary]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready"] = "ready"
    redis: Literal["ok"] = "ok"


Accepted.model_rebuild()


# Redis keys and scripts -------------------------------------------------------------------

# KEYS: events list, index hash. ARGV: id, json, id, json, ... Appends each unseen message.
_APPEND_LUA = """
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[2], ARGV[i], redis.call('LLEN', KEYS[1])) == 1 then
    redis.call('RPUSH', KEYS[1], ARGV[i + 1])
    n = n + 1
  end
end
return n
"""


class Keys:
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
        return f"{self.base}:msg:{tenant}:{_digest(message_id)[:40]}"

    def events(self, cid: str) -> str:
        return f"{self.base}:ev:{cid}"

    def event_index(self, cid: str) -> str:
        return f"{self.base}:evi:{cid}"

    def per_conversation(self, cid: str) -> list[str]:
        return [
            self.conversation(cid),
            self.pending(cid),
            self.events(cid),
            self.event_index(cid),
        ]


# Background runs --------------------------------------------------------------------------


@dataclass
class _Item:
    kind: Literal["open", "answer", "continue"]
    payload: Any = None
    message: LAMMessage | None = None


@dataclass
class _Run:
    """One conversation's in-process state: its lock, queue and runner task."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    queue: list[_Item] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    # Ids of messages answered by an accepted answer that is not applied yet.
    answered: set[str] = field(default_factory=set)


class Hub:
    """Conversations of one graph, run in the background, with tenants and idempotency."""

    def __init__(
        self,
        conversations: Conversations,
        saver: Any,
        services: Services,
        config: ServerSettings,
    ) -> None:
        self.conversations = conversations
        self.saver = saver
        self.redis = saver.client
        self.services = services
        self.config = config
        self.keys = Keys(saver.prefix)
        self.record_ttl_s = services.settings.redis_ttl_s or _DEFAULT_RECORD_TTL_S
        self._append = self.redis.register_script(_APPEND_LUA)
        self._runs: dict[str, _Run] = {}
        self._listeners: dict[str, set[asyncio.Event]] = {}
        self._closing = False

    # Tenants --------------------------------------------------------------------------

    async def owner(self, cid: str) -> str | None:
        tenant = await self.redis.hget(self.keys.conversation(cid), "tenant")
        return tenant.decode() if tenant is not None else None

    async def check_owner(self, tenant: str, cid: str) -> None:
        if await self.owner(cid) != tenant:
            raise _not_found(cid)

    async def list_conversations(self, tenant: str, limit: int) -> list[dict[str, Any]]:
        rows = await self.redis.zrevrange(self.keys.tenant(tenant), 0, limit - 1, withscores=True)
        ids = [r[0].decode() for r in rows]
        pipe = self.redis.pipeline(transaction=False)
        for cid in ids:
            pipe.exists(self.keys.conversation(cid))
        alive = await pipe.execute() if ids else []
        gone = [cid for cid, ok in zip(ids, alive, strict=True) if not ok]
        if gone:  # expired with their conversation: drop them from the index
            await self.redis.zrem(self.keys.tenant(tenant), *gone)
        return [
            {"conversation_id": cid, "created": score}
            for cid, (_, score), ok in zip(ids, rows, alive, strict=True)
            if ok
        ]

    # Accepting messages ---------------------------------------------------------------

    def run_of(self, cid: str) -> _Run:
        return self._runs.setdefault(cid, _Run())

    def busy(self, cid: str) -> bool:
        run = self._runs.get(cid)
        return run is not None and run.task is not None

    async def open(self, tenant: str, request: LAMMessage) -> dict[str, Any]:
        """Open a conversation (or a new turn of a finished one) with a `request`."""
        cid = request.conversation_id or Conversations.new_id()
        if not _CONVERSATION_ID.match(cid):
            raise ApiError(
                422,
                "invalid_message",
                "conversation_id must be 1-128 letters, digits, '.', '_', ':' or '-'",
                [{"field": "conversation_id", "message": "not a usable conversation id"}],
            )
        request = request.model_copy(update={"conversation_id": cid})
        key = self.keys.conversation(cid)
        run = self.run_of(cid)
        async with run.lock:
            created = time.time()
            claimed = await self.redis.hsetnx(key, "tenant", tenant)
            if not claimed:
                if await self.owner(cid) != tenant:
                    raise _not_found(cid)
                status = (await self.view(cid))["status"]
                if status not in FINAL_STATUSES:
                    raise ApiError(
                        409,
                        "conversation_busy",
                        f"conversation {cid} is {status}; a new request can start once it "
                        "is done or failed",
                    )
            elif await self.conversations.exists(cid):
                # Made by another entry point (CLI, Studio): not this tenant's to take over.
                await self.redis.delete(key)
                raise _not_found(cid)
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(key, mapping={"created": str(created), "request": request.to_json()})
            pipe.hdel(key, "error")
            for k in self.keys.per_conversation(cid):
                pipe.persist(k)
            if claimed:
                pipe.zadd(self.keys.tenant(tenant), {cid: created})
            pipe.sadd(self.keys.running, cid)
            await pipe.execute()
            self._submit(cid, run, _Item("open", Conversations.opening(request)))
        return {"conversation_id": cid, "message_id": request.id}

    async def answer(self, tenant: str, message: LAMMessage) -> dict[str, Any]:
        """Accept an answer to a waiting `propose` or `assign`; it resumes in the background."""
        cid = str(message.conversation_id)
        await self.check_owner(tenant, cid)
        if message.in_reply_to is None:
            raise ApiError(
                422,
                "invalid_message",
                f"a {message.performative.value} sent to the planner answers a waiting "
                "message: in_reply_to must be its id",
                [{"field": "in_reply_to", "message": "required here"}],
            )
        run = self.run_of(cid)
        async with run.lock:
            if message.in_reply_to in run.answered:
                raise ApiError(
                    409,
                    "already_answered",
                    f"message {message.in_reply_to} has already been answered",
                )
            try:
                await self.conversations.answer(cid, message)
            except (NothingWaitingError, ConversationNotFoundError):
                raise ApiError(
                    409,
                    "nothing_waiting",
                    f"nothing in conversation {cid} waits for an answer to {message.in_reply_to}",
                ) from None
            except AnswerMismatchError as exc:
                raise ApiError(
                    422,
                    "wrong_answer",
                    str(exc),
                    [{"field": "performative", "message": str(exc)}],
                ) from None
            pipe = self.redis.pipeline(transaction=True)
            pipe.hset(self.keys.pending(cid), message.id, message.to_json())
            pipe.sadd(self.keys.running, cid)
            await pipe.execute()
            run.answered.add(message.in_reply_to)
            self._submit(cid, run, _Item("answer", message=message))
        return {"conversation_id": cid, "message_id": message.id}

    def _submit(self, cid: str, run: _Run, item: _Item) -> None:
        run.queue.append(item)
        run.idle.clear()
        if run.task is None and not self._closing:
            run.task = asyncio.create_task(self._drain(cid, run), name=f"conversation:{cid}")

    async def wait_idle(self, cid: str, seconds: float) -> None:
        """Until the conversation's runner has nothing left to do, or `seconds` passed."""
        run = self._runs.get(cid)
        if run is None or run.task is None or seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(run.idle.wait(), seconds)

    # Running --------------------------------------------------------------------------

    async def _drain(self, cid: str, run: _Run) -> None:
        """Work off the conversation's queue, one run at a time, then tidy up."""
        try:
            while True:
                while run.queue:
                    item = run.queue.pop(0)
                    answers: list[LAMMessage] = []
                    if item.kind == "answer":
                        # Answers that queued up together resume together (one Command).
                        answers = [cast(LAMMessage, item.message)]
                        while run.queue and run.queue[0].kind == "answer":
                            answers.append(cast(LAMMessage, run.queue.pop(0).message))
                    await self._run_item(cid, item, answers)
                    if answers:
                        await self.redis.hdel(self.keys.pending(cid), *[a.id for a in answers])
                        for a in answers:
                            run.answered.discard(str(a.in_reply_to))
                await self._finish(cid)
                if not run.queue:  # nothing arrived while finishing
                    break
                await self.redis.sadd(self.keys.running, cid)
        except asyncio.CancelledError:
            raise  # shutting down: `running` keeps the conversation for the next start
        except Exception:
            logger.exception("conversation %s: the runner stopped", cid)
        finally:
            run.task = None
            run.idle.set()
            self._notify(cid)
            if not run.lock.locked() and not run.queue and self._runs.get(cid) is run:
                del self._runs[cid]

    async def _run_item(self, cid: str, item: _Item, answers: list[LAMMessage]) -> None:
        payload: Any = item.payload
        if payload is _NO_RUN:
            return
        if answers:
            resume: dict[str, Any] = {}
            for answer in answers:
                try:
                    command = await self.conversations.answer(cid, answer)
                except (NothingWaitingError, AnswerMismatchError, ConversationNotFoundError) as e:
                    # Answered meanwhile (e.g. a replay after a crash): applied once already.
                    logger.info("conversation %s: answer %s dropped: %s", cid, answer.id, e)
                    continue
                resume.update(cast(dict[str, Any], command.resume))
            if not resume:
                # Every answer was applied before (replayed after a crash). If the run then
                # stopped mid-step, nothing else will carry it on: continue it here.
                if (await self.conversations.view(cid)).status != "running":
                    return
                payload = None
            else:
                payload = Command(resume=resume)
        try:
            await self.redis.hdel(self.keys.conversation(cid), "error")
            async for message in self.conversations.stream(cid, payload):
                # Live appends only for someone listening here; `_finish` appends the rest.
                if self._listeners.get(cid):
                    args = [str(message["id"]), json.dumps(message, separators=(",", ":"))]
                    await self._append(keys=self._event_keys(cid), args=args)
                    self._notify(cid)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The graph raised (a bug, or Redis went away): the conversation fails visibly.
            logger.exception("conversation %s: the run raised", cid)
            error = {"code": "run_error", "message": f"{type(exc).__name__}: {exc}"[:2000]}
            with contextlib.suppress(Exception):
                await self.redis.hset(self.keys.conversation(cid), "error", json.dumps(error))

    async def _finish(self, cid: str) -> None:
        """After the queue ran dry: give a finished conversation its TTL, leave `running`."""
        try:
            view: dict[str, Any] = await self.view(cid)
        except ConversationNotFoundError:
            view = {"status": "failed", "messages": []}
        await self._append_events(cid, view["messages"])
        if view["status"] in FINAL_STATUSES:
            await self.saver.expire_conversation(cid)
            ttl = self.services.settings.redis_ttl_s
            if ttl:
                pipe = self.redis.pipeline(transaction=False)
                for key in self.keys.per_conversation(cid):
                    pipe.expire(key, ttl)
                await pipe.execute()
        await self.redis.srem(self.keys.running, cid)

    async def resume_interrupted(self) -> list[str]:
        """At start-up: continue every conversation that was running when we stopped."""
        resumed = []
        for raw in await self.redis.smembers(self.keys.running):
            cid = raw.decode()
            run = self.run_of(cid)
            pending = await self.redis.hvals(self.keys.pending(cid))
            answers = sorted(
                (LAMMessage.from_json(p, max_bytes=None) for p in pending),
                key=lambda m: m.timestamp,
            )
            if answers:
                for answer in answers:
                    run.answered.add(str(answer.in_reply_to))
                    self._submit(cid, run, _Item("answer", message=answer))
            elif not await self.conversations.exists(cid):
                raw_request = await self.redis.hget(self.keys.conversation(cid), "request")
                if raw_request is None:
                    await self.redis.srem(self.keys.running, cid)
                    continue
                request = LAMMessage.from_json(raw_request, max_bytes=None)
                self._submit(cid, run, _Item("open", Conversations.opening(request)))
            elif (await self.conversations.view(cid)).status == "running":
                self._submit(cid, run, _Item("continue"))
            else:
                self._submit(cid, run, _Item("continue", payload=_NO_RUN))
            resumed.append(cid)
        if resumed:
            logger.info("resumed %d conversation(s) that were running: %s", len(resumed), resumed)
        return resumed

    async def close(self) -> None:
        """Stop the runners; their conversations stay in `running` for the next start."""
        self._closing = True
        tasks = [r.task for r in self._runs.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # Looking ----------------------------------------------------------------------------

    async def view(self, cid: str) -> dict[str, Any]:
        """SPEC §5's conversation body, with what only the server knows about runs."""
        try:
            body = (await self.conversations.view(cid)).to_dict()
        except ConversationNotFoundError:
            raw = await self.redis.hget(self.keys.conversation(cid), "request")
            if raw is None:
                raise
            # Accepted, but the run has not written its first checkpoint yet.
            request = json.loads(raw)
            body = {
                "conversation_id": cid,
                "status": "running",
                "intent": None,
                "plan": None,
                "result": None,
                "messages": [request],
            }
        if self.busy(cid):
            body["status"] = "running"
        elif body["status"] == "running":
            raw_error = await self.redis.hget(self.keys.conversation(cid), "error")
            if raw_error is not None:
                body["status"] = "failed"
                body["result"] = {"error": json.loads(raw_error)}
        return body

    async def inbox(self, cid: str, receiver: str | None) -> list[dict[str, Any]]:
        # Copy the answered ids first: an answer applied while the view is read must
        # still hide the message it answered, which that (older) view may list.
        run = self._runs.get(cid)
        answered = set(run.answered) if run is not None else set()
        waiting = await self.conversations.inbox(cid, receiver)
        return [m for m in waiting if m["id"] not in answered]

    def _event_keys(self, cid: str) -> list[str]:
        return [self.keys.events(cid), self.keys.event_index(cid)]

    async def sync_events(self, cid: str) -> str | None:
        """Append the view's messages not yet in the event log; the status, None if gone."""
        try:
            view = await self.view(cid)
        except ConversationNotFoundError:
            return None
        await self._append_events(cid, view["messages"])
        return str(view["status"])

    async def _append_events(self, cid: str, messages: list[dict[str, Any]]) -> None:
        args: list[str] = []
        for message in messages:
            args += [str(message["id"]), json.dumps(message, separators=(",", ":"))]
        if args:
            await self._append(keys=self._event_keys(cid), args=args)

    async def event_position(self, cid: str, last_event_id: str | None) -> int:
        """Where a stream starts: right after `last_event_id`, or at the first message."""
        if not last_event_id:
            return 0
        index = await self.redis.hget(self.keys.event_index(cid), last_event_id)
        if index is None:
            # Not yet in the log (or never was): make sure the log is current, then look again.
            await self.sync_events(cid)
            index = await self.redis.hget(self.keys.event_index(cid), last_event_id)
        return int(index) + 1 if index is not None else 0

    async def events_from(self, cid: str, start: int) -> list[bytes]:
        return cast(list[bytes], await self.redis.lrange(self.keys.events(cid), start, -1))

    def listen(self, cid: str) -> asyncio.Event:
        event = asyncio.Event()
        self._listeners.setdefault(cid, set()).add(event)
        return event

    def unlisten(self, cid: str, event: asyncio.Event) -> None:
        listeners = self._listeners.get(cid)
        if listeners is not None:
            listeners.discard(event)
            if not listeners:
                del self._listeners[cid]

    def _notify(self, cid: str) -> None:
        for event in self._listeners.get(cid, ()):
            event.set()

    # Idempotency ----------------------------------------------------------------------

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
        if await self.redis.set(key, claim, nx=True, ex=_CLAIM_TTL_S):
            try:
                body = cast(dict[str, Any], await handle())
            except BaseException:
                await self.redis.delete(key)
                raise
            record = json.dumps({"h": fingerprint, "b": body})
            await self.redis.set(key, record, ex=self.record_ttl_s)
            return body, False
        deadline = time.monotonic() + _DUPLICATE_WAIT_S
        while True:
            raw = await self.redis.get(key)
            if raw is None:  # the first attempt failed meanwhile: judge this one afresh
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

    # Capabilities -----------------------------------------------------------------------

    def offer(self, receiver: str, conversation_id: str | None = None) -> dict[str, Any]:
        factory = MessageFactory(PLANNER, conversation_id or Conversations.new_id())
        return factory.offer(
            receiver,
            self.services.executors.names(),
            self.services.intents.names(),
            lam_version=LAM_VERSION,
        ).to_dict()


_NO_RUN = object()


def _fingerprint(message: LAMMessage) -> str:
    # The timestamp is left out: a client that omits it gets a new one on every parse.
    body = message.to_dict()
    body.pop("timestamp", None)
    return _digest(json.dumps(body, sort_keys=True, separators=(",", ":")))


# The app --------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="an API key from CPA_API_KEYS")


def _hub(request: Request) -> Hub:
    hub = getattr(request.app.state, "hub", None)
    if hub is None:
        raise ApiError(503, "starting", "the server is starting or stopping; retry shortly")
    return cast(Hub, hub)


def _tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The caller's tenant, from `Authorization: Bearer <key>`."""
    config: ServerSettings | None = getattr(request.app.state, "server_settings", None)
    if config is None:
        raise ApiError(503, "starting", "the server is starting or stopping; retry shortly")
    if config.open_access:
        return LOCAL_TENANT
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <API key>", None, challenge)
    tenant = config.api_keys.get(_digest(credentials.credentials))
    if tenant is None:
        raise ApiError(401, "unauthorized", "unknown API key", None, challenge)
    return tenant


HubDep = Annotated[Hub, Depends(_hub)]
TenantDep = Annotated[str, Depends(_tenant)]
ConversationId = Annotated[str, Field(min_length=1, max_length=256)]


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes before reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            too_big = int(declared) > limit
        except ValueError:
            raise ApiError(400, "bad_request", "Content-Length is not a number") from None
        if too_big:
            raise ApiError(413, "too_large", f"the body is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _lam_error(exc: LAMValidationError) -> ApiError:
    return ApiError(422, "invalid_message", str(exc), [dict(e) for e in exc.errors])


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    server_settings: ServerSettings | None = None,
) -> FastAPI:
    """The API app. Nothing here touches Redis: the lifespan opens the checkpointer.

    `settings`/`server_settings` default to the environment (read at start-up), `services`
    to `make_services(settings)` (or the CPA_SERVER_SERVICES hook).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from graph.builder import build_graph
        from graph.checkpointer import open_checkpointer

        config = server_settings or ServerSettings.from_env()
        svc = services or load_services(settings or Settings.from_env(), config.services_factory)
        # Mounted into `langgraph dev` (http.app), our routes are served by its app and
        # `request.app` is that one: keep the state on both.
        apps = [app] if app is api else [app, api]
        for target in apps:
            target.state.server_settings = config
        if config.open_access:
            logger.warning(
                "no API keys configured (CPA_API_KEYS / CPA_API_KEYS_FILE): every caller is "
                "tenant %r; serve on loopback only",
                LOCAL_TENANT,
            )
        async with open_checkpointer(svc.settings) as saver:
            graph = build_graph(svc, checkpointer=saver)
            hub = Hub(Conversations(graph, saver), saver, svc, config)
            await hub.resume_interrupted()
            for target in apps:
                target.state.hub = hub
            try:
                yield
            finally:
                for target in apps:
                    target.state.hub = None
                await hub.close()

    api = FastAPI(
        title="cpa-planner",
        version="0.1.0",
        summary="Planning service for the CPA Desktop AI: LAM messages in, plans and results out.",
        lifespan=lifespan,
    )
    # Set by the lifespan (requests before it get 503).
    api.state.server_settings = server_settings
    api.state.hub = None
    _install_error_handlers(api)
    _add_routes(api)
    api.openapi = lambda: _openapi(api)  # type: ignore[method-assign]
    return api


def _install_error_handlers(app: FastAPI) -> None:
    from graph.checkpointer import RedisUnavailableError

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(LAMValidationError)
    async def lam_error(_: Request, exc: LAMValidationError) -> JSONResponse:
        return _lam_error(exc).response()

    @app.exception_handler(RequestValidationError)
    async def request_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg"))}
            for e in exc.errors()
        ]
        names = ", ".join(f["field"] for f in fields)
        return ApiError(422, "invalid_request", f"invalid {names}", fields).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return ApiError(exc.status_code, code, str(exc.detail), None, exc.headers).response()

    @app.exception_handler(RedisUnavailableError)
    async def redis_down(_: Request, exc: RedisUnavailableError) -> JSONResponse:
        return ApiError(503, "redis_unavailable", str(exc)).response()

    async def redis_error(request: Request, exc: Exception) -> JSONResponse:
        # The hub's own keys go through the saver's client directly: same answer as above.
        hub = getattr(request.app.state, "hub", None)
        url = hub.saver.url if hub is not None else "redis://?"
        return await redis_down(request, RedisUnavailableError(url, exc))

    app.add_exception_handler(RedisConnectionError, redis_error)
    app.add_exception_handler(RedisTimeoutError, redis_error)

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error", exc_info=exc)
        return ApiError(500, "internal", "internal error; the server log has details").response()


def _add_routes(app: FastAPI) -> None:
    @app.get("/healthz", response_model=Health, tags=["health"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers (no key needed, nothing else checked)."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=Ready,
        tags=["health"],
        responses=_error_responses(401, 503),
    )
    async def readyz(hub: HubDep, _tenant: TenantDep) -> dict[str, str]:
        """Readiness: Redis answers a PING (fails fast, 503, while it does not)."""
        await hub.saver.aping()
        return {"status": "ready", "redis": "ok"}

    @app.post(
        "/v1/lam",
        status_code=202,
        response_model=Accepted,
        tags=["conversations"],
        responses={
            200: {"description": "a `discover` is answered with an `offer` (LAM message)"},
            **_error_responses(401, 404, 409, 413, 422, 503),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LAM"}}},
            }
        },
    )
    async def post_lam(
        request: Request,
        hub: HubDep,
        tenant: TenantDep,
        wait: Annotated[
            float,
            Query(
                ge=0,
                le=60,
                description="seconds to wait for the conversation to stop running (waiting "
                "for an answer, done or failed); the body then carries it in `conversation`",
            ),
        ] = 0,
    ) -> Any:
        """Take one LAM message.

        - `request` opens a conversation (or, with the `conversation_id` of a finished one of
          yours, starts its next turn) and runs it in the background.
        - `agree`/`refuse` answer a waiting `propose`, `done`/`failure` a waiting `assign`
          (`in_reply_to` = its id); the conversation resumes exactly that interrupt.
          An answer to nothing that waits: 409, and nothing changes.
        - `discover` is answered at once with an `offer` (200).

        Sending the same message (same `id`) again is safe: the same response, no second
        effect.
        """
        body = await _read_body(request, hub.config.max_body_bytes)
        message = LAMMessage.from_json(body, max_bytes=hub.config.max_body_bytes)
        if message.performative not in ACCEPTED:
            names = ", ".join(sorted(p.value for p in ACCEPTED))
            raise ApiError(
                422,
                "unsupported_performative",
                f"the planner takes {names}; not {message.performative.value}",
                [{"field": "performative", "message": f"expected one of: {names}"}],
            )
        if message.performative is Performative.DISCOVER:
            return JSONResponse(hub.offer(message.sender, message.conversation_id))

        async def handle() -> dict[str, Any]:
            if message.performative is Performative.REQUEST:
                return await hub.open(tenant, message)
            return await hub.answer(tenant, message)

        accepted, replayed = await hub.once(tenant, message, handle)
        cid = accepted["conversation_id"]
        await hub.wait_idle(cid, min(wait, hub.config.max_wait_s))
        try:
            view = await hub.view(cid)
        except ConversationNotFoundError:  # a replay long after the conversation expired
            raise _not_found(cid) from None
        out = {**accepted, "status": view["status"]}
        if wait > 0:
            out["conversation"] = view
        headers = {"Idempotent-Replay": "true"} if replayed else {}
        return JSONResponse(out, status_code=202, headers=headers)

    @app.get(
        "/v1/conversations",
        response_model=ConversationList,
        tags=["conversations"],
        responses=_error_responses(401, 503),
    )
    async def list_conversations(
        hub: HubDep,
        tenant: TenantDep,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """Your conversations, newest first."""
        return {"conversations": await hub.list_conversations(tenant, limit)}

    @app.get(
        "/v1/conversations/{conversation_id}",
        response_model=ConversationBody,
        tags=["conversations"],
        responses=_error_responses(401, 404, 503),
    )
    async def get_conversation(
        conversation_id: ConversationId, hub: HubDep, tenant: TenantDep
    ) -> dict[str, Any]:
        """Status (`running`, `waiting`, `done`, `failed`), intent, plan, result, LAM log."""
        await hub.check_owner(tenant, conversation_id)
        try:
            return await hub.view(conversation_id)
        except ConversationNotFoundError:
            raise _not_found(conversation_id) from None

    @app.get(
        "/v1/conversations/{conversation_id}/inbox",
        response_model=list[dict[str, Any]],
        tags=["conversations"],
        responses=_error_responses(401, 404, 503),
    )
    async def get_inbox(
        conversation_id: ConversationId,
        hub: HubDep,
        tenant: TenantDep,
        receiver: Annotated[
            str | None, Query(max_length=256, description="e.g. `cpa-desktop`; all if absent")
        ] = None,
    ) -> list[dict[str, Any]]:
        """The `assign` and `propose` messages still waiting for an answer from `receiver`."""
        await hub.check_owner(tenant, conversation_id)
        try:
            return await hub.inbox(conversation_id, receiver)
        except ConversationNotFoundError:
            return []  # accepted, first checkpoint not written yet: nothing waits

    @app.get(
        "/v1/conversations/{conversation_id}/events",
        tags=["conversations"],
        response_class=StreamingResponse,
        responses={
            200: {
                "description": "Server-Sent Events: `id:` the LAM message id, `data:` the "
                "message; `:` comments keep the connection alive",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **_error_responses(401, 404, 503),
        },
    )
    async def get_events(
        conversation_id: ConversationId,
        hub: HubDep,
        tenant: TenantDep,
        last_event_id: Annotated[str | None, Header(max_length=256)] = None,
    ) -> StreamingResponse:
        """Each LAM message of the conversation as it is appended.

        Starts at the first message, or right after `Last-Event-ID`; ends once the
        conversation is done or failed.
        """
        await hub.check_owner(tenant, conversation_id)
        start = await hub.event_position(conversation_id, last_event_id)
        return StreamingResponse(
            _event_stream(hub, conversation_id, start),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get(
        "/v1/capabilities",
        tags=["capabilities"],
        responses={
            200: {"description": "an `offer` LAM message: executors, intents, lam_version"},
            **_error_responses(401, 503),
        },
    )
    async def capabilities(hub: HubDep, tenant: TenantDep) -> dict[str, Any]:
        """What this planner can do, as an `offer`."""
        return hub.offer(tenant)

    @app.get("/v1/lam/schema", tags=["capabilities"], responses=_error_responses(401))
    async def lam_schema(_tenant: TenantDep) -> dict[str, Any]:
        """The JSON Schema of a LAM message."""
        return message_json_schema()


async def _event_stream(hub: Hub, cid: str, start: int) -> AsyncIterator[str]:
    """SSE body: the event log from `start`, then new messages until done or failed.

    Waits on in-process notifications from the runner, and polls (cheaply) for runs
    elsewhere. A client that goes away cancels this generator: nothing is left behind.
    """
    config = hub.config
    listener = hub.listen(cid)
    position = start
    last_write = time.monotonic()
    last_sync = 0.0
    try:
        yield "retry: 1000\n\n"
        while True:
            listener.clear()
            status: str | None = "running"
            now = time.monotonic()
            # The runner appends what it streams; a view is needed for the rest (runs in
            # other processes, the end of a run), at most once per poll interval while busy.
            if not hub.busy(cid) or now - last_sync >= config.sse_poll_s:
                status = await hub.sync_events(cid)
                last_sync = now
            for raw in await hub.events_from(cid, position):
                message_id = json.loads(raw)["id"]
                yield f"id: {message_id}\ndata: {raw.decode()}\n\n"
                position += 1
                last_write = time.monotonic()
            if status is None or status in FINAL_STATUSES:
                return
            timeout = min(config.sse_poll_s, config.sse_keepalive_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(listener.wait(), timeout)
            if time.monotonic() - last_write >= config.sse_keepalive_s:
                yield ": keep-alive\n\n"
                last_write = time.monotonic()
    finally:
        hub.unlisten(cid, listener)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the LAM message schema (its `$defs` as components)."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        routes=app.routes,
    )
    schema = message_json_schema()
    defs = schema.pop("$defs", {})
    for key in ("$schema", "$id"):
        schema.pop(key, None)
    components = document.setdefault("components", {}).setdefault("schemas", {})

    def relink(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: (
                    v.replace("#/$defs/", "#/components/schemas/LAM_")
                    if k == "$ref" and isinstance(v, str)
                    else relink(v)
                )
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [relink(v) for v in node]
        return node

    components["LAM"] = relink(schema)
    for name, definition in defs.items():
        components[f"LAM_{name}"] = relink(definition)
    app.openapi_schema = document
    return document


# Running it -----------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(host: str | None = None, port: int | None = None, *, log_level: str = "info") -> None:
    """Run the API with uvicorn (for `cpa-planner serve`). Blocks until stopped.

    Without API keys it binds to loopback only, whatever `host` says, and says so.
    Raises ServerConfigError / ConfigError for unusable settings.
    """
    import uvicorn

    config = ServerSettings.from_env()
    settings = Settings.from_env()
    host = host or config.host
    port = port or config.port
    if config.open_access and not _is_loopback(host):
        print(
            f"cpa-planner: no API keys configured (CPA_API_KEYS); binding to 127.0.0.1 "
            f"instead of {host}",
            file=sys.stderr,
        )
        host = "127.0.0.1"
    elif config.open_access:
        print(
            "cpa-planner: no API keys configured (CPA_API_KEYS): open to local callers only, "
            f"on {host}",
            file=sys.stderr,
        )
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings, server_settings=config),
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=5,
    )


def main(argv: list[str] | None = None) -> int:
    """`python server.py [--host H] [--port P]`: the same as `cpa-planner serve`."""
    import argparse

    parser = argparse.ArgumentParser(prog="server.py", description="the cpa-planner HTTP API")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    try:
        serve(args.host, args.port)
    except (ServerConfigError, ConfigError) as exc:
        print(f"cpa-planner: {exc}", file=sys.stderr)
        return 2
    return 0


app = create_app()

if __name__ == "__main__":
    raise SystemExit(main())
