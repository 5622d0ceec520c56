"""Maintenance: deleting runs and threads, copying, pruning, a finished conversation's TTL.

Besides LangGraph's base API: `adelete_for_runs`, `acopy_thread` and `aprune` (LangGraph
API server and Studio call them), each aware of the `DeltaChannel` (a pruned or copied thread
keeps every ancestor its log is rebuilt from, `graph.storage.history`).

A conversation is kept in a fixed set of keys per thread (`BaseRedisSaver._thread_keys`), so
a finished one gets a TTL as a whole (`expire_conversation`) and new activity lifts it again
(`aput`, `aput_writes`). The threads whose keys expired are dropped from `P:threads` now and
then (`aforget_gone_threads`).

Redis Cluster: every transaction here (MULTI/EXEC, the prune's WATCH) holds one thread's
keys only, so one slot. The global indexes (`P:threads`, `P:r:R`) are changed by separate
commands, in the order that keeps them a superset of the truth (`graph.storage.base`): entries
added before a thread's keys are written, removed after they are gone. Removing a thread's
entry then checks that its keys are still gone, and puts the entry back if a checkpoint
was stored meanwhile (a writer adds before it writes, so between our check and our removal
its entry would be lost otherwise).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, cast

from redis.exceptions import WatchError

from graph.storage.base import as_text, pack, unpack
from graph.storage.history import DeltaHistory

__all__ = ["PRUNE_STRATEGIES", "Maintenance"]

PRUNE_STRATEGIES = ("keep_latest", "delete", "delete_all")  # "delete_all": LangGraph API's name


class Maintenance(DeltaHistory):
    """What LangGraph's API server, Studio and the server's expiry call besides reads and writes."""

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, blob and write of a thread."""

        async def run() -> None:
            own, run_keys = await self._own_keys(thread_id)
            await self.client.delete(*own)  # one slot, one command: atomic
            # Then the indexes (a crash before leaves extra entries, which readers skip). A
            # run index may name other threads too (a copy's): only this one leaves it.
            pipe = self.client.pipeline(transaction=False)
            for key in run_keys:
                pipe.srem(key, thread_id)
            await pipe.execute()
            self._indexed_runs.discard(lambda pair: pair[1] == thread_id)
            await self._unindex_threads([thread_id])

        await self._io(run)

    async def _unindex_threads(self, thread_ids: Sequence[str]) -> int:
        """Drop threads whose keys are gone from `P:threads` (and from what this saver
        remembers as indexed); a thread written meanwhile gets its entry back. Returns how
        many entries went for good."""
        if not thread_ids:
            return 0
        gone = set(thread_ids)
        self._indexed_threads.discard(lambda thread: thread in gone)
        removed = await self.client.srem(self._threads_key(), *thread_ids)
        pipe = self.client.pipeline(transaction=False)
        for thread_id in thread_ids:
            pipe.exists(self._thread_key(thread_id))
        back = [t for t, alive in zip(thread_ids, await pipe.execute(), strict=True) if alive]
        if back:
            await self.client.sadd(self._threads_key(), *back)
        return max(int(removed) - len(back), 0)

    async def aforget_gone_threads(self, batch: int = 500) -> int:
        """Drop from `P:threads` the threads whose keys expired; returns how many."""

        async def run() -> int:
            gone = 0
            async for chunk in _chunks(
                self.client.sscan_iter(self._threads_key(), count=batch), batch
            ):
                pipe = self.client.pipeline(transaction=False)
                for thread_id in chunk:
                    pipe.exists(self._thread_key(as_text(thread_id)))
                dead = [
                    as_text(t)
                    for t, alive in zip(chunk, await pipe.execute(), strict=True)
                    if not alive
                ]
                gone += await self._unindex_threads(dead)
            return gone

        return await self._io(run)

    async def _expire_all(self, thread_id: str, ttl_s: int | None) -> int:
        own, run_keys = await self._own_keys(thread_id)

        async def expire(keys: list[str], transaction: bool) -> int:
            pipe = self.client.pipeline(transaction=transaction)
            for key in keys:
                if ttl_s is None:
                    pipe.persist(key)
                else:
                    pipe.expire(key, ttl_s)
            return sum(bool(r) for r in await pipe.execute()) if keys else 0  # keys that exist

        # The thread's own keys as a whole (one slot, one transaction); its run indexes
        # (other slots) outside it, in the order that keeps them a superset: kept (PERSIST)
        # before the thread lives on, given the TTL after it.
        if ttl_s is None:
            return await expire(run_keys, False) + await expire(own, True)
        return await expire(own, True) + await expire(run_keys, False)

    async def expire_conversation(self, thread_id: str, ttl_s: int | None = None) -> int:
        """Give a finished (done or failed) conversation a TTL, all its keys at once.

        `ttl_s` defaults to the saver's `ttl_s` (CPA_REDIS_TTL); with neither, nothing
        expires. New activity on the conversation (a checkpoint or a write) removes the TTL
        again. Returns the number of keys that got it.
        """
        ttl = ttl_s if ttl_s is not None else self.ttl_s
        if ttl is None:
            return 0
        return await self._io(lambda: self._expire_all(thread_id, ttl))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints these runs made, with their writes, in every namespace.

        Runs are found through the run index (`P:r:R`), so only checkpoints stored with a
        metadata `run_id` by this saver are found. As LangGraph warns: deleting a run whose
        writes a later checkpoint's delta channel is rebuilt from breaks that checkpoint;
        rolling back the newest run (what the API server does) is safe.
        """
        wanted = {str(r) for r in run_ids}
        if not wanted:
            return

        async def run() -> None:
            pipe = self.client.pipeline(transaction=False)
            for run_id in sorted(wanted):
                pipe.smembers(self._run_key(run_id))
            threads = sorted({as_text(t) for members in await pipe.execute() for t in members})

            async def made_by_the_runs(metas: dict[str, dict[str, Any]]) -> set[str]:
                return {cp for cp, meta in metas.items() if meta.get("r") in wanted}

            for thread_id in threads:  # a thread gone since its entry was added: no namespace
                for ns in await self._namespaces(thread_id):
                    await self._drop_checkpoints(thread_id, ns, made_by_the_runs)
                await self.client.srem(self._runs_key(thread_id), *wanted)
            # Then the run indexes, one key (one slot) per command.
            pipe = self.client.pipeline(transaction=False)
            for run_id in wanted:
                pipe.delete(self._run_key(run_id))
            await pipe.execute()
            self._indexed_runs.discard(lambda pair: pair[0] in wanted)

        await self._io(run)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint, write and blob of a thread to another, all namespaces.

        The whole history is copied (a delta channel is rebuilt from its ancestors' writes);
        a checkpoint's metadata `thread_id`, where there is one, names the target. What the
        target already held stays unless the copy overwrites it (same checkpoint ids).
        """
        if source_thread_id == target_thread_id:
            return

        async def run() -> None:
            namespaces = await self._namespaces(source_thread_id)
            if not namespaces:
                return
            src, dst = source_thread_id, target_thread_id
            tx = self.client.pipeline(transaction=True)  # the target's keys: one slot
            run_ids: set[str] = set()
            for ns in namespaces:
                read = self.client.pipeline(transaction=False)
                for part in ("idx", "cp", "meta", "blobs"):
                    if part == "idx":
                        read.zrange(self._ns_key(src, ns, part), 0, -1)
                    else:
                        read.hgetall(self._ns_key(src, ns, part))
                ids, cps, metas, blobs = await read.execute()
                ids = [as_text(i) for i in ids]
                read = self.client.pipeline(transaction=False)
                for cp in ids:
                    read.hgetall(self._writes_key(src, ns, cp))
                writes = await read.execute() if ids else []
                if ids:
                    tx.zadd(self._ns_key(dst, ns, "idx"), dict.fromkeys(ids, 0))
                if cps:
                    retargeted = {k: self._retarget(v, dst) for k, v in cps.items()}
                    tx.hset(self._ns_key(dst, ns, "cp"), mapping=retargeted)
                if metas:
                    tx.hset(self._ns_key(dst, ns, "meta"), mapping=metas)
                    run_ids |= {m["r"] for m in map(json.loads, metas.values()) if m.get("r")}
                if blobs:
                    tx.hset(self._ns_key(dst, ns, "blobs"), mapping=blobs)
                for cp, rows in zip(ids, writes, strict=True):
                    if rows:
                        tx.hset(self._writes_key(dst, ns, cp), mapping=rows)
            tx.sadd(self._thread_key(dst), *namespaces)
            if run_ids:
                tx.sadd(self._runs_key(dst), *run_ids)
            # The indexes first (other slots, a superset: a crash leaves an extra entry).
            index = self.client.pipeline(transaction=False)
            index.sadd(self._threads_key(), dst)
            for run_id in run_ids:
                index.sadd(self._run_key(run_id), dst)
            await index.execute()
            await tx.execute()

        await self._io(run)

    def _retarget(self, raw_payload: bytes, thread_id: str) -> bytes:
        """A stored checkpoint payload whose metadata `thread_id` (if any) is `thread_id`."""
        payload = self.serde.loads_typed(unpack(raw_payload))
        if "thread_id" not in payload["metadata"]:
            return raw_payload
        payload["metadata"] = {**payload["metadata"], "thread_id": thread_id}
        return pack(self.serde.dumps_typed(payload))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Drop old checkpoints: `keep_latest` keeps each namespace's latest, `delete` all.

        `keep_latest` also keeps the ancestors (and their writes) that the latest
        checkpoint's delta channels are rebuilt from, back to each one's nearest snapshot:
        for the LAM log (a snapshot every 1000 updates) usually the latest's whole chain.
        What goes are the other branches (forks, time travel) and the blobs nothing kept
        refers to. `delete_all` is accepted for `delete` (LangGraph API's name).
        """
        if strategy not in PRUNE_STRATEGIES:
            raise ValueError(
                f"unknown prune strategy {strategy!r}; expected one of: "
                + ", ".join(PRUNE_STRATEGIES)
            )
        for thread_id in dict.fromkeys(str(t) for t in thread_ids):
            if strategy != "keep_latest":
                await self.adelete_thread(thread_id)
                continue

            async def run(thread_id: str = thread_id) -> None:
                for ns in await self._namespaces(thread_id):

                    async def drop(metas: dict[str, dict[str, Any]], ns: str = ns) -> set[str]:
                        kept = await self._needed_by_latest(thread_id, ns, metas)
                        return set(metas) - kept

                    await self._drop_checkpoints(thread_id, ns, drop)

            await self._io(run)

    async def _needed_by_latest(
        self, thread_id: str, ns: str, metas: dict[str, dict[str, Any]]
    ) -> set[str]:
        """The latest checkpoint and the ancestors its delta channels are rebuilt from."""
        if not metas:
            return set()
        latest = max(metas)  # UUID6 ids sort by time
        raw = await self.client.hget(self._ns_key(thread_id, ns, "cp"), latest)
        if raw is None:
            return {latest}
        metadata = self.serde.loads_typed(unpack(cast(bytes, raw)))["metadata"]
        # LangGraph counts, per delta channel, the updates since its last snapshot; a channel
        # listed there is not stored whole at `latest` and needs its ancestors' writes.
        rebuilt = set(metadata.get("counters_since_delta_snapshot") or {})
        walk, _ = await self._walk_to_seeds(thread_id, ns, metas, latest, rebuilt)
        return {latest, *walk}

    async def _drop_checkpoints(
        self,
        thread_id: str,
        ns: str,
        choose: Callable[[dict[str, dict[str, Any]]], Awaitable[set[str]]],
    ) -> None:
        """Delete the checkpoints `choose(metas)` names, their writes, and orphaned blobs.

        One transaction, watched: a checkpoint stored meanwhile makes it start over, so a
        blob is never dropped while a new checkpoint refers to it. The watched key and every
        key it changes are the thread's: one slot. A namespace left empty leaves the thread
        key; the thread's `P:threads` entry stays (readers skip it, `aforget_gone_threads`).
        """
        idx, cp_key, meta_key, blobs_key = (
            self._ns_key(thread_id, ns, p) for p in ("idx", "cp", "meta", "blobs")
        )
        async with self.client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(meta_key)
                    raw = await pipe.hgetall(meta_key)
                    metas = {as_text(k): json.loads(v) for k, v in raw.items()}
                    drop = await choose(metas) & set(metas)
                    if not drop:
                        return  # leaving the block resets the pipeline: UNWATCH
                    kept = [metas[cp] for cp in metas if cp not in drop]
                    referenced = {f"{ch}\x00{v}" for m in kept for ch, v in m["v"].items()}
                    fields = await pipe.hkeys(blobs_key)
                    orphans = [f for f in fields if as_text(f) not in referenced]
                    pipe.multi()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
                    pipe.hdel(cp_key, *drop)
                    pipe.hdel(meta_key, *drop)
                    pipe.zrem(idx, *drop)
                    pipe.delete(*(self._writes_key(thread_id, ns, cp) for cp in drop))
                    if orphans:
                        pipe.hdel(blobs_key, *orphans)
                    if not kept:
                        pipe.srem(self._thread_key(thread_id), ns)
                    await pipe.execute()
                    return
                except WatchError:
                    continue


async def _chunks(items: AsyncIterator[Any], size: int) -> AsyncIterator[list[Any]]:
    chunk: list[Any] = []
    async for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
