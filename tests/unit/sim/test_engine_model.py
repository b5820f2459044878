"""Tests of the simulator's engine model (prefill batch time, decode step time)."""

from __future__ import annotations

import attrs
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_planner.exceptions import ProfileError
from dynamo_planner.sim.engine_model import EngineModel
from dynamo_planner.values import DecodeProfile, PerfProfile, PrefillProfile


def tiny_profile(ttft: list[float] | None = None) -> PerfProfile:
    return PerfProfile(
        prefill=PrefillProfile(
            isl_tokens=[100, 1000, 2000],
            ttft_ms=ttft or [10, 20, 40],
            throughput_per_gpu=[1, 1, 1],
        ),
        decode=DecodeProfile(
            kv_usage=[1 * 1000 / 100000, 11 * 1000 / 100000, 1 * 3000 / 100000],
            context_length_tokens=[1000, 1000, 3000],
            itl_ms=[5, 15, 6],
            throughput_per_gpu=[1, 1, 1],
            max_kv_tokens=100000,
        ),
        source="tiny",
    )


class TestPrefill:
    """Prefill batch time."""

    def test_clamped_below_and_extrapolated_above(self) -> None:
        """Below the profile the first TTFT holds; above it grows on the upper secant."""
        model = EngineModel.from_profile(tiny_profile())
        assert model.prefill_ms(10) == 10
        # secant from the middle point (1000, 20) to the last (2000, 40): 0.02 ms/token
        assert model.prefill_ms(3000) == pytest.approx(60)

    def test_clamp_beyond_profile(self) -> None:
        """With the reference-style clamp, time stays at the last point beyond it."""
        model = EngineModel.from_profile(tiny_profile(), prefill_beyond="clamp")
        assert model.prefill_ms(3000) == 40
        assert float(model.prefill_ms_array([3000.0])[0]) == 40
        with pytest.raises(ValueError, match="prefill_beyond"):
            EngineModel.from_profile(tiny_profile(), prefill_beyond="cubic")

    def test_array_matches_scalar(self, model: EngineModel) -> None:
        """The vectorised prefill model gives the scalar model's values."""
        x = np.linspace(0, 40000, 301)
        expected = [model.prefill_ms(v) for v in x]
        np.testing.assert_allclose(model.prefill_ms_array(x), expected, rtol=1e-12)

    @given(a=st.floats(0, 50000), b=st.floats(0, 50000))
    def test_monotone_on_monotone_profile(
        self, model: EngineModel, a: float, b: float
    ) -> None:
        """More tokens never take less time (the bundled profile is increasing)."""
        lo, hi = sorted((a, b))
        assert model.prefill_ms(lo) <= model.prefill_ms(hi)

    def test_rejects_bad_profile(self) -> None:
        """A non-positive TTFT is a profile error naming the array."""
        with pytest.raises(ProfileError, match="prefill_ttft"):
            EngineModel.from_profile(tiny_profile([10, 0, 40]))


class TestDecode:
    """Decode step time."""

    def test_linear_in_concurrency_and_context(self) -> None:
        """Between points: linear in concurrency per context, then linear in context."""
        model = EngineModel.from_profile(tiny_profile())
        assert model.decode_step_ms(6, 1000) == pytest.approx(10)
        # context 3000 has one point: constant 6
        assert model.decode_step_ms(6, 3000) == pytest.approx(6)
        assert model.decode_step_ms(6, 2000) == pytest.approx(8)
        # below the contexts: the smallest context's curve
        assert model.decode_step_ms(6, 500) == pytest.approx(10)

    def test_kv_read_beyond_largest_context(self) -> None:
        """Past the largest context each request reads its extra KV, on the secant."""
        model = EngineModel.from_profile(tiny_profile())
        # secant from context 1000 (5 ms at one request) to 3000 (6 ms): 1 ms over
        # 2000 tokens for one request
        assert model.decode_kv_slope_ms == pytest.approx(5e-4)
        # 6 requests, 6000 tokens past 3000: 6 + 5e-4 x 6 x 6000
        assert model.decode_step_ms(6, 9000) == pytest.approx(24)
        assert model.decode_step_ms_whole(6, 9000) == pytest.approx(24)
        assert float(model.decode_step_ms_array(6, 9000)) == pytest.approx(24)

    def test_one_context_array_matches_scalar(self) -> None:
        """With a single profiled context, the array path adds the KV read too."""
        model = attrs.evolve(
            EngineModel.from_profile(tiny_profile()),
            decode_curves=EngineModel.from_profile(tiny_profile()).decode_curves[1:],
            decode_kv_slope_ms=5e-4,
        )
        assert model.decode_step_ms(6, 9000) == pytest.approx(24)
        assert float(model.decode_step_ms_array(6, 9000)) == pytest.approx(24)

    def test_clamp_beyond_largest_context(self) -> None:
        """With the clamp, the largest context's curve holds past it."""
        model = EngineModel.from_profile(tiny_profile(), decode_beyond="clamp")
        assert model.decode_kv_slope_ms == 0
        assert model.decode_step_ms(6, 9000) == pytest.approx(6)
        assert float(model.decode_step_ms_array(6, 9000)) == pytest.approx(6)
        with pytest.raises(ValueError, match="decode_beyond"):
            EngineModel.from_profile(tiny_profile(), decode_beyond="flat")

    @given(n=st.integers(1, 300), a=st.floats(1, 60000), b=st.floats(1, 60000))
    def test_more_context_never_faster_beyond_profile(
        self, model: EngineModel, n: int, a: float, b: float
    ) -> None:
        """Past the largest profiled context, a longer context never steps faster."""
        last = model.decode_contexts_tokens[-1]
        lo, hi = sorted((last + a, last + b))
        assert model.decode_step_ms(n, lo) <= model.decode_step_ms(n, hi)

    def test_extrapolates_beyond_last_concurrency(self) -> None:
        """Beyond the last measured concurrency the ITL grows on the upper secant."""
        model = EngineModel.from_profile(tiny_profile())
        assert model.decode_step_ms(21, 1000) == pytest.approx(25)

    @given(n=st.integers(1, 5000), ctx=st.floats(1, 30000))
    def test_fast_path_and_array_agree(
        self, model: EngineModel, n: int, ctx: float
    ) -> None:
        """The whole-number fast path and the array path equal the scalar model."""
        expected = model.decode_step_ms(n, ctx)
        assert model.decode_step_ms_whole(n, ctx) == pytest.approx(expected, rel=1e-12)
        assert float(model.decode_step_ms_array(n, ctx)) == pytest.approx(
            expected, rel=1e-12
        )

    @given(n=st.integers(1, 3000), ctx=st.floats(1, 30000))
    def test_positive(self, model: EngineModel, n: int, ctx: float) -> None:
        """A step always takes a positive time, at least the fastest measured step."""
        assert model.decode_step_ms(n, ctx) >= min(
            min(c.itl_ms) for c in model.decode_curves
        )
