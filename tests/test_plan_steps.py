"""The plan as the planner model writes it: what its schema lets through, how it is read.

The schema (`graph.plan_schema`) is checked with the `jsonschema` library, as a grammar
built from it would hold the model: a step may name only earlier steps. The reading
(`graph.plan_steps`) leaves out steps that repeat earlier ones.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from graph.config import Settings
from graph.executor_registry import ExecutorRegistry
from graph.llm import ChatModels
from graph.plan_schema import plan_json_schema, remaining_json_schema, step_variants
from graph.plan_steps import PlanDraft, RemainingSteps
from graph.state import IntentFound
from graph.tools.catalogue import Catalogue, tool_entries
from graph.tools.executors import executor_entries
from graph.tools.narrowing import action_shortlists, narrow, rank_tools
from lam import ToDo, Tool
from nodes.executors import DesktopExecutor, LLMExecutor
from nodes.plan import draft_plan, planning_prompt
from tests.support.scripted import ScriptedChatModel

TOOLS = [
    Tool(name="find_files", description="Find files by name", effect="read",
         input_schema={"type": "object", "properties": {"query": {"type": "string"}},
                       "required": ["query"]}),
    Tool(name="delete_files", description="Delete files for good", effect="delete",
         input_schema={"type": "object", "properties": {"paths": {"type": "string"}},
                       "required": ["paths"]}),
]  # fmt: skip
CATALOGUE = Catalogue.merge([], tool_entries(TOOLS, "file:t", "desktop"))


def step(tool: str, arguments: dict[str, Any], after: list[int], **more: Any) -> dict[str, Any]:
    return {"title": tool, "description": "", "tool": tool, "arguments": arguments,
            "after": after, **more}  # fmt: skip


def plan(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"goal": "Shred the tax files", "steps": list(steps)}


FIND = step("find_files", {"query": "tax"}, [])
DELETE = step("delete_files", {"paths": {"$step": 1}}, [1])


def test_the_schema_lets_a_step_name_only_earlier_steps() -> None:
    schema = plan_json_schema(CATALOGUE, 4)
    Draft202012Validator.check_schema(schema)
    valid = Draft202012Validator(schema).is_valid
    assert valid(plan(FIND, DELETE))
    assert valid(plan(FIND, DELETE, step("find_files", {"query": "old"}, [1, 2])))
    # Its own output, a later step's, one past the plan's end: none can be written.
    assert not valid(plan(step("find_files", {"query": {"$step": 1}}, [])))
    assert not valid(plan(step("find_files", {"query": "tax"}, [2]), DELETE))
    assert not valid(plan(FIND, step("delete_files", {"paths": {"$step": 3}}, [])))
    assert not valid(plan(FIND, step("delete_files", {"paths": "a"}, [2])))
    # Between one step and the most allowed; an unknown tool is no step.
    assert not valid(plan())
    assert not valid(plan(FIND, FIND, FIND, FIND, FIND))
    assert not valid(plan(step("shred", {}, [])))


def test_a_replanning_round_numbers_on_after_the_done_steps() -> None:
    schema = remaining_json_schema(CATALOGUE, 5, 3)  # steps 1 and 2 done; 3 to 5 new
    valid = Draft202012Validator(schema).is_valid
    assert valid({"steps": []})
    assert valid({"steps": [DELETE, step("delete_files", {"paths": {"$step": 3}}, [2, 3])]})
    assert not valid({"steps": [step("delete_files", {"paths": {"$step": 3}}, [])]})


def test_steps_that_repeat_an_earlier_one_are_left_out_and_their_dependants_re_pointed() -> None:
    shred_again = step("delete_files", {"paths": {"$step": 1}}, [1], requires_approval=True)
    read = step("find_files", {"query": {"$step": 3}}, [3])
    draft = PlanDraft.model_validate(plan(FIND, DELETE, shred_again, shred_again, read))
    todos = draft.to_plan(CATALOGUE).todos
    assert [(t.id, t.depends_on) for t in todos] == [("t1", []), ("t2", ["t1"]), ("t5", ["t2"])]
    # The step kept asks for approval if one of its repeats did; references follow it.
    assert todos[1].requires_approval is True
    assert todos[2].tool is not None and todos[2].tool.arguments == {"query": {"$step": "t2"}}
    # Other arguments, other dependencies: another step.
    other = step("delete_files", {"paths": "old"}, [1])
    later = step("delete_files", {"paths": {"$step": 1}}, [])
    kept = PlanDraft.model_validate(plan(FIND, DELETE, other, later)).to_plan(CATALOGUE)
    assert len(kept.todos) == 4 - 1  # `later` depends on step 1 through its argument: a repeat


def test_free_form_steps_repeat_only_with_the_same_words() -> None:
    ask = {"title": "Ask Anna", "description": "about the report", "tool": "llm",
           "arguments": {}, "after": []}  # fmt: skip
    other = {**ask, "title": "Ask Bob"}
    draft = PlanDraft.model_validate(plan(ask, other, ask))
    assert [t.id for t in draft.to_plan(CATALOGUE).todos] == ["t1", "t2"]


def test_replanned_steps_repeating_one_another_are_merged_but_not_the_done_ones() -> None:
    done = [ToDo(id="t1", title="find", executor="desktop", status="done")]
    again = step("delete_files", {"paths": {"$step": 1}}, [1])
    remaining = RemainingSteps.model_validate({"steps": [again, again]})
    todos = remaining.to_todos(done, {"t1"}, CATALOGUE)
    assert [(t.id, t.depends_on) for t in todos] == [("t2", ["t1"])]


def test_narrowing_lists_the_closest_tools_first() -> None:
    shown = narrow(CATALOGUE, "Delete the old files", 12)
    ranked = [name for name, _ in rank_tools(CATALOGUE, "Delete the old files")]
    assert ranked[0] == "delete_files"
    assert [e.name for e in shown.tools] == ranked
    assert [e.name for e in narrow(CATALOGUE, "Delete the old files", 1).tools] == ["delete_files"]


def test_the_planner_reads_the_closest_tools_before_the_executors() -> None:
    # A small model favours what it reads first: with the free-form executors on top it
    # named them for most steps of the 30 labelled requests (benchmarks.tool_choice).
    executors = executor_entries(ExecutorRegistry([DesktopExecutor(), LLMExecutor()]))
    catalogue = Catalogue.merge(executors, CATALOGUE.tools)
    shown = narrow(catalogue, "Delete the old files", 12)
    names = shown.names()
    assert names[0] == "delete_files"
    assert names[len(shown.tools) :] == ["desktop", "llm"]
    prompt = planning_prompt("Delete the old files", shown, 4)[0].text
    listed = [line.split(":")[0][2:] for line in prompt.splitlines() if line.startswith("- ")]
    listed = [name for name in listed if name in names]
    assert listed == names


def test_a_plan_has_a_step_for_each_action_and_a_following_action_waits() -> None:
    # "Find my tax files and shred them": two actions, the second uses the first's files.
    schema = plan_json_schema(CATALOGUE, 4, min_steps=2, follows=[False, True])
    Draft202012Validator.check_schema(schema)
    valid = Draft202012Validator(schema).is_valid
    assert valid(plan(FIND, DELETE))
    # One step for two actions, the shredding not waiting for the finding, or not
    # shredding what it found: no.
    assert not valid(plan(FIND))
    assert not valid(plan(FIND, step("delete_files", {"paths": {"$step": 1}}, [])))
    assert not valid(plan(FIND, step("delete_files", {"paths": "tax.pdf"}, [1])))
    # Steps past the actions are the model's to order.
    assert valid(plan(FIND, DELETE, step("find_files", {"query": "old"}, [])))
    # Actions side by side leave `after` to the model; the fewest steps never pass the most.
    free = Draft202012Validator(plan_json_schema(CATALOGUE, 4, 2, [False, False])).is_valid
    assert free(plan(FIND, step("delete_files", {"paths": "tax.pdf"}, [])))
    # A tool of several arguments takes the output as any one of them, the model's choice.
    mail = Tool(name="send_email", description="Send an email", effect="send",
                input_schema={"type": "object", "required": ["to"],
                              "properties": {"to": {"type": "string"},
                                             "attachment": {"type": "string"}}})  # fmt: skip
    both = Catalogue.merge([], tool_entries([*TOOLS, mail], "file:t", "desktop"))
    sent = Draft202012Validator(plan_json_schema(both, 3, 2, [False, True])).is_valid
    assert sent(
        plan(FIND, step("send_email", {"to": "tom@x.org", "attachment": {"$step": 1}}, [1]))
    )
    assert sent(plan(FIND, step("send_email", {"to": {"$step": 1}}, [1])))
    assert not sent(plan(FIND, step("send_email", {"to": "tom@x.org"}, [1])))
    capped = Draft202012Validator(plan_json_schema(CATALOGUE, 2, min_steps=5)).is_valid
    assert capped(plan(FIND, DELETE)) and not capped(plan(FIND))


WORDY = [
    Tool(name=f"image_{n}", description=f"Edit an image: {what} the image, image in, image out",
         input_schema={"type": "object", "properties": {"image": {"type": "string"}}})
    for n, what in enumerate(["crop", "resize", "rotate", "blur", "sharpen", "colorize"])
] + [
    Tool(name="send_email", description="Send an email to someone",
         input_schema={"type": "object", "properties": {"to": {"type": "string"}}}),
]  # fmt: skip
WORDY_CATALOGUE = Catalogue.merge([], tool_entries(WORDY, "file:t", "desktop"))


def test_narrowing_takes_each_actions_closest_tools_in_turns() -> None:
    request = "Crop the image, rotate the image, blur the image and email the image to Tom"
    parts = ["Crop the image", "rotate the image", "blur the image", "email the image to Tom"]
    # The whole request's words are mostly about images: the email tool is crowded out.
    assert "send_email" not in [e.name for e in narrow(WORDY_CATALOGUE, request, 4).tools]
    shown = [e.name for e in narrow(WORDY_CATALOGUE, request, 4, parts=parts).tools]
    assert len(shown) == 4 and "send_email" in shown
    assert {"image_0", "image_2", "image_3"} <= set(shown)


def test_the_step_for_each_action_names_one_of_its_closest_tools_or_an_executor() -> None:
    executors = executor_entries(ExecutorRegistry([DesktopExecutor(), LLMExecutor()]))
    catalogue = Catalogue.merge(executors, tool_entries(WORDY, "file:t", "desktop"))
    parts = ["Crop the image", "email the image to Tom", "say hello"]
    shortlists = action_shortlists(catalogue, parts, 2)
    assert shortlists[0][0] == "image_0" and shortlists[1][0] == "send_email"
    assert len(shortlists[0]) == 2 and shortlists[2] == []  # no tool shares its words
    schema = plan_json_schema(catalogue, 4, 3, shortlists=shortlists)

    def names(number: int) -> set[str]:
        return {v["properties"]["tool"]["const"] for v in step_variants(schema, number)}

    assert names(1) == {*shortlists[0], "desktop", "llm"}
    assert names(2) == {*shortlists[1], "desktop", "llm"}
    assert names(3) == names(4) == set(catalogue.names())  # free: no close tool, past the actions
    valid = Draft202012Validator(schema).is_valid
    crop = step("image_0", {"image": "lake.png"}, [])
    mail = step("send_email", {"to": "tom@example.com"}, [1])
    assert valid(plan(crop, mail, step("llm", {}, [])))
    assert not valid(plan(mail, crop, step("llm", {}, [])))  # each action's tool in its place
    assert action_shortlists(catalogue, parts, 0) == []  # 0: no shortlists


def planning_call(answer: dict[str, Any]) -> tuple[ChatModels, ScriptedChatModel]:
    """The planner's models for one planning call answering `answer`, and the model (it
    records what it was asked: the prompt, the schema its answer is held to)."""
    model = ScriptedChatModel.script(structured=[answer])
    return ChatModels(Settings(), {"planner": model}), model


async def test_each_action_and_a_lone_request_are_shown_their_closest_tools() -> None:
    executors = executor_entries(ExecutorRegistry([DesktopExecutor(), LLMExecutor()]))
    catalogue = Catalogue.merge(executors, tool_entries(WORDY, "file:t", "desktop"))
    crop = step("image_0", {"image": "lake.png"}, [])

    def names(model: ScriptedChatModel, number: int) -> set[str]:
        return {v["properties"]["tool"]["const"] for v in step_variants(model.schemas[0], number)}

    def prompt(model: ScriptedChatModel) -> str:
        return str(model.calls[0][2][0].content)

    # Two actions: beside each, in the prompt, the tools its step may name.
    found: Any = {"compound": {"parts": ["Crop the image", "email it to Tom"]}}
    mail = step("send_email", {"to": "tom@example.com"}, [])
    models, model = planning_call(plan(crop, mail))
    await draft_plan(models, "Crop the image and email it to Tom", catalogue, 4, found, 2)
    first, second = action_shortlists(catalogue, found["compound"]["parts"], 2)
    assert f"1. Crop the image (tools for it: {', '.join(first)})" in prompt(model)
    assert f"2. email it to Tom (tools for it: {', '.join(second)})" in prompt(model)
    assert names(model, 1) == {*first, "desktop", "llm"}
    # Listed: the actions' tools first, the executors, then the tools that fit no action.
    listed = [line[2:].split(":")[0] for line in prompt(model).splitlines() if line[:2] == "- "]
    listed = [name for name in listed if name in catalogue]
    shortlisted = list(dict.fromkeys([*first, *second]))
    assert listed[: len(shortlisted)] == shortlisted
    assert listed[len(shortlisted) : len(shortlisted) + 2] == ["desktop", "llm"]
    assert set(listed[len(shortlisted) + 2 :]) == set(catalogue.names()) - {
        *shortlisted,
        "desktop",
        "llm",
    }

    # One action: the first step is the request's, held to its closest tools too.
    models, model = planning_call(plan(crop))
    await draft_plan(models, "Crop the image", catalogue, 4, {}, 2)
    shortlist = action_shortlists(catalogue, ["Crop the image"], 2)[0]
    assert shortlist[0] == "image_0"
    assert names(model, 1) == {*shortlist, "desktop", "llm"}
    assert names(model, 2) == set(catalogue.names())
    assert "tools for it" not in prompt(model)
    # Without the front door's reading (a plan held to the catalogue alone), or with 0, free.
    readings: list[tuple[IntentFound | None, int]] = [(None, 2), ({}, 0)]
    for found_none, tools in readings:
        models, model = planning_call(plan(crop))
        await draft_plan(models, "Crop the image", catalogue, 4, found_none, tools)
        assert names(model, 1) == set(catalogue.names())
