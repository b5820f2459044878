"""Tests of the simulator's clock, metric source, connector and oracle predictor."""

from __future__ import annotations

import asyncio

import pytest

from dynamo_planner.protocols import Clock, Connector, MetricSource, Predictor
from dynamo_planner.sim.edges import (
    OraclePredictor,
    SimClock,
    SimConnector,
    SimMetricSource,
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
