"""Property tests for lam.dag on random DAGs (hypothesis; small plans, modest runs)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lam import TODO_STATUSES, Plan, ToDo, TodoStatus
from lam.dag import (
    InvalidPlanError,
    critical_path,
    dependency_levels,
    propagate_failure,
    ready_todos,
    topological_order,
    validate_plan,
)

SETTINGS = settings(max_examples=150, deadline=None)


@st.composite
def dags(draw: st.DrawFn, max_size: int = 25) -> Plan:
    """A random DAG: node k may depend on nodes created before it; the plan lists the nodes in
    a random order, so plan order and dependency order disagree."""
    n = draw(st.integers(min_value=1, max_value=max_size))
    deps: list[list[int]] = [
        draw(st.lists(st.integers(0, k - 1), max_size=4, unique=True)) if k else []
        for k in range(n)
    ]
    statuses = draw(st.lists(st.sampled_from(TODO_STATUSES), min_size=n, max_size=n))
    order = draw(st.permutations(range(n)))
    return Plan(
        goal="random",
        todos=[
            ToDo(
                id=f"t{k}",
                title=f"step {k}",
                executor="shell",
                depends_on=[f"t{d}" for d in deps[k]],
                status=statuses[k],
            )
            for k in order
        ],
    )


def edges(plan: Plan) -> list[tuple[str, str]]:
    """(dependency, dependent) pairs."""
    return [(dep, t.id) for t in plan.todos for dep in t.depends_on]


@SETTINGS
@given(dags())
def test_random_dags_are_valid(plan: Plan) -> None:
    assert validate_plan(plan) == []


@SETTINGS
@given(dags())
def test_order_respects_every_edge_and_plan_order(plan: Plan) -> None:
    order = topological_order(plan)
    assert sorted(order) == sorted(plan.ids)
    position = {todo_id: i for i, todo_id in enumerate(order)}
    for dep, dependent in edges(plan):
        assert position[dep] < position[dependent]
    # Stable: each step takes the ready ToDo that comes first in the plan.
    done: set[str] = set()
    for todo_id in order:
        ready = [
            t.id for t in plan.todos if t.id not in done and all(d in done for d in t.depends_on)
        ]
        assert todo_id == ready[0]
        done.add(todo_id)


@SETTINGS
@given(dags())
def test_levels_are_longest_dependency_chains(plan: Plan) -> None:
    levels = dependency_levels(plan)
    level = {todo_id: i for i, ids in enumerate(levels) for todo_id in ids}
    assert sorted(level) == sorted(plan.ids)
    assert all(levels)  # no empty level
    for t in plan.todos:
        expected = 1 + max((level[d] for d in t.depends_on), default=-1)
        assert level[t.id] == expected
    for ids in levels:  # plan order within a level
        assert ids == [i for i in plan.ids if i in set(ids)]


@SETTINGS
@given(dags(), st.data())
def test_ready_is_exactly_pending_with_all_dependencies_done(
    plan: Plan, data: st.DataObject
) -> None:
    by_id = plan.by_id()
    expected = [
        t.id
        for t in plan.todos
        if t.status == "pending" and all(by_id[d].status == "done" for d in t.depends_on)
    ]
    assert ready_todos(plan) == expected

    statuses: dict[str, TodoStatus] = data.draw(
        st.dictionaries(st.sampled_from(plan.ids), st.sampled_from(TODO_STATUSES))
    )

    def status(todo_id: str) -> TodoStatus:
        return statuses.get(todo_id, by_id[todo_id].status)

    expected = [
        t.id
        for t in plan.todos
        if status(t.id) == "pending" and all(status(d) == "done" for d in t.depends_on)
    ]
    assert ready_todos(plan, statuses) == expected


@SETTINGS
@given(dags(), st.data())
def test_critical_path_bounds_and_chain(plan: Plan, data: st.DataObject) -> None:
    durations = {
        todo_id: data.draw(st.floats(min_value=0, max_value=1e6, allow_nan=False))
        for todo_id in plan.ids
    }
    length, path = critical_path(plan, durations)
    tolerance = 1e-9 * (1 + math.fsum(durations.values()))
    assert (
        max(durations.values()) - tolerance <= length <= math.fsum(durations.values()) + tolerance
    )
    assert path and len(set(path)) == len(path)
    assert math.isclose(length, math.fsum(durations[i] for i in path), rel_tol=1e-9, abs_tol=1e-9)
    by_id = plan.by_id()
    for earlier, later in itertools.pairwise(path):
        assert earlier in by_id[later].depends_on
    assert not by_id[path[0]].depends_on  # starts at a ToDo that waits for nothing


@SETTINGS
@given(dags(max_size=15), st.data())
def test_a_back_edge_makes_a_reported_cycle(plan: Plan, data: st.DataObject) -> None:
    pairs = edges(plan)
    if not pairs:
        return
    dep, dependent = data.draw(st.sampled_from(pairs))
    # dep -> dependent already exists; make dep depend on dependent too.
    broken = plan.model_copy(deep=True)
    broken.todo(dep).depends_on.append(dependent)
    problems = validate_plan(broken)
    assert problems and {p.code for p in problems} == {"cycle"}
    by_id = broken.by_id()
    for problem in problems:
        ring = problem.cycle
        assert len(ring) >= 2 and problem.todo_id == ring[0]
        for i, todo_id in enumerate(ring):
            assert ring[(i + 1) % len(ring)] in by_id[todo_id].depends_on
        for todo_id in ring:
            assert repr(todo_id) in problem.message


@SETTINGS
@given(dags(), st.data())
def test_failure_skips_exactly_the_reachable_unfinished_dependents(
    plan: Plan, data: st.DataObject
) -> None:
    failed = data.draw(st.sampled_from(plan.ids))
    new = propagate_failure(plan, failed, "boom")
    old = plan.by_id()
    # Brute force: dependents reachable from the failure without passing a done ToDo.
    reached = {failed}
    changed = True
    while changed:
        changed = False
        for t in plan.todos:
            if t.id not in reached and t.status != "done" and reached & set(t.depends_on):
                reached.add(t.id)
                changed = True
    for t in new.todos:
        before = old[t.id]
        if t.id == failed:
            assert (t.status, t.error) == ("failed", "boom")
        elif t.id in reached and before.status != "failed":
            assert t.status == "skipped"
            assert t.error is not None and t.error.startswith(f"skipped: depends on {failed}")
        else:
            assert (t.status, t.error) == (before.status, before.error)


@st.composite
def digraphs(draw: st.DrawFn) -> Plan:
    """Any dependency graph without self loops: cycles, knots and all."""
    n = draw(st.integers(min_value=1, max_value=10))
    todos = []
    for k in range(n):
        others = [i for i in range(n) if i != k]
        deps = draw(st.lists(st.sampled_from(others), max_size=3, unique=True)) if others else []
        todos.append(ToDo(id=f"t{k}", title="x", executor="e", depends_on=[f"t{d}" for d in deps]))
    return Plan(goal="any", todos=todos)


@SETTINGS
@given(digraphs())
def test_one_real_cycle_is_reported_per_knot(plan: Plan) -> None:
    # Brute force: ToDos a and b are in one knot when each reaches the other.
    by_id = plan.by_id()
    reach = {t.id: set(t.depends_on) for t in plan.todos}
    for _ in plan.todos:
        for todo_id in reach:
            reach[todo_id] |= {r for d in list(reach[todo_id]) for r in reach[d]}
    knots = {
        frozenset({a} | {b for b in reach[a] if a in reach[b]}) for a in reach if a in reach[a]
    }
    problems = validate_plan(plan)
    assert all(p.code == "cycle" for p in problems)
    assert len(problems) == len(knots)
    for problem in problems:
        ring = problem.cycle
        assert len(set(ring)) == len(ring)
        assert any(set(ring) <= knot for knot in knots)
        for i, todo_id in enumerate(ring):
            assert ring[(i + 1) % len(ring)] in by_id[todo_id].depends_on
    if knots:
        with pytest.raises(InvalidPlanError):
            topological_order(plan)
    else:
        assert len(topological_order(plan)) == len(plan.todos)
