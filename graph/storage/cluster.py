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

- **The pool does not wait.** Each node has its own pool (`ClusterNode`), bounded by
  `max_connections`, and a command that finds it full fails at once with
  `MaxConnectionsError` (not retried), where our `BlockingConnectionPool` waits up to the
  read timeout. `QueueingCluster` puts the waiting back: single commands and pipelines
  take one of `max_connections` permits (waiting up to `timeout`, then ConnectionError "No
  connection available.", as the blocking pool says), and each node's own bound is set
  higher (`NODE_POOL_FACTOR`), room for what holds a connection outside the permits (a
  subscription, a WATCH).
- **Pub/sub.** `RedisCluster.pubsub()` exists: a `ClusterPubSub` on the node of the first
  channel's slot, and in a Cluster a plain PUBLISH on any node reaches subscribers on every
  node, so `api/events.py` works unchanged. The gap is a failover: a lost subscription
  does not tell the client its slot map is stale, so a new subscription would go back to
  the dead node until some other command failed. `QueueingCluster.pubsub` gives a
  `ClusterPubSub` that marks the map stale when its connection fails and refreshes it
  before it connects.
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
  ClusterDownError, which the callers wait out (`graph.storage.outage`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio.cluster import ClusterNode, ClusterPipeline, ClusterPubSub, RedisCluster
from redis import exceptions

SCHEME = "redis+cluster"
#: Each node's own pool bound, as a multiple of the permits: room for subscriptions and
#: WATCHed transactions, which hold a connection outside them.
NODE_POOL_FACTOR = 4
# Set while a task holds a permit: what redis-py runs inside (a pipeline retrying one of its
# commands on its own) must not wait for a second one.
_holding: ContextVar[bool] = ContextVar("cluster_permit_held", default=False)


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


class QueueingCluster(RedisCluster):
    """A `RedisCluster` whose commands wait for a free connection instead of failing,
    and whose subscriptions find a promoted replica (see the module's docstring)."""

    def __init__(self, *args: Any, max_connections: int, timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, max_connections=max_connections * NODE_POOL_FACTOR, **kwargs)
        self.permits = asyncio.Semaphore(max_connections)
        self.wait_timeout = timeout

    @contextlib.asynccontextmanager
    async def permit(self) -> AsyncIterator[None]:
        """One of the permits for a round trip, waiting for it as the blocking pool does."""
        if _holding.get():
            yield
            return
        try:
            async with asyncio.timeout(self.wait_timeout):
                await self.permits.acquire()
        except TimeoutError:
            raise exceptions.ConnectionError("No connection available.") from None
        token = _holding.set(True)
        try:
            yield
        finally:
            _holding.reset(token)
            self.permits.release()

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.permit():
            return await super().execute_command(*args, **kwargs)

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        if shard_hint:
            return super().pipeline(transaction, shard_hint)  # refused, as redis-py does
        return _QueueingPipeline(self, transaction)

    def pubsub(
        self,
        node: ClusterNode | None = None,
        host: str | None = None,
        port: int | None = None,
        **kwargs: Any,
    ) -> ClusterPubSub:
        return _FailoverPubSub(self, node=node, host=host, port=port, **kwargs)


class _QueueingPipeline(ClusterPipeline):
    """A pipeline's round trip takes a permit as a command does."""

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        cluster = self.cluster_client
        assert isinstance(cluster, QueueingCluster)
        async with cluster.permit():
            return await super().execute(raise_on_error, allow_redirections)


class _FailoverPubSub(ClusterPubSub):
    """A subscription that, when its node is lost, has the slot map read again: the next
    subscription then goes to the node that serves the channel's slot now."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self.connection is None and self.node is None:
            await self.cluster.initialize()  # re-reads the map only if marked stale
        try:
            return await super().execute_command(*args, **kwargs)
        except (exceptions.ConnectionError, exceptions.TimeoutError):
            self._stale()
            raise

    async def parse_response(self, block: bool = True, timeout: float = 0) -> Any:
        try:
            return await super().parse_response(block, timeout)
        except (exceptions.ConnectionError, exceptions.TimeoutError):
            self._stale()
            raise

    def _stale(self) -> None:
        # redis-py's own flag for "read the slot map again before the next command".
        self.cluster._initialize = True


def cluster_client(url: str, **connection: Any) -> QueueingCluster:
    """A client of the cluster the URL's nodes belong to; `connection` as for a pool
    (timeouts, retry, max_connections, timeout)."""
    parsed = parse_cluster_url(url)
    return QueueingCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in parsed.nodes],
        username=parsed.username,
        password=parsed.password,
        **connection,
    )
