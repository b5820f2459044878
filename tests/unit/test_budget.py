"""The GPU budget (spec §1.6, §11.2), with the fix that it never grows a component."""

from __future__ import annotations

import attrs
import pytest

from dynamo_planner.protocols import ScalingRequest
from dynamo_planner.scalers.budget import (
    apply_budget,
    apply_component_budget,
    apply_global_budget,
)
from dynamo_planner.scalers.reference import ReferenceScaler
from dynamo_planner.values import DecodePoint, Demand, ReplicaPlan, ReplicaState


def global_budget(
    prefill: int, decode: int, np_: int, nd: int, budget: int, m: int
) -> tuple[int, int]:
    result = apply_global_budget(
        prefill,
        decode,
        prefill_gpus_per_engine=np_,
        decode_gpus_per_engine=nd,
        budget_gpus=budget,
        min_endpoint=m,
    )
    return result.prefill, result.decode


@attrs.frozen
class ConstantInterpolator:
    """Constant throughputs per GPU (prefill, decode)."""

    prefill_thpt: float
    decode_thpt: float

    def max_kv_tokens(self) -> int:
        return 100_000

    def prefill_ttft_ms(self, isl_tokens: float) -> float:
        return 80.0

    def prefill_throughput_per_gpu(self, isl_tokens: float) -> float:
        return self.prefill_thpt

    def decode_itl_ms(self, concurrency: float, context_tokens: float) -> float:
        return 10.0

    def decode_throughput_per_gpu(
        self, concurrency: float, context_tokens: float
    ) -> float:
        return self.decode_thpt

    def best_decode_point(self, itl_ms: float, context_tokens: float) -> DecodePoint:
        return DecodePoint(self.decode_thpt, 10.0, 0.5)


class TestGlobalBudget:
    """Spec §11.2, B1-B6: disagg mode, one budget for both components."""

    def test_b1_even_split(self) -> None:
        """B1: (8,8) in 10 GPUs gives (5,5)."""
        assert global_budget(8, 8, 1, 1, 10, 1) == (5, 5)

    def test_b2_decode_keeps_its_request(self) -> None:
        """B2: (10,2) in 8 GPUs gives (6,2)."""
        assert global_budget(10, 2, 1, 1, 8, 1) == (6, 2)

    def test_b3_decode_never_grows(self) -> None:
        """B3 with our fix: (3,1), Np 4, Nd 1, 12 GPUs gives (2,1), not Dynamo's (2,4)."""
        result = apply_global_budget(
            3,
            1,
            prefill_gpus_per_engine=4,
            decode_gpus_per_engine=1,
            budget_gpus=12,
            min_endpoint=1,
        )
        assert (result.prefill, result.decode) == (2, 1)
        assert result.clamped

    def test_b4_budget_below_the_minimums(self) -> None:
        """B4: (5,5), 2 GPUs each, 3 GPUs cannot host 4: (0,0)."""
        result = apply_global_budget(
            5,
            5,
            prefill_gpus_per_engine=2,
            decode_gpus_per_engine=2,
            budget_gpus=3,
            min_endpoint=1,
        )
        assert (result.prefill, result.decode) == (0, 0)
        assert "cannot host" in result.reason

    @pytest.mark.parametrize("request_", [(0, 0), (1, 1), (50, 70), (1000, 3)])
    def test_b5_no_budget(self, request_: tuple[int, int]) -> None:
        """B5: budget -1 returns any request unchanged."""
        assert global_budget(*request_, 3, 2, -1, 1) == request_

    def test_b6_exactly_at_the_budget(self) -> None:
        """B6: (2,1) in 3 GPUs is unchanged and not clamped."""
        result = apply_global_budget(
            2,
            1,
            prefill_gpus_per_engine=1,
            decode_gpus_per_engine=1,
            budget_gpus=3,
            min_endpoint=1,
        )
        assert (result.prefill, result.decode, result.clamped) == (2, 1, False)

    def test_reason_explains_the_scaling(self) -> None:
        """The reason gives the totals and the factor."""
        result = apply_global_budget(
            8,
            8,
            prefill_gpus_per_engine=1,
            decode_gpus_per_engine=1,
            budget_gpus=10,
            min_endpoint=1,
        )
        assert "16 GPUs exceed the budget of 10" in result.reason
        assert "(5, 5)" in result.reason

    @pytest.mark.parametrize(
        ("request_", "per_engine", "budget", "expected"),
        [
            ((6, 15), (1, 1), 16, (4, 12)),  # the third plan row
            ((4, 5), (1, 2), 8, (2, 3)),  # the fourth plan row
            ((3, 3), (4, 1), 12, (2, 3)),  # decode would get 4 in Dynamo
            ((1, 10), (1, 1), 5, (1, 4)),
        ],
    )
    def test_more_rows(
        self,
        request_: tuple[int, int],
        per_engine: tuple[int, int],
        budget: int,
        expected: tuple[int, int],
    ) -> None:
        """Dynamo's floors, with decode capped at its request."""
        assert global_budget(*request_, *per_engine, budget, 1) == expected


class TestComponentBudget:
    """Spec §11.2, B7-B8: prefill-only, decode-only and agg modes."""

    def test_b7_reduced(self) -> None:
        """B7: 10 replicas of 2 GPUs in 8 GPUs gives 4."""
        result = apply_component_budget(
            10, gpus_per_engine=2, budget_gpus=8, min_endpoint=1
        )
        assert (result.replicas, result.clamped) == (4, True)

    def test_b8_minimum_does_not_fit(self) -> None:
        """B8: min_endpoint 5 of 2 GPUs needs 10 > 8: zero."""
        result = apply_component_budget(
            10, gpus_per_engine=2, budget_gpus=8, min_endpoint=5
        )
        assert result.replicas == 0
        assert "cannot host" in result.reason

    @pytest.mark.parametrize(("replicas", "budget"), [(3, -1), (3, 6), (0, 0)])
    def test_fits_unchanged(self, replicas: int, budget: int) -> None:
        """A request within the budget (or no budget) is unchanged."""
        result = apply_component_budget(
            replicas, gpus_per_engine=2, budget_gpus=budget, min_endpoint=1
        )
        assert (result.replicas, result.clamped) == (replicas, False)


class TestWithTheScaler:
    """Spec §11.2, B9-B10: budgets applied to the reference scaler's plans."""

    def plan(
        self,
        num_req: float,
        interp: ConstantInterpolator,
        *,
        per_engine: int,
        budget: int,
    ) -> ReplicaPlan:
        scaler = ReferenceScaler(
            interpolator=interp,
            prefill_gpus_per_engine=per_engine,
            decode_gpus_per_engine=per_engine,
        )
        demand = Demand.of(
            num_req=num_req, isl_tokens=3000, osl_tokens=150, interval_s=60
        )
        plan = scaler.decide(ScalingRequest(demand=demand, current=ReplicaState()))
        return apply_budget(
            plan,
            current=ReplicaState(),
            prefill_gpus_per_engine=per_engine,
            decode_gpus_per_engine=per_engine,
            budget_gpus=budget,
            min_endpoint=1,
        )

    @pytest.mark.parametrize("num_req", [50, 5_000, 50_000])
    def test_b9_total_within_three(self, num_req: float) -> None:
        """B9: with a budget of 3 the total never exceeds 3 GPUs."""
        plan = self.plan(
            num_req, ConstantInterpolator(40_000, 10_000), per_engine=1, budget=3
        )
        assert plan.prefill is not None
        assert plan.decode is not None
        assert plan.prefill + plan.decode <= 3

    @pytest.mark.parametrize("num_req", [100, 10_000])
    def test_b10_two_gpu_engines_within_five(self, num_req: float) -> None:
        """B10: 2 GPUs per engine, budget 5: at least one of each, at most 5 GPUs."""
        plan = self.plan(
            num_req, ConstantInterpolator(10_000, 1_000), per_engine=2, budget=5
        )
        assert plan.prefill is not None
        assert plan.decode is not None
        assert plan.prefill >= 1
        assert plan.decode >= 1
        assert 2 * plan.prefill + 2 * plan.decode <= 5


class TestApplyBudget:
    """apply_budget on a ReplicaPlan: modes, held components, records."""

    def test_records_unclamped_and_the_clamp(self) -> None:
        """A clamped plan keeps its request in unclamped_* and says 'budget'."""
        plan = ReplicaPlan(prefill=6, decode=15, reasons=("scaler",))
        out = apply_budget(plan, current=ReplicaState(), budget_gpus=16)
        assert (out.prefill, out.decode) == (4, 12)
        assert (out.unclamped_prefill, out.unclamped_decode) == (6, 15)
        assert out.clamps == ("budget",)
        assert out.reasons[0] == "scaler"
        assert out.reasons[-1].startswith("GPU budget: 21 GPUs exceed the budget of 16")
        assert out.details["budget_gpus"] == 16

    def test_within_budget_is_not_a_clamp(self) -> None:
        """A plan that fits keeps its numbers and gains no clamp, only a reason."""
        out = apply_budget(
            ReplicaPlan(prefill=1, decode=1), current=ReplicaState(), budget_gpus=8
        )
        assert (out.prefill, out.decode, out.clamps) == (1, 1, ())
        assert out.reasons == ("GPU budget: 2 GPUs fit the budget of 8",)

    def test_hold_is_untouched(self) -> None:
        """A plan that changes nothing passes through."""
        hold = ReplicaPlan(prefill=None, decode=None, reasons=("unknown",))
        out = apply_budget(
            hold, current=ReplicaState(prefill=9, decode=9), budget_gpus=2
        )
        assert out.is_hold
        assert out.reasons == ("unknown",)

    def test_held_component_counts_with_its_current_replicas(self) -> None:
        """A None prefill counts as the 6 running; the budget then must shrink it."""
        plan = ReplicaPlan(prefill=None, decode=10)
        out = apply_budget(
            plan, current=ReplicaState(prefill=6, decode=2), budget_gpus=8
        )
        assert (out.prefill, out.decode) == (3, 5)
        assert out.unclamped_prefill is None
        assert out.unclamped_decode == 10

    def test_held_component_stays_held_when_it_fits(self) -> None:
        """A None component the budget does not move stays None."""
        plan = ReplicaPlan(prefill=None, decode=3)
        out = apply_budget(
            plan, current=ReplicaState(prefill=2, decode=1), budget_gpus=8
        )
        assert (out.prefill, out.decode) == (None, 3)

    def test_prefill_mode_uses_the_component_budget(self) -> None:
        """In prefill mode only prefill is budgeted, with its GPUs per engine."""
        plan = ReplicaPlan(prefill=10, decode=None)
        out = apply_budget(
            plan,
            current=ReplicaState(prefill=1, decode=50),
            mode="prefill",
            prefill_gpus_per_engine=2,
            budget_gpus=8,
        )
        assert (out.prefill, out.decode) == (4, None)
        assert "budget" in out.clamps

    @pytest.mark.parametrize("mode", ["decode", "agg"])
    def test_decode_and_agg_modes(self, mode: str) -> None:
        """In decode and agg modes decode is budgeted with the decode GPUs."""
        plan = ReplicaPlan(prefill=None, decode=10)
        out = apply_budget(
            plan,
            current=ReplicaState(prefill=50, decode=1),
            mode=mode,
            decode_gpus_per_engine=2,
            budget_gpus=8,
            min_endpoint=5,
        )
        assert (out.prefill, out.decode) == (None, 0)

    def test_keeps_the_scalers_unclamped_values(self) -> None:
        """unclamped_* already set by the scaler are not overwritten."""
        plan = ReplicaPlan(prefill=5, decode=5, unclamped_prefill=7, unclamped_decode=8)
        out = apply_budget(plan, current=ReplicaState(), budget_gpus=4)
        assert (out.unclamped_prefill, out.unclamped_decode) == (7, 8)
        assert (out.prefill, out.decode) == (2, 2)
