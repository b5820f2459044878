"""Tests of the simulator's clock, metric source, connector and oracle predictor."""

from __future__ import annotations

import asyncio
import math

import pytest

from dynamo_planner.protocols import Clock, Connector, MetricSource, Predictor
from dynamo_planner.sim.edges import (
    OraclePredictor,
    SimClock,
    SimConnector,
    SimMetricSource,
    SimRouterSource,
)
from dynamo_planner.sim.engine import SimConfig, Simulation
from dynamo_planner.sim.engine_model import EngineModel
from dynamo_planner.traces import RequestTrace
from dynamo_planner.values import ReplicaPlan, ReplicaState


def trace_of(arrival: list[float], isl: list[float], osl: list[float]) -> RequestTrace:
    return RequestTrace(arrival_s=arrival, isl_tokens=isl, osl_tokens=osl, source="t")


class TestProtocols:
    """The edges satisfy the planner's contracts."""

    def test_isinstance(self, model: EngineModel) -> None:
        """Clock, source, connector and oracle pass the runtime Protocol checks."""
        sim = Simulation(trace_of([1.0], [100], [10]), model)
        clock = SimClock(sim)
        assert isinstance(clock, Clock)
        assert isinstance(SimMetricSource(sim), MetricSource)
        assert isinstance(SimConnector(sim), Connector)
        assert isinstance(
            OraclePredictor.of([1.0], interval_s=1, clock=clock), Predictor
        )


class TestSimClock:
    """Sleeping advances simulated time."""

    async def test_sleep_runs_the_simulation(self, model: EngineModel) -> None:
        """After sleeping past an arrival and its service, the request is done."""
        sim = Simulation(trace_of([1.0], [100], [10]), model)
        stop = asyncio.Event()
        seen: list[float] = []
        clock = SimClock(
            sim, stop_when=lambda s: s.done, stop=stop, on_advance=seen.append
        )
        await clock.sleep(0.5)
        assert clock.now() == 0.5
        assert not stop.is_set()
        await clock.sleep(10.0)
        assert sim.done
        assert stop.is_set()
        assert seen == [0.5, 10.5]


class TestSimConnector:
    """Scaling through the connector."""

    async def test_current_counts_ready_workers(self, model: EngineModel) -> None:
        """Workers still starting are not reported until they are ready."""
        sim = Simulation(
            trace_of([100.0], [100], [10]), model, SimConfig(cold_start_s=30)
        )
        connector = SimConnector(sim)
        await connector.apply(ReplicaPlan(prefill=3, decode=None))
        assert await connector.current() == ReplicaState(prefill=1, decode=1)
        assert connector.requested() == ReplicaState(prefill=3, decode=1)
        sim.run_until(30.0)
        assert await connector.current() == ReplicaState(prefill=3, decode=1)

    async def test_blocking_apply_waits_for_cold_start(
        self, model: EngineModel
    ) -> None:
        """A blocking apply returns once the new workers are ready."""
        sim = Simulation(
            trace_of([100.0], [100], [10]), model, SimConfig(cold_start_s=30)
        )
        connector = SimConnector(sim)
        await connector.apply(ReplicaPlan(prefill=2, decode=2), blocking=True)
        assert sim.now == 30.0
        assert await connector.current() == ReplicaState(prefill=2, decode=2)


class TestOraclePredictor:
    """The perfect forecast."""

    async def test_predicts_the_interval_starting_now(self, model: EngineModel) -> None:
        """At time t it gives the value of the interval containing t; NaN holds."""
        sim = Simulation(trace_of([1000.0], [100], [10]), model)
        clock = SimClock(sim)
        oracle = OraclePredictor.of(
            [5.0, float("nan"), 7.0], interval_s=60, clock=clock
        )
        assert oracle.predict().value == 5.0
        await clock.sleep(60)
        assert oracle.predict().value == 5.0  # NaN holds the last known value
        await clock.sleep(60)
        oracle.observe(123.0)  # ignored
        assert oracle.predict().value == 7.0
        await clock.sleep(600)
        assert oracle.predict().value == 7.0

    def test_beyond_the_trace(self, model: EngineModel) -> None:
        """After the last interval it gives the ``beyond`` value."""
        sim = Simulation(trace_of([1.0], [100], [10]), model)
        sim.run_until(500.0)
        oracle = OraclePredictor.of(
            [3.0], interval_s=60, clock=SimClock(sim), beyond=0.0
        )
        assert oracle.predict().value == pytest.approx(0.0)


class TestSimRouterSource:
    """The router's sampling buffer over a simulation."""

    def test_is_a_worker_views_source(self, model: EngineModel) -> None:
        """The load planner reads its views (the plain source has none)."""
        from dynamo_planner.load_planner import WorkerViewsSource

        sim = Simulation(trace_of([1.0], [100], [10]), model)
        assert isinstance(SimRouterSource(sim), WorkerViewsSource)
        assert isinstance(SimRouterSource(sim), MetricSource)
        assert not isinstance(SimMetricSource(sim), WorkerViewsSource)

    def test_buffer_spans_the_interval(self, model: EngineModel) -> None:
        """Ten scrapes over 5 s: recent is the last, per-worker the average."""
        sim = Simulation(
            trace_of([7.6], [100], [50000]), model, SimConfig(load_scrape_s=0.5)
        )
        source = SimRouterSource(sim, interval_s=5.0)
        assert source.num_samples == 10
        sim.run_until(2.0)
        assert len(source.scrapes()) == 5  # 0.0 .. 2.0: no scrape before time 0
        sim.run_until(10.0)
        assert len(source.scrapes()) == 10  # 5.5 .. 10.0
        view = source.views("decode")
        blocks = math.ceil(50100 / 16)
        (recent,) = view.recent
        assert recent.active_decode_blocks == blocks
        # decoding from 7.6 s on (after its prefill): scrapes at 8.0 .. 10.0 see it
        (worker,) = view.per_worker
        assert worker.active_decode_blocks == pytest.approx(blocks * 5 / 10)
        assert view.cluster.active_decode_blocks == pytest.approx(blocks * 5 / 10)

    def test_metric_delay(self, model: EngineModel) -> None:
        """With a metric delay every scrape of the buffer is that much older."""
        sim = Simulation(
            trace_of([7.6], [100], [50000]),
            model,
            SimConfig(load_scrape_s=0.5, metric_delay_s=3.0),
        )
        source = SimRouterSource(sim, interval_s=5.0)
        sim.run_until(10.0)
        view = source.views("decode")
        (recent,) = view.recent  # the scrape at 7.0
        assert recent.active_decode_blocks == 0
        sim.run_until(13.0)
        (recent,) = source.views("decode").recent  # the scrape at 10.0
        assert recent.active_decode_blocks == math.ceil(50100 / 16)
