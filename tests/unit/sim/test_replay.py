"""Tests of replays with the planner in the loop."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
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

    def test_sla_planner_on_a_frontends_histograms(
        self, model: EngineModel, make_planner: Callable[..., Any]
    ) -> None:
        """Reading only what a Dynamo frontend reports (bucket counts, no samples), the
        sla scaler draws its mix from the length histograms, counts its misses from the
        latency buckets, and still scales for the ramp."""
        planner = make_planner(
            scaler="sla", adjustment_interval_s=60.0, ttft_ms=500.0, itl_ms=20.0
        )
        trace = ramp_trace()
        run = run_planner(
            trace,
            model,
            planner,
            sim_config=SimConfig(cold_start_s=30.0, frontend_metrics="histograms"),
            ttft_ms=500,
            itl_ms=20,
        )
        assert run.summary.completed == len(trace)
        fetched = planner.source.fetched
        assert all(not o.isl_samples_tokens and not o.ttft_samples_ms for o in fetched)
        busy = [o for o in fetched if o.num_req.value > 0]
        assert all(o.isl_histogram_tokens and o.ttft_histogram_ms for o in busy)
        reasons = [r for _, plan in run.plans for r in plan.reasons]
        assert any("ISL and OSL histograms" in r for r in reasons)
        assert any(r.startswith("prefill feedback (TTFT misses)") for r in reasons)
        prefill = [r.prefill_workers for r in run.intervals]
        assert max(prefill) > prefill[0]


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

    def test_plans_jsonl(self, report: Any, tmp_path: Path) -> None:
        """One JSON object per decision, in order, with its time, replicas and reasons;
        numpy values become plain numbers and lists, non-finite numbers null."""
        from dynamo_planner.values import ReplicaPlan

        path = report.write_plans_jsonl(tmp_path / "p.jsonl")
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(lines) == len(report.planner.plans)
        for line, (time_s, plan) in zip(lines, report.planner.plans, strict=True):
            assert line["time_s"] == time_s
            assert line["prefill_replicas"] == plan.prefill
            assert line["reasons"] == list(plan.reasons)
        odd = ReplicaPlan(
            prefill=1,
            decode=2,
            details={"a": np.float64("nan"), "b": np.arange(3), "c": (np.int64(4),)},
        )
        odd_report = attrs.evolve(
            report, planner=attrs.evolve(report.planner, plans=((60.0, odd),))
        )
        line = json.loads(
            odd_report.write_plans_jsonl(tmp_path / "o.jsonl").read_text()
        )
        assert line["details"] == {"a": None, "b": [0, 1, 2], "c": [4]}

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

    def test_clamps_are_said(self, profile: PerfProfile) -> None:
        """A replay with either clamp says so in its text; the defaults say nothing."""
        texts = {}
        for beyond in ("linear", "clamp"):
            texts[beyond] = replay(
                ramp_trace(),
                profile,
                None,
                options=ReplayOptions(
                    interval_s=60,
                    ttft_ms=500,
                    itl_ms=50,
                    baselines=("capacity_floor",),
                    prefill_beyond=beyond,
                    decode_beyond=beyond,
                ),
            ).format_text()
        assert "clamped" not in texts["linear"]
        assert "prefill time clamped beyond the profile" in texts["clamp"]
        assert "decode step time clamped beyond the profile" in texts["clamp"]
        with pytest.raises(ValueError, match="decode_beyond"):
            ReplayOptions(decode_beyond="flat")

    def test_frontend_metrics_are_said(self, profile: PerfProfile) -> None:
        """A replay on histograms only says so in its text and its JSON."""
        report = replay(
            ramp_trace(),
            profile,
            None,
            options=ReplayOptions(
                sim=SimConfig(frontend_metrics="histograms"),
                interval_s=60,
                ttft_ms=500,
                itl_ms=50,
                baselines=("capacity_floor",),
            ),
        )
        assert "bucket counts only" in report.format_text()
        assert "scraped every" not in report.format_text()
        assert report.to_dict()["frontend_metrics"] == "histograms"
        assert report.to_dict()["frontend_scrape_s"] is None
        scraped = replay(
            ramp_trace(),
            profile,
            None,
            options=ReplayOptions(
                sim=SimConfig(frontend_metrics="histograms", frontend_scrape_s=2.0),
                interval_s=60,
                ttft_ms=500,
                itl_ms=50,
                baselines=(),
            ),
        )
        assert "request counter scraped every 2 s" in scraped.format_text()
        coarse = attrs.evolve(
            scraped,
            options=attrs.evolve(
                scraped.options,
                sim=SimConfig(frontend_metrics="histograms", frontend_scrape_s=5.0),
            ),
        )
        assert "scraped every 5 s, is too coarse" in coarse.format_text()
        assert scraped.to_dict()["frontend_scrape_s"] == 2.0
        with pytest.raises(ValueError, match="frontend_scrape_s"):
            SimConfig(frontend_metrics="histograms", frontend_scrape_s=0.0)
        with pytest.raises(
            ValueError, match="applies to frontend_metrics='histograms'"
        ):
            SimConfig(frontend_scrape_s=5.0)
        with pytest.raises(ValueError, match="frontend_metrics"):
            SimConfig(frontend_metrics="logs")


def _loadbased(**settings: object) -> PlannerConfig:
    values: dict[str, object] = {
        "load_predictor": "last_value",
        "adjustment_interval_s": 60.0,
        "itl_ms": 20.0,
        "max_gpu_budget": -1,
        "enable_loadbased_scaling": True,
        "enable_throughput_scaling": False,
        **settings,
    }
    return PlannerConfig.from_mapping(values)


@pytest.fixture(name="load_report", scope="module")
def _load_report(profile: PerfProfile, planner_registry: Any) -> Any:
    return replay(
        ramp_trace(3),
        profile,
        _loadbased(),
        options=ReplayOptions(
            sim=SimConfig(cold_start_s=10.0), baselines=("perfect_forecast",)
        ),
        registry=planner_registry,
    )


class TestLoadBasedReplay:
    """A load-based configuration is replayed by the load-based planner."""

    def test_runs_the_load_planner_at_its_cadence(self, load_report: Any) -> None:
        """Plans come every load interval (5 s) and carry the load rules' details."""
        plans = load_report.planner.plans
        times = [t for t, _ in plans]
        assert times[:3] == pytest.approx([5.0, 10.0, 15.0])
        assert all(plan.details["mode"] == "disagg" for _, plan in plans)
        assert {"prefill_rule", "decode_rule"} <= set(plans[-1][1].details)
        assert load_report.interval_s == 5.0
        assert load_report.scaling == "load-based (every 5 s)"
        assert "planner: load-based (every 5 s)" in load_report.format_text()

    def test_scales_on_the_ramp(self, load_report: Any) -> None:
        """The load rules scale up for the peak; no request is lost."""
        run = load_report.planner
        assert run.summary.completed == run.summary.requests
        assert run.summary.scaling_actions >= 2
        assert any(plan.details["prefill_rule"] == "scale_up" for _, plan in run.plans)
        assert max(r.prefill_workers for r in run.intervals) > 1

    def test_perfect_forecast_is_the_throughput_planner(self, load_report: Any) -> None:
        """The perfect-forecast run is the throughput planner, said in a note."""
        perfect = load_report.perfect_forecast
        assert perfect.summary.name == "perfect forecast (throughput)"
        assert perfect.plans[0][0] == pytest.approx(60.0)
        assert perfect.plans[0][1].demand is not None
        assert any("forecasts nothing" in note for note in load_report.notes)

    def test_never_the_throughput_planner(
        self,
        profile: PerfProfile,
        planner_registry: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Were the throughput planner built for a load-based config, replay refuses."""
        from dynamo_planner import load_planner
        from dynamo_planner.planner import Planner

        def wrong(config: PlannerConfig, **kwargs: Any) -> Planner:
            import attrs

            throughput = attrs.evolve(
                config, enable_loadbased_scaling=False, enable_throughput_scaling=True
            )
            return Planner.from_config(throughput, **kwargs)

        monkeypatch.setattr(load_planner, "planner_from_config", wrong)
        with pytest.raises(ConfigError, match="asks for a LoadPlanner"):
            replay(
                ramp_trace(),
                profile,
                _loadbased(),
                options=ReplayOptions(baselines=()),
                registry=planner_registry,
            )


class TestBothModesReplay:
    """Both modes: the load planner scales over the throughput floor."""

    def test_floor_every_load_tick(
        self, profile: PerfProfile, planner_registry: Any
    ) -> None:
        """Load ticks every 5 s; from the first throughput plan on, a floor holds."""
        report = replay(
            ramp_trace(4),
            profile,
            _loadbased(enable_throughput_scaling=True),
            options=ReplayOptions(
                sim=SimConfig(cold_start_s=10.0), baselines=("perfect_forecast",)
            ),
            registry=planner_registry,
        )
        assert report.scaling.startswith("load-based (every 5 s) over a throughput")
        run = report.planner
        assert run is not None
        assert report.perfect_forecast is not None
        plans = run.plans
        assert plans[0][0] == pytest.approx(5.0)
        assert "decode_floor" not in plans[0][1].details
        assert all("decode_floor" in p.details for t, p in plans if t > 60.5)
        assert report.perfect_forecast.summary.name == "perfect forecast"
        assert run.summary.completed == run.summary.requests

    def test_oracle_forecasts_throughput_intervals(
        self, profile: PerfProfile, planner_registry: Any
    ) -> None:
        """The combined planner's oracle knows each 60-s interval, not each 5-s tick."""
        from dynamo_planner.load_planner import CombinedPlanner, planner_from_config

        config = _loadbased(enable_throughput_scaling=True)
        built: list[CombinedPlanner] = []
        decisions: list[tuple[float, Any]] = []

        def factory() -> CombinedPlanner:
            planner = planner_from_config(
                config, profile=profile, registry=planner_registry
            )
            assert isinstance(planner, CombinedPlanner)
            if built:  # the perfect-forecast run's planner
                planner.throughput.listeners.append(
                    lambda step: decisions.append(
                        (planner.clock.now(), step.plan.demand)
                    )
                )
            built.append(planner)
            return planner

        trace = ramp_trace(4)
        replay(
            trace,
            profile,
            factory,
            options=ReplayOptions(
                interval_s=5.0,
                ttft_ms=500.0,
                itl_ms=20.0,
                sim=SimConfig(cold_start_s=10.0),
                baselines=("perfect_forecast",),
            ),
        )
        arrivals = np.asarray(trace.arrival_s)
        assert len(decisions) >= 10
        for t, demand in decisions:
            assert t == pytest.approx(round(t / 60.0) * 60.0)
            actual = np.sum((arrivals >= t - 1e-9) & (arrivals < t + 60.0 - 1e-9))
            assert demand.num_req.value == actual


@pytest.fixture(name="agg_report", scope="module")
def _agg_report(profile: PerfProfile, planner_registry: Any) -> Any:
    return replay(
        ramp_trace(5),
        profile,
        _loadbased(mode="agg"),
        options=ReplayOptions(
            sim=SimConfig(cold_start_s=10.0, initial_decode=2),
            baselines=("perfect_forecast", "best_static", "capacity_floor"),
        ),
        registry=planner_registry,
    )


class TestAggReplay:
    """Agg: aggregated workers, their own baselines."""

    def test_aggregated_workers(self, agg_report: Any) -> None:
        """Only agg workers run, counted as decode; they scale; every request completes."""
        run = agg_report.planner
        assert agg_report.options.sim.mode == "agg"
        assert {w.worker_id.split("-")[0] for w in run.result.workers} == {"agg"}
        assert {w.component for w in run.result.workers} == {"decode"}
        assert all(r.prefill_workers == 0 for r in run.intervals)
        assert max(r.decode_workers for r in run.intervals) > 2
        assert run.summary.completed == run.summary.requests
        assert all(plan.prefill is None for _, plan in run.plans)
        assert agg_report.scaling == "agg, load-based (every 5 s)"

    def test_baselines(self, agg_report: Any) -> None:
        """Best static counts agg workers; no perfect forecast, said in a note."""
        static = agg_report.best_static
        assert static.prefill == 0
        assert static.summary.label == f"best static ({static.decode} agg)"
        assert static.summary.attainment >= 0.99
        assert agg_report.perfect_forecast is None
        assert any("agg" in note for note in agg_report.notes)
        floor = agg_report.capacity_floor
        assert floor.gpu_hours < static.summary.gpu_hours
        text = agg_report.format_text()
        assert "note: no perfect-forecast run for agg" in text

    def test_plot(self, agg_report: Any, tmp_path: Path) -> None:
        """An agg replay plots its aggregated workers."""
        from dynamo_planner.sim.plot import plot_replay

        path = plot_replay(agg_report, tmp_path / "agg.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def test_agg_sim_needs_an_agg_planner(
        self, profile: PerfProfile, planner_registry: Any
    ) -> None:
        """An agg simulated deployment with a disagg configuration is refused."""
        with pytest.raises(ConfigError, match="agg"):
            replay(
                ramp_trace(),
                profile,
                PlannerConfig(load_predictor="last_value"),
                options=ReplayOptions(sim=SimConfig(mode="agg"), baselines=()),
                registry=planner_registry,
            )
