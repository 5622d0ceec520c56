"""``python -m lam schema`` prints the message JSON Schema; ``python -m lam validate FILE|-``
checks one message (exit 1 with the field errors)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from lam.errors import LAMValidationError
from lam.messages import DEFAULT_MAX_MESSAGE_BYTES, LAMMessage
from lam.schema import message_json_schema


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lam", description="LAM protocol tools")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("schema", help="print the JSON Schema of a LAM message")
    check = commands.add_parser("validate", help="validate one JSON message")
    check.add_argument("file", help="path to a JSON file, or - for standard input")
    check.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_MESSAGE_BYTES)
    args = parser.parse_args(argv)

    if args.command == "schema":
        print(json.dumps(message_json_schema(), indent=2, ensure_ascii=False))
        return 0

    try:
        if args.file == "-":
            raw = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as handle:
                raw = handle.read()
    except OSError as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    try:
        message = LAMMessage.from_json(raw, max_bytes=args.max_bytes)
    except LAMValidationError as exc:
        print(f"invalid: {len(exc.errors)} error(s)", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error['field'] or '<message>'}: {error['message']}", file=sys.stderr)
        return 1
    print(
        f"ok: {message.performative.value} {message.id} from {message.sender} to {message.receiver}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
