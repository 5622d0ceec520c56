"""The TaskBench benchmark (benchmarks/taskbench.py) on hand-written fixtures in its format.

tests/data/taskbench/typed is a small domain like TaskBench's multimedia one (tools with
input and output types, `<node-j>` arguments), tests/data/taskbench/named like its
daily-life APIs (named parameters, explicit links). The metrics are checked against F1s
worked out by hand from evaluate.py's definitions; the command runs end to end with
scripted models (tests/support/scripted.py): our plan and TaskBench's answer parsed, scored, the
valid share counted, a stopped run resumed, bad files named.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks import taskbench
from benchmarks.taskbench_data import load_domain
from benchmarks.taskbench_metrics import Scores, content_type, read_sample
from benchmarks.taskbench_prompt import baseline_prompt, parse_baseline
from graph.config import Settings
from graph.llm import ChatModels
from tests.support.scripted import ScriptedChatModel, cut_off

DATA = Path(__file__).parent / "data" / "taskbench"
TYPED = DATA / "typed"
NAMED = DATA / "named"
OUTPUT_TYPES = {
    "Image Downloader": "image",
    "Image Colorizer": "image",
    "Image-to-Text": "text",
    "Text Summarizer": "text",
    "Image Stitcher": "image",
}
TYPED_TOOLS = list(OUTPUT_TYPES)


def node(task: str, *arguments: Any) -> dict[str, Any]:
    return {"task": task, "arguments": list(arguments)}


# -- the metrics ---------------------------------------------------------------------------


def test_literal_arguments_are_named_by_the_kind_of_file_they_name() -> None:
    assert content_type("https://x/a.jpg") == "image"
    assert content_type("'song.wav'") == "audio"
    assert content_type("clip.mp4") == "video"
    assert content_type("a sentence") == "text"


def test_typed_graphs_take_their_links_and_argument_names_from_node_references() -> None:
    gold = read_sample(
        {
            "task_nodes": [
                node("Image Downloader", "https://x/a.jpg"),
                node("Image Colorizer", "<node-0>", "<node-1>"),  # the second names itself
            ]
        },
        OUTPUT_TYPES,
    )
    assert gold is not None
    assert gold.nodes == ("Image Downloader", "Image Colorizer")
    assert gold.links == (("Image Downloader", "Image Colorizer"),)
    assert gold.arg_names == ("Image Downloader-image", "Image Colorizer-image")
    assert gold.arg_values == (
        "Image Downloader-image-https://x/a.jpg",
        "Image Colorizer-image-Image Downloader",
    )


def test_an_argument_theirs_cannot_read_repeats_the_one_before_as_theirs_does() -> None:
    sample = read_sample({"task_nodes": [node("Text Summarizer", "a text", 2)]}, OUTPUT_TYPES)
    assert sample is not None
    assert sample.arg_values == ("Text Summarizer-text-a text", "Text Summarizer-text-a text")
    # With nothing read before it, or a task that is no string, the sample is unreadable.
    assert read_sample({"task_nodes": [node("Text Summarizer", 2)]}, OUTPUT_TYPES) is None
    assert read_sample({"task_nodes": [{"task": 3, "arguments": []}]}, OUTPUT_TYPES) is None
    assert read_sample({"task_nodes": "none"}, OUTPUT_TYPES) is None


def test_f1s_over_typed_samples_are_the_ones_worked_out_by_hand() -> None:
    gold_a = read_sample(
        {
            "task_nodes": [
                node("Image Downloader", "https://x/a.jpg"),
                node("Image Colorizer", "<node-0>"),
                node("Image-to-Text", "<node-1>"),
            ]
        },
        OUTPUT_TYPES,
    )
    predicted_a = read_sample(
        {
            "task_nodes": [
                node("Image Downloader", "https://x/a.jpg"),
                node("Image-to-Text", "<node-0>"),
                node("Made Up Tool", "x"),  # no tool: counts for neither side of node F1
            ]
        },
        OUTPUT_TYPES,
    )
    gold_b = read_sample({"task_nodes": [node("Text Summarizer", "long text here")]}, OUTPUT_TYPES)
    assert gold_a is not None and predicted_a is not None and gold_b is not None

    one = Scores()
    one.add(gold_a, predicted_a, TYPED_TOOLS)
    # nodes: TP 2 (downloader, to-text), FP 0, FN 1 (colorizer): 4/5
    assert one.node.f1 == pytest.approx(0.8)
    # edges: gold downloader→colorizer, colorizer→to-text; predicted downloader→to-text
    assert one.edge.f1 == 0.0
    # argument names: TP 2, FP 1 (made-up tool's), FN 1 (colorizer's): 4/6
    assert one.arg_name.f1 == pytest.approx(4 / 6)
    # argument values: only the URL matches (to-text's input comes from another tool)
    assert one.arg_value.f1 == pytest.approx(2 / 6)

    # A second request left unanswered: every gold item of it is missed.
    one.add(gold_b, None, TYPED_TOOLS)
    assert one.node.f1 == pytest.approx(4 / 6)
    assert one.arg_name.f1 == pytest.approx(4 / 7)
    assert one.arg_value.f1 == pytest.approx(2 / 7)
    assert one.to_json()["samples"] == 2


def test_f1s_over_named_samples_use_the_links_as_written() -> None:
    gold = read_sample(
        {
            "task_nodes": [
                {
                    "task": "get_weather",
                    "arguments": [
                        {"name": "location", "value": "Paris"},
                        {"name": "date", "value": "2024-05-01"},
                    ],
                },
                {
                    "task": "send_email",
                    "arguments": [
                        {"name": "to", "value": "anna@x"},
                        {"name": "body", "value": "the weather"},
                    ],
                },
            ],
            "task_links": [{"source": "get_weather", "target": "send_email"}],
        },
        None,
    )
    predicted = read_sample(
        {
            "task_nodes": [
                {"task": "get_weather", "arguments": [{"name": "location", "value": "Paris"}]},
                {
                    "task": "send_email",
                    "arguments": [
                        {"name": "to", "value": "anna@x"},
                        {"name": "body", "value": "get_weather"},
                    ],
                },
            ],
            "task_links": [
                {"source": "get_weather", "target": "send_email"},
                {"source": "send_email", "target": "get_weather"},
            ],
        },
        None,
    )
    assert gold is not None and predicted is not None
    scores = Scores()
    scores.add(gold, predicted, ["get_weather", "send_email"])
    assert scores.node.f1 == 1.0
    assert scores.edge.f1 == pytest.approx(2 / 3)  # TP 1, FP 1
    assert scores.arg_name.f1 == pytest.approx(6 / 7)  # TP 3, FN 1 (date)
    assert scores.arg_value.f1 == pytest.approx(4 / 7)  # TP 2, FP 1, FN 2


# -- TaskBench's prompt and its parsing ------------------------------------------------------


def test_the_baseline_prompt_is_inference_pys_with_the_tool_list_and_the_request() -> None:
    typed = load_domain(TYPED / "tool_desc.json", TYPED / "data.json")
    prompt = baseline_prompt(typed.nodes, "Colour a.jpg", typed.typed)
    assert prompt.startswith("# TASK LIST #:\n" + json.dumps(typed.nodes[0]) + "\n")
    assert "tag '<node-j>' (start from 0)" in prompt
    assert prompt.endswith(
        "# USER REQUEST #: Colour a.jpg\nnow please generate your result in "
        "a strict JSON format:\n# RESULT #:"
    )
    named = load_domain(NAMED / "tool_desc.json", NAMED / "data.json")
    prompt = baseline_prompt(named.nodes, "Weather?", named.typed)
    # ignore_tool_type: each tool's parameters by name only, links asked for
    assert '"parameters": ["location", "date"]' in prompt
    assert '"task_links": [{"source": "task name i"' in prompt


def test_the_baseline_answer_is_parsed_as_inference_py_parses_it() -> None:
    graph = {"task_steps": ["a"], "task_nodes": [node("Text Summarizer", "x")]}
    assert parse_baseline("# RESULT #: " + json.dumps(graph)) == graph
    assert parse_baseline(json.dumps(graph, indent=2)) == graph  # newlines dropped
    assert parse_baseline("```json\n" + json.dumps(graph) + "\n```") is None
    assert parse_baseline(json.dumps([graph])) is None  # evaluate.py cannot use it
    assert parse_baseline('{"id": "Image Colorizer"}') is None


# -- our plans as TaskBench graphs ---------------------------------------------------------


def draft(*steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "goal": "Do it",
        "steps": [{"title": s["tool"], "description": "", "after": [], **s} for s in steps],
    }


CHAIN = draft(
    {"tool": "Image Downloader", "arguments": {"url": "https://x/a.jpg"}},
    {"tool": "Image Colorizer", "arguments": {"image": {"$step": 1}}},
    {"tool": "Image-to-Text", "arguments": {"image": {"$step": 2}}, "after": [2]},
)
CHAIN_ANSWER = json.dumps(
    {
        "task_steps": ["download", "colour", "read"],
        "task_nodes": [
            node("Image Downloader", "https://x/a.jpg"),
            node("Image Colorizer", "<node-0>"),
        ],
    }
)


def scripted(settings: Settings, **script: Any) -> tuple[ChatModels, ScriptedChatModel]:
    model = ScriptedChatModel.script(**script)
    return ChatModels(settings, {"planner": model}), model


def test_a_plan_becomes_a_graph_whose_references_are_node_tags_and_links() -> None:
    domain = load_domain(TYPED / "tool_desc.json", TYPED / "data.json")
    settings = Settings()
    models, _ = scripted(settings, structured=[CHAIN])
    plan, _ = asyncio.run(taskbench.plan_ours(models, settings, "x", domain.catalogue))
    graph = taskbench.plan_graph(plan, domain.catalogue, typed=True)
    assert graph["task_nodes"] == [
        node("Image Downloader", "https://x/a.jpg"),
        node("Image Colorizer", "<node-0>"),
        node("Image-to-Text", "<node-1>"),
    ]
    assert graph["task_links"] == [
        {"source": "Image Downloader", "target": "Image Colorizer"},
        {"source": "Image Colorizer", "target": "Image-to-Text"},
    ]
    assert taskbench.graph_valid(graph, domain.catalogue, typed=True)
    # Named parameters: a reference is the name of the tool whose result it is.
    named = taskbench.plan_graph(plan, domain.catalogue, typed=False)
    assert named["task_nodes"][1]["arguments"] == [{"name": "image", "value": "Image Downloader"}]


def test_a_plan_cut_off_at_the_token_limit_is_asked_for_again_with_fewer_steps() -> None:
    domain = load_domain(TYPED / "tool_desc.json", TYPED / "data.json")
    settings = Settings()
    models, model = scripted(settings, structured=[cut_off('{"goal": "Do'), CHAIN])
    plan, _ = asyncio.run(taskbench.plan_ours(models, settings, "x", domain.catalogue))
    assert len(plan.todos) == 3
    assert [len(s["properties"]["steps"]["anyOf"][-1]["prefixItems"]) for s in model.schemas] == [
        8,
        4,
    ]


def test_validity_needs_catalogue_tools_with_arguments_their_schema_accepts() -> None:
    domain = load_domain(TYPED / "tool_desc.json", TYPED / "data.json")
    catalogue = domain.catalogue

    def valid(*nodes: dict[str, Any]) -> bool:
        return taskbench.graph_valid({"task_nodes": list(nodes)}, catalogue, typed=True)

    assert valid(node("Image Stitcher", "a.jpg", "<node-3>"))
    assert not valid(node("Image Stitcher", "a.jpg"))  # an input missing
    assert not valid(node("Image Stitcher", "a.jpg", "b.jpg", "c.jpg"))  # one too many
    assert not valid(node("Photo Shop", "a.jpg"))  # no such tool
    assert not valid()
    assert not taskbench.graph_valid(None, catalogue, typed=True)


# -- the command ---------------------------------------------------------------------------


def command(tmp_path: Path, *more: str) -> list[str]:
    return [
        "--tools", str(TYPED / "tool_desc.json"),
        "--data", str(TYPED / "data.json"),
        "--requests", str(TYPED / "user_requests.json"),
        "--results", str(tmp_path / "results.jsonl"),
        *more,
    ]  # fmt: skip


def test_the_command_scores_both_planners_on_the_fixture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings()
    stitch = draft(
        {"tool": "Image Stitcher", "arguments": {"image": "left.jpg", "image_2": "right.jpg"}},
        {"tool": "Image-to-Text", "arguments": {"image": {"$step": 1}}},
    )
    ours, ours_model = scripted(settings, structured=[CHAIN, stitch])
    theirs, theirs_model = scripted(settings, texts=[CHAIN_ANSWER, "I cannot do that."])

    code = taskbench.main(command(tmp_path, "--types", "chain,dag", "--json"), (ours, theirs))

    assert code == 0
    result = json.loads(capsys.readouterr().out)
    # Two requests (the single one left out); ours: both plans exact, valid.
    assert result["requests"] == 2
    assert result["ours"] | {"median_s": None} == {
        "samples": 2, "node_f1": 1.0, "edge_f1": 1.0, "arg_name_f1": 1.0,
        "arg_value_f1": 1.0, "answered": 2, "valid": 2, "valid_share": 1.0,
        "median_s": None, "checked": 2,
    }  # fmt: skip
    # Baseline: the first answer has 2 of the 3 nodes and 1 of the 2 links; the second is
    # no JSON, so the other request's 2 nodes and 1 link are missed.
    base = result["baseline"]
    assert (base["answered"], base["valid"]) == (1, 1)
    assert base["node_f1"] == pytest.approx(round(4 / 7, 4))  # TP 2, FN 3
    assert base["edge_f1"] == pytest.approx(0.5)  # TP 1, FN 2
    # The request text sent is user_requests.json's where it has one, else the data's own.
    asked = [m[0].content for _, _, m in theirs_model.calls]
    assert "Download https://x/a.jpg, colour it" in str(asked[0])
    assert "Stitch left.jpg and right.jpg into a panorama" in str(asked[1])
    assert ours_model.remaining == 0
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [(json.loads(x)["id"], json.loads(x)["side"]) for x in lines] == [
        ("1001", "ours"), ("1003", "ours"), ("1001", "baseline"), ("1003", "baseline"),
    ]  # fmt: skip


def test_resume_asks_only_for_what_a_stopped_run_had_not_done(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings()
    ours, _ = scripted(settings, structured=[CHAIN])
    theirs, _ = scripted(settings, texts=[CHAIN_ANSWER])
    assert taskbench.main(command(tmp_path, "--limit", "1"), (ours, theirs)) == 0
    results = tmp_path / "results.jsonl"
    with results.open("a") as out:
        out.write('{"id": "1002", "side": "ou')  # the line a stopped run was writing

    # The second run has answers for the new request only: one more would fail the test.
    summary = draft({"tool": "Text Summarizer", "arguments": {"text": "long text here"}})
    ours, ours_model = scripted(settings, structured=[summary])
    theirs, theirs_model = scripted(settings, texts=["nothing useful"])
    assert taskbench.main(command(tmp_path, "--limit", "2", "--resume"), (ours, theirs)) == 0

    assert ours_model.remaining == 0 and len(theirs_model.calls) == 1
    assert len(ours_model.calls) == 1
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted((r["id"], r["side"]) for r in rows) == [
        ("1001", "baseline"), ("1001", "ours"), ("1002", "baseline"), ("1002", "ours"),
    ]  # fmt: skip
    table = capsys.readouterr().out
    assert "| ours | 2/2 | 2/2 | 1.00 |" in table


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tools": "missing.json"}, "missing.json: cannot read it"),
        ({"tools": "typed/data.json"}, "data.json: not valid JSON"),
        ({"tools": "named/data.json"}, "data.json: unknown key(s) id"),
        ({"tools": "ours.yaml"}, "ours.yaml: not TaskBench's tool_desc.json (no `nodes`)"),
        ({"data": "typed/tool_desc.json"}, "tool_desc.json:1: not a JSON object a line"),
        ({"data": "bad.json"}, "bad.json:2: request 7 has no text"),
        ({"data": "nodes.json"}, "nodes.json:1: no task_nodes or tool_nodes"),
    ],
)
def test_bad_input_files_are_named_with_what_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, str], message: str
) -> None:
    (tmp_path / "bad.json").write_text(
        '{"id": 6, "instruction": "x", "task_nodes": []}\n{"id": 7, "task_nodes": []}\n'
    )
    (tmp_path / "nodes.json").write_text('{"id": 8, "instruction": "x"}\n')
    (tmp_path / "ours.yaml").write_text("tools: [{name: a, description: b}]\n")
    files = {"tools": TYPED / "tool_desc.json", "data": TYPED / "data.json"}
    for key, name in change.items():
        files[key] = DATA / name if "/" in name else tmp_path / name
    models = (ChatModels(Settings()), ChatModels(Settings()))  # never asked
    code = taskbench.main(["--tools", str(files["tools"]), "--data", str(files["data"])], models)
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_type_no_request_has_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--tools", str(NAMED / "tool_desc.json"), "--data", str(NAMED / "data.json")]
    models = (ChatModels(Settings()), ChatModels(Settings()))
    assert taskbench.main([*args, "--types", "dag"], models) == 2
    assert "no request of type dag" in capsys.readouterr().err


def test_both_sides_sample_as_taskbench_does_and_keep_their_token_limits() -> None:
    ours, theirs = taskbench.settings_for("http://127.0.0.1:9/v1", "smollm2", 300)
    assert (ours.max_tokens_for("planner"), theirs.max_tokens_for("planner")) == (1024, 2000)
    for settings in (ours, theirs):
        model: Any = taskbench.sampled(settings).get("planner")
        assert (model.temperature, model.top_p, model.presence_penalty) == (0.2, 0.1, 1.05)
        assert settings.timeout_for("planner") == 300


def test_a_named_answer_without_links_is_one_evaluate_py_cannot_read() -> None:
    nodes = [{"task": "send_email", "arguments": [{"name": "to", "value": "a@x"}]}]
    assert read_sample({"task_nodes": nodes}, None) is None
    assert read_sample({"task_nodes": nodes, "task_links": []}, None) is not None
    unnamed = [{"task": "send_email", "arguments": ["a@x"]}]  # an argument without its name
    assert read_sample({"task_nodes": unnamed, "task_links": []}, None) is None


@pytest.mark.llm
@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_command_against_llama_server_with_smollm2(tmp_path: Path) -> None:
    """As the docs run it: the command starts llama-server itself (one request here)."""
    import os
    import subprocess
    import sys

    from tests.support.llama_server import find_llama

    found = find_llama()
    if found.missing:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the LLM server is required in CI: {found.missing}", pytrace=False)
        pytest.skip(found.missing)
    results = tmp_path / "results.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.taskbench", *command(tmp_path, "--limit", "1")],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=1700,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| ours | " in done.stdout and "| TaskBench's prompt | " in done.stdout
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["id"], r["side"]) for r in rows] == [("1001", "ours"), ("1001", "baseline")]
    assert "Traceback" not in done.stderr


def test_sides_leaves_the_baseline_out_while_developing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings()
    ours, ours_model = scripted(settings, structured=[CHAIN])
    theirs, theirs_model = scripted(settings, texts=[])
    args = command(tmp_path, "--limit", "1", "--sides", "ours", "--json")
    assert taskbench.main(args, (ours, theirs)) == 0
    result = json.loads(capsys.readouterr().out)
    assert "baseline" not in result and result["ours"]["node_f1"] == 1.0
    assert ours_model.remaining == 0 and not theirs_model.calls
    with pytest.raises(SystemExit):
        taskbench.main(command(tmp_path, "--sides", "theirs"), (ours, theirs))
