"""The deployment files, checked without running them (docs/deploy.md).

- the Dockerfile and the stack's Containerfiles pass hadolint;
- deploy/compose.yaml is valid against the compose specification's JSON Schema (the one
  the npm package dclint ships, fetched by `make deploy-tools`), and the schema refuses a
  misspelt key;
- the parts that must agree do: Prometheus scrapes every planner service under the job
  name the alert rules use, HAProxy balances over the same services, Grafana's data
  source is the stack's Prometheus and its dashboard folder is where the dashboard is
  mounted, the planners send traces where Jaeger receives OTLP over HTTP, every file the
  stack mounts exists; promtool accepts Prometheus' configuration with the rules;
- the Railway recipe builds the Dockerfile and checks `/healthz`.

Grafana's and Jaeger's images cannot be pulled here, so their part is checked here only;
tests/test_deploy.py runs the rest.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.support.containers import COMPOSE_FILE, ROOT, missing, tool

DEPLOY = ROOT / "deploy"
DOCKERFILES = [ROOT / "Dockerfile", *sorted(DEPLOY.glob("*/Containerfile"))]
SCHEMA = Path(sys.prefix) / "dclint" / "package" / "schemas" / "compose.schema.json"
PLANNERS = ("planner-1", "planner-2")


@pytest.fixture(scope="module")
def stack() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text()))


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's bind mounts: container path -> host path (relative to deploy/)."""
    out = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            out[target] = source
    return out


def test_the_dockerfiles_pass_hadolint() -> None:
    hadolint = tool("hadolint")
    done = subprocess.run(
        [hadolint, "--no-color", *map(str, DOCKERFILES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(DOCKERFILES) == 4  # the server's, Redis', HAProxy's, Prometheus'


def test_the_compose_file_is_valid_against_the_compose_specification(
    stack: dict[str, Any],
) -> None:
    if not SCHEMA.is_file():
        missing(f"the compose specification's schema ({SCHEMA}: make deploy-tools)")
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(stack)]
    assert errors == []
    # The schema is strict enough to catch a slip of the pen.
    wrong = copy.deepcopy(stack)
    wrong["services"]["redis"]["helthcheck"] = wrong["services"]["redis"].pop("restart")
    assert any("helthcheck" in e.message for e in validator.iter_errors(wrong))


def test_every_planner_is_scraped_and_balanced(stack: dict[str, Any]) -> None:
    planners = sorted(
        n
        for n, s in stack["services"].items()
        if s["image"] == stack["services"]["planner-1"]["image"]
    )
    assert tuple(planners) == PLANNERS
    port = "8000"  # the image's CPA_PORT
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    [job] = prometheus["scrape_configs"]
    assert [t for c in job["static_configs"] for t in c["targets"]] == [
        f"{p}:{port}" for p in planners
    ]
    # The alert rules name that job.
    alerts = (ROOT / "docs" / "prometheus-alerts.yml").read_text()
    assert f'up{{job="{job["job_name"]}"}}' in alerts
    haproxy = (DEPLOY / "haproxy" / "haproxy.cfg").read_text()
    servers = re.findall(r"^\s*server (\S+) (\S+)$", haproxy, re.M)
    assert servers == [(p, f"{p}:{port}") for p in planners]
    assert "option httpchk GET /healthz" in haproxy
    # The proxy's published port leads to the port HAProxy binds.
    [bind] = re.findall(r"^\s*bind :(\d+)$", haproxy, re.M)
    assert all(p.endswith(f":{bind}") for p in stack["services"]["proxy"]["ports"])


def test_prometheus_loads_the_project_rules(stack: dict[str, Any], tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        missing("promtool (Debian's prometheus)")
    mounted = mounts(stack["services"]["prometheus"])
    config = mounted["/etc/prometheus/prometheus.yml"]
    assert mounted["/etc/prometheus/rules/cpa-planner.yml"] == "../docs/prometheus-alerts.yml"
    # The configuration with its rule files where this machine has them.
    prometheus = yaml.safe_load((DEPLOY / config).read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    prometheus["rule_files"] = [str(ROOT / "docs" / "prometheus-alerts.yml")]
    here = tmp_path / "prometheus.yml"
    here.write_text(yaml.safe_dump(prometheus))
    done = subprocess.run(
        [promtool, "check", "config", str(here)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "9 rules found" in done.stdout + done.stderr


def test_grafana_is_provisioned_with_the_stacks_prometheus_and_the_dashboard(
    stack: dict[str, Any],
) -> None:
    grafana = stack["services"]["grafana"]
    mounted = mounts(grafana)
    provisioning = DEPLOY / mounted["/etc/grafana/provisioning"]
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["isDefault"]
    prometheus_port = stack["services"]["prometheus"]["ports"][0].rsplit(":", 1)[1]
    assert source["url"] == f"http://prometheus:{prometheus_port}"
    [provider] = yaml.safe_load((provisioning / "dashboards" / "cpa-planner.yml").read_text())[
        "providers"
    ]
    folder = provider["options"]["path"]
    dashboards = {t: s for t, s in mounted.items() if t.startswith(folder + "/")}
    assert dashboards == {f"{folder}/cpa-planner.json": "../docs/grafana-dashboard.json"}
    # Provisioning fills in no `__inputs`: nothing but them may name ${DS_...}.
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    dashboard.pop("__inputs", None)
    assert "${DS_" not in json.dumps(dashboard)
    assert "GF_SECURITY_ADMIN_PASSWORD" in grafana["environment"]


def test_the_planners_send_traces_where_jaeger_receives_them(stack: dict[str, Any]) -> None:
    jaeger = stack["services"]["jaeger"]
    assert jaeger["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    for name in PLANNERS:
        env = stack["services"][name]["environment"]
        # OTLP over HTTP (opentelemetry-exporter-otlp-proto-http) is Jaeger's port 4318.
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
        assert env["REDIS_URL"] == "redis://redis:6379/0"


def test_every_file_the_stack_mounts_exists(stack: dict[str, Any]) -> None:
    sources = [s for service in stack["services"].values() for s in mounts(service).values()]
    assert len(sources) == 5
    for source in sources:
        assert (DEPLOY / source).exists(), source


def test_the_railway_recipe_builds_the_dockerfile_and_checks_healthz() -> None:
    recipe = json.loads((ROOT / "railway.json").read_text())
    assert recipe["build"] == {"builder": "DOCKERFILE", "dockerfilePath": "Dockerfile"}
    assert (ROOT / recipe["build"]["dockerfilePath"]).is_file()
    assert recipe["deploy"]["healthcheckPath"] == "/healthz"
    # Run in the image by tests/test_deploy.py (PORT given by the platform).
    assert "${PORT" in recipe["deploy"]["startCommand"]
