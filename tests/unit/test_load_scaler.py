"""Tests for load-based decisions and the LoadPlanner facade (spec §4.4 to §4.7, §11.4)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import attrs
import pytest

from dynamo_planner.config import PlannerConfig
from dynamo_planner.exceptions import ConfigError, MetricSourceError
from dynamo_planner.load_planner import (
    CombinedPlanner,
    LoadPlanner,
    planner_from_config,
    run_together,
)
from dynamo_planner.planner import Planner
from dynamo_planner.plugins import Registry
from dynamo_planner.profiles import load_profile
from dynamo_planner.protocols import ScalingRequest
from dynamo_planner.scalers.load import (
    LoadRequest,
    LoadScaler,
    LoadSnapshot,
    LoadView,
    decode_rule,
    prefill_rule,
)
from dynamo_planner.scalers.load_regression import LinearFit, LoadRegression
from dynamo_planner.testing.fakes import (
    InMemoryMetricSource,
    ManualClock,
    RecordingConnector,
    ScriptedPredictor,
)
from dynamo_planner.values import (
    Forecast,
    Observation,
    ReplicaPlan,
    ReplicaState,
    WorkerLoad,
)

# The regressions of spec §11.4: TTFT = 0.1 x + 100 on x = 2000 + 200 i, ITL = 0.5 x + 10
# on x = 20 + 10 i (i = 0..9). At TTFT 500 ms x_sla is 4000; at ITL 50 ms it is 80.
PREFILL_POINTS = [(2000 + 200 * i, 0.1 * (2000 + 200 * i) + 100) for i in range(10)]
DECODE_POINTS = [(20 + 10 * i, 0.5 * (20 + 10 * i) + 10) for i in range(10)]


def _regression(
    points: list[tuple[float, float]], min_observations: int = 5
) -> LoadRegression:
    regression = LoadRegression(window=50, min_observations=min_observations)
    for x, y in points:
        regression.observe(x, y)
    return regression


def _fit(points: list[tuple[float, float]]) -> LinearFit:
    fit = _regression(points).fit()
    assert fit is not None
    return fit


def prefill(worker_id: str, active: float | None, isl: float = 3000.0) -> WorkerLoad:
    return WorkerLoad(
        worker_id=worker_id,
        worker_type="prefill",
        active_prefill_tokens=active,
        last_isl_tokens=isl,
        last_ttft_ms=0.1 * ((active or 0) + isl) + 100,
    )


def decode(worker_id: str, blocks: float | None) -> WorkerLoad:
    return WorkerLoad(
        worker_id=worker_id,
        worker_type="decode",
        active_decode_blocks=blocks,
        last_itl_ms=0.5 * (blocks or 0) + 10,
    )


def agg(
    worker_id: str, active: float, blocks: float, isl: float = 3000.0
) -> WorkerLoad:
    return WorkerLoad(
        worker_id=worker_id,
        worker_type="decode",
        active_prefill_tokens=active,
        active_decode_blocks=blocks,
        last_isl_tokens=isl,
        last_ttft_ms=0.1 * (active + isl) + 100,
        last_itl_ms=0.5 * blocks + 10,
    )


def _prefill_rule(actives: list[float], n: int, sensitivity: float = 80) -> int | None:
    workers = [prefill(f"p{i}", a) for i, a in enumerate(actives)]
    view = LoadView.of_workers(workers, "prefill")
    return prefill_rule(
        fit=_fit(PREFILL_POINTS),
        workers=view.recent,
        replicas=n,
        isl_tokens=view.cluster_isl_tokens,
        ttft_ms=500,
        sensitivity_pct=sensitivity,
    ).replicas


def _decode_rule(blocks: list[float], n: int, sensitivity: float = 80) -> int | None:
    return decode_rule(
        fit=_fit(DECODE_POINTS),
        workers=[decode(f"d{i}", b) for i, b in enumerate(blocks)],
        replicas=n,
        itl_ms=50,
        sensitivity_pct=sensitivity,
    ).replicas


def _request(
    current: ReplicaState, workers: list[WorkerLoad], **kwargs: object
) -> LoadRequest:
    return LoadRequest(
        current=current,
        snapshot=LoadSnapshot.of_workers(workers),
        prefill_fit=_fit(PREFILL_POINTS),
        decode_fit=_fit(DECODE_POINTS),
        **kwargs,  # type: ignore[arg-type]
    )


class TestConformance:
    """The decision cases L1 to L12 of spec §11.4, with snapshot B expectations."""

    def test_l1_prefill_scale_up(self) -> None:
        """Both workers above target 1000 (x_sla 4000 - ISL 3000): 2 -> 3."""
        assert _prefill_rule([1500, 1200], n=2) == 3

    def test_l1_numbers_recorded(self) -> None:
        """The rule records x_sla 4000, target 1000 and which rule fired."""
        result = prefill_rule(
            fit=_fit(PREFILL_POINTS),
            workers=[prefill("a", 1500), prefill("b", 1200)],
            replicas=2,
            isl_tokens=3000,
            ttft_ms=500,
            sensitivity_pct=80,
        )
        assert result.details["x_sla"] == pytest.approx(4000)
        assert result.details["target"] == pytest.approx(1000)
        assert result.details["slope"] == pytest.approx(0.1)
        assert result.details["intercept"] == pytest.approx(100)
        assert result.details["loads"] == {"a": 1500, "b": 1200}
        assert result.rule == "scale_up"

    def test_l2_prefill_scale_down(self) -> None:
        """Sensitivity 100, N=3: boundary 666.67, all below it: 3 -> 2."""
        assert _prefill_rule([100, 200, 150], n=3, sensitivity=100) == 2

    def test_l3_prefill_mixed_load_holds(self) -> None:
        """One worker above target, one far below: no change."""
        assert _prefill_rule([1500, 100], n=2) is None

    def test_l4_prefill_cold_start(self) -> None:
        """With 2 observations (5 needed) there is no decision."""
        regression = _regression(PREFILL_POINTS[:2])
        result = prefill_rule(
            fit=regression.fit(),
            workers=[prefill("a", 5000)],
            replicas=1,
            isl_tokens=3000,
            ttft_ms=500,
            sensitivity_pct=80,
        )
        assert result.replicas is None
        assert result.rule == "insufficient_data"

    def test_l5_decode_scale_up(self) -> None:
        """x_sla 80 blocks; workers at 100 and 95: 2 -> 3."""
        result = decode_rule(
            fit=_fit(DECODE_POINTS),
            workers=[decode("a", 100), decode("b", 95)],
            replicas=2,
            itl_ms=50,
            sensitivity_pct=80,
        )
        assert result.details["x_sla"] == pytest.approx(80)
        assert result.replicas == 3

    def test_l6_decode_scale_down(self) -> None:
        """Sensitivity 100, N=3: boundary 53.33, blocks 10/15/20: 3 -> 2."""
        result = decode_rule(
            fit=_fit(DECODE_POINTS),
            workers=[decode("a", 10), decode("b", 15), decode("c", 20)],
            replicas=3,
            itl_ms=50,
            sensitivity_pct=100,
        )
        assert result.details["boundary"] == pytest.approx(53.333, abs=0.01)
        assert result.replicas == 2

    def test_l7_decode_cold_start(self) -> None:
        """With one observation there is no decode decision."""
        result = decode_rule(
            fit=_regression(DECODE_POINTS[:1]).fit(),
            workers=[decode("a", 500)],
            replicas=1,
            itl_ms=50,
            sensitivity_pct=80,
        )
        assert result.replicas is None

    def test_l8_raw_decision_then_floor(self) -> None:
        """N=5 at 50 tokens each: raw 4 (boundary 640); a floor of 4 keeps 4."""
        assert _prefill_rule([50] * 5, n=5) == 4
        scaler = LoadScaler(mode="prefill")
        workers = [prefill(f"p{i}", 50) for i in range(5)]
        plan = scaler.decide(
            _request(ReplicaState(prefill=5), workers, floor=ReplicaState(prefill=4))
        )
        assert plan.details["prefill_boundary"] == pytest.approx(640)
        assert plan.prefill == 4

    def test_l8_floor_above_decision_wins(self) -> None:
        """A floor of 5 turns the raw scale-down to 4 into a hold at 5."""
        scaler = LoadScaler(mode="prefill")
        workers = [prefill(f"p{i}", 50) for i in range(5)]
        plan = scaler.decide(
            _request(ReplicaState(prefill=5), workers, floor=ReplicaState(prefill=5))
        )
        assert plan.prefill is None
        assert plan.details["prefill_load_decision"] == 4
        assert "floor" in plan.clamps

    def test_l9_sensitivity_zero_never_scales_down(self) -> None:
        """Sensitivity 0 gives boundary 0, and 0 < 0 is false."""
        assert _prefill_rule([0, 0, 0], n=3, sensitivity=0) is None

    def test_l10_unreachable_sla(self) -> None:
        """An average ISL at or above x_sla leaves target <= 0: no decision."""
        result = prefill_rule(
            fit=_fit(PREFILL_POINTS),
            workers=[prefill("a", 9000, isl=4000)],
            replicas=1,
            isl_tokens=4000,
            ttft_ms=500,
            sensitivity_pct=80,
        )
        assert result.replicas is None
        assert result.rule == "sla_unreachable"

    def test_l11_reconciliation_skips(self) -> None:
        """The deployment says 3 prefill workers, the router lists 2: prefill holds."""
        scaler = LoadScaler(mode="prefill")
        plan = scaler.decide(
            _request(ReplicaState(prefill=3), [prefill("a", 5000), prefill("b", 5000)])
        )
        assert plan.prefill is None
        assert plan.details["prefill_rule"] == "worker_count_mismatch"

    def test_l12_worker_type_split(self) -> None:
        """Prefill learns only from prefill workers, decode only from decode workers."""
        planner = LoadPlanner(scaler=LoadScaler(mode="disagg"))
        w1 = prefill("w1", 100)
        w2 = decode("w2", 30)
        mislabelled = attrs.evolve(w1, worker_id="w3", worker_type="decode")
        added = planner.observe(LoadSnapshot.of_workers([w1, w2, mislabelled]))
        assert added == 2
        assert planner.prefill_regression.num_observations == 1
        assert planner.decode_regression.num_observations == 1


class TestScalerDisagg:
    """Prefill and decode decide independently in disagg (snapshot B)."""

    def test_independent_components(self) -> None:
        """Prefill scales up while decode, in its band, holds."""
        plan = LoadScaler().decide(
            _request(
                ReplicaState(prefill=2, decode=2),
                [
                    prefill("a", 1500),
                    prefill("b", 1200),
                    decode("c", 70),
                    decode("d", 5),
                ],
            )
        )
        assert (plan.prefill, plan.decode) == (3, None)
        assert plan.details["decode_rule"] == "within_band"

    def test_one_component_held_does_not_cancel_other(self) -> None:
        """A decode reconciliation mismatch does not stop prefill from scaling up."""
        plan = LoadScaler().decide(
            _request(
                ReplicaState(prefill=2, decode=3),
                [prefill("a", 1500), prefill("b", 1200), decode("c", 100)],
            )
        )
        assert (plan.prefill, plan.decode) == (3, None)
        assert plan.details["decode_rule"] == "worker_count_mismatch"

    def test_both_move_by_one(self) -> None:
        """Both components scale the same tick, each by one."""
        plan = LoadScaler().decide(
            _request(
                ReplicaState(prefill=1, decode=1), [prefill("a", 2000), decode("b", 90)]
            )
        )
        assert (plan.prefill, plan.decode) == (2, 2)

    def test_all_decode_labels_hint(self) -> None:
        """With every worker labelled decode the mismatch message names upstream #7581."""
        plan = LoadScaler().decide(
            _request(
                ReplicaState(prefill=1, decode=1), [decode("a", 10), decode("b", 1)]
            )
        )
        assert any("#7581" in reason for reason in plan.reasons)

    def test_unknown_load_holds(self) -> None:
        """A worker that reports no active prefill tokens blocks the prefill rule."""
        plan = LoadScaler(mode="prefill").decide(
            _request(ReplicaState(prefill=2), [prefill("a", 2000), prefill("b", None)])
        )
        assert plan.prefill is None
        assert plan.details["prefill_rule"] == "load_unknown"

    def test_single_worker_never_scales_down(self) -> None:
        """With N=1 an idle worker is not removed by the load rule."""
        plan = LoadScaler(mode="prefill", min_endpoint=0).decide(
            _request(ReplicaState(prefill=1), [prefill("a", 0)])
        )
        assert plan.prefill is None

    def test_scaling_in_progress_holds(self) -> None:
        """While the last change has not converged the component holds (#9774)."""
        plan = LoadScaler(mode="prefill").decide(
            _request(
                ReplicaState(prefill=2),
                [prefill("a", 1500), prefill("b", 1200)],
                in_progress=ReplicaState(prefill=3),
            )
        )
        assert plan.prefill is None
        assert plan.details["prefill_rule"] == "scaling_in_progress"


class TestDeltas:
    """Our deltas to the reference: floor and min_endpoint on every tick."""

    def test_floor_enforced_when_rule_holds(self) -> None:
        """A within-band hold still rises to the throughput floor."""
        plan = LoadScaler(mode="prefill").decide(
            _request(
                ReplicaState(prefill=2),
                [prefill("a", 1500), prefill("b", 100)],
                floor=ReplicaState(prefill=4),
            )
        )
        assert plan.details["prefill_rule"] == "within_band"
        assert plan.prefill == 4
        assert "floor" in plan.clamps

    def test_floor_enforced_during_cold_start(self) -> None:
        """Before the regression has data the floor still applies."""
        request = LoadRequest(
            current=ReplicaState(prefill=1, decode=1),
            snapshot=LoadSnapshot.of_workers([prefill("a", 10), decode("b", 1)]),
            floor=ReplicaState(prefill=3, decode=2),
        )
        plan = LoadScaler().decide(request)
        assert (plan.prefill, plan.decode) == (3, 2)

    def test_floor_enforced_on_reconciliation_mismatch(self) -> None:
        """A worker-count mismatch holds the rule, not the floor."""
        plan = LoadScaler(mode="decode").decide(
            _request(
                ReplicaState(decode=2), [decode("a", 10)], floor=ReplicaState(decode=3)
            )
        )
        assert plan.decode == 3

    def test_min_endpoint_blocks_scale_down(self) -> None:
        """A scale-down below min_endpoint is refused (upstream #6637)."""
        plan = LoadScaler(
            mode="decode", min_endpoint=2, scaling_down_sensitivity=100
        ).decide(_request(ReplicaState(decode=2), [decode("a", 1), decode("b", 1)]))
        assert plan.details["decode_load_decision"] == 1
        assert plan.decode is None
        assert "min_endpoint" in plan.clamps

    def test_min_endpoint_raises_empty_deployment(self) -> None:
        """With no workers at all, min_endpoint replicas are asked for."""
        plan = LoadScaler(min_endpoint=1).decide(LoadRequest(current=ReplicaState()))
        assert (plan.prefill, plan.decode) == (1, 1)

    def test_budget_caps_scale_up(self) -> None:
        """A scale-up over the global GPU budget is cut back to fit."""
        plan = LoadScaler(max_gpu_budget=2).decide(
            _request(
                ReplicaState(prefill=1, decode=1), [prefill("a", 2000), decode("b", 90)]
            )
        )
        assert (plan.prefill, plan.decode) == (None, None)
        assert "budget" in plan.clamps

    def test_over_budget_deployment_is_brought_down(self) -> None:
        """A deployment over the budget is reduced even when the rule holds."""
        plan = LoadScaler(mode="decode", max_gpu_budget=2).decide(
            LoadRequest(current=ReplicaState(decode=4))
        )
        assert plan.decode == 2


class TestAgg:
    """Agg mode (spec §4.6): one component judged on TTFT and ITL."""

    def _plan(self, workers: list[WorkerLoad], n: int) -> ReplicaPlan:
        scaler = LoadScaler(mode="agg", scaling_down_sensitivity=100)
        return scaler.decide(_request(ReplicaState(decode=n), workers))

    def test_up_if_either_says_up(self) -> None:
        """Prefill load above target with decode load low still scales up."""
        plan = self._plan([agg("a", 1500, 10), agg("b", 1200, 10)], n=2)
        assert plan.decode == 3
        assert plan.prefill is None

    def test_down_only_if_both_say_down(self) -> None:
        """Decode says down but prefill is in band: hold."""
        plan = self._plan([agg("a", 900, 1), agg("b", 900, 1), agg("c", 900, 1)], n=3)
        assert plan.decode is None
        both = self._plan([agg("a", 10, 1), agg("b", 10, 1), agg("c", 10, 1)], n=3)
        assert both.decode == 2

    def test_records_both_dimensions(self) -> None:
        """The plan carries both dimensions' rules and numbers."""
        plan = self._plan([agg("a", 1500, 10), agg("b", 1200, 10)], n=2)
        assert plan.details["decode_ttft_rule"] == "scale_up"
        assert plan.details["decode_itl_x_sla"] == pytest.approx(80)

    def test_agg_learns_from_per_worker_averages(self) -> None:
        """Agg feeds both regressions from the per-worker averaged view."""
        planner = LoadPlanner(scaler=LoadScaler(mode="agg"))
        view = LoadView(recent=(), per_worker=(agg("a", 100, 10),))
        planner.observe(LoadSnapshot(decode=view))
        assert planner.prefill_regression.num_observations == 1
        assert planner.decode_regression.num_observations == 1


class TestScalerConfig:
    """The scaler's own validation."""

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("scaling_down_sensitivity", 101),
            ("ttft_ms", 0.0),
            ("mode", "both"),
            ("min_endpoint", -1),
        ],
    )
    def test_rejects(self, field: str, value: object) -> None:
        """Out-of-range settings are a ConfigError naming the field."""
        with pytest.raises(ConfigError) as info:
            LoadScaler(**{field: value})  # type: ignore[arg-type]
        assert info.value.field == field


class TestConfigDeltas:
    """Configuration rules that load-based scaling relies on (spec §11.5)."""

    def test_from_config(self) -> None:
        """The load planner takes its settings from PlannerConfig."""
        config = PlannerConfig(
            enable_loadbased_scaling=True,
            loadbased_learning_window=20,
            loadbased_min_observations=4,
            loadbased_scaling_down_sensitivity=60,
            loadbased_adjustment_interval_s=3,
            min_endpoint=2,
            max_gpu_budget=16,
        )
        planner = LoadPlanner.from_config(config)
        assert planner.interval_s == 3
        assert planner.prefill_regression.window == 20
        assert planner.decode_regression.min_observations == 4
        assert planner.scaler.scaling_down_sensitivity == 60
        assert planner.scaler.min_endpoint == 2
        assert planner.scaler.max_gpu_budget == 16

    def test_correction_turned_off_with_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Load-based scaling turns the correction factors off and says so."""
        with caplog.at_level(logging.WARNING):
            config = PlannerConfig(enable_loadbased_scaling=True)
        assert config.no_correction
        assert any("no_correction" in r.getMessage() for r in caplog.records)

    def test_load_interval_must_be_shorter(self) -> None:
        """Both modes with equal intervals are rejected."""
        with pytest.raises(ConfigError) as info:
            PlannerConfig(
                enable_loadbased_scaling=True,
                loadbased_adjustment_interval_s=180,
                adjustment_interval_s=180,
            )
        assert info.value.field == "loadbased_adjustment_interval_s"

    def test_agg_requires_load_only(self) -> None:
        """Agg with throughput scaling on is rejected."""
        with pytest.raises(ConfigError):
            PlannerConfig(mode="agg", enable_loadbased_scaling=True)


# --------------------------------------------------------------------------- facade
def _warm_planner(mode: str = "disagg", **kwargs: object) -> LoadPlanner:
    planner = LoadPlanner(scaler=LoadScaler(mode=mode), **kwargs)  # type: ignore[arg-type]
    for x, y in PREFILL_POINTS:
        planner.prefill_regression.observe(x, y)
    for x, y in DECODE_POINTS:
        planner.decode_regression.observe(x, y)
    return planner


def _busy() -> Observation:
    return Observation(interval_s=5, workers=[prefill("a", 2000), decode("b", 90)])


@attrs.define
class LaggingConnector:
    """Reports the old replicas for ``lag`` calls after each apply."""

    state: ReplicaState
    lag: int = 2
    applied: list[ReplicaPlan] = attrs.field(factory=list)
    _target: ReplicaState | None = None
    _left: int = 0

    async def current(self) -> ReplicaState:
        if self._target is not None:
            if self._left == 0:
                self.state, self._target = self._target, None
            else:
                self._left -= 1
        return self.state

    async def apply(self, plan: ReplicaPlan, *, blocking: bool = False) -> None:
        self.applied.append(plan)
        self._target, self._left = plan.target(self.state), self.lag

    async def aclose(self) -> None:
        pass


class TestLoadPlanner:
    """The facade: plan() learns and decides, step() and run() do the I/O."""

    def test_plan_learns_then_decides(self) -> None:
        """After min_observations ticks of growing load the planner scales up."""
        planner = LoadPlanner(
            scaler=LoadScaler(mode="prefill"),
            prefill_regression=LoadRegression(min_observations=3),
        )
        current = ReplicaState(prefill=1)
        plans = [
            planner.plan([prefill("a", active)], current)
            for active in (500.0, 1000.0, 3000.0)
        ]
        assert [p.prefill for p in plans] == [None, None, 2]
        assert plans[-1].details["prefill_regression_observations"] == 3

    async def test_step_applies_blocking(self) -> None:
        """A step reads the source, plans and applies through the connector."""
        connector = RecordingConnector(state=ReplicaState(prefill=1, decode=1))
        planner = _warm_planner(
            source=InMemoryMetricSource([_busy()]), connector=connector
        )
        plan = await planner.step()
        assert (plan.prefill, plan.decode) == (2, 2)
        assert connector.state == ReplicaState(prefill=2, decode=2)

    async def test_advisory_applies_nothing(self) -> None:
        """In advisory mode plans are made and nothing is applied."""
        connector = RecordingConnector(state=ReplicaState(prefill=1, decode=1))
        planner = _warm_planner(
            source=InMemoryMetricSource([_busy()]), connector=connector, advisory=True
        )
        plan = await planner.step()
        assert plan.prefill == 2
        assert connector.applied == []

    async def test_source_failure_counted_floor_still_enforced(self) -> None:
        """A failing source is counted; the floor is still applied that tick."""
        connector = RecordingConnector(state=ReplicaState(prefill=1, decode=1))
        source = InMemoryMetricSource([MetricSourceError("down", source="test")])
        planner = _warm_planner(
            source=source, connector=connector, floor=ReplicaState(prefill=2, decode=3)
        )
        await planner.step()
        assert planner.errors == {"source": 1}
        assert connector.state == ReplicaState(prefill=2, decode=3)

    async def test_connector_failure_retried(self) -> None:
        """A failed apply is counted and tried again on the next tick."""
        connector = RecordingConnector(
            state=ReplicaState(prefill=1, decode=1), fail_next=1
        )
        planner = _warm_planner(
            source=InMemoryMetricSource([_busy(), _busy()]), connector=connector
        )
        await planner.step()
        assert planner.errors == {"connector": 1}
        await planner.step()
        assert connector.state == ReplicaState(prefill=2, decode=2)

    async def test_in_progress_guard(self) -> None:
        """While the deployment lags behind the last apply, no further step is taken."""
        connector = LaggingConnector(state=ReplicaState(prefill=1, decode=1), lag=2)
        planner = _warm_planner(
            source=InMemoryMetricSource([_busy()] * 3), connector=connector
        )
        first = await planner.step()
        second = await planner.step()
        assert (first.prefill, first.decode) == (2, 2)
        assert second.is_hold
        assert second.details["prefill_rule"] == "scaling_in_progress"
        assert len(connector.applied) == 1

    async def test_in_progress_is_per_component(self) -> None:
        """A decode change in flight neither blocks prefill nor outlives its arrival."""

        @attrs.define
        class Scripted:
            states: list[ReplicaState]
            applied: list[ReplicaPlan] = attrs.field(factory=list)

            async def current(self) -> ReplicaState:
                return self.states.pop(0)

            async def apply(self, plan: ReplicaPlan, *, blocking: bool = False) -> None:
                self.applied.append(plan)

            async def aclose(self) -> None:
                pass

        calm_prefill = prefill("a", 900)
        busy_prefill = prefill("a", 2000)
        busy = decode("b", 90)
        source = InMemoryMetricSource(
            [
                Observation(
                    interval_s=5,
                    workers=[calm_prefill, busy],
                ),
                Observation(interval_s=5, workers=[busy_prefill, busy]),
                Observation(
                    interval_s=5,
                    workers=[busy_prefill, busy, attrs.evolve(busy, worker_id="c")],
                ),
            ]
        )
        connector = Scripted(
            [
                ReplicaState(prefill=1, decode=1),
                ReplicaState(prefill=1, decode=1),
                ReplicaState(prefill=1, decode=2),
            ]
        )
        planner = _warm_planner(source=source, connector=connector)
        first = await planner.step()
        second = await planner.step()
        third = await planner.step()
        assert (first.prefill, first.decode) == (None, 2)
        assert second.prefill == 2
        assert second.details["decode_rule"] == "scaling_in_progress"
        assert third.details["prefill_rule"] == "scaling_in_progress"
        assert third.details["decode_rule"] == "scale_up"
        assert third.decode == 3

    async def test_in_progress_guard_expires(self) -> None:
        """After max_wait_s without convergence the planner decides again."""
        clock = ManualClock()
        connector = LaggingConnector(state=ReplicaState(prefill=1, decode=1), lag=99)
        planner = _warm_planner(
            source=InMemoryMetricSource([_busy()] * 2),
            connector=connector,
            clock=clock,
            max_wait_s=10,
        )
        await planner.step()
        clock.advance(11)
        await planner.step()
        assert len(connector.applied) == 2

    async def test_reads_router_views(self) -> None:
        """A source with views() is read through its buffer, never fetched."""

        @attrs.define
        class Views:
            fetched: int = 0

            def views(self, worker_type: str) -> LoadView | None:
                workers = [w for w in _busy().workers if w.worker_type == worker_type]
                return LoadView.of_workers(workers, worker_type)

            async def fetch(self, interval_s: float) -> Observation:
                self.fetched += 1
                return Observation(interval_s=interval_s)

            async def aclose(self) -> None:
                pass

        source = Views()
        connector = RecordingConnector(state=ReplicaState(prefill=1, decode=1))
        planner = _warm_planner(source=source, connector=connector)
        plan = await planner.step()
        assert source.fetched == 0
        assert (plan.prefill, plan.decode) == (2, 2)

    async def test_run_ticks_on_interval(self) -> None:
        """run() sleeps one interval before each step, until stopped."""
        clock = ManualClock()
        stop = asyncio.Event()
        planner = _warm_planner(
            source=InMemoryMetricSource(),
            connector=RecordingConnector(state=ReplicaState(prefill=1, decode=1)),
            clock=clock,
            interval_s=5,
        )
        steps: list[float] = []

        def listener(_: object) -> None:
            steps.append(clock.now())
            if len(steps) == 3:
                stop.set()

        planner.listeners.append(listener)
        await planner.run(stop)
        assert steps == [5, 10, 15]

    def test_update_floor_keeps_skipped_component(self) -> None:
        """A throughput plan that skips decode keeps the previous decode floor."""
        planner = LoadPlanner()
        planner.update_floor(ReplicaPlan(prefill=2, decode=3))
        planner.update_floor(ReplicaPlan(prefill=4, decode=None))
        assert planner.floor == ReplicaState(prefill=4, decode=3)


@attrs.frozen
class FixedScaler:
    """A throughput scaler that always asks for the same replicas."""

    prefill: int
    decode: int

    def decide(self, request: ScalingRequest) -> ReplicaPlan:
        return ReplicaPlan(prefill=self.prefill, decode=self.decode)


class TestRunTogether:
    """Both modes: the throughput planner sets the floor, the load planner scales."""

    async def test_floor_from_throughput_applied_by_load(self) -> None:
        """The throughput plan (3, 4) becomes the floor the load path applies."""
        clock = ManualClock()
        stop = asyncio.Event()
        connector = RecordingConnector(state=ReplicaState(prefill=1, decode=1))
        traffic = Observation(interval_s=60, num_req=10, isl_tokens=100, osl_tokens=10)
        throughput = Planner(
            predictors={
                n: ScriptedPredictor(fixed=1.0) for n in ("num_req", "isl", "osl")
            },
            scaler=FixedScaler(3, 4),
            interval_s=60,
            source=InMemoryMetricSource([traffic] * 5),
            connector=connector,
            clock=clock,
        )
        load = LoadPlanner(
            interval_s=5,
            source=InMemoryMetricSource(),
            connector=connector,
            clock=clock,
        )
        load.listeners.append(
            lambda record: stop.set() if load.floor is not None else None
        )
        await run_together(throughput, load, stop)
        assert throughput.advisory
        assert load.floor == ReplicaState(prefill=3, decode=4)
        assert connector.state == ReplicaState(prefill=3, decode=4)
        assert all(plan.details.get("mode") == "disagg" for plan in connector.applied)

    async def test_rejects_long_load_interval(self) -> None:
        """A load interval not shorter than the throughput interval is an error."""
        throughput = Planner(
            predictors={
                n: ScriptedPredictor(fixed=1.0) for n in ("num_req", "isl", "osl")
            },
            scaler=FixedScaler(1, 1),
            interval_s=60,
        )
        with pytest.raises(ValueError, match="shorter"):
            await run_together(throughput, LoadPlanner(interval_s=60))


@attrs.define
class LastValue:
    """A predictor plugin for the registry: forecasts the last value."""

    last: float = 0.0

    @classmethod
    def from_config(cls, config: object) -> LastValue:
        return cls()

    def observe(self, value: float) -> None:
        self.last = value

    def predict(self) -> Forecast:
        return Forecast.point(self.last)


def _throughput(scaler: FixedScaler, **kwargs: object) -> Planner:
    return Planner(
        predictors={n: ScriptedPredictor(fixed=1.0) for n in ("num_req", "isl", "osl")},
        scaler=scaler,
        interval_s=60,
        **kwargs,  # type: ignore[arg-type]
    )


class TestCombinedPlanner:
    """One loop for both modes: throughput sets the floor, load scales."""

    def test_forwards_edges_to_both(self) -> None:
        """Setting source, connector and clock sets them on both planners."""
        combined = CombinedPlanner(
            throughput=_throughput(FixedScaler(1, 1)), load=LoadPlanner(interval_s=5)
        )
        source, connector, clock = (
            InMemoryMetricSource(),
            RecordingConnector(),
            ManualClock(),
        )
        combined.source, combined.connector, combined.clock = source, connector, clock
        assert combined.throughput.source is source
        assert combined.load.connector is connector
        assert combined.throughput.clock is clock
        assert combined.interval_s == 5
        assert combined.throughput.advisory

    async def test_throughput_ticks_every_interval(self) -> None:
        """Over 180 s the load planner ticks 36 times and the throughput planner 3."""
        clock = ManualClock()
        stop = asyncio.Event()
        traffic = Observation(interval_s=60, num_req=10, isl_tokens=100, osl_tokens=10)
        throughput = _throughput(
            FixedScaler(2, 2), source=InMemoryMetricSource([traffic] * 10)
        )
        throughput_times: list[float] = []
        throughput.listeners.append(lambda _: throughput_times.append(clock.now()))
        combined = CombinedPlanner(
            throughput=throughput, load=LoadPlanner(interval_s=5)
        )
        combined.load.source = InMemoryMetricSource()
        combined.connector = RecordingConnector(state=ReplicaState(prefill=1, decode=1))
        combined.clock = clock
        load_ticks: list[float] = []

        def tick(_: object) -> None:
            load_ticks.append(clock.now())
            if clock.now() >= 180:
                stop.set()

        combined.listeners.append(tick)
        await combined.run(stop)
        assert len(load_ticks) == 36
        assert throughput_times == [60, 120, 180]
        assert combined.load.floor == ReplicaState(prefill=2, decode=2)

    def test_rejects_long_load_interval(self) -> None:
        """The load interval must be shorter than the throughput interval."""
        with pytest.raises(ValueError, match="shorter"):
            CombinedPlanner(
                throughput=_throughput(FixedScaler(1, 1)),
                load=LoadPlanner(interval_s=60),
            )


class TestPlannerFromConfig:
    """planner_from_config picks the planner by the scaling modes."""

    def _registry(self) -> Registry:
        return Registry(
            {
                "predictors": {"constant": LastValue},
                "interpolators": {
                    "reference": "dynamo_planner.interpolators.reference:ReferenceInterpolator"
                },
                "scalers": {
                    "reference": "dynamo_planner.scalers.reference:ReferenceScaler"
                },
            }
        )

    def test_load_only(self) -> None:
        """Load-based alone gives a LoadPlanner (no profile needed)."""
        config = PlannerConfig(
            enable_loadbased_scaling=True, enable_throughput_scaling=False
        )
        assert isinstance(planner_from_config(config), LoadPlanner)

    def test_agg(self) -> None:
        """Agg mode gives a LoadPlanner planning the decode component."""
        config = PlannerConfig(
            mode="agg", enable_loadbased_scaling=True, enable_throughput_scaling=False
        )
        planner = planner_from_config(config)
        assert isinstance(planner, LoadPlanner)
        assert planner.scaler.components == ("decode",)

    def test_both(self, h200_profile_dir: Path) -> None:
        """Both modes give a CombinedPlanner around a Planner and a LoadPlanner."""
        config = PlannerConfig(
            enable_loadbased_scaling=True,
            load_predictor="constant",
            interpolator="reference",
            scaler="reference",
            adjustment_interval_s=60,
        )
        planner = planner_from_config(
            config, profile=load_profile(h200_profile_dir), registry=self._registry()
        )
        assert isinstance(planner, CombinedPlanner)
        assert planner.throughput.advisory
        assert planner.throughput.interval_s == 60

    def test_both_with_separate_sources(self, h200_profile_dir: Path) -> None:
        """Live both-mode: Prometheus for throughput, the router for load."""
        config = PlannerConfig(
            enable_loadbased_scaling=True,
            load_predictor="constant",
            interpolator="reference",
            scaler="reference",
        )
        prometheus, router = InMemoryMetricSource(), InMemoryMetricSource()
        planner = planner_from_config(
            config,
            profile=load_profile(h200_profile_dir),
            registry=self._registry(),
            source=prometheus,
            load_source=router,
        )
        assert isinstance(planner, CombinedPlanner)
        assert planner.throughput.source is prometheus
        assert planner.load.source is router

    def test_throughput_only(self, h200_profile_dir: Path) -> None:
        """Throughput alone gives the plain Planner."""
        config = PlannerConfig(
            load_predictor="constant", interpolator="reference", scaler="reference"
        )
        planner = planner_from_config(
            config, profile=load_profile(h200_profile_dir), registry=self._registry()
        )
        assert isinstance(planner, Planner)
