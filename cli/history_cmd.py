"""`cpa-planner history` and `cpa-planner db upgrade` (docs/history.md).

`history` lists the conversations in the history, newest first, with the filters of
`GET /v1/history` (status, intent, executor or tool, text, from/to); with an ID, one
conversation's whole record; `--export` writes every match's whole record as JSON lines.
Locally it reads the history database itself (CPA_HISTORY_URL, else the SQLite file in the
data directory), every tenant's unless `--tenant`; with `--server`, the server's, for the API
key's tenant.

Conversations run locally (`run`, `resume`) are kept too, as the tenant `local`, when the
command ends (`archive_local`); a history that cannot be written is said on stderr and
changes nothing else.

`db upgrade` migrates the history database to this version's schema (Alembic); a new one gets
it whole. The server refuses to start on an older schema and names this command.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cli.exits import CONFIG, NOT_FOUND, OK, CLIError

FILTERS = ("status", "intent", "executor", "text")


def add_parsers(commands: Any, common: argparse.ArgumentParser, server_options: Any) -> None:
    """The `history` and `db` commands of `cpa-planner`."""
    history = commands.add_parser(
        "history",
        parents=[common],
        help="search the history of conversations (kept in SQL after Redis forgot them)",
        description="List the conversations in the history, newest first, filtered; with an "
        "ID, its whole record (plans, ToDos, approvals, LAM log). Locally the history "
        "database itself (every tenant's); with --server, the server's for your key.",
    )
    history.add_argument("conversation_id", nargs="?", metavar="ID", help="one conversation")
    history.add_argument("--status", choices=["running", "waiting", "done", "failed"])
    history.add_argument("--intent", help="the intent decided")
    history.add_argument("--executor", help="a ToDo's executor or tool")
    history.add_argument("--text", help="in a request, the answer or an error")
    history.add_argument("--from", dest="since", metavar="TIME", help="opened at or after (ISO)")
    history.add_argument("--to", dest="until", metavar="TIME", help="opened before (ISO)")
    history.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    history.add_argument("--cursor", help="the next page (printed under a full page)")
    history.add_argument("--tenant", help="only this tenant's (local only)")
    history.add_argument(
        "--export", action="store_true", help="every match's whole record as JSON lines"
    )
    history.add_argument("--json", action="store_true", help="JSON instead of a table")
    server_options(history)

    db = commands.add_parser(
        "db", parents=[common], help="the history database: migrate it to this version"
    )
    sub = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    sub.add_parser(
        "upgrade",
        parents=[common],
        help="migrate the history database (CPA_HISTORY_URL) to this version's schema",
    )


def handler(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    return upgrade if args.command == "db" else history


def _time(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CLIError(f"{option} {value!r}: not an ISO date or time", 2) from None
    if parsed.tzinfo is None:
        raise CLIError(f"{option} {value!r}: say the zone (e.g. Z or +01:00)", 2)
    return parsed


def _store() -> Any:
    from graph.config import Settings
    from graph.history.settings import HistorySettings
    from graph.history.store import HistoryStore
    from graph.telemetry.logs import known_secrets

    config = HistorySettings.from_env()
    return HistoryStore.from_settings(
        config, Settings.from_env().data_path, secrets=known_secrets()
    )


def upgrade(args: argparse.Namespace) -> int:
    store = _store()

    async def run() -> tuple[str | None, str]:
        try:
            return await store.upgrade()  # type: ignore[no-any-return]
        finally:
            await store.close()

    try:
        before, now = asyncio.run(run())
    except OSError as exc:
        raise CLIError(
            f"cannot reach the history database at {store.shown}: {exc}", CONFIG
        ) from None
    if before == now:
        print(f"the history at {store.shown} is at revision {now}: nothing to do")
    else:
        print(f"the history at {store.shown}: revision {before or 'none'} -> {now}")
    return OK


def history(args: argparse.Namespace) -> int:
    from cli.settings import CliSettings

    since, until = _time(args.since, "--from"), _time(args.until, "--to")
    env = CliSettings.from_env()
    server = args.server or env.server_url
    if server:
        if args.tenant:
            raise CLIError("--tenant is for the local history; a server shows your key's", 2)
        found = _remote(args, server, args.api_key or env.api_key, since, until)
    else:
        found = asyncio.run(_local(args, since, until))
    if args.export:
        for record in found:
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        return OK
    if args.json:
        sys.stdout.write(json.dumps(found, ensure_ascii=False, indent=2) + "\n")
        return OK
    from cli.conversation_cmds import consoles

    out, _ = consoles()
    if args.conversation_id:
        _show(out, found)
    else:
        out.print(_table(found["conversations"]))
        if found.get("next_cursor"):
            out.print(f"more: --cursor {found['next_cursor']}")
    return OK


def _params(
    args: argparse.Namespace, since: datetime | None, until: datetime | None
) -> dict[str, Any]:
    params: dict[str, Any] = {k: getattr(args, k) for k in FILTERS if getattr(args, k)}
    if since is not None:
        params["from"] = since.isoformat()
    if until is not None:
        params["to"] = until.isoformat()
    return params


def _remote(
    args: argparse.Namespace,
    server: str,
    api_key: str | None,
    since: datetime | None,
    until: datetime | None,
) -> Any:
    from cli.remote import RemoteBackend

    backend = RemoteBackend(server, api_key)
    try:
        params = _params(args, since, until)
        if args.conversation_id:
            return backend._call("GET", f"/v1/history/{args.conversation_id}")
        if args.export:
            response = backend.client.get("/v1/history/export", params=params)
            if response.status_code != 200:
                backend._call("GET", "/v1/history", params=params)  # says what is wrong
            return [json.loads(line) for line in response.text.splitlines() if line.strip()]
        params.update(limit=args.limit, **({"cursor": args.cursor} if args.cursor else {}))
        return backend._call("GET", "/v1/history", params=params)
    finally:
        backend.close()


async def _local(args: argparse.Namespace, since: datetime | None, until: datetime | None) -> Any:
    from graph.history.queries import HistoryQuery
    from graph.history.schema import SchemaError

    store = _store()
    try:
        try:
            await store.check_schema(create=False)
        except SchemaError as exc:
            raise CLIError(f"the history at {store.shown}: {exc}", CONFIG) from None
        except OSError as exc:
            raise CLIError(f"cannot reach the history at {store.shown}: {exc}", CONFIG) from None
        if args.conversation_id:
            record = await store.conversation(args.tenant, args.conversation_id)
            if record is None:
                raise CLIError(f"no conversation {args.conversation_id} in the history", NOT_FOUND)
            return record
        query = HistoryQuery(
            tenant=args.tenant,
            **{k: getattr(args, k) for k in FILTERS},
            since=since,
            until=until,
            cursor=args.cursor,
            limit=args.limit,
        )
        if args.export:
            return [record async for record in store.export(query)]
        try:
            page = await store.search(query)
        except ValueError as exc:
            raise CLIError(f"--cursor: {exc}", 2) from None
        return {"conversations": page.conversations, "next_cursor": page.next_cursor}
    finally:
        await store.close()


def _table(conversations: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title="History", title_justify="left")
    for column in ("opened", "conversation", "tenant", "status", "intent", "request"):
        table.add_column(column, no_wrap=column == "conversation")
    for item in conversations:
        request = " ".join(str(item.get("request") or "").split())
        table.add_row(
            str(item["created_at"])[:19].replace("T", " "),
            item["conversation_id"],
            item["tenant"],
            item.get("outcome") or item["status"],
            item.get("intent") or "",
            request if len(request) <= 60 else request[:59] + "…",
        )
    return table


def _show(out: Any, record: dict[str, Any]) -> None:
    from rich.table import Table

    out.print(f"[bold]{record['conversation_id']}[/bold] ({record['tenant']}) {record['status']}")
    for label, key in (
        ("request", "request"),
        ("language", "language"),
        ("intent", "intent"),
        ("tier", "tier"),
        ("route", "route"),
        ("outcome", "outcome"),
        ("answer", "answer"),
        ("opened", "created_at"),
        ("last", "updated_at"),
    ):
        if record.get(key) is not None:
            out.print(f"  {label}: {record[key]}")
    todos = Table(title="ToDos", title_justify="left")
    for column in ("id", "executor / tool", "status", "started", "finished", "error"):
        todos.add_column(column)
    for todo in record["todos"]:
        todos.add_row(
            todo["id"],
            todo["tool"] or todo["executor"],
            todo["status"],
            str(todo["started_at"] or ""),
            str(todo["finished_at"] or ""),
            str(todo["error"] or ""),
        )
    out.print(todos)
    for approval in record["approvals"]:
        who = approval["sender"] + (f" ({approval['principal']})" if approval["principal"] else "")
        out.print(
            f"  {approval['decision']} by {who} at {approval['at']}, plan sha256 "
            f"{approval['plan_digest']}"
        )
    out.print(f"  {len(record['messages'])} LAM messages (--json shows them)")


LOCAL_TENANT = "local"


async def archive_local(views: list[dict[str, Any]]) -> None:
    """Store conversations run in this process, whole (storing again adds nothing)."""
    import time

    from graph.history.archive import Appended, Entry, Stopped
    from graph.history.record import Stop
    from graph.history.settings import HistorySettings

    if not HistorySettings.from_env().history:
        return
    entries: list[Entry] = []
    stamp = f"{int(time.time() * 1000)}-0"
    for view in views:
        cid, messages = str(view["conversation_id"]), list(view["messages"])
        entries.append(Appended(LOCAL_TENANT, cid, 0, messages))
        if view["status"] != "running":
            stop = Stop(stamp, view["status"], len(messages), view.get("plan"), view.get("result"))
            entries.append(Stopped(LOCAL_TENANT, cid, stop))
    store = None
    try:
        store = _store()
        await store.check_schema()
        await store.archive(entries)
    except Exception as exc:  # the conversation is in Redis; the history is the extra
        where = f" at {store.shown}" if store is not None else ""
        print(
            f"cpa-planner: the history{where} was not written: "
            f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}",
            file=sys.stderr,
        )
    finally:
        if store is not None:
            await store.close()
