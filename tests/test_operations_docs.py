"""docs/operations.md's dashboard and alert rules use only metrics the planner exposes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from api.metrics import ActiveConversations

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
ALERTS = ROOT / "docs" / "prometheus-alerts.yml"
NAME = re.compile(r"\bcpa_[a-z_]+")


def exposed() -> set[str]:
    import graph.telemetry.metrics  # noqa: F401  (registers the metrics)

    names: set[str] = set()
    for collector in [*REGISTRY._collector_to_names, ActiveConversations(0, 0)]:
        for family in collector.collect():
            names.update(s.name for s in family.samples)
            if family.type == "histogram":
                names.update(f"{family.name}_{s}" for s in ("bucket", "count", "sum"))
            elif family.type == "counter":
                names.add(f"{family.name}_total")
            else:
                names.add(family.name)
    return {n for n in names if n.startswith("cpa_")}


def test_every_panel_queries_metrics_that_exist() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {n for e in expressions for n in NAME.findall(e)}
    assert used and used <= exposed(), used - exposed()
    # Every metric of issue 14 is on the dashboard.
    for name in ("cpa_conversations_total", "cpa_todos_total", "cpa_llm_tokens_total"):
        assert name in used


def test_every_alert_uses_metrics_that_exist() -> None:
    used = set(NAME.findall(ALERTS.read_text()))
    assert used and used <= exposed(), used - exposed()


@pytest.mark.slow
def test_promtool_accepts_the_alert_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("promtool (Debian's prometheus) is required in CI")
        pytest.skip("promtool not installed")
    checked = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
