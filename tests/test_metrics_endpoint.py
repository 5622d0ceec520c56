"""`GET /metrics` and the HTTP middleware, in process (the app with its lifespan, real Valkey).

Routes are counted by their template, never the raw path; `/metrics` is open, or wants
CPA_METRICS_TOKEN, or is off; the active gauge comes from Redis. Several worker processes
sharing PROMETHEUS_MULTIPROC_DIR are added up.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.principals import Principal, Scope
from api.settings import ServerSettings, digest
from graph.config import Settings
from server import create_app
from tests.support.server_harness import (
    ACME_KEY,
    REGISTRY,
    auth,
    delete_prefix,
    request_message,
    server_services,
)

ROOT = Path(__file__).resolve().parent.parent
READER_KEY = "reader-key-0123456789"
SCRAPER_KEY = "scraper-key-0123456789"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture
async def client(
    valkey_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("CPA_INTENTS_PATH", str(REGISTRY))
    for name in ("CPA_METRICS", "CPA_METRICS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(
        redis_url=valkey_url,
        redis_prefix=f"test-metrics-{uuid.uuid4().hex[:8]}",
        intents_path=str(REGISTRY),
    )
    app = create_app(
        settings,
        services=server_services(settings),
        server_settings=ServerSettings(
            api_keys={
                digest(ACME_KEY): "acme",
                digest(READER_KEY): Principal("acme", "user:anna", frozenset({Scope.READ})),
                digest(SCRAPER_KEY): Principal("ops", "prometheus", frozenset({Scope.METRICS})),
            }
        ),
    )
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
            async with httpx.AsyncClient(
                transport=transport, base_url="http://localhost", headers=auth(ACME_KEY)
            ) as http:
                yield http
    finally:
        delete_prefix(valkey_url, settings.redis_prefix)


async def test_requests_are_counted_by_route_template_and_status(
    client: httpx.AsyncClient,
) -> None:
    opened = await client.post(
        "/v1/lam", json=request_message("Take a note: buy milk"), params={"wait": 10}
    )
    assert opened.status_code == 202, opened.text
    cid = opened.json()["conversation_id"]
    assert (await client.get(f"/v1/conversations/{cid}")).status_code == 200
    assert (await client.get("/v1/conversations/no-such-id")).status_code == 404
    assert (await client.get("/no/such/route")).status_code == 404

    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = samples(response.text)
    by_route = "/v1/conversations/{conversation_id}"
    assert found[("cpa_http_requests_total", (("route", by_route), ("status", "200")))] >= 1
    assert found[("cpa_http_requests_total", (("route", by_route), ("status", "404")))] >= 1
    assert found[("cpa_http_requests_total", (("route", "/v1/lam"), ("status", "202")))] >= 1
    assert found[("cpa_http_requests_total", (("route", "unmatched"), ("status", "404")))] >= 1
    assert cid not in response.text and "no-such-id" not in response.text
    assert found[("cpa_http_request_duration_seconds_count", (("route", "/v1/lam"),))] >= 1
    # The conversation itself, counted by the graph's callback under its tenant.
    done = (("intent", "note"), ("outcome", "done"), ("tenant", "acme"))
    assert found[("cpa_conversations_total", done)] >= 1
    assert ("cpa_conversations_active", (("state", "running"),)) in found
    assert ("cpa_conversations_active", (("state", "waiting"),)) in found


async def test_the_active_gauge_counts_what_waits(client: httpx.AsyncClient) -> None:
    before = samples((await client.get("/metrics")).text)
    waiting = ("cpa_conversations_active", (("state", "waiting"),))
    opened = await client.post(
        "/v1/lam", json=request_message("Remind me to call Anna"), params={"wait": 10}
    )
    assert opened.json()["status"] == "waiting"  # the plan asks for approval
    after = samples((await client.get("/metrics")).text)
    assert after[waiting] == before[waiting] + 1


async def test_the_active_gauge_adds_up_every_shard_of_the_global_index(
    client: httpx.AsyncClient,
) -> None:
    """Entries in several shards of the global index (`graph.storage.server_keys`) are all
    counted: the gauge is their sum."""
    replica = client._transport.app.state.replica  # type: ignore[attr-defined]
    before = samples((await client.get("/metrics")).text)
    shards = replica.keys.indexes()
    for n, index in enumerate(shards[:3]):
        await replica.redis.sadd(index.running, *(f"acme/r{n}-{i}" for i in range(n + 1)))
    await replica.redis.zadd(shards[-1].waiting, {"acme/w1": 1.0, "acme/w2": 2.0})
    await replica.redis.zadd(shards[-2].waiting, {"acme/w3": 3.0})
    after = samples((await client.get("/metrics")).text)
    for state, added in (("running", 1 + 2 + 3), ("waiting", 3)):
        key = ("cpa_conversations_active", (("state", state),))
        assert after[key] == before[key] + added


async def test_metrics_token_and_metrics_off(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    telemetry = client._transport.app.state.telemetry  # type: ignore[attr-defined]
    settings = telemetry.settings
    monkeypatch.setattr(
        telemetry, "settings", type(settings)(metrics=True, metrics_token="scrape-token-123")
    )
    # With the token set, a scraper on this machine brings it (or a metrics credential) too.
    assert (await client.get("/metrics", headers={"Authorization": ""})).status_code == 401
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "unauthorized"
    right = await client.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"})
    assert right.status_code == 200
    assert (await client.get("/metrics", headers=auth(SCRAPER_KEY))).status_code == 200

    monkeypatch.setattr(telemetry, "settings", type(settings)(metrics=False))
    off = await client.get("/metrics")
    assert off.status_code == 404
    assert "CPA_METRICS" in off.json()["error"]["message"]


async def test_with_keys_metrics_need_the_metrics_scope_or_loopback(
    client: httpx.AsyncClient,
) -> None:
    """Tenant names, counts and agent names are not for anyone who can reach the server."""
    app = client._transport.app  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://planner.example") as far:
        assert (await far.get("/metrics")).status_code == 401
        reader = await far.get("/metrics", headers=auth(READER_KEY))
        assert reader.status_code == 403 and reader.json()["error"]["code"] == "forbidden"
        assert (await far.get("/metrics", headers=auth(SCRAPER_KEY))).status_code == 200
    # A scraper on this machine (the server's own Prometheus) needs no credential.
    assert (await client.get("/metrics", headers={"Authorization": ""})).status_code == 200


async def test_without_keys_metrics_are_for_this_machine_only(valkey_url: str) -> None:
    settings = Settings(redis_url=valkey_url, redis_prefix=f"test-m-{uuid.uuid4().hex[:8]}")
    app = create_app(settings, services=server_services(settings), server_settings=ServerSettings())
    try:
        async with app.router.lifespan_context(app):
            for address, status in ((("192.0.2.7", 50000), 403), (("127.0.0.1", 5), 200)):
                transport = httpx.ASGITransport(app=app, client=address)
                async with httpx.AsyncClient(
                    transport=transport, base_url="http://localhost"
                ) as http:
                    assert (await http.get("/metrics")).status_code == status, address
    finally:
        delete_prefix(valkey_url, settings.redis_prefix)


_WORKER = """
from graph.telemetry import metrics
metrics.TODOS.labels("work", "done").inc({n})
metrics.HTTP_REQUESTS.labels("/v1/lam", "202").inc()
"""


@pytest.mark.slow
def test_worker_processes_sharing_a_directory_are_added_up(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for n in (2, 3):
        subprocess.run([sys.executable, "-c", _WORKER.format(n=n)], cwd=ROOT, env=env, check=True)
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "from graph.telemetry import metrics; print(metrics.exposition()[0].decode())",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = samples(shown)
    assert found[("cpa_todos_total", (("executor", "work"), ("outcome", "done")))] == 5
    assert found[("cpa_http_requests_total", (("route", "/v1/lam"), ("status", "202")))] == 2
