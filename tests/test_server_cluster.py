"""The HTTP server on a Redis Cluster (issue 28).

Each test runs twice: on `cluster_node_url`, one redis-server in cluster mode owning every
slot (a command, MULTI or script whose keys hash to two slots gets CROSSSLOT, as on a real
Cluster; fast), and on `redis_cluster_url`, three primaries with a replica each through the
cluster client (`redis+cluster://`, `slow`). The server's
keys are laid out per slot (`graph.storage.server_keys`), and each step touches one slot
(`graph.storage.records`): a conversation opened, answered, run to done, its events read,
a tenant over its cap refused, a retry answered from its record. Each failed with CROSSSLOT
before the layout (the conversation's record and its tenant's counts were one script). And
the global index's shards, each on its slot: what waits in several is counted and expired.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from api.settings import ServerSettings
from graph.storage.server_keys import index_shard
from lam import MessageFactory
from tests.support.server_harness import (
    approve_until_assigned,
    done_for,
    open_conversation,
    request_message,
    sse,
    wait_status,
)
from tests.test_principals import served


@pytest.fixture(params=["cluster_node", pytest.param("cluster", marks=pytest.mark.slow)])
def cluster_url(request: pytest.FixtureRequest) -> str:
    name = "cluster_node_url" if request.param == "cluster_node" else "redis_cluster_url"
    return str(request.getfixturevalue(name))


async def test_a_conversation_runs_to_done_on_a_cluster(cluster_url: str) -> None:
    async with served(cluster_url, ServerSettings()) as (_, http):
        cid = (await open_conversation(http, "Remind me to water the plants"))["conversation_id"]
        assign = await approve_until_assigned(http, cid)
        answered = await http.post("/v1/lam", json=done_for(assign, "watered"))
        assert answered.status_code == 202, answered.text
        final = await wait_status(http, cid, {"done", "failed"})
        assert final["status"] == "done", final
        # The event log (SSE) from the start: every message of the conversation, in order.
        seen: list[str] = []
        async with asyncio.timeout(30):  # a guard against a hang, not a timed assert
            async for kind, item in sse(http, cid):
                if kind == "message":
                    seen.append(item[1]["id"])
                    if len(seen) == len(final["messages"]):
                        break
        assert seen == [m["id"] for m in final["messages"]]


async def test_a_retry_gets_the_first_answer_on_a_cluster(cluster_url: str) -> None:
    async with served(cluster_url, ServerSettings()) as (_, http):
        request = request_message("Take a note: only once")
        first = await http.post("/v1/lam", json=request)
        second = await http.post("/v1/lam", json=request)
        assert first.status_code == second.status_code == 202, (first.text, second.text)
        assert first.json()["conversation_id"] == second.json()["conversation_id"]
        assert second.headers.get("idempotent-replay") == "true"


async def test_a_tenant_over_its_cap_is_refused_on_a_cluster(cluster_url: str) -> None:
    async with served(cluster_url, ServerSettings(max_waiting_per_tenant=1)) as (_, http):
        cid = (await open_conversation(http, "Remind me to water the plants"))["conversation_id"]
        await approve_until_assigned(http, cid)  # then waits for the desktop agent
        assert (await wait_status(http, cid, {"waiting"}))["status"] == "waiting"
        refused = await http.post("/v1/lam", json=request_message("Remind me to call Anna"))
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "too_many_waiting"


async def test_waits_in_several_index_shards_are_counted_and_expired_on_a_cluster(
    cluster_url: str,
) -> None:
    # Conversation ids whose threads (tenant `local`) fall in three shards of the global index.
    by_shard: dict[int, str] = {}
    while len(by_shard) < 3:
        cid = str(uuid.uuid4())
        by_shard.setdefault(index_shard(f"local/{cid}"), cid)
    async with served(cluster_url, ServerSettings()) as (app, http):
        for cid in by_shard.values():
            request = MessageFactory("user", cid).request("Remind me to water the plants")
            opened = await http.post("/v1/lam", json=request.to_dict())
            assert opened.status_code == 202 and opened.json()["conversation_id"] == cid
        for cid in by_shard.values():
            assert (await wait_status(http, cid, {"waiting"}))["status"] == "waiting"
        metrics = (await http.get("/metrics")).text
        active = {
            sample.labels["state"]: sample.value
            for family in text_string_to_metric_families(metrics)
            for sample in family.samples
            if sample.name == "cpa_conversations_active"
        }
        assert active == {"running": 0, "waiting": 3}
        expiry = app.state.replica.expiry
        expiry.wait_expiry_s = 1e-6  # every wait is too long now
        since = time.time()
        ended = await expiry.expire_waiting()
        assert sorted(ended) == sorted(f"local/{cid}" for cid in by_shard.values())
        for cid in by_shard.values():
            final = (await http.get(f"/v1/conversations/{cid}")).json()
            assert final["status"] == "failed", final
            assert final["result"]["error"]["code"] == "expired"
        assert await app.state.replica.records.waited_too_long(since + 60) == []
