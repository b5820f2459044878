"""The reference scaler reproduces Dynamo's replica formulas (spec §1.5, §11.1)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import attrs
import pytest

from dynamo_planner.exceptions import ConfigError
from dynamo_planner.interpolators.reference import ReferenceInterpolator
from dynamo_planner.profiles import load_profile
from dynamo_planner.protocols import Scaler, ScalingRequest
from dynamo_planner.scalers.reference import ReferenceScaler
from dynamo_planner.values import Corrections, DecodePoint, Demand, ReplicaState


@attrs.define
class StubInterpolator:
    """Returns constants and records what it was asked."""

    prefill_thpt: float = 40_000.0
    decode_thpt: float = 10_000.0
    ttft_ms: float = 80.0
    itl_ms: float = 10.0
    calls: list[tuple[object, ...]] = attrs.field(factory=list)

    def max_kv_tokens(self) -> int:
        return 100_000

    def prefill_ttft_ms(self, isl_tokens: float) -> float:
        self.calls.append(("ttft", isl_tokens))
        return self.ttft_ms

    def prefill_throughput_per_gpu(self, isl_tokens: float) -> float:
        self.calls.append(("prefill_thpt", isl_tokens))
        return self.prefill_thpt

    def decode_itl_ms(self, concurrency: float, context_tokens: float) -> float:
        self.calls.append(("itl", concurrency, context_tokens))
        return self.itl_ms

    def decode_throughput_per_gpu(
        self, concurrency: float, context_tokens: float
    ) -> float:
        return self.decode_thpt

    def best_decode_point(self, itl_ms: float, context_tokens: float) -> DecodePoint:
        self.calls.append(("best", itl_ms, context_tokens))
        return DecodePoint(self.decode_thpt, self.itl_ms, 0.5)


def request(
    num_req: float,
    isl: float = 3000.0,
    osl: float = 150.0,
    *,
    interval_s: float = 60.0,
    corrections: Corrections | None = None,
) -> ScalingRequest:
    return ScalingRequest(
        demand=Demand.of(
            num_req=num_req, isl_tokens=isl, osl_tokens=osl, interval_s=interval_s
        ),
        current=ReplicaState(prefill=1, decode=1),
        corrections=corrections or Corrections(),
    )


def scaler(stub: StubInterpolator | None = None, **fields: object) -> ReferenceScaler:
    return ReferenceScaler(interpolator=stub or StubInterpolator(), **fields)  # type: ignore[arg-type]


class TestConformance:
    """Spec §11.1, T1-T9 and T14 (T10-T12 are in test_corrections.py)."""

    def test_t1_light_load(self) -> None:
        """T1: 500 prefill tokens/s and 25 decode tokens/s give one replica each."""
        plan = scaler().decide(request(10))
        assert (plan.prefill, plan.decode) == (1, 1)
        assert plan.details["prefill_tokens_per_s"] == 500.0
        assert plan.details["decode_tokens_per_s"] == 25.0

    def test_t2_decode_needs_two(self) -> None:
        """T2: ceil(0.625) = 1 prefill, ceil(1.25) = 2 decode."""
        plan = scaler(StubInterpolator(decode_thpt=1000.0)).decide(request(500))
        assert (plan.prefill, plan.decode) == (1, 2)

    def test_t3_correction_above_one_is_clamped(self) -> None:
        """T3: p_correction 2.5 counts as 1; the prefill load is unchanged."""
        plan = scaler().decide(request(10, corrections=Corrections(prefill=2.5)))
        assert plan.prefill == 1
        assert plan.details["prefill_tokens_per_s"] == 500.0
        assert plan.details["p_correction_applied"] == 1.0

    def test_t4_correction_below_one_shrinks_the_load(self) -> None:
        """T4: p_correction 0.5 halves 50,000 tokens/s to 25,000: 1 replica, not 2."""
        corrected = scaler().decide(request(1000, corrections=Corrections(prefill=0.5)))
        assert corrected.details["prefill_tokens_per_s"] == 25_000.0
        assert corrected.prefill == 1
        assert scaler().decide(request(1000)).prefill == 2

    @pytest.mark.parametrize("d_correction", [0.0, -1.0])
    def test_t5_non_positive_decode_correction_uses_the_raw_target(
        self, d_correction: float
    ) -> None:
        """T5: d_correction 0 or -1 queries the raw ITL target and does not crash."""
        stub = StubInterpolator()
        plan = scaler(stub, itl_ms=10.0).decide(
            request(10, corrections=Corrections(decode=d_correction))
        )
        assert ("best", 10.0, 3075.0) in stub.calls
        assert plan.decode is not None
        assert plan.decode >= 1

    def test_t6_decode_correction_divides_the_target(self) -> None:
        """T6: d_correction 2 and ITL target 10 ms query 5 ms."""
        stub = StubInterpolator()
        scaler(stub, itl_ms=10.0).decide(
            request(10, corrections=Corrections(decode=2.0))
        )
        assert ("best", 5.0, 3075.0) in stub.calls

    def test_t7_gpus_per_engine_divide(self) -> None:
        """T7: Np=2, Nd=4 give ceil(1000/40000/2) = 1 and ceil(50/5000/4) = 1."""
        stub = StubInterpolator(decode_thpt=5000.0)
        plan = scaler(stub, prefill_gpus_per_engine=2, decode_gpus_per_engine=4).decide(
            request(20)
        )
        assert (plan.prefill, plan.decode) == (1, 1)
        assert plan.details["prefill_tokens_per_s"] == 1000.0
        assert plan.details["decode_tokens_per_s"] == 50.0

    def test_t7_gpus_per_engine_matter_when_large(self) -> None:
        """Doubling GPUs per engine halves the replicas a heavy load needs."""
        one = scaler().decide(request(20_000))
        two = scaler(prefill_gpus_per_engine=2, decode_gpus_per_engine=2).decide(
            request(20_000)
        )
        assert (one.prefill, one.decode) == (25, 5)
        assert (two.prefill, two.decode) == (13, 3)

    def test_t8_min_endpoint_raises_both(self) -> None:
        """T8: with min_endpoint 2 a tiny load gets 2 of each, marked as clamped."""
        plan = scaler(min_endpoint=2).decide(request(1, isl=100, osl=10))
        assert (plan.prefill, plan.decode) == (2, 2)
        assert "min_endpoint" in plan.clamps
        assert any("raised to min_endpoint=2" in r for r in plan.reasons)

    def test_t9_decode_context_is_isl_plus_half_osl(self) -> None:
        """T9: ISL 3000 and OSL 150 query the decode point at context 3075."""
        stub = StubInterpolator()
        plan = scaler(stub).decide(request(10))
        assert [c for c in stub.calls if c[0] == "best"] == [("best", 50.0, 3075.0)]
        assert plan.details["decode_context_tokens"] == 3075.0

    @pytest.mark.parametrize(
        ("prefill_thpt", "decode_thpt", "expected"),
        [(0.0, 10_000.0, (3, 6)), (-5.0, 10_000.0, (3, 6)), (40_000.0, 0.0, (30, 3))],
    )
    def test_t14_non_positive_throughput_gives_min_endpoint(
        self, prefill_thpt: float, decode_thpt: float, expected: tuple[int, int]
    ) -> None:
        """T14: a throughput per GPU of 0 or less gives min_endpoint for that component."""
        stub = StubInterpolator(prefill_thpt=prefill_thpt, decode_thpt=decode_thpt)
        plan = scaler(stub, min_endpoint=3).decide(request(24_000))
        assert (plan.prefill, plan.decode) == expected
        assert "min_endpoint" in plan.clamps


@pytest.fixture(name="real", scope="module")
def _real() -> ReferenceScaler:
    from dynamo_planner.data import H200_PROFILE_DIR

    interp = ReferenceInterpolator.from_profile(load_profile(H200_PROFILE_DIR))
    return ReferenceScaler(interpolator=interp)


class TestRealProfile:
    """T13: with the H200 profile replicas follow the formula up and down."""

    def expected(self, real: ReferenceScaler, num_req: float) -> tuple[int, int]:
        interp = real.interpolator
        prefill = math.ceil(
            num_req * 3000 / 60 / interp.prefill_throughput_per_gpu(3000)
        )
        point = interp.best_decode_point(50.0, 3075.0)
        decode = math.ceil(num_req * 150 / 60 / point.throughput_per_gpu)
        return max(prefill, 1), max(decode, 1)

    def test_t13_scale_up(self, real: ReferenceScaler) -> None:
        """From 10 to 5000 requests both components grow, each as the formula says."""
        low = real.decide(request(10))
        high = real.decide(request(5000))
        assert (low.prefill, low.decode) == self.expected(real, 10)
        assert (high.prefill, high.decode) == self.expected(real, 5000)
        assert high.prefill is not None
        assert low.prefill is not None
        assert high.decode is not None
        assert low.decode is not None
        assert high.prefill > low.prefill
        assert high.decode > low.decode

    def test_t13_scale_down(self, real: ReferenceScaler) -> None:
        """From 5000 back to 10 requests both components shrink."""
        high = real.decide(request(5000))
        low = real.decide(request(10))
        assert high.prefill is not None
        assert low.prefill is not None
        assert high.decode is not None
        assert low.decode is not None
        assert low.prefill < high.prefill
        assert low.decode < high.decode

    def test_details_carry_the_decode_point(self, real: ReferenceScaler) -> None:
        """The chosen decode point (ITL 20 ms, context 3075) is reported in details."""
        plan = attrs.evolve(real, itl_ms=20.0).decide(request(1000))
        assert plan.details["decode_throughput_per_gpu"] == pytest.approx(
            6181, rel=0.005
        )
        assert plan.details["decode_kv_usage"] == pytest.approx(0.404, rel=0.005)
        assert plan.details["decode_itl_ms"] == pytest.approx(19.67, rel=0.005)
        assert plan.details["prefill_throughput_per_gpu"] == pytest.approx(
            49_481, rel=0.005
        )


class TestModes:
    """disagg plans both components; prefill and decode plan one."""

    def test_prefill_mode_leaves_decode(self) -> None:
        """In prefill mode decode is None."""
        plan = scaler(mode="prefill").decide(request(500))
        assert plan.prefill == 1
        assert plan.decode is None
        assert "decode_tokens_per_s" not in plan.details

    def test_decode_mode_leaves_prefill(self) -> None:
        """In decode mode prefill is None."""
        plan = scaler(mode="decode").decide(request(500))
        assert plan.prefill is None
        assert plan.decode == 1

    def test_unclamped_equal_the_result(self) -> None:
        """Before the budget, unclamped replicas equal the plan's."""
        plan = scaler().decide(request(20_000))
        assert (plan.unclamped_prefill, plan.unclamped_decode) == (25, 5)


class TestExplanations:
    """Every step is reported in reasons and details."""

    def test_reasons_follow_the_steps(self) -> None:
        """Demand, prefill load, prefill replicas, decode point, load, replicas."""
        plan = scaler().decide(request(500))
        text = "\n".join(plan.reasons)
        assert plan.reasons[0].startswith("demand: 500 requests in 60 s")
        assert "prefill load" in text
        assert "ceil(25,000 / 40,000 / 1 GPUs) = 1 replicas" in text
        assert "decode point" in text
        assert "decode: ceil(1,250 / 10,000 / 1 GPUs) = 1 replicas" in text

    def test_unmet_targets_are_noted(self) -> None:
        """A TTFT or ITL the profile cannot meet is noted, as the formula ignores it."""
        stub = StubInterpolator(ttft_ms=900.0, itl_ms=80.0)
        plan = scaler(stub, ttft_ms=500.0, itl_ms=50.0).decide(request(10))
        text = "\n".join(plan.reasons)
        assert "over the TTFT target of 500 ms" in text
        assert "no decode load meets 50 ms" in text

    def test_demand_is_kept(self) -> None:
        """The plan carries the demand it sized for."""
        req = request(10)
        assert scaler().decide(req).demand == req.demand


class TestConstruction:
    """Validation, the Protocol and from_config."""

    def test_is_a_scaler(self) -> None:
        """It satisfies the Scaler Protocol."""
        assert isinstance(scaler(), Scaler)

    def test_registered_as_entry_point(self) -> None:
        """The 'reference' scaler entry point loads this class."""
        from dynamo_planner._compat import metadata

        (entry,) = metadata.entry_points(
            group="dynamo_planner.scalers", name="reference"
        )
        assert entry.load() is ReferenceScaler

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("ttft_ms", 0.0),
            ("itl_ms", -1.0),
            ("itl_ms", math.nan),
            ("prefill_gpus_per_engine", 0),
            ("min_endpoint", -1),
            ("mode", "agg"),
        ],
    )
    def test_invalid_fields(self, field: str, value: object) -> None:
        """Out-of-range settings raise ConfigError naming the field."""
        with pytest.raises(ConfigError) as info:
            scaler(**{field: value})
        assert info.value.field == field

    def test_from_config_reads_the_field_names(self) -> None:
        """from_config maps PlannerConfig names; None GPUs per engine mean 1."""
        config = SimpleNamespace(
            ttft_ms=200.0,
            itl_ms=20.0,
            prefill_engine_num_gpu=None,
            decode_engine_num_gpu=4,
            min_endpoint=2,
            mode="decode",
        )
        built = ReferenceScaler.from_config(config, StubInterpolator())  # type: ignore[arg-type]
        assert (built.ttft_ms, built.itl_ms, built.min_endpoint) == (200.0, 20.0, 2)
        assert (built.prefill_gpus_per_engine, built.decode_gpus_per_engine) == (1, 4)
        assert built.mode == "decode"

    def test_from_planner_config(self) -> None:
        """A real PlannerConfig builds the same scaler."""
        from dynamo_planner.config import PlannerConfig

        config = PlannerConfig(ttft_ms=300.0, itl_ms=25.0, min_endpoint=3)
        built = ReferenceScaler.from_config(config, interpolator=StubInterpolator())  # type: ignore[arg-type]
        assert (built.ttft_ms, built.itl_ms, built.min_endpoint) == (300.0, 25.0, 3)
        assert built.prefill_gpus_per_engine == 1

    @pytest.mark.parametrize("num_req", [-1.0, math.nan, math.inf])
    def test_bad_demand_is_refused(self, num_req: float) -> None:
        """A negative or non-finite demand raises ValueError naming it."""
        req = request(10)
        req = attrs.evolve(
            req,
            demand=attrs.evolve(
                req.demand, num_req=attrs.evolve(req.demand.num_req, value=num_req)
            ),
        )
        with pytest.raises(ValueError, match=r"demand\.num_req"):
            scaler().decide(req)
