"""The one-node cluster the storage's tests check slots with refuses what a Cluster refuses."""

from __future__ import annotations

import pytest
import redis


def test_the_cluster_node_refuses_keys_of_two_slots(
    cluster_node_url: str, redis_prefix: str
) -> None:
    client = redis.from_url(cluster_node_url)
    try:
        together = [f"{redis_prefix}:{{t}}:a", f"{redis_prefix}:{{t}}:b"]
        apart = [f"{redis_prefix}:a", f"{redis_prefix}:b"]
        script = "redis.call('SET', KEYS[1], 1); redis.call('SET', KEYS[2], 1)"
        client.eval(script, 2, *together)
        assert client.mget(together) == [b"1", b"1"]
        with pytest.raises(redis.exceptions.ResponseError, match="same slot"):
            client.eval(script, 2, *apart)
        with pytest.raises(redis.exceptions.ResponseError, match="same slot"):
            client.mget(apart)
    finally:
        client.close()
