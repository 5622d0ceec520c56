"""A server on Redis Sentinel carries a conversation on through a failover (issue 11).

The set-up, all on loopback ports: a primary, one replica of it, and three sentinels
(`redis-sentinel`, or `redis-server --sentinel`, the same program) watching the primary as
`cpa`, quorum 2. The server's REDIS_URL names the sentinels
(`redis+sentinel://host:port,.../cpa`). The primary is killed (SIGKILL) in the middle of
the crash drill's conversation; the sentinels promote the replica, the server finds the
new primary, and the conversation ends done with every ToDo run once. The record of the
drill's executor is kept on another Redis (the `redis7` of the other tests), out of the
failover's way.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from graph.storage.sentinel import parse_sentinel_url
from tests.support.crash_driver import B2, C1, RECORD_TODOS, REQUEST
from tests.support.processes import free_port, kill_process, stop_process
from tests.support.replica_services import HOLD_ENV
from tests.support.server_harness import open_request
from tests.test_replicas import (
    WAIT_S,
    Fleet,
    answer_desktop,
    api,
    assert_assigned_once,
    assert_finished,
    wait_saved,
)

pytestmark = pytest.mark.slow

SERVICE = "cpa"


def _until(check: object, what: str, timeout: float = WAIT_S) -> None:
    """Poll `check()` until true (a safety-net deadline, not a measurement)."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.05)


class SentinelSetup:
    """A primary, its replica and three sentinels, each a process of this test."""

    def __init__(self, server_bin: str, directory: Path) -> None:
        self.server_bin = server_bin
        self.directory = directory
        self.primary_port = free_port()
        self.replica_port = free_port()
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}"

    def _spawn(self, name: str, args: list[str]) -> None:
        log = (self.directory / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(args, stdout=log, stderr=log)
        log.close()

    def _server(self, name: str, port: int, *extra: str) -> None:
        data = self.directory / name
        data.mkdir()
        args = [self.server_bin, "--bind", "127.0.0.1", "--port", str(port)]
        args += ["--dir", str(data), "--appendonly", "yes", "--save", "", *extra]
        self._spawn(name, args)

    def start(self) -> None:
        self._server("primary", self.primary_port)
        self._server(
            "replica", self.replica_port, "--replicaof", "127.0.0.1", str(self.primary_port)
        )
        sentinel = shutil.which("redis-sentinel")
        for n, port in enumerate(self.sentinel_ports):
            conf = self.directory / f"sentinel{n}.conf"  # a sentinel rewrites its own file
            conf.write_text(
                f"bind 127.0.0.1\nport {port}\ndir {self.directory}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 10000\n"
                f"sentinel parallel-syncs {SERVICE} 1\n"
            )
            args = [sentinel, str(conf)] if sentinel else [self.server_bin, str(conf), "--sentinel"]
            self._spawn(f"sentinel{n}", args)
        # Ready when the replica is in sync and every sentinel knows the replica and the
        # other two sentinels (a failover needs a quorum and an elected leader).
        _until(self._ready, "the sentinels and the replica are ready")

    def _ready(self) -> bool:
        try:
            with redis.Redis(port=self.replica_port) as replica:
                if replica.info("replication").get("master_link_status") != "up":
                    return False
            for port in self.sentinel_ports:
                with redis.Redis(port=port) as sentinel:
                    master = sentinel.sentinel_master(SERVICE)
                    if int(master["num-slaves"]) < 1 or int(master["num-other-sentinels"]) < 2:
                        return False
        except redis.exceptions.RedisError:
            return False
        return True

    def primary(self) -> int:
        """The port of the primary the sentinels name now."""
        with redis.Redis(port=self.sentinel_ports[0]) as sentinel:
            _, port = sentinel.sentinel_get_master_addr_by_name(SERVICE)
        return int(port)

    def replica_caught_up(self) -> bool:
        """Everything the primary acknowledged has reached the replica."""
        with (
            redis.Redis(port=self.primary_port) as primary,
            redis.Redis(port=self.replica_port) as replica,
        ):
            wanted = primary.info("replication")["master_repl_offset"]
            return bool(replica.info("replication")["master_repl_offset"] >= wanted)

    def kill_primary(self) -> None:
        kill_process(self.procs.pop("primary"))

    def close(self) -> None:
        for proc in self.procs.values():
            stop_process(proc, 5)


@pytest.fixture
def sentinels(redis_server_bin: str, tmp_path: Path) -> Iterator[SentinelSetup]:
    setup = SentinelSetup(redis_server_bin, tmp_path / "sentinel")
    setup.directory.mkdir()
    try:
        setup.start()
        yield setup
    finally:
        setup.close()


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_database() -> None:
    parsed = parse_sentinel_url("redis+sentinel://:s%40cret@10.0.0.1:26379,[::1]:26380/cpa/2")
    assert parsed.sentinels == [("10.0.0.1", 26379), ("::1", 26380)]
    assert (parsed.service_name, parsed.db, parsed.password) == ("cpa", 2, "s@cret")
    for bad, why in [
        ("redis+sentinel://h:1", "service_name"),
        ("redis+sentinel://h/cpa", "host:port"),
        ("redis+sentinel://h:1/cpa/x", "number"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_sentinel_url(bad)


async def test_a_conversation_carries_on_through_a_sentinel_failover(
    sentinels: SentinelSetup, redis7_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    fleet = Fleet(redis7_url, redis_prefix, tmp_path)  # the record stays on redis7
    fleet.env["REDIS_URL"] = sentinels.url
    try:
        server = fleet.start(**{HOLD_ENV: B2})
        async with api(server) as client:
            cid = await open_request(client, REQUEST)
            await fleet.wait_for({(cid, "start", B2), (cid, "end", C1)})
            await wait_saved(fleet, [cid])  # read through the sentinels, in this process
            _until(sentinels.replica_caught_up, "the replica has what the primary has")

            sentinels.kill_primary()  # mid-run: b2 is under way
            await asyncio.to_thread(
                _until, lambda: sentinels.primary() == sentinels.replica_port, "a failover"
            )

            fleet.release(B2)
            body = await answer_desktop(client, cid)
        assert_finished(body, cid)
        assert fleet.starts(cid) == Counter(RECORD_TODOS)  # nothing lost, nothing twice
        with redis.Redis(port=sentinels.replica_port) as promoted:
            assert promoted.info("replication")["role"] == "master"
            fleet.client, record = promoted, fleet.client  # the event log is there
            try:
                assert_assigned_once(fleet, cid)
            finally:
                fleet.client = record
    finally:
        fleet.close()
