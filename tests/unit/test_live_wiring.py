"""`dynamo-planner run` with load-based scaling: the planner it builds, its metrics, deferrals."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from dynamo_planner.cli._run import _sources_of, build_live_planner, build_planner
from dynamo_planner.config import PlannerConfig
from dynamo_planner.exceptions import ScalingDeferredError
from dynamo_planner.load_planner import CombinedPlanner, LoadPlanner
from dynamo_planner.metrics import PlannerMetrics
from dynamo_planner.planner import Planner, StepRecord
from dynamo_planner.scalers.load import LoadScaler
from dynamo_planner.sources.prometheus import PrometheusMetricSource
from dynamo_planner.sources.router import RouterMetricSource
from dynamo_planner.testing.fakes import InMemoryMetricSource
from dynamo_planner.values import Observation, ReplicaPlan, ReplicaState


@attrs.define
class DeferringConnector:
    """Holds back the first ``defer`` decisions, as the virtual connector does."""

    state: ReplicaState
    defer: int = 1
    applied: list[ReplicaPlan] = attrs.field(factory=list)

    async def current(self) -> ReplicaState:
        return self.state

    async def apply(self, plan: ReplicaPlan, *, blocking: bool = False) -> None:
        if self.defer > 0:
            self.defer -= 1
            raise ScalingDeferredError("previous decision pending", connector="test")
        self.applied.append(plan)
        self.state = plan.target(self.state)

    async def aclose(self) -> None:
        """Nothing to release."""


class TestLoadPlannerDeferral:
    """A decision held back by the connector is a deferral, not a connector failure."""

    async def test_deferred_counted_apart_and_retried(self) -> None:
        """The first apply is deferred and counted so; the next tick applies it."""
        connector = DeferringConnector(state=ReplicaState(prefill=1, decode=1))
        source = InMemoryMetricSource()
        source.push(Observation(interval_s=5))
        source.push(Observation(interval_s=5))
        planner = LoadPlanner(
            scaler=LoadScaler(mode="disagg"),
            source=source,
            connector=connector,
            floor=ReplicaState(prefill=2, decode=3),
        )
        records: list[StepRecord] = []
        planner.listeners.append(records.append)
        await planner.step()
        assert planner.errors == {"deferred": 1}
        assert not records[0].applied
        assert connector.applied == []
        await planner.step()
        assert records[1].applied
        assert connector.state == ReplicaState(prefill=2, decode=3)
        assert planner.errors == {"deferred": 1}


def _config(tmp_path: Path, **settings: object) -> PlannerConfig:
    from dynamo_planner.data import H200_PROFILE_DIR

    options: dict[str, object] = {
        "no_operation": True,
        "model_name": "llama",
        "profile_results_dir": str(H200_PROFILE_DIR),
        "load_predictor": "constant",
        "metric_pulling_prometheus_endpoint": "http://127.0.0.1:9",
        "loadbased_router_metrics_url": "http://127.0.0.1:9/metrics",
        "adjustment_interval_s": 10,
        "loadbased_adjustment_interval_s": 2,
        "max_gpu_budget": -1,
    }
    options.update(settings)
    return PlannerConfig.from_mapping(options)


class TestBuildLivePlanner:
    """`run` builds the planner the scaling modes ask for (building connects nothing)."""

    async def test_throughput_only(self, tmp_path: Path) -> None:
        """Throughput only: a Planner reading Prometheus."""
        planner = await build_live_planner(_config(tmp_path), environ={})
        try:
            assert isinstance(planner, Planner)
            assert isinstance(planner.source, PrometheusMetricSource)
        finally:
            for source in _sources_of(planner):
                await source.aclose()

    async def test_load_only(self, tmp_path: Path) -> None:
        """Load-based only: a LoadPlanner on the router source, ticking its own interval."""
        config = _config(
            tmp_path, enable_loadbased_scaling=True, enable_throughput_scaling=False
        )
        planner = await build_live_planner(config, environ={})
        try:
            assert isinstance(planner, LoadPlanner)
            assert isinstance(planner.source, RouterMetricSource)
            assert planner.interval_s == 2
            assert planner.advisory
        finally:
            for source in _sources_of(planner):
                await source.aclose()

    async def test_both_modes(self, tmp_path: Path) -> None:
        """Both: Prometheus for the throughput floor, the router for the load planner."""
        config = _config(tmp_path, enable_loadbased_scaling=True)
        planner = await build_live_planner(config, environ={"DYN_METRICS_PREFIX": "x"})
        try:
            assert isinstance(planner, CombinedPlanner)
            assert isinstance(planner.throughput.source, PrometheusMetricSource)
            assert isinstance(planner.load.source, RouterMetricSource)
            assert planner.load.source.metric_prefix == "x"
            assert [type(s) for s in _sources_of(planner)] == [
                RouterMetricSource,
                PrometheusMetricSource,
            ]
        finally:
            for source in _sources_of(planner):
                await source.aclose()

    async def test_build_planner_stays_throughput(self, tmp_path: Path) -> None:
        """The older builder still returns the throughput planner."""
        planner = await build_planner(_config(tmp_path), environ={})
        try:
            assert isinstance(planner, Planner)
        finally:
            assert planner.source is not None
            await planner.source.aclose()


class TestMetricsOfLoadPlanners:
    """The planner's own metrics listen to load-based and combined planners too."""

    def test_load_planner(self) -> None:
        """GPUs per engine come from the load scaler; a step publishes replicas."""
        planner = LoadPlanner(
            scaler=LoadScaler(prefill_gpus_per_engine=2, decode_gpus_per_engine=4)
        )
        metrics = PlannerMetrics()
        metrics.attach(planner)
        assert (metrics.prefill_gpus_per_engine, metrics.decode_gpus_per_engine) == (
            2,
            4,
        )
        record = StepRecord(
            observation=Observation(interval_s=3600),
            current=ReplicaState(prefill=1, decode=1),
            plan=ReplicaPlan(prefill=2, decode=None),
            applied=True,
            errors={"deferred": 2},
        )
        for listener in planner.listeners:
            listener(record)
        text = metrics.render().decode()
        assert "dynamo_planner_predicted_num_prefill_replicas 2.0" in text
        assert "dynamo_planner_gpu_hours 6.0" in text
        assert 'dynamo_planner_errors_total{kind="deferred"} 2.0' in text

    async def test_combined_planner(self, tmp_path: Path) -> None:
        """A combined planner's metrics read the throughput planner's GPUs."""
        config = _config(
            tmp_path,
            enable_loadbased_scaling=True,
            prefill_engine_num_gpu=2,
            decode_engine_num_gpu=1,
        )
        planner = await build_live_planner(config, environ={})
        try:
            assert isinstance(planner, CombinedPlanner)
            metrics = PlannerMetrics()
            metrics.attach(planner)
            assert metrics.prefill_gpus_per_engine == 2
            assert metrics.on_step in planner.listeners
        finally:
            for source in _sources_of(planner):
                await source.aclose()


@pytest.fixture(autouse=True)
def _no_planner_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the caller's PLANNER_* variables out of the configurations."""
    import os

    for name in list(os.environ):
        if name.startswith(("PLANNER_", "DYN_")):
            monkeypatch.delenv(name)
