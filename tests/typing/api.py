"""Usage of the public API that must pass ``mypy --strict`` (checked, not executed)."""

from __future__ import annotations

from dynamo_planner import Observation, ReplicaPlan, ReplicaState
from dynamo_planner.config import PlannerConfig
from dynamo_planner.exceptions import MetricSourceError
from dynamo_planner.planner import Planner, StepRecord
from dynamo_planner.predictors.auto import AutoPredictor
from dynamo_planner.protocols import Connector, MetricSource, Predictor, Scaler
from dynamo_planner.testing.fakes import (
    InMemoryMetricSource,
    ManualClock,
    RecordingConnector,
    ScriptedPredictor,
)


def planner_from_config(config: PlannerConfig) -> Planner:
    return Planner.from_config(config, clock=ManualClock())


def plan_once(planner: Planner) -> tuple[int | None, int | None]:
    plan: ReplicaPlan = planner.plan(
        Observation(
            interval_s=60.0, num_req=100.0, isl_tokens=3000.0, osl_tokens=150.0
        ),
        ReplicaState(prefill=1, decode=1),
    )
    return plan.prefill, plan.decode


def fakes_satisfy_protocols() -> tuple[MetricSource, Connector, Predictor]:
    return InMemoryMetricSource(), RecordingConnector(), ScriptedPredictor()


def listener(record: StepRecord) -> None:
    print(record.plan.reasons)


def custom_planner(scaler: Scaler) -> Planner:
    return Planner(
        predictors={name: ScriptedPredictor() for name in ("num_req", "isl", "osl")},
        scaler=scaler,
        listeners=[listener],
    )


def scripted_source() -> InMemoryMetricSource:
    return InMemoryMetricSource(
        [Observation(interval_s=60.0), MetricSourceError("down", source="prometheus")]
    )


def auto_predictor() -> AutoPredictor:
    return AutoPredictor(smoothing_rates=[0.5, 0.3])
