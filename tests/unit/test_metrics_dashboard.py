"""The planner's own metrics, the Grafana dashboard that queries them, and the manifests."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml

from dynamo_planner.metrics import METRIC_NAMES, PlannerMetrics
from dynamo_planner.planner import StepRecord
from dynamo_planner.values import (
    Demand,
    Observation,
    ReplicaPlan,
    ReplicaState,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "planner-dashboard.json"
CONFIGMAP = DEPLOY / "grafana" / "grafana-planner-dashboard-configmap.yaml"
PLANNER = DEPLOY / "kubernetes" / "planner.yaml"

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset",
             "bool", "and", "or", "unless"}  # fmt: skip


def _exprs(node: Any) -> list[str]:
    found = []
    if isinstance(node, dict):
        if node.get("type") == "datasource":
            return found  # a data-source variable's "query" is a plugin type
        for key, value in node.items():
            if (key == "expr" and isinstance(value, str)) or (
                key in ("query", "definition") and isinstance(value, str)
            ):
                found.append(value)
            else:
                found.extend(_exprs(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_exprs(item))
    return found


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label sets, ranges, functions removed)."""
    text = re.sub(r'"[^"]*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)
    text = re.sub(r"label_values\(\s*([A-Za-z_:][\w:]*)\s*,[^)]*\)", r"\1", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][\w:]*", text):
        name = match.group(0)
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or name in _KEYWORDS:
            continue
        names.add(name)
    return names


class TestPlannerMetrics:
    def test_step_publishes_observation_plan_and_gpu_hours(self) -> None:
        """One step sets the observed, decided and cumulative gauges."""
        metrics = PlannerMetrics(prefill_gpus_per_engine=2, decode_gpus_per_engine=1)
        demand = Demand.of(num_req=120, isl_tokens=3000, osl_tokens=150, interval_s=60)
        record = StepRecord(
            observation=Observation(
                interval_s=60,
                num_req=60,
                isl_tokens=3000,
                osl_tokens=150,
                ttft_ms=None,
                itl_ms=20,
            ),
            current=ReplicaState(prefill=1, decode=3),
            plan=ReplicaPlan(prefill=2, decode=None, demand=demand),
            applied=True,
            errors={"source": 2},
        )
        metrics.on_step(record)
        text = metrics.render().decode()
        values = {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }
        assert values["dynamo_planner_observed_requests_per_second"] == 1.0
        assert math.isnan(values["dynamo_planner_observed_ttft_ms"])
        assert values["dynamo_planner_observed_itl_ms"] == 20
        assert math.isnan(values["dynamo_planner_observed_arrival_dispersion"])
        assert values["dynamo_planner_predicted_num_prefill_replicas"] == 2
        assert values["dynamo_planner_predicted_num_decode_replicas"] == 3
        assert values["dynamo_planner_predicted_requests_per_second"] == 2.0
        assert values["dynamo_planner_gpu_hours"] == pytest.approx(5 * 60 / 3600)
        assert values['dynamo_planner_errors_total{kind="source"}'] == 2
        # a plan without an sla scaler's sized shares: unknown, not zero
        assert math.isnan(values["dynamo_planner_prefill_sized_attainment"])
        sized = attrs.evolve(
            record,
            plan=attrs.evolve(record.plan, details={"sized_attainment": (0.9, 0.99)}),
        )
        bursty = attrs.evolve(
            sized,
            observation=attrs.evolve(record.observation, arrival_dispersion=1.5),
        )
        metrics.on_step(bursty)
        text = metrics.render().decode()
        assert "dynamo_planner_observed_arrival_dispersion 1.5" in text
        assert "dynamo_planner_prefill_sized_attainment 0.9" in text
        assert "dynamo_planner_decode_sized_attainment 0.99" in text
        assert values["dynamo_planner_decisions_total"] == 1

    def test_errors_count_only_new_failures(self) -> None:
        """Cumulative error counts from the planner are turned into increments."""
        metrics = PlannerMetrics()
        for total in (1, 1, 3):
            metrics.on_step(
                StepRecord(
                    observation=Observation(interval_s=10),
                    current=ReplicaState(),
                    plan=ReplicaPlan(prefill=None, decode=None),
                    applied=False,
                    errors={"connector": total},
                )
            )
        assert (
            'dynamo_planner_errors_total{kind="connector"} 3.0'
            in metrics.render().decode()
        )
        assert "dynamo_planner_unknown_intervals 3.0" in metrics.render().decode()

    def test_names_are_exposed(self) -> None:
        """Every name in METRIC_NAMES is in the exposition."""
        text = PlannerMetrics().render().decode()
        for name in METRIC_NAMES:
            assert f"# TYPE {name} " in text


class TestDashboard:
    def test_every_query_reads_an_existing_metric(self) -> None:
        """Each panel and variable queries only metrics the planner exports."""
        dashboard = json.loads(DASHBOARD.read_text())
        exprs = _exprs(dashboard)
        assert len(exprs) > 20
        for expr in exprs:
            names = metric_names(expr)
            assert names, expr
            assert names <= set(METRIC_NAMES), (expr, names - set(METRIC_NAMES))

    def test_metric_name_extraction(self) -> None:
        """The checker finds names and ignores functions, labels and keywords."""
        assert metric_names('sum by (kind) (increase(a_total{x="y"}[1h])) / b') == {
            "a_total",
            "b",
        }

    def test_rows_and_variable(self) -> None:
        """Four rows and a namespace variable, as the reference dashboard has."""
        dashboard = json.loads(DASHBOARD.read_text())
        rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
        assert rows == [
            "Worker Counts & GPU Usage",
            "Observed Metrics",
            "Predicted Metrics",
            "Correction Factors",
        ]
        variables = {v["name"] for v in dashboard["templating"]["list"]}
        assert "namespace" in variables
        assert dashboard["uid"] == "dynamo-planner-dashboard"

    def test_configmap_embeds_the_dashboard(self) -> None:
        """The ConfigMap carries exactly the dashboard JSON."""
        configmap = yaml.safe_load(CONFIGMAP.read_text())
        assert configmap["kind"] == "ConfigMap"
        assert configmap["metadata"]["name"] == "grafana-planner-dashboard"
        embedded = json.loads(configmap["data"]["planner-dashboard.json"])
        assert embedded == json.loads(DASHBOARD.read_text())


class TestManifests:
    def test_rbac_covers_the_connector(self) -> None:
        """The Role allows what the Kubernetes connector calls."""
        docs = [d for d in yaml.safe_load_all(PLANNER.read_text()) if d]
        role = next(d for d in docs if d["kind"] == "Role")
        allowed = {
            (resource, verb)
            for rule in role["rules"]
            for resource in rule["resources"]
            for verb in rule["verbs"]
        }
        assert ("dynamographdeployments", "get") in allowed
        assert ("dynamographdeployments", "patch") in allowed
        assert ("dynamographdeploymentscalingadapters/scale", "patch") in allowed

    def test_deployment_runs_the_planner(self) -> None:
        """The Deployment runs `dynamo-planner run` with the DGD name and metrics port."""
        docs = [d for d in yaml.safe_load_all(PLANNER.read_text()) if d]
        deployment = next(d for d in docs if d["kind"] == "Deployment")
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["command"] == ["dynamo-planner", "run"]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["DYN_PARENT_DGD_K8S_NAME"]
        assert (
            int(env["PLANNER_PROMETHEUS_PORT"])
            == container["ports"][0]["containerPort"]
        )
