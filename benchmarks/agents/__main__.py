"""`python -m benchmarks.agents`: the options, the runs, the report (the package's doc)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import warnings

from benchmarks.agents import __doc__ as agents_doc
from benchmarks.agents.cases import CASES
from benchmarks.agents.measure import run_all
from benchmarks.agents.report import report, show


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks.agents", description=agents_doc.split("\n")[0]
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ttft", type=float, default=0.5, help="seconds to the first token")
    parser.add_argument("--rate", type=float, default=50.0, help="tokens per second")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every time")
    parser.add_argument("--only", help="comma-separated request names (default: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    names = set(args.only.split(",")) if args.only else {c.name for c in CASES}
    cases = tuple(c for c in CASES if c.name in names)
    if not cases:
        parser.error(f"no request named {args.only!r}: {', '.join(c.name for c in CASES)}")
    os.environ.setdefault("LANGSMITH_TRACING", "false")
    # The issue asks for LangGraph's prebuilt ReAct agent, which LangGraph 1.x calls deprecated.
    warnings.filterwarnings("ignore", message=".*create_react_agent.*")
    measures = asyncio.run(run_all(args.runs, args.ttft, args.rate, args.scale, cases))
    result = report(measures, args.ttft, args.rate, args.scale)
    command = "python -m benchmarks.agents " + " ".join(argv if argv is not None else sys.argv[1:])
    print(json.dumps(result, indent=1) if args.json else show(result, command.strip()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
