"""`cpa-planner history` and `db upgrade` as a user runs them (a real process, embedded store).

A conversation run locally is kept in the history (tenant `local`) when the command ends; the
history shows it with the filters, its whole record equals what `show` shows, the export is
its record as JSON lines. A database without the schema is refused naming `db upgrade`,
which makes it (and on a current database does nothing and says so).
"""

from __future__ import annotations

import json
from pathlib import Path

from cli import exits
from tests.support.cli_harness import clean_env, run_cli

REQUEST = "Remind me to call Anna tomorrow at 9"


def test_a_local_run_is_kept_and_found_with_the_filters(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    done = run_cli(["run", "--yes", "--json", REQUEST], env)
    assert done.returncode == exits.WAITING, done.stderr  # its desktop ToDo waits
    cid = json.loads(done.stdout)["conversation_id"]
    assert "was not written" not in done.stderr

    listed = json.loads(run_cli(["history", "--json", "--executor", "desktop"], env).stdout)
    (item,) = listed["conversations"]
    assert item["conversation_id"] == cid and item["tenant"] == "local"
    assert item["status"] == "waiting" and item["intent"] == "reminder"
    assert json.loads(run_cli(["history", "--json", "--status", "done"], env).stdout) == {
        "conversations": [],
        "next_cursor": None,
    }
    record = json.loads(run_cli(["history", cid, "--json"], env).stdout)
    shown = json.loads(run_cli(["show", cid, "--json"], env).stdout)
    assert record["messages"] == shown["messages"]
    (approval,) = record["approvals"]
    assert approval["decision"] == "agree" and approval["reason"] == "approved with --yes"

    exported = run_cli(["history", "--export", "--text", "anna"], env)
    assert [json.loads(line) for line in exported.stdout.splitlines()] == [record]
    missing = run_cli(["history", "no-such-id"], env)
    assert missing.returncode == exits.NOT_FOUND
    assert "no conversation no-such-id" in missing.stderr
    bad = run_cli(["history", "--from", "yesterday"], env)
    assert bad.returncode == exits.USAGE and "--from" in bad.stderr


def test_an_empty_history_names_the_command_that_makes_it(tmp_path: Path) -> None:
    env = clean_env(tmp_path, CPA_HISTORY_URL=f"sqlite:///{tmp_path / 'new.db'}")
    done = run_cli(["history"], env)
    assert done.returncode == exits.CONFIG
    assert "cpa-planner db upgrade" in done.stderr
    upgrade = run_cli(["db", "upgrade"], env)
    assert upgrade.returncode == 0 and "revision none -> 0002" in upgrade.stdout
    assert "nothing to do" in run_cli(["db", "upgrade"], env).stdout
    table = run_cli(["history"], env)
    assert table.returncode == 0 and "History" in table.stdout
