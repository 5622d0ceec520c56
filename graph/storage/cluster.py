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
  where our `BlockingConnectionPool` waits up to the read timeout. The checkpointer keeps a
  handful of connections per run, far below the bound; the HTTP server's bursts (200 SSE
  connects) are what the waiting pool is for, and the server does not run on a Cluster yet
  (its keys are not laid out per slot, docs/replicas.md).
- **Pub/sub.** `RedisCluster.pubsub()` gives a `ClusterPubSub` on the node of the first
  channel's slot; in a Cluster a plain PUBLISH on any node reaches subscribers on every
  node. After a failover a new subscription may go back to the dead node until another
  command has the client read the slot map again, and a subscription before any command
  fails (no slot map yet: `RedisSaver.from_url` pings first); the server's concern, as above.
- **Its first command alone.** A burst of commands at a client that has not read the slot
  map yet loses some of them in redis-py 8.1 (`AttributeError: 'NoneType' object has no
  attribute 'writelines'`, seen with 20 at once, whatever the pool's bound); one command
  first avoids it, which `RedisSaver.from_url` does (its ping). Whether a refresh after a
  failover can do the same mid-run is not known yet.
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

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio.cluster import ClusterNode, RedisCluster

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


def cluster_client(url: str, **connection: Any) -> RedisCluster:
    """A client of the cluster the URL's nodes belong to; `connection` as for a pool
    (timeouts, retry, max_connections), but `timeout` (the blocking pool's wait: none here)."""
    parsed = parse_cluster_url(url)
    connection.pop("timeout", None)
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in parsed.nodes],
        username=parsed.username,
        password=parsed.password,
        **connection,
    )
