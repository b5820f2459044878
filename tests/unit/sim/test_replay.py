"""Tests of replays with the planner in the loop."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dynamo_planner.config import PlannerConfig
from dynamo_planner.exceptions import ConfigError
from dynamo_planner.sim.engine import SimConfig
from dynamo_planner.sim.engine_model import EngineModel
from dynamo_planner.sim.replay import (
    ReplayOptions,
    replay,
    run_planner,
    scaling_actions,
)
from dynamo_planner.traces import RequestTrace
from dynamo_planner.values import PerfProfile, ReplicaState


def ramp_trace(seed: int = 0) -> RequestTrace:
    """Load ramping from 2 to 40 requests/s and back over 20 minutes."""
    rng = np.random.default_rng(seed)
    times: list[float] = []
    for minute in range(20):
        rate = 2 + 38 * (1 - abs(minute - 10) / 10)
        n = rng.poisson(rate * 60)
        times.extend(minute * 60 + np.sort(rng.uniform(0, 60, n)))
    arrival = np.asarray(times)
    return RequestTrace(
        arrival_s=arrival,
        isl_tokens=rng.integers(200, 4000, arrival.size).astype(float),
        osl_tokens=rng.integers(20, 400, arrival.size).astype(float),
        source="ramp",
    )


class TestRunPlanner:
    """One planner run."""

    def test_scales_with_load_and_completes_everything(
        self, model: EngineModel, make_planner: Callable[..., Any]
    ) -> None:
        """The planner scales up for the peak and down after; no request is lost."""
        planner = make_planner(adjustment_interval_s=60.0, ttft_ms=500.0, itl_ms=20.0)
        trace = ramp_trace()
        run = run_planner(
            trace,
            model,
            planner,
            sim_config=SimConfig(cold_start_s=30.0),
            ttft_ms=500,
            itl_ms=20,
        )
        assert run.summary.completed == len(trace)
        assert run.summary.scaling_actions >= 2
        prefill = [r.prefill_workers for r in run.intervals]
        assert max(prefill) > prefill[0]
        assert prefill[-1] < max(prefill)
        assert run.plans
        # the decision at t = 60 s observed the first interval and planned interval 1
        t0, plan0 = run.plans[0]
        assert t0 == pytest.approx(60.0)
        assert plan0.demand is not None
        assert run.intervals[1].forecast_num_req == plan0.demand.num_req.value
        # GPU-hours are the workers' lives
        spans = sum(w.gpu_seconds for w in run.result.workers) / 3600
        assert run.summary.gpu_hours == pytest.approx(spans)

    def test_planner_runs_unchanged(
        self, model: EngineModel, make_planner: Callable[..., Any]
    ) -> None:
        """The same planner object is driven through its own run loop."""
        planner = make_planner(adjustment_interval_s=120.0)
        run = run_planner(
            ramp_trace(1),
            model,
            planner,
            sim_config=SimConfig(),
            ttft_ms=500,
            itl_ms=50,
        )
        assert planner.last_plan is run.plans[-1][1]
        assert len(planner.source.fetched) == len(run.plans)


class TestScalingActions:
    """A scaling action is a change of the requested replicas."""

    def test_first_plan_keeping_the_deployment_is_not_an_action(
        self, model: EngineModel, make_planner: Callable[..., Any]
    ) -> None:
        """A planner that keeps the initial 1P+1D on a light trace made no action."""
        trace = RequestTrace(
            arrival_s=np.arange(0.0, 600.0, 10.0),
            isl_tokens=np.full(60, 500.0),
            osl_tokens=np.full(60, 50.0),
            source="light",
        )
        planner = make_planner(adjustment_interval_s=60.0)
        run = run_planner(
            trace, model, planner, sim_config=SimConfig(), ttft_ms=500, itl_ms=50
        )
        assert run.plans
        assert all(
            plan.target(ReplicaState(prefill=1, decode=1))
            == ReplicaState(prefill=1, decode=1)
            for _, plan in run.plans
        )
        assert run.summary.scaling_actions == 0

    def test_counts_changes_only(self) -> None:
        """Repeated targets and a return to the initial deployment count correctly."""
        one = ReplicaState(prefill=1, decode=1)
        two = ReplicaState(prefill=2, decode=1)
        assert scaling_actions(one, []) == 0
        assert scaling_actions(one, [one, one]) == 0
        assert scaling_actions(one, [two, two, one, one, two]) == 3


@pytest.fixture(name="report", scope="module")
def _report(profile: PerfProfile, planner_registry: Any) -> Any:
    config = PlannerConfig(
        load_predictor="last_value",
        adjustment_interval_s=60.0,
        itl_ms=20.0,
        max_gpu_budget=-1,
    )
    return replay(
        ramp_trace(2),
        profile,
        config,
        options=ReplayOptions(sim=SimConfig(cold_start_s=30.0), warmup_s=60.0),
        registry=planner_registry,
    )


class TestReplay:
    """The full replay with baselines."""

    def test_has_every_baseline(self, report: Any) -> None:
        """Planner, perfect forecast, best static and floor are all there."""
        assert report.planner is not None
        assert report.perfect_forecast is not None
        assert report.best_static is not None
        assert report.capacity_floor is not None
        assert report.capacity_floor.gpu_hours < report.best_static.summary.gpu_hours
        assert report.ttft_ms == 500.0
        assert report.itl_ms == 20.0

    def test_perfect_forecast_sees_the_next_interval(self, report: Any) -> None:
        """Every perfect-forecast decision was sized for the actual next-interval load."""
        run = report.perfect_forecast
        counts = {k: r.num_req for k, r in enumerate(run.intervals)}
        checked = 0
        for t, plan in run.plans:
            k = round(t / report.interval_s)
            if plan.demand is not None and k in counts:
                assert plan.demand.num_req.value == counts[k]
                checked += 1
        assert checked >= 10

    def test_json_and_text(self, report: Any) -> None:
        """The dict has attainment and GPU-hours for the run and each baseline."""
        d = report.to_dict()
        json.dumps(d, allow_nan=False)
        assert 0 <= d["attainment"] <= 1
        assert d["gpu_hours"] > 0
        for name in ("best_static", "perfect_forecast", "capacity_floor"):
            assert set(d["baselines"][name]) >= {"attainment", "gpu_hours"}
        text = report.format_text()
        for word in ("planner", "perfect forecast", "best static", "capacity floor"):
            assert word in text

    def test_csv(self, report: Any, tmp_path: Path) -> None:
        """One CSV row per interval, with the documented columns."""
        path = report.write_intervals_csv(tmp_path / "i.csv")
        with path.open() as stream:
            rows = list(csv.DictReader(stream))
        assert len(rows) == len(report.planner.intervals)
        assert float(rows[5]["num_req"]) == report.planner.intervals[5].num_req
        assert not math.isnan(float(rows[5]["ttft_p99_ms"]))

    def test_plot(self, report: Any, tmp_path: Path) -> None:
        """The plot is a PNG file."""
        from dynamo_planner.sim.plot import plot_replay

        path = plot_replay(report, tmp_path / "r.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


class TestOptions:
    """Replay options."""

    def test_factory_needs_targets(self, profile: PerfProfile) -> None:
        """Without a configuration the targets must be given."""
        with pytest.raises(ConfigError, match="ttft_ms"):
            replay(
                ramp_trace(),
                profile,
                lambda: None,  # type: ignore[arg-type, return-value]
                options=ReplayOptions(interval_s=60),
            )

    def test_unknown_baseline(self) -> None:
        """An unknown baseline name is a configuration error."""
        with pytest.raises(ConfigError, match="baseline"):
            ReplayOptions(baselines=("oracle",))

    def test_baselines_only(self, profile: PerfProfile) -> None:
        """With no planner only the baselines are computed."""
        report = replay(
            ramp_trace(),
            profile,
            None,
            options=ReplayOptions(
                interval_s=60, ttft_ms=500, itl_ms=50, baselines=("capacity_floor",)
            ),
        )
        assert report.planner is None
        assert report.capacity_floor is not None
        assert report.to_dict()["attainment"] is None
