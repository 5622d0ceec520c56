"""Redis Cluster for the tests: real `redis-server` processes in cluster mode (a plain module).

    ClusterNode       one redis-server with `--cluster-enabled yes` on loopback
    one_node_cluster  a cluster of one node owning every slot: it refuses, as a real Cluster
                      does, a command or a script whose declared keys hash to different slots
                      (CROSSSLOT), and needs no client of its own (it never answers MOVED)

What a one-node cluster does not catch: a script touching a key it did not declare (a real
Cluster refuses it only when that key lives on another node). The three-primary cluster
catches that.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from tests.support.processes import free_port, kill_process, stop_process


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
