"""langgraph-checkpoint-conformance against our saver, on Redis 7, on Valkey and on a
one-node Redis Cluster (which refuses keys of two slots): every capability, the base ones
and the extended ones (delete_for_runs, copy_thread, prune)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import (
    ALL_CAPABILITIES,
    BASE_CAPABILITIES,
    EXTENDED_CAPABILITIES,
)

from graph.storage.client import make_client
from graph.storage.saver import RedisSaver

# Tests per capability in langgraph-checkpoint-conformance 0.0.2 (pinned in .ci/constraints.txt).
BASE_TESTS = 58  # put 17, put_writes 10, get_tuple 10, list 16, delete_thread 5
EXTENDED_TESTS = 23  # delete_for_runs 7, copy_thread 8, prune 8


@pytest.fixture(params=["redis7", "valkey", "cluster_node"])
def redis_url(request: pytest.FixtureRequest) -> str:
    """conftest's two servers, and the one-node cluster (it refuses keys of two slots)."""
    return str(request.getfixturevalue(f"{request.param}_url"))


async def test_conformance_every_capability_full(redis_url: str, redis_prefix: str) -> None:
    @checkpointer_test(name=f"cpa-redis-{redis_prefix}")
    async def factory() -> AsyncIterator[RedisSaver]:
        # A fresh key space per capability suite, all under this test's prefix.
        saver = RedisSaver(make_client(redis_url), prefix=f"{redis_prefix}:{uuid.uuid4().hex[:8]}")
        try:
            yield saver
        finally:
            await saver.aclose()

    report = await validate(factory)
    results = report.to_dict()["results"]
    for cap in ALL_CAPABILITIES:
        result = results[cap.value]
        assert result["detected"], cap.value
        assert result["tests_failed"] == 0, (cap.value, result["failures"])
        assert result["tests_passed"] > 0, cap.value
    assert sum(results[c.value]["tests_passed"] for c in BASE_CAPABILITIES) == BASE_TESTS
    assert sum(results[c.value]["tests_passed"] for c in EXTENDED_CAPABILITIES) == EXTENDED_TESTS
