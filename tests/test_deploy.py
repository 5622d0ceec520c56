"""The container image and the compose stack, built and run with podman (docs/deploy.md).

The image is built as the README says (`make image`, on a Debian base made from Debian's
packages: no registry here), then run on a network of its own with the stack's Redis image:

- a conversation over HTTP from request to done (the README's walkthrough), the image's
  HEALTHCHECK (`podman healthcheck run`), its user; SIGTERM stops it cleanly, and a new
  container on the same Redis serves the finished conversation whole;
- SIGTERM while a ToDo runs: the replica hands the conversation back (its lease freed, a job
  queued) instead of leaving it to expire, and a second container carries it on to the end,
  no finished ToDo run again, no `assign` sent twice;
- the compose stack (deploy/compose.yaml) with what can be built here (proxy, two
  replicas, Redis, Prometheus; Grafana's and Jaeger's images need a registry: a stand-in
  OTLP receiver answers as `jaeger`), a conversation through the proxy's one port, both
  replicas scraped by Prometheus with the project's alert rules, and `down` leaves nothing.

The tests of the first two use the image with a test hook mounted (tests/ read-only: the
replica tests' `record` executor, CPA_SERVER_SERVICES); the image itself is the one built.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import redis
import yaml

from graph.conversations import thread_id
from graph.storage.server_keys import RedisKeys
from tests.support.containers import (
    IMAGE,
    REDIS_IMAGE,
    ROOT,
    Network,
    build_images,
    check_calendar_done,
    compose,
    compose_env,
    inbox,
    ip_forwarding_restored,
    logs,
    podman,
    require_podman,
    unique,
    wait_healthz,
    walk_the_calendar,
)
from tests.support.crash_driver import A1, A2, A3, B1, B2, C1, D1, RECORD_TODOS, REQUEST, Z
from tests.support.executors import gate_key
from tests.support.processes import free_port
from tests.support.server_harness import DESKTOP, auth, done_for, request_message

# A cold build (base image, pip install) takes minutes on two cores; each step below has a
# deadline of its own.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]

TENANT = "fleet"
KEY = "container-key-0123456789"
MOUNTED_TESTS = "/opt/cpa-tests"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    require_podman()
    with ip_forwarding_restored():
        build_images(tmp_path_factory.mktemp("build") / "build.log")
        yield


class Redis:
    """The stack's Redis image on a test network, published on a loopback port for the test."""

    def __init__(self, network: Network) -> None:
        self.port = free_port()
        self.name = network.run(
            REDIS_IMAGE, unique("redis"), "--publish", f"127.0.0.1:{self.port}:6379"
        )
        self.url = f"redis://{self.name}:6379/0"  # as the other containers reach it
        self.client = redis.Redis(port=self.port, decode_responses=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


@pytest.fixture
def network(images: None) -> Iterator[Network]:
    net = Network()
    try:
        yield net
    finally:
        net.close()


def planner(network: Network, env: dict[str, str], *options: str) -> tuple[str, str]:
    """The image on the network with `env`, its port published on loopback: (name, URL)."""
    port = free_port()
    name = network.run(
        IMAGE,
        unique("planner"),
        "--publish",
        f"127.0.0.1:{port}:8000",
        *options,
        *(arg for k, v in env.items() for arg in ("--env", f"{k}={v}")),
    )
    base = f"http://127.0.0.1:{port}"
    wait_healthz(base, name)
    return name, base


@pytest.fixture
async def client_for() -> AsyncIterator[Any]:
    clients: list[httpx.AsyncClient] = []

    def make(base: str) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=base, headers=auth(KEY), timeout=60)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def stop(container: str) -> int:
    """`podman stop` (SIGTERM, the image's STOPSIGNAL); the container's exit code."""
    podman("stop", "--time", "60", container, timeout=120)
    return int(podman("inspect", "--format", "{{.State.ExitCode}}", container).strip())


async def test_the_image_runs_a_conversation_and_stops_cleanly(
    network: Network, client_for: Any
) -> None:
    store = Redis(network)
    env = {"REDIS_URL": store.url, "CPA_API_KEYS": f"{TENANT}:{KEY}", "CPA_WORKERS": "2"}
    name, base = planner(network, env)

    # The image's own HEALTHCHECK (kept by `--format docker`), run by podman.
    check = json.loads(podman("inspect", "--format", "{{json .Config.Healthcheck}}", name))
    assert "/healthz" in " ".join(check["Test"]), check
    podman("healthcheck", "run", name)
    # Not root; Python and the virtualenv only (no pip, no compiler).
    assert podman("exec", name, "id", "-u").strip() == "10001"
    assert podman("exec", name, "python3", "-m", "pip", "--version", check=False) == ""
    # CPA_WORKERS=2: uvicorn's supervisor and two workers, each a replica.
    processes = podman("top", name, "args")
    assert processes.count("multiprocessing.spawn") == 2, processes

    client = client_for(base)
    cid = await walk_the_calendar(client)
    check_calendar_done((await client.get(f"/v1/conversations/{cid}")).json())
    # Without the key, nothing.
    async with httpx.AsyncClient(base_url=base) as stranger:
        assert (await stranger.get(f"/v1/conversations/{cid}")).status_code == 401

    assert stop(name) == 0, logs(name)
    # Both workers ran their lifespan's end (where a replica hands its conversations on).
    assert logs(name).count("Application shutdown complete") == 2, logs(name)

    # Nothing was kept in the container: a new one on the same Redis has it all.
    _, again = planner(network, env)
    body = (await client_for(again).get(f"/v1/conversations/{cid}")).json()
    check_calendar_done(body)


async def test_the_railway_start_command_serves_on_the_platforms_port(network: Network) -> None:
    # The platform gives PORT and runs the recipe's start command in place of the CMD.
    recipe = json.loads((ROOT / "railway.json").read_text())
    command = tuple(shlex.split(recipe["deploy"]["startCommand"]))
    store = Redis(network)
    port, platform_port = free_port(), "9123"
    env = {"REDIS_URL": store.url, "CPA_API_KEYS": f"{TENANT}:{KEY}", "PORT": platform_port}
    name = network.run(
        IMAGE,
        unique("railway"),
        "--publish",
        f"127.0.0.1:{port}:{platform_port}",
        *(arg for k, v in env.items() for arg in ("--env", f"{k}={v}")),
        command=command,
    )
    base = f"http://127.0.0.1:{port}"
    # What the platform checks: the recipe's path, on its port.
    assert recipe["deploy"]["healthcheckPath"] == "/healthz"
    wait_healthz(base, name)
    async with httpx.AsyncClient(base_url=base, headers=auth(KEY)) as client:
        assert (await client.get("/readyz")).json() == {"status": "ready", "redis": "ok"}
    assert stop(name) == 0, logs(name)


def record_lines(store: Redis, key: str, cid: str) -> list[tuple[str, str]]:
    """(event, ToDo) of the record executor's lines for this conversation, in order."""
    lines = [str(line).split() for line in store.client.lrange(key, 0, -1)]
    return [(event, todo) for c, event, todo, _pid in lines if c == cid]


def wait_record(store: Redis, key: str, cid: str, wanted: tuple[str, str], container: str) -> None:
    deadline = time.monotonic() + 120
    while wanted not in record_lines(store, key, cid):
        if time.monotonic() > deadline:
            pytest.fail(f"no {wanted} in the record\n{logs(container)[-4000:]}")
        time.sleep(0.1)


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_sigterm_hands_the_conversation_under_way_to_the_next_replica(
    network: Network, client_for: Any, workers: str
) -> None:
    store = Redis(network)
    prefix = unique("prefix")
    record = f"{prefix}:record"
    # The replica tests' services: the crash drill's plan, a `record` executor that logs to
    # Redis and holds a1 between its start and end until the gate key exists.
    env = {
        "REDIS_URL": store.url,
        "CPA_REDIS_PREFIX": prefix,
        "CPA_API_KEYS": f"{TENANT}:{KEY}",
        "CPA_WORKERS": workers,  # with 2, uvicorn's supervisor passes SIGTERM on
        "PYTHONPATH": MOUNTED_TESTS,
        "CPA_SERVER_SERVICES": "tests.support.replica_services:replica_services",
        "CPA_INTENTS_PATH": f"{MOUNTED_TESTS}/tests/data/crash_intents.yaml",
        "CPA_APPROVAL_POLICY": "never",
        "CPA_TODO_RETRIES": "0",
        "CPA_TEST_RECORD_KEY": record,
        "CPA_TEST_RECORD_URL": store.url,
        "CPA_TEST_HOLD": A1,
        # Long: a conversation left to its lease would stay stuck well past this test's
        # waits, so only a hand-over lets the next replica carry it on in time.
        "CPA_LEASE_S": "600",
    }
    mount = ("--volume", f"{ROOT / 'tests'}:{MOUNTED_TESTS}/tests:ro")
    first, base = planner(network, env, *mount)
    client = client_for(base)
    opened = (await client.post("/v1/lam", json=request_message(REQUEST))).json()
    cid = opened["conversation_id"]
    wait_record(store, record, cid, ("start", A1), first)  # a1 runs (held), the rest goes on
    wait_record(store, record, cid, ("end", C1), first)

    assert stop(first) == 0, logs(first)

    # Handed back: the lease is free, a job for the conversation is queued, the record says
    # a run is unfinished (so the next holder carries it on from its checkpoint).
    keys = RedisKeys(prefix)
    thread = thread_id(cid, TENANT)
    assert store.client.exists(keys.lease(thread)) == 0
    jobs = store.client.xrange(keys.jobs) or []
    assert [(fields or {}).get("thread") for _, fields in jobs] == [thread], jobs
    assert store.client.hexists(keys.conversation(thread), "holder")
    assert store.client.hget(keys.conversation(thread), "status") == "running"

    store.client.set(gate_key(record, A1), "1")  # this time a1 may finish
    _, base2 = planner(network, env, *mount)
    client2 = client_for(base2)
    deadline = time.monotonic() + 120
    while not (assigns := await inbox(client2, cid, DESKTOP)):
        assert time.monotonic() < deadline, "no assign for d1"
        await asyncio.sleep(0.1)
    [assign] = assigns
    assert assign["content"]["todo"]["id"] == D1
    answer = await client2.post("/v1/lam", params={"wait": 30}, json=done_for(assign, "pressed"))
    assert answer.json()["status"] == "done", answer.text

    starts = Counter(todo for event, todo in record_lines(store, record, cid) if event == "start")
    # a1 was under way when the first replica stopped: it runs again; nothing else does.
    assert starts == Counter({A1: 2, A2: 1, A3: 1, B1: 1, B2: 1, C1: 1, Z: 1}), starts
    body = (await client2.get(f"/v1/conversations/{cid}")).json()
    assert body["status"] == "done"
    assert all(t["status"] == "done" for t in body["plan"]["todos"])
    events = store.client.lrange(keys.events(thread), 0, -1)
    # One `assign` per ToDo in the event log, a1's too (its id is stable across replicas).
    sent = Counter(
        message["content"]["todo"]["id"]
        for message in map(json.loads, events)
        if message["performative"] == "assign"
    )
    assert sent == Counter({todo: 1 for todo in (*RECORD_TODOS, D1)}), sent
    for key in store.client.scan_iter(f"{prefix}*"):
        store.client.delete(key)


# The compose stack ----------------------------------------------------------------------

# A stand-in for Jaeger's OTLP/HTTP receiver (its image needs a registry): prints the path
# and content type of every POST, answers 200.
OTLP_RECEIVER = """
import http.server
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        print("POST", self.path, self.headers.get("Content-Type"), flush=True)
        self.send_response(200)
        self.end_headers()
http.server.HTTPServer(("", 4318), Receiver).serve_forever()
"""


def prometheus_query(base: str, path: str, **params: str) -> Any:
    body = httpx.get(f"{base}/api/v1/{path}", params=params, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]


def wait_until(what: str, probe: Any, detail: Any = None, within: float = 120) -> Any:
    """Until `probe()` is true (its value); else the test fails, with `detail()` if given."""
    deadline = time.monotonic() + within
    while True:
        with_value = probe()
        if with_value:
            return with_value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {within} s: {what}\n{detail() if detail else ''}")
        time.sleep(1)


async def test_the_compose_stack_serves_through_one_port_and_is_scraped(
    images: None, client_for: Any
) -> None:
    project = unique("stack")
    port, prometheus_port = free_port(), free_port()
    env = compose_env(
        CPA_API_KEYS=f"{TENANT}:{KEY}",
        CPA_PUBLISH=f"127.0.0.1:{port}",
        PROMETHEUS_PUBLISH=f"127.0.0.1:{prometheus_port}",
    )
    network = f"{project}_default"
    receiver = unique("otlp")
    try:
        compose(project, "up", "-d", "proxy", "prometheus", env=env)
        podman(
            "run", "-d", "--name", receiver, "--network", network, "--network-alias", "jaeger",
            IMAGE, "python3", "-c", OTLP_RECEIVER,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        proxy = f"{project}_proxy_1"
        wait_healthz(base, proxy)
        # Both replicas in the proxy's rotation (their health checks passed).
        wait_until(
            "both replicas up behind the proxy",
            lambda: all(f"planners/{n} is UP" in logs(proxy) for n in ("planner-1", "planner-2")),
        )
        client = client_for(base)
        cid = await walk_the_calendar(client)
        check_calendar_done((await client.get(f"/v1/conversations/{cid}")).json())

        # Prometheus scrapes both replicas; each answered some of the conversation's
        # requests (the proxy takes turns: here the POSTs went to one and the GETs to the
        # other); the project's alert rules are loaded.
        prometheus = f"http://127.0.0.1:{prometheus_port}"
        alerts = yaml.safe_load((ROOT / "docs" / "prometheus-alerts.yml").read_text())
        expected = {rule["alert"] for group in alerts["groups"] for rule in group["rules"]}
        rules = prometheus_query(prometheus, "rules")
        assert {r["name"] for g in rules["groups"] for r in g["rules"]} == expected

        def requests_by_instance() -> list[Any]:
            query = 'sum by (instance) (cpa_http_requests_total{route=~"/v1/.+"})'
            return list(prometheus_query(prometheus, "query", query=query)["result"])

        scraped = wait_until(
            "both replicas' requests in Prometheus",
            lambda: len(requests_by_instance()) == 2 and requests_by_instance(),
            lambda: f"{requests_by_instance()}\n{logs(proxy)[-3000:]}",
        )
        assert {s["metric"]["instance"] for s in scraped} == {"planner-1:8000", "planner-2:8000"}
        assert all(float(s["value"][1]) > 0 for s in scraped), scraped
        targets = prometheus_query(prometheus, "targets")["activeTargets"]
        assert {(t["labels"]["job"], t["health"]) for t in targets} == {("cpa-planner", "up")}

        # Traces go to `jaeger:4318` over OTLP/HTTP.
        posts = wait_until("a trace export", lambda: "POST /v1/traces" in logs(receiver))
        assert posts
        assert "application/x-protobuf" in logs(receiver)
    finally:
        podman("rm", "--force", "--time", "0", receiver, check=False)
        compose(project, "down", "--volumes", "--timeout", "60", env=env)
    left = podman("ps", "--all", "--filter", f"label=io.podman.compose.project={project}", "-q")
    assert left.strip() == ""
    assert project not in podman("volume", "ls", "--format", "{{.Name}}")
    assert network not in podman("network", "ls", "--format", "{{.Name}}")
