"""langgraph-checkpoint-conformance against our saver, on Redis 7 and on Valkey."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import BASE_CAPABILITIES

from graph.checkpointer import RedisSaver, make_client


async def test_conformance_base_capabilities_full(redis_url: str, redis_prefix: str) -> None:
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
    for cap in BASE_CAPABILITIES:
        result = results[cap.value]
        assert result["detected"], cap.value
        assert result["tests_failed"] == 0, (cap.value, result["failures"])
        assert result["tests_passed"] > 0, cap.value
    passed = sum(results[c.value]["tests_passed"] for c in BASE_CAPABILITIES)
    assert passed == 58  # put 17, put_writes 10, get_tuple 10, list 16, delete_thread 5
