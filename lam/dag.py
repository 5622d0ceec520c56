"""Operations on a plan's dependency graph (ToDo -> the ToDos it ``depends_on``).

Everything here is linear in ToDos + dependencies, except ``topological_order``, whose
"earliest in plan order first" rule needs a heap (O(E + V log V)). ``validate_plan`` is
the repair loop's tool: it reports every problem at once, in words an LLM and a person
can act on. The other functions refuse a structurally broken plan with
:class:`InvalidPlanError` (a ValueError) naming the problems, cycles included.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from lam.plan import Plan, TodoStatus

__all__ = [
    "InvalidPlanError",
    "PlanProblem",
    "ProblemCode",
    "critical_path",
    "dependency_levels",
    "format_problems",
    "propagate_failure",
    "ready_todos",
    "topological_order",
    "validate_plan",
]

ProblemCode = Literal[
    "empty_plan",
    "too_many_todos",
    "duplicate_id",
    "unknown_dependency",
    "self_dependency",
    "cycle",
    "unknown_executor",
]

_MAX_LISTED = 20  # ids listed in one message; plans near the limit would drown the reader


@dataclass(frozen=True, slots=True)
class PlanProblem:
    """One thing wrong with a plan. ``str()`` is the message: it names the ToDo ids."""

    code: ProblemCode
    todo_id: str | None
    message: str
    cycle: tuple[str, ...] = ()
    """For ``code == "cycle"``: the ids on the cycle, each depending on the next (and the
    last on the first)."""

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "todo_id": self.todo_id,
            "message": self.message,
            "cycle": list(self.cycle),
        }


class InvalidPlanError(ValueError):
    """The plan's graph is broken (cycle, unknown or self dependency, duplicate id)."""

    def __init__(self, problems: list[PlanProblem]) -> None:
        self.problems = problems
        super().__init__(format_problems(problems))


def format_problems(problems: Iterable[PlanProblem]) -> str:
    """One readable block, e.g. to put in the prompt that asks an LLM to repair the plan."""
    items = list(problems)
    if not items:
        return "The plan has no problems."
    noun = "problem" if len(items) == 1 else "problems"
    return f"The plan has {len(items)} {noun}:\n" + "\n".join(f"- {p.message}" for p in items)


# --- the graph -----------------------------------------------------------------------------


class _Graph:
    """Plan as integer adjacency lists. Node i is the i-th *distinct* id in plan order; ToDos
    that repeat an id are merged into it (and reported as duplicates)."""

    __slots__ = ("dependents", "deps", "duplicates", "ids", "index", "self_deps", "unknown")

    def __init__(self, plan: Plan) -> None:
        index: dict[str, int] = {}
        ids: list[str] = []
        first: dict[str, int] = {}
        positions: dict[str, list[int]] = {}
        for position, todo in enumerate(plan.todos):
            if todo.id in index:
                positions.setdefault(todo.id, [first[todo.id]]).append(position)
                continue
            index[todo.id] = len(ids)
            first[todo.id] = position
            ids.append(todo.id)
        self.ids = ids
        self.index = index
        self.duplicates = positions  # id -> plan positions (0-based) of every ToDo using it
        deps: list[list[int]] = [[] for _ in ids]
        dependents: list[list[int]] = [[] for _ in ids]
        self.self_deps: list[str] = []
        self.unknown: list[tuple[str, str]] = []  # (todo id, missing dependency)
        for todo in plan.todos:
            node = index[todo.id]
            mine = deps[node]
            for dep in todo.depends_on:
                target = index.get(dep)
                if target is None:
                    self.unknown.append((todo.id, dep))
                elif target == node:
                    self.self_deps.append(todo.id)
                elif target not in mine:  # usually 1-3 deps: a list scan beats a set
                    mine.append(target)
                    dependents[target].append(node)
        self.deps = deps
        self.dependents = dependents

    def structural_problems(self) -> list[PlanProblem]:
        problems = [_duplicate(todo_id, where) for todo_id, where in self.duplicates.items()]
        problems += [_self_dependency(todo_id) for todo_id in dict.fromkeys(self.self_deps)]
        problems += [_unknown_dependency(t, d, self.ids) for t, d in dict.fromkeys(self.unknown)]
        return problems

    def kahn(self, *, stable: bool) -> list[int]:
        """Nodes, each after its dependencies; shorter than ``ids`` if there is a cycle.

        stable: always take the ready node earliest in plan order (heap); otherwise FIFO,
        which is linear and enough for levels and the critical path.
        """
        pending = [len(d) for d in self.deps]
        order: list[int] = []
        dependents = self.dependents
        if stable:
            heap = [node for node, count in enumerate(pending) if count == 0]  # already sorted
            while heap:
                node = heapq.heappop(heap)
                order.append(node)
                for nxt in dependents[node]:
                    pending[nxt] -= 1
                    if pending[nxt] == 0:
                        heapq.heappush(heap, nxt)
        else:
            queue = deque(node for node, count in enumerate(pending) if count == 0)
            while queue:
                node = queue.popleft()
                order.append(node)
                for nxt in dependents[node]:
                    pending[nxt] -= 1
                    if pending[nxt] == 0:
                        queue.append(nxt)
        return order

    def cycle_problems(self, order: list[int]) -> list[PlanProblem]:
        """One cycle per knot (strongly connected component) among the nodes ``order`` missed."""
        if len(order) == len(self.ids):
            return []
        done = bytearray(len(self.ids))
        for node in order:
            done[node] = 1
        left = [node for node in range(len(self.ids)) if not done[node]]
        return [
            _cycle_problem(self._cycle_in(component), self.ids, set(component))
            for component in self._components(left)
        ]

    def _components(self, nodes: list[int]) -> list[list[int]]:
        """Strongly connected components of size > 1 among ``nodes`` (iterative Tarjan)."""
        allowed = set(nodes)
        number = dict.fromkeys(nodes, -1)
        low: dict[int, int] = {}
        on_stack: set[int] = set()
        stack: list[int] = []
        components: list[list[int]] = []
        counter = 0
        for root in nodes:
            if number[root] != -1:
                continue
            work: list[tuple[int, int]] = [(root, 0)]
            while work:
                node, i = work[-1]
                if i == 0 and number[node] == -1:
                    number[node] = low[node] = counter
                    counter += 1
                    stack.append(node)
                    on_stack.add(node)
                deps = self.deps[node]
                if i < len(deps):
                    work[-1] = (node, i + 1)
                    dep = deps[i]
                    if dep not in allowed:
                        continue
                    if number[dep] == -1:
                        work.append((dep, 0))
                    elif dep in on_stack:
                        low[node] = min(low[node], number[dep])
                    continue
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == number[node]:
                    component: list[int] = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
        components.sort(key=lambda c: c[0])
        return components

    def _cycle_in(self, component: list[int]) -> list[int]:
        """A cycle inside one component, starting at its earliest ToDo in plan order."""
        members = set(component)
        seen: dict[int, int] = {}
        path: list[int] = []
        node = component[0]
        while node not in seen:
            seen[node] = len(path)
            path.append(node)
            node = next(dep for dep in self.deps[node] if dep in members)
        cycle = path[seen[node] :]
        start = cycle.index(min(cycle))
        return cycle[start:] + cycle[:start]

    def require_acyclic(self, order: list[int]) -> None:
        problems = self.structural_problems()
        if len(order) != len(self.ids) or problems:
            problems += self.cycle_problems(order)
            raise InvalidPlanError(problems)


# --- problems ------------------------------------------------------------------------------


def _quote_ids(ids: Iterable[str], limit: int = _MAX_LISTED) -> str:
    items = list(ids)
    shown = ", ".join(repr(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _duplicate(todo_id: str, positions: list[int]) -> PlanProblem:
    where = ", ".join(f"#{p + 1}" for p in positions)
    return PlanProblem(
        "duplicate_id",
        todo_id,
        f"ToDo id {todo_id!r} is used by {len(positions)} ToDos (positions {where}); "
        "every ToDo needs its own id.",
    )


def _self_dependency(todo_id: str) -> PlanProblem:
    return PlanProblem(
        "self_dependency",
        todo_id,
        f"ToDo {todo_id!r} depends on itself; remove {todo_id!r} from its depends_on.",
    )


def _unknown_dependency(todo_id: str, dep: str, ids: list[str]) -> PlanProblem:
    return PlanProblem(
        "unknown_dependency",
        todo_id,
        f"ToDo {todo_id!r} depends on {dep!r}, which is not a ToDo of this plan "
        f"(ToDo ids: {_quote_ids(ids)}).",
    )


def _cycle_problem(cycle: list[int], ids: list[str], component: set[int]) -> PlanProblem:
    names = [ids[node] for node in cycle]
    steps = ", ".join(
        f"{names[i]!r} depends on {names[(i + 1) % len(names)]!r}" for i in range(len(names))
    )
    message = f"Dependency cycle: {steps}; remove one of these dependencies."
    others = sorted(component - set(cycle))
    if others:
        message += f" Also caught in the same knot of cycles: {_quote_ids(ids[n] for n in others)}."
    return PlanProblem("cycle", names[0], message, tuple(names))


# --- public operations ---------------------------------------------------------------------


def validate_plan(
    plan: Plan, *, executors: Collection[str] | None = None, max_todos: int = 200
) -> list[PlanProblem]:
    """Every problem of the plan, at once (empty when it can run).

    Checks: empty plan, more than ``max_todos`` ToDos, duplicate ids, unknown and self
    dependencies, cycles (each with its ids in order) and, when ``executors`` is given,
    executors not in it.
    """
    if not plan.todos:
        return [
            PlanProblem(
                "empty_plan", None, "The plan has no ToDos; add at least one step toward the goal."
            )
        ]
    problems: list[PlanProblem] = []
    if len(plan.todos) > max_todos:
        problems.append(
            PlanProblem(
                "too_many_todos",
                None,
                f"The plan has {len(plan.todos)} ToDos; at most {max_todos} are allowed. "
                "Merge or drop steps.",
            )
        )
    graph = _Graph(plan)
    problems += graph.structural_problems()
    if executors is not None:
        known = executors if isinstance(executors, (set, frozenset, dict)) else set(executors)
        listing = _quote_ids(sorted(known))
        for todo in plan.todos:
            if todo.executor not in known:
                problems.append(
                    PlanProblem(
                        "unknown_executor",
                        todo.id,
                        f"ToDo {todo.id!r} uses executor {todo.executor!r}, which does not exist "
                        f"(available executors: {listing or 'none'}).",
                    )
                )
    problems += graph.cycle_problems(graph.kahn(stable=False))
    return problems


def topological_order(plan: Plan) -> list[str]:
    """ToDo ids, each after all of its dependencies; among ToDos ready at the same time, the
    one earliest in the plan comes first (so an already ordered plan keeps its order).

    Raises InvalidPlanError (a ValueError) naming the cycle, or other graph problems.
    """
    graph = _Graph(plan)
    order = graph.kahn(stable=True)
    graph.require_acyclic(order)
    return [graph.ids[node] for node in order]


def _levels(graph: _Graph, order: list[int]) -> list[int]:
    level = [0] * len(graph.ids)
    deps = graph.deps
    for node in order:
        mine = deps[node]
        if mine:
            level[node] = 1 + max(level[dep] for dep in mine)
    return level


def dependency_levels(plan: Plan) -> list[list[str]]:
    """ToDo ids by depth: level 0 has no dependencies, level k depends on level k-1 at most.
    ToDos in one level can run in parallel; within a level, plan order."""
    graph = _Graph(plan)
    order = graph.kahn(stable=False)
    graph.require_acyclic(order)
    levels: list[list[str]] = []
    for node, depth in enumerate(_levels(graph, order)):
        while len(levels) <= depth:
            levels.append([])
        levels[depth].append(graph.ids[node])
    return levels


def ready_todos(plan: Plan, statuses: Mapping[str, TodoStatus] | None = None) -> list[str]:
    """Ids of pending ToDos whose dependencies are all done, in plan order.

    ``statuses`` overrides the ToDos' own status by id (ids it lacks keep their own). A
    dependency on an id that is not in the plan is never done.
    """
    own: dict[str, TodoStatus] = {}
    for todo in plan.todos:
        own.setdefault(todo.id, todo.status)
    if statuses:
        own.update((k, v) for k, v in statuses.items() if k in own)
    ready: list[str] = []
    for todo in plan.todos:
        if own[todo.id] == "pending" and all(own.get(dep) == "done" for dep in todo.depends_on):
            ready.append(todo.id)
    return list(dict.fromkeys(ready))


def critical_path(plan: Plan, durations: Mapping[str, float]) -> tuple[float, list[str]]:
    """Longest chain of dependent ToDos by total duration: ``(length, ids first to last)``.

    This is how long the plan takes with unlimited parallelism. Every ToDo needs a finite,
    non-negative duration. Ties go to the ToDo earliest in the plan.
    """
    graph = _Graph(plan)
    order = graph.kahn(stable=False)
    graph.require_acyclic(order)
    if not graph.ids:
        return 0.0, []
    missing = [i for i in graph.ids if i not in durations]
    if missing:
        raise ValueError(f"no duration for ToDos {_quote_ids(missing)}")
    cost = [float(durations[i]) for i in graph.ids]
    bad = [graph.ids[n] for n, c in enumerate(cost) if not (math.isfinite(c) and c >= 0)]
    if bad:
        raise ValueError(f"durations must be finite and >= 0; not so for {_quote_ids(bad)}")
    finish = [0.0] * len(cost)
    before = [-1] * len(cost)
    for node in order:
        best = -1
        for dep in graph.deps[node]:
            if (
                best < 0
                or finish[dep] > finish[best]
                or (finish[dep] == finish[best] and dep < best)
            ):
                best = dep
        before[node] = best
        finish[node] = cost[node] + (finish[best] if best >= 0 else 0.0)
    end = max(range(len(finish)), key=lambda n: (finish[n], -n))
    path: list[str] = []
    node = end
    while node >= 0:
        path.append(graph.ids[node])
        node = before[node]
    path.reverse()
    return finish[end], path


def propagate_failure(plan: Plan, failed_id: str, reason: str | None = None) -> Plan:
    """A new plan where ``failed_id`` is failed and everything that depends on it, directly
    or not, is skipped (its error says why).

    Done ToDos are left alone and the failure does not spread past them: their output
    exists, so what depends only on them can still run. ToDos that already failed on their
    own keep their status and error (the better story).

    Raises KeyError if ``failed_id`` is not in the plan.
    """
    plan.todo(failed_id)  # KeyError early, before copying
    new = plan.model_copy(deep=True)
    dependents: dict[str, list[str]] = {}
    finished: set[str] = set()
    for todo in new.todos:
        if todo.status == "done":
            finished.add(todo.id)
        for dep in todo.depends_on:
            dependents.setdefault(dep, []).append(todo.id)
    why = f": {reason}" if reason else ""
    # BFS from the failure, remembering through which direct dependency each ToDo was reached.
    via: dict[str, str] = {failed_id: failed_id}
    queue = deque([failed_id])
    while queue:
        current = queue.popleft()
        for dependent in dependents.get(current, ()):
            if dependent not in via and dependent not in finished:
                via[dependent] = current
                queue.append(dependent)
    for todo in new.todos:
        if todo.id == failed_id:
            todo.status = "failed"
            if reason is not None:
                todo.error = reason
        elif todo.id in via and todo.status != "failed":
            direct = via[todo.id]
            if direct == failed_id:
                error = f"skipped: depends on {failed_id}, which failed{why}"
            else:
                error = f"skipped: depends on {failed_id} (through {direct}), which failed{why}"
            todo.status = "skipped"
            todo.error = error
    return new
