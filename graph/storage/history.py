"""Walking a thread's history: what a delta channel (the LAM log) is rebuilt from.

The LAM log is a `DeltaChannel`: a checkpoint stores a snapshot of it only now and then
(every 1000 updates), and in between each message is one pending write. Rebuilding it at a
checkpoint walks the parent chain back to each channel's nearest stored value (its seed)
and replays the writes since, oldest first, each checkpoint's in LangGraph's
`writes_sort_key` order (task path first), which keeps parallel branches' messages in the
order the live run produced. Pruning keeps exactly that chain (`graph.storage.maintenance`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import DeltaChannelHistory, PendingWrite, get_checkpoint_id

from graph.storage.base import EMPTY, BaseRedisSaver, unpack

__all__ = ["DeltaHistory"]


class DeltaHistory(BaseRedisSaver):
    """`aget_delta_channel_history`, in three round trips whatever the chain's length."""

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Walk the parent chain once for all channels (same contract as InMemorySaver's).

        Three round trips whatever the chain length: all parents and versions of the
        namespace, the blobs of the requested channels along the chain, the chain's writes.
        """
        if not channels:
            return {}
        return await self._io(lambda: self._delta_history(config, channels))

    async def _delta_history(
        self, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        thread_id = str(config["configurable"]["thread_id"])
        ns = config["configurable"].get("checkpoint_ns", "")
        metas = await self._metas(thread_id, ns)
        target = get_checkpoint_id(config) or max(metas, default=None)
        walk, seeds = await self._walk_to_seeds(thread_id, ns, metas, target, channels)

        pipe = self.client.pipeline(transaction=False)
        for cp in walk:
            pipe.hgetall(self._writes_key(thread_id, ns, cp))
        raw_writes = await pipe.execute() if walk else []

        result: dict[str, DeltaChannelHistory] = {}
        for ch in channels:
            last = seeds[ch][0] if ch in seeds else len(walk) - 1
            collected: list[PendingWrite] = []
            # Oldest ancestor first; within one checkpoint, in writes_sort_key order.
            for pos in range(last, -1, -1):
                for task_id, channel, value, _path in self._decode_writes(raw_writes[pos], ch):
                    collected.append((task_id, channel, value))
            entry: DeltaChannelHistory = {"writes": collected}
            if ch in seeds:
                entry["seed"] = self.serde.loads_typed(unpack(seeds[ch][1]))
            result[ch] = entry
        return result

    async def _walk_to_seeds(
        self,
        thread_id: str,
        ns: str,
        metas: Mapping[str, Mapping[str, Any]],
        target: str | None,
        channels: Sequence[str] | set[str],
    ) -> tuple[list[str], dict[str, tuple[int, bytes]]]:
        """The ancestors of `target` (nearest first) that `channels` are rebuilt from.

        The walk ends at the ancestor where the last channel finds a stored value (its
        seed), or at the root. Returns the walk and, per channel that found one, the seed's
        position in the walk and its blob.
        """
        chain: list[str] = []
        current = metas[target]["p"] if target is not None and target in metas else None
        while current is not None and current in metas:
            chain.append(current)
            current = metas[current]["p"]

        # Which blob each channel has at each ancestor; fetch them in one go.
        fields = sorted(
            {
                f"{ch}\x00{metas[cp]['v'][ch]}"
                for cp in chain
                for ch in channels
                if ch in metas[cp]["v"]
            }
        )
        blobs: dict[str, bytes | None] = {}
        if fields:
            got = await self.client.hmget(self._ns_key(thread_id, ns, "blobs"), fields)
            blobs = dict(zip(fields, cast(list[bytes | None], got), strict=True))

        seeds: dict[str, tuple[int, bytes]] = {}
        walk: list[str] = []
        remaining = set(channels)
        for pos, cp in enumerate(chain):
            if not remaining:
                break
            walk.append(cp)
            for ch in list(remaining):
                version = metas[cp]["v"].get(ch)
                blob = blobs.get(f"{ch}\x00{version}") if version is not None else None
                if blob is not None and blob != EMPTY:
                    seeds[ch] = (pos, blob)
                    remaining.discard(ch)
        return walk, seeds
