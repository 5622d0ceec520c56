"""A desktop agent over HTTP: the inbox loop a CPA Desktop AI runs against `cpa-planner serve`.

    .venv/bin/python examples/desktop_agent.py [--server URL] [--api-key KEY]
                                               [--conversation ID ...] [--files DIR]

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

Tools: on start, the agent tells the planner what it can do, with an `offer` of its actions
(`ACTIONS`: each a name, a description, the JSON Schema of its arguments, what it returns
and its effect), so the planner plans steps that name one of them with checked arguments.
An `assign` for such a step says which tool to run (`content.tool`: its name and arguments,
references to earlier steps already replaced by their outputs); the agent checks the
arguments against its own schema once more and runs the tool's function, or answers
`failure` (`unknown_tool`, `bad_arguments`). With `--files DIR`, the file tools work on the
files under DIR for real (`find_files` searches it, `delete_files` deletes there and
nowhere else); the other tools, and the file tools without `--files`, only print what they
would do.

Needs `httpx`, `httpx-sse`, `jsonschema` and the `lam` package of this repository (it stands
alone: no LangGraph): the project's virtualenv has them (`make setup`), hence
`.venv/bin/python`. Server and key default to $CPA_SERVER_URL and $CPA_API_KEY, as for the
CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from jsonschema import Draft202012Validator

from lam import LAMMessage, MessageFactory, ToDo, Tool

DESKTOP = "cpa-desktop"
FINISHED = ("done", "failed")
LIST_EVERY_S = 1.0  # how often the tenant's conversations are listed (no stream for those)


def _text(description: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "description": description}


def _texts(description: str) -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}, "minItems": 1, "description": description}


def _action(
    name: str,
    description: str,
    effect: str,
    returns: str,
    properties: dict[str, Any],
    required: Sequence[str],
) -> Tool:
    schema = {"type": "object", "properties": properties, "required": list(required)}
    return Tool(
        name=name, description=description, input_schema=schema, returns=returns, effect=effect
    )


#: What this agent offers the planner: the actions of a desktop assistant.
ACTIONS: list[Tool] = [
    _action(
        "find_files",
        "Find files and folders by name or content.",
        "read",
        "the paths of the files found, a list",
        {"query": _text("words in the file name or content"), "folder": _text("where to look")},
        ["query"],
    ),
    _action(
        "delete_files",
        "Delete files for good, shredding them so they cannot be recovered.",
        "delete",
        "the paths deleted",
        {"paths": _texts("the files to delete")},
        ["paths"],
    ),
    _action(
        "move_files",
        "Move files into another folder.",
        "write",
        "the new paths",
        {"paths": _texts("the files to move"), "folder": _text("the folder to move them to")},
        ["paths", "folder"],
    ),
    _action(
        "list_events",
        "List the calendar's events and free times on a day.",
        "read",
        "the events of the day",
        {"day": _text("the day, e.g. 2026-05-04 or tomorrow"), "with": _text("a person")},
        ["day"],
    ),
    _action(
        "create_event",
        "Create a calendar event and invite people to it.",
        "book",
        "the event created",
        {
            "title": _text("what the event is"),
            "start": _text("when it starts, e.g. 2026-05-04 10:00"),
            "minutes": {"type": "integer", "minimum": 5, "maximum": 1440},
            "attendees": _texts("the people to invite (names or email addresses)"),
        },
        ["title", "start"],
    ),
    _action(
        "send_email",
        "Send an email.",
        "send",
        "the message sent",
        {
            "to": _texts("the recipients (names or email addresses)"),
            "subject": _text("the subject line"),
            "body": _text("the text of the email"),
        },
        ["to", "subject", "body"],
    ),
    _action(
        "search_email",
        "Search the mailbox.",
        "read",
        "the matching emails: sender, subject, date",
        {"query": _text("words, a sender or a subject")},
        ["query"],
    ),
    _action(
        "add_reminder",
        "Add a reminder to the reminders app.",
        "write",
        "the reminder added",
        {"text": _text("what to be reminded of"), "when": _text("when, e.g. tomorrow 9:00")},
        ["text"],
    ),
]


class TodoFailed(Exception):
    """Raised by a handler: the ToDo could not be done. Becomes a `failure` message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Handler = Callable[[ToDo, dict[str, Any]], Any]
"""Does one ToDo (its `inputs` include the outputs of the ToDos it depends on) and returns
its output (any JSON), or raises TodoFailed. Runs in a worker thread: it may block."""

ToolFunction = Callable[[dict[str, Any]], Any]
"""Runs one tool with its (checked) arguments and returns its output (any JSON), or raises
TodoFailed. Runs in a worker thread: it may block."""


def print_and_say_done(todo: ToDo, inputs: dict[str, Any]) -> Any:
    """The default handler: shows the ToDo; a real agent operates the apps here and returns
    what came of it. This one has nothing to report (the answer then says just "done")."""
    print(f"[{todo.id}] {todo.title}: {todo.description}", flush=True)
    return None


class DesktopTools:
    """The functions behind `ACTIONS`. The file tools work on the files under `files` when
    it is given, and nowhere else; everything else only prints what it would do."""

    def __init__(self, files: Path | None = None) -> None:
        self.files = files.resolve() if files is not None else None

    def functions(self) -> dict[str, ToolFunction]:
        return {tool.name: getattr(self, tool.name, self._pretend(tool.name)) for tool in ACTIONS}

    def _pretend(self, name: str) -> ToolFunction:
        def run(arguments: dict[str, Any]) -> Any:
            print(f"{name}: {arguments}", flush=True)
            return {"tool": name, "done": True, **arguments}

        return run

    def _inside(self, path: str) -> Path:
        assert self.files is not None
        target = (self.files / path).resolve()
        if target != self.files and self.files not in target.parents:
            raise TodoFailed("outside_files", f"{path} is not under {self.files}")
        return target

    def find_files(self, arguments: dict[str, Any]) -> Any:
        if self.files is None:
            return self._pretend("find_files")(arguments)
        query = str(arguments["query"]).lower()
        root = self._inside(str(arguments.get("folder", ".")))
        words = [w for w in query.replace(",", " ").split() if w not in ("my", "the", "files")]
        found = [
            str(path.relative_to(self.files))
            for path in sorted(root.rglob("*"))
            if path.is_file() and all(w in path.name.lower() for w in words or [query])
        ]
        print(f"find_files: {query!r}: {len(found)} found", flush=True)
        return found

    def delete_files(self, arguments: dict[str, Any]) -> Any:
        if self.files is None:
            return self._pretend("delete_files")(arguments)
        targets = [self._inside(str(p)) for p in arguments["paths"]]
        missing = [str(t) for t in targets if not t.is_file()]
        if missing:
            raise TodoFailed("not_found", f"no such file: {', '.join(missing)}")
        for target in targets:
            target.unlink()
        print(f"delete_files: {len(targets)} deleted", flush=True)
        return [str(t.relative_to(self.files)) for t in targets]


class DesktopAgent:
    """Answers the `assign` messages for `cpa-desktop` of the conversations it follows."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        handler: Handler = print_and_say_done,
        *,
        name: str = DESKTOP,
        actions: Sequence[Tool] = (),
        tools: Mapping[str, ToolFunction] | None = None,
    ) -> None:
        self.client = client
        self.handler = handler
        self.name = name
        self.actions = {tool.name: tool for tool in actions}
        self.tools = dict(tools or {})
        self.answered: set[str] = set()  # assign ids this agent has answered

    async def offer(self) -> LAMMessage:
        """Tell the planner what this agent can do (its offer replaces the last one)."""
        me = MessageFactory(self.name, f"offer-{uuid.uuid4()}")
        response = await self.client.post(
            "/v1/lam", json=me.actions("planner", list(self.actions.values())).to_dict()
        )
        response.raise_for_status()
        return LAMMessage.from_dict(response.json())

    async def run(self, conversation_ids: Iterable[str] | None = None) -> None:
        """Offer the actions, then follow these conversations until they are over, or
        (None) all, until cancelled."""
        if self.actions:
            await self.offer()
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
        """The outcome for one `assign` (its tool's, or the handler's for a free-form ToDo),
        as the LAM message that answers it."""
        todo = assign.todo()
        me = MessageFactory(self.name, assign.conversation_id)
        try:
            tool = assign.content.get("tool")
            if tool is not None:
                output = await asyncio.to_thread(self.run_tool, tool["name"], tool["arguments"])
            else:
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

    def run_tool(self, name: str, arguments: dict[str, Any]) -> Any:
        """Run one of this agent's tools, its arguments checked against its schema first."""
        action, function = self.actions.get(name), self.tools.get(name)
        if action is None or function is None:
            raise TodoFailed("unknown_tool", f"{self.name} has no tool {name!r}")
        problems = [
            f"{'.'.join(map(str, e.absolute_path)) or 'arguments'}: {e.message}"
            for e in Draft202012Validator(action.input_schema).iter_errors(arguments)
        ]
        if problems:
            raise TodoFailed("bad_arguments", f"{name}: " + "; ".join(problems))
        return function(arguments)

    async def _get(self, path: str, **kwargs: Any) -> Any:
        response = await self.client.get(path, **kwargs)
        response.raise_for_status()
        return response.json()


def client_for(server: str, api_key: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    # No read timeout: an SSE stream is quiet between messages (keep-alive comments aside).
    return httpx.AsyncClient(base_url=server, headers=headers, timeout=httpx.Timeout(30, read=None))


async def main_async(args: argparse.Namespace) -> None:
    tools = DesktopTools(args.files)
    async with client_for(args.server, args.api_key) as client:
        agent = DesktopAgent(client, actions=ACTIONS, tools=tools.functions())
        await agent.run(args.conversation)


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
    parser.add_argument(
        "--files",
        type=Path,
        metavar="DIR",
        help="the folder the file tools work on, for real (without it they only print)",
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
