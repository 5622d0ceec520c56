"""Plan models and the DAG operations of lam.dag: every rule, every problem code."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from lam import Plan, ToDo
from lam.dag import (
    InvalidPlanError,
    PlanProblem,
    critical_path,
    dependency_levels,
    format_problems,
    propagate_failure,
    ready_todos,
    topological_order,
    validate_plan,
)


def todo(todo_id: str, *deps: str, executor: str = "shell", **fields: Any) -> ToDo:
    return ToDo(
        id=todo_id, title=f"Do {todo_id}", executor=executor, depends_on=list(deps), **fields
    )


def plan(*todos: ToDo) -> Plan:
    return Plan(goal="test", todos=list(todos))


def codes(problems: list[PlanProblem]) -> list[str]:
    return [p.code for p in problems]


# --- models ------------------------------------------------------------------------------------


def test_todo_defaults_and_strictness() -> None:
    t = ToDo(id="t1", title="T", executor="e")
    assert t.model_dump() == {
        "id": "t1", "title": "T", "description": "", "executor": "e", "inputs": {},
        "depends_on": [], "requires_approval": False, "status": "pending", "output": None,
        "error": None,
    }  # fmt: skip
    for bad in (
        {"id": ""},
        {"title": ""},
        {"executor": ""},
        {"status": "waiting"},
        {"requires_approval": "yes"},
        {"depends_on": "t0"},
        {"unknown": 1},
        {"inputs": {"x": float("nan")}},
        {"output": {1, 2}},
    ):
        with pytest.raises(ValidationError):
            ToDo.model_validate({"id": "t1", "title": "T", "executor": "e", **bad})


def test_todo_assignment_is_validated() -> None:
    t = todo("a")
    t.status = "running"
    with pytest.raises(ValidationError):
        t.status = "bogus"  # type: ignore[assignment]


def test_plan_lookup_helpers() -> None:
    p = plan(todo("a"), todo("b", "a"), todo("a", executor="second"))
    assert p.todo("b").depends_on == ["a"]
    assert p.todo("a").executor == "shell"  # first one wins
    assert list(p.by_id()) == ["a", "b"] and p.by_id()["a"].executor == "shell"
    assert p.ids == ["a", "b", "a"]
    with pytest.raises(KeyError):
        p.todo("zz")


# --- validate_plan -----------------------------------------------------------------------------


def test_valid_plan_has_no_problems() -> None:
    p = plan(todo("a"), todo("b", "a"), todo("c", "a", "b"))
    assert validate_plan(p) == []
    assert validate_plan(p, executors={"shell"}) == []
    assert format_problems([]) == "The plan has no problems."


def test_empty_plan() -> None:
    problems = validate_plan(plan())
    assert codes(problems) == ["empty_plan"]
    assert problems[0].todo_id is None and "no ToDos" in str(problems[0])


def test_too_many_todos() -> None:
    p = plan(*(todo(f"t{i}") for i in range(6)))
    assert codes(validate_plan(p, max_todos=5)) == ["too_many_todos"]
    assert "6 ToDos; at most 5" in str(validate_plan(p, max_todos=5)[0])
    assert validate_plan(p, max_todos=6) == []
    assert validate_plan(plan(*(todo(f"t{i}") for i in range(201)))) != []


def test_duplicate_ids_name_the_positions() -> None:
    problems = validate_plan(plan(todo("a"), todo("b"), todo("a"), todo("a")))
    assert codes(problems) == ["duplicate_id"]
    assert problems[0].todo_id == "a"
    assert "'a'" in str(problems[0]) and "#1, #3, #4" in str(problems[0])


def test_unknown_and_self_dependencies() -> None:
    problems = validate_plan(plan(todo("a", "a"), todo("b", "ghost", "a")))
    assert codes(problems) == ["self_dependency", "unknown_dependency"]
    assert problems[0].todo_id == "a" and "depends on itself" in problems[0].message
    assert problems[1].todo_id == "b" and "'ghost'" in problems[1].message
    assert "'a', 'b'" in problems[1].message  # lists the ids that do exist


def test_unknown_executor_lists_the_known_ones() -> None:
    p = plan(todo("a", executor="shell"), todo("b", executor="mailer"))
    problems = validate_plan(p, executors=["shell", "reminder"])
    assert codes(problems) == ["unknown_executor"]
    assert problems[0].todo_id == "b"
    assert "'mailer'" in str(problems[0]) and "'reminder', 'shell'" in str(problems[0])
    assert codes(validate_plan(p, executors=[])) == ["unknown_executor"] * 2


def test_cycle_is_reported_with_its_ids_in_order() -> None:
    p = plan(todo("start"), todo("a", "c", "start"), todo("b", "a"), todo("c", "b"))
    problems = validate_plan(p)
    assert codes(problems) == ["cycle"]
    cycle = problems[0]
    assert cycle.cycle == ("a", "c", "b")  # a depends on c, c on b, b on a
    assert cycle.todo_id == "a"
    assert "'a' depends on 'c', 'c' depends on 'b', 'b' depends on 'a'" in str(cycle)


def test_each_separate_cycle_is_reported() -> None:
    p = plan(todo("a", "b"), todo("b", "a"), todo("c", "d"), todo("d", "c"), todo("e", "a"))
    problems = validate_plan(p)
    assert [pr.cycle for pr in problems] == [("a", "b"), ("c", "d")]


def test_tangled_cycles_mention_the_whole_knot() -> None:
    p = plan(todo("a", "b"), todo("b", "a", "c"), todo("c", "b"))
    (problem,) = validate_plan(p)
    assert problem.code == "cycle" and problem.cycle == ("a", "b")
    assert "'c'" in problem.message


def test_every_problem_at_once() -> None:
    p = plan(
        todo("a", "a"),
        todo("b", "x"),
        todo("b", executor="nope"),
        todo("c", "d"),
        todo("d", "c"),
    )
    problems = validate_plan(p, executors={"shell"}, max_todos=3)
    assert codes(problems) == [
        "too_many_todos",
        "duplicate_id",
        "self_dependency",
        "unknown_dependency",
        "unknown_executor",
        "cycle",
    ]
    text = format_problems(problems)
    assert text.startswith("The plan has 6 problems:\n- ")
    assert text.count("\n- ") == 6


def test_problem_is_a_small_frozen_value() -> None:
    problem = validate_plan(plan(todo("a", "b"), todo("b", "a")))[0]
    assert problem.to_dict() == {
        "code": "cycle",
        "todo_id": "a",
        "message": problem.message,
        "cycle": ["a", "b"],
    }
    with pytest.raises(AttributeError):
        problem.code = "duplicate_id"  # type: ignore[misc]  # frozen: the point of the test
    assert str(problem) == problem.message


# --- topological_order and levels --------------------------------------------------------------


def test_topological_order_keeps_plan_order_when_possible() -> None:
    p = plan(todo("a"), todo("b"), todo("c", "a"), todo("d", "b"))
    assert topological_order(p) == ["a", "b", "c", "d"]


def test_topological_order_is_stable_among_ready_todos() -> None:
    p = plan(todo("late", "x"), todo("y"), todo("x"), todo("z", "y"))
    # Ready at first: y, x (plan order). After y: z becomes ready but x is earlier.
    assert topological_order(p) == ["y", "x", "late", "z"]


def test_topological_order_tolerates_repeated_dependencies() -> None:
    assert topological_order(plan(todo("b", "a", "a"), todo("a"))) == ["a", "b"]


def test_topological_order_names_the_cycle() -> None:
    with pytest.raises(ValueError, match="'b' depends on 'c', 'c' depends on 'b'") as exc:
        topological_order(plan(todo("a"), todo("b", "a", "c"), todo("c", "b")))
    assert isinstance(exc.value, InvalidPlanError)
    assert exc.value.problems[0].cycle == ("b", "c")


@pytest.mark.parametrize(
    ("p", "code"),
    [
        (plan(todo("a", "a")), "self_dependency"),
        (plan(todo("a", "ghost")), "unknown_dependency"),
        (plan(todo("a"), todo("a")), "duplicate_id"),
    ],
)
def test_graph_operations_refuse_broken_plans(p: Plan, code: str) -> None:
    for operation in (topological_order, dependency_levels, lambda q: critical_path(q, {"a": 1})):
        with pytest.raises(InvalidPlanError) as exc:
            operation(p)
        assert code in codes(exc.value.problems)


def test_empty_plan_operations() -> None:
    assert topological_order(plan()) == []
    assert dependency_levels(plan()) == []
    assert ready_todos(plan()) == []
    assert critical_path(plan(), {}) == (0.0, [])


def test_dependency_levels() -> None:
    p = plan(todo("d", "b", "c"), todo("c", "a"), todo("b"), todo("a"), todo("e", "a"))
    assert dependency_levels(p) == [["b", "a"], ["c", "e"], ["d"]]


# --- ready_todos ----------------------------------------------------------------------------------


def test_ready_uses_the_todos_own_status() -> None:
    p = plan(
        todo("a", status="done"),
        todo("b", "a"),
        todo("c", "b"),
        todo("d"),
        todo("e", status="running"),
        todo("f", "ghost"),
    )
    assert ready_todos(p) == ["b", "d"]


def test_ready_with_a_status_mapping() -> None:
    p = plan(todo("a"), todo("b", "a"), todo("c", "a", "b"))
    assert ready_todos(p, {}) == ["a"]
    assert ready_todos(p, {"a": "done"}) == ["b"]
    assert ready_todos(p, {"a": "done", "b": "done"}) == ["c"]
    assert ready_todos(p, {"a": "failed"}) == []
    assert ready_todos(p, {"a": "done", "b": "skipped"}) == []
    assert ready_todos(p, {"a": "done", "b": "done", "c": "done"}) == []
    assert ready_todos(p, {"zz": "done"}) == ["a"]  # unknown ids are ignored


# --- critical_path -------------------------------------------------------------------------------


def test_critical_path_picks_the_longest_chain() -> None:
    p = plan(todo("a"), todo("b", "a"), todo("c", "a"), todo("d", "b", "c"))
    assert critical_path(p, {"a": 1, "b": 5, "c": 2, "d": 1}) == (7.0, ["a", "b", "d"])
    assert critical_path(p, {"a": 1, "b": 1, "c": 3, "d": 1}) == (5.0, ["a", "c", "d"])


def test_critical_path_of_independent_todos_is_the_longest_one() -> None:
    p = plan(todo("a"), todo("b"), todo("c"))
    assert critical_path(p, {"a": 2, "b": 3.5, "c": 1}) == (3.5, ["b"])
    assert critical_path(p, {"a": 0, "b": 0, "c": 0}) == (0.0, ["a"])  # ties: plan order


def test_critical_path_needs_sane_durations() -> None:
    p = plan(todo("a"), todo("b", "a"))
    with pytest.raises(ValueError, match="'b'"):
        critical_path(p, {"a": 1})
    with pytest.raises(ValueError, match="'a'"):
        critical_path(p, {"a": -1, "b": 1})
    with pytest.raises(ValueError, match="'b'"):
        critical_path(p, {"a": 1, "b": float("nan")})


# --- propagate_failure ----------------------------------------------------------------------------


def test_propagate_failure_skips_every_dependent() -> None:
    p = plan(todo("t1"), todo("t2", "t1"), todo("t3", "t2"), todo("t4", "t3"), todo("t5"))
    new = propagate_failure(p, "t2", "disk full")
    status = {t.id: (t.status, t.error) for t in new.todos}
    assert status == {
        "t1": ("pending", None),
        "t2": ("failed", "disk full"),
        "t3": ("skipped", "skipped: depends on t2, which failed: disk full"),
        "t4": ("skipped", "skipped: depends on t2 (through t3), which failed: disk full"),
        "t5": ("pending", None),
    }
    assert all(t.status == "pending" for t in p.todos)  # the input is untouched
    assert new is not p and new.todos[0] is not p.todos[0]


def test_propagate_failure_leaves_done_and_failed_todos() -> None:
    p = plan(
        todo("a"),
        todo("b", "a", status="done", output={"x": 1}),
        todo("c", "b"),  # depends only on done b: can still run
        todo("d", "a", status="failed", error="own error"),
        todo("e", "a", status="running"),
    )
    new = propagate_failure(p, "a")
    assert [(t.id, t.status) for t in new.todos] == [
        ("a", "failed"),
        ("b", "done"),
        ("c", "pending"),
        ("d", "failed"),
        ("e", "skipped"),
    ]
    assert new.todo("d").error == "own error"
    assert new.todo("e").error == "skipped: depends on a, which failed"
    assert new.todo("b").output == {"x": 1}


def test_propagate_failure_keeps_an_existing_error_without_reason() -> None:
    p = plan(todo("a", status="running", error="exit 1"), todo("b", "a"))
    new = propagate_failure(p, "a")
    assert new.todo("a").status == "failed" and new.todo("a").error == "exit 1"


def test_propagate_failure_survives_cycles_and_unknown_ids() -> None:
    p = plan(todo("a", "b"), todo("b", "a"), todo("c", "b"))
    new = propagate_failure(p, "a", "x")
    assert [t.status for t in new.todos] == ["failed", "skipped", "skipped"]
    with pytest.raises(KeyError):
        propagate_failure(p, "ghost")
