"""The benchmarks run as the README writes them, from their own workload in the repository."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import makespan
from benchmarks.workloads import make_dags

ROOT = Path(__file__).resolve().parents[1]


def test_the_default_workload_is_in_the_repository_and_is_what_its_generator_makes() -> None:
    assert makespan.DEFAULT_DAGS.is_relative_to(ROOT)
    committed = makespan.DEFAULT_DAGS.read_text()
    assert committed == json.dumps(make_dags.make(random.Random(7)), indent=1) + "\n"
    names = [d["name"] for d in json.loads(committed)]
    assert names[:4] == ["straggler", "chain", "fan_out_in", "uneven_chains"] and len(names) == 8


@pytest.mark.slow
def test_makespan_runs_from_anywhere_with_its_default_workload(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.makespan", "--only", "chain", "--repeat", "1", "--json"],
        cwd=tmp_path,  # not the repository: the default path must not depend on it
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    (row,) = report["dags"]
    assert row["name"] == "chain" and row["todos"] == 8
    # No schedule beats the critical path; a chain has no parallelism to win either way.
    assert row["makespan_ms"] >= row["critical_path_ms"] > 0
    assert row["baseline_makespan_ms"] >= row["critical_path_ms"]

    unknown = subprocess.run(
        [sys.executable, "-m", "benchmarks.makespan", "--only", "nope"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert unknown.returncode == 2 and "no DAG named nope" in unknown.stderr


@pytest.mark.slow
def test_replicas_benchmark_measures_each_count_of_replicas() -> None:
    command = ["-m", "benchmarks.replicas", "--replicas", "1,2", "--runs", "20"]
    # A shape test, not a measurement: whatever else the machine does is reported, not refused.
    command += ["--clients", "2,4", "--repeats", "2", "--tenants", "3", "--allow-busy"]
    done = subprocess.run(
        [sys.executable, *command, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert len(report["repeats"]) == 2 and report["tenants"] == 3
    for repeat in report["repeats"]:
        rows = repeat["rows"]  # each count of replicas at its best load
        assert [row["replicas"] for row in rows] == [1, 2]
        assert rows[0]["ratio"] == 1.0
        assert [(r["replicas"], r["clients"]) for r in repeat["all"]] == [
            (1, 2),
            (2, 2),
            (1, 4),
            (2, 4),
        ]
        for row in rows:
            assert row["runs_per_s"] == max(
                r["runs_per_s"] for r in repeat["all"] if r["replicas"] == row["replicas"]
            )
            assert row["runs"] == 20 and row["runs_per_s"] > 0
            assert len(row["replica_cpu"]) == row["replicas"] and row["tenants"] == 3
            assert 0 < row["p50_ms"] <= row["p95_ms"]
            assert row["cpu_ms_per_run"] > 0 and row["preempted_per_run"] >= 0
            assert row["other_cpu"] >= 0
    # The summary is the repeats' median and spread, per count of replicas.
    one, two = report["summary"]
    ratios = sorted(repeat["rows"][1]["ratio"] for repeat in report["repeats"])
    assert two["ratio"]["low"] == ratios[0] and two["ratio"]["high"] == ratios[-1]
    # The median of the unrounded ratios, rounded: within 0.01 of the rounded ratios' mean.
    assert abs(two["ratio"]["median"] - (ratios[0] + ratios[1]) / 2) <= 0.0101
    assert one["ratio"] == {"median": 1.0, "low": 1.0, "high": 1.0}
    assert one["cpu_per_run_vs_one"] == 1.0
    cpu = [repeat["rows"][1]["cpu_ms_per_run"] for repeat in report["repeats"]]
    assert two["cpu_ms_per_run"]["low"] == min(cpu) and two["cpu_ms_per_run"]["high"] == max(cpu)


@pytest.mark.slow
def test_core_sharing_benchmark_measures_one_replica_alone_and_beside_a_busy_loop() -> None:
    command = ["-m", "benchmarks.core_sharing", "--runs", "20", "--repeats", "2"]
    command += ["--clients", "4", "--allow-busy", "--json"]  # a shape test, not a measurement
    done = subprocess.run(
        [sys.executable, *command], cwd=ROOT, capture_output=True, text=True, check=False,
        timeout=280,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert list(report["rows"]) == ["alone", "beside a busy loop"]
    for setup, rows in report["rows"].items():
        assert len(rows) == 2
        assert all(r["cpu_ms_per_run"] > 0 and r["runs_per_s"] > 0 for r in rows), rows
        cpu = sorted(r["cpu_ms_per_run"] for r in rows)
        summary = report["summary"][setup]
        assert summary["cpu_ms_per_run"]["low"] == cpu[0]
        assert summary["cpu_ms_per_run"]["high"] == cpu[-1]
    assert report["summary"]["alone"]["cpu_per_run_vs_alone"] == 1.0


def test_replicas_benchmark_refuses_to_measure_on_a_busy_machine() -> None:
    # Another process takes a whole core: the benchmark says so instead of giving a figure.
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.replicas", "--runs", "5", "--clients", "1"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    finally:
        burner.kill()
        burner.wait()
    assert done.returncode == 3, done.stderr[-3000:]
    assert "the machine is busy: other processes used" in done.stderr
    assert "before a row was measured" in done.stderr and "--allow-busy" in done.stderr
    assert done.stdout == ""  # no figure


@pytest.mark.slow
def test_history_benchmark_measures_load_throughput_and_queries() -> None:
    command = ["-m", "benchmarks.history", "--runs", "20", "--clients", "4", "--archive", "20"]
    command += ["--conversations", "2000", "--queries", "2", "--json"]
    done = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert [row["history"] for row in report["load"]] == ["off", "sqlite", "postgres"]
    for row in report["load"][1:]:
        assert row["left_in_stream"] == 0 and row["messages_per_run"] > 0
        assert row["archived_conversations"] == 20 + row["warm_up_runs"]
    assert [(r["backend"], r["archivers"]) for r in report["throughput"]] == [
        ("sqlite", 1),
        ("sqlite", 2),
        ("postgres", 1),
        ("postgres", 2),
    ]
    for name in ("sqlite", "postgres"):
        queries = report["query"][name]["queries"]
        assert queries["newest page"]["p50_ms"] <= queries["newest page"]["p95_ms"]


@pytest.mark.slow
def test_the_agents_benchmark_runs_all_four_agents_on_a_scripted_server() -> None:
    only = "news-summary,search-summary-translate"
    args = ["--runs", "1", "--scale", "0.1", "--only", only, "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.agents", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    agents = report["agents"]
    assert list(agents) == ["streamed", "whole-plan", "react", "plan-execute"]
    # Every agent answered every request, with the calls its shape makes: the planner and
    # the summary; a ReAct turn per level of the plan and one to answer; the tutorial's
    # planner, then per step two agent turns and a replan.
    assert all(row["answered"] == row["of"] == 2 for row in agents.values())
    assert agents["streamed"]["llm_calls"] == agents["whole-plan"]["llm_calls"] == 2
    assert agents["react"]["llm_calls"] == 3.5  # 2-step and 3-step chains: 3 and 4 calls
    assert agents["plan-execute"]["llm_calls"] == 8.5  # 1 + 3 x 2 and 1 + 3 x 3
    # Reported, not judged here (timings; tests/test_streamed_plans.py shows the order).
    share, low, high = report["first_tool_of_planner"]
    assert 0 < low <= share <= high


def test_replicas_balance_is_each_primarys_share_and_the_largest_deviation_from_the_mean() -> None:
    from benchmarks.replicas import BALANCED, balance

    even = balance([10.0, 10.0, 10.0])
    assert even == {"shares": [0.333, 0.333, 0.333], "max_deviation": 0.0, "max_over_min": 1.0}
    hot = balance([15.0, 7.5, 7.5])  # mean 10: the hot one is 50 % above it
    assert hot["shares"] == [0.5, 0.25, 0.25]
    assert hot["max_deviation"] == 0.5 > BALANCED and hot["max_over_min"] == 2.0
    cold = balance([11.0, 11.0, 8.0])  # mean 10: the cold one 20 % below, on the bar
    assert cold["max_deviation"] == 0.2 and cold["max_over_min"] == 1.38
    assert balance([0.0, 0.0, 0.0])["max_deviation"] == 0.0  # nothing measured: no figure
    assert balance([5.0, 0.0, 1.0])["max_over_min"] == float("inf")


def test_replicas_summary_and_comparison_of_the_two_set_ups() -> None:
    from benchmarks.replicas import compare, summarize, top_commands

    assert top_commands({"get": 3, "xadd": 9, "hset": 5}, 2) == {"xadd": 9, "hset": 5}

    def row(n: int, rate: float, cpu: float, shares: list[float] | None) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "replicas": n,
            "runs_per_s": rate,
            "cpu_ms_per_run": cpu,
            "preempted_per_run": 1.0,
        }
        if shares is not None:
            deviation = round(max(abs(s - 1 / 3) for s in shares) * 3, 3)
            figures["primaries"] = {
                "ports": [1, 2, 3],
                "commands_balance": {"shares": shares, "max_deviation": deviation},
                "cpu_balance": {"shares": shares, "max_deviation": deviation},
            }
        return figures

    def repeat(rates: list[float], cpu: float, shares: list[float] | None) -> dict[str, Any]:
        rows = [row(n, r, cpu, shares) for n, r in zip([1, 2], rates, strict=True)]
        for r in rows:
            r["ratio"] = round(r["runs_per_s"] / rows[0]["runs_per_s"], 2)
        return {"rows": rows}

    repeats = [
        {"one Redis": repeat([50, 80], 20, None), "cluster": repeat([40, 60], 30, [0.4, 0.3, 0.3])},
        {
            "one Redis": repeat([40, 60], 20, None),
            "cluster": repeat([20, 30], 30, [0.5, 0.25, 0.25]),
        },
        {
            "one Redis": repeat([50, 70], 20, None),
            "cluster": repeat([45, 63], 30, [0.34, 0.33, 0.33]),
        },
    ]
    cluster = summarize([r["cluster"] for r in repeats], [1, 2])
    assert "primaries" not in summarize([r["one Redis"] for r in repeats], [1, 2])[0]
    primaries = cluster[1]["primaries"]
    assert primaries["commands_shares"] == [0.4, 0.3, 0.3]  # each primary's median
    assert primaries["cpu_max_deviation"] == {"median": 0.2, "low": 0.02, "high": 0.5}
    # Each repeat's own ratio (the two set-ups measured in the same run), then the median.
    one, two = compare(repeats, [1, 2], "one Redis", "cluster")
    assert one["runs_per_s_ratio"] == {"median": 0.8, "low": 0.5, "high": 0.9}
    assert two["runs_per_s_ratio"] == {"median": 0.75, "low": 0.5, "high": 0.9}
    assert one["cpu_per_run_ratio"] == {"median": 1.5, "low": 1.5, "high": 1.5}


@pytest.mark.slow
def test_replicas_benchmark_on_a_cluster_next_to_one_redis() -> None:
    if not shutil.which("redis-server"):
        pytest.skip("no redis-server")
    command = ["-m", "benchmarks.replicas", "--cluster", "--replicas", "1,2", "--runs", "20"]
    command += ["--clients", "4", "--repeats", "1", "--allow-busy", "--json"]  # a shape test
    done = subprocess.run(
        [sys.executable, *command], cwd=ROOT, capture_output=True, text=True, check=False,
        timeout=280,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert list(report["setups"]) == ["one Redis", "cluster"]
    assert report["tenants"] == 8  # the default: the load of several tenants
    (one,) = report["setups"]["one Redis"]["repeats"]
    (cluster,) = report["setups"]["cluster"]["repeats"]
    assert "primaries" not in one["rows"][0] and one["rows"][0]["redis_cpu"] >= 0
    for row in cluster["all"]:
        primaries = row["primaries"]
        assert len(primaries["ports"]) == 3 and all(c > 0 for c in primaries["commands"])
        assert sum(primaries["commands_balance"]["shares"]) == pytest.approx(1, abs=0.01)
        assert all(top for top in primaries["top_commands"])
    assert [r["replicas"] for r in report["cluster_vs_one"]] == [1, 2]
    assert report["cluster_vs_one"][0]["runs_per_s_ratio"]["median"] > 0


def test_cluster_keys_classifies_monitor_lines_by_the_kind_of_key() -> None:
    from benchmarks.cluster_keys import classify

    p = "bench"

    def line(args: str, source: str = "127.0.0.1:5000") -> str:
        return f"1765000000.123456 [0 {source}] {args}"

    index = "{:index:k:s} global index (shards)"
    assert classify(line(f'"ZADD" "{p}:srv:{{:index:7:13}}:revs" "3" "t"'), p) == index
    assert (
        classify(line(f'"SADD" "{p}:srv:{{tenant:acme}}:running" "x"', "lua"), p)
        == "{tenant:T} srv:{T}:running [script]"
    )
    assert classify(line(f'"XADD" "{p}:srv:jobs" "*" "thread" "h"'), p) == "srv:jobs"
    read = f'"XREADGROUP" "GROUP" "runners" "r1" "COUNT" "1" "STREAMS" "{p}:srv:jobs" ">"'
    assert classify(line(read), p) == "srv:jobs"
    evalsha = f'"EVALSHA" "abc" "2" "{p}:srv:{{t/c}}:conv" "{p}:srv:{{t/c}}:ev"'
    assert classify(line(evalsha), p) == "srv:{H}:conv (per conversation)"
    assert classify(line(f'"HSET" "{p}:P:t:{{t/c}}:cp" "a" "b"'), p) == "checkpointer (per thread)"
    assert classify(line(f'"PUBLISH" "{p}:srv:{{t/c}}:ev:progress" "x"'), p) == (
        "PUBLISH srv:{H}:ev:progress"
    )
    assert classify(line('"PING"'), p) == "(node) ping"
    assert classify("OK", p) is None
