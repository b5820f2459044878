"""The fitted interpolator: a consistent physical model, fitted by least squares."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_planner.exceptions import ProfileError
from dynamo_planner.interpolators.fitted import (
    FittedInterpolator,
    consistent_decode_points,
    cross_validate,
)
from dynamo_planner.interpolators.reference import ReferenceInterpolator
from dynamo_planner.profiles import load_profile, profile_from_arrays
from dynamo_planner.protocols import Interpolator
from dynamo_planner.values import PerfProfile

MAX_KV = 100_000


def synthetic_profile(
    *, a: float = 5.0, b: float = 0.05, c: float = 2e-5, saturate: bool = False
) -> PerfProfile:
    """A profile measured on an exact engine: TTFT 20 + 0.01 x, ITL a + b n + c n ctx."""
    isl = np.array([100.0, 1000.0, 2000.0, 4000.0, 8000.0])
    ttft = 20.0 + 0.01 * isl
    kv, ctx, itl, thpt = [], [], [], []
    for context in (500.0, 2000.0, 6000.0):
        for n in (1.0, 5.0, 10.0, 15.0):
            kv.append(n * context / MAX_KV)
            ctx.append(context)
            step = a + b * n + c * n * context
            itl.append(step)
            thpt.append(n / step * 1000.0)
    if saturate:  # the engine ran only 10 of the 40 requests sent: ITL of 10, not 40
        n_sent, n_run = 40.0, 10.0
        kv.append(n_sent * 500.0 / MAX_KV)
        ctx.append(500.0)
        step = a + b * n_run + c * n_run * 500.0
        itl.append(step)
        thpt.append(n_run / step * 1000.0)
    return profile_from_arrays(
        {
            "prefill_isl": isl,
            "prefill_ttft": ttft,
            "prefill_thpt_per_gpu": isl / ttft * 1000.0,
        },
        {
            "x_kv_usage": kv,
            "y_context_length": ctx,
            "z_itl": itl,
            "z_thpt_per_gpu": thpt,
            "max_kv_tokens": [MAX_KV],
        },
    )


@pytest.fixture(name="h200", scope="module")
def _h200() -> PerfProfile:
    from dynamo_planner.data import H200_PROFILE_DIR

    return load_profile(H200_PROFILE_DIR)


@pytest.fixture(name="fitted", scope="module")
def _fitted(h200: PerfProfile) -> FittedInterpolator:
    return FittedInterpolator.from_profile(h200)


class TestFit:
    """Least squares recovers an exact engine and skips saturated points."""

    def test_recovers_exact_coefficients(self) -> None:
        """An engine that follows the model exactly is recovered exactly."""
        fit = FittedInterpolator.from_profile(synthetic_profile())
        assert fit.prefill.overhead_ms == pytest.approx(20.0, rel=1e-6)
        assert fit.prefill.per_token_ms == pytest.approx(0.01, rel=1e-6)
        assert fit.prefill.per_token_squared_ms == pytest.approx(0.0, abs=1e-12)
        assert fit.decode.step_overhead_ms == pytest.approx(5.0, rel=1e-6)
        assert fit.decode.per_request_ms == pytest.approx(0.05, rel=1e-6)
        assert fit.decode.per_kv_token_ms == pytest.approx(2e-5, rel=1e-6)

    def test_saturated_point_is_left_out(self) -> None:
        """A point whose throughput is far below n / ITL is not fitted."""
        profile = synthetic_profile(saturate=True)
        *_, usable = consistent_decode_points(profile.decode)
        assert usable.tolist().count(False) == 1
        fit = FittedInterpolator.from_profile(profile)
        assert fit.decode.points_excluded == 1
        assert fit.decode.per_request_ms == pytest.approx(0.05, rel=1e-6)

    def test_h200_coefficients_are_physical(self, fitted: FittedInterpolator) -> None:
        """On H200 the fit has positive overheads and per-token costs, one GPU each."""
        assert 15 < fitted.prefill.overhead_ms < 25
        assert fitted.prefill.per_token_ms > 0
        assert 3.5 < fitted.decode.step_overhead_ms < 5.5
        assert fitted.decode.per_kv_token_ms > 0
        assert fitted.prefill.gpus_per_engine == 1
        assert fitted.decode.gpus_per_engine == 1
        assert fitted.decode.points_excluded == 3

    def test_too_few_points_raise(self) -> None:
        """A decode profile with fewer than 3 unsaturated points cannot be fitted."""
        profile = profile_from_arrays(
            {
                "prefill_isl": [100.0, 200.0, 300.0],
                "prefill_ttft": [10.0, 12.0, 14.0],
                "prefill_thpt_per_gpu": [10_000.0, 16_666.0, 21_428.0],
            },
            {
                # one request at 5 ms; then 20 and 40 "concurrent" at ~1000 tokens/s:
                # saturated (20 / 6 ms would be 3333 tokens/s)
                "x_kv_usage": [0.05, 1.0, 2.0],
                "y_context_length": [500.0, 500.0, 500.0],
                "z_itl": [5.0, 6.0, 6.0],
                "z_thpt_per_gpu": [200.0, 1000.0, 1000.0],
                "max_kv_tokens": [10_000],
            },
            source="tiny.npz",
        )
        with pytest.raises(ProfileError, match=r"tiny\.npz.*unsaturated"):
            FittedInterpolator.from_profile(profile)


class TestConsistency:
    """Decode throughput follows from the ITL model."""

    def test_satisfies_protocol(self, fitted: FittedInterpolator) -> None:
        """The fitted model is an Interpolator."""
        assert isinstance(fitted, Interpolator)

    @given(
        n=st.floats(1, 2000, allow_nan=False), ctx=st.floats(0, 50_000, allow_nan=False)
    )
    def test_throughput_is_concurrency_over_itl(
        self, fitted: FittedInterpolator, n: float, ctx: float
    ) -> None:
        """Throughput per GPU equals n / ITL(n, ctx) everywhere."""
        expected = n / fitted.decode_itl_ms(n, ctx) * 1000.0
        assert fitted.decode_throughput_per_gpu(n, ctx) == pytest.approx(expected)

    def test_best_point_meets_target_and_is_consistent(
        self, fitted: FittedInterpolator
    ) -> None:
        """The best point's ITL is the target and its throughput is its batch / ITL."""
        point = fitted.best_decode_point(20.0, 1260.0)
        n = point.kv_usage * fitted.max_kv_tokens() / 1260.0
        assert point.itl_ms == pytest.approx(20.0)
        assert point.throughput_per_gpu == pytest.approx(n / point.itl_ms * 1000.0)

    def test_reference_surfaces_disagree_fitted_do_not(
        self, h200: PerfProfile, fitted: FittedInterpolator
    ) -> None:
        """At context 1260, ITL 20 ms the reference's two surfaces differ by ~2x."""
        reference = ReferenceInterpolator.from_profile(h200)
        point = reference.best_decode_point(20.0, 1260.0)
        batch = point.kv_usage * reference.max_kv_tokens() / 1260.0
        by_itl = batch / point.itl_ms * 1000.0
        assert point.throughput_per_gpu == pytest.approx(11_700, rel=0.01)
        assert by_itl == pytest.approx(6_100, rel=0.01)
        ours = fitted.best_decode_point(20.0, 1260.0)
        ours_batch = ours.kv_usage * fitted.max_kv_tokens() / 1260.0
        assert ours.throughput_per_gpu == pytest.approx(
            ours_batch / ours.itl_ms * 1000.0
        )

    def test_best_point_when_infeasible(self, fitted: FittedInterpolator) -> None:
        """A target below one request's ITL returns the one-request point, above it."""
        point = fitted.best_decode_point(1.0, 1000.0)
        assert point.itl_ms > 1.0
        assert point.kv_usage == pytest.approx(1000.0 / fitted.max_kv_tokens())

    def test_best_point_respects_kv_capacity(self) -> None:
        """A loose ITL target is capped by the KV capacity."""
        fit = FittedInterpolator.from_profile(synthetic_profile())
        point = fit.best_decode_point(10_000.0, 5000.0)
        assert point.kv_usage == pytest.approx(1.0)


class TestShape:
    """The curves are monotone, smooth and finite."""

    @given(
        x=st.floats(0, 200_000, allow_nan=False),
        dx=st.floats(1, 10_000, allow_nan=False),
    )
    def test_prefill_monotone(
        self, fitted: FittedInterpolator, x: float, dx: float
    ) -> None:
        """TTFT never decreases with ISL, inside or beyond the profile."""
        assert fitted.prefill_ttft_ms(x + dx) >= fitted.prefill_ttft_ms(x)

    def test_prefill_tangent_beyond_profile(self, fitted: FittedInterpolator) -> None:
        """Beyond the largest profiled ISL, TTFT grows linearly (the tangent)."""
        edge = fitted.prefill.max_isl_tokens
        t0, t1, t2 = (fitted.prefill_ttft_ms(edge + d) for d in (0, 10_000, 20_000))
        assert t2 - t1 == pytest.approx(t1 - t0)

    def test_batch_shares_overhead(self, fitted: FittedInterpolator) -> None:
        """A batch of two prompts costs less than the two prompts one after another."""
        both = fitted.prefill.batch_ms([1000.0, 1000.0])
        apart = 2 * fitted.prefill_ttft_ms(1000.0)
        assert both == pytest.approx(apart - fitted.prefill.overhead_ms)

    @pytest.mark.parametrize("value", [math.nan, math.inf, -5.0])
    def test_queries_stay_finite(
        self, fitted: FittedInterpolator, value: float
    ) -> None:
        """Any input gives a finite answer."""
        assert math.isfinite(fitted.prefill_ttft_ms(value))
        assert math.isfinite(fitted.prefill_throughput_per_gpu(value))
        assert math.isfinite(fitted.decode_itl_ms(value, value))
        assert math.isfinite(fitted.decode_throughput_per_gpu(value, 1000.0))
        assert math.isfinite(fitted.best_decode_point(20.0, value).throughput_per_gpu)


class TestCrossValidation:
    """Held-out errors: the fitted model generalises better than the reference grids."""

    def test_exact_engine_has_no_error(self) -> None:
        """On an engine that follows the model, held-out errors are zero."""
        report = cross_validate(synthetic_profile())
        assert report.prefill.max_abs < 1e-6
        assert report.decode.max_abs < 1e-6

    def test_h200_fitted_beats_reference(self, h200: PerfProfile) -> None:
        """On H200 the fitted model's held-out decode error is under half the grid's."""
        ours = cross_validate(h200, model="fitted")
        reference = cross_validate(h200, ReferenceInterpolator.from_profile)
        assert ours.decode.x.size == 38
        assert ours.decode.mean_abs < 0.08
        assert ours.prefill.mean_abs < 0.06
        assert ours.decode.mean_abs < 0.5 * reference.decode.mean_abs
        assert ours.prefill.mean_abs < reference.prefill.mean_abs

    def test_summary_names_model_and_folds(self, h200: PerfProfile) -> None:
        """The summary names the model, the folds and the error in percent."""
        text = cross_validate(h200, model="fitted").summary()
        assert "fitted: prefill TTFT (leave one ISL out, 17 points)" in text
        assert "leave one context length out" in text
        assert "%" in text
