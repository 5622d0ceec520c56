"""`cpa-planner` as a person and a script meet it: real processes, pipes and a pseudo-terminal.

No LLM anywhere (the environment is built from scratch, see tests/support/cli_harness.py): the
reminder requests are rule-matched with a template plan (t1 `template` → t2 `desktop`), and
the desktop ToDo is answered at the prompt, as the person would. Conversations live in the
embedded Valkey under each test's tmp_path, or in the session's Valkey where REDIS_URL is set.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli import exits
from graph.intents import IntentRegistry
from lam import LAMMessage, Plan
from tests.support.cli_harness import CLI, ROOT, PtyProcess, clean_env, run_cli
from tests.support.processes import free_port, langgraph_working_copy, read_lines_until

EN = "Remind me to call Anna tomorrow at 9"
DE = "Erinnere mich morgen um 9 an den Anruf bei Anna"
NEEDS_LLM = "Book me a flight to Berlin for the conference"
VIEW_KEYS = {"conversation_id", "intent", "plan", "result", "messages"}


def assert_spec_object(obj: dict[str, Any]) -> None:
    """The --json object (docs/cli.md): the HTTP API's conversation body."""
    assert VIEW_KEYS <= set(obj) <= VIEW_KEYS | {"status"}
    assert isinstance(obj["conversation_id"], str) and obj["conversation_id"]
    assert obj["intent"] is None or isinstance(obj["intent"], str)
    if obj["plan"] is not None:
        Plan.model_validate(obj["plan"])
    assert obj["messages"], "the LAM log is never empty"
    for message in obj["messages"]:
        LAMMessage.from_dict(message)  # every message is valid LAM
    assert obj["messages"][0]["performative"] == "request"


def one_line_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("cpa-planner: error: ")
    return lines[0]


def resume_id(text: str) -> str:
    found = re.search(r"(?:cpa-planner|-m cli) resume (\S+)", text)
    assert found, text
    return found.group(1)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path)


# The command line itself -------------------------------------------------------------------


def test_help_lists_every_command_and_exit_status(env: dict[str, str]) -> None:
    done = run_cli(["--help"], env)
    assert done.returncode == 0
    for command in ("run", "resume", "show", "intents", "serve", "studio"):
        assert re.search(rf"^\s+{command}\s", done.stdout, re.M), command
    assert "130" in done.stdout and "waits for an answer" in done.stdout
    assert run_cli([], env).returncode == exits.USAGE
    assert run_cli(["frobnicate"], env).returncode == exits.USAGE


def test_resume_and_show_help_say_what_the_id_is(env: dict[str, str]) -> None:
    for command in ("resume", "show"):
        done = run_cli([command, "--help"], env)
        assert done.returncode == 0
        assert re.search(r"^\s+ID\s+the conversation's id \(run prints it", done.stdout, re.M)


def test_the_resume_hint_is_a_command_that_works(env: dict[str, str]) -> None:
    """After `make demo` only .venv/bin/cpa-planner exists: the hint names that, not PATH's."""
    script = Path(sys.executable).with_name("cpa-planner")
    elsewhere = {**env, "PATH": "/usr/bin:/bin"}  # no cpa-planner on PATH
    done = subprocess.run(
        [str(script), "run", EN], env=elsewhere, capture_output=True, text=True, check=False
    )
    assert done.returncode == exits.WAITING, done.stderr
    hint = re.search(r"^  (\S+) resume (\S+)$", done.stderr, re.M)
    assert hint and hint.group(1) == str(script), done.stderr
    again = subprocess.run(
        [hint.group(1), "show", hint.group(2)],
        env=elsewhere,
        cwd="/",  # an absolute path works from anywhere
        capture_output=True,
        text=True,
        check=False,
    )
    assert again.returncode == 0 and "waiting" in again.stdout
    # With it on PATH, the plain name; through `python -m cli`, that.
    on_path = {**env, "PATH": f"{script.parent}:/usr/bin:/bin"}
    plain = subprocess.run(
        [str(script), "resume", hint.group(2)], env=on_path, capture_output=True, text=True
    )
    assert re.search(rf"^  cpa-planner resume {hint.group(2)}$", plain.stderr, re.M)
    module = run_cli(["resume", hint.group(2)], env)
    assert f"  {sys.executable} -m cli resume {hint.group(2)}" in module.stderr


def test_empty_request_is_a_usage_error(env: dict[str, str]) -> None:
    done = run_cli(["run", "  "], env)
    assert done.returncode == exits.USAGE
    assert "the request is empty" in one_line_error(done.stderr)


# intents explain / check -------------------------------------------------------------------


def test_intents_explain_one_request(env: dict[str, str]) -> None:
    human = run_cli(["intents", "explain", EN], env)
    assert human.returncode == 0, human.stderr
    assert "intent: reminder" in human.stdout and "reminder.en.remind" in human.stdout

    as_json = run_cli(["intents", "explain", "--json", "Hallo, wie geht's?"], env)
    assert as_json.returncode == 0
    decision = json.loads(as_json.stdout)
    assert {"text", "intent", "confidence", "rule"} <= set(decision)  # docs/cli.md, and more
    assert decision["intent"] == "smalltalk" and 0 < decision["confidence"] <= 1


def test_intents_explain_reads_many_requests_from_stdin(env: dict[str, str]) -> None:
    requests = [
        EN,
        DE,
        "Öffne den Taschenrechner",
        "What is the capital of France?",
        "Find a free slot with Anna next week, book it and email her the agenda",
        "zzz qqq",
    ] * 100
    expected = IntentRegistry.load(None)
    done = run_cli(["intents", "explain", "-", "--json"], env, stdin="\n".join(requests) + "\n\n")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(requests)  # one object per request; the blank line is none
    for text, line in zip(requests, lines, strict=True):
        decision = json.loads(line)
        assert decision == expected.decide(text).to_json_dict()
        assert decision["intent"] is None or 0 < decision["confidence"] <= 1
        assert (decision["intent"] is None) == (decision["rule"] is None)
    assert json.loads(lines[-1])["intent"] is None  # "zzz qqq": the rules abstain

    several = run_cli(["intents", "explain", "Find my tax files and shred them"], env)
    assert "  - Find my tax files\n  - shred them (uses what the one before gives)\n" in (
        several.stdout
    )

    plain = run_cli(["intents", "explain", "-"], env, stdin=f"{EN}\n{DE}\n")
    assert plain.stdout.splitlines()[0].startswith("reminder\t0.95\treminder.en.remind\t")


def test_intents_explain_loads_no_langgraph() -> None:
    # The rules engine alone: fast start, works without any graph dependency loaded.
    code = (
        "import sys; from cli.main import main; rc = main(['intents', 'explain', 'hello']); "
        "assert rc == 0; assert 'langgraph' not in sys.modules, 'langgraph imported'"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


BAD_REGISTRY = """\
version: 1
intents:
  - name: reminder
    description: Reminders.
    kind: plan
    rules:
      - name: reminder.en.x
        language: en
        weight: 1.5
        keywords: [remind]
  - name: reminder
    description: Twice.
    kind: sometimes
"""


def test_intents_check_reports_every_problem_by_line(env: dict[str, str], tmp_path: Path) -> None:
    good = run_cli(["intents", "check"], env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "OK" in good.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_REGISTRY)
    done = run_cli(["intents", "check", str(bad)], env)
    assert done.returncode == exits.FAILED
    problems = done.stdout.splitlines()
    assert len(problems) >= 3, done.stdout  # weight, duplicate name, kind
    for line in problems:
        assert re.match(rf"{re.escape(str(bad))}:\d+:\d+: (error|warning): ", line), line
    lines_named = {int(line.split(":")[1]) for line in problems}
    assert {9, 11, 13} <= lines_named, done.stdout
    assert "error" in done.stderr

    syntax = tmp_path / "syntax.yaml"
    syntax.write_text("version: 1\nintents: [\n")
    done = run_cli(["intents", "check", str(syntax)], env)
    assert done.returncode == exits.FAILED
    assert re.match(rf"{re.escape(str(syntax))}:\d+:\d+: error: YAML syntax error", done.stdout)

    missing = run_cli(["intents", "check", str(tmp_path / "nope.yaml")], env)
    assert missing.returncode == exits.FAILED and "cannot read the file" in missing.stdout


# Configuration errors: one line each, a traceback only with --debug ------------------------


def test_bad_registry_stops_a_run_with_one_line(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_REGISTRY)
    env["CPA_INTENTS_PATH"] = str(bad)
    done = run_cli(["run", EN], env)
    assert done.returncode == exits.CONFIG
    line = one_line_error(done.stderr)
    assert f"{bad}:9" in line and "more problem" in line
    assert done.stdout == ""

    debug = run_cli(["--debug", "run", EN], env)
    assert debug.returncode == exits.CONFIG
    assert "Traceback" in debug.stderr and "RegistryError" in debug.stderr
    explain = run_cli(["intents", "explain", EN], env)
    assert explain.returncode == exits.CONFIG
    assert str(bad) in one_line_error(explain.stderr)


def test_unknown_llm_provider_is_one_line(env: dict[str, str]) -> None:
    env["CPA_LLM_PROVIDER"] = "foo"
    done = run_cli(["run", EN], env)
    assert done.returncode == exits.CONFIG
    assert "CPA_LLM_PROVIDER" in one_line_error(done.stderr)
    debug = run_cli(["run", EN, "--debug"], env)
    assert debug.returncode == exits.CONFIG and "Traceback" in debug.stderr


def test_unreachable_redis_is_one_line(env: dict[str, str]) -> None:
    env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    done = run_cli(["run", EN], env)
    assert done.returncode == exits.CONFIG
    line = one_line_error(done.stderr)
    assert "unreachable" in line and "REDIS_URL" in line
    shown = run_cli(["show", "some-id"], env)
    assert shown.returncode == exits.CONFIG
    assert "unreachable" in one_line_error(shown.stderr)


def test_an_unreachable_server_is_named_without_its_secrets(env: dict[str, str]) -> None:
    url = f"http://alice:s3cret-pass@127.0.0.1:{free_port()}/?token=t0ken"
    done = run_cli(["show", "some-id", "--server", url], env)
    assert done.returncode == exits.CONFIG
    line = one_line_error(done.stderr)
    assert "cannot reach the server" in line and "127.0.0.1" in line
    assert "s3cret-pass" not in done.stderr and "t0ken" not in done.stderr


def test_unusable_server_setting_is_one_line(env: dict[str, str]) -> None:
    env["CPA_API_KEYS"] = "no-key-here"
    done = run_cli(["serve"], env)
    assert done.returncode == exits.CONFIG
    assert "CPA_API_KEYS: entry 1 is not tenant:key" in one_line_error(done.stderr)


def test_unknown_conversation(env: dict[str, str]) -> None:
    for command in (["show", "no-such-id"], ["resume", "no-such-id"]):
        done = run_cli(command, env)
        assert done.returncode == exits.NOT_FOUND
        line = one_line_error(done.stderr)
        assert "no conversation no-such-id" in line and "embedded store" in line


def test_a_request_that_needs_an_llm_says_which_settings(env: dict[str, str]) -> None:
    done = run_cli(["run", "--json", NEEDS_LLM], env)
    assert done.returncode == exits.FAILED
    result = json.loads(done.stdout)
    assert_spec_object(result)
    assert result["status"] == "failed"
    assert result["result"]["error"]["code"] == "llm_not_configured"
    line = one_line_error(done.stderr)
    for setting in ("OPENAI_API_KEY", "OLLAMA_HOST", "CPA_LLM_BASE_URL"):
        assert setting in line

    human = run_cli(["run", NEEDS_LLM], env)
    assert human.returncode == exits.FAILED
    assert "OPENAI_API_KEY" in one_line_error(human.stderr)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hallo, guten Morgen!", "Hallo"),
        ("Hi, good morning!", "Hello"),
        ("Danke, tschüss!", "Gern"),
    ],
)
def test_greetings_need_no_llm(env: dict[str, str], text: str, expected: str) -> None:
    done = run_cli(["run", "--json", text], env)  # no LLM configured in `env`
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "done" and result["intent"] == "smalltalk"
    route = next(m for m in result["messages"] if m["performative"] == "route")
    assert route["content"]["target"] == "answer"
    assert expected in result["messages"][-1]["content"]["text"]  # a reply that fits, no LLM


# Running without a terminal: nothing hangs --------------------------------------------------


def test_without_a_terminal_the_desktop_todo_waits_then_show_and_resume(
    env: dict[str, str],
) -> None:
    done = run_cli(["run", "--json", "--yes", EN], env)  # approved: on to the desktop ToDo
    assert done.returncode == exits.WAITING, done.stderr
    waiting = json.loads(done.stdout)  # stdout holds the JSON object and nothing else
    assert_spec_object(waiting)
    assert waiting["status"] == "waiting" and waiting["intent"] == "reminder"
    statuses = {t["id"]: t["status"] for t in waiting["plan"]["todos"]}
    assert statuses == {"t1": "done", "t2": "running"}
    cid = resume_id(done.stderr)
    assert cid == waiting["conversation_id"]
    assert "no terminal" in done.stderr and "t2" in done.stderr

    shown = run_cli(["show", cid, "--json"], env)
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["messages"] == waiting["messages"]
    human = run_cli(["show", cid], env)
    assert human.returncode == 0
    for text in ("waiting", "reminder", "Draft the reminder", "LAM log", "assign", "propose"):
        assert text in human.stdout, text

    # The person comes back at a terminal: the desktop ToDo failed.
    term = PtyProcess(["resume", cid], env)
    try:
        term.expect(r"t2 · a ToDo for the desktop agent")
        term.expect(r"Done\? \[y = done / n = it failed\]")
        term.sendline("n")
        term.expect(r"What went wrong\?")
        term.sendline("the reminders app would not open")
        assert term.wait() == exits.FAILED
        term.expect(r"✗ failed")
        assert "the reminders app would not open" in term.screen
        assert "failed (failed" not in term.screen  # said once: the code is not_done
    finally:
        term.close()
    final = json.loads(run_cli(["show", cid, "--json"], env).stdout)
    assert final["status"] == "failed"
    t2 = final["plan"]["todos"][1]
    assert t2["status"] == "failed" and "would not open" in t2["error"]


def test_yes_approves_and_plain_output_on_redis(valkey_url: str, redis_prefix: str) -> None:
    env = clean_env(
        Path("/nonexistent-data-dir"),  # REDIS_URL is set: the data dir is never used
        CPA_HISTORY="false",  # (the history's SQLite file would be there)
        REDIS_URL=valkey_url,
        CPA_REDIS_PREFIX=redis_prefix,
        CPA_APPROVAL_POLICY="always",
    )
    done = run_cli(["run", "--yes", DE], env)
    assert done.returncode == exits.WAITING, done.stderr
    out = done.stdout  # not a terminal: one line per event, no escape codes
    assert "\x1b[" not in out
    assert f"Request: {DE}" in out
    assert "Intent: reminder · chosen by the rules (confidence 0.95)" in out
    assert "Plan: Erinnerung: " + DE in out  # the German template
    assert re.search(r"t1 done in [\d.]+s: Erinnerung: " + DE, out)
    assert "t2 waiting for you (desktop agent)" in out
    assert "Plan approved (--yes)." in done.stderr
    cid = resume_id(done.stderr)
    shown = json.loads(run_cli(["show", "--json", cid], env).stdout)
    agree = [m for m in shown["messages"] if m["performative"] == "agree"]
    assert len(agree) == 1 and agree[0]["content"]["comment"] == "approved with --yes"

    # Without --yes and without a terminal, the approval waits too (never hangs).
    done = run_cli(["run", "--json", EN], env)
    assert done.returncode == exits.WAITING
    assert json.loads(done.stdout)["status"] == "waiting"
    assert "approval" in done.stderr


# At a terminal -----------------------------------------------------------------------------


def test_live_view_approval_and_desktop_answer_in_english(env: dict[str, str]) -> None:
    env["CPA_APPROVAL_POLICY"] = "always"
    term = PtyProcess(["run", EN], env)
    try:
        term.expect(r"Intent\s+reminder · chosen by the rules")
        term.expect(r"Approve this plan\?")
        term.expect(r"Carry out this plan\? \[y/n\]")
        term.sendline("maybe")
        term.expect(r"Please type y or n")
        term.sendline("y")
        term.expect(
            r"t2\s+Add the reminder in the reminders app\s+desktop\s+t1\s+⏸ waiting for you"
        )
        term.expect(r"Done\?")
        term.sendline("y")
        term.expect(r"What came of it\?")
        term.sendline("added, 9:00 tomorrow")
        assert term.wait() == 0
        screen = term.screen
    finally:
        term.close()
    assert "rule reminder.en.remind" in screen[: screen.index("Approve this plan?")]
    # The header stays above the first prompt; after each answer only the table goes on.
    after = screen[screen.index("Carry out this plan?") :]
    assert "Conversation" not in after and "Intent" not in after
    # The last frame: both ToDos done with their outputs and times, then the answer.
    last = screen[screen.rindex("What came of it?") :]
    assert re.search(r"t1\s+Draft the reminder\s+template\s+—\s+✓ done\s+[\d.]+s", last)
    assert re.search(r"t2\s+Add the reminder in the reminders app\s+desktop\s+t1\s+✓ done", last)
    assert "→ added, 9:00 tomorrow" in last
    assert "Answer" in last and "done: added, 9:00 tomorrow" in last


def test_json_at_a_terminal_in_german(env: dict[str, str]) -> None:
    # stdin and stderr are the terminal (the prompts), stdout a pipe: only the JSON object.
    term = PtyProcess(["run", "--json", DE], env, stdout_pipe=True)
    try:
        term.expect(r"Carry out this plan\? \[y/n\]")  # it adds a reminder: it asks first
        term.sendline("y")
        term.expect(r"Done\?")
        term.sendline("y")
        term.expect(r"What came of it\?")
        term.sendline("")
        assert term.wait() == 0
    finally:
        term.close()
    result = json.loads(term.stdout)
    assert_spec_object(result)
    assert result["status"] == "done" and result["intent"] == "reminder"
    assert [t["status"] for t in result["plan"]["todos"]] == ["done", "done"]
    assert result["plan"]["todos"][1]["output"] is None  # nothing reported back
    intent = next(m for m in result["messages"] if m["content"].get("topic") == "intent")
    assert intent["content"]["source"] == "rules"
    assert result["messages"][-1]["content"]["topic"] == "answer"
    assert "Conversation" not in term.stdout  # the live view stays off with --json


def test_refusing_the_plan(env: dict[str, str]) -> None:
    env["CPA_APPROVAL_POLICY"] = "always"
    term = PtyProcess(["run", "--json", EN], env, stdout_pipe=True)
    try:
        term.expect(r"Carry out this plan\?")
        term.sendline("n")
        term.expect(r"Why not\?")
        term.sendline("I will do it myself")
        assert term.wait() == 0  # refusing is a decision, not a failure
    finally:
        term.close()
    result = json.loads(term.stdout)
    assert result["status"] == "done"
    assert result["result"] == {"refused": "I will do it myself"}
    refuse = [m for m in result["messages"] if m["performative"] == "refuse"]
    assert refuse and refuse[0]["content"]["reason"] == "I will do it myself"
    # The plan's ToDos are not pending (nothing will run them): skipped, and why.
    assert {(t["status"], t["error"]) for t in result["plan"]["todos"]} == {
        ("skipped", "plan refused")
    }
    shown = run_cli(["show", result["conversation_id"]], env).stdout
    for todo in ("t1", "t2"):
        assert re.search(rf"{todo}\s+.*↷ skipped", shown), shown
    assert shown.count("plan refused") == 2


def test_ctrl_c_at_the_prompt_then_resume_completes_it(env: dict[str, str]) -> None:
    term = PtyProcess(["run", "--yes", DE], env)
    try:
        term.expect(r"Done\?")
        term.interrupt()
        assert term.wait() == exits.INTERRUPTED
        term.expect(r"Stopped\. The conversation is saved; continue it with:")
        cid = resume_id(term.screen)
    finally:
        term.close()
    assert "Traceback" not in term.screen

    state = json.loads(run_cli(["show", "--json", cid], env).stdout)
    assert state["status"] == "waiting"

    term = PtyProcess(["resume", cid], env)
    try:
        term.expect(r"Done\?")
        term.sendline("yes")
        term.expect(r"What came of it\?")
        term.sendline("erledigt")
        assert term.wait() == 0
        term.expect(r"Answer")
    finally:
        term.close()
    state = json.loads(run_cli(["show", "--json", cid], env).stdout)
    assert state["status"] == "done"
    assert state["plan"]["todos"][1]["output"] == "erledigt"
    # Resuming a finished conversation shows it and exits with its status.
    again = run_cli(["resume", cid, "--json"], env)
    assert again.returncode == 0 and json.loads(again.stdout)["status"] == "done"


PARTY_REGISTRY = """\
version: 1
intents:
  - name: party
    description: Plan a party.
    kind: plan
    rules:
      - {name: party.en, language: en, weight: 0.9, keywords: [party]}
      - {name: party.de, language: de, weight: 0.9, keywords: [feier]}
    plan_template:
      goal: "Party: {request}"
      todos:
        - {id: t1, title: Draft the guest list, executor: template, inputs: {text: "Guests"}}
        - {id: t2, title: Draft the menu, executor: template, inputs: {text: "Menu"}}
        - id: t3
          title: Which day?
          description: Pick the day of the party.
          executor: human
          depends_on: [t1, t2]
        - id: t4
          title: Write the invitation
          executor: template
          inputs: {text: "Invitation for {t3}: {t1} and {t2}"}
          depends_on: [t1, t2, t3]
"""


def test_human_todo_after_parallel_todos(env: dict[str, str], tmp_path: Path) -> None:
    registry = tmp_path / "party.yaml"
    registry.write_text(PARTY_REGISTRY)
    env["CPA_INTENTS_PATH"] = str(registry)
    term = PtyProcess(["run", "Plan a party for Sam"], env)
    try:
        term.expect(r"t3 · a question for you")
        term.expect(r"Pick the day of the party\.")
        term.expect(r"Your answer: ")
        term.sendline("")
        term.expect(r"An answer is needed")
        term.sendline("Saturday")
        assert term.wait() == 0
        screen = term.screen
    finally:
        term.close()
    last = screen[screen.rindex("Your answer: ") :]
    assert "Conversation" not in last  # printed once, above the question
    for todo in ("t1", "t2", "t3", "t4"):
        assert re.search(rf"{todo}\s.*✓ done", last), todo
    assert re.search(r"t3\s+Which day\?\s+human\s+t1, t2\s", last)
    assert "→ Invitation for Saturday: Guests and Menu" in last


# serve, --server, studio --------------------------------------------------------------------


@pytest.mark.slow
def test_serve_and_run_through_the_server(tmp_path: Path) -> None:
    port = free_port()
    server_env = clean_env(
        tmp_path / "server", CPA_API_KEYS="acme:key-1", CPA_APPROVAL_POLICY="always"
    )
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        env=server_env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": "Bearer key-1"}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and server.poll() is None:
            try:
                if httpx.get(f"{url}/v1/capabilities", headers=headers).is_success:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert server.poll() is None, (tmp_path / "serve.log").read_text()

        env = clean_env(tmp_path / "client")
        wrong = run_cli(["run", "--server", url, "--api-key", "nope", EN], env)
        assert wrong.returncode == exits.CONFIG
        assert "refused the API key" in one_line_error(wrong.stderr)

        term = PtyProcess(["run", "--server", url, "--api-key", "key-1", EN], env)
        try:
            term.expect(r"Carry out this plan\?")  # approvals are asked here
            term.sendline("y")
            # The desktop ToDo goes to the desktop agent connected to the server, not to us.
            term.expect(r"⏸ waiting for the desktop agent")
            cid = re.search(r"Conversation\s+(\S+)", term.screen)
            assert cid
            inbox = httpx.get(
                f"{url}/v1/conversations/{cid.group(1)}/inbox",
                params={"receiver": "cpa-desktop"},
                headers=headers,
            ).json()
            assign = LAMMessage.from_dict(inbox[0])
            from lam import MessageFactory

            done = MessageFactory("cpa-desktop", assign.conversation_id).done(assign, "added")
            reply = httpx.post(f"{url}/v1/lam", json=done.to_dict(), headers=headers)
            assert reply.status_code == 202
            assert term.wait() == 0
            term.expect(r"done: added")
        finally:
            term.close()
        shown = run_cli(
            ["show", cid.group(1), "--json", "--server", url, "--api-key", "key-1"], env
        )
        assert shown.returncode == 0
        assert json.loads(shown.stdout)["status"] == "done"

        # No terminal: it does not wait for the desktop agent either; it says where the
        # answer goes (the agent's inbox) and how to follow, and exits 5.
        script = run_cli(["run", "--yes", "--server", url, "--api-key", "key-1", EN], env)
        assert script.returncode == exits.WAITING, script.stderr
        waiting = resume_id(script.stderr)
        assert "Waiting for the desktop agent to do t2" in script.stderr
        inbox = f"{url}/v1/conversations/{waiting}/inbox?receiver=cpa-desktop"
        assert f"  GET {inbox}" in script.stderr
        assert f"resume {waiting} --server {url}" in script.stderr
        assert httpx.get(inbox, headers=headers).json()[0]["performative"] == "assign"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()

    down = run_cli(["run", "--server", url, EN], clean_env(tmp_path / "client"))
    assert down.returncode == exits.CONFIG
    assert "cannot reach the server" in one_line_error(down.stderr)


@pytest.mark.slow
def _start_up_took_long(line: str) -> bool:
    """A line of langgraph-api's start-up timers (a warning over 3-5 s, and its second line)."""
    return (
        "langgraph_api.timing" in line or re.search(r"exceeded (the )?expected", line) is not None
    )


def test_studio_starts_langgraph_dev_offline_and_quiet(tmp_path: Path) -> None:
    workdir = langgraph_working_copy(tmp_path / "studio")
    env = clean_env(tmp_path)
    process = subprocess.Popen(
        [*CLI, "studio"],
        env=env,
        cwd=workdir,  # a langgraph.json here is used before the source tree's
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        said, started = read_lines_until(
            process.stdout, lambda line: line.startswith("API:"), timeout_s=120
        )
        assert started, "the dev server did not start:\n" + "".join(said)
        studio = next((line for line in said if line.startswith("Studio:")), "")
        match = re.search(r"baseUrl=(http://127\.0\.0\.1:\d+)", studio)
        assert match, "no Studio address printed:\n" + "".join(said)
        # Quiet: where it runs and the two addresses; no banner, no INFO log, no warning
        # about missing saver methods. Our API's one line about keys may stand between, and
        # on a busy machine langgraph-api's warnings that the start took long (its timers'
        # fixed thresholds, 3-5 s: about the machine, not about what it serves).
        said = [line for line in said if not _start_up_took_long(line)]
        assert said[0].startswith("Starting the LangGraph dev server"), said
        assert said[-2:] == [studio, said[-1]] and len(said) <= 4, "".join(said)
        assert all("cpa_planner.server" in line for line in said[1:-2]), said
        assert httpx.get(f"{match.group(1)}/ok").status_code == 200
        assistants = httpx.post(f"{match.group(1)}/assistants/search", json={}).json()
        assert any(a["graph_id"] == "planner" for a in assistants)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert (workdir / ".langgraph_api").is_dir()  # its state went to the working copy


def test_llm_server_says_what_to_install_when_it_is_not_there(tmp_path: Path) -> None:
    done = run_cli(
        ["llm-server", "--llama-server", str(tmp_path / "none"), "--model", str(tmp_path / "x")],
        clean_env(tmp_path),
    )
    assert done.returncode == exits.CONFIG
    assert "not installed: make llm-server installs" in done.stderr
    assert "Traceback" not in done.stderr


def test_llm_server_serves_with_the_context_and_threads_asked_for(tmp_path: Path) -> None:
    from cli.llm_server import LlamaFound, server_command

    found = LlamaFound(tmp_path / "llama-cpp-server", tmp_path / "model.gguf")
    command = server_command(found, "127.0.0.1", 9, context=8192, threads=1)
    assert command[command.index("-c") + 1] == "8192"
    assert command[command.index("-t") + 1] == "1"
    default = server_command(found, "127.0.0.1", 9)
    assert default[default.index("-c") + 1] == "4096" and "-t" not in default
