"""Tests of the baselines: capacity floor, best static deployment, perfect forecast."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dynamo_planner.sim.baselines import (
    best_static,
    capacity_floor,
    oracle_predictors,
    run_static,
)
from dynamo_planner.sim.edges import SimClock
from dynamo_planner.sim.engine import SimConfig, Simulation
from dynamo_planner.sim.engine_model import EngineModel
from dynamo_planner.sim.workload import load_scale
from dynamo_planner.traces import RequestTrace


def poisson(
    rate: float, duration: float, *, isl: float, osl: float, seed: int = 0
) -> RequestTrace:
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1 / rate, size=int(rate * duration * 2) + 10))
    arrival = arrival[arrival < duration]
    return RequestTrace(
        arrival_s=arrival,
        isl_tokens=np.full(arrival.size, isl),
        osl_tokens=np.full(arrival.size, osl),
        source="poisson",
    )


class TestCapacityFloor:
    """The capacity floor."""

    def test_by_hand(self, model: EngineModel) -> None:
        """Prefill: ISL over the best prefill throughput within TTFT; decode likewise."""
        trace = poisson(2, 100, isl=1000, osl=101)
        floor = capacity_floor(trace, model, ttft_ms=500, itl_ms=20)
        x = np.linspace(1, 16372, 200001)
        t = model.prefill_ms_array(x)
        cp = float(np.max((x / t)[t <= 500])) * 1000
        assert floor.prefill_tokens_per_s_per_gpu == pytest.approx(cp, rel=1e-3)
        assert floor.prefill_gpu_hours == pytest.approx(
            1000 * len(trace) / cp / 3600, rel=1e-3
        )
        n = np.arange(1, 2000, dtype=float)
        step = model.decode_step_ms_array(n, 1050.5)
        ok = (step <= 20) & (n * 1050.5 <= model.max_kv_tokens)
        cd = float(np.max((n / step)[ok])) * 1000
        assert floor.decode_gpu_hours == pytest.approx(
            100 * len(trace) / cd / 3600, rel=1e-6
        )
        assert floor.feasible

    def test_scales_with_load(self, model: EngineModel) -> None:
        """k superposed copies need k times the floor."""
        trace = poisson(1, 200, isl=3000, osl=300)
        one = capacity_floor(trace, model, ttft_ms=500, itl_ms=30)
        three = capacity_floor(load_scale(trace, 3), model, ttft_ms=500, itl_ms=30)
        assert three.gpu_hours == pytest.approx(3 * one.gpu_hours)

    def test_gpus_per_engine_do_not_change_the_floor_per_gpu(
        self, model: EngineModel
    ) -> None:
        """Capacity is per GPU: two GPUs per engine double the GPU-hours of the same model."""
        trace = poisson(1, 100, isl=1000, osl=100)
        one = capacity_floor(trace, model, ttft_ms=500, itl_ms=30)
        two = capacity_floor(
            trace,
            model,
            ttft_ms=500,
            itl_ms=30,
            prefill_gpus_per_engine=2,
            decode_gpus_per_engine=2,
        )
        assert two.gpu_hours == pytest.approx(2 * one.gpu_hours)

    def test_infeasible_targets_are_flagged(self, model: EngineModel) -> None:
        """An ITL target below the single-request ITL is flagged infeasible."""
        trace = poisson(1, 50, isl=1000, osl=100)
        assert not capacity_floor(trace, model, ttft_ms=500, itl_ms=1).feasible
        assert not capacity_floor(trace, model, ttft_ms=5, itl_ms=50).feasible


class TestWholeWorkerFloor:
    """The whole-worker floor: ceil(work / interval) workers per interval."""

    def test_by_hand(self, model: EngineModel) -> None:
        """Each interval's work rounds up to whole workers; the sum is the floor."""
        trace = poisson(2, 600, isl=1000, osl=101)
        floor = capacity_floor(trace, model, ttft_ms=500, itl_ms=20, interval_s=60.0)
        per_request_s = (
            floor.prefill_gpu_hours * 3600 / len(trace),
            floor.decode_gpu_hours * 3600 / len(trace),
        )
        arrival = np.asarray(trace.arrival_s)
        index = np.floor(arrival / 60.0).astype(int)
        counts = np.bincount(index)
        lengths = np.full(counts.size, 60.0)
        lengths[-1] = arrival.max() - 60.0 * (counts.size - 1)
        expected = sum(
            float(np.sum(np.ceil(counts * each / lengths) * lengths))
            for each in per_request_s
        )
        assert floor.whole_worker_gpu_hours == pytest.approx(expected / 3600)
        assert floor.interval_s == 60.0

    def test_at_least_the_fluid_floor(self, model: EngineModel) -> None:
        """Whole workers never cost less than fractional ones; shorter intervals, less."""
        trace = poisson(5, 900, isl=3000, osl=200, seed=3)
        floors = [
            capacity_floor(trace, model, ttft_ms=500, itl_ms=20, interval_s=w)
            for w in (30.0, 900.0)
        ]
        for floor in floors:
            assert floor.whole_worker_gpu_hours >= floor.gpu_hours
        # a light load needs one worker of each kind per interval: about 2 x the span
        assert floors[0].whole_worker_gpu_hours == pytest.approx(
            2 * trace.duration_s / 3600, rel=0.05
        )

    def test_not_computed_without_an_interval(self, model: EngineModel) -> None:
        """No interval, no whole-worker floor; a bad interval is refused."""
        trace = poisson(1, 100, isl=1000, osl=100)
        assert np.isnan(
            capacity_floor(trace, model, ttft_ms=500, itl_ms=30).whole_worker_gpu_hours
        )
        with pytest.raises(ValueError, match="interval_s"):
            capacity_floor(trace, model, ttft_ms=500, itl_ms=30, interval_s=0.0)


class TestBestStatic:
    """The best static deployment search."""

    def test_minimal_and_feasible(self, model: EngineModel) -> None:
        """The result meets the target and one worker fewer of either kind does not."""
        trace = poisson(40, 120, isl=3000, osl=150, seed=1)
        kwargs: dict[str, Any] = {
            "ttft_ms": 300.0,
            "itl_ms": 12.0,
            "attainment_target": 0.95,
        }
        search = best_static(trace, model, SimConfig(), **kwargs)
        assert search.feasible
        p, d = search.prefill, search.decode
        assert search.summary.attainment >= 0.95

        def attainment(p: int, d: int) -> float:
            return run_static(
                trace, model, SimConfig(), prefill=p, decode=d, ttft_ms=300, itl_ms=12
            ).attainment

        if p > 1:
            assert attainment(p - 1, d) < 0.95
        if d > 1:
            assert attainment(p, d - 1) < 0.95
        assert (
            p,
            d,
            search.summary.attainment,
            search.summary.gpu_hours,
        ) in search.evaluated

    def test_static_gpu_hours_cover_the_run(self, model: EngineModel) -> None:
        """A static run holds its GPUs from 0 to the last completion."""
        trace = poisson(2, 60, isl=500, osl=50)
        s = run_static(
            trace,
            model,
            SimConfig(prefill_gpus_per_engine=2),
            prefill=2,
            decode=1,
            ttft_ms=500,
            itl_ms=50,
        )
        assert s.gpu_hours == pytest.approx((2 * 2 + 1) * s.end_s / 3600)

    def test_floor_below_static(self, model: EngineModel) -> None:
        """The capacity floor never exceeds the best static deployment's GPU-hours."""
        trace = poisson(20, 120, isl=2000, osl=200, seed=2)
        search = best_static(trace, model, SimConfig(), ttft_ms=500, itl_ms=20)
        floor = capacity_floor(trace, model, ttft_ms=500, itl_ms=20)
        assert floor.gpu_hours <= search.summary.gpu_hours


class TestOracle:
    """Perfect-forecast predictors."""

    def test_values_per_interval(self, model: EngineModel) -> None:
        """Counts and means per interval from time 0; empty intervals hold the means."""
        trace = RequestTrace(
            arrival_s=[5.0, 10.0, 130.0],
            isl_tokens=[100.0, 300.0, 50.0],
            osl_tokens=[10.0, 30.0, 5.0],
            source="t",
        )
        sim = Simulation(trace, model)
        clock = SimClock(sim)
        oracle = oracle_predictors(trace, interval_s=60, clock=clock)
        assert oracle["num_req"].values == [2.0, 0.0, 1.0]
        assert oracle["isl"].values == [200.0, 200.0, 50.0]
        assert oracle["osl"].values == [20.0, 20.0, 5.0]
        sim.run_until(500.0)
        assert oracle["num_req"].predict().value == 0.0


class TestBestStaticOutOfReach:
    """When some requests miss a target even alone."""

    def test_sizes_for_the_reachable_attainment(self, model: EngineModel) -> None:
        """A fifth of prompts too long for the TTFT target caps attainment near 80%."""
        trace = poisson(10, 120, isl=1000, osl=50, seed=3)
        isl = np.asarray(trace.isl_tokens).copy()
        isl[::5] = 40000  # prefill alone takes about 1 s
        trace = RequestTrace(
            arrival_s=trace.arrival_s, isl_tokens=isl, osl_tokens=trace.osl_tokens
        )
        search = best_static(trace, model, SimConfig(), ttft_ms=500, itl_ms=50)
        assert not search.feasible
        assert 0.7 < search.target < 0.81
        assert search.summary.attainment >= search.target
