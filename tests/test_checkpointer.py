"""The Redis saver with real servers: isolation, TTL, errors, restarts, the LAM log, and the
maintenance calls of LangGraph's API server (prune, delete runs, copy a thread)."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypedDict, cast

import pytest
import redis.asyncio as aioredis
from langchain_core.runnables import RunnableConfig
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.base import CheckpointMetadata
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.event_hooks import register_serde_event_listener
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, interrupt
from redis.crc import key_slot

from graph.config import Settings
from graph.state import LamDict, PlannerState, append_lam_batch
from graph.storage.base import key_part, legacy_key_name, thread_tag
from graph.storage.client import make_client
from graph.storage.connect import checkpointer, open_checkpointer
from graph.storage.errors import RedisUnavailableError
from graph.storage.fencing import FENCE, FencedError
from graph.storage.saver import RedisSaver
from lam import Plan, ToDo
from tests.support.processes import RedisProcess, free_port

RUNS: list[str] = []  # which nodes ran, to check nothing runs twice after a resume


@pytest.fixture(params=["redis7", "valkey", "cluster_node"])
def redis_url(request: pytest.FixtureRequest) -> str:
    """conftest's two servers, and the one-node cluster: there every command, script and
    transaction of the saver must stay within one slot (Redis Cluster refuses the others)."""
    return str(request.getfixturevalue(f"{request.param}_url"))


def _msg(sender: str, text: str) -> LamDict:
    return {
        "lam_version": "1.0",
        "id": str(uuid.uuid4()),
        "performative": "inform",
        "sender": sender,
        "receiver": "planner",
        "conversation_id": "c",
        "content": {"topic": "status", "text": text},
    }


def _node(name: str, count: int = 2) -> Any:
    def run(state: Any) -> dict[str, Any]:
        RUNS.append(name)
        return {"lam": [_msg(name, f"{name} {i} " + "x" * 300) for i in range(count)]}

    return run


class OftenSnapshotted(TypedDict, total=False):
    """The LAM log with a snapshot every 3 updates (PlannerState's: every 1000)."""

    lam: Annotated[list[LamDict], DeltaChannel(append_lam_batch, snapshot_frequency=3)]


def _graph(
    *,
    wait_in_c: bool = False,
    state: type[Any] = PlannerState,
    before_b: Callable[[], None] | None = None,
) -> StateGraph[Any]:
    """a -> (b, c in parallel) -> d: parallel branches writing the log in one superstep;
    `before_b` is called as b starts, the first time only."""

    def b(state: Any) -> dict[str, Any]:
        if before_b is not None and "b" not in RUNS:
            before_b()
        return _node("b")(state)  # type: ignore[no-any-return]

    def c(state: Any) -> dict[str, Any]:
        if wait_in_c:
            answer = interrupt("approve?")
            RUNS.append(f"c:{answer}")
            return {"lam": [_msg("c", f"answer {answer}")]}
        return _node("c")(state)  # type: ignore[no-any-return]

    g: StateGraph[Any] = StateGraph(state)
    g.add_node("a", _node("a", 1))
    g.add_node("b", b)
    g.add_node("c", c)
    g.add_node("d", _node("d", 1))
    g.add_edge(START, "a")
    g.add_edge("a", "b")
    g.add_edge("a", "c")
    g.add_edge(["b", "c"], "d")
    g.add_edge("d", END)
    return g


def _saver(url: str, prefix: str, **kwargs: Any) -> RedisSaver:
    return RedisSaver(make_client(url), prefix=prefix, url=url, **kwargs)


def _cfg(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}}


async def _keys(url: str, pattern: str) -> list[bytes]:
    client = aioredis.from_url(url)
    try:
        return [k async for k in client.scan_iter(match=pattern, count=1000)]
    finally:
        await client.aclose()


async def test_lam_log_round_trips_in_live_order(redis_url: str, redis_prefix: str) -> None:
    """Reloaded from Redis, the log equals the live run's, order of parallel branches too."""
    saver = _saver(redis_url, redis_prefix)
    app = _graph().compile(checkpointer=saver)
    live = await app.ainvoke({"lam": [_msg("user", "hello")]}, _cfg("t1"))
    memory = (
        await _graph()
        .compile(checkpointer=InMemorySaver())
        .ainvoke({"lam": [live["lam"][0]]}, _cfg("t1"))
    )
    fresh = _graph().compile(checkpointer=_saver(redis_url, redis_prefix))
    loaded = (await fresh.aget_state(_cfg("t1"))).values["lam"]
    assert [m["id"] for m in loaded] == [m["id"] for m in live["lam"]]
    assert [m["sender"] for m in loaded] == [m["sender"] for m in memory["lam"]]
    assert len(loaded) == 1 + 1 + 2 + 2 + 1
    # Time travel: every earlier checkpoint rebuilds the log as it was then.
    sizes = [len(s.values.get("lam", [])) async for s in fresh.aget_state_history(_cfg("t1"))]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] == 7
    await saver.aclose()


async def test_log_is_not_stored_whole_at_every_step(valkey_url: str, redis_prefix: str) -> None:
    """Each LAM message is stored once (as a pending write), not once per checkpoint."""
    saver = _saver(valkey_url, redis_prefix)
    app = _graph().compile(checkpointer=saver)
    for i in range(5):
        await app.ainvoke({"lam": [_msg("user", f"again {i}")]}, _cfg("t"))
    client = aioredis.from_url(valkey_url)
    stored: list[bytes] = []
    for key in await _keys(valkey_url, f"{redis_prefix}:*"):
        if await client.type(key) == b"hash":
            # redis-py types replies as bytes | str whatever decode_responses is; here bytes.
            stored += cast(dict[bytes, bytes], await client.hgetall(key)).values()
    await client.aclose()
    log = (await app.aget_state(_cfg("t"))).values["lam"]
    assert len(log) == 5 * 7
    everything = b"".join(stored)
    # Once each; a run's input message twice (LangGraph keeps the input itself, too).
    counts = [everything.count(m["id"].encode()) for m in log]
    assert counts == [2 if m["sender"] == "user" else 1 for m in log], counts
    await saver.aclose()


def test_the_plan_loads_as_a_registered_type(valkey_url: str, redis_prefix: str) -> None:
    """A checkpoint's plan comes back a Plan, without LangGraph's "unregistered type" warning
    (which it announces as a serde event each time, and logs once per process)."""
    events: list[Any] = []
    stop_listening = register_serde_event_listener(events.append)
    try:
        serde = _saver(valkey_url, redis_prefix).serde
        plan = Plan(goal="Meet Anna", todos=[ToDo(id="t1", title="Find a slot", executor="llm")])
        assert serde.loads_typed(serde.dumps_typed({"plan": plan})) == {"plan": plan}
    finally:
        stop_listening()
    assert [e for e in events if str(e["kind"]).startswith("msgpack")] == []


async def test_resume_after_interrupt_in_a_fresh_saver(redis_url: str, redis_prefix: str) -> None:
    """A parallel branch that finished before the interrupt does not run again on resume."""
    RUNS.clear()
    app = _graph(wait_in_c=True).compile(checkpointer=_saver(redis_url, redis_prefix))
    await app.ainvoke({"lam": [_msg("user", "hi")]}, _cfg("w"))
    assert RUNS == ["a", "b"]
    # A new process would open a new client: same here.
    fresh = _graph(wait_in_c=True).compile(checkpointer=_saver(redis_url, redis_prefix))
    state = await fresh.aget_state(_cfg("w"))
    assert state.next == ("c",) and state.interrupts
    result = await fresh.ainvoke(Command(resume="yes"), _cfg("w"))
    assert RUNS == ["a", "b", "c:yes", "d"]
    ids = [m["id"] for m in result["lam"]]
    assert len(ids) == len(set(ids)) == 1 + 1 + 2 + 1 + 1


async def test_fenced_writes_of_a_stale_generation_are_refused(
    redis_url: str, redis_prefix: str
) -> None:
    """A run under lease generation g writes while g is the thread's current generation;
    once a successor took g + 1, g's checkpoints and task writes are refused, whole."""
    RUNS.clear()
    saver = _saver(redis_url, redis_prefix)
    client = aioredis.from_url(redis_url)
    await client.set(saver.fence_key("f"), "7")
    app = _graph(wait_in_c=True).compile(checkpointer=saver)

    def fenced(token: str) -> RunnableConfig:
        return {"configurable": {"thread_id": "f", FENCE: token}}

    await app.ainvoke({"lam": [_msg("user", "hi")]}, fenced("7"))  # stops at c's interrupt
    history = [s.config async for s in app.aget_state_history(_cfg("f"))]
    await client.incr(saver.fence_key("f"))  # a successor took the lease: generation 8

    # As the server runs (durability "sync"): the step's checkpoint is refused before
    # another step starts, so the stale run stops after the node it was in.
    with pytest.raises(FencedError, match="generation 7 is stale"):
        await app.ainvoke(Command(resume="late"), fenced("7"), durability="sync")
    assert [s.config async for s in app.aget_state_history(_cfg("f"))] == history
    state = await app.aget_state(_cfg("f"))
    assert state.next == ("c",)  # c's write of the stale run was not stored either
    assert RUNS == ["a", "b", "c:late"]

    # The successor's generation writes; so does a run without a token (CLI, Studio).
    await app.ainvoke(Command(resume="yes"), fenced("8"))
    assert RUNS[-2:] == ["c:yes", "d"]
    metadata: dict[str, Any] = dict((await app.aget_state(_cfg("f"))).metadata or {})
    assert metadata[FENCE] == "8"
    await app.ainvoke({"lam": [_msg("user", "again")]}, _cfg("f"))
    assert RUNS[-2:] == ["a", "b"]
    assert FENCE not in dict((await app.aget_state(_cfg("f"))).metadata or {})
    await client.aclose()
    await saver.aclose()


async def test_prefixes_isolate(redis_url: str, redis_prefix: str) -> None:
    one = _saver(redis_url, f"{redis_prefix}:one")
    two = _saver(redis_url, f"{redis_prefix}:two")
    await _graph().compile(checkpointer=one).ainvoke({"lam": [_msg("user", "1")]}, _cfg("t"))
    assert await two.aget_tuple(_cfg("t")) is None
    assert [t async for t in two.alist(None)] == []
    await _graph().compile(checkpointer=two).ainvoke({"lam": [_msg("user", "2")]}, _cfg("t"))
    await two.adelete_thread("t")
    assert await two.aget_tuple(_cfg("t")) is None
    assert await one.aget_tuple(_cfg("t")) is not None
    assert await _keys(redis_url, f"{redis_prefix}:two:*") == []
    assert await _keys(redis_url, f"{redis_prefix}:one:*")
    await one.aclose()
    await two.aclose()


async def test_ttl_applies_to_finished_conversations_only(
    redis_url: str, redis_prefix: str
) -> None:
    saver = _saver(redis_url, redis_prefix, ttl_s=3600)
    app = _graph().compile(checkpointer=saver)
    for thread in ("done:1", "running"):  # ':' in a thread id must not confuse keys
        await app.ainvoke({"lam": [_msg("user", thread)]}, _cfg(thread))
    client = aioredis.from_url(redis_url)

    async def ttls(pattern: str) -> list[int]:
        return [await client.ttl(k) for k in await _keys(redis_url, pattern)]

    assert all(t == -1 for t in await ttls(f"{redis_prefix}:*"))  # nothing expires while open
    n = await saver.expire_conversation("done:1")
    done = await ttls(f"{redis_prefix}:t:{thread_tag('done:1')}*")
    assert n == len(done) > 5
    assert all(0 < t <= 3600 for t in done)
    assert all(t == -1 for t in await ttls(f"{redis_prefix}:t:{thread_tag('running')}*"))
    # New activity on a finished conversation makes it permanent again, as a whole.
    await app.ainvoke({"lam": [_msg("user", "more")]}, _cfg("done:1"))
    assert all(t == -1 for t in await ttls(f"{redis_prefix}:t:{thread_tag('done:1')}*"))
    # And the TTL really removes everything of it.
    await saver.expire_conversation("done:1", ttl_s=1)
    await asyncio.sleep(1.2)
    assert await ttls(f"{redis_prefix}:t:{thread_tag('done:1')}*") == []
    assert await saver.aget_tuple(_cfg("done:1")) is None
    assert [t.config async for t in saver.alist(None)]  # the other thread is still listed
    await client.aclose()
    await saver.aclose()


async def test_the_saver_stands_alone_from_a_url(redis_url: str, redis_prefix: str) -> None:
    """`RedisSaver.from_url`: no settings, no embedded server; a malformed URL is said masked."""
    async with RedisSaver.from_url(redis_url, prefix=redis_prefix) as saver:
        done = (
            await _graph()
            .compile(checkpointer=saver)
            .ainvoke({"lam": [_msg("user", "alone")]}, _cfg("alone"))
        )
    async with RedisSaver.from_url(redis_url, prefix=redis_prefix) as again:
        state = await _graph().compile(checkpointer=again).aget_state(_cfg("alone"))
    assert [m["id"] for m in state.values["lam"]] == [m["id"] for m in done["lam"]]
    with pytest.raises(ValueError, match="malformed Redis URL") as caught:
        async with RedisSaver.from_url("http://:secret@example.org/0"):
            pass
    assert "secret" not in str(caught.value)


async def test_unreachable_redis_fails_fast_with_one_line() -> None:
    url = f"redis://:secret@127.0.0.1:{free_port()}/0"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(RedisUnavailableError) as caught:
        async with open_checkpointer(Settings(redis_url=url)):
            pass
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("Redis at redis://:***@127.0.0.1:")
    assert "is unreachable" in message and "set REDIS_URL or start Redis" in message
    assert "secret" not in message


async def test_server_going_away_mid_conversation(redis_server_bin: str, tmp_path: Path) -> None:
    """Down: a clear RedisUnavailableError in seconds. Back (same AOF dir): nothing lost."""
    server = RedisProcess(redis_server_bin, tmp_path / "data")
    server.start()
    try:
        settings = Settings(redis_url=server.url, redis_prefix="restart")
        async with open_checkpointer(settings) as saver:
            app = _graph().compile(checkpointer=saver)
            before = await app.ainvoke({"lam": [_msg("user", "keep me")]}, _cfg("r"))
            server.stop()
            started = time.monotonic()
            with pytest.raises(RedisUnavailableError, match="is unreachable"):
                await app.aget_state(_cfg("r"))
            assert time.monotonic() - started < 10
            server.start()  # same port, same data directory, append-only file replayed
            after = (await app.aget_state(_cfg("r"))).values["lam"]
            assert [m["id"] for m in after] == [m["id"] for m in before["lam"]]
            # And the conversation goes on.
            more = await app.ainvoke({"lam": [_msg("user", "again")]}, _cfg("r"))
            assert len(more["lam"]) == len(before["lam"]) * 2
    finally:
        server.stop()


def _restart_in(server: RedisProcess, seconds: float) -> threading.Timer:
    """Redis goes away now and comes back (same port, same data) `seconds` later."""
    server.stop()
    timer = threading.Timer(seconds, server.start)
    timer.start()
    return timer


@pytest.mark.parametrize("wait_s", [30.0, 0.0])
async def test_a_write_waits_out_a_short_outage_so_nothing_runs_twice(
    redis_server_bin: str, tmp_path: Path, wait_s: float
) -> None:
    """Redis restarts while branch b runs (a failover looks the same to a writer): b's and
    c's writes find it away. With CPA_REDIS_WRITE_WAIT_S they wait for it, and the run goes
    on with each node run once; with 0 the run stops, and carried on from its last
    checkpoint it runs again what ran after it (b, whose writes were lost; d, if the step
    that found Redis away was its checkpoint)."""
    server = RedisProcess(redis_server_bin, tmp_path / "data")
    server.start()
    del RUNS[:]
    restarts: list[threading.Timer] = []
    graph = _graph(before_b=lambda: restarts.append(_restart_in(server, 1.5)))
    try:
        settings = Settings(redis_url=server.url, redis_prefix="wait", redis_write_wait_s=wait_s)
        async with open_checkpointer(settings) as saver:
            app = graph.compile(checkpointer=saver)
            if wait_s:
                done = await app.ainvoke({"lam": [_msg("user", "go")]}, _cfg("w"))
                assert sorted(RUNS) == ["a", "b", "c", "d"]
            else:
                with pytest.raises(RedisUnavailableError):
                    await app.ainvoke({"lam": [_msg("user", "go")]}, _cfg("w"))
                await asyncio.to_thread(restarts[0].join)  # Redis is back
                done = await app.ainvoke(None, _cfg("w"))
                assert set(RUNS) == {"a", "b", "c", "d"} and len(RUNS) > 4, RUNS  # again
            senders = [m["sender"] for m in done["lam"]]
            assert senders == ["user", "a", "b", "b", "c", "c", "d"]
            saved = (await app.aget_state(_cfg("w"))).values["lam"]
            assert [m["id"] for m in saved] == [m["id"] for m in done["lam"]]
    finally:
        for restart in restarts:
            restart.join()
        server.stop()


async def test_langgraph_json_factory_opens_the_configured_redis(
    valkey_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", valkey_url)
    monkeypatch.setenv("CPA_REDIS_PREFIX", redis_prefix)
    async with checkpointer() as saver:
        assert isinstance(saver, RedisSaver) and saver.prefix == redis_prefix
        await _graph().compile(checkpointer=saver).ainvoke({"lam": [_msg("u", "x")]}, _cfg("s"))
    assert await _keys(valkey_url, f"{redis_prefix}:t:{thread_tag('s')}:*")


async def test_concurrent_writes_batch_and_survive_a_script_flush(
    redis_url: str, redis_prefix: str
) -> None:
    """Concurrent puts share round trips; a server that forgot our scripts gets them again."""
    saver = _saver(redis_url, redis_prefix)
    app = _graph().compile(checkpointer=saver)
    await app.ainvoke({"lam": [_msg("user", "x")]}, _cfg("s"))
    config = (await saver.aget_tuple(_cfg("s"))).config  # type: ignore[union-attr]
    client = aioredis.from_url(redis_url)
    for _ in range(2):  # the second round starts with an empty script cache
        await client.script_flush()
        await asyncio.gather(
            *(
                saver.aput_writes(config, [("lam", _msg("u", str(i)))], f"task{i}")
                for i in range(20)
            )
        )
    await client.aclose()
    tup = await saver.aget_tuple(config)
    assert tup is not None and len(tup.pending_writes or []) == 20
    # Unchanged: a conversation resumes on top of them.
    result = await app.ainvoke({"lam": [_msg("user", "y")]}, _cfg("s"))
    assert len(result["lam"]) > 7
    await saver.aclose()


# Maintenance: aprune, adelete_for_runs, acopy_thread ----------------------------------------


async def _ids(app: Any, thread_id: str) -> list[str]:
    """Checkpoint ids of the thread's history, newest first."""
    return [
        s.config["configurable"]["checkpoint_id"]
        async for s in app.aget_state_history(_cfg(thread_id))
    ]


async def _chain(saver: RedisSaver, thread_id: str) -> list[str]:
    """The latest checkpoint and its ancestors, newest first."""
    tup = await saver.aget_tuple(_cfg(thread_id))
    chain = []
    while tup is not None:
        chain.append(tup.config["configurable"]["checkpoint_id"])
        tup = await saver.aget_tuple(tup.parent_config) if tup.parent_config else None
    return chain


async def _turns(app: Any, thread_id: str, *texts: str) -> list[LamDict]:
    for text in texts:
        await app.ainvoke({"lam": [_msg("user", text)]}, _cfg(thread_id))
    return list((await app.aget_state(_cfg(thread_id))).values["lam"])


async def _same_log_everywhere(redis_url: str, prefix: str, state: type[Any], log: Any) -> None:
    """The thread's log, read back by a fresh saver, is `log`."""
    fresh = _graph(state=state).compile(checkpointer=_saver(redis_url, prefix))
    loaded = (await fresh.aget_state(_cfg("p"))).values["lam"]
    assert [m["id"] for m in loaded] == [m["id"] for m in log]


@pytest.mark.parametrize("state", [PlannerState, OftenSnapshotted], ids=["log", "snapshots"])
async def test_prune_keeps_the_latest_and_what_its_log_is_rebuilt_from(
    redis_url: str, redis_prefix: str, state: type[Any]
) -> None:
    saver = _saver(redis_url, redis_prefix)
    app = _graph(state=state).compile(checkpointer=saver)
    other_log = await _turns(app, "other", "elsewhere")
    log = await _turns(app, "p", "one", "two", "three")
    history = await _ids(app, "p")

    await saver.aprune(["p"], strategy="keep_latest")

    kept = await _ids(app, "p")
    if state is PlannerState:
        assert kept == history  # no snapshot in 1000 updates: every ancestor rebuilds the log
    else:
        assert len(kept) < len(history) and kept == history[: len(kept)]  # to a snapshot
    await _same_log_everywhere(redis_url, redis_prefix, state, log)

    # Time travel: a branch from a checkpoint of the second turn, then a turn on it. The
    # branch's first checkpoint stores the log whole (LangGraph snapshots a fork).
    fork_point = [s async for s in app.aget_state_history(_cfg("p"))][len(kept) // 2].config
    forked = await app.aupdate_state(fork_point, {"lam": [_msg("user", "another way")]})
    log = await _turns(app, "p", "four")
    chain, abandoned = await _chain(saver, "p"), set(await _ids(app, "p"))

    await saver.aprune(["p"], strategy="keep_latest")

    kept = await _ids(app, "p")
    assert len(kept) < len(chain) and kept == chain[: len(kept)]
    assert not abandoned - set(chain) & set(kept)  # the other branch is gone
    assert forked["configurable"]["checkpoint_id"] in chain
    # The oldest one kept stores the log whole: the walk back ends there.
    oldest = await saver.aget_tuple({"configurable": {"thread_id": "p", "checkpoint_id": kept[-1]}})
    assert oldest is not None and "lam" in oldest.checkpoint["channel_values"]
    assert (await app.aget_state(_cfg("p"))).values["lam"] == log
    await _same_log_everywhere(redis_url, redis_prefix, state, log)
    # Nothing of the dropped checkpoints is left: their writes, blobs nothing refers to.
    writes = await _keys(redis_url, f"{redis_prefix}:t:{thread_tag('p')}:*:w:*")
    assert {k.decode().rsplit(":w:", 1)[1] for k in writes} <= set(kept)
    referenced = {
        f"{ch}\x00{v}" for m in (await saver._metas("p", "")).values() for ch, v in m["v"].items()
    }
    client = aioredis.from_url(redis_url)
    fields = cast(list[bytes], await client.hkeys(f"{redis_prefix}:t:{thread_tag('p')}::blobs"))
    blobs = {f.decode() for f in fields}
    await client.aclose()
    assert blobs and blobs <= referenced
    assert (await app.aget_state(_cfg("other"))).values["lam"] == other_log  # untouched
    # The conversation goes on from what was kept.
    more = await app.ainvoke({"lam": [_msg("user", "and on")]}, _cfg("p"))
    assert [m["id"] for m in more["lam"][: len(log)]] == [m["id"] for m in log]

    # A strategy it does not know: a clear error, nothing lost.
    before = await _ids(app, "p")
    with pytest.raises(ValueError, match="unknown prune strategy 'oldest'"):
        await saver.aprune(["p"], strategy="oldest")
    assert await _ids(app, "p") == before
    await saver.aprune(["p", "other"], strategy="delete")
    assert await _keys(redis_url, f"{redis_prefix}:t:*") == []
    await saver.aclose()


async def test_delete_for_runs_rolls_back_the_newest_run(redis_url: str, redis_prefix: str) -> None:
    saver = _saver(redis_url, redis_prefix, ttl_s=3600)
    app = _graph().compile(checkpointer=saver)
    runs = [str(uuid.uuid4()) for _ in range(3)]

    def run_cfg(run_id: str) -> RunnableConfig:
        return {**_cfg("r"), "metadata": {"run_id": run_id}}

    first = await app.ainvoke({"lam": [_msg("user", "one")]}, run_cfg(runs[0]))
    await app.ainvoke({"lam": [_msg("user", "two")]}, run_cfg(runs[1]))
    await saver.adelete_for_runs([runs[1], runs[2]])  # runs[2] never ran: no error

    state = await app.aget_state(_cfg("r"))
    assert [m["id"] for m in state.values["lam"]] == [m["id"] for m in first["lam"]]
    made_by = {(s.metadata or {}).get("run_id") async for s in app.aget_state_history(_cfg("r"))}
    assert made_by == {runs[0]}
    assert await _keys(redis_url, f"{redis_prefix}:r:*") == [f"{redis_prefix}:r:{runs[0]}".encode()]
    # It goes on from there; the index follows it, and leaves with it.
    again = await app.ainvoke({"lam": [_msg("user", "three")]}, run_cfg(runs[2]))
    assert len(again["lam"]) == 2 * len(first["lam"])
    assert await saver.expire_conversation("r") > 0
    client = aioredis.from_url(redis_url)
    ttls = [await client.ttl(k) for k in await _keys(redis_url, f"{redis_prefix}:r:*")]
    await client.aclose()
    assert len(ttls) == 2 and all(0 < t <= 3600 for t in ttls)
    await saver.adelete_thread("r")
    assert await _keys(redis_url, f"{redis_prefix}:*") == []  # the run index went with it
    await saver.aclose()


async def test_copy_thread_is_a_whole_and_independent_copy(
    redis_url: str, redis_prefix: str
) -> None:
    saver = _saver(redis_url, redis_prefix)
    app = _graph(wait_in_c=True).compile(checkpointer=saver)
    await app.ainvoke({"lam": [_msg("user", "hi")]}, _cfg("src"))  # waits in c: pending writes

    await saver.acopy_thread("src", "dst")

    source, copy = await app.aget_state(_cfg("src")), await app.aget_state(_cfg("dst"))
    assert copy.values["lam"] == source.values["lam"] and copy.next == source.next == ("c",)
    assert await _ids(app, "dst") == await _ids(app, "src")
    # The copy resumes on its own (b, finished before the interrupt, does not run again) ...
    RUNS.clear()
    done = await app.ainvoke(Command(resume="yes"), _cfg("dst"))
    assert RUNS == ["c:yes", "d"] and done["lam"][-1]["sender"] == "d"
    # ... and the source still waits, and outlives the copy's deletion.
    await saver.adelete_thread("dst")
    assert (await app.aget_state(_cfg("src"))).next == ("c",)

    # A checkpoint's metadata that names its thread names the copy's.
    tup = await saver.aget_tuple(_cfg("src"))
    assert tup is not None
    named = cast(CheckpointMetadata, {**tup.metadata, "thread_id": "named"})  # as the API server
    stored = await saver.aput(
        {"configurable": {"thread_id": "named", "checkpoint_ns": ""}}, tup.checkpoint, named, {}
    )
    await saver.acopy_thread("named", "renamed")
    copied = await saver.aget_tuple(_cfg("renamed"))
    assert copied is not None and cast(dict[str, Any], copied.metadata)["thread_id"] == "renamed"
    assert copied.config["configurable"]["checkpoint_id"] == stored["configurable"]["checkpoint_id"]
    await saver.acopy_thread("nothing-here", "still-nothing")
    assert await saver.aget_tuple(_cfg("still-nothing")) is None
    await saver.aclose()


# Redis Cluster: one slot per thread, the global indexes outside the scripts -----------------


def _old_part(part: str) -> str:
    """A thread id or namespace in the layout before hash tags (braces not escaped)."""
    return part.replace("%", "%25").replace(":", "%3A")


async def test_a_threads_keys_share_its_slot_and_map_from_the_old_layout(
    redis_url: str, redis_prefix: str
) -> None:
    """Every key the saver writes for a thread is listed by `athread_keys`, its own keys all
    hash to the thread's slot, and each one's name in the old layout maps to it."""
    thread, ns, run = "a%b:{c}", "sub:{x}", "run:{1}"
    saver = _saver(redis_url, redis_prefix)
    client = aioredis.from_url(redis_url)
    await client.set(saver.fence_key(thread), "1")
    config: RunnableConfig = {**_cfg(thread), "metadata": {"run_id": run}}
    await _graph().compile(checkpointer=saver).ainvoke({"lam": [_msg("user", "x")]}, config)
    tup = await saver.aget_tuple(_cfg(thread))
    assert tup is not None
    sub: RunnableConfig = {"configurable": {"thread_id": thread, "checkpoint_ns": ns}}
    stored = await saver.aput(sub, tup.checkpoint, tup.metadata, tup.checkpoint["channel_versions"])
    await saver.aput_writes(stored, [("lam", _msg("u", "w"))], "task")

    keys = await saver.athread_keys(thread)
    scanned = {k.decode() for k in await _keys(redis_url, f"{redis_prefix}:*")}
    # Listed: every key there is (and the writes of a checkpoint that has none yet).
    assert {k for k in keys if ":w:" not in k} <= scanned <= {*keys, f"{redis_prefix}:threads"}
    own = [k for k in keys if k.startswith(f"{redis_prefix}:t:")]
    assert {key_slot(k.encode()) for k in own} == {key_slot(thread_tag(thread).encode())}
    assert f"{redis_prefix}:t:{thread_tag(thread)}:{key_part(ns)}:w:" in "".join(own)

    tag, old_thread = f":t:{thread_tag(thread)}", f":t:{_old_part(thread)}"
    for key in keys:
        assert legacy_key_name(redis_prefix, key) is None  # already new
        old = key.replace(tag, old_thread).replace(key_part(ns), _old_part(ns))
        old = old.replace(f":r:{key_part(run)}", f":r:{_old_part(run)}")
        assert old != key and legacy_key_name(redis_prefix, old) == key
    await client.aclose()
    await saver.aclose()


def test_legacy_key_names() -> None:
    """Old-layout checkpoint keys get their new names; anything else is not theirs (None)."""
    cases = {
        "cpa:t:acme/c1": "cpa:t:{acme/c1}",
        "cpa:t:acme/c1::idx": "cpa:t:{acme/c1}::idx",
        "cpa:t:acme/c1::w:1f0-a": "cpa:t:{acme/c1}::w:1f0-a",
        "cpa:t:acme/c1:child%3A9f{2}:blobs": "cpa:t:{acme/c1}:child%3A9f%7B2%7D:blobs",
        "cpa:t:acme/c1:runs": "cpa:t:{acme/c1}:runs",
        "cpa:t:acme/c1:fence": "cpa:t:{acme/c1}:fence",
        "cpa:t:50%25%3A{x}:runs": "cpa:t:{50%25%3A%7Bx%7D}:runs",  # '50%:{x}'
        "cpa:t:{x:runs": "cpa:t:{%7Bx}:runs",  # thread '{x'
        "cpa:t:{x}y::cp": "cpa:t:{%7Bx%7Dy}::cp",  # thread '{x}y'
        "cpa:r:{run}": "cpa:r:%7Brun%7D",
    }
    for old, new in cases.items():
        assert legacy_key_name("cpa:", old) == new, old
    for key in (
        "cpa:threads",
        "cpa:r:run-1",
        "cpa:t:{acme/c1}::idx",
        "cpa:t:{acme/c1}",
        "cpa:srv:conv:acme/c1",
        "other:t:acme/c1",
        "cpa:t:acme/c1:unknown",
        "cpa:t:acme/c1::w:",
    ):
        assert legacy_key_name("cpa", key) is None, key


async def _monitored(url: str, body: Callable[[], Awaitable[None]]) -> list[str]:
    """The commands the server ran during `body` (MONITOR: a script's own ones included, as
    `lua ...`), each as its client type and its quoted arguments."""
    watcher = aioredis.from_url(url)
    marker = f"end-of-{uuid.uuid4().hex}"
    seen: list[str] = []
    try:
        async with watcher.monitor() as monitor:
            await body()
            await watcher.echo(marker)
            while marker not in (line := await monitor.next_command())["command"]:
                seen.append(f"{line['client_type']} {line['command']}")
    finally:
        await watcher.aclose()
    return seen


async def test_global_indexes_are_written_once_per_thread_and_run(
    valkey_url: str, redis_prefix: str
) -> None:
    """`P:threads` (one key for all, a hot spot on one primary) gets a thread once per saver,
    `P:r:R` once per run and thread; no script names either."""
    saver = _saver(valkey_url, redis_prefix)
    app = _graph().compile(checkpointer=saver)
    runs = [str(uuid.uuid4()) for _ in range(3)]

    async def conversation() -> None:
        for run in runs:
            config: RunnableConfig = {**_cfg("m"), "metadata": {"run_id": run}}
            await app.ainvoke({"lam": [_msg("user", run)]}, config, durability="sync")

    seen = await _monitored(valkey_url, conversation)
    threads = f"{redis_prefix}:threads"
    assert [c for c in seen if threads in c] == [f"tcp SADD {threads} m"]
    for run in runs:
        assert [c for c in seen if f"{redis_prefix}:r:{run}" in c] == [
            f"tcp SADD {redis_prefix}:r:{run} m"
        ]
    checkpoints = len(await _ids(app, "m"))
    assert checkpoints == 3 * 5
    await saver.aclose()


async def test_global_indexes_stay_a_superset_of_the_threads(
    redis_url: str, redis_prefix: str
) -> None:
    """An index entry is written before the checkpoint (a refused one leaves an extra entry,
    which readers skip and drop), and written again when the thread was deleted elsewhere
    since this saver indexed it."""
    saver, other = _saver(redis_url, redis_prefix), _saver(redis_url, redis_prefix)
    app = _graph().compile(checkpointer=saver)
    client = aioredis.from_url(redis_url)
    threads = f"{redis_prefix}:threads"

    # A checkpoint the fence refuses: its thread is indexed, nothing else of it stored.
    await client.set(saver.fence_key("refused"), "2")
    with pytest.raises(FencedError):
        await app.ainvoke(
            {"lam": [_msg("user", "x")]},
            {**_cfg("refused"), "configurable": {"thread_id": "refused", FENCE: "1"}},
        )
    assert await client.sismember(threads, "refused")
    assert [t async for t in other.alist(None)] == []  # skipped, and dropped
    assert not await client.sismember(threads, "refused")

    # Another process deletes a thread this saver indexed; this saver writes it again.
    run = str(uuid.uuid4())
    config: RunnableConfig = {**_cfg("again"), "metadata": {"run_id": run}}
    await app.ainvoke({"lam": [_msg("user", "one")]}, config)
    await other.adelete_thread("again")
    assert not await client.sismember(threads, "again")
    assert not await client.exists(f"{redis_prefix}:r:{run}")
    await app.ainvoke({"lam": [_msg("user", "two")]}, config)
    assert {t.config["configurable"]["thread_id"] async for t in other.alist(None)} == {"again"}
    assert await client.smembers(f"{redis_prefix}:r:{run}") == {b"again"}

    # Dropping the entry of a thread whose keys exist (a checkpoint stored between a
    # remover's check and its removal) puts it back.
    assert await other._unindex_threads(["again"]) == 0
    assert await client.sismember(threads, "again")
    await other.adelete_for_runs([run])
    assert await other.aget_tuple(_cfg("again")) is None
    await client.aclose()
    await saver.aclose()
    await other.aclose()


async def test_the_empty_thread_id_keeps_its_keys_in_one_slot(
    redis_url: str, redis_prefix: str
) -> None:
    # `{}` is no hash tag to Redis: the empty id's tag is `{%}`, so on a Cluster its
    # checkpoint script still touches one slot (the cluster node refuses it otherwise).
    assert thread_tag("") == "{%}" and legacy_key_name("cpa", "cpa:t:::idx") == "cpa:t:{%}::idx"
    saver = _saver(redis_url, redis_prefix)
    await _graph().compile(checkpointer=saver).ainvoke({"lam": [_msg("user", "x")]}, _cfg(""))
    tup = await saver.aget_tuple(_cfg(""))
    assert tup is not None and tup.config["configurable"]["thread_id"] == ""
    assert len([t async for t in saver.alist(_cfg(""))]) > 1
    keys = [k for k in await saver.athread_keys("") if k.startswith(f"{redis_prefix}:t:")]
    assert len({key_slot(k.encode()) for k in keys}) == 1
    await saver.aclose()
