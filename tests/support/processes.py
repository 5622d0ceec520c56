"""Processes the tests start and stop: free ports, servers, Redis (a plain module).

`conftest.py` holds fixtures only; helpers that test modules and harnesses import live here,
so nothing imports `conftest` (pytest loads it itself, and a second import is a second copy).

    free_port()       a free loopback TCP port
    stop_process()    SIGTERM, then SIGKILL after a grace period
    kill_process()    SIGKILL
    RedisProcess      a redis-server/valkey-server on loopback, restartable on its port
    langgraph_working_copy()  a directory to run `langgraph dev` in, away from the source tree
    read_lines_until()  a process's output lines up to a marker, with a deadline
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes] | None, grace_s: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `grace_s`; nothing if it is not running."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def kill_process(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL, and reap it; nothing if it is not running."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(5)


class RedisProcess:
    """A redis-server/valkey-server on loopback with its data (AOF on) in `data_dir`.

    `stop()` shuts it down cleanly, `kill()` with SIGKILL; `start()` again reuses the same
    port and data directory, which is how tests restart Redis.
    """

    def __init__(self, binary: str | Path, data_dir: Path, port: int | None = None) -> None:
        self.binary = str(binary)
        self.data_dir = data_dir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port)]
        args += ["--dir", str(self.data_dir), "--appendonly", "yes", "--save", ""]
        args += ["--logfile", str(self.data_dir / "server.log")]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    log = (self.data_dir / "server.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{self.binary} exited at start:\n{log}")
                try:
                    if client.ping():
                        return
                except redis.exceptions.RedisError:
                    time.sleep(0.02)
        finally:
            client.close()
        self.kill()
        raise RuntimeError(f"{self.binary} did not answer on port {self.port} in {timeout} s")

    def stop(self) -> None:
        stop_process(self.proc, 10)  # SIGTERM: the server flushes its append-only file
        self.proc = None

    def kill(self) -> None:
        kill_process(self.proc)
        self.proc = None


def langgraph_working_copy(directory: Path) -> Path:
    """`directory` with the project's langgraph.json, for `langgraph dev` to run in.

    The dev server keeps its threads and assistants in `.langgraph_api/` of its working
    directory: run from here, a test leaves nothing in the source tree (a newcomer's Studio
    would list it). The package is installed, so the graph and `server:app` import from
    anywhere; only the checkpointer is a file path, made absolute here.
    """
    root = Path(__file__).resolve().parents[2]
    config = json.loads((root / "langgraph.json").read_text())
    path, _, attr = config["checkpointer"]["path"].rpartition(":")
    config["checkpointer"]["path"] = f"{(root / path).resolve()}:{attr}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "langgraph.json").write_text(json.dumps(config, indent=2))
    return directory


def read_lines_until(
    stream: IO[str], done: Callable[[str], bool], timeout_s: float
) -> tuple[list[str], bool]:
    """A process's output lines up to the first `done(line)`, waiting at most `timeout_s`.

    Returns the lines read and whether `done` was met: a server that fails at start-up but
    stays alive fails the test with what it printed instead of hanging it.
    """
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    pending = ""
    fd = stream.fileno()
    os.set_blocking(fd, False)
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(fd, 65536).decode(errors="replace")
            if not chunk:  # the process closed its output (it ended)
                break
            pending += chunk
            while "\n" in pending:
                line, pending = pending.split("\n", 1)
                lines.append(line + "\n")
                if done(line):
                    return lines, True
    finally:
        os.set_blocking(fd, True)
    if pending:
        lines.append(pending)
    return lines, False
