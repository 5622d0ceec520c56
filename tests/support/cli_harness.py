"""Driving `cpa-planner` as a real process: plain pipes, or a pseudo-terminal (stdlib pty).

Every process gets a clean environment built here (nothing of the caller's OPENAI_API_KEY,
OLLAMA_HOST, REDIS_URL or CPA_* leaks in), so "no LLM configured" is what the test says.
Timeouts are upper bounds that keep a broken test from hanging, never asserts on speed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "cli"]
WAIT_S = 60.0  # upper bound for anything to show up; a hang fails instead of blocking CI
_ANSI = re.compile(
    r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[=>()][0-9A-Za-z]?"
)


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """A minimal environment: no LLM, the embedded store in `data_dir` unless told otherwise."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(data_dir / "home"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "xterm-256color",
        "COLUMNS": "120",
        "LINES": "40",
        "NO_COLOR": "1",
        "CPA_DATA_DIR": str(data_dir),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update(extra)
    return env


def run_cli(
    args: list[str],
    env: Mapping[str, str],
    *,
    stdin: str | None = None,
    timeout: float = WAIT_S,
) -> subprocess.CompletedProcess[str]:
    """The CLI with pipes (no terminal): stdout and stderr captured apart."""
    return subprocess.run(
        [*CLI, *args],
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text).replace("\r", "")


def ctrl_c_reaches_it() -> None:
    """`preexec_fn` for a process a test stops with SIGINT: the default disposition, as a
    terminal's shell gives it. A test run started in the background (`make test &`, a CI
    step) inherits SIGINT ignored, Python then installs no KeyboardInterrupt, and Ctrl-C
    would never reach the program under test."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class PtyProcess:
    """The CLI on a pseudo-terminal: its stdin (and stderr) is a terminal, as for a person.

    With `stdout_pipe`, standard output is a pipe instead (for `--json`: the JSON apart from
    the prompts); otherwise it is the terminal too, and rich draws its live view.
    """

    def __init__(
        self, args: list[str], env: Mapping[str, str], *, stdout_pipe: bool = False
    ) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.master = master
        self.proc = subprocess.Popen(
            [*CLI, *args],
            stdin=slave,
            stdout=subprocess.PIPE if stdout_pipe else slave,
            stderr=slave,
            env=dict(env),
            cwd=ROOT,
            start_new_session=True,  # our SIGINT goes to it alone, never to pytest
            preexec_fn=ctrl_c_reaches_it,
        )
        os.close(slave)
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._pos = 0
        self._stdout = b""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._out_reader: threading.Thread | None = None
        if stdout_pipe:
            self._out_reader = threading.Thread(target=self._read_stdout, daemon=True)
            self._out_reader.start()

    def _read(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.master], [], [], 0.1)
                if not ready:
                    if self.proc.poll() is not None:
                        # drain what is left, then stop
                        ready, _, _ = select.select([self.master], [], [], 0.2)
                        if not ready:
                            return
                    continue
                chunk = os.read(self.master, 65536)
            except OSError:
                return  # EIO: the terminal's other side closed
            if not chunk:
                return
            with self._lock:
                self._buffer += chunk

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        self._stdout = self.proc.stdout.read()

    @property
    def screen(self) -> str:
        """Everything written to the terminal so far, without escape codes."""
        with self._lock:
            return strip_ansi(self._buffer.decode("utf-8", "replace"))

    def expect(self, pattern: str, timeout: float = WAIT_S) -> re.Match[str]:
        """Wait until `pattern` (a regex) appears after the previous match."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            text = self.screen
            found = regex.search(text, self._pos)
            if found:
                self._pos = found.end()
                return found
            if time.monotonic() > deadline or (
                self.proc.poll() is not None and not self._reader.is_alive()
            ):
                raise AssertionError(
                    f"{pattern!r} did not appear; the terminal shows:\n{text[-3000:]}"
                )
            time.sleep(0.05)

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def sendline(self, text: str = "") -> None:
        self.send(text + "\r")

    def interrupt(self) -> None:
        """Ctrl-C, as the terminal would deliver it."""
        os.kill(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float = WAIT_S) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        if self._out_reader is not None:
            self._out_reader.join(timeout=5)
        return code

    @property
    def stdout(self) -> str:
        return self._stdout.decode()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(OSError):
            os.close(self.master)
