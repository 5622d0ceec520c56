"""The web console in a real browser: Debian's chromium driven by Playwright, against a real
`cpa-planner serve` (real Redis, scripted services: tests/support/console_harness.py).

The browser tests (marked slow) start the server and chromium. The main one runs a
conversation with two ToDos in parallel and a desktop ToDo after them that needs approval,
entirely by clicking: the DAG has the plan's nodes and edges, the timeline fills in as ToDos
finish, the approval and the desktop answer are given in the page, and the LAM messages the
page sent are checked through the API. The others: errors as the API words them, requests to
this origin only (and a CSP that blocks others), a narrow window used with the keyboard
alone, and a server without keys (no key asked). The fast tests check what `api.overview`
computes, and that every file of the console is served and packaged.

The screenshots of docs/console.md come from a server with the shipped intents and
executors (`test_the_docs_screenshots_show_what_the_product_ships`):
`CPA_CONSOLE_SCREENSHOTS=docs pytest tests/test_console.py -k docs_screenshots` writes them
into docs/ (else into the test's temporary directory).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    Page,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)

import api.console as console_package
from api.overview import plan_effects, waiting_for
from graph.builder import default_executors
from graph.config import Settings
from graph.tools.catalogue import Catalogue, tool_entries
from lam import LAMMessage, MessageFactory, Plan, ToDo, Tool
from lam.dag import critical_path
from tests.support.console_harness import (
    SHIPPED_PLAN,
    SHIPPED_REQUEST,
    console_env,
    shipped_env,
)
from tests.support.server_harness import (
    ACME_KEY,
    ROOT,
    ServerProcess,
    agree_to,
    auth,
    delete_prefix,
    done_for,
    refuse,
    request_message,
)

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDE: ViewportSize = {"width": 1280, "height": 800}
NARROW: ViewportSize = {"width": 390, "height": 844}
BOARD_PACK = "Prepare the board pack for Thursday"

# Waiting for the page is waiting for a server run: generous deadlines, never timed asserts.
expect.set_options(timeout=30_000)


def _chromium() -> str:
    found = os.environ.get("CPA_TEST_CHROMIUM") or shutil.which("chromium")
    if found is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is required in CI (apt-get install chromium)", pytrace=False)
        pytest.skip("chromium not installed")
    return found


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    # Debian's chromium, no browser download; no background traffic of its own.
    launched = playwright.chromium.launch(executable_path=_chromium(), args=CHROMIUM_FLAGS)
    yield launched
    launched.close()


def _serve(redis_url: str, directory: Path, **extra: str) -> Iterator[ServerProcess]:
    env = console_env(redis_url, directory, **extra)
    process = ServerProcess(env, directory / "server.log", cli=True)  # `cpa-planner serve`
    process.start()
    yield process
    process.stop()
    delete_prefix(redis_url, env["CPA_REDIS_PREFIX"])


@pytest.fixture(scope="module")
def server(redis7_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from _serve(redis7_url, tmp_path_factory.mktemp("console"))


@pytest.fixture(scope="module")
def open_server(
    redis7_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server with no API keys: local mode."""
    yield from _serve(redis7_url, tmp_path_factory.mktemp("console-open"), CPA_API_KEYS="")


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=auth(ACME_KEY), timeout=30) as client:
        yield client


class Console:
    """A page of the console, with every request it makes and every error it throws."""

    def __init__(self, page: Page, server: ServerProcess) -> None:
        self.page = page
        self.server = server
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def open(self, key: str | None = ACME_KEY) -> None:
        self.page.goto(f"{self.server.url}/ui")
        if key is not None:
            expect(self.page.locator("#key-dialog")).to_be_visible()
            self.page.fill("#key-input", key)
            self.page.click("#key-form button[type=submit]")
            expect(self.page.locator("#key-dialog")).to_be_hidden()
        # Started: the console says how it reaches the API once it has checked, and only then
        # lists and routes (`show(null)` hides the detail's cards). A test that draws into a
        # card before that races it: under load the card is hidden under it, and text in a
        # hidden SVG measures 0 px wide.
        note = "API key kept for this tab." if key is not None else "Local mode: no API key needed."
        expect(self.page.locator("#session-note")).to_have_text(note)

    def send_request(self, text: str, conversation_id: str = "") -> None:
        self.page.fill("#request-text", text)
        self.page.fill("#request-conversation", conversation_id)
        self.page.click("#request-form button[type=submit]")

    def conversation_id(self) -> str:
        expect(self.page.locator("#detail-id")).not_to_be_empty()
        return str(self.page.text_content("#detail-id"))

    def bars(self) -> dict[str, dict[str, Any]]:
        """The timeline's bars by ToDo id: whether each is open, and on the critical path."""
        found = self.page.eval_on_selector_all(
            "#timeline rect.bar",
            """bars => bars.map(b => ({
                todo: b.dataset.todo,
                open: b.classList.contains('open'),
                critical: b.classList.contains('critical'),
            }))""",
        )
        return {bar["todo"]: bar for bar in found}


@pytest.fixture
def console(browser: Browser, server: ServerProcess) -> Iterator[Console]:
    context = browser.new_context(viewport=WIDE)
    yield Console(context.new_page(), server)
    context.close()


def _screenshots(tmp_path: Path) -> Path:
    wanted = os.environ.get("CPA_CONSOLE_SCREENSHOTS")
    directory = Path(wanted) if wanted else tmp_path
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _tick_gaps(page: Page) -> list[float]:
    """The room between each of the timeline axis's labels and the next, in pixels."""
    return list(
        page.eval_on_selector_all(
            "#timeline text.tick-label",
            """ls => ls.map(l => l.getBBox()).map((b, i, all) =>
                i + 1 < all.length ? all[i + 1].x - (b.x + b.width) : null).slice(0, -1)""",
        )
    )


def _same_origin(urls: list[str], origin: str) -> list[str]:
    """The URLs that go anywhere but `origin`."""
    return [u for u in urls if f"{urlsplit(u).scheme}://{urlsplit(u).netloc}" != origin]


def _messages(api: httpx.Client, cid: str) -> list[dict[str, Any]]:
    response = api.get(f"/v1/conversations/{cid}")
    assert response.status_code == 200, response.text
    return list(response.json()["messages"])


def _one(messages: list[dict[str, Any]], performative: str, **content: Any) -> dict[str, Any]:
    found = [
        m
        for m in messages
        if m["performative"] == performative
        and all(m["content"].get(k) == v for k, v in content.items())
    ]
    assert len(found) == 1, (performative, content, found)
    return found[0]


# The whole conversation, by clicking -------------------------------------------------------


@pytest.mark.slow
def test_the_console_runs_a_conversation_with_an_approval_and_a_desktop_wait(
    console: Console, api: httpx.Client, tmp_path: Path
) -> None:
    page = console.page
    shots = tmp_path
    console.open()
    console.send_request(BOARD_PACK)

    # The plan waits for approval: the DAG has its three ToDos and two dependencies, and
    # the card says which step needs the person's agree and why (its effect, its source).
    proposal = page.locator(".action.proposal")
    expect(proposal).to_be_visible()
    cid = console.conversation_id()
    expect(page.locator("#dag .node")).to_have_count(3)
    expect(page.locator("#dag .edge")).to_have_count(2)
    edges = page.eval_on_selector_all(
        "#dag .edge", "es => es.map(e => [e.dataset.from, e.dataset.to])"
    )
    assert sorted(map(tuple, edges)) == [("t1", "t3"), ("t2", "t3")]
    expect(proposal.locator(".approvals li")).to_have_count(1)
    asking = proposal.locator(".approvals li[data-todo=t3]")
    expect(asking).to_contain_text("Email the pack to the board")
    expect(asking).to_contain_text("desktop")
    expect(asking.locator(".why")).to_have_text(
        "effect send: declared by the board_pack plan template"
    )
    expect(page.locator("#detail-intent")).to_contain_text("chosen by the rules")
    expect(page.locator("#detail-route")).to_contain_text("template")
    assert console.bars() == {}  # nothing has run before the agree
    expect(page.locator("#conversations [data-cid]").first).to_have_attribute(
        "data-status", "waiting"
    )

    # Approve: t1 and t2 run in parallel and finish; t3 goes to the desktop agent and waits.
    proposal.get_by_role("button", name="Approve").click()
    desktop = page.locator(".action.assign[data-todo=t3]")
    expect(desktop).to_be_visible()
    expect(desktop).to_contain_text("the desktop agent (cpa-desktop)")
    expect(page.locator("#timeline rect.bar")).to_have_count(3)
    expect(page.locator("#timeline rect.bar.open")).to_have_count(1)
    bars = console.bars()
    assert {k: v["open"] for k, v in bars.items()} == {"t1": False, "t2": False, "t3": True}
    expect(page.locator("#dag .node[data-todo=t1]")).to_have_attribute("data-status", "done")
    expect(page.locator("#dag .node[data-todo=t2]")).to_have_attribute("data-status", "done")
    expect(page.locator("#dag .node[data-todo=t3]")).to_have_attribute("data-status", "waiting")
    row = page.locator(f'#conversations [data-cid="{cid}"]')
    expect(row).to_contain_text("t3 Email the pack to the board (cpa-desktop)")
    page.evaluate("window.scrollTo(0, 0)")  # the answer form took the focus, and scrolled
    page.screenshot(path=shots / "console-waiting.png")

    # The desktop agent's answer, typed and clicked: the conversation ends done.
    desktop.locator("textarea").fill("sent to 5 board members")
    desktop.get_by_role("button", name="Report done as cpa-desktop").click()
    expect(page.locator("#detail-status")).to_have_text("done")
    expect(page.locator("#timeline rect.bar.open")).to_have_count(0)
    expect(page.locator("#timeline rect.bar")).to_have_count(3)
    expect(page.locator("#answer")).to_contain_text("sent to 5 board members")
    expect(page.locator("#actions")).to_be_hidden()
    expect(row).to_have_attribute("data-status", "done")
    page.locator(".views").screenshot(path=shots / "console-dag-timeline.png")

    # What the page sent are the right LAM messages: the person agreed to the propose, the
    # desktop agent answered the assign of t3 (in_reply_to, todo_id, output).
    messages = _messages(api, cid)
    for message in messages:
        LAMMessage.from_dict(message)
    propose = _one(messages, "propose")
    agree = _one(messages, "agree")
    assert (agree["sender"], agree["receiver"]) == ("user", "planner")
    assert agree["in_reply_to"] == propose["id"] and agree["conversation_id"] == cid
    assign = next(
        m for m in messages if m["performative"] == "assign" and m["content"]["todo"]["id"] == "t3"
    )
    done = _one(messages, "done", todo_id="t3")
    assert (done["sender"], done["receiver"]) == ("cpa-desktop", "planner")
    assert done["in_reply_to"] == assign["id"]
    assert done["content"]["output"] == "sent to 5 board members"

    # The critical path marked is the one lam.dag finds from the log's assign/done times.
    plan = Plan.model_validate(api.get(f"/v1/conversations/{cid}").json()["plan"])
    started = {
        m["content"]["todo"]["id"]: LAMMessage.from_dict(m).timestamp
        for m in messages
        if m["performative"] == "assign"
    }
    finished = {
        m["content"]["todo_id"]: LAMMessage.from_dict(m).timestamp
        for m in messages
        if m["performative"] == "done"
    }
    durations = {t: (finished[t] - started[t]).total_seconds() for t in started}
    _, path = critical_path(plan, durations)
    bars = console.bars()
    assert [t for t in ("t1", "t2", "t3") if bars[t]["critical"]] == path
    marked = page.eval_on_selector_all(
        "#dag .edge.critical", "es => es.map(e => [e.dataset.from, e.dataset.to])"
    )
    assert [tuple(e) for e in marked] == list(itertools.pairwise(path))

    # The LAM log, filtered to one performative: the three assigns.
    expect(page.locator("#log .entry")).to_have_count(len(messages))
    for box in page.locator("#log-filter input").all():
        if box.get_attribute("value") != "assign":
            box.uncheck()
    expect(page.locator("#log .entry")).to_have_count(3)
    shown = page.eval_on_selector_all("#log .entry", "es => es.map(e => e.dataset.performative)")
    assert shown == ["assign"] * 3

    # The list, filtered by status: a done conversation is not among the waiting ones.
    page.select_option("#status-filter", "waiting")
    expect(row).to_have_count(0)
    page.select_option("#status-filter", "done")
    expect(row).to_have_count(1)

    assert console.errors == []
    assert _same_origin(console.requests, console.server.url) == []


# The docs' screenshots: what the product ships ------------------------------------------------


@pytest.fixture(scope="module")
def shipped_server(
    redis7_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("console-shipped")
    env = shipped_env(redis7_url, directory)
    process = ServerProcess(env, directory / "server.log", cli=True)
    process.start()
    yield process
    process.stop()
    delete_prefix(redis7_url, env["CPA_REDIS_PREFIX"])


@pytest.mark.slow
def test_the_docs_screenshots_show_what_the_product_ships(
    browser: Browser, shipped_server: ServerProcess, tmp_path: Path
) -> None:
    shots = _screenshots(tmp_path)
    context = browser.new_context(viewport=WIDE)
    console = Console(context.new_page(), shipped_server)
    page = console.page
    try:
        console.open()
        console.send_request(SHIPPED_REQUEST)
        proposal = page.locator(".action.proposal")
        expect(proposal).to_be_visible()
        expect(page.locator("#dag .node")).to_have_count(3)
        proposal.get_by_role("button", name="Approve").click()
        desktop = page.locator(".action.assign[data-todo=t3]")
        expect(desktop).to_be_visible()
        expect(page.locator("#timeline rect.bar")).to_have_count(3)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=shots / "console-waiting.png")
        desktop.locator("textarea").fill("sent to 5 board members")
        desktop.get_by_role("button", name="Report done as cpa-desktop").click()
        expect(page.locator("#detail-status")).to_have_text("done")
        expect(page.locator("#timeline rect.bar.open")).to_have_count(0)
        page.locator(".views").screenshot(path=shots / "console-dag-timeline.png")

        # What the pictures show is the product's: its executors, the plan's titles.
        shipped = set(default_executors(Settings(), entry_points=False).names())
        lanes = page.eval_on_selector_all(
            "#timeline .lane", "ls => ls.map(l => l.dataset.executor)"
        )
        assert set(lanes) == {t["executor"] for t in SHIPPED_PLAN["todos"]} <= shipped
        titles = page.eval_on_selector_all(
            "#dag text.title",
            "ts => ts.map(t => [...t.querySelectorAll('tspan')].map(s => s.textContent).join(' '))",
        )
        assert titles == [todo["title"] for todo in SHIPPED_PLAN["todos"]]  # whole, once
        shown = page.locator(".views").inner_text()
        assert "pause" not in shown and "board_pack" not in shown
        # The axis's labels have room: none runs into the next.
        assert _tick_gaps(page) and min(_tick_gaps(page)) >= MIN_TICK_GAP, _tick_gaps(page)
        assert console.errors == []
    finally:
        context.close()


# Errors ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_an_api_error_is_shown_as_the_api_words_it(console: Console, api: httpx.Client) -> None:
    page = console.page
    page.goto(f"{console.server.url}/ui")

    # A wrong key: the dialog stays, with the API's words for it.
    wrong = httpx.get(f"{console.server.url}/v1/capabilities", headers=auth("not-a-key"))
    assert wrong.status_code == 401
    page.fill("#key-input", "not-a-key")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#key-error")).to_have_text(wrong.json()["error"]["message"])
    expect(page.locator("#key-dialog")).to_be_visible()
    page.fill("#key-input", ACME_KEY)
    page.keyboard.press("Enter")
    expect(page.locator("#key-dialog")).to_be_hidden()

    # A new request in a conversation that still waits: 409, shown as worded, and nothing
    # lost (the conversation still waits for its approval).
    console.send_request(BOARD_PACK)
    expect(page.locator(".action.proposal")).to_be_visible()
    cid = console.conversation_id()
    refused = api.post(
        "/v1/lam", json={**request_message("Take a note: milk"), "conversation_id": cid}
    )
    assert refused.status_code == 409
    console.send_request("Take a note: milk", conversation_id=cid)
    expect(page.locator("#alert")).to_be_visible()
    expect(page.locator("#alert-text")).to_have_text(refused.json()["error"]["message"])
    assert page.input_value("#request-text") == "Take a note: milk"  # kept for a retry
    assert api.get(f"/v1/conversations/{cid}").json()["status"] == "waiting"
    expect(page.locator(".action.proposal")).to_be_visible()

    # Escape dismisses the message.
    page.keyboard.press("Escape")
    expect(page.locator("#alert")).to_be_hidden()
    assert console.errors == []


# Reading at a glance -----------------------------------------------------------------------------

WIDE_PLAN: dict[str, Any] = {
    "goal": "Eight things at once",
    "todos": [
        {
            "id": f"t{n}",
            "title": f"Send the invitation to the guest number {n} of the board",
            "executor": "desktop",
            "depends_on": [],
            "status": "pending",
            "requires_approval": n == 1,
        }
        for n in range(1, 9)
    ],
}


SHORT_TITLES = ["Email the pack to the board today", "Draft the agenda", "Write the cover note"]
MIN_TICK_GAP = 12  # pixels between one axis label and the next: they read apart


@pytest.mark.slow
def test_plans_titles_and_timelines_read_at_a_glance(console: Console, api: httpx.Client) -> None:
    console.open()
    page = console.page
    # The console's own modules, drawing an eight-wide plan into the DAG's card.
    drawn = page.evaluate(
        """async (plan) => {
            const { renderDag, fitLabels, todoStates } = await import('/ui/plan.js');
            const box = document.getElementById('dag');
            box.closest('[hidden]')?.removeAttribute('hidden');
            const svg = renderDag(plan, todoStates(plan, []), { maxWidth: box.clientWidth });
            box.replaceChildren(svg);
            fitLabels(box);
            const first = box.querySelector('[data-todo="t1"] text.title');
            return {
                room: box.clientWidth,
                width: Number(svg.getAttribute('width')),
                rows: new Set([...box.querySelectorAll('[data-todo]')]
                    .map((g) => g.getAttribute('transform'))
                    .map((t) => t.split(',')[1])).size,
                lines: [...first.querySelectorAll('tspan')].map((t) => t.textContent),
                titles: [...box.querySelectorAll('text.title')].map((t) =>
                    [...t.querySelectorAll('tspan')].map((s) => s.textContent).join(' ')),
            };
        }""",
        WIDE_PLAN,
    )
    # Eight ToDos side by side do not fit: they go onto several rows, none sideways.
    assert drawn["width"] <= drawn["room"] and drawn["rows"] > 1, drawn
    # A title wraps onto two lines before it is cut.
    assert len(drawn["lines"]) == 2, drawn
    assert drawn["lines"][0].startswith("Send the invitation"), drawn
    # Wrapped, each title reads as written: every word once, in order (cut only at the end).
    for shown, todo in zip(drawn["titles"], WIDE_PLAN["todos"], strict=True):
        assert str(todo["title"]).startswith(shown.removesuffix("…")), (shown, todo)
    short = page.evaluate(
        """async (titles) => {
            const { renderDag, fitLabels, todoStates } = await import('/ui/plan.js');
            const plan = { goal: 'Short titles', todos: titles.map((title, i) => (
                { id: `t${i + 1}`, title, executor: 'desktop', depends_on: [] })) };
            const box = document.getElementById('dag');
            box.closest('[hidden]')?.removeAttribute('hidden');  // measured: on the page
            box.replaceChildren(renderDag(plan, todoStates(plan, []), { maxWidth: 2000 }));
            fitLabels(box);
            return [...box.querySelectorAll('text.title')].map((t) =>
                [...t.querySelectorAll('tspan')].map((s) => s.textContent));
        }""",
        SHORT_TITLES,
    )
    # On two lines, whole: the second line holds the rest, each word once.
    assert [" ".join(lines) for lines in short] == SHORT_TITLES, short
    assert any(len(lines) == 2 for lines in short), short
    # An axis has at least two ticks, whatever the span, and their labels do not overlap in
    # the narrowest card (fewer ticks there).
    axes = page.evaluate(
        """async (spans) => {
            const { renderTimeline } = await import('/ui/timeline.js');
            const box = document.getElementById('timeline');
            box.closest('[hidden]')?.removeAttribute('hidden');
            const todo = (id) => ({ id, title: 'A step', executor: 'template' });
            const axes = {};
            for (const span of spans) {
                const rows = [
                    { todo: todo('t1'), status: 'done', start: 0, end: span / 20, open: false },
                    { todo: todo('t2'), status: 'done', start: span / 10, end: span, open: false },
                ];
                const plan = { todos: rows.map((r) => r.todo) };
                box.replaceChildren(renderTimeline(plan, rows, [], 420));
                const labels = [...box.querySelectorAll('text.tick-label')];
                const boxes = labels.map((l) => l.getBBox());
                axes[span] = {
                    labels: labels.map((l) => l.textContent),
                    gaps: boxes.slice(1).map((b, i) => b.x - (boxes[i].x + boxes[i].width)),
                };
            }
            return axes;
        }""",
        [0.0004, 0.003, 0.045, 0.15, 0.85, 7, 95, 5000],
    )
    for span, axis in axes.items():
        assert len(axis["labels"]) >= 2 and min(axis["gaps"]) >= MIN_TICK_GAP, (span, axis)
    # A timeline over milliseconds says milliseconds.
    ticks = page.evaluate(
        """async () => {
            const { formatSeconds } = await import('/ui/timeline.js');
            return [0.0004, 0.002, 0.05, 0.5, 2.5].map(formatSeconds);
        }"""
    )
    assert ticks == ["0.4 ms", "2 ms", "50 ms", "500 ms", "2.5 s"]

    # A refused plan is "refused", in the list and at the top, not a green "done".
    console.send_request(BOARD_PACK)
    expect(page.locator(".action.proposal")).to_be_visible()
    cid = console.conversation_id()
    propose = api.get(f"/v1/conversations/{cid}/inbox", params={"receiver": "user"}).json()[0]
    assert api.post("/v1/lam", json=refuse(propose, "not today")).status_code == 202
    expect(page.locator("#detail-status")).to_have_text("refused")
    row = page.locator(f'#conversations [data-cid="{cid}"]')
    expect(row.locator(".badge")).to_have_text("refused")
    # Its ToDos: skipped, as the command line shows them.
    expect(page.locator('#dag [data-todo="t3"]')).to_have_attribute("data-status", "skipped")
    assert console.errors == []


# This origin only ------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_console_talks_to_its_own_origin_only(console: Console) -> None:
    for path in ("/ui/", "/ui/app.js", "/ui/app.css", "/ui/plan.js", "/ui/icon.svg"):
        response = httpx.get(f"{console.server.url}{path}")
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "connect-src 'self'" in policy
        assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
        assert response.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(f"{console.server.url}/ui/../server.py").status_code == 404
    assert httpx.get(f"{console.server.url}/ui/overview.py").status_code == 404

    console.open()
    page = console.page
    expect(page.locator("#session-note")).to_have_text("API key kept for this tab.")
    # The page's policy stops a request to another origin before it leaves the browser.
    blocked = page.evaluate(
        """async () => {
            const seen = [];
            document.addEventListener(
                'securitypolicyviolation', e => seen.push(e.violatedDirective));
            let outcome = 'fetched';
            try { await fetch('http://127.0.0.2:9/'); } catch (e) { outcome = 'blocked'; }
            await new Promise(resolve => setTimeout(resolve, 50));
            return [outcome, seen];
        }"""
    )
    assert blocked == ["blocked", ["connect-src"]]
    assert _same_origin(console.requests, console.server.url) == []


@pytest.mark.slow
def test_swagger_ui_works_offline(browser: Browser, server: ServerProcess) -> None:
    """/docs comes from the package: nothing is fetched from elsewhere (a request to another
    origin fails here, as it does without a network), and it shows the API's operations
    from its OpenAPI 3.1 document. /redoc is not served (ReDoc fetches its logo online)."""
    context = browser.new_context(viewport=WIDE)
    requests: list[str] = []
    context.on("request", lambda request: requests.append(request.url))
    context.route(
        "**/*",
        lambda route: (
            route.abort() if _same_origin([route.request.url], server.url) else route.continue_()
        ),
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{server.url}/docs")
        expect(page.locator(".opblock-summary-path:has-text('/v1/lam')").first).to_be_visible()
    finally:
        context.close()
    assert _same_origin(requests, server.url) == []
    assert errors == []
    assert httpx.get(f"{server.url}/redoc").status_code == 404


# A narrow window, the keyboard alone -------------------------------------------------------------


# A visible focus: an outline, or (a ToDo of the DAG, an SVG group) its box drawn thicker.
_SHOWS_FOCUS = """() => {
    const focused = document.activeElement;
    const style = getComputedStyle(focused);
    if (style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0) return true;
    const box = focused.querySelector('.box');
    return box !== null && parseFloat(getComputedStyle(box).strokeWidth) >= 4;
}"""


def _tab_to(page: Page, selector: str, most: int = 80) -> None:
    """Press Tab until the element matching `selector` has the focus (focus order)."""
    for _ in range(most):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            assert page.evaluate(_SHOWS_FOCUS), f"{selector} has the focus but does not show it"
            return
    raise AssertionError(f"{selector} is not reached with Tab")


@pytest.mark.slow
def test_a_narrow_window_works_with_the_keyboard_alone(
    browser: Browser, server: ServerProcess, api: httpx.Client
) -> None:
    context = browser.new_context(viewport=NARROW)
    console = Console(context.new_page(), server)
    page = console.page
    try:
        page.goto(f"{server.url}/ui")
        expect(page.locator("#key-input")).to_be_focused()
        page.keyboard.type(ACME_KEY)
        page.keyboard.press("Enter")
        expect(page.locator("#key-dialog")).to_be_hidden()

        # One column: the list above the conversation; nothing wider than the window.
        page.locator("#request-text").focus()
        page.keyboard.type(BOARD_PACK)
        page.keyboard.press("Enter")
        expect(page.locator(".action.proposal")).to_be_visible()
        refused_cid = console.conversation_id()
        listed = page.locator("#list-pane").bounding_box()
        detail = page.locator("#detail").bounding_box()
        assert listed is not None and detail is not None
        assert detail["y"] >= listed["y"] + listed["height"]
        assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]

        # Refuse with a reason: Tab to "Refuse…", Enter, type, Enter.
        _tab_to(page, ".action.proposal [data-act=refuse]")
        page.keyboard.press("Enter")
        expect(page.locator(".refuse-form input")).to_be_focused()
        page.keyboard.press("Escape")  # changed my mind, then again
        expect(page.locator(".action.proposal [data-act=refuse]")).to_be_focused()
        page.keyboard.press("Enter")
        page.keyboard.type("not before the audit")
        page.keyboard.press("Enter")
        expect(page.locator("#answer")).to_contain_text("not before the audit")
        refuse = _one(_messages(api, refused_cid), "refuse")
        assert refuse["sender"] == "user" and refuse["content"]["reason"] == "not before the audit"

        # Approve by keyboard, then report the desktop ToDo failed, with a reason.
        page.locator("#request-text").focus()
        page.keyboard.type(BOARD_PACK)
        page.keyboard.press("Enter")
        expect(page.locator(".action.proposal")).to_be_visible()
        cid = console.conversation_id()
        assert cid != refused_cid
        _tab_to(page, ".action.proposal [data-act=approve]")
        page.keyboard.press("Enter")
        expect(page.locator(".action.assign[data-todo=t3]")).to_be_visible()
        _tab_to(page, ".action.assign input[name=message]")
        page.keyboard.type("the mail server is down")
        page.keyboard.press("Enter")
        expect(page.locator("#detail-status")).to_have_text("failed")
        failure = _one(_messages(api, cid), "failure", todo_id="t3")
        assert failure["sender"] == "cpa-desktop"
        assert failure["content"]["error"] == {
            "code": "failed",
            "message": "the mail server is down",
        }
        expect(page.locator("#dag .node[data-todo=t3]")).to_have_attribute("data-status", "failed")
        # A ToDo of the DAG is reached with Tab too; Enter shows its details.
        _tab_to(page, "#dag .node[data-todo=t3]")
        page.keyboard.press("Enter")
        expect(page.locator("#todo-detail")).to_contain_text("failed: the mail server is down")
        assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
        assert console.errors == []
    finally:
        context.close()


# Local mode ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_without_keys_no_key_is_asked_and_a_human_todo_is_answered_as_the_user(
    browser: Browser, open_server: ServerProcess
) -> None:
    context = browser.new_context(viewport=WIDE)
    console = Console(context.new_page(), open_server)
    page = console.page
    try:
        console.open(key=None)
        expect(page.locator("#session-note")).to_have_text("Local mode: no API key needed.")
        expect(page.locator("#key-dialog")).to_be_hidden()

        console.send_request("Plan my trip to Lisbon")
        question = page.locator(".action.assign[data-todo=t1]")
        expect(question).to_contain_text("Waiting for you")
        question.locator("textarea").fill('"12-15 May"')
        question.get_by_role("button", name="Report done as user").click()
        expect(page.locator("#detail-status")).to_have_text("done")
        expect(page.locator("#answer")).to_contain_text("Itinerary for 12-15 May")

        cid = console.conversation_id()
        with httpx.Client(base_url=open_server.url, timeout=30) as client:
            messages = _messages(client, cid)
        done = _one(messages, "done", todo_id="t1")
        assert done["sender"] == "user" and done["content"]["output"] == "12-15 May"
        assert console.errors == []
    finally:
        context.close()


# Fast: what the overview computes, and the files ------------------------------------------


def _plan(*todos: dict[str, Any]) -> Plan:
    return Plan.model_validate({"goal": "g", "todos": list(todos)})


@pytest.mark.slow
def test_the_history_view_finds_and_shows_a_finished_conversation(
    console: Console, api: httpx.Client
) -> None:
    # A conversation run to its end over the API: the plan approved, the desktop step done.
    opened = api.post("/v1/lam", json=request_message(BOARD_PACK))
    assert opened.status_code == 202, opened.text
    cid = opened.json()["conversation_id"]
    record: dict[str, Any] = {}
    for _ in range(600):
        record = api.get(f"/v1/history/{cid}").json()
        if record.get("status") == "done" and record.get("answer"):
            break
        for message in api.get(f"/v1/conversations/{cid}/inbox").json():
            if message["performative"] == "propose":
                answer = agree_to(message)
            else:
                answer = done_for(message, "board pack filed")
            assert api.post("/v1/lam", json=answer).status_code == 202
        time.sleep(0.1)
    assert record.get("status") == "done", record

    page = console.page
    page.goto(f"{console.server.url}/ui/history.html")
    expect(page.locator("#key-dialog")).to_be_visible()
    page.fill("#key-input", ACME_KEY)
    page.click("#key-form button[type=submit]")
    page.select_option("#f-status", "done")
    page.fill("#f-text", "board pack")
    page.click("#history-filters button[type=submit]")
    row = page.locator(f"#history-list li[data-id='{cid}'] a")
    expect(row).to_be_visible()
    row.click()
    expect(page.locator("#record-id")).to_have_text(cid)
    expect(page.locator("#record-status")).to_have_text("done")
    expect(page.locator("#record-todos tbody tr")).to_have_count(len(record["todos"]))
    expect(page.locator("#record-approvals li")).to_contain_text("agree by user")
    expect(page.locator("#record-log li")).to_have_count(len(record["messages"]))
    expect(page.locator("#record-answer")).to_have_text(record["answer"])

    page.fill("#f-text", "nothing like this was ever asked")
    page.click("#history-filters button[type=submit]")
    expect(page.locator("#history-empty")).to_be_visible()
    assert console.errors == []
    assert _same_origin(console.requests, console.server.url) == []


def test_effects_say_what_each_step_does_and_who_said_so() -> None:
    executors = default_executors(Settings(), entry_points=False)
    plan = _plan(
        {"id": "a", "title": "Look it up", "executor": "http", "inputs": {"url": "u"}},
        {"id": "b", "title": "Post it", "executor": "http", "inputs": {"method": "POST"}},
        {"id": "c", "title": "Write it", "executor": "llm", "depends_on": ["a"]},
        {"id": "d", "title": "Send it", "executor": "desktop", "requires_approval": True},
        {"id": "e", "title": "Book it", "executor": "desktop"},
        {"id": "f", "title": "Read it", "executor": "desktop"},
        {"id": "g", "title": "Find", "executor": "desktop", "tool": {"name": "find_files"}},
        {"id": "h", "title": "Gone", "executor": "desktop", "tool": {"name": "gone"}},
    )
    # `e` is a template's desktop step that books (declared for this very proposal); nobody
    # declared `f`; `g` runs a tool of the catalogue, `h` one that left it.
    declared: dict[str, Any] = {"e": "book"}
    find = Tool(name="find_files", effect="read")
    catalogue = Catalogue.merge([], tool_entries([find], "offer:cpa-desktop", "desktop"))
    rows = {r.todo_id: r for r in plan_effects(plan, declared, executors, catalogue)}
    assert list(rows) == list("abcdefgh")
    got = {k: (r.effect, r.declared_by, r.requires_approval) for k, r in rows.items()}
    assert got == {
        "a": ("read", "executor", False),
        "b": ("change", "executor", False),
        "c": ("none", "executor", False),
        "d": ("change", "assumed", True),
        "e": ("book", "template", False),
        "f": ("change", "assumed", False),
        "g": ("read", "tool", False),
        "h": ("change", "assumed", False),
    }
    assert rows["g"].tool == "find_files" and rows["a"].tool is None


def test_waiting_for_sums_up_the_inbox() -> None:
    planner = MessageFactory("planner", "c1")
    propose = planner.propose("user", Plan(goal="Book it"), message_id="p1").to_dict()
    todo = ToDo(id="t3", title="Send it", executor="desktop")
    assign = planner.assign("cpa-desktop", todo, {}, message_id="a1").to_dict()
    rows = [r.model_dump() for r in waiting_for([propose, assign])]
    assert rows == [
        {
            "message_id": "p1",
            "performative": "propose",
            "receiver": "user",
            "todo_id": None,
            "title": "Book it",
        },
        {
            "message_id": "a1",
            "performative": "assign",
            "receiver": "cpa-desktop",
            "todo_id": "t3",
            "title": "Send it",
        },
    ]


def test_every_console_file_is_served_and_packaged() -> None:
    static = Path(console_package.__file__).parent / "static"
    on_disk = {p.name for p in static.iterdir() if p.is_file()}
    assert on_disk == set(console_package.ASSETS)
    # index.html loads only files of the package, by relative URL.
    index = (static / "index.html").read_text()
    for attribute in ("src", "href"):
        for url in re.findall(rf'{attribute}="([^"]+)"', index):
            assert url.startswith("#") or url in console_package.ASSETS, url
    # ...and each module imports only its siblings.
    for script in static.glob("*.js"):
        for imported in re.findall(r'from "([^"]+)"', script.read_text()):
            assert imported.startswith("./") and imported[2:] in console_package.ASSETS
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "static/*" in pyproject["tool"]["setuptools"]["package-data"]["api.console"]
