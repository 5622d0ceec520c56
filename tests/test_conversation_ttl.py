"""Finished conversations expire after the configured TTL; waiting ones never do."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from graph.builder import build_graph, make_services
from graph.config import Settings
from graph.conversations import Conversations
from graph.storage.base import thread_tag
from graph.storage.connect import open_checkpointer
from lam import LAMMessage, MessageFactory


@pytest.fixture(params=["redis7", "valkey", "cluster_node"])
def redis_url(request: pytest.FixtureRequest) -> str:
    """conftest's two servers, and the one-node cluster (it refuses keys of two slots)."""
    return str(request.getfixturevalue(f"{request.param}_url"))


async def _ttls(url: str, prefix: str, cid: str) -> list[int]:
    """TTLs of the conversation's own keys (the saver's index of all threads is shared)."""
    client = aioredis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:t:{thread_tag(cid)}*")]
        return [await client.ttl(k) for k in keys]
    finally:
        await client.aclose()


async def test_ttl_applies_once_a_conversation_is_done(redis_url: str, redis_prefix: str) -> None:
    settings = Settings(redis_url=redis_url, redis_prefix=redis_prefix, redis_ttl_s=600)
    async with open_checkpointer(settings) as saver:
        convs = Conversations(build_graph(make_services(settings), checkpointer=saver), saver)
        cid = convs.new_id()
        view = await convs.run(cid, convs.opening("Remind me to call Anna tomorrow at 9"))
        assert view.status == "waiting"
        assert set(await _ttls(redis_url, redis_prefix, cid)) == {-1}  # waiting: kept
        propose = LAMMessage.from_dict(view.waiting[0].message)  # adding it changes something
        agree = MessageFactory("user", cid).agree(propose)
        view = await convs.run(cid, await convs.answer(cid, agree))
        assert view.status == "waiting"

        assign = LAMMessage.from_dict(view.waiting[0].message)
        done = MessageFactory("cpa-desktop", cid).done(assign, "added")
        view = await convs.run(cid, await convs.answer(cid, done))
        assert view.status == "done"
        ttls = await _ttls(redis_url, redis_prefix, cid)
        assert ttls and all(0 < t <= 600 for t in ttls)
