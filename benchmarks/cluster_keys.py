"""Which keys load which primary of a Redis Cluster under `benchmarks.replicas`' load.

    python -m benchmarks.cluster_keys [--replicas 2] [--runs 300] [--clients 16] [--tenants 8]

Starts a three-primary cluster (a replica each, `tests.support.redis_cluster`), N server
replicas on it, and `redis-cli monitor` on each primary while the benchmark's load runs;
then counts each primary's commands by the kind of key they touch (`key_kind`: the global
index's shards `{:index:k:s}`, counted together, the tenant's `{tenant:T}` keys, the job
stream, the archive stream, a conversation's `srv:{H}:...` keys, the checkpointer's keys
of a thread, ...), those a script ran apart from those a client sent, and PUBLISH by
channel. MONITOR slows the servers: the runs/s printed are not the benchmark's; the
counts are what to look at (a primary's commands are what `INFO commandstats` counts,
scripts' included). The keys
without a hash tag (`srv:jobs`, `srv:archive`, `srv:tenants`, ...) land on a slot that
depends on the key prefix, which is new on each run: which primary they load changes too.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import shlex
import subprocess
import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path

from benchmarks.replicas import load, setups_for, tenant_keys, tenants_setting
from benchmarks.sse import server

MONITOR_LINE = re.compile(r"^[\d.]+ \[\d+ ([^\]]+)\] (.*)$")
NODE_COMMANDS = {"cluster", "info", "ping", "client", "replconf", "command", "readonly"}
NODE_COMMANDS |= {"hello", "subscribe", "psubscribe", "ssubscribe", "unsubscribe", "select"}


def key_kind(key: str, prefix: str) -> str:
    """What a key is, by its name under `prefix` (`graph.storage.server_keys`)."""
    rest = key.removeprefix(prefix + ":")
    if re.search(r"\{:index:\d+:\d+\}", rest):
        return "{:index:k:s} global index (shards)"
    if "{tenant:" in rest:
        return "{tenant:T} " + re.sub(r"\{tenant:[^}]*\}", "{T}", rest).split(":msg:")[0]
    for single in ("srv:jobs", "srv:archive", "srv:tenants", "srv:remote-waiting"):
        if rest.startswith(single):
            return single
    if rest.startswith("tools:offers:"):
        return "tools:offers:<tenant>"
    conversation = re.match(r"srv:\{[^}]*\}:([^:]*)", rest)
    if conversation:
        return f"srv:{{H}}:{conversation.group(1)} (per conversation)"
    if "{" in rest:
        return "checkpointer (per thread)"
    return "other: " + rest[:40]


def classify(line: str, prefix: str) -> str | None:
    """The kind of one MONITOR line's command (None: not a command line), with `[script]`
    when a script ran it."""
    match = MONITOR_LINE.match(line)
    if not match:
        return None
    try:
        parts = shlex.split(match.group(2))
    except ValueError:
        return None
    if not parts:
        return None
    command = parts[0].lower()
    if command in NODE_COMMANDS:
        return f"(node) {command}"
    if command in ("publish", "spublish") and len(parts) > 1:
        return "PUBLISH " + re.sub(r"\{[^}]*\}", "{H}", parts[1].removeprefix(prefix + ":"))
    if command in ("evalsha", "eval") and len(parts) > 3:
        key = parts[3] if parts[2].isdigit() and int(parts[2]) > 0 else ""
    elif command == "xreadgroup" and "STREAMS" in (upper := [p.upper() for p in parts]):
        key = parts[upper.index("STREAMS") + 1]
    else:
        key = parts[1] if len(parts) > 1 else ""
    kind = key_kind(key, prefix)
    return f"{kind} [script]" if "lua" in match.group(1) else kind


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--tenants", type=int, default=8, help="as benchmarks.replicas'")
    parser.add_argument("--top", type=int, default=14, help="kinds shown per primary")
    args = parser.parse_args(argv)
    with setups_for(None, True, None) as setups, tempfile.TemporaryDirectory() as tmp:
        cluster = setups[-1]
        prefix = f"bench-keys-{uuid.uuid4().hex[:8]}"
        keys = tenant_keys(args.tenants)
        env = tenants_setting(keys, args.clients)
        logs = {port: Path(tmp) / f"monitor{port}.txt" for port, _ in cluster.primaries}
        with ExitStack() as stack:
            urls = [
                stack.enter_context(
                    server(cluster.url, prefix, Path(tmp) / f"r{i}.log", env, keys["t0"])
                )[0]
                for i in range(args.replicas)
            ]
            monitors = []
            for port, path in logs.items():
                out = stack.enter_context(path.open("w"))
                command = ["redis-cli", "-p", str(port), "monitor"]
                monitors.append(subprocess.Popen(command, stdout=out))
            try:
                figures = asyncio.run(load(urls, args.runs, args.clients, list(keys.values())))
            finally:
                for monitor in monitors:
                    monitor.terminate()
                    monitor.wait()
        print(
            f"{args.replicas} replicas, {args.runs} runs of {args.tenants} tenant(s): "
            f"{figures['runs_per_s']} runs/s"
        )
        counted = {}
        for port, path in logs.items():
            kinds = (
                classify(line, prefix) for line in path.read_text(errors="replace").splitlines()
            )
            counted[port] = collections.Counter(kind for kind in kinds if kind)
        grand = sum(sum(counts.values()) for counts in counted.values())
        for port, counts in counted.items():
            total = sum(counts.values())
            print(f"primary {port}: {total} commands ({total / grand:.1%} of the three)")
            for kind, count in counts.most_common(args.top):
                print(f"  {count:7d} {count / total:6.1%}  {kind}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
