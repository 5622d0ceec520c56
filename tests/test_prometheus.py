"""A real Prometheus scrapes a running `cpa-planner serve` (issue 14).

Debian's `prometheus` (installed by .ci/run) runs with a generated config on a free loopback
port, its data in a temp dir, scraping the server every second; the test runs
conversations over HTTP and asks Prometheus's HTTP API for the counters they moved. The
server logs JSON (`CPA_LOG_FORMAT=json`): its lines carry conversation and tenant, and
neither the request's text nor an API key.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import free_port, stop_process
from tests.support.server_harness import (
    ACME_KEY,
    ServerProcess,
    approve_until_assigned,
    auth,
    done_for,
    open_conversation,
    server_env,
    wait_status,
)

pytestmark = pytest.mark.slow

PRIVATE_TEXT = "Take a note: the safe's code is 4711"


class Prometheus:
    """`prometheus` scraping one target every second, data in `directory`."""

    def __init__(self, binary: str, directory: Path, target: str) -> None:
        self.port = free_port()
        config = directory / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: cpa-planner\n    metrics_path: /metrics\n"
            f"    static_configs:\n      - targets: ['{target}']\n",
            encoding="utf-8",
        )
        self.log = directory / "prometheus.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.url = f"http://127.0.0.1:{self.port}"

    def ready(self, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"prometheus not ready:\n{self.log.read_text()[-3000:]}")

    def value(self, query: str) -> float | None:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": query}, timeout=10)
        body = response.json()
        assert body["status"] == "success", body
        result = body["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def wait_for(self, query: str, at_least: float, within: float = 60.0) -> float | None:
        """The query's value once it reaches `at_least` (or what it was at the deadline)."""
        deadline = time.monotonic() + within
        while True:
            found = self.value(query)
            if (found is not None and found >= at_least) or time.monotonic() > deadline:
                return found
            time.sleep(0.25)

    def stop(self) -> None:
        stop_process(self.proc, 10)


@pytest.fixture
def prometheus_bin() -> str:
    found = shutil.which("prometheus")
    if found is None:
        import os

        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("prometheus is required in CI (.ci/run installs Debian's)")
        pytest.skip("prometheus not installed (apt-get install prometheus)")
    return found


@pytest.fixture
def served(redis7_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    env = server_env(redis7_url, tmp_path, CPA_LOG_FORMAT="json")
    server = ServerProcess(env, tmp_path / "server.log", cli=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _conversations(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, headers=auth(ACME_KEY), timeout=30) as client:
        note = await open_conversation(client, PRIVATE_TEXT, wait=10)
        assert note["status"] == "done"
        reminder = await open_conversation(client, "Remind me to call Anna", wait=10)
        cid = reminder["conversation_id"]
        assign = await approve_until_assigned(client, cid)
        response = await client.post("/v1/lam", json=done_for(assign, "added"))
        assert response.status_code == 202, response.text
        body = await wait_status(client, cid, {"done", "failed"})
        assert body["status"] == "done"
        return {"note": note["conversation_id"], "reminder": cid}


def test_prometheus_finds_the_counters_a_conversation_moved(
    prometheus_bin: str, served: ServerProcess, tmp_path: Path
) -> None:
    prometheus = Prometheus(prometheus_bin, tmp_path, f"127.0.0.1:{served.port}")
    try:
        prometheus.ready()
        # Scraped before anything ran: the target is up, nothing counted yet.
        assert prometheus.wait_for('up{job="cpa-planner"}', 1) == 1
        ids = asyncio.run(_conversations(served.url))

        done = 'cpa_conversations_total{tenant="acme",intent="note",outcome="done"}'
        assert prometheus.wait_for(done, 1) == 1
        reminder = 'cpa_conversations_total{tenant="acme",intent="reminder",outcome="done"}'
        assert prometheus.wait_for(reminder, 1) == 1
        assert prometheus.wait_for('cpa_todos_total{executor="template",outcome="done"}', 2) == 2
        assert prometheus.wait_for('cpa_todos_total{executor="desktop",outcome="done"}', 1) == 1
        assert prometheus.wait_for('cpa_interrupt_wait_seconds_count{kind="desktop"}', 1) == 1
        assert prometheus.wait_for('cpa_interrupt_wait_seconds_count{kind="approval"}', 1) == 1
        rules = 'sum(cpa_intent_decisions_total{tier="rules"})'
        assert prometheus.wait_for(rules, 2) == 2
        posted = 'cpa_http_requests_total{route="/v1/lam",status="202"}'
        assert (prometheus.wait_for(posted, 4) or 0) >= 4
        # Latency as metrics: the turns' durations, their sum and count.
        turns = "sum(cpa_conversation_duration_seconds_count)"
        assert prometheus.wait_for(turns, 2) == 2
        assert prometheus.value('cpa_conversations_active{state="waiting"}') == 0
    finally:
        prometheus.stop()

    # The server's JSON log: every line JSON; a conversation's lines carry id and tenant.
    entries = [json.loads(line) for line in served.log_path.read_text().splitlines() if line]
    ended = [e for e in entries if e["message"].startswith("turn ended")]
    assert {e["conversation_id"] for e in ended} == set(ids.values())
    assert all(e["tenant"] == "acme" and len(e["trace_id"]) == 32 for e in ended)
    assert any(e["logger"] == "uvicorn.error" for e in entries)  # uvicorn's lines too
    text = served.log_path.read_text()
    assert "4711" not in text and ACME_KEY not in text
