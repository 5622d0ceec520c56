"""Redis Cluster for the tests: real `redis-server` processes in cluster mode (a plain module).

    ClusterNode       one redis-server with `--cluster-enabled yes` on loopback
    one_node_cluster  a cluster of one node owning every slot: it refuses, as a real Cluster
                      does, a command or a script whose declared keys hash to different slots
                      (CROSSSLOT), and needs no client of its own (it never answers MOVED)
    RedisCluster      three primaries, one replica each (`redis-cli --cluster create
                      --cluster-replicas 1`), started and waited for (every node's state
                      `ok`, every replica in sync); `url` in the storage's
                      `redis+cluster://` form; `kill_primary_of(key)` kills the primary of a
                      key's slot and waits for its replica to be promoted
    sync_client       a synchronous client of any test URL: `redis.Redis`, or
                      `redis.RedisCluster` for a `redis+cluster://` one
    primaries_of      a client of each server holding a URL's keys: the server itself, or
                      a cluster's live primaries (what a SCAN over every key must visit)

What a one-node cluster does not catch: a script touching a key it did not declare (a real
Cluster refuses it only when that key lives on another node). The three-primary cluster
catches that.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import redis

from graph.storage.cluster import is_cluster_url, parse_cluster_url
from tests.support.processes import free_port, kill_process, stop_process


def cluster_node(host: str, port: int) -> Any:
    """A startup node of the synchronous cluster client (its class is untyped in redis-py)."""
    node: Callable[..., Any] = redis.cluster.ClusterNode
    return node(host, port)


def sync_client(url: str, **options: Any) -> redis.Redis:
    """A synchronous client of `url`; a cluster URL's gets the cluster client (the same
    commands, typed as a plain client as `graph.storage.client.make_client` does)."""
    options.setdefault("socket_timeout", 5)
    if not is_cluster_url(url):
        return redis.from_url(url, **options)
    parsed = parse_cluster_url(url)
    node = cast(Callable[[str, int], Any], redis.cluster.ClusterNode)  # untyped in redis-py
    cluster = redis.RedisCluster(
        startup_nodes=[node(h, p) for h, p in parsed.nodes],
        username=parsed.username,
        password=parsed.password,
        **options,
    )
    return cast(redis.Redis, cluster)


def primaries_of(url: str) -> list[redis.Redis]:
    """A client of each server holding keys: the server itself, or a cluster's primaries
    (a node a test killed is left out)."""
    if not is_cluster_url(url):
        return [redis.from_url(url, socket_timeout=5)]
    nodes = []
    for host, port in parse_cluster_url(url).nodes:
        client = redis.Redis(host=host, port=port, socket_timeout=5)
        try:
            if client.info("replication")["role"] == "master":
                nodes.append(client)
                continue
        except redis.exceptions.ConnectionError:
            pass
        client.close()
    return nodes


class ClusterNode:
    """A redis-server in cluster mode on loopback, its data and node file in `data_dir`."""

    def __init__(self, binary: str | Path, data_dir: Path, port: int | None = None) -> None:
        self.binary = str(binary)
        self.data_dir = data_dir
        self.port = port or free_port()
        # The cluster bus's own port: by default port + 10000, which may be taken or > 65535.
        self.bus_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port)]
        args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        args += ["--cluster-port", str(self.bus_port), "--cluster-node-timeout", "2000"]
        args += ["--dir", str(self.data_dir), "--appendonly", "yes", "--save", ""]
        args += ["--logfile", str(self.data_dir / "server.log")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        _wait(lambda: self.client().ping(), timeout, f"{self.binary} on port {self.port}")

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=5)

    def stop(self) -> None:
        stop_process(self.proc, 10)
        self.proc = None

    def kill(self) -> None:
        kill_process(self.proc)
        self.proc = None


def one_node_cluster(binary: str | Path, data_dir: Path) -> ClusterNode:
    """A started cluster of one node that owns all 16384 slots, its state `ok`."""
    node = ClusterNode(binary, data_dir)
    node.start()
    try:
        client = node.client()
        client.cluster("ADDSLOTSRANGE", 0, 16383)
        _wait(
            lambda: client.cluster("INFO")["cluster_state"] == "ok",
            10.0,
            "the one-node cluster's state ok",
        )
        client.close()
    except BaseException:
        node.kill()
        raise
    return node


class RedisCluster:
    """Three primaries and one replica of each, redis-server processes of the tests.

    The node timeout is 2000 ms (`ClusterNode`): a primary killed is marked failed after
    about that long, and its replica promoted a moment later.
    """

    PRIMARIES = 3

    def __init__(self, binary: str | Path, data_dir: Path) -> None:
        self.binary = str(binary)
        cli = Path(self.binary).with_name("redis-cli")
        self.cli = str(cli) if cli.exists() else (shutil.which("redis-cli") or "redis-cli")
        self.data_dir = data_dir
        self.nodes = [ClusterNode(binary, data_dir / f"node{i}") for i in range(2 * self.PRIMARIES)]

    @property
    def url(self) -> str:
        hosts = ",".join(node.address for node in self.live_nodes())
        return f"redis+cluster://{hosts}"

    def live_nodes(self) -> list[ClusterNode]:
        return [node for node in self.nodes if node.proc is not None]

    def start(self, timeout: float = 60.0) -> None:
        try:
            for node in self.nodes:
                node.start()
            # The first three given are made primaries, each of the others a replica of one.
            created = subprocess.run(
                [
                    *(self.cli, "--cluster", "create"),
                    *(n.address for n in self.nodes),
                    *("--cluster-replicas", "1", "--cluster-yes"),
                ],
                capture_output=True,
                timeout=timeout,
            )
            if created.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {created.stdout!r}")
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Every live node's state `ok` and agreeing on the map, every replica in sync."""
        _wait(self._ready, timeout, "the cluster's state ok and its replicas in sync")

    def _ready(self) -> bool:
        maps = set()
        for node in self.live_nodes():
            client = node.client()
            try:
                if client.cluster("INFO")["cluster_state"] != "ok":
                    return False
                replication = client.info("replication")
                if replication["role"] == "slave" and (
                    replication["master_link_status"] != "up"
                    or replication["master_sync_in_progress"]
                ):
                    return False
                maps.add(_slot_owners(client))
            finally:
                client.close()
        return len(maps) == 1 and len(self.primaries()) == self.PRIMARIES

    def primaries(self) -> list[ClusterNode]:
        return [node for node in self.live_nodes() if self.role(node) == "master"]

    def replicas(self) -> list[ClusterNode]:
        return [node for node in self.live_nodes() if self.role(node) == "slave"]

    def role(self, node: ClusterNode) -> str:
        client = node.client()
        try:
            return str(client.info("replication")["role"])
        finally:
            client.close()

    def primary_of(self, key: str) -> ClusterNode:
        """The live node that serves the slot of `key` now."""
        client = self.live_nodes()[0].client()
        try:
            slot = int(client.cluster("KEYSLOT", key))
            for start, end, port in _slot_owners(client):
                if start <= slot <= end:
                    return next(n for n in self.nodes if n.port == port)
        finally:
            client.close()
        raise LookupError(f"no node serves the slot of {key!r}")

    def replica_of(self, primary: ClusterNode) -> ClusterNode:
        client = primary.client()
        try:
            ports = {int(r["port"]) for r in _replica_entries(client.info("replication"))}
        finally:
            client.close()
        return next(node for node in self.live_nodes() if node.port in ports)

    def kill_primary_of(self, key: str, timeout: float = 60.0) -> tuple[ClusterNode, ClusterNode]:
        """SIGKILL the primary of `key`'s slot, then wait until its replica serves the slot
        and the cluster's state is `ok` again: (the killed node, the promoted one)."""
        primary = self.primary_of(key)
        replica = self.replica_of(primary)
        primary.kill()
        _wait(
            lambda: self.primary_of(key) is replica and self._state_ok(),
            timeout,
            f"the replica on port {replica.port} promoted",
        )
        return primary, replica

    def _state_ok(self) -> bool:
        for node in self.live_nodes():
            client = node.client()
            try:
                if client.cluster("INFO")["cluster_state"] != "ok":
                    return False
            finally:
                client.close()
        return True

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def _slot_owners(client: redis.Redis) -> frozenset[tuple[int, int, int]]:
    """(first slot, last slot, primary's port) of each range, as this node sees the map."""
    ranges: Any = client.cluster("SLOTS")
    return frozenset((int(r[0]), int(r[1]), int(r[2][1])) for r in ranges)


def _replica_entries(replication: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for k, v in replication.items() if k.startswith("slave") and isinstance(v, dict)]


def _wait(ready: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ready():
                return
        except redis.exceptions.RedisError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready in {timeout} s")
