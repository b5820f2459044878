"""Properties of the reference scaler, the GPU budget and the reference interpolator."""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from dynamo_planner.interpolators.reference import ReferenceInterpolator
from dynamo_planner.profiles import load_profile
from dynamo_planner.protocols import ScalingRequest
from dynamo_planner.scalers.budget import (
    apply_budget,
    apply_component_budget,
    apply_global_budget,
)
from dynamo_planner.scalers.reference import ReferenceScaler
from dynamo_planner.values import Corrections, Demand, ReplicaState

H100 = (
    Path(__file__).resolve().parents[2]
    / "data/profiles/h100_sxm-vllm-Llama-3.3-70B-Instruct-FP8"
)


@cache
def h200() -> ReferenceInterpolator:
    from dynamo_planner.data import H200_PROFILE_DIR

    return ReferenceInterpolator.from_profile(load_profile(H200_PROFILE_DIR))


@cache
def h100(tp: int) -> ReferenceInterpolator:
    return ReferenceInterpolator.from_profile(load_profile(H100, select={"tp": tp}))


num_reqs = st.floats(min_value=0, max_value=1e7, allow_nan=False)
lengths = st.floats(min_value=1, max_value=40_000, allow_nan=False)
intervals = st.sampled_from([10.0, 60.0, 180.0, 600.0])
itl_targets = st.floats(min_value=1, max_value=200, allow_nan=False)
corrections = st.builds(
    Corrections,
    prefill=st.floats(min_value=-2, max_value=10, allow_nan=False),
    decode=st.floats(min_value=-2, max_value=10, allow_nan=False),
)
gpus = st.integers(min_value=1, max_value=8)
min_endpoints = st.integers(min_value=0, max_value=4)
budgets = st.integers(min_value=-1, max_value=200)
any_float = st.floats(allow_nan=True, allow_infinity=True)


def decide(
    scaler: ReferenceScaler,
    num_req: float,
    isl: float,
    osl: float,
    interval_s: float,
    factors: Corrections,
) -> tuple[int, int]:
    demand = Demand.of(
        num_req=num_req, isl_tokens=isl, osl_tokens=osl, interval_s=interval_s
    )
    plan = scaler.decide(
        ScalingRequest(demand=demand, current=ReplicaState(), corrections=factors)
    )
    assert plan.prefill is not None
    assert plan.decode is not None
    return plan.prefill, plan.decode


class TestScalerProperties:
    """Replica counts grow with demand and respect min_endpoint."""

    @given(
        st.tuples(num_reqs, num_reqs),
        lengths,
        lengths,
        intervals,
        itl_targets,
        corrections,
        gpus,
        gpus,
        min_endpoints,
    )
    def test_monotone_in_demand(
        self,
        pair: tuple[float, float],
        isl: float,
        osl: float,
        interval_s: float,
        itl_ms: float,
        factors: Corrections,
        np_: int,
        nd: int,
        m: int,
    ) -> None:
        """More requests never give fewer prefill or decode replicas."""
        low, high = sorted(pair)
        scaler = ReferenceScaler(
            interpolator=h200(),
            itl_ms=itl_ms,
            prefill_gpus_per_engine=np_,
            decode_gpus_per_engine=nd,
            min_endpoint=m,
        )
        p_low, d_low = decide(scaler, low, isl, osl, interval_s, factors)
        p_high, d_high = decide(scaler, high, isl, osl, interval_s, factors)
        assert p_low <= p_high
        assert d_low <= d_high
        assert min(p_low, d_low) >= m

    @given(num_reqs, lengths, lengths, intervals, st.sampled_from([8, 4, 2]))
    def test_h100_rows_also_monotone(
        self, num_req: float, isl: float, osl: float, interval_s: float, tp: int
    ) -> None:
        """On every H100 row, doubling the demand never lowers the replicas."""
        scaler = ReferenceScaler(interpolator=h100(tp))
        once = decide(scaler, num_req, isl, osl, interval_s, Corrections())
        twice = decide(scaler, 2 * num_req, isl, osl, interval_s, Corrections())
        assert once[0] <= twice[0]
        assert once[1] <= twice[1]


class TestBudgetProperties:
    """The budget: never over it, never growing, min_endpoint unless impossible."""

    @given(st.integers(0, 500), st.integers(0, 500), gpus, gpus, budgets, min_endpoints)
    def test_global_budget(
        self, p_extra: int, d_extra: int, np_: int, nd: int, budget: int, m: int
    ) -> None:
        """For requests of at least min_endpoint each, the global budget's guarantees."""
        prefill, decode = m + p_extra, m + d_extra
        result = apply_global_budget(
            prefill,
            decode,
            prefill_gpus_per_engine=np_,
            decode_gpus_per_engine=nd,
            budget_gpus=budget,
            min_endpoint=m,
        )
        assert result.prefill <= prefill
        assert result.decode <= decode
        if budget < 0:
            assert (result.prefill, result.decode) == (prefill, decode)
            return
        assert result.prefill * np_ + result.decode * nd <= budget
        if budget >= m * (np_ + nd):
            assert result.prefill >= m
            assert result.decode >= m
        else:
            assert (result.prefill, result.decode) == (0, 0)
        assert result.clamped == ((result.prefill, result.decode) != (prefill, decode))

    @given(st.integers(0, 500), gpus, budgets, min_endpoints)
    def test_component_budget(self, extra: int, n: int, budget: int, m: int) -> None:
        """One component: never over the budget, never grown, monotone in the request."""
        replicas = m + extra
        result = apply_component_budget(
            replicas, gpus_per_engine=n, budget_gpus=budget, min_endpoint=m
        )
        more = apply_component_budget(
            replicas + 1, gpus_per_engine=n, budget_gpus=budget, min_endpoint=m
        )
        assert result.replicas <= replicas
        assert result.replicas <= more.replicas
        if budget >= 0:
            assert result.replicas * n <= budget
            if budget >= m * n:
                assert result.replicas >= m

    @given(
        num_reqs,
        lengths,
        lengths,
        intervals,
        itl_targets,
        gpus,
        gpus,
        budgets,
        min_endpoints,
    )
    def test_scaler_then_budget(
        self,
        num_req: float,
        isl: float,
        osl: float,
        interval_s: float,
        itl_ms: float,
        np_: int,
        nd: int,
        budget: int,
        m: int,
    ) -> None:
        """The full path never exceeds the budget and keeps min_endpoint when it fits."""
        scaler = ReferenceScaler(
            interpolator=h200(),
            itl_ms=itl_ms,
            prefill_gpus_per_engine=np_,
            decode_gpus_per_engine=nd,
            min_endpoint=m,
        )
        demand = Demand.of(
            num_req=num_req, isl_tokens=isl, osl_tokens=osl, interval_s=interval_s
        )
        plan = apply_budget(
            scaler.decide(ScalingRequest(demand=demand, current=ReplicaState())),
            current=ReplicaState(),
            prefill_gpus_per_engine=np_,
            decode_gpus_per_engine=nd,
            budget_gpus=budget,
            min_endpoint=m,
        )
        assert plan.prefill is not None
        assert plan.decode is not None
        assert plan.unclamped_prefill is not None
        assert plan.unclamped_decode is not None
        assert plan.prefill <= plan.unclamped_prefill
        assert plan.decode <= plan.unclamped_decode
        if budget >= 0:
            assert plan.prefill * np_ + plan.decode * nd <= budget
        if budget < 0 or budget >= m * (np_ + nd):
            assert min(plan.prefill, plan.decode) >= m


class TestInterpolatorProperties:
    """Every query returns a finite float, whatever the input."""

    @given(any_float)
    def test_prefill_finite(self, isl: float) -> None:
        """TTFT and throughput are finite for any ISL, NaN and infinities included."""
        for interp in (h200(), h100(8)):
            assert math.isfinite(interp.prefill_ttft_ms(isl))
            assert math.isfinite(interp.prefill_throughput_per_gpu(isl))

    @given(any_float, any_float)
    def test_decode_finite(self, first: float, second: float) -> None:
        """ITL, throughput and the best point are finite for any pair of floats."""
        for interp in (h200(), h100(2)):
            assert math.isfinite(interp.decode_itl_ms(first, second))
            assert math.isfinite(interp.decode_throughput_per_gpu(first, second))
            point = interp.best_decode_point(first, second)
            assert math.isfinite(point.throughput_per_gpu)
            assert math.isfinite(point.itl_ms)
            assert 0.0 <= point.kv_usage <= 1.0

    @given(itl_targets, st.floats(min_value=0, max_value=20_000, allow_nan=False))
    def test_best_point_meets_a_reachable_target(
        self, itl_ms: float, context: float
    ) -> None:
        """When the chosen point's KV usage is above 0, its ITL meets the target."""
        point = h200().best_decode_point(itl_ms, context)
        if point.kv_usage > 0:
            assert point.itl_ms <= itl_ms
