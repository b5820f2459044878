"""Load-based scaling live: the simulator's per-worker gauges over HTTP, through the router
source, into the load planner, whose plans scale the simulation."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import numpy as np
import pytest

from dynamo_planner.data import H200_PROFILE_DIR
from dynamo_planner.load_planner import LoadPlanner
from dynamo_planner.planner import StepRecord
from dynamo_planner.profiles import load_profile
from dynamo_planner.scalers.load import LoadScaler
from dynamo_planner.scalers.load_regression import LoadRegression
from dynamo_planner.sim.edges import SimConnector
from dynamo_planner.sim.engine import SimConfig, Simulation
from dynamo_planner.sim.engine_model import EngineModel
from dynamo_planner.sources.exporter import FrontendMetricsExporter
from dynamo_planner.sources.router import RouterMetricSource
from dynamo_planner.traces import RequestTrace

pytestmark = pytest.mark.integration

SPEED = 10.0
"""Simulated seconds per real second."""
TICK_S = 0.05
"""Real seconds between simulation advances (and gauge updates)."""


@pytest.fixture(name="exporter")
def _exporter() -> Iterator[FrontendMetricsExporter]:
    exporter = FrontendMetricsExporter(model_name="llama", namespace="dynamo")
    exporter.serve()
    yield exporter
    exporter.close()


def _burst() -> RequestTrace:
    """60 k prompt tokens/s for five minutes: more than one prefill worker serves."""
    n = 6000
    return RequestTrace(
        arrival_s=np.arange(n) * 0.05,
        isl_tokens=np.full(n, 3000.0),
        osl_tokens=np.full(n, 50.0),
        source="burst",
    )


async def _drive(sim: Simulation, exporter: FrontendMetricsExporter) -> None:
    """Advance the simulation with real time and publish its workers' gauges."""
    while True:
        sim.run_until(sim.now + TICK_S * SPEED)
        exporter.set_workers(list(sim.worker_loads()))
        await asyncio.sleep(TICK_S)


class TestLoadBasedLive:
    """The live loop with load-based scaling on, end to end over HTTP."""

    async def test_burst_scales_prefill_up(
        self, exporter: FrontendMetricsExporter
    ) -> None:
        """A prefill backlog seen through the router's gauges adds a prefill worker."""
        model = EngineModel.from_profile(load_profile(H200_PROFILE_DIR))
        sim = Simulation(_burst(), model, SimConfig(cold_start_s=2.0))
        connector = SimConnector(sim)
        source = RouterMetricSource(
            url=f"http://127.0.0.1:{exporter.port}/metrics",
            interval_s=0.5,
            num_samples=5,
            model_name="llama",
            namespace="dynamo",
        )
        planner = LoadPlanner(
            scaler=LoadScaler(mode="disagg", ttft_ms=300.0, itl_ms=50.0),
            prefill_regression=LoadRegression(min_observations=3),
            decode_regression=LoadRegression(min_observations=3),
            interval_s=0.5,
            source=source,
            connector=connector,
        )
        stop = asyncio.Event()
        records: list[StepRecord] = []

        def watch(record: StepRecord) -> None:
            records.append(record)
            if connector.requested().prefill >= 2:
                stop.set()

        planner.listeners.append(watch)
        exporter.set_workers(list(sim.worker_loads()))
        driver = asyncio.create_task(_drive(sim, exporter))
        try:
            await asyncio.wait_for(planner.run(stop), timeout=60)
        finally:
            driver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await driver
            await source.aclose()
        assert connector.requested().prefill >= 2
        scaled = next(r.plan for r in records if r.plan.prefill is not None)
        assert scaled.details["prefill_rule"] == "scale_up"
        assert scaled.details["prefill_regression_observations"] >= 3
        assert scaled.details["prefill_slope"] > 0
        assert set(scaled.details["prefill_loads"]) == {"prefill-0"}
        assert source.scrape_errors_total == 0
        assert planner.errors == {}
