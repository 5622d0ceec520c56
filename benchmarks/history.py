"""Does the history keep up? Archive throughput against the server's own run rate, and a
filtered query over 100,000 conversations, on SQLite and on PostgreSQL.

    python -m benchmarks.history [--json] [--runs 600] [--clients 32] [--archive 2000]
        [--conversations 100000] [--queries 30] [--backends sqlite,postgres]

1. **Load**: the replicas benchmark's load (`benchmarks.replicas`: 2 replicas, C clients,
   the HTTP benchmark's template run) with the history off, then on each back end, in turn.
   Per row: runs/s, the messages the runs produced per second, the archive's backlog sampled
   every 0.2 s while the load runs (its largest), and how long the archive took to be empty
   once the load stopped. The history keeps up when the backlog stays small and is gone
   about as soon as the load stops.
2. **Throughput**: real logs (a run's from step 1, each with new ids) queued on the archive
   stream as the event log's script queues them (one entry per append, three appends and a
   stop per conversation), then drained by one archiver, and by two (two consumers in this
   process): messages stored per second. Against step 1's messages/s: the headroom.
3. **Query**: 100,000 conversations of 4 tenants (with their ToDos) written straight into
   the tables, then `HistoryStore.search` with each filter (a tenant's newest page, status,
   intent, executor, text, a time range), `--queries` times each: p50/p95 in ms.

PostgreSQL is a throwaway cluster (tests/support/postgres.py; Debian's `postgresql`); SQLite a file
in a temporary directory. A private Valkey serves the replicas and the archive.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from sqlalchemy import func, select, text

from api.archiver import Archiver
from benchmarks.http import _cleanup
from benchmarks.replicas import cpu_seconds, load, private_valkey
from benchmarks.sse import server
from graph.history.models import CONVERSATIONS, MESSAGES, TODOS
from graph.history.queries import HistoryQuery
from graph.history.settings import HistorySettings
from graph.history.store import HistoryStore
from graph.storage.event_log import EventLog
from graph.storage.server_keys import RedisKeys
from tests.support.postgres import PostgresProcess

TENANTS = ("acme", "globex", "initech", "umbrella")
INTENTS = ("note", "reminder", "meeting", "email", "search", "other_task")
EXECUTORS = ("desktop", "llm", "http", "human", "template")
STATUSES = ("done", "done", "done", "failed", "waiting")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextmanager
def backends(names: list[str], directory: Path) -> Iterator[dict[str, Any]]:
    """A fresh database URL maker per back end."""
    with ExitStack() as stack:
        makers: dict[str, Any] = {}
        if "sqlite" in names:
            makers["sqlite"] = lambda: f"sqlite:///{directory / uuid.uuid4().hex[:8]}.db"
        if "postgres" in names:
            server = PostgresProcess.find()
            if server is None:
                raise SystemExit("PostgreSQL is not installed (apt-get install postgresql)")
            server.start()
            stack.callback(server.stop)
            makers["postgres"] = lambda: server.create_database(f"b_{uuid.uuid4().hex[:10]}")
        yield makers


# 1. The load ---------------------------------------------------------------------------


class BacklogSampler:
    """XLEN of the archive stream every 0.2 s, on a thread, while the load runs."""

    def __init__(self, client: Any, stream: str) -> None:
        self.client = client
        self.samples: list[int] = []
        self.stream = stream
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.samples.append(int(self.client.xlen(self.stream)))

    def __enter__(self) -> BacklogSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def load_row(
    redis_url: str, redis_pid: int | None, backend: str, url: str | None, args: Any, tmp: Path
) -> dict[str, Any]:
    """The replicas' load with the history off (`url` None) or on this database."""
    os.environ["CPA_HISTORY"] = "true" if url else "false"
    if url:
        os.environ["CPA_HISTORY_URL"] = url
    prefix = f"bench-history-{uuid.uuid4().hex[:8]}"
    stream = RedisKeys(prefix).archive
    client = redis.from_url(redis_url)
    try:
        with ExitStack() as stack:
            started = [
                stack.enter_context(server(redis_url, prefix, tmp / f"replica{i}.log"))
                for i in range(2)
            ]
            pids = [pid for _, pid in started]
            before = {pid: cpu_seconds(pid) for pid in pids}
            with BacklogSampler(client, stream) as sampler:
                wall = time.perf_counter()
                row = asyncio.run(load([u for u, _ in started], args.runs, args.clients))
                wall = time.perf_counter() - wall
            spent = {pid: cpu_seconds(pid) - before[pid] for pid in pids}
            # The replicas go on archiving after the load: how long until nothing is left.
            start = time.perf_counter()
            while client.xlen(stream) and time.perf_counter() - start < 300:
                time.sleep(0.05)
            drained = time.perf_counter() - start
            left = int(client.xlen(stream))
    finally:
        _cleanup(redis_url, prefix)
        client.close()
    total_runs = args.runs + row["warm_up_runs"]
    row["replicas"] = 2
    row["cpu_ms_per_run"] = round(sum(spent.values()) / total_runs * 1000, 1)
    row["replica_cpu"] = [round(spent[pid] / wall, 2) for pid in pids]
    row["history"] = backend if url else "off"
    row["backlog_max"] = max(sampler.samples, default=0)
    row["backlog_median"] = statistics.median(sampler.samples) if sampler.samples else 0
    row["drain_after_load_s"] = round(drained, 2) if url else 0.0
    row["left_in_stream"] = left
    if url:
        row["messages_per_run"], row["archived_conversations"] = asyncio.run(_archived(url))
        row["messages_per_s"] = round(row["runs_per_s"] * row["messages_per_run"], 1)
    return row


async def _archived(url: str) -> tuple[float, int]:
    store = HistoryStore(url)
    try:
        page = await store.count(HistoryQuery())
        async with store.reader.connect() as connection:
            messages = (
                await connection.execute(select(func.count()).select_from(MESSAGES))
            ).scalar_one()
        return round(messages / max(page, 1), 2), page
    finally:
        await store.close()


# 2. Throughput --------------------------------------------------------------------------


async def sample_log(url: str) -> list[dict[str, Any]]:
    store = HistoryStore(url)
    try:
        page = await store.search(HistoryQuery(limit=1))
        item = page.conversations[0]
        record = await store.conversation(item["tenant"], item["conversation_id"])
        assert record is not None
        return list(record["messages"])
    finally:
        await store.close()


def renamed(log: list[dict[str, Any]], cid: str) -> list[dict[str, Any]]:
    text = json.dumps(log).replace(log[0]["conversation_id"], cid)
    messages: list[dict[str, Any]] = json.loads(text)
    for n, message in enumerate(messages):
        message["id"] = f"{cid}-{n}"
    return messages


async def throughput(
    redis_url: str, url: str, log: list[dict[str, Any]], conversations: int, archivers: int
) -> dict[str, Any]:
    client = aioredis.from_url(redis_url)
    keys = RedisKeys(f"bench-history-{uuid.uuid4().hex[:8]}")
    events = EventLog(client, keys, archive=True)
    store = HistoryStore(url)
    await store.check_schema()
    try:
        third = max(len(log) // 3, 1)
        for i in range(conversations):
            cid = f"tp-{i}"
            messages = renamed(log, cid)
            for start in range(0, len(messages), third):
                await events.append(f"acme/{cid}", messages[start : start + third])
            await client.xadd(
                keys.archive,
                {
                    "thread": f"acme/{cid}",
                    "status": "done",
                    "log_length": len(messages),
                    "stop": json.dumps({"plan": None, "result": None}),
                },
            )
        total = conversations * len(log)
        settings = HistorySettings(history_url=url)
        workers = [Archiver(client, keys, store, settings, f"bench-{n}") for n in range(archivers)]
        began, cpu = time.perf_counter(), time.process_time()
        for worker in workers:
            await worker.start()
        while True:
            if not await client.xlen(keys.archive):
                break
            await asyncio.sleep(0.01)
        elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu
        for worker in workers:
            await worker.close()
        stored = sum(worker.stored for worker in workers)
        assert stored == total, (stored, total)
        return {
            "archivers": archivers,
            "messages": total,
            "seconds": round(elapsed, 2),
            "messages_per_s": round(total / elapsed, 1),
            # This process's CPU (the archivers, the driver's threads) per message stored.
            "cpu_ms_per_message": round(cpu / total * 1000, 3),
        }
    finally:
        await store.close()
        async for key in client.scan_iter(match=f"{keys.prefix}:*"):
            await client.delete(key)
        await client.aclose()


# 3. Query -------------------------------------------------------------------------------


async def fill(url: str, count: int) -> HistoryStore:
    """`count` conversations (and one or two ToDos each) written straight into the tables."""
    store = HistoryStore(url)
    await store.check_schema()
    rng = random.Random(7)
    now = datetime.now(UTC)
    words = ("bank", "mortgage", "anna", "meeting", "invoice", "report", "tax", "flight", "call")
    chunk = 5000
    async with store.writer.begin() as connection:
        for base in range(0, count, chunk):
            conversations, todos = [], []
            for i in range(base, min(base + chunk, count)):
                opened = now - timedelta(seconds=rng.uniform(0, 90 * 86400))
                request = " ".join(rng.choices(words, k=6))
                conversations.append(
                    {
                        "id": i + 1,
                        "tenant": TENANTS[i % len(TENANTS)],
                        "conversation_id": str(uuid.UUID(int=rng.getrandbits(128))),
                        "created_at": opened,
                        "updated_at": opened + timedelta(seconds=3),
                        "status": rng.choice(STATUSES),
                        "request": request,
                        "language": "en",
                        "intent": rng.choice(INTENTS),
                        "tier": "rules",
                        "replans": 0,
                        "turns": 1,
                        "message_count": 7,
                        "search_text": request,
                    }
                )
                for t in range(rng.choice((1, 2))):
                    todos.append(
                        {
                            "conversation_pk": i + 1,
                            "todo_id": f"t{t + 1}",
                            "title": "step",
                            "executor": rng.choice(EXECUTORS),
                            "status": "done",
                        }
                    )
            await connection.execute(CONVERSATIONS.insert(), conversations)
            await connection.execute(TODOS.insert(), todos)
    if store.dialect == "postgresql":
        async with store.writer.connect() as connection:
            await connection.execute(text("ANALYZE"))
            await connection.commit()
    else:
        async with store.writer.begin() as connection:
            await connection.execute(text("ANALYZE"))
    return store


async def queries(url: str, count: int, repeat: int) -> dict[str, Any]:
    started = time.perf_counter()
    store = await fill(url, count)
    filled = time.perf_counter() - started
    now = datetime.now(UTC)
    cases: dict[str, HistoryQuery] = {
        "newest page": HistoryQuery(tenant="acme"),
        "status=failed": HistoryQuery(tenant="acme", status="failed"),
        "intent=meeting": HistoryQuery(tenant="acme", intent="meeting"),
        "executor=human": HistoryQuery(tenant="acme", executor="human"),
        "text=invoice": HistoryQuery(tenant="acme", text="invoice hotel"),
        "a week, 30 days ago": HistoryQuery(
            tenant="acme", since=now - timedelta(days=37), until=now - timedelta(days=30)
        ),
        "failed, executor, text": HistoryQuery(
            tenant="acme", status="failed", executor="desktop", text="tax"
        ),
    }
    out: dict[str, Any] = {"conversations": count, "fill_s": round(filled, 1), "queries": {}}
    try:
        for name, query in cases.items():
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                await store.search(query)
                times.append((time.perf_counter() - start) * 1000)
            out["queries"][name] = {
                "p50_ms": round(_percentile(times, 0.5), 2),
                "p95_ms": round(_percentile(times, 0.95), 2),
            }
        # The next page of a page: cursor pagination costs the same as the first page.
        page = await store.search(HistoryQuery(tenant="acme", status="done"))
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            await store.search(HistoryQuery(tenant="acme", status="done", cursor=page.next_cursor))
            times.append((time.perf_counter() - start) * 1000)
        out["queries"]["status=done, page 2"] = {
            "p50_ms": round(_percentile(times, 0.5), 2),
            "p95_ms": round(_percentile(times, 0.95), 2),
        }
    finally:
        await store.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--runs", type=int, default=600, help="runs of the load per row")
    parser.add_argument("--clients", type=int, default=32, help="the load's clients")
    parser.add_argument("--archive", type=int, default=2000, help="conversations to drain")
    parser.add_argument("--conversations", type=int, default=100_000, help="for the query")
    parser.add_argument("--queries", type=int, default=30, help="times each query runs")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument(
        "--parts", default="load,throughput,query", help="which to run (throughput needs load)"
    )
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.backends.split(",") if n.strip()]
    parts = {p.strip() for p in args.parts.split(",")}
    report: dict[str, Any] = {"cpus": os.cpu_count(), "load": [], "throughput": [], "query": {}}
    with (
        tempfile.TemporaryDirectory() as tmp,
        private_valkey() as (redis_url, redis_pid),
        backends(names, Path(tmp)) as makers,
    ):
        log: list[dict[str, Any]] = []
        if "load" in parts:
            report["load"].append(load_row(redis_url, redis_pid, "off", None, args, Path(tmp)))
            for name in names:
                url = makers[name]()
                report["load"].append(load_row(redis_url, redis_pid, name, url, args, Path(tmp)))
                log = log or asyncio.run(sample_log(url))
        for name in names:
            if "throughput" in parts and log:
                for archivers in (1, 2):
                    row = asyncio.run(
                        throughput(redis_url, makers[name](), log, args.archive, archivers)
                    )
                    report["throughput"].append({"backend": name, **row})
            if "query" in parts:
                report["query"][name] = asyncio.run(
                    queries(makers[name](), args.conversations, args.queries)
                )
    if args.json:
        print(json.dumps(report))
        return 0
    for row in report["load"]:
        extra = (
            f", {row['messages_per_s']:.0f} messages/s ({row['messages_per_run']} a run); "
            f"backlog max {row['backlog_max']} (median {row['backlog_median']}), empty "
            f"{row['drain_after_load_s']} s after the load"
            if row["history"] != "off"
            else ""
        )
        print(
            f"load, history {row['history']:8s}: {row['runs_per_s']:6.1f} runs/s, "
            f"p50 {row['p50_ms']} ms, replicas' CPU per run {row['cpu_ms_per_run']} ms{extra}"
        )
    for row in report["throughput"]:
        print(
            f"throughput, {row['backend']:8s}, {row['archivers']} archiver(s): "
            f"{row['messages_per_s']:8.1f} messages/s ({row['messages']} in {row['seconds']} s), "
            f"CPU {row['cpu_ms_per_message']:.2f} ms a message"
        )
    for name, result in report["query"].items():
        print(f"query, {name} ({result['conversations']:,} conversations):")
        for label, figures in result["queries"].items():
            print(
                f"  {label:24s} p50 {figures['p50_ms']:7.2f} ms   p95 {figures['p95_ms']:7.2f} ms"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
