"""The embedded Valkey: private, persistent, shared by processes, stopped by the last one."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import redis
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import empty_checkpoint

from graph.config import Settings
from graph.storage.connect import open_checkpointer
from graph.storage.embedded import (
    embedded_paths,
    embedded_redis,
    ensure_embedded_redis,
    release_embedded_redis,
)

ROOT = Path(__file__).resolve().parents[1]

# A second process: joins the embedded server, reports, waits for a line on stdin, leaves.
CHILD = """
import sys
from graph.config import Settings
from graph.storage.embedded import ensure_embedded_redis, release_embedded_redis
import redis
settings = Settings(data_dir=sys.argv[1])
url = ensure_embedded_redis(settings)
client = redis.from_url(url)
shared = client.get("shared")
client.set("from-child", "hi")  # before reporting: the parent may kill us right after
print(url, client.info("server")["process_id"], shared, flush=True)
client.close()
sys.stdin.readline()
release_embedded_redis(settings)
"""


def _child(data_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _server_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


def test_starts_private_and_persistent(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"))
    paths = embedded_paths(settings)
    with embedded_redis(settings) as url:
        assert url == f"unix://{paths.socket}"
        client = redis.from_url(url)
        assert client.config_get("appendonly")["appendonly"] == "yes"
        assert client.config_get("port")["port"] == "0"  # no TCP listener at all
        client.set("k", "v")
        pid = int(client.info("server")["process_id"])
        client.close()
        for private in (paths.base, paths.run):
            assert stat.S_IMODE(private.stat().st_mode) == 0o700
        assert stat.S_IMODE(paths.socket.stat().st_mode) & 0o077 == 0
        assert (paths.base / "appendonlydir").is_dir()
        assert paths.conf.is_file() and paths.pidfile.is_file()
    assert not _server_alive(pid)
    assert not paths.socket.exists()
    with embedded_redis(settings) as url:  # started again on the same data: still there
        assert redis.from_url(url).get("k") == b"v"


def test_second_process_reuses_the_running_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = Settings(data_dir=str(data))
    url = ensure_embedded_redis(settings)
    client = redis.from_url(url)
    client.set("shared", "yes")
    pid = int(client.info("server")["process_id"])
    child = _child(data)
    try:
        assert child.stdout is not None
        child_url, child_pid, seen = child.stdout.readline().split()
        assert (child_url, int(child_pid), seen) == (url, pid, "b'yes'")
        assert len(list(embedded_paths(settings).users.iterdir())) == 2
        child.communicate("\n", timeout=20)  # the child leaves; we still use the server
        assert child.returncode == 0
        assert client.get("from-child") == b"hi"
    finally:
        child.kill()
        client.close()
        release_embedded_redis(settings)
    assert not _server_alive(pid)  # the last one out stopped it


def test_starter_killed_while_another_process_uses_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = Settings(data_dir=str(data))
    starter = _child(data)  # this one starts the server
    try:
        assert starter.stdout is not None
        url, pid, _ = starter.stdout.readline().split()
        with embedded_redis(settings) as ours:
            assert ours == url
            starter.send_signal(signal.SIGKILL)  # dies without leaving
            starter.wait(10)
            assert redis.from_url(ours).get("from-child") == b"hi"  # server unaffected
        # Its stale entry was pruned, so our leaving stopped the server.
        assert not _server_alive(int(pid))
        assert list(embedded_paths(settings).users.iterdir()) == []
    finally:
        starter.kill()


def test_deep_data_dir_gets_a_short_private_socket_dir(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    settings = Settings(data_dir=str(deep))
    paths = embedded_paths(settings)
    assert len(str(paths.socket)) <= 100 and not paths.socket.is_relative_to(deep)
    with embedded_redis(settings) as url:
        assert redis.from_url(url).ping()
        assert stat.S_IMODE(paths.run.stat().st_mode) == 0o700
    assert (paths.base / "appendonlydir").is_dir()


async def test_open_checkpointer_without_redis_url_uses_it(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"), redis_url=None)
    config: RunnableConfig = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    async with open_checkpointer(settings) as saver:
        assert saver.url.startswith("unix://")
        checkpoint = empty_checkpoint()
        checkpoint["channel_values"] = {"x": 1}
        checkpoint["channel_versions"] = {"x": "1"}
        await saver.aput(config, checkpoint, {}, {"x": "1"})
    async with open_checkpointer(settings) as saver:  # a new server on the same data
        tup = await saver.aget_tuple(config)
        assert tup is not None and tup.checkpoint["channel_values"] == {"x": 1}
