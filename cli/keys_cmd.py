"""`cpa-planner keys`: API keys managed at run time (docs/http.md, "Managed keys").

Keys live (hashed) in the Redis the server keeps its conversations in (REDIS_URL,
CPA_REDIS_PREFIX: the same settings as the server's), and a server with
`CPA_MANAGED_KEYS=true` takes them from the next request on (`api.keystore`):

    keys create --tenant T [--principal P] [--scopes S+S] [--expires-in 30d] [--note TEXT]
    keys list [--tenant T] [--json]
    keys revoke KEY_ID
    keys pair-desktop --tenant T [--agent cpa-desktop] [--server URL]

A key is printed once, on standard output (nothing else goes there), and never again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from datetime import UTC, datetime
from typing import Any

from cli.exits import CONFIG, NOT_FOUND, OK, CLIError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)\Z")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DESKTOP = "cpa-desktop"


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    keys = commands.add_parser(
        "keys",
        parents=[common],
        help="API keys the server takes with CPA_MANAGED_KEYS=true: create, list, revoke",
        description="Manage API keys kept (hashed) in the server's Redis (REDIS_URL, "
        "CPA_REDIS_PREFIX). A server with CPA_MANAGED_KEYS=true takes them at once.",
    )
    sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = sub.add_parser("create", parents=[common], help="make a key (printed once)")
    create.add_argument("--tenant", required=True)
    create.add_argument(
        "--principal", help="who speaks with it: user:NAME, or an agent id (default: anyone)"
    )
    create.add_argument(
        "--scopes",
        help="request, answer, approve, read, metrics joined by + (default: request+answer+"
        "read for a principal, all for none)",
    )
    create.add_argument("--expires-in", metavar="DURATION", help="e.g. 3600, 90m, 12h, 30d")
    create.add_argument("--note", default="", help="a note kept with the key (what it is for)")
    listing = sub.add_parser("list", parents=[common], help="the keys (never the keys' text)")
    listing.add_argument("--tenant")
    listing.add_argument("--json", action="store_true", help="as JSON")
    revoke = sub.add_parser("revoke", parents=[common], help="remove a key by its id")
    revoke.add_argument("key_id")
    pair = sub.add_parser(
        "pair-desktop",
        parents=[common],
        help="a key for a desktop agent (answers its assigns, reads; cannot approve)",
    )
    pair.add_argument("--tenant", required=True)
    pair.add_argument("--agent", default=DESKTOP, help=f"its id (default: {DESKTOP})")
    pair.add_argument("--expires-in", metavar="DURATION")
    pair.add_argument(
        "--server", default="http://127.0.0.1:8000", help="the server's URL, for the agent"
    )


def duration_s(text: str | None) -> float | None:
    if text is None:
        return None
    match = _DURATION.match(text.strip().lower())
    if not match or float(match.group(1)) <= 0:
        raise CLIError(f"--expires-in {text!r}: a positive number of s, m, h, d or w", CONFIG)
    return float(match.group(1)) * _UNIT_S[match.group(2)]


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    from api.keystore import KeyStore
    from graph.config import Settings
    from graph.storage.connect import open_checkpointer
    from graph.storage.errors import RedisUnavailableError

    settings = Settings.from_env()
    try:
        async with open_checkpointer(settings) as saver:
            store = KeyStore(saver.client, saver.prefix)
            return await _act(store, args)
    except RedisUnavailableError as exc:
        raise CLIError(str(exc), CONFIG) from None


async def _act(store: Any, args: argparse.Namespace) -> int:
    from api.principals import (
        AGENT_SCOPES,
        ALL_SCOPES,
        PERSON_SCOPES,
        Principal,
        PrincipalError,
        parse_scopes,
    )

    action = args.keys_command
    try:
        if action == "create":
            scopes = (
                parse_scopes(args.scopes)
                if args.scopes
                else (PERSON_SCOPES if args.principal else ALL_SCOPES)
            )
            principal = Principal(args.tenant, args.principal, scopes)
            key, record = await store.create(
                principal, expires_in_s=duration_s(args.expires_in), note=args.note
            )
            print(key)
            print(f"key {record.id} for {_who(record)}{_until(record.expires)}", file=sys.stderr)
            print("it is shown only now: keep it somewhere safe", file=sys.stderr)
            return OK
        if action == "pair-desktop":
            principal = Principal(args.tenant, args.agent, AGENT_SCOPES)
            key, record = await store.create(
                principal, expires_in_s=duration_s(args.expires_in), note="desktop agent"
            )
            print(f"CPA_SERVER_URL={args.server}")
            print(f"CPA_API_KEY={key}")
            print(
                f"key {record.id} for {_who(record)}{_until(record.expires)}: give these two "
                "lines to the desktop agent (it answers its assigns; it cannot approve)",
                file=sys.stderr,
            )
            return OK
    except PrincipalError as exc:
        raise CLIError(str(exc), CONFIG) from None
    if action == "list":
        records = await store.list(args.tenant)
        if args.json:
            print(json.dumps([r.to_dict() for r in records], indent=2))
            return OK
        for r in records:
            print(f"{r.id}  {_who(r)}{_until(r.expires)}  {r.note}".rstrip())
        if not records:
            print("no managed keys", file=sys.stderr)
        return OK
    if await store.revoke(args.key_id):
        print(f"key {args.key_id} revoked", file=sys.stderr)
        return OK
    raise CLIError(f"no managed key {args.key_id}", NOT_FOUND)


def _who(record: Any) -> str:
    p = record.principal
    scopes = "+".join(sorted(s.value for s in p.scopes))
    return f"{p.tenant}/{p.id or '*'} ({scopes})"


def _until(expires: float | None) -> str:
    if expires is None:
        return ""
    return f", expires {datetime.fromtimestamp(expires, UTC).isoformat(timespec='seconds')}"
