"""What counts as an error in a server's log, and the end-of-session sweep
(tests/support/server_log.py)."""

from __future__ import annotations

from pathlib import Path

from tests.support.server_log import expect_in, problems, sweep

OURS = """INFO uvicorn.error: Application startup complete.
ERROR cpa_planner.api: unhandled error
Traceback (most recent call last):
  File "x.py", line 1, in <module>
RuntimeError: boom
INFO uvicorn.error: Application shutdown complete.
"""
STRUCTLOG = """2026-12-05T07:00:00.000000Z [info     ] Starting In-Memory runtime
2026-12-05T07:00:01.000000Z [error    ] Background run failed  [langgraph_api.worker]
2026-12-05T07:00:02.000000Z [warning  ] Deserializing unregistered type lam.plan.Plan
"""


def test_an_error_record_is_one_problem_with_its_traceback() -> None:
    (found,) = problems(OURS)
    assert found.startswith("ERROR cpa_planner.api: unhandled error") and "RuntimeError" in found
    assert problems(OURS, [r"unhandled error"]) == []


def test_langgraph_devs_lines_are_read_too() -> None:
    found = problems(STRUCTLOG)
    assert [f.split("] ")[1] for f in found] == [
        "Background run failed  [langgraph_api.worker]",
        "Deserializing unregistered type lam.plan.Plan",
    ]


def test_uvicorns_own_format_is_read_too() -> None:
    text = "INFO:     Started server process [1]\nERROR:    Exception in ASGI application\n"
    (found,) = problems(text)
    assert found == "ERROR:    Exception in ASGI application"


def test_the_sweep_reads_every_log_and_allows_what_a_test_named(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "server.log").write_text(OURS)
    (tmp_path / "clean.log").write_text("INFO uvicorn.error: Application startup complete.\n")
    (tmp_path / "valkey.log").write_text("123:M 05 Dec 2026 07:00:00.000 # Warning: no config\n")
    found = sweep(tmp_path)
    assert list(found) == [tmp_path / "a" / "server.log"]
    expect_in(tmp_path / "a" / "server.log", [r"unhandled error"])
    assert sweep(tmp_path) == {}
