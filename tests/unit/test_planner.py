"""Tests of the Planner facade: the unknown-traffic policy, the loop, failures."""

from __future__ import annotations

import asyncio
import math

import attrs
import pytest

from dynamo_planner.exceptions import MetricSourceError, ScalingDeferredError
from dynamo_planner.planner import Planner, StepRecord
from dynamo_planner.protocols import ScalingRequest
from dynamo_planner.testing.fakes import (
    FailingMetricSource,
    InMemoryMetricSource,
    ManualClock,
    RecordingConnector,
    ScriptedPredictor,
)
from dynamo_planner.values import Observation, ReplicaPlan, ReplicaState

NAN = math.nan


@attrs.define
class RequestsPerReplicaScaler:
    """Sizes one replica of each component per ``per_replica`` forecast requests."""

    per_replica: float = 100.0
    min_endpoint: int = 1
    requests: list[ScalingRequest] = attrs.field(factory=list)

    def decide(self, request: ScalingRequest) -> ReplicaPlan:
        self.requests.append(request)
        n = max(
            self.min_endpoint,
            math.ceil(request.demand.num_req.value / self.per_replica),
        )
        return ReplicaPlan(prefill=n, decode=n, reasons=(f"{n} per component",))


def _planner(**kwargs: object) -> Planner:
    defaults: dict[str, object] = {
        "predictors": {
            "num_req": ScriptedPredictor(),
            "isl": ScriptedPredictor(),
            "osl": ScriptedPredictor(),
        },
        "scaler": RequestsPerReplicaScaler(),
        "interval_s": 60.0,
        "max_gpu_budget": -1,
        "correction": False,
    }
    defaults.update(kwargs)
    return Planner(**defaults)  # type: ignore[arg-type]


def _obs(num_req: float | None, isl: float | None = 3000, osl: float | None = 150):
    return Observation(
        interval_s=60.0,
        num_req=num_req,
        isl_tokens=isl,
        osl_tokens=osl,
        ttft_ms=80.0 if num_req else None,
        itl_ms=10.0 if num_req else None,
        request_duration_s=2.0 if num_req else None,
    )


UNKNOWN = Observation(interval_s=60.0)
CURRENT = ReplicaState(prefill=7, decode=7)


class TestPlan:
    def test_sizes_from_the_forecast(self) -> None:
        """Feeds the observation to the predictors and sizes for their forecast."""
        planner = _planner()
        plan = planner.plan(_obs(450), CURRENT)
        assert (plan.prefill, plan.decode) == (5, 5)
        assert planner.predictors["num_req"].observed == [450]  # type: ignore[attr-defined]

    def test_zero_traffic_is_known_and_scales_down(self) -> None:
        """A measured zero request count is fed as zero, so the plan drops to the minimum."""
        planner = _planner()
        planner.plan(_obs(450), CURRENT)
        plan = planner.plan(_obs(0, isl=None, osl=None), CURRENT)
        assert (plan.prefill, plan.decode) == (1, 1)
        assert planner.predictors["isl"].observed == [3000]  # type: ignore[attr-defined]

    def test_unknown_lengths_with_traffic_are_unknown(self) -> None:
        """Requests with unknown mean lengths make the interval unknown, not zero."""
        planner = _planner()
        plan = planner.plan(_obs(450, isl=None), CURRENT)
        assert plan.is_hold
        assert "isl_tokens" in plan.reasons[0]

    def test_forecast_has_no_side_effects(self) -> None:
        """Asking for the forecast twice gives the same demand and feeds nothing."""
        planner = _planner()
        planner.plan(_obs(450), CURRENT)
        assert planner.forecast() == planner.forecast()
        assert planner.predictors["num_req"].observed == [450]  # type: ignore[attr-defined]


class TestUnknownPolicy:
    """Spec §11.12: the scale-down after consecutive unknown intervals."""

    def test_third_unknown_interval_falls_back_to_min_endpoint(self) -> None:
        """NaN, NaN, NaN with threshold 3: the third plan is min_endpoint."""
        planner = _planner(unknown_fallback_intervals=3, min_endpoint=1)
        first = planner.plan(UNKNOWN, CURRENT)
        second = planner.plan(UNKNOWN, CURRENT)
        third = planner.plan(UNKNOWN, CURRENT)
        assert first.is_hold
        assert second.is_hold
        assert (third.prefill, third.decode) == (1, 1)
        assert "unknown_metrics" in third.clamps

    def test_a_known_interval_resets_the_count(self) -> None:
        """NaN, NaN, valid, NaN, NaN: no forced scale-down (the counter reset)."""
        planner = _planner(unknown_fallback_intervals=3)
        plans = [
            planner.plan(o, CURRENT)
            for o in (UNKNOWN, UNKNOWN, _obs(450), UNKNOWN, UNKNOWN)
        ]
        assert [p.is_hold for p in plans] == [True, True, False, True, True]

    def test_nine_unknown_intervals_under_threshold_ten_hold(self) -> None:
        """Threshold 10: nine NaN intervals never force a scale-down."""
        planner = _planner(unknown_fallback_intervals=10)
        assert all(planner.plan(UNKNOWN, CURRENT).is_hold for _ in range(9))

    def test_threshold_zero_disables_the_fallback(self) -> None:
        """Threshold 0 holds forever, as the reference did."""
        planner = _planner(unknown_fallback_intervals=0)
        assert all(planner.plan(UNKNOWN, CURRENT).is_hold for _ in range(20))

    def test_unknown_intervals_feed_no_predictor(self) -> None:
        """Unknown values are never fed to the predictors as zeros."""
        planner = _planner()
        planner.plan(UNKNOWN, CURRENT)
        assert planner.predictors["num_req"].observed == []  # type: ignore[attr-defined]

    def test_prefill_mode_falls_back_only_prefill(self) -> None:
        """In prefill mode the fallback plans prefill and leaves decode alone."""
        planner = _planner(mode="prefill", unknown_fallback_intervals=1, min_endpoint=2)
        plan = planner.plan(UNKNOWN, CURRENT)
        assert (plan.prefill, plan.decode) == (2, None)


class TestStep:
    async def test_step_fetches_plans_and_applies(self) -> None:
        """One step reads the source, plans and applies the target to the connector."""
        connector = RecordingConnector(state=ReplicaState(prefill=1, decode=1))
        planner = _planner(
            source=InMemoryMetricSource([_obs(350)]), connector=connector
        )
        plan = await planner.step()
        assert (plan.prefill, plan.decode) == (4, 4)
        assert connector.state == ReplicaState(prefill=4, decode=4)

    async def test_failing_source_is_counted_and_held(self) -> None:
        """A source that raises yields an unknown interval; the error is counted."""
        planner = _planner(source=FailingMetricSource(), connector=RecordingConnector())
        plan = await planner.step()
        assert plan.is_hold
        assert planner.errors == {"source": 1}

    async def test_source_recovers_after_errors(self) -> None:
        """After failures the next good observation is planned normally."""
        source = InMemoryMetricSource(
            [MetricSourceError("down", source="x"), _obs(250)]
        )
        connector = RecordingConnector()
        planner = _planner(source=source, connector=connector)
        await planner.step()
        plan = await planner.step()
        assert (plan.prefill, plan.decode) == (3, 3)
        assert connector.state == ReplicaState(prefill=3, decode=3)

    async def test_connector_failure_is_retried_next_step(self) -> None:
        """A failed apply is counted and the same target is applied on the next step."""
        connector = RecordingConnector(fail_next=1)
        planner = _planner(
            source=InMemoryMetricSource([_obs(250), _obs(250)]), connector=connector
        )
        await planner.step()
        assert connector.applied == []
        assert planner.errors == {"connector": 1}
        await planner.step()
        assert connector.state == ReplicaState(prefill=3, decode=3)

    async def test_deferred_decision_is_retried_and_not_an_error(self) -> None:
        """A decision the connector defers is counted as deferred and applied later."""

        @attrs.define
        class DeferOnce(RecordingConnector):
            deferred: bool = False

            async def apply(self, plan: ReplicaPlan, *, blocking: bool = False) -> None:
                if not self.deferred:
                    self.deferred = True
                    raise ScalingDeferredError("previous not done", connector="x")
                await super().apply(plan, blocking=blocking)

        connector = DeferOnce()
        planner = _planner(
            source=InMemoryMetricSource([_obs(250), _obs(250)]), connector=connector
        )
        await planner.step()
        await planner.step()
        assert planner.errors == {"deferred": 1}
        assert connector.state == ReplicaState(prefill=3, decode=3)

    async def test_same_target_is_not_applied_twice(self) -> None:
        """A decision already applied is not sent again."""
        connector = RecordingConnector()
        source = InMemoryMetricSource([_obs(250), _obs(250), _obs(250)])
        planner = _planner(source=source, connector=connector)
        for _ in range(3):
            await planner.step()
        assert len(connector.applied) == 1

    async def test_advisory_mode_applies_nothing(self) -> None:
        """In advisory mode plans are made and recorded but never applied."""
        connector = RecordingConnector()
        records: list[StepRecord] = []
        planner = _planner(
            source=InMemoryMetricSource([_obs(250)]),
            connector=connector,
            advisory=True,
            listeners=[records.append],
        )
        plan = await planner.step()
        assert plan.prefill == 3
        assert connector.applied == []
        assert records[0].applied is False
        assert records[0].plan == plan

    async def test_step_without_source_is_an_error(self) -> None:
        """step() needs a source and says so."""
        with pytest.raises(RuntimeError, match="metric source"):
            await _planner().step()


class TestRun:
    async def test_runs_one_step_per_interval_until_stopped(self) -> None:
        """run() sleeps one interval before each step and stops when asked."""
        clock = ManualClock()
        source = InMemoryMetricSource([_obs(100), _obs(200), _obs(300)])
        planner = _planner(source=source, connector=RecordingConnector(), clock=clock)
        stop = asyncio.Event()

        def stop_after_three(record: StepRecord) -> None:
            if source.fetches == 3:
                stop.set()

        planner.listeners.append(stop_after_three)
        await planner.run(stop)
        assert source.fetches == 3
        assert clock.sleeps == [60.0, 60.0, 60.0]
