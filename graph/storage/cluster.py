"""`REDIS_URL` naming a Redis Cluster: redis-py's cluster client, with what it lacks added.

    redis+cluster://[[user]:password@]host:port[,host:port...][/0]

The hosts are startup nodes (any of the cluster's nodes; one is enough, more let the client
start while one is down); the client asks them for the slot map (`CLUSTER SLOTS`) and then
talks to each primary itself, following MOVED/ASK and asking again after a node fails, so
it carries on once the cluster has promoted a replica. A Cluster has database 0 only, so
the path is empty or `/0`. redis-py parses no URL listing several nodes, hence
`parse_cluster_url` (modelled on `graph.storage.sentinel`).

What `redis.asyncio.cluster.RedisCluster` (redis-py 8.1) does differently from the
`redis.asyncio.Redis` the storage was written for, and the answer here:

- **The pool does not wait.** Each node has its own pool, bounded by `max_connections`,
  and a command that finds it full fails at once with `MaxConnectionsError` (not retried),
  where our `BlockingConnectionPool` waits up to the read timeout: the HTTP server's bursts
  (200 SSE connects, their reads all on a few nodes) failed so. Here commands wait for one
  of `max_connections` places in the client (`StorageCluster`), so no node's pool
  sees more commands at once than it holds; each node's pool is four times that, for what
  takes a connection outside a command (pipelines, pub/sub, a blocking read).
- **Pub/sub.** `RedisCluster.pubsub()` gives a `ClusterPubSub` on the node of the first
  channel's slot; in a Cluster a plain PUBLISH on any node reaches subscribers on every
  node. After a failover a new subscription may go back to the dead node until another
  command has the client read the slot map again, and a subscription before any command
  fails (no slot map yet: `RedisSaver.from_url` pings first); the server's subscriber
  (`api.events`) subscribes again after a lost subscription, like any other.
- **Its first command alone.** A burst of commands at a client that has not read the slot
  map yet loses some of them in redis-py 8.1 (`AttributeError: 'NoneType' object has no
  attribute 'writelines'`, seen with 20 at once, whatever the pool's bound); one command
  first avoids it, which `RedisSaver.from_url` does (its ping). A refresh after a failover
  tears connections down under commands instead (below).
- **Transactions.** `pipeline(transaction=True)`, WATCH and MULTI work when every key is
  in one slot (else `RedisClusterException`, before anything is sent): the callers' keys
  must share a hash tag (the checkpointer's and the server's key changes, issue 28).
  A pipeline without transaction may span slots (one pipeline per node, in parallel).
- **Scripts.** `register_script` works; EVALSHA goes to the node of its keys' slot, and all
  its declared keys must be in one slot (CROSSSLOT otherwise). A promoted replica may not
  have a script the old primary had: `Script.__call__` loads it again on NOSCRIPT, and
  a raw EVALSHA in a pipeline must do the same.
- **SCAN.** `scan_iter` scans every primary in turn (redis-py's cluster `scan_iter`); a
  key-scoped SSCAN/HSCAN/ZSCAN goes to its key's node.
- **Node commands.** `client_setname` and the like go to one node (or to all, as
  redis-py's command flags say); a client name is set per connection with `client_name=`.
- **Database.** Only 0; SELECT does not exist.
- **Retries.** The client retries a command on ConnectionError, TimeoutError and
  CLUSTERDOWN (`retry`'s count, re-reading the slot map each time); what still fails
  during a failover (the seconds before the replica is promoted) is a ConnectionError or
  ClusterDownError, which the callers wait out (`graph.storage.outage`; a checkpoint
  write waits for the promotion, CPA_REDIS_WRITE_WAIT_S, `graph.storage.base`).
- **Its reset tears down connections in use.** On CLUSTERDOWN (a failover under way) or
  a failed re-read of the slot map, the client closes every node's connections, those
  other tasks are sending on too (redis-py 8.1: `RedisCluster.aclose`,
  `NodesManager.aclose`). Such a task's command then fails with `AttributeError:
  'NoneType' object has no attribute 'writelines'` or uvloop's `RuntimeError: unable to
  perform operation on <TCPTransport closed=True ...>`, neither of which the client
  retries nor a caller takes for Redis being away: a server's run on a healthy node
  failed with it during a failover. `OwnConnection` raises a ConnectionError instead,
  which the client retries (on a fresh connection) like any lost one.
- **A transaction queues its commands in a thread.** `pipeline(transaction=True)`'s
  command methods run each command's queueing in a new thread with its own event loop
  (`asyncio.run`), which first re-reads the slot map if a failover left it stale: with the
  client's lock, bound to the caller's loop (`RuntimeError: ... is bound to a different
  event loop`), or else with connections made in that short-lived loop. `Transaction`
  queues in the caller's loop instead (the slot of the command's key, computed here), and
  leaves the slot map to `execute()`, which re-reads it in the caller's loop;
  `StorageCluster.pipeline` uses it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio.cluster import (
    ClusterNode,
    ClusterPipeline,
    PipelineCommand,
    RedisCluster,
    TransactionStrategy,
)
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

SCHEME = "redis+cluster"


@dataclass(frozen=True)
class ClusterURL:
    nodes: list[tuple[str, int]]
    username: str | None = None
    password: str | None = None


def is_cluster_url(url: str) -> bool:
    return url.lower().startswith(f"{SCHEME}://")


def parse_cluster_url(url: str) -> ClusterURL:
    """The parts of a `redis+cluster://` URL; ValueError says what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme.lower() != SCHEME:
        raise ValueError(f"not a {SCHEME}:// URL")
    if parts.query or parts.fragment:
        raise ValueError("a cluster URL takes no query or fragment")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    nodes = []
    for host_port in hosts.split(","):
        host, colon, port = host_port.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"a cluster node must be host:port, not {host_port.strip()!r}")
        nodes.append((host.strip("[]"), int(port)))
    path = [unquote(p) for p in parts.path.split("/") if p]
    if path and path != ["0"]:
        raise ValueError("a Redis Cluster has database 0 only: the path must be empty or /0")
    username = password = None
    if userinfo:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    return ClusterURL(nodes, username, password)


class OwnConnection(Connection):
    """A cluster node's connection: closed under a command (the client's reset, above),
    it raises a ConnectionError, not an AttributeError or a RuntimeError."""

    async def _send_packed_command(self, command: Any) -> None:
        writer = self._writer
        if writer is None:
            raise RedisConnectionError("the connection was closed under the command")
        try:
            writer.writelines(command)
            await writer.drain()
        except RuntimeError as exc:  # uvloop's: the transport was closed under the write
            raise RedisConnectionError(
                f"the connection was closed under the command: {exc}"
            ) from exc


class Transaction(TransactionStrategy):
    """A MULTI/EXEC pipeline's strategy that queues a command in the caller's event loop
    (redis-py's runs a thread and a loop of its own per command, above). WATCH and what
    follows it, and a command without a key, go the library's way."""

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        key = _first_key(args)
        immediate = self._watching or args[0] in self.IMMEDIATE_EXECUTE_COMMANDS
        if key is None or (immediate and not self._explicit_transaction):
            return super().execute_command(*args, **kwargs)
        self._pipeline_slots.add(self._pipe.cluster_client.keyslot(key))
        self._command_queue.append(PipelineCommand(len(self._command_queue), *args, **kwargs))
        return self._pipe


def _first_key(args: tuple[Any, ...]) -> Any:
    """The key that names a command's slot: a script's first declared key, else the first
    argument; None for a script without keys or a command without arguments."""
    name = str(args[0]).upper()
    if name in ("EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO"):
        return args[3] if len(args) > 3 and int(args[2]) > 0 else None
    return args[1] if len(args) > 1 else None


#: Each node's pool, over the commands in flight: pipelines, pub/sub, blocking reads.
NODE_POOL_FACTOR = 4


class StorageCluster(RedisCluster):
    """redis-py's cluster client with `OwnConnection` and `Transaction` (above), whose
    commands wait for a free place (at most `in_flight` at once) instead of failing on a
    full node pool."""

    __slots__ = ("_places",)

    def __init__(self, *args: Any, in_flight: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._places = asyncio.Semaphore(in_flight)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self._places:
            return await super().execute_command(*args, **kwargs)

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        pipe: ClusterPipeline = super().pipeline(transaction, shard_hint)
        if transaction:
            pipe._execution_strategy = Transaction(pipe)
        return pipe


def cluster_client(url: str, **connection: Any) -> RedisCluster:
    """A client of the cluster the URL's nodes belong to; `connection` as for a pool
    (timeouts, retry, max_connections: the commands in flight at once), but `timeout` (the
    blocking pool's wait: commands here wait for a place as long as it takes)."""
    parsed = parse_cluster_url(url)
    connection.pop("timeout", None)
    in_flight = connection.pop("max_connections", 100)
    client = StorageCluster(
        in_flight=in_flight,
        max_connections=NODE_POOL_FACTOR * in_flight,
        startup_nodes=[ClusterNode(host, port) for host, port in parsed.nodes],
        username=parsed.username,
        password=parsed.password,
        **connection,
    )
    # The class is fixed in the constructor: set it where nodes are made (the nodes
    # manager shares these keyword arguments) and on the nodes made already.
    client.connection_kwargs["connection_class"] = OwnConnection
    client.nodes_manager.connection_kwargs["connection_class"] = OwnConnection
    for node in client.nodes_manager.startup_nodes.values():
        node.connection_class = OwnConnection
    return client
