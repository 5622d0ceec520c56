"""Podman for the deployment tests: the images, containers on a network of their own, compose.

Podman runs as root here, with deploy/containers.conf where runc is installed (as the
Makefile has it: crun cannot raise limits nor use hybrid cgroups on this kind of machine).
Everything a test starts is named `cpa-test-…` and removed afterwards; podman's bridge
networks switch IP forwarding on, so `ip_forwarding_restored` puts it back as it was.

    require_podman()          skip (fail with CI=true) without podman, root or the tools
    podman(*args)             run podman; its output, or the test fails with it
    build_images(log)         `make image`, then the compose stack's own images
    Network                   a bridge network and the containers started on it
    walk_the_calendar(client) the README's conversation over HTTP, request to done
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from tests.support.server_harness import DESKTOP, agree_to, done_for, request_message

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "deploy" / "compose.yaml"
IMAGE = "localhost/cpa-planner:latest"
REDIS_IMAGE = "localhost/cpa-planner-redis:latest"
LOCAL_BASE = "localhost/debian-base:bookworm"
PIP_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# The images the compose stack builds here; Grafana's and Jaeger's need a registry.
STACK_BUILT = ("redis", "proxy", "prometheus")
FORWARDING = (Path("/proc/sys/net/ipv4/ip_forward"), Path("/proc/sys/net/ipv6/conf/all/forwarding"))
CALENDAR_REQUEST = "Schedule a meeting with Anna tomorrow at 10"


def missing(what: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{what} is required in CI (.ci/run installs it)", pytrace=False)
    pytest.skip(
        f"{what} not available (apt-get install podman buildah mmdebstrap runc; make deploy-tools)"
    )


def tool(name: str) -> str:
    """A program of the virtualenv (the `deploy` extra) or of PATH."""
    venvs = (Path(os.environ.get("VIRTUAL_ENV", "")), ROOT / ".venv")
    for candidate in (venv / "bin" / name for venv in venvs):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        missing(name)
    return found


def require_podman() -> None:
    for program in ("podman", "mmdebstrap"):
        if shutil.which(program) is None:
            missing(program)
    if os.geteuid() != 0:
        missing("root (the tests run podman as root)")
    tool("podman-compose")


def podman_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    if "CONTAINERS_CONF" not in env and shutil.which("runc"):
        env["CONTAINERS_CONF"] = str(ROOT / "deploy" / "containers.conf")
    return env


def podman(*args: str, check: bool = True, timeout: float = 120) -> str:
    done = subprocess.run(
        ["podman", *args],
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        pytest.fail(f"podman {' '.join(args)}: exit {done.returncode}\n{done.stderr[-3000:]}")
    return done.stdout


def run_logged(command: list[str], log: Path, env: Mapping[str, str], timeout: float) -> None:
    """Run a long command with its output in `log`; the test fails with the log's tail."""
    with log.open("ab") as out:
        done = subprocess.run(
            command,
            cwd=ROOT,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)}: exit {done.returncode}\n{log.read_text()[-4000:]}")


def compose_env(**extra: str) -> dict[str, str]:
    """What deploy/compose.yaml needs on this machine: keys, the local bases, the CA."""
    env = podman_env(
        CPA_API_KEYS="fleet:compose-key-0123456789",
        GRAFANA_ADMIN_PASSWORD="not-used-here",
        BASE_IMAGE=LOCAL_BASE,
        DEBIAN_IMAGE=LOCAL_BASE,
        CPA_IMAGE=IMAGE,
    )
    if PIP_CA.is_file():
        env["PIP_CA"] = str(PIP_CA)
    return {**env, **extra}


def compose(project: str, *args: str, env: Mapping[str, str], timeout: float = 300) -> str:
    command = [tool("podman-compose"), "-p", project, "-f", str(COMPOSE_FILE), *args]
    done = subprocess.run(
        command,
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)}: exit {done.returncode}\n{done.stderr[-4000:]}")
    return done.stdout


def build_images(log: Path) -> None:
    """The server image as the README builds it, then the stack's Redis, proxy, Prometheus."""
    run_logged(["make", "image"], log, podman_env(), timeout=1800)
    command = [tool("podman-compose"), "-f", str(COMPOSE_FILE), "build", *STACK_BUILT]
    run_logged(command, log, compose_env(), timeout=900)


@contextlib.contextmanager
def ip_forwarding_restored() -> Iterator[None]:
    """Podman's bridge networks switch IP forwarding on: put it back as it was."""
    before = {path: path.read_text() for path in FORWARDING if path.exists()}
    try:
        yield
    finally:
        for path, value in before.items():
            if path.read_text() != value:
                path.write_text(value)


def unique(name: str) -> str:
    return f"cpa-test-{name}-{uuid.uuid4().hex[:8]}"


class Network:
    """A podman bridge network; the containers started on it are removed with it."""

    def __init__(self) -> None:
        self.name = unique("net")
        self.containers: list[str] = []
        podman("network", "create", self.name)

    def run(self, image: str, name: str, *options: str, command: tuple[str, ...] = ()) -> str:
        """Start a container on this network (detached); its name."""
        podman("run", "-d", "--name", name, "--network", self.name, *options, image, *command)
        self.containers.append(name)
        return name

    def close(self) -> None:
        for name in self.containers:
            podman("rm", "--force", "--time", "0", name, check=False)
        podman("network", "rm", "--force", self.name, check=False)


def logs(container: str) -> str:
    done = subprocess.run(
        ["podman", "logs", container],
        env=podman_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout + done.stderr


def wait_healthz(base: str, container: str | None = None, within: float = 180) -> None:
    """Until `GET /healthz` answers 200 (a deadline, not a timing assert)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        if container and podman("inspect", "--format", "{{.State.Running}}", container) != "true\n":
            break
        time.sleep(0.5)
    pytest.fail(f"{base} did not answer /healthz\n{logs(container)[-4000:] if container else ''}")


# The README's walkthrough, in Python -----------------------------------------------------


async def post(client: httpx.AsyncClient, message: Mapping[str, Any]) -> dict[str, Any]:
    """An LAM message, waiting until the conversation stops running."""
    response = await client.post("/v1/lam", params={"wait": 30}, json=message)
    assert response.status_code == 202, response.text
    return dict(response.json())


async def inbox(client: httpx.AsyncClient, cid: str, receiver: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/conversations/{cid}/inbox", params={"receiver": receiver})
    assert response.status_code == 200, response.text
    return list(response.json())


async def walk_the_calendar(client: httpx.AsyncClient) -> str:
    """Request, approve the plan, the desktop agent's two answers: the conversation, done."""
    opened = await post(client, request_message(CALENDAR_REQUEST))
    cid = str(opened["conversation_id"])
    assert opened["status"] == "waiting", opened
    [propose] = await inbox(client, cid, "user")
    assert propose["performative"] == "propose"
    assert (await post(client, agree_to(propose)))["status"] == "waiting"
    outputs = {"t1": "Anna is free tomorrow 10:00-11:00", "t2": "invitation sent"}
    for todo_id, output in outputs.items():
        [assign] = await inbox(client, cid, DESKTOP)
        assert assign["performative"] == "assign"
        assert assign["content"]["todo"]["id"] == todo_id
        status = (await post(client, done_for(assign, output)))["status"]
        assert status == ("waiting" if todo_id == "t1" else "done")
    return cid


def check_calendar_done(body: Mapping[str, Any]) -> None:
    """What the server holds of the finished walk."""
    assert body["status"] == "done", body
    assert body["intent"] == "calendar"
    assert {t["id"]: t["status"] for t in body["plan"]["todos"]} == {"t1": "done", "t2": "done"}
    kinds = [m["performative"] for m in body["messages"]]
    assert kinds.count("agree") == 1 and kinds.count("assign") == 2 and kinds.count("done") == 2
    assert "Anna is free tomorrow 10:00-11:00" in body["result"]["text"]
