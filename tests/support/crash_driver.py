"""The application process of the crash tests (tests/test_crash.py): killed, started again.

    python -m tests.support.crash_driver CID start "Crash drill: ..." open the conversation, run it
    python -m tests.support.crash_driver CID continue                 carry on from the checkpoint
    python -m tests.support.crash_driver CID answer                   answer the desktop ToDos, run
    python -m tests.support.crash_driver CID show                     print the view only
    ... --linger: once the run stops waiting for an answer, record `idle` and stay alive

Each command prints the conversation's view (the body of `GET /v1/conversations/{id}`) as one
JSON line and exits 0.
Settings come from the environment like every other entry point (REDIS_URL,
CPA_REDIS_PREFIX, CPA_INTENTS_PATH = tests/data/crash_intents.yaml, ...); the graph's
services add the `record` executor and a scripted planner model that plans `DRILL_PLAN`.
`crash_services` is also the CPA_SERVER_SERVICES hook, so the HTTP server runs the same.

The `record` executor appends `<event> <todo id> <pid>` lines to CPA_CRASH_RECORD, flushed
and fsynced: `start` and `end` around each execution; `pause` before the start of a ToDo
listed in CPA_CRASH_PAUSE; a ToDo listed in CPA_CRASH_HOLD stops between its start and end.
A paused or held ToDo goes on once the file `<record>.go.<todo id>` exists (usually never:
the test kills the process there). Ids are comma-separated.

The planner model streams its answer (with CPA_STREAM_PLANS, steps start while it writes);
CPA_CRASH_STREAM_HOLD=N stops the stream once it has begun step N, records `stream`, and
goes on once `<record>.go.stream` exists.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from graph.config import Settings
from graph.services import Services
from tests.support.executors import FileJournal, RecordingExecutor, gate, write_line
from tests.support.scripted import ConstantChatModel, steps

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / "tests" / "data" / "crash_intents.yaml"
DESKTOP = "cpa-desktop"
REQUEST = "Crash drill: run the eight steps"

RECORD_ENV = "CPA_CRASH_RECORD"
HOLD_ENV = "CPA_CRASH_HOLD"
PAUSE_ENV = "CPA_CRASH_PAUSE"
STREAM_HOLD_ENV = "CPA_CRASH_STREAM_HOLD"
STREAM = "stream"  # the gate and the record's name for the planner's stream

# The planner model writes numbered steps; their ToDos are t1 .. t8, called A1 .. Z here:
#   a1 -> b1 -> b2 ----------------\
#   a2 --\                          +-> z
#   a3 ---+-> c1 -> d1 (desktop) --/
A1, A2, A3, B1, B2, C1, D1, Z = (f"t{n}" for n in range(1, 9))
DRILL_PLAN: dict[str, Any] = {
    "goal": "Crash drill",
    "todos": [
        {"id": A1, "title": "Root one", "executor": "record"},
        {"id": A2, "title": "Root two", "executor": "record"},
        {"id": A3, "title": "Root three", "executor": "record"},
        {"id": B1, "title": "Chain one", "executor": "record", "depends_on": [A1]},
        {"id": B2, "title": "Chain two", "executor": "record", "depends_on": [B1]},
        {"id": C1, "title": "Join", "executor": "record", "depends_on": [A2, A3]},
        {
            "id": D1,
            "title": "On the desktop",
            "executor": "desktop",
            "inputs": {"request": "press the button"},
            "depends_on": [C1],
        },
        {"id": Z, "title": "Last", "executor": "record", "depends_on": [B2, D1]},
    ],
}
RECORD_TODOS = (A1, A2, A3, B1, B2, C1, Z)
DELAY_S = 0.05


def _ids(raw: str | None) -> frozenset[str]:
    return frozenset(part.strip() for part in (raw or "").split(",") if part.strip())


def record_executor(
    record: Path, hold: frozenset[str] = frozenset(), pause: frozenset[str] = frozenset()
) -> RecordingExecutor:
    """The `record` executor, writing to the file `record`."""
    return RecordingExecutor(
        name="record",
        description="records its execution in a file (crash-test executor)",
        journal=FileJournal(record),
        delay=DELAY_S,
        hold=hold,
        pause=pause,
    )


def record_from_env() -> Path:
    record = os.environ.get(RECORD_ENV)
    if not record:
        raise RuntimeError(f"{RECORD_ENV} is not set")
    return Path(record)


def drill_planner(record: Path | None = None, hold_at: int | None = None) -> ConstantChatModel:
    """The planner model: always `DRILL_PLAN`, streamed; any plain text call is a test error.

    With `hold_at`, the stream stops once step `hold_at` has begun (see the docstring).
    """

    async def between(text: str) -> None:
        if record is None or hold_at is None or text.count('"title"') < hold_at:
            return
        if not gate(record, STREAM).exists():
            if not any(line.startswith(f"{STREAM} ") for line in _lines(record)):
                write_line(record, f"{STREAM} - {os.getpid()}")
            while not gate(record, STREAM).exists():  # noqa: ASYNC110  (a file, polled)
                await asyncio.sleep(0.02)

    return ConstantChatModel(
        answers={"PlanDraft": steps(DRILL_PLAN)}, stream_chars=12, between=between
    )


def _lines(record: Path) -> list[str]:
    return record.read_text(encoding="utf-8").splitlines() if record.exists() else []


def crash_services(settings: Settings) -> Services:
    """The graph's services for the crash tests (also the CPA_SERVER_SERVICES hook)."""
    from tests.support.services import scripted_services

    hold_at = os.environ.get(STREAM_HOLD_ENV)
    planner = drill_planner(record_from_env(), int(hold_at) if hold_at else None)
    return scripted_services(
        settings,
        models={"planner": planner},
        executors=[
            record_executor(
                record_from_env(), _ids(os.environ.get(HOLD_ENV)), _ids(os.environ.get(PAUSE_ENV))
            )
        ],
    )


async def desktop_answers(conversations: Any, cid: str) -> dict[str, Any]:
    """The resume value answering every waiting desktop `assign` with a `done`."""
    from lam import LAMMessage, MessageFactory

    view = await conversations.view(cid)
    resume: dict[str, Any] = {}
    for waiting in view.waiting:
        if waiting.receiver != DESKTOP:
            continue
        assign = LAMMessage.from_dict(dict(waiting.message))
        todo_id = waiting.message["content"]["todo"]["id"]
        done = MessageFactory(DESKTOP, cid).done(assign, f"desktop did {todo_id}")
        command = await conversations.answer(cid, done)
        resume.update(command.resume)
    if not resume:
        raise RuntimeError(f"nothing in conversation {cid} waits for the desktop")
    return resume


async def drive(cid: str, command: str, text: str | None, linger: bool) -> dict[str, Any]:
    from langgraph.types import Command

    from graph.builder import build_graph
    from graph.conversations import Conversations
    from graph.storage.connect import open_checkpointer

    settings = Settings.from_env()
    services = crash_services(settings)
    record = record_from_env()
    async with open_checkpointer(settings) as saver:
        conversations = Conversations(build_graph(services, checkpointer=saver), saver)
        if command == "start":
            view = await conversations.run(cid, conversations.opening(text or REQUEST))
        elif command == "continue":
            view = await conversations.run(cid, None)
        elif command == "answer":
            resume = await desktop_answers(conversations, cid)
            view = await conversations.run(cid, Command(resume=resume))
        else:
            view = await conversations.view(cid)
        body = view.to_dict()
        print(json.dumps(body), flush=True)
        if linger and view.status == "waiting":
            write_line(record, f"idle - {os.getpid()}")
            await asyncio.Event().wait()  # alive, idle, until the test kills the process
        return body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crash_driver", description=__doc__.split("\n")[0])
    parser.add_argument("conversation_id")
    parser.add_argument("command", choices=["start", "continue", "answer", "show"])
    parser.add_argument("text", nargs="?")
    parser.add_argument("--linger", action="store_true")
    args = parser.parse_args(argv)
    asyncio.run(drive(args.conversation_id, args.command, args.text, args.linger))
    return 0


if __name__ == "__main__":
    sys.exit(main())
