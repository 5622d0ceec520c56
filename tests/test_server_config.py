"""Server settings, `serve()` without keys, and readiness while Redis is down (Redis 7)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from api.settings import digest as _digest
from server import ServerConfigError, ServerSettings
from tests.support.processes import RedisProcess, free_port
from tests.support.server_harness import ACME_KEY, ROOT, ServerProcess, auth, server_env


def test_keys_from_the_environment_and_a_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# tenants\nglobex: g-key\n\ninitech:i-key\n")
    config = ServerSettings.from_env(
        {"CPA_API_KEYS": "acme:a-key, acme:a2", "CPA_API_KEYS_FILE": str(keys)}
    )
    assert config.api_keys == {
        _digest("a-key"): "acme",
        _digest("a2"): "acme",
        _digest("g-key"): "globex",
        _digest("i-key"): "initech",
    }
    assert not config.open_access
    assert ServerSettings.from_env({}).open_access
    assert ServerSettings.from_env({}).max_body_bytes == 256 * 1024


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"CPA_API_KEYS": "nokey"}, "CPA_API_KEYS"),
        ({"CPA_API_KEYS": "a b:key"}, "tenant"),
        ({"CPA_API_KEYS": "a:k,b:k"}, "two tenants"),
        ({"CPA_API_KEYS_FILE": "/nonexistent/keys"}, "CPA_API_KEYS_FILE"),
        ({"CPA_MAX_BODY_BYTES": "lots"}, "CPA_MAX_BODY_BYTES"),
        ({"CPA_MAX_BODY_BYTES": "0"}, "CPA_MAX_BODY_BYTES"),
        ({"CPA_WORKERS": "0"}, "CPA_WORKERS"),
        ({"CPA_WORKERS": "two"}, "CPA_WORKERS"),
    ],
)
def test_bad_settings_say_which(env: dict[str, str], names: str) -> None:
    with pytest.raises(ServerConfigError, match=names):
        ServerSettings.from_env(env)


@pytest.mark.slow
def test_serve_without_keys_serves_local_callers_and_says_so(
    valkey_url: str, tmp_path: Path
) -> None:
    # Beyond loopback it refuses to start (tests/test_server_safety.py).
    port = free_port()
    env = {**os.environ, **server_env(valkey_url, tmp_path), "CPA_API_KEYS": ""}
    proc = subprocess.Popen(
        [sys.executable, "-c", f"import server; server.serve('127.0.0.1', {port})"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        # Open to local callers (tenant `local`), no key needed.
        offer = httpx.get(f"http://127.0.0.1:{port}/v1/capabilities").json()
        assert offer["receiver"] == "local"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert "no API keys configured" in err and "only this machine's programs" in err
    assert err.count("no API keys configured") == 1  # said once


@pytest.mark.slow
def test_readyz_fails_fast_while_redis_is_down(redis_server_bin: str, tmp_path: Path) -> None:
    redis_server = RedisProcess(redis_server_bin, tmp_path / "redis")
    redis_server.start()
    server = ServerProcess(server_env(redis_server.url, tmp_path), tmp_path / "server.log")
    server.start()
    try:
        with httpx.Client(base_url=server.url, headers=auth(ACME_KEY), timeout=30) as client:
            assert client.get("/readyz").status_code == 200
            redis_server.stop()

            down = client.get("/readyz")
            assert down.status_code == 503
            assert down.json()["error"]["code"] == "redis_unavailable"
            assert "unreachable" in down.json()["error"]["message"]
            # Other endpoints say the same, and nothing answers 500.
            assert client.get("/v1/conversations/x").status_code == 503

            redis_server.start()
            for _ in range(100):
                if client.get("/readyz").status_code == 200:
                    break
                time.sleep(0.1)
            assert client.get("/readyz").status_code == 200
    finally:
        server.stop()
        redis_server.stop()


def test_settle_heap_freezes_what_start_up_made_and_collects_less_often() -> None:
    """In a fresh interpreter (it changes the process's collector for good)."""
    code = (
        "import gc, server\n"
        "assert gc.get_freeze_count() == 0\n"
        "server.settle_heap()\n"
        "print(gc.get_freeze_count(), *gc.get_threshold())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    frozen, *threshold = (int(n) for n in done.stdout.split())
    assert frozen > 10_000  # the modules, the app: out of the collector's way
    assert threshold == [10_000, 20, 20]


def test_workers_get_time_to_start_before_the_supervisor_gives_up_on_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uvicorn's supervisor kills a worker that does not answer its ping in time; at its
    default (5 s) a busy machine's workers were killed while importing, again and again."""
    import uvicorn

    import server

    for name in [n for n in os.environ if n.startswith("CPA_")]:
        monkeypatch.delenv(name)
    given: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: given.update(kwargs, app=app))
    monkeypatch.setattr(server, "configure_logging", lambda *args, **kwargs: None)  # global
    server.serve("127.0.0.1", free_port(), workers=2)
    assert given["app"] == "server:app" and given["workers"] == 2
    assert given["timeout_worker_healthcheck"] == server.WORKER_HEALTHCHECK_S >= 30
