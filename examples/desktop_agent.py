"""A desktop agent over HTTP: the inbox loop a CPA Desktop AI runs against `cpa-planner serve`.

    .venv/bin/python examples/desktop_agent.py [--server URL] [--api-key KEY]
                                               [--conversation ID ...]

It follows the Server-Sent Events of one conversation (`--conversation`, repeatable; it
exits once they are all over) or of every conversation of its tenant (`GET
/v1/conversations`, looked at again every second; it runs until Ctrl-C). The stream only
wakes it up: what it works on is the inbox (`GET .../inbox?receiver=cpa-desktop`), the
`assign` messages that still wait, so a message seen twice (a replay, a reconnect) is
never done twice. Each ToDo goes to a handler, and its outcome back as a `done` (the
handler's return value is the output) or a `failure` (the handler raised `TodoFailed`),
with `in_reply_to` the assign's id and `content.todo_id` its ToDo's id.

The default handler prints the ToDo and answers `done`; a real agent passes its own:

    agent = DesktopAgent(client, handler=operate_the_apps)
    await agent.run(["<conversation id>"])

Needs `httpx`, `httpx-sse` and the `lam` package of this repository (it stands alone: no
LangGraph): the project's virtualenv has them (`make setup`), hence `.venv/bin/python`.
Server and key default to $CPA_SERVER_URL and $CPA_API_KEY, as for the CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

import httpx
from httpx_sse import aconnect_sse

from lam import LAMMessage, MessageFactory, ToDo

DESKTOP = "cpa-desktop"
FINISHED = ("done", "failed")
LIST_EVERY_S = 1.0  # how often the tenant's conversations are listed (no stream for those)


class TodoFailed(Exception):
    """Raised by a handler: the ToDo could not be done. Becomes a `failure` message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Handler = Callable[[ToDo, dict[str, Any]], Any]
"""Does one ToDo (its `inputs` include the outputs of the ToDos it depends on) and returns
its output (any JSON), or raises TodoFailed. Runs in a worker thread: it may block."""


def print_and_say_done(todo: ToDo, inputs: dict[str, Any]) -> Any:
    """The default handler: shows the ToDo; a real agent operates the apps here and returns
    what came of it. This one has nothing to report (the answer then says just "done")."""
    print(f"[{todo.id}] {todo.title}: {todo.description}", flush=True)
    return None


class DesktopAgent:
    """Answers the `assign` messages for `cpa-desktop` of the conversations it follows."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        handler: Handler = print_and_say_done,
        *,
        name: str = DESKTOP,
    ) -> None:
        self.client = client
        self.handler = handler
        self.name = name
        self.answered: set[str] = set()  # assign ids this agent has answered

    async def run(self, conversation_ids: Iterable[str] | None = None) -> None:
        """Follow these conversations until they are over, or (None) all, until cancelled."""
        if conversation_ids is not None:
            await asyncio.gather(*(self.follow(cid) for cid in conversation_ids))
            return
        following: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                listed = await self._get("/v1/conversations")
                for row in listed["conversations"]:
                    cid = row["conversation_id"]
                    if cid not in following:
                        following[cid] = asyncio.create_task(self.follow(cid))
                await asyncio.sleep(LIST_EVERY_S)
        finally:
            for task in following.values():
                task.cancel()

    async def follow(self, cid: str) -> None:
        """Work the inbox whenever the stream shows an `assign` for us; reconnect until over."""
        last_event_id: str | None = None
        await self.work_inbox(cid)  # something may wait already
        while (await self._get(f"/v1/conversations/{cid}"))["status"] not in FINISHED:
            headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
            with contextlib.suppress(httpx.TransportError):  # dropped: reconnect after it
                async with aconnect_sse(
                    self.client, "GET", f"/v1/conversations/{cid}/events", headers=headers
                ) as source:
                    source.response.raise_for_status()
                    async for event in source.aiter_sse():
                        if not event.data:
                            continue  # the stream's `retry:` advice
                        last_event_id = event.id or last_event_id
                        message = event.json()
                        if message["performative"] == "assign" and message["receiver"] == self.name:
                            await self.work_inbox(cid)

    async def work_inbox(self, cid: str) -> None:
        """Do every ToDo that waits for us in this conversation, and answer each."""
        inbox = await self._get(f"/v1/conversations/{cid}/inbox", params={"receiver": self.name})
        for raw in inbox:
            assign = LAMMessage.from_dict(raw)
            if assign.id in self.answered:
                continue  # answered, not applied yet: the inbox hides it soon
            answer = await self.do(assign)
            response = await self.client.post("/v1/lam", json=answer.to_dict())
            if response.status_code == 409:
                print(f"[{assign.todo().id}] answered elsewhere already", file=sys.stderr)
            else:
                response.raise_for_status()
            self.answered.add(assign.id)

    async def do(self, assign: LAMMessage) -> LAMMessage:
        """The handler's outcome for one `assign`, as the LAM message that answers it."""
        todo = assign.todo()
        me = MessageFactory(self.name, assign.conversation_id)
        try:
            output = await asyncio.to_thread(self.handler, todo, assign.content["inputs"])
        except TodoFailed as failed:
            return me.failure(
                assign.sender,
                failed.code,
                failed.message,
                todo_id=todo.id,
                in_reply_to=assign.id,
            )
        return me.done(assign, output)  # todo_id and in_reply_to from the assign

    async def _get(self, path: str, **kwargs: Any) -> Any:
        response = await self.client.get(path, **kwargs)
        response.raise_for_status()
        return response.json()


def client_for(server: str, api_key: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    # No read timeout: an SSE stream is quiet between messages (keep-alive comments aside).
    return httpx.AsyncClient(base_url=server, headers=headers, timeout=httpx.Timeout(30, read=None))


async def main_async(args: argparse.Namespace) -> None:
    async with client_for(args.server, args.api_key) as client:
        await DesktopAgent(client).run(args.conversation)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server", default=os.environ.get("CPA_SERVER_URL", "http://127.0.0.1:8000")
    )
    parser.add_argument("--api-key", default=os.environ.get("CPA_API_KEY"))
    parser.add_argument(
        "--conversation",
        action="append",
        metavar="ID",
        help="follow this conversation until it is over (repeatable); default: all of them",
    )
    args = parser.parse_args(argv)
    try:
        asyncio.run(main_async(args))
    except KeyboardInterrupt:
        return 130
    except httpx.HTTPError as exc:
        print(f"desktop_agent: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
