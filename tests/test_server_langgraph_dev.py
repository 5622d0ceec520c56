"""The same app mounted into `langgraph dev` (langgraph.json `http.app`): one process serves
Studio's API and ours."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lam import LAMMessage
from tests.conftest import free_port
from tests.server_harness import ACME_KEY, ROOT, auth, delete_prefix, request_message, server_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dev_server(valkey_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    langgraph = shutil.which("langgraph", path=str(Path(sys.executable).parent))
    if langgraph is None:
        pytest.skip("langgraph-cli is not installed")
    directory = tmp_path_factory.mktemp("langgraph-dev")
    env = server_env(valkey_url, directory)
    config = directory / "langgraph.json"
    # The lines langgraph.json needs (with absolute paths here: the config is elsewhere).
    config.write_text(
        json.dumps(
            {
                "dependencies": [str(ROOT)],
                "graphs": {"planner": "graph.builder:graph"},
                "http": {"app": "server:app"},
            }
        )
    )
    port = free_port()
    log = (directory / "dev.log").open("wb")
    args = [langgraph, "dev", "--config", str(config), "--no-browser", "--no-reload"]
    proc = subprocess.Popen(
        [*args, "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env={
            **os.environ,
            **env,
            "LANGGRAPH_CLI_NO_ANALYTICS": "1",
            "LANGGRAPH_NO_VERSION_CHECK": "true",
            "PYTHONPATH": str(ROOT),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"langgraph dev exited:\n{(directory / 'dev.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", headers=auth(ACME_KEY)).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"not ready:\n{(directory / 'dev.log').read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
        delete_prefix(valkey_url, env["CPA_REDIS_PREFIX"])


def test_one_dev_process_serves_studio_and_our_api(dev_server: str) -> None:
    with httpx.Client(base_url=dev_server, timeout=30) as client:
        # Studio's API (LangGraph's own routes) ...
        assert client.get("/ok").status_code == 200
        assistants = client.post("/assistants/search", json={}).json()
        assert "planner" in {a["graph_id"] for a in assistants}
        # ... and ours, with its auth, lifespan (Redis) and background runs.
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/v1/capabilities").status_code == 401
        offer = client.get("/v1/capabilities", headers=auth(ACME_KEY)).json()
        assert LAMMessage.from_dict(offer).performative.value == "offer"
        response = client.post(
            "/v1/lam",
            params={"wait": 30},
            json=request_message("Take a note: mounted"),
            headers=auth(ACME_KEY),
        )
        assert response.status_code == 202, response.text
        assert response.json()["conversation"]["status"] == "done"
        bad = client.post("/v1/lam", content=b"{", headers=auth(ACME_KEY))
        assert bad.status_code == 422
        assert bad.json()["error"]["code"] == "invalid_message"
