"""`--server URL`: the same conversations through a running `cpa-planner serve` (docs/http.md).

A request is POSTed as a LAM `request`; the messages arrive over the conversation's SSE
stream (read on a thread, so the terminal can be asked meanwhile); approvals and `human`
ToDos are answered here with POST /v1/lam; `desktop` ToDos wait for the real desktop agent.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from httpx_sse import connect_sse

from cli.exits import CONFIG, FAILED, NOT_FOUND, CLIError
from cli.program import program
from cli.view import LamDict
from graph.redaction import redact_url
from lam import LAMMessage, MessageFactory, Performative
from lam.log import performative_of

_CLOSED = object()
POLL_S = 1.0  # how often a quiet stream is checked for a question waiting for this terminal
# The server's progress events (api/events.py): passing news for the view, not LAM messages.
PROGRESS_EVENTS = ("llm", "token", "plan_written")
# Messages after which the conversation's state is looked at again (it may wait, or be over).
_NEWS_OF_A_STEP = (Performative.PROPOSE, Performative.ASSIGN, Performative.INFORM)


@dataclass(frozen=True)
class _Progress:
    news: dict[str, Any]


class RemoteBackend:
    local = False

    def __init__(self, url: str, api_key: str | None) -> None:
        self.url = url.rstrip("/")
        # What messages show: the URL without any userinfo or secret query values in it.
        self.shown = redact_url(self.url)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            base_url=self.url, headers=headers, timeout=httpx.Timeout(30.0, connect=5.0)
        )
        self._queue: queue.Queue[Any] = queue.Queue()
        self._reader: threading.Thread | None = None
        self._last_id: str | None = None
        self.me = "user"  # the sender of this terminal's messages (`open` asks the server)

    # HTTP ---------------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CLIError(f"cannot reach the server at {self.shown}: {exc}", CONFIG) from None
        if response.status_code in (401, 403):
            raise CLIError(
                f"the server at {self.shown} refused the API key (give it with --api-key or "
                "CPA_API_KEY)",
                CONFIG,
            )
        if response.status_code == 404:
            raise CLIError(f"not found at {self.shown}{path}: {_detail(response)}", NOT_FOUND)
        if response.status_code >= 400:
            raise CLIError(
                f"the server answered {response.status_code} to {method} {path}: "
                f"{_detail(response)}",
                FAILED,
            )
        return response.json() if response.content else None

    def open(self) -> None:
        self._call("GET", "/v1/capabilities")  # fails fast on a wrong URL or key
        # Who the key speaks as: a person's key (`user:anna`) sends as that person.
        me = self.client.get("/v1/principal")
        if me.status_code == 200 and (me.json() or {}).get("principal"):
            self.me = str(me.json()["principal"])

    def close(self) -> None:
        self.client.close()

    def tools(self, request: str | None) -> dict[str, Any]:
        """The server's catalogue for this key's tenant (`GET /v1/tools`)."""
        params = {"request": request} if request is not None else {}
        result: dict[str, Any] = self._call("GET", "/v1/tools", params=params)
        return result

    def start(self, request: str) -> tuple[str, Any]:
        message = MessageFactory(self.me).request(request)
        reply = self._call("POST", "/v1/lam", json=message.to_dict())
        return str(reply["conversation_id"]), None

    def state(self, cid: str) -> tuple[dict[str, Any], list[LamDict]]:
        state = self._call("GET", f"/v1/conversations/{cid}")
        waiting: list[LamDict] = []
        if state.get("status") == "waiting":
            for receiver in dict.fromkeys((self.me, "user", "cpa-desktop")):
                waiting += self._call(
                    "GET", f"/v1/conversations/{cid}/inbox", params={"receiver": receiver}
                )
        return state, waiting

    @staticmethod
    def public(state: dict[str, Any]) -> dict[str, Any]:
        return state

    def answer(self, cid: str, answers: list[LAMMessage]) -> Any:
        for answer in answers:
            self._call("POST", "/v1/lam", json=answer.to_dict())
        return None

    def continue_payload(self) -> Any:
        return None

    def resume_hint(self, cid: str) -> str:
        return f"{program()} resume {cid} --server {self.shown}"

    def inbox_url(self, cid: str, receiver: str) -> str | None:
        """Where `receiver` (the desktop agent) finds what waits for it."""
        return f"{self.shown}/v1/conversations/{cid}/inbox?receiver={receiver}"

    # Following the conversation -----------------------------------------------------------

    def _read_events(self, cid: str) -> None:
        headers = {"Last-Event-ID": self._last_id} if self._last_id else {}
        try:
            with connect_sse(
                self.client,
                "GET",
                f"/v1/conversations/{cid}/events",
                headers=headers,
                params={"progress": "true"},  # which step waits on a model, the answer's pieces
                timeout=httpx.Timeout(None, connect=5.0),
            ) as source:
                if source.response.status_code >= 400:
                    self._queue.put(CLIError(f"events: {source.response.status_code}", FAILED))
                    return
                for event in source.iter_sse():
                    try:
                        data = event.json()
                    except ValueError:
                        continue
                    if event.event in PROGRESS_EVENTS:
                        self._queue.put(_Progress({event.event: data}))
                    else:
                        self._queue.put(data)
        except httpx.HTTPError:
            pass  # the stream broke: the main thread checks the state and reconnects
        finally:
            self._queue.put(_CLOSED)

    def _follow(self, cid: str) -> None:
        if self._reader is None or not self._reader.is_alive():
            self._reader = threading.Thread(target=self._read_events, args=(cid,), daemon=True)
            self._reader.start()

    def advance(
        self,
        cid: str,
        payload: Any,
        on_message: Callable[[LamDict], None],
        on_state: Callable[[dict[str, Any], list[LamDict]], None] | None = None,
        *,
        wait_for_others: bool = True,
        on_activity: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """Show messages until the conversation ends or asks this terminal something.

        `on_activity` gets the server's progress news (a step waiting on a model, the
        answer's pieces), asked for with `?progress=true`.

        With `wait_for_others` false (no terminal here), also when it waits for anyone else
        (the desktop agent): the command then says where the answer goes, and exits.
        """
        self._follow(cid)
        while True:
            check = False
            item: Any = None
            try:
                item = self._queue.get(timeout=POLL_S)
            except queue.Empty:
                check = True
            else:
                if isinstance(item, CLIError):
                    raise item
                if isinstance(item, _Progress):
                    if on_activity is not None:
                        on_activity(item.news)
                    continue
                if item is _CLOSED:
                    check = True
                else:
                    self._last_id = str(item.get("id"))
                    on_message(item)
                    check = performative_of(item) in _NEWS_OF_A_STEP
            if not check:
                continue
            state, waiting = self.state(cid)
            if on_state is not None:
                on_state(state, waiting)  # e.g. "waiting for the desktop agent"
            if state.get("status") in ("done", "failed"):
                return
            if any(
                performative_of(m) is Performative.PROPOSE or m.get("receiver") == self.me
                for m in waiting
            ):
                return
            if waiting and not wait_for_others:
                return
            if item is _CLOSED:
                self._follow(cid)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("detail", "message", "error"):
            if key in body:
                value = body[key]
                return value if isinstance(value, str) else json.dumps(value)[:200]
    return json.dumps(body)[:200]
