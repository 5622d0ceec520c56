"""Tools over HTTP, in process (the app with its lifespan, real Valkey), and the example
desktop agent's side of them (`examples/desktop_agent.py`).

The agent offers its actions (`POST /v1/lam`, an `offer`); `GET /v1/tools` shows them to
its tenant only; bad offers are refused naming the field. Then "Find my tax files and
shred them" over HTTP: the planner (scripted) plans the agent's tools, the person approves,
and the example agent finds and deletes real files in a folder of the test's, only after
the approval.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.settings import ServerSettings, digest
from examples.desktop_agent import ACTIONS, DesktopAgent, DesktopTools
from graph.builder import make_services
from graph.config import Settings
from lam import LAMMessage, MessageFactory, ToDo, ToolCall
from server import create_app
from tests.support.scripted import ConstantChatModel, steps
from tests.support.server_harness import (
    ACME_KEY,
    DESKTOP,
    GLOBEX_KEY,
    auth,
    delete_prefix,
    expect_status,
)

INTENTS = Path(__file__).parent / "data" / "tools_intents.yaml"
SHRED = "Find my tax files and shred them"
SHRED_PLAN = steps(
    {
        "goal": "Shred the tax files",
        "todos": [
            {
                "id": "t1",
                "title": "Find",
                "tool": {"name": "find_files", "arguments": {"query": "tax"}},
            },
            {
                "id": "t2",
                "title": "Shred",
                "tool": {"name": "delete_files", "arguments": {"paths": {"$step": "t1"}}},
            },
        ],
    }
)


@pytest.fixture
async def app(valkey_url: str) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Clients of two tenants, acme and globex."""
    settings = Settings(
        redis_url=valkey_url,
        redis_prefix=f"test-tools-{uuid.uuid4().hex[:8]}",
        intents_path=str(INTENTS),
        todo_retries=0,
    )
    services = make_services(
        settings, chat_models={"planner": ConstantChatModel(answers={"PlanDraft": SHRED_PLAN})}
    )
    keys = {digest(ACME_KEY): "acme", digest(GLOBEX_KEY): "globex"}
    api = create_app(settings, services=services, server_settings=ServerSettings(api_keys=keys))
    try:
        async with api.router.lifespan_context(api):
            transport = httpx.ASGITransport(app=api, client=("127.0.0.1", 5000))
            async with (
                httpx.AsyncClient(
                    transport=transport, base_url="http://localhost", headers=auth(ACME_KEY)
                ) as acme,
                httpx.AsyncClient(
                    transport=transport, base_url="http://localhost", headers=auth(GLOBEX_KEY)
                ) as globex,
            ):
                yield acme, globex
    finally:
        delete_prefix(valkey_url, settings.redis_prefix)


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


async def assigned(client: httpx.AsyncClient, cid: str, answered: set[str]) -> None:
    """Wait until an `assign` the agent has not answered waits in its inbox."""
    deadline = time.monotonic() + 30  # a bound against a hang, not a speed check
    while True:
        inbox = await client.get(f"/v1/conversations/{cid}/inbox", params={"receiver": DESKTOP})
        if any(m["id"] not in answered for m in inbox.json()):
            return
        assert time.monotonic() < deadline, "no assign for the desktop agent"
        await asyncio.sleep(0.05)


def offer_body(sender: str, actions: list[dict[str, Any]]) -> dict[str, Any]:
    return MessageFactory(sender, "offer-1").actions("planner", actions).to_dict()


async def test_an_agents_offer_is_its_tenants_catalogue(
    app: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    acme, globex = app
    confirm = await DesktopAgent(acme, actions=ACTIONS).offer()
    assert confirm.performative.value == "confirm" and confirm.receiver == "cpa-desktop"
    assert confirm.content["tools"] == [t.name for t in ACTIONS]
    assert confirm.content["executor"] == "desktop"

    body = (await acme.get("/v1/tools")).json()
    tools = {t["name"]: t for t in body["tools"]}
    assert set(tools) == {t.name for t in ACTIONS}
    shred = tools["delete_files"]
    assert (shred["effect"], shred["executor"], shred["source"]) == (
        "delete",
        "desktop",
        "offer:cpa-desktop",
    )
    assert {e["name"] for e in body["executors"]} >= {"llm", "desktop", "template"}
    assert (await globex.get("/v1/tools")).json()["tools"] == []  # tenants apart

    ranked = (await acme.get("/v1/tools", params={"request": SHRED})).json()["tools"]
    assert {t["name"] for t in ranked[:2]} == {"find_files", "delete_files"}
    assert ranked[0]["score"] >= ranked[-1]["score"]

    # The next offer replaces the last; one with no actions withdraws them.
    await DesktopAgent(acme, actions=ACTIONS[:1]).offer()
    assert [t["name"] for t in (await acme.get("/v1/tools")).json()["tools"]] == ["find_files"]
    response = await acme.post("/v1/lam", json=offer_body("cpa-desktop", []))
    assert response.status_code == 200
    assert (await acme.get("/v1/tools")).json()["tools"] == []


@pytest.mark.parametrize(
    ("sender", "content", "code", "field"),
    [
        ("someone", {"actions": [{"name": "x"}]}, "unknown_agent", "sender"),
        (
            "cpa-desktop",
            {"actions": [{"name": "x", "input_schema": {"type": "object", "required": 3}}]},
            "invalid_offer",
            "content.actions.0.input_schema",
        ),
        (
            "cpa-desktop",
            {"actions": [{"name": "x", "executor": "llm"}]},
            "invalid_offer",
            "content.actions.0.executor",
        ),
        ("cpa-desktop", {"executors": ["x"], "intents": []}, "invalid_offer", "content.actions"),
        (
            "cpa-desktop",
            {"actions": [{"name": "x", "effect": "DELETE"}]},
            "invalid_message",
            "content.actions.0.effect",
        ),
    ],
)
async def test_a_bad_offer_is_refused_naming_the_field(
    app: tuple[httpx.AsyncClient, httpx.AsyncClient],
    sender: str,
    content: dict[str, Any],
    code: str,
    field: str,
) -> None:
    acme, _ = app
    body = offer_body(sender, []) | {"content": content}
    response = await acme.post("/v1/lam", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert field in [f["field"] for f in error["fields"]]
    assert (await acme.get("/v1/tools")).json()["tools"] == []


async def test_the_shred_request_over_http_with_the_example_agent(
    app: tuple[httpx.AsyncClient, httpx.AsyncClient], tmp_path: Path
) -> None:
    acme, _ = app
    (tmp_path / "tax").mkdir()
    for name in ("tax-2023.pdf", "tax-2024.pdf"):
        (tmp_path / "tax" / name).write_text("numbers")
    (tmp_path / "holiday.jpg").write_text("sea")
    agent = DesktopAgent(acme, actions=ACTIONS, tools=DesktopTools(tmp_path).functions())
    await agent.offer()

    request = MessageFactory("user").request(SHRED).to_dict()
    opened = (await acme.post("/v1/lam", params={"wait": 30}, json=request)).json()
    cid = opened["conversation_id"]
    assert opened["status"] == "waiting"
    plan = opened["conversation"]["plan"]
    assert [t["tool"]["name"] for t in plan["todos"]] == ["find_files", "delete_files"]
    assert [t["requires_approval"] for t in plan["todos"]] == [False, True]
    # Waiting for the person: nothing for the agent yet, every file still there.
    await agent.work_inbox(cid)
    assert agent.answered == set()
    assert files(tmp_path) == ["holiday.jpg", "tax/tax-2023.pdf", "tax/tax-2024.pdf"]

    (propose,) = (
        await acme.get(f"/v1/conversations/{cid}/inbox", params={"receiver": "user"})
    ).json()
    agree = MessageFactory("user", cid).agree(LAMMessage.from_dict(propose))
    assert (
        await acme.post("/v1/lam", params={"wait": 30}, json=agree.to_dict())
    ).status_code == 202
    for _ in range(2):  # find, then shred what was found
        await assigned(acme, cid, agent.answered)
        await agent.work_inbox(cid)
    body = await expect_status(acme, cid, "done")
    found, shredded = (t["output"] for t in body["plan"]["todos"])
    assert sorted(found) == ["tax/tax-2023.pdf", "tax/tax-2024.pdf"]
    assert sorted(shredded) == sorted(found)
    assert files(tmp_path) == ["holiday.jpg"]


async def test_the_example_agent_refuses_unknown_tools_and_bad_arguments(
    app: tuple[httpx.AsyncClient, httpx.AsyncClient], tmp_path: Path
) -> None:
    acme, _ = app
    agent = DesktopAgent(acme, actions=ACTIONS, tools=DesktopTools(tmp_path).functions())
    todo = ToDo(id="t1", title="x", executor="desktop", tool=ToolCall(name="x"))
    planner = MessageFactory("planner", "c1")

    async def outcome(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        call = ToolCall(name=name, arguments=arguments)
        answer = await agent.do(planner.assign("cpa-desktop", todo, {}, tool=call))
        return answer.content

    assert (await outcome("format_disk", {}))["error"]["code"] == "unknown_tool"
    bad = (await outcome("delete_files", {"paths": "all"}))["error"]
    assert bad["code"] == "bad_arguments" and "'all' is not of type 'array'" in bad["message"]
    outside = (await outcome("delete_files", {"paths": ["../elsewhere.txt"]}))["error"]
    assert outside["code"] == "outside_files"
    assert (await outcome("find_files", {"query": "nothing"}))["output"] == []
