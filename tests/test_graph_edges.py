"""The graph's edges (graph/builder.py): a failed turn goes to `respond` by the edges alone."""

from __future__ import annotations

from typing import Any

import pytest

from graph.builder import build_graph

GRAPH = build_graph()
EDGES = [
    (source, name, spec)
    for source, branches in GRAPH.builder.branches.items()
    for name, spec in branches.items()
]


def test_every_node_but_intake_and_respond_leaves_by_a_conditional_edge() -> None:
    sources = {source for source, _, _ in EDGES}
    assert sources == set(GRAPH.builder.nodes) - {"intake", "respond"}


@pytest.mark.parametrize(("source", "name", "spec"), EDGES, ids=[e[0] for e in EDGES])
def test_a_failed_turn_goes_to_respond_whatever_the_node_wrote(
    source: str, name: str, spec: Any
) -> None:
    # No plan, no log: the edge's own function (after_check, after_replan, ...) would
    # raise on this state, so it is not asked; the wrapper decides.
    assert "respond" in spec.ends.values()
    assert spec.path.invoke({"status": "failed"}) == "respond"


@pytest.mark.parametrize("source", ["check", "plan"])
def test_a_running_turn_goes_where_the_nodes_edge_says(source: str) -> None:
    (spec,) = GRAPH.builder.branches[source].values()
    problems: dict[str, Any] = {"status": "running", "plan_problems": ["a problem"]}
    assert spec.path.invoke(problems) == "plan"  # back to the planner, not to respond
    ahead = {"check": "approve", "plan": "check"}[source]
    assert spec.path.invoke({"status": "running", "plan_problems": []}) == ahead
