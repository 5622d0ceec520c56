"""The action catalogue's parts: catalogue files (ours and TaskBench's), merging sources,
narrowing a 200-tool catalogue, the grammar's view of a tool's schema, MCP's effects.

The 200-tool catalogue and its labelled requests are `benchmarks/workloads/tools.json` and
`tool_requests.json` (written by `benchmarks/workloads/make_tools.py`); docs/tools.md has
the measured recall.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from graph.builder import make_services
from graph.config import ConfigError, Settings
from graph.plan_schema import plan_json_schema
from graph.tools.arguments import plan_problems, schema_errors
from graph.tools.catalogue import Catalogue, Entry, tool_entries
from graph.tools.executors import executor_entries
from graph.tools.files import ToolFileError, load_tool_file, parse_tool_file
from graph.tools.mcp import McpServer, mcp_effect
from graph.tools.narrowing import narrow, rank_tools
from lam import Plan, Tool
from nodes.plan import planning_prompt

WORKLOADS = Path(__file__).resolve().parent.parent / "benchmarks" / "workloads"
SHRED = "Find my tax files and shred them"


# -- catalogue files --------------------------------------------------------------------------


def test_a_catalogue_file_declares_tools_and_mcp_servers(tmp_path: Path) -> None:
    path = tmp_path / "tools.yaml"
    path.write_text(
        """
executor: desktop
tools:
  - name: find_files
    description: Find files by name.
    input_schema: {type: object, properties: {query: {type: string}}, required: [query]}
    returns: the paths found
    effect: read
  - name: print_document
    description: Print a document.
mcp_servers:
  time: {command: [python, -m, mcp_server_time]}
  notes: {url: "http://127.0.0.1:8931/mcp"}
  shell: {command: "uvx mcp-server-git --repository /tmp/x", env: {A: b}}
"""
    )
    loaded = load_tool_file(path)
    assert [t.name for t in loaded.tools] == ["find_files", "print_document"]
    assert loaded.tools[0].effect == "read" and loaded.tools[1].effect == "change"
    servers = {s.name: s for s in loaded.mcp_servers}
    assert servers["time"].command == ("python", "-m", "mcp_server_time")
    assert servers["notes"].url == "http://127.0.0.1:8931/mcp"
    assert servers["shell"].command[:2] == ("uvx", "mcp-server-git") and servers["shell"].env
    # The same as JSON.
    as_json = tmp_path / "tools.json"
    as_json.write_text(json.dumps({"tools": [t.model_dump() for t in loaded.tools]}))
    assert load_tool_file(as_json).tools == loaded.tools


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("tools: [{name: x, effect: Delete}]", "tools[0] (x): effect: effect 'Delete' is not"),
        (
            "tools: [{name: x, input_schema: {type: object, properties: {a: {type: texty}}}}]",
            "tools[0] (x): input_schema is not valid JSON Schema at properties/a/type",
        ),
        ("tools: [{name: x}, {name: x}]", "tool name(s) given twice: x"),
        ("tool: []", "unknown key(s) tool"),
        ("tools: {name: x}", "`tools` must be a list"),
        ("mcp_servers: {time: {}}", "mcp_servers.time: give either `command`"),
        ("mcp_servers: {a.b: {url: 'http://x'}}", "a server name is a word without dots"),
        ("[1, 2]", "expected an object with `tools`"),
        ("tools: [: broken", "not valid YAML"),
    ],
)
def test_a_bad_catalogue_file_is_refused_naming_file_and_entry(
    tmp_path: Path, content: str, says: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(ToolFileError) as refused:
        load_tool_file(path)
    assert str(refused.value).startswith(f"{path}: ")
    assert says in str(refused.value)


def test_a_bad_catalogue_file_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("tools: [{name: x, effect: Delete}]")
    with pytest.raises(ConfigError, match=r"CPA_TOOLS_FILES: .*t.yaml: tools\[0\]"):
        make_services(Settings(tools_files=(str(tmp_path / "t.yaml"),)))
    with pytest.raises(ConfigError, match=r"CPA_TOOLS_FILES: .*cannot read it"):
        make_services(Settings(tools_files=(str(tmp_path / "missing.yaml"),)))


def test_taskbench_tool_descriptions_load_as_they_are() -> None:
    # The two shapes of TaskBench's tool_desc.json (written here, not copied): typed
    # inputs and outputs (multimedia, Hugging Face), or named parameters (daily-life APIs).
    typed = parse_tool_file(
        {
            "nodes": [
                {
                    "id": "Image Downloader",
                    "desc": "Downloads an image from a URL.",
                    "input-type": ["url"],
                    "output-type": ["image"],
                },
                {
                    "id": "Visual Question Answering",
                    "desc": "Answers a question about an image.",
                    "input-type": ["image", "text", "text"],
                    "output-type": ["text"],
                },
            ]
        }
    )
    download, vqa = typed.tools
    assert download.name == "Image Downloader" and download.returns == "the image"
    assert download.input_schema["required"] == ["url"]
    assert list(vqa.input_schema["properties"]) == ["image", "text", "text_2"]
    named = parse_tool_file(
        {
            "nodes": [
                {
                    "id": "get_weather",
                    "desc": "Get the weather for a city and a day",
                    "parameters": [
                        {"name": "location", "type": "string", "desc": "The city"},
                        {"name": "date", "type": "date", "desc": "The day"},
                        {"name": "days", "type": "integer", "desc": "How many"},
                    ],
                }
            ]
        }
    )
    (weather,) = named.tools
    properties = weather.input_schema["properties"]
    assert properties["location"] == {"type": "string", "description": "The city"}
    assert properties["date"] == {"type": "string", "description": "The day (a date)"}
    assert properties["days"]["type"] == "integer"
    assert weather.input_schema["required"] == ["location", "date", "days"]
    # A TaskBench catalogue plans like any other: its names, its arguments.
    catalogue = Catalogue.merge([], tool_entries(typed.tools, "file:t", "desktop"))
    schema = plan_json_schema(catalogue, 4)
    Draft202012Validator.check_schema(schema)
    assert "Image Downloader" in json.dumps(schema)


# -- merging --------------------------------------------------------------------------------


def test_sources_merge_into_one_namespace_later_names_qualified() -> None:
    executors = executor_entries(make_services(Settings()).executors)
    mine = [Tool(name="find_files", effect="read"), Tool(name="llm", description="an llm tool")]
    theirs = [Tool(name="find_files", effect="read")]
    catalogue = Catalogue.merge(
        executors,
        [
            *tool_entries(mine, "file:a.yaml", "desktop"),
            *tool_entries(theirs, "offer:cpa-desktop", "desktop"),
        ],
    )
    assert catalogue.get("llm") is not None and catalogue.get("llm").kind == "executor"  # type: ignore[union-attr]
    qualified = catalogue.tool("a.yaml.llm")
    assert qualified is not None and qualified.call_name == "llm"
    second = catalogue.tool("cpa-desktop.find_files")
    assert second is not None and second.call_name == "find_files"
    assert catalogue.tool("find_files").source == "file:a.yaml"  # type: ignore[union-attr]


async def test_a_tool_whose_executor_runs_no_tools_is_left_out(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(
        "tools: [{name: ok_tool}, {name: by_llm, executor: llm}, {name: by_nobody, executor: x}]"
    )
    svc = make_services(Settings(tools_files=(str(tmp_path / "t.yaml"),)))
    catalogue = await svc.tools.catalogue()
    assert [e.name for e in catalogue.tools] == ["ok_tool"]
    assert catalogue.tool("ok_tool").executor == "desktop"  # type: ignore[union-attr]


# -- narrowing a large catalogue ------------------------------------------------------------


def big_catalogue() -> Catalogue:
    loaded = load_tool_file(WORKLOADS / "tools.json")
    executors = executor_entries(make_services(Settings()).executors)
    return Catalogue.merge(executors, tool_entries(loaded.tools, loaded.source, "desktop"))


def recall(catalogue: Catalogue, requests: list[dict[str, Any]], k: int) -> float:
    found = wanted = 0
    for request in requests:
        shown = {e.name for e in narrow(catalogue, request["text"], k).tools}
        found += sum(t in shown for t in request["tools"])
        wanted += len(request["tools"])
    return found / wanted


def test_a_200_tool_catalogue_is_narrowed_to_the_right_tools() -> None:
    catalogue = big_catalogue()
    assert len(catalogue.tools) == 200
    requests = json.loads((WORKLOADS / "tool_requests.json").read_text())
    english = [r for r in requests if r["language"] == "en"]
    assert len(english) == 25
    # Measured (docs/tools.md): 0.97 of the right tools among the 12 shown for the English
    # requests; less across languages, the German requests meeting English descriptions.
    assert recall(catalogue, english, 12) >= 0.95
    assert recall(catalogue, requests, 12) >= 0.85
    assert recall(catalogue, english, 12) > recall(catalogue, english, 5)

    shown = narrow(catalogue, SHRED, 12)
    assert len(shown.tools) == 12 and len(shown.executors) == len(catalogue.executors)
    assert {"files.find_files", "files.shred_files"} <= {e.name for e in shown.tools}
    top = [name for name, _ in rank_tools(catalogue, SHRED)[:2]]
    assert set(top) == {"files.find_files", "files.shred_files"}
    # What the planner is shown: those tools only, in its prompt and in its schema.
    prompt = planning_prompt(SHRED, shown, 8)[0].text
    assert "files.shred_files" in prompt and "banking.transfer_money" not in prompt
    consts = json.dumps(plan_json_schema(shown, 8))
    assert '"files.shred_files"' in consts and '"music.play_song"' not in consts


def test_narrowing_keeps_what_the_plan_under_repair_names() -> None:
    catalogue = big_catalogue()
    shown = narrow(catalogue, SHRED, 3, keep=["music.play_song"])
    assert "music.play_song" in {e.name for e in shown.tools}
    small = Catalogue.merge([], tool_entries([Tool(name="a"), Tool(name="b")], "f", "desktop"))
    # A small catalogue is shown whole, its tools closest first.
    assert set(narrow(small, "anything", 12).names()) == {"a", "b"}


# -- what the grammar holds the model to ------------------------------------------------------


def tool_entry(schema: dict[str, Any]) -> Entry:
    (entry,) = tool_entries([Tool(name="t", input_schema=schema)], "f", "desktop")
    return entry


def test_the_grammar_sees_a_narrower_closed_bounded_schema() -> None:
    schema = {
        "type": "object",
        "$defs": {"Who": {"type": "object", "properties": {"name": {"type": "string"}}}},
        "properties": {
            "to": {"type": "array", "items": {"$ref": "#/$defs/Who"}, "maxItems": 50},
            "note": {"type": ["string", "null"], "maxLength": 5000, "format": "email"},
            "count": {"type": "integer", "minimum": 1, "maximum": 9},
            "anything": {},
        },
        "required": ["to", "missing"],
    }
    catalogue = Catalogue.merge([], [tool_entry(schema)])
    plan = plan_json_schema(catalogue, 3)
    Draft202012Validator.check_schema(plan)
    arguments = plan["$defs"]["step_2_1"]["properties"]["arguments"]
    assert arguments["additionalProperties"] is False
    assert arguments["required"] == ["to"]  # a required name it does not define is dropped
    to = arguments["properties"]["to"]["anyOf"][0]
    assert to["maxItems"] == 8
    assert to["items"] == {
        "type": "object",
        "properties": {"name": {"type": "string", "maxLength": 200}},
        "required": [],
        "additionalProperties": False,
    }
    note = arguments["properties"]["note"]["anyOf"][0]
    assert note == {"anyOf": [{"type": "string", "maxLength": 200}, {"type": "null"}]}
    assert arguments["properties"]["count"]["anyOf"][0] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 9,
    }
    # Whatever the grammar lets through, the tool's own schema accepts.
    written = {"to": [{"name": "Anna"}], "note": None, "count": 3, "anything": "x"}
    assert Draft202012Validator(plan["$defs"]["step_2_1"]["properties"]["arguments"]).is_valid(
        written
    )
    assert [p for p, _ in schema_errors(written, schema)] == ["missing"]


def test_arguments_not_in_the_schema_are_named_unless_the_schema_welcomes_them() -> None:
    closed = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert schema_errors({"a": "x", "b": 1}, closed) == [
        ("b", "is not an argument of this tool (its arguments: a)")
    ]
    assert schema_errors({"a": "x", "b": 1}, {**closed, "additionalProperties": True}) == []
    # A reference stands for a value only known at run time: not checked, counted as given.
    required = {**closed, "required": ["a"]}
    assert schema_errors({"a": {"$step": "t1"}}, required) == []


# -- MCP --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hints", "effect"),
    [
        (None, "change"),
        ({"read_only_hint": True}, "read"),
        ({"read_only_hint": True, "destructive_hint": True}, "read"),
        ({"destructive_hint": True}, "delete"),
        ({"read_only_hint": False, "destructive_hint": False}, "write"),
        ({"idempotent_hint": True}, "change"),
    ],
)
def test_mcp_annotations_give_the_effect(hints: dict[str, Any] | None, effect: str) -> None:
    annotations = None if hints is None else SimpleNamespace(**hints)
    assert mcp_effect(annotations) == effect


def test_mcp_servers_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "CPA_MCP_SERVERS": "time=python -m mcp_server_time --local-timezone UTC,notes=http://127.0.0.1:9/mcp"
        }
    )
    svc = make_services(settings)
    assert {"mcp:time", "mcp:notes"} <= set(svc.executors.names())
    time_server = McpServer.parse("time", settings.mcp_servers["time"])
    assert time_server.command == ("python", "-m", "mcp_server_time", "--local-timezone", "UTC")
    with pytest.raises(ConfigError, match="set in the environment only"):
        settings.with_overrides({"mcp_servers": {"evil": "rm -rf /"}})
    with pytest.raises(ConfigError, match="CPA_MCP_SERVERS: MCP server x: cannot read"):
        make_services(Settings(mcp_servers={"x": "python 'unclosed"}))


def test_references_must_name_a_step_the_step_depends_on() -> None:
    # A plan from the wire (a template, an API client): `check` names each bad reference.
    read = Tool(name="read", input_schema={"type": "object", "properties": {"x": {}}})
    catalogue = Catalogue.merge([], tool_entries([read], "f", "desktop"))
    plan = Plan.model_validate(
        {
            "goal": "g",
            "todos": [
                {
                    "id": "t1",
                    "title": "a",
                    "executor": "desktop",
                    "tool": {"name": "read", "arguments": {"x": {"$step": "t1"}}},
                },
                {
                    "id": "t2",
                    "title": "b",
                    "executor": "desktop",
                    "tool": {"name": "read", "arguments": {"x": {"$step": "t1"}}},
                },
                {
                    "id": "t3",
                    "title": "c",
                    "executor": "desktop",
                    "depends_on": ["t2"],
                    "tool": {"name": "read", "arguments": {"x": [{"$step": "t9"}]}},
                },
                {
                    "id": "t4",
                    "title": "d",
                    "executor": "desktop",
                    "depends_on": ["t1"],
                    "tool": {"name": "read", "arguments": {"x": {"$step": "t1"}}},
                },
            ],
        }
    )
    assert [str(p) for p in plan_problems(plan, catalogue)] == [
        "ToDo 't1' (tool read): argument 'x' refers to its own output: give the value itself, "
        "or the output of another step.",
        "ToDo 't2' (tool read): argument 'x' is the output of 't1', but 't2' does not depend "
        "on 't1': add it to depends_on.",
        "ToDo 't3' (tool read): argument 'x.0' refers to 't9', which is not a ToDo of this plan.",
    ]
