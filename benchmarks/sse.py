"""SSE listeners per server process: N listeners on one conversation, each gets every event.

One server (uvicorn, local mode, Redis checkpoints) and one conversation that waits for the
desktop agent (`reminder` of the HTTP API tests' registry). N listeners connect to its
event stream (plain sockets: the client must cost less than the server), then the plan is
agreed to and the desktop ToDo answered; the conversation ends and every stream closes.

    python -m benchmarks.sse [--json] [--redis-url URL] [--listeners 100,500,1000,2000]

Per N: the server's resident memory per listener, its CPU while N listeners wait (keep-alive
comments only), and from the `done` to the last listener's last event: the time, and the
server's CPU per delivered event. Every listener must receive every message of the log,
each once, or the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from benchmarks.http import REGISTRY, ROOT, _cleanup, contextlib_redis, free_port

IDLE_S = 3.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@contextmanager
def server(
    redis_url: str,
    prefix: str,
    log: Path,
    env: dict[str, str] | None = None,
    key: str | None = None,
) -> Iterator[tuple[str, int]]:
    """uvicorn server:app on a free loopback port: (base URL, pid). `env`: settings over
    the ones here (local mode unless it sets CPA_API_KEYS; then `key`, one of them, asks
    it whether it is ready).

    Its data directory (the history's SQLite file) is `data` beside the log: never the
    user's own, and shared by the replicas of one measurement, as in a deployment.
    """
    port = free_port()
    env = {
        **os.environ,
        "CPA_DATA_DIR": str(log.parent / "data"),
        "REDIS_URL": redis_url,
        "CPA_REDIS_PREFIX": prefix,
        "CPA_INTENTS_PATH": str(REGISTRY),
        "CPA_API_KEYS": "",
        "CPA_API_KEYS_FILE": "",
        "LANGSMITH_TRACING": "false",
        **(env or {}),
    }
    args = [sys.executable, "-m", "uvicorn", "server:app", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited:\n{log.read_text()[-3000:]}")
            try:
                headers = {"Authorization": f"Bearer {key}"} if key else {}
                if httpx.get(f"{url}/readyz", headers=headers, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Listener:
    """One SSE connection on a plain socket: the event ids it got, and when the last came."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.last_at = 0.0

    async def run(self, port: int, cid: str, connected: asyncio.Event, first: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            f"GET /v1/conversations/{cid}/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Accept: text/event-stream\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        buffer = b""
        while chunk := await reader.read(65536):
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.startswith(b"id: "):
                    self.ids.append(line[4:].strip().decode())
                    self.last_at = time.perf_counter()
                    if len(self.ids) == first:
                        connected.set()
        writer.close()


async def one_round(url: str, pid: int, listeners: int) -> dict[str, Any]:
    from lam import LAMMessage, MessageFactory

    port = int(url.rsplit(":", 1)[1])
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        request = MessageFactory("user").request("Remind me to renew the passport").to_dict()
        accepted = (await client.post("/v1/lam", json=request, params={"wait": 30})).json()
        cid = accepted["conversation_id"]
        first = len(accepted["conversation"]["messages"])  # the log so far: up to the propose

        rss_before = rss_mb(pid)
        group = [Listener() for _ in range(listeners)]
        ready = [asyncio.Event() for _ in group]
        started = time.perf_counter()
        tasks = [
            asyncio.create_task(one.run(port, cid, event, first))
            for one, event in zip(group, ready, strict=True)
        ]
        await asyncio.wait_for(asyncio.gather(*(event.wait() for event in ready)), 300)
        connect_s = time.perf_counter() - started
        rss_with = rss_mb(pid)

        idle_cpu = cpu_s(pid)
        await asyncio.sleep(IDLE_S)
        idle_cpu = cpu_s(pid) - idle_cpu

        (propose,) = (await client.get(f"/v1/conversations/{cid}/inbox")).json()
        agree = MessageFactory("user", cid).agree(LAMMessage.from_dict(propose)).to_dict()
        await client.post("/v1/lam", json=agree, params={"wait": 30})
        (assign,) = (await client.get(f"/v1/conversations/{cid}/inbox")).json()
        done = MessageFactory("cpa-desktop", cid).done(LAMMessage.from_dict(assign), "renewed")
        cpu_before = cpu_s(pid)
        sent = time.perf_counter()
        await client.post("/v1/lam", json=done.to_dict())
        await asyncio.wait_for(asyncio.gather(*tasks), 300)
        cpu_used = cpu_s(pid) - cpu_before
        final = (await client.get(f"/v1/conversations/{cid}")).json()

    every = [m["id"] for m in final["messages"]]
    for one in group:
        if sorted(one.ids) != sorted(every):
            raise RuntimeError(f"a listener got {len(one.ids)} events of {len(every)}")
    after = sorted(one.last_at - sent for one in group)
    delivered = listeners * (len(every) - first)
    return {
        "listeners": listeners,
        "events_each": len(every),
        "connect_s": round(connect_s, 2),
        "rss_kb_per_listener": round((rss_with - rss_before) * 1024 / listeners, 1),
        "idle_cpu_pct": round(100 * idle_cpu / IDLE_S, 1),
        "delivery_p50_ms": round(after[len(after) // 2] * 1000, 1),
        "delivery_max_ms": round(after[-1] * 1000, 1),
        "cpu_us_per_event": round(cpu_used * 1e6 / delivered, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--redis-url", help="Redis for the server (default: a private Valkey)")
    parser.add_argument("--listeners", default="100,500,1000,2000", help="comma-separated N")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.listeners.split(",")]

    results = []
    with tempfile.TemporaryDirectory() as tmp, contextlib_redis(args.redis_url) as redis_url:
        prefix = f"bench-sse-{uuid.uuid4().hex[:8]}"
        try:
            with server(redis_url, prefix, Path(tmp) / "server.log") as (url, pid):
                for count in counts:
                    results.append(asyncio.run(one_round(url, pid, count)))
        finally:
            _cleanup(redis_url, prefix)

    if args.json:
        print(json.dumps(results))
        return 0
    print("listeners  connect s  KB/listener  idle CPU %  delivery p50 / max ms  CPU µs/event")
    for r in results:
        print(
            f"{r['listeners']:9}  {r['connect_s']:9.2f}  {r['rss_kb_per_listener']:11.1f}  "
            f"{r['idle_cpu_pct']:10.1f}  {r['delivery_p50_ms']:9.1f} / {r['delivery_max_ms']:7.1f}"
            f"  {r['cpu_us_per_event']:12.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
