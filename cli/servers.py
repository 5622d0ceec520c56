"""`cpa-planner serve` (the HTTP API) and `cpa-planner studio` (LangGraph's dev server)."""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from cli.exits import CONFIG, INTERRUPTED, OK, CLIError

STUDIO_ENV = {
    # Offline and private: no analytics, no version check, no traces sent to LangSmith.
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
}
# Quiet unless asked (--verbose, or LOG_LEVEL set): langgraph-api logs some 30 INFO lines at
# start, and its file watcher "N changes detected" every 10 s (its own state files).
QUIET_ENV = {"LOG_LEVEL": "WARNING"}
STUDIO_URL = "https://smith.langchain.com/studio/?baseUrl={base}"
READY_TIMEOUT_S = 120.0


def serve(args: argparse.Namespace) -> int:
    """`server.serve()`; a server setting it cannot use is one line, exit 3."""
    import server

    try:
        server.serve(host=args.host, port=args.port, workers=args.workers)
    except server.ServerConfigError as exc:
        raise CLIError(str(exc), CONFIG) from exc
    return OK


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def project_root() -> Path:
    """The directory with langgraph.json: the current one, else the cpa-planner source tree.

    The dev server keeps its own state (threads, assistants) in `.langgraph_api/` there.
    """
    for candidate in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (candidate / "langgraph.json").is_file():
            return candidate
    raise CLIError(
        "no langgraph.json here or in the cpa-planner source tree: run studio from a clone",
        CONFIG,
    )


def dev_server_command() -> list[str]:
    """LangGraph's CLI in this virtualenv, its banner muted (`cli.langgraph_dev`)."""
    if importlib.util.find_spec("langgraph_cli") is None:
        raise CLIError(
            "the LangGraph CLI is not installed: pip install 'langgraph-cli[inmem]' "
            "(it comes with `pip install -e '.[dev]'`)",
            CONFIG,
        )
    return [sys.executable, "-m", "cli.langgraph_dev"]


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/ok", timeout=1.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def studio(args: argparse.Namespace) -> int:
    root = project_root()
    host = "127.0.0.1"
    port = args.port or free_port(host)
    base = f"http://{host}:{port}"
    command = [*dev_server_command(), "dev", "--no-browser", "--host", host, "--port", str(port)]
    quiet = {} if args.verbose or "LOG_LEVEL" in os.environ else QUIET_ENV
    print(f"Starting the LangGraph dev server on {base} (from {root}) …", file=sys.stderr)
    process = subprocess.Popen(command, cwd=root, env={**os.environ, **STUDIO_ENV, **quiet})
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while process.poll() is None and time.monotonic() < deadline:
            if _ready(base):
                print(f"Studio:  {STUDIO_URL.format(base=base)}", flush=True)
                print(f"API:     {base}  (Ctrl-C stops it)", flush=True)
                break
            time.sleep(0.25)
        return process.wait()
    except KeyboardInterrupt:
        # The dev server got the same Ctrl-C (same process group); let it shut down.
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        return INTERRUPTED
