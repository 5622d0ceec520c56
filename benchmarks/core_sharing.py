"""What sharing the cores costs a replica: one replica's CPU per run alone, and beside a
process that does nothing but burn a core.

The control for `benchmarks.replicas`: there, two replicas spend more CPU per run than
one. If the second replica's own work (its claims, notices, renewals) were the cause, a
neighbour that touches neither Redis nor the replica would cost nothing; if sharing the
cores is (the replica taken off its core whenever Redis, the clients or the neighbour
want one: cold caches, more kernel time), a plain busy loop costs about as much per
preemption as a second replica does. Each repeat measures one replica under the same
load as `benchmarks.replicas` (48 clients, the template run over HTTP) twice: alone, then
beside a `while True: pass` process, each on fresh keys; the figures are medians over the
repeats with their spread.

    python -m benchmarks.core_sharing [--json] [--runs 600] [--repeats 5] [--clients 48]
        [--busy-limit 0.1] [--allow-busy]

The replica's CPU is read from /proc (user + system), preemptions are its involuntary
context switches; both are per run, warm-up runs included (they are in the CPU time). As
`benchmarks.replicas` does, it stops with exit code 3 instead of a figure when other
processes use more than `--busy-limit` of a core in a second's look before a row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks.http import _cleanup
from benchmarks.replicas import (
    BUSY_EXIT,
    BusyMachineError,
    check_quiet,
    cpu_seconds,
    load,
    look_at_machine,
    preemptions,
    private_valkey,
)
from benchmarks.sse import server

SETUPS = ("alone", "beside a busy loop")


def measure_once(
    redis_url: str, beside_busy_loop: bool, runs: int, clients: int, directory: Path
) -> dict[str, float]:
    """One replica under `clients` clients for `runs` runs: its CPU and preemptions per run."""
    prefix = f"bench-sharing-{uuid.uuid4().hex[:8]}"
    try:
        with ExitStack() as stack:
            url, pid = stack.enter_context(server(redis_url, prefix, directory / f"{prefix}.log"))
            asyncio.run(load([url], 100, clients))  # imports, connections, first keys
            burner = None
            if beside_busy_loop:
                burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                stack.callback(burner.wait)
                stack.callback(burner.kill)
            cpu, switched = cpu_seconds(pid), preemptions(pid)
            figures = asyncio.run(load([url], runs, clients))
            cpu, switched = cpu_seconds(pid) - cpu, preemptions(pid) - switched
    finally:
        _cleanup(redis_url, prefix)
    total = runs + figures["warm_up_runs"]
    return {
        "cpu_ms_per_run": round(cpu / total * 1000, 2),
        "preempted_per_run": round(switched / total, 1),
        "runs_per_s": figures["runs_per_s"],
    }


def summarize(rows: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, Any]]:
    """Per set-up, the median and spread of each figure; the CPU per run against alone's."""
    out: dict[str, dict[str, Any]] = {}
    for setup, measured in rows.items():
        out[setup] = {
            key: {
                "median": round(statistics.median(r[key] for r in measured), 2),
                "low": min(r[key] for r in measured),
                "high": max(r[key] for r in measured),
            }
            for key in ("cpu_ms_per_run", "preempted_per_run", "runs_per_s")
        }
    alone = out[SETUPS[0]]["cpu_ms_per_run"]["median"]
    for figures in out.values():
        figures["cpu_per_run_vs_alone"] = round(figures["cpu_ms_per_run"]["median"] / alone, 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--runs", type=int, default=600, help="runs measured per row")
    parser.add_argument("--repeats", type=int, default=5, help="times both rows are measured")
    parser.add_argument("--clients", type=int, default=48, help="concurrent clients")
    parser.add_argument(
        "--busy-limit", type=float, default=0.1, help="other processes' share of a core (0.1)"
    )
    parser.add_argument("--allow-busy", action="store_true", help="measure on a busy machine")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.runs < 1 or args.clients < 1:
        parser.error("--runs, --repeats and --clients must be at least 1")
    rows: dict[str, list[dict[str, float]]] = {setup: [] for setup in SETUPS}
    try:
        with tempfile.TemporaryDirectory() as tmp, private_valkey() as (url, redis_pid):
            for _ in range(args.repeats):
                for setup in SETUPS:
                    if not args.allow_busy:
                        seen = look_at_machine([redis_pid] if redis_pid else [])
                        check_quiet(seen, args.busy_limit, "before a row was measured")
                    row = measure_once(url, setup != SETUPS[0], args.runs, args.clients, Path(tmp))
                    rows[setup].append(row)
    except BusyMachineError as exc:
        print(f"benchmarks.core_sharing: {exc}", file=sys.stderr)
        return BUSY_EXIT
    summary = summarize(rows)
    if args.json:
        print(json.dumps({"summary": summary, "rows": rows}))
        return 0
    print(f"one replica, {args.clients} clients, {args.runs} runs, {args.repeats} repeats:")
    for setup, figures in summary.items():
        cpu, pre = figures["cpu_ms_per_run"], figures["preempted_per_run"]
        print(
            f"  {setup:20s} CPU per run {cpu['median']:.1f} ms"
            f" ({cpu['low']:.1f}-{cpu['high']:.1f}), {figures['cpu_per_run_vs_alone']:.2f}x"
            f" alone's; preempted"
            f" {pre['median']:.1f}/run ({pre['low']:.1f}-{pre['high']:.1f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
