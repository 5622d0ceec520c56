"""Every documented example is accounted for: run as written, here or by a named test, or
said not to be runnable, and why (then checked as far as it can be: it parses, it is a valid
LAM message, a catalogue file that loads...).

The inventory is every fenced code block of README.md and docs/*.md, and every example of
examples/. Each is registered in `BLOCKS` by its file and a key: the block's first line,
stripped (a second block with the same first line in one file: the line + " (2)"); an
example file's key is "file". A block that is not registered fails
`test_every_documented_block_is_registered`, which prints its key. Register it as one of

    Covered("tests/test_x.py::test_name")   that test runs it as written (the test must exist)
    RunHere("shell")                        this file runs it (runners: `RUNNERS`); `leave_out`
                                            names commands of the block it does not run, and why
    NotRunnable("why", check)               an output sample, a configuration snippet, a command
                                            for another machine; `check(text)` validates what it
                                            can (`lam_message`, `catalogue_file`...)

and a registered block that is gone fails too (take its entry out).

A ```console block is a terminal: `$ command` lines, each followed by what it prints; an
ellipsis stands for any text within a line, and a line of only "…" for any lines. Commands
run in bash from the clone's root with the virtualenv on PATH (as after `. .venv/bin/activate`),
no LLM and no Redis configured, the embedded store in a temporary directory.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyte
import pytest
import yaml

from lam import LAMMessage, Performative, Plan
from tests.support.cli_harness import ROOT, PtyProcess, clean_env

ELLIPSIS = "…"
VENV_BIN = Path(sys.executable).parent


# -- the inventory --------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    path: str  # relative to the clone's root
    key: str
    lang: str
    text: str


def fenced_blocks(markdown: str) -> list[tuple[str, str]]:
    """(language, text) of each fenced block, in order."""
    return re.findall(r"^```(\w*)\n(.*?)^```$", markdown, re.M | re.S)


def inventory() -> list[Block]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found: list[Block] = []
    for page in pages:
        seen: dict[str, int] = {}
        for lang, text in fenced_blocks(page.read_text()):
            first = text.splitlines()[0].strip() if text.strip() else ""
            seen[first] = seen.get(first, 0) + 1
            key = first if seen[first] == 1 else f"{first} ({seen[first]})"
            found.append(Block(str(page.relative_to(ROOT)), key, lang, text))
    for example in sorted((ROOT / "examples").glob("*.py")):
        if example.name != "__init__.py":
            path = str(example.relative_to(ROOT))
            found.append(Block(path, "file", "python", example.read_text()))
    return found


# -- what each block is ---------------------------------------------------------------------


@dataclass(frozen=True)
class Covered:
    test: str  # "tests/test_x.py::test_name"


@dataclass(frozen=True)
class RunHere:
    runner: str  # a key of RUNNERS
    leave_out: tuple[tuple[str, str], ...] = ()  # (text of a command it does not run, why)


@dataclass(frozen=True)
class NotRunnable:
    why: str
    check: Callable[[str], None] | None = None


Entry = Covered | RunHere | NotRunnable


def json_values(text: str) -> list[Any]:
    """The JSON values of a block, one after another (a blank line or none between them)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while at < len(text.rstrip()):
        while text[at].isspace():
            at += 1
        value, at = decoder.raw_decode(text, at)
        values.append(value)
    return values


def lam_messages(text: str) -> None:
    """Message sketches: JSON, each a known performative between two parties."""
    for value in json_values(text):
        assert Performative(value["performative"]), value
        assert isinstance(value["sender"], str) and isinstance(value["receiver"], str)
        assert isinstance(value["content"], dict), value


def lam_message(text: str) -> None:
    """A whole message: valid as the server would take it."""
    (value,) = json_values(text)
    LAMMessage.from_dict(value)


def plan(text: str) -> None:
    (value,) = json_values(text)
    Plan.model_validate(value)


def catalogue_file(text: str) -> None:
    from graph.tools.files import parse_tool_file

    catalogue = parse_tool_file(yaml.safe_load(text), "docs/tools.md")
    assert catalogue.tools and catalogue.mcp_servers, catalogue


def prometheus_scrape(text: str) -> None:
    (job,) = yaml.safe_load(text)["scrape_configs"]
    assert job["metrics_path"] == "/metrics"  # the server's route (server.py)


def langgraph_http(text: str) -> None:
    fragment = json.loads("{" + text + "}")
    assert fragment["http"] == json.loads((ROOT / "langgraph.json").read_text())["http"]


def registry_modeline(text: str) -> None:
    """The line the packaged registry starts with, naming a schema that is there."""
    registry = ROOT / "prompts" / "intents.yaml"
    assert registry.read_text().splitlines()[0] == text.strip()
    assert (registry.parent / text.split("$schema=")[1].strip()).is_file()


def yaml_schemas_setting(text: str) -> None:
    """VS Code's yaml.schemas: a schema that is there, for files that are."""
    for schema, patterns in json.loads(text)["yaml.schemas"].items():
        assert (ROOT / schema).is_file(), schema
        assert all(list(ROOT.glob(pattern)) for pattern in patterns), patterns


def json_log_record(text: str) -> None:
    (record,) = json_values(text.replace("…", ""))
    assert {"time", "level", "logger", "message"} <= set(record), record


def plan_draft(text: str) -> None:
    (draft,) = json_values(text)
    assert draft["goal"] and all({"tool", "arguments", "after"} <= set(s) for s in draft["steps"])


def supabase_url(text: str) -> None:
    from graph.history.engines import database_url

    url = database_url(text.strip().split("=", 1)[1])
    assert url.drivername == "postgresql+asyncpg" and url.query.get("ssl") == "require", url


SETTINGS_CHECKED = "its setting names are checked with every page's (tests/test_settings.py)"

# fmt: off
BLOCKS: dict[tuple[str, str], Entry] = {
    # README.md
    ("README.md", 'make demo   # sets up .venv, then runs: .venv/bin/cpa-planner run --yes "Remind me to call Anna tomorrow at 9"'):  # noqa: E501
        RunHere("make", leave_out=(("make test", "it is this test suite (CI runs it: .ci/run)"),)),
    ("README.md", "make llm-server                     # once: llama.cpp's llama-server and SmolLM2-135M-Instruct"):  # noqa: E501
        Covered("tests/test_llm_server.py::test_cli_conversation"),
    ("README.md", 'CPA_API_KEYS="me:my-secret-key" .venv/bin/cpa-planner serve --port 8000'):
        Covered("tests/test_readme_walkthrough.py::test_the_walkthrough_runs_as_written"),
    ("README.md", "export CPA=http://127.0.0.1:8000 KEY=my-secret-key"):
        Covered("tests/test_readme_walkthrough.py::test_the_walkthrough_runs_as_written"),
    ("README.md", "pick() { python3 -c 'import json, sys"):
        Covered("tests/test_readme_walkthrough.py::test_the_walkthrough_runs_as_written"),
    ("README.md", 'OPENED=$(curl -sS "$CPA/v1/lam?wait=30" -H "Authorization: Bearer $KEY" \\'):
        Covered("tests/test_readme_walkthrough.py::test_the_walkthrough_runs_as_written"),
    ("README.md", 'curl -sS "$CPA/v1/conversations/$CID" -H "Authorization: Bearer $KEY" | python3 -m json.tool'):  # noqa: E501
        Covered("tests/test_readme_walkthrough.py::test_the_walkthrough_runs_as_written"),
    ("README.md", 'PROPOSE=$(curl -sS "$CPA/v1/conversations/$CID/inbox?receiver=user" \\'):
        Covered("tests/test_readme_walkthrough.py::test_the_walkthrough_runs_as_written"),
    ("README.md", 'INBOX=$(curl -sS "$CPA/v1/conversations/$CID/inbox?receiver=cpa-desktop" \\'):
        Covered("tests/test_readme_walkthrough.py::test_the_walkthrough_runs_as_written"),
    ("README.md", 'curl -sS "$CPA/v1/lam?wait=30" -H "Authorization: Bearer $KEY" \\'):
        Covered("tests/test_readme_walkthrough.py::test_the_walkthrough_runs_as_written"),
    ("README.md", 'ASSIGN=$(curl -sS "$CPA/v1/conversations/$CID/inbox?receiver=cpa-desktop" \\'):
        Covered("tests/test_readme_walkthrough.py::test_the_walkthrough_runs_as_written"),
    ("README.md", "failed"):  # what the block before it prints; the test compares
        Covered("tests/test_readme_walkthrough.py::test_the_walkthrough_runs_as_written"),
    ("README.md", 'curl -sSN "$CPA/v1/conversations/$CID/events" -H "Authorization: Bearer $KEY" \\'):  # noqa: E501
        Covered("tests/test_readme_walkthrough.py::test_the_walkthrough_runs_as_written"),
    # docs/
    ("docs/a2a.md", "import asyncio, uuid"):
        Covered("tests/test_a2a_server.py::test_the_documented_client_example_runs"),
    ("docs/architecture.md", "---"):
        Covered("tests/test_readme.py::test_the_graph_picture_is_current"),
    ("docs/cli.md", '$ cpa-planner run "Remind me to call Anna tomorrow at 9"'):
        RunHere("terminal"),
    ("docs/cli.md", '$ CPA_LLM_PROVIDER=foo cpa-planner run "Remind me to call Anna"'):
        Covered("tests/test_docs_examples.py::test_the_cli_error_examples_are_what_it_prints"),
    ("docs/console.md", "CPA_CONSOLE_SCREENSHOTS=docs .venv/bin/python -m pytest tests/test_console.py -k docs_screenshots"):  # noqa: E501
        # Run as written it rewrites the docs' pictures; the test it names runs without that.
        Covered("tests/test_console.py::test_the_docs_screenshots_show_what_the_product_ships"),
    ("docs/deploy.md", "make image"):
        Covered("tests/test_deploy.py::test_the_image_runs_a_conversation_and_stops_cleanly"),
    ("docs/deploy.md", "podman image inspect --format '{{.Size}}' localhost/cpa-planner:latest"):
        NotRunnable("measures the built image (the figures in deploy.md); pushing to a "
                    "directory writes 155 MB for a number"),
    ("docs/deploy.md", "podman run -d --name cpa -p 127.0.0.1:8000:8000 \\"):
        NotRunnable("needs a Redis at redis.internal; the image runs with a Redis in "
                    "tests/test_deploy.py::test_the_image_runs_a_conversation_and_stops_cleanly; "
                    + SETTINGS_CHECKED),
    ("docs/deploy.md", 'export CPA_API_KEYS="me:$(openssl rand -hex 24)" CPA_METRICS_TOKEN="$(openssl rand -hex 24)" \\'):  # noqa: E501
        NotRunnable("Docker's compose, not in CI; the same file runs with podman-compose in "
                    "tests/test_deploy.py::test_the_compose_stack_serves_through_one_port_and_is_scraped"),
    ("docs/deploy.md", "make image deploy-tools"):
        Covered("tests/test_deploy.py::test_the_compose_stack_serves_through_one_port_and_is_scraped"),
    ("docs/front-door.md", ".venv/bin/cpa-planner intents eval tests/data/intents_multi.jsonl"):
        RunHere("shell", leave_out=(("benchmarks.open_world", "needs CLINC150 and TaskBench "
                                     "downloaded (its PATHs); not in the repository"),)),
    ("docs/http.md", '"http": {"app": "server:app"}'):
        NotRunnable("a fragment of langgraph.json", langgraph_http),
    ("docs/intents.md", "# yaml-language-server: $schema=intents.schema.json"):
        NotRunnable("an editor's modeline: the YAML language server reads it", registry_modeline),
    ("docs/intents.md", '{"yaml.schemas": {"prompts/intents.schema.json": ["prompts/intents.yaml", "**/*_intents.yaml"]}}'):  # noqa: E501
        NotRunnable("a VS Code setting", yaml_schemas_setting),
    ("docs/intents.md", ".venv/bin/cpa-planner intents schema > prompts/intents.schema.json"):
        Covered("tests/test_intent_registry_schema.py::test_committed_schema_is_the_generated_one"),
    ("docs/intents.md", ".venv/bin/cpa-planner intents eval tests/data/intents_eval_en.jsonl"):
        RunHere("shell"),
    ("docs/intents.md", ".venv/bin/cpa-planner intents calibrate tests/data/intents_calibration.jsonl   # prints the grid and the pick"):  # noqa: E501
        RunHere("shell"),
    ("docs/llm.md", "make llm-server                     # once: llama.cpp's llama-server and SmolLM2-135M-Instruct"):  # noqa: E501
        Covered("tests/test_llm_server.py::test_cli_conversation"),
    ("docs/llm.md", "export CPA_LLM_BASE_URL=http://127.0.0.1:8080/v1 CPA_LLM_MODEL=smollm2"):
        Covered("tests/test_llm_server.py::test_cli_conversation"),
    ("docs/tools.md", "# TaskBench's files for one domain: taskbench/data_multimedia/{tool_desc,data,user_requests}.json"):  # noqa: E501
        NotRunnable("needs TaskBench's data files (not ours to ship) and 35 min of llama-server "
                    "per domain; the same command runs on a fixture in tests/test_taskbench.py "
                    "(and against llama-server in its llm test)"),
    ("docs/history.md", "CPA_HISTORY_URL=postgresql://postgres.<project-ref>:<password>@aws-0-<region>.pooler.supabase.com:5432/postgres?sslmode=require"):
        NotRunnable("a Supabase project's URL (no network here); the same code runs against a "
                    "real PostgreSQL in tests/test_history.py", supabase_url),
    ("docs/operations.md", "scrape_configs:"):
        NotRunnable("a Prometheus configuration snippet; a real Prometheus scrapes the server "
                    "in tests/test_prometheus.py", prometheus_scrape),
    ("docs/operations.md", "turn                              request → answer (recorded by the run that ends the turn)"):  # noqa: E501
        NotRunnable("a picture of a turn's spans; tests/test_telemetry.py checks them"),
    ("docs/operations.md", "docker run --rm -p 16686:16686 -p 4318:4318 jaegertracing/all-in-one:latest"):  # noqa: E501
        NotRunnable("pulls Jaeger from Docker Hub (no network in the tests); traces go to a "
                    "real OTLP receiver in tests/test_telemetry.py; " + SETTINGS_CHECKED),
    ("docs/operations.md", '{"time": "2026-11-29T20:59:25.721Z", "level": "info", "logger": "cpa_planner.turn",'):  # noqa: E501
        NotRunnable("a sample log record", json_log_record),
    ("docs/protocol.md", "from lam import LAMMessage, MessageFactory, Performative, Plan, ToDo, LAMValidationError"):  # noqa: E501
        RunHere("python"),
    ("docs/protocol.md", "{"):
        NotRunnable("a sample message", lam_message),
    ("docs/protocol.md", '{"performative": "request", "sender": "user", "receiver": "planner",'):
        NotRunnable("sketches of each performative (ids and envelopes left out)", lam_messages),
    ("docs/protocol.md", "{ (2)"):
        NotRunnable("a sample plan", plan),
    ("docs/protocol.md", '>>> LAMMessage.from_dict({"lam_version": "1.0", "performative": "done", "sender": "cpa-desktop",'):  # noqa: E501
        RunHere("doctest"),
    ("docs/replicas.md", "REDIS_URL=redis://127.0.0.1:6379/0 CPA_API_KEYS=acme:$KEY cpa-planner serve --host 0.0.0.0 --workers 2"):  # noqa: E501
        Covered("tests/test_replicas.py::test_serve_workers_runs_replicas_on_one_port"),
    ("docs/replicas.md", "# on each of app1, app2, app3"):
        NotRunnable("three machines; replicas on one Redis run in tests/test_replicas.py; "
                    + SETTINGS_CHECKED),
    ("docs/studio.md", ".venv/bin/cpa-planner studio      # or, by hand, from the project root:"):
        Covered("tests/test_cli.py::test_studio_starts_langgraph_dev_offline_and_quiet"),
    ("docs/tools.md", ".venv/bin/cpa-planner tools                       # the catalogue a local run plans with"):  # noqa: E501
        Covered("tests/test_mcp.py::test_the_commands_of_docs_tools_md_run_as_written"),
    ("docs/tools.md", '{"lam_version": "1.0", "performative": "offer", "sender": "cpa-desktop", "receiver": "planner",'):  # noqa: E501
        NotRunnable("a sample message", lam_message),
    ("docs/tools.md", 'CPA_MCP_SERVERS="time=.venv/bin/python -m mcp_server_time --local-timezone Europe/Berlin" .venv/bin/cpa-planner tools'):  # noqa: E501
        Covered("tests/test_mcp.py::test_the_commands_of_docs_tools_md_run_as_written"),
    ("docs/tools.md", "executor: desktop            # who runs the tools below unless one says (default desktop)"):  # noqa: E501
        NotRunnable("a sample catalogue file", catalogue_file),
    ("docs/tools.md", '{"goal": "Shred the tax files",'):
        NotRunnable("a sample of the model's plan draft", plan_draft),
    ("docs/tools.md", "ToDo 't1' (tool find_files): argument 'query' 2024 is not of type 'string'."):  # noqa: E501
        Covered("tests/test_tool_plans.py::test_bad_arguments_are_named_and_repaired"),
    ("docs/tools.md", ".venv/bin/python -m benchmarks.tool_narrowing"):
        Covered("tests/test_mcp.py::test_the_commands_of_docs_tools_md_run_as_written"),
    ("docs/tools.md", ".venv/bin/python -m benchmarks.tool_choice          # starts llama-server with SmolLM2"):  # noqa: E501
        NotRunnable("about 6 min of llama-server; the same command runs on scripted planning "
                    "calls in tests/test_tool_choice.py"),
    # examples/
    ("examples/desktop_agent.py", "file"):
        Covered("tests/test_desktop_agent_example.py::test_the_example_does_the_desktop_todos_of_one_conversation"),
}
# fmt: on


def registration_hint(block: Block) -> str:
    return f"    ({block.path!r}, {block.key!r}): Covered(...) | RunHere(...) | NotRunnable(...),"


def test_every_documented_block_is_registered() -> None:
    blocks = inventory()
    missing = [b for b in blocks if (b.path, b.key) not in BLOCKS]
    assert not missing, (
        "documented blocks nobody runs or explains; register each in BLOCKS of "
        "tests/test_docs_examples.py (its docstring says how):\n"
        + "\n".join(registration_hint(b) for b in missing)
    )
    gone = set(BLOCKS) - {(b.path, b.key) for b in blocks}
    assert not gone, f"registered blocks no longer in the docs (take them out): {sorted(gone)}"


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        n.name
        for n in ast.walk(tree)
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name.startswith("test_")
    }


def test_a_covered_block_names_a_test_that_exists() -> None:
    for (path, key), entry in BLOCKS.items():
        if isinstance(entry, Covered):
            file, _, name = entry.test.partition("::")
            assert (ROOT / file).is_file(), f"{path}: {key}: no {file}"
            assert name in _test_names(ROOT / file), f"{path}: {key}: no {entry.test}"
        elif isinstance(entry, RunHere):
            assert entry.runner in RUNNERS, f"{path}: {key}: no runner {entry.runner}"


def _by_entry(kind: type) -> list[Any]:
    return [
        pytest.param(b, BLOCKS[(b.path, b.key)], id=f"{b.path}:{b.key[:40]}")
        for b in inventory()
        if isinstance(BLOCKS.get((b.path, b.key)), kind)
    ]


@pytest.mark.parametrize(("block", "entry"), _by_entry(NotRunnable))
def test_what_cannot_run_is_checked_as_far_as_it_can_be(block: Block, entry: NotRunnable) -> None:
    assert entry.why
    if entry.check is not None:
        entry.check(block.text)


# -- the runners ----------------------------------------------------------------------------


def commands(block: str) -> list[str]:
    """A shell block's commands: continuation lines joined, comments and blank lines left out."""
    joined = re.sub(r"\\\n\s*", " ", block)
    out = []
    for line in joined.splitlines():
        command = re.split(r"\s{2,}#", line)[0].strip()
        if command and not command.startswith("#"):
            out.append(command)
    return out


def shell_env(tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path, PATH=f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin")


def run_shell(block: Block, entry: RunHere, tmp_path: Path) -> None:
    left_out = [text for text, _ in entry.leave_out]
    to_run = [c for c in commands(block.text) if not any(t in c for t in left_out)]
    assert to_run, block.text
    for command in to_run:
        done = subprocess.run(
            ["bash", "-eu", "-o", "pipefail", "-c", command],
            cwd=ROOT,
            env=shell_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        assert done.stdout.strip(), f"{command} printed nothing"


def run_make(block: Block, entry: RunHere, tmp_path: Path) -> None:
    """`make demo` in the clone, as written: set-up is done (this suite runs in its .venv)."""
    if Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip("the suite does not run in the clone's .venv (make demo would set one up)")
    if subprocess.run(["make", "-q", "setup"], cwd=ROOT, check=False).returncode != 0:
        pytest.skip("the .venv is older than pyproject.toml: make demo would install first")
    left_out = [text for text, _ in entry.leave_out]
    to_run = [c for c in commands(block.text) if not any(t == c for t in left_out)]
    assert to_run == ["make demo"], to_run
    env = {k: v for k, v in shell_env(tmp_path).items() if k != "PATH"}
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"  # make finds .venv/bin itself
    done = subprocess.run(
        ["bash", "-c", "make demo"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # No terminal here: the desktop ToDo waits, and the command says how to pick it up.
    assert "Remind me to call Anna tomorrow at 9" in done.stdout, done.stdout
    assert "resume" in done.stdout + done.stderr, done.stdout + done.stderr


def run_python(block: Block, entry: RunHere, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", block.text],
        cwd=ROOT,
        env=shell_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def run_doctest(block: Block, entry: RunHere, tmp_path: Path) -> None:
    """A `>>>` statement whose printed result is an exception: `Name: message`, wrapped."""
    lines = block.text.splitlines()
    source = "\n".join(line[4:] for line in lines if line.startswith((">>> ", "... ")))
    expected = " ".join(line for line in lines if not line.startswith((">>> ", "... ")))
    namespace: dict[str, Any] = {}
    exec("from lam import *", namespace)
    try:
        exec(compile(source, block.path, "exec"), namespace)
    except Exception as exc:
        printed = f"{type(exc).__name__}: {exc}"
    else:
        printed = "(no exception)"
    assert " ".join(printed.split()) == " ".join(expected.split()), printed


PROMPT_ANSWER = re.compile(r"(\[y/n\]|\[y = done / n = it failed\]|\(Enter to skip\)) (.*)$")


def rendered(raw: bytes, columns: int) -> list[str]:
    """What a terminal `columns` wide shows after `raw`, scrollback included."""
    screen = pyte.HistoryScreen(columns, 50, history=5000)
    pyte.ByteStream(screen).feed(raw)
    kept = ["".join(line[x].data for x in range(columns)) for line in screen.history.top]
    return [line.rstrip() for line in [*kept, *screen.display]]


def run_terminal(block: Block, entry: RunHere, tmp_path: Path) -> None:
    """A ```console block at a terminal 100 columns wide: its answers typed at its prompts,
    and what the terminal shows at the end compared with the block."""
    ((command, expected),) = transcript(block.text)
    args = command.split(" ", 1)
    assert args[0] == "cpa-planner", command
    env = clean_env(tmp_path, COLUMNS="100")
    term = PtyProcess(shlex.split(args[1]), env)
    try:
        for line in expected:
            found = PROMPT_ANSWER.search(line)
            if found:
                term.expect(re.escape(found.group(1)))
                term.sendline(found.group(2))
        assert term.wait() == 0
        with term._lock:
            raw = bytes(term._buffer)
    finally:
        term.close()
    shown = rendered(raw, 100)
    while shown and not shown[-1]:
        shown.pop()
    assert matches(expected, shown), "\n".join(shown)


RUNNERS: dict[str, Callable[[Block, RunHere, Path], None]] = {
    "shell": run_shell,
    "make": run_make,
    "python": run_python,
    "doctest": run_doctest,
    "terminal": run_terminal,
}
SLOW_RUNNERS = {"shell", "make", "terminal"}  # they start the command line, the store


def _run_here(slow: bool) -> list[Any]:
    return [p for p in _by_entry(RunHere) if (p.values[1].runner in SLOW_RUNNERS) == slow]


@pytest.mark.parametrize(("block", "entry"), _run_here(slow=False))
def test_the_blocks_run_here_run_as_written(block: Block, entry: RunHere, tmp_path: Path) -> None:
    RUNNERS[entry.runner](block, entry, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(("block", "entry"), _run_here(slow=True))
def test_the_commands_run_here_run_as_written(block: Block, entry: RunHere, tmp_path: Path) -> None:
    RUNNERS[entry.runner](block, entry, tmp_path)


# -- docs/cli.md's error messages -----------------------------------------------------------


def console_blocks(markdown: str) -> list[str]:
    return [text for lang, text in fenced_blocks(markdown) if lang == "console"]


def transcript(block: str) -> list[tuple[str, list[str]]]:
    """The block's commands, each with the lines it is said to print."""
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    return steps


def _line_pattern(expected: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in expected.split(ELLIPSIS)]
    return re.compile(".*".join(parts) + r"\s*")


def matches(expected: list[str], printed: list[str]) -> bool:
    """Whether `printed` is `expected`, with "…" as a wildcard (a lone one: any lines)."""
    if not expected:
        return not printed
    head, rest = expected[0], expected[1:]
    if head == ELLIPSIS:
        return any(matches(rest, printed[i:]) for i in range(len(printed) + 1))
    return (
        bool(printed)
        and bool(_line_pattern(head).fullmatch(printed[0]))
        and matches(rest, printed[1:])
    )


def _errors_block() -> str:
    page = (ROOT / "docs" / "cli.md").read_text()
    (block,) = [b for b in console_blocks(page) if "cpa-planner: error:" in b]
    return block


@pytest.mark.slow  # each starts the command line, some the embedded store
@pytest.mark.parametrize(
    "command", [c for c, _ in transcript(_errors_block())], ids=lambda c: c.split('"')[0][:40]
)
def test_the_cli_error_examples_are_what_it_prints(command: str, tmp_path: Path) -> None:
    expected = dict(transcript(_errors_block()))[command]
    without_comment = command.split("  #")[0]
    env = clean_env(tmp_path, PATH=f"{VENV_BIN}:/usr/bin:/bin")
    done = subprocess.run(
        ["bash", "-c", f"{without_comment} 2>&1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    printed = [line.rstrip() for line in done.stdout.splitlines()]
    assert matches(expected, printed), "\n".join(printed)
    assert done.returncode != 0  # each one is an error


def test_the_pattern_reads_ellipses_as_the_docs_mean_them() -> None:
    assert matches(["a: …; b"], ["a: anything at all; b"])
    assert matches(["…", "error: x"], ["one", "two", "error: x"])
    assert not matches(["error: x"], ["error: y"])
    assert not matches(["a"], ["a", "extra line"])


def test_a_new_block_is_reported_with_how_to_register_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    extra = Block("docs/new.md", "echo hello", "sh", "echo hello\n")
    real = inventory()
    monkeypatch.setattr(sys.modules[__name__], "inventory", lambda: [*real, extra])
    with pytest.raises(AssertionError, match=r"\('docs/new.md', 'echo hello'\): Covered"):
        test_every_documented_block_is_registered()
