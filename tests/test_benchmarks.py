"""The benchmarks run as the README writes them, from their own workload in the repository."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

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
    command += ["--clients", "2,4", "--repeats", "2", "--allow-busy"]
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
    assert len(report["repeats"]) == 2
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
            assert len(row["replica_cpu"]) == row["replicas"]
            assert 0 < row["p50_ms"] <= row["p95_ms"]
            assert row["cpu_ms_per_run"] > 0 and row["preempted_per_run"] >= 0
            assert row["other_cpu"] >= 0
    # The summary is the repeats' median and spread, per count of replicas.
    one, two = report["summary"]
    ratios = sorted(repeat["rows"][1]["ratio"] for repeat in report["repeats"])
    assert two["ratio"]["low"] == ratios[0] and two["ratio"]["high"] == ratios[-1]
    assert two["ratio"]["median"] == round((ratios[0] + ratios[1]) / 2, 2)
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
