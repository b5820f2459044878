"""The miss-allowance feedback on its own, and the two components' together."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from dynamo_planner.scalers.feedback import (
    MIN_ALLOWED_MISSES,
    AttainmentFeedback,
    MissFeedback,
    count_missed,
    count_within,
)
from dynamo_planner.values import Observation


def feedback(**options: Any) -> MissFeedback:
    return MissFeedback(name="TTFT", target=0.99, **options)


class TestMissFeedback:
    """Pooling, evidence threshold, step size and bounds."""

    def test_starts_at_the_target(self) -> None:
        """Before any interval the share sized for is the target."""
        f = feedback()
        assert f.sized == pytest.approx(0.99)
        assert f.allowance == pytest.approx(0.01)
        assert f.ceiling == pytest.approx(0.10)

    def test_half_a_step_in_log_scale(self) -> None:
        """No misses: the allowed share grows by sqrt(max_multiple x setpoint)."""
        f = feedback()
        f.observe(2000.0, 0.0)  # allows 20 misses: enough evidence
        expected_share = 0.01 * (0.3 * 0.01 / 0.001) ** 0.5
        assert f.sized == pytest.approx(1.0 - expected_share)

    def test_bounded(self) -> None:
        """Many perfect intervals stop at the ceiling; many bad ones at the target."""
        f = feedback()
        for _ in range(30):
            f.observe(2000.0, 0.0)
        assert f.sized == pytest.approx(0.90)
        for _ in range(30):
            f.observe(2000.0, 200.0)
        assert f.sized == pytest.approx(0.99)

    def test_ceiling_is_at_most_half(self) -> None:
        """A loose target cannot relax below half the requests."""
        f = MissFeedback(name="ITL", target=0.9)
        assert f.ceiling == pytest.approx(0.5)
        for _ in range(30):
            f.observe(2000.0, 0.0)
        assert f.sized == pytest.approx(0.5)

    def test_setpoint_is_reached_in_steady_state(self) -> None:
        """Misses at exactly setpoint x allowance leave the share where it is."""
        f = feedback(window=1)
        for _ in range(3):
            f.observe(2000.0, 0.0)
        before = f.sized
        assert before < 0.99
        for _ in range(5):
            f.observe(10_000.0, 10_000.0 * 0.3 * 0.01)
        assert f.sized == pytest.approx(before)

    def test_pools_the_window(self) -> None:
        """A bad interval stays in the pool for `window` intervals."""
        f = feedback(window=3)
        f.observe(2000.0, 100.0)
        assert f.pooled == (2000.0, 100.0)
        for _ in range(3):
            f.observe(2000.0, 0.0)
        assert f.pooled == (6000.0, 0.0)

    def test_needs_evidence(self) -> None:
        """Fewer pooled requests than MIN_ALLOWED_MISSES / allowance move nothing."""
        f = feedback()
        words = f.observe(MIN_ALLOWED_MISSES / 0.01 - 1.0, 0.0)
        assert f.sized == pytest.approx(0.99)
        assert "too few to judge" in words
        f.observe(1.0, 0.0)
        assert f.sized < 0.99

    def test_bad_counts_are_ignored(self) -> None:
        """Zero or non-finite counts change nothing and say so."""
        f = feedback()
        assert "nothing counted" in f.observe(0.0, 0.0)
        assert "nothing counted" in f.observe(float("nan"), 0.0)
        assert f.pooled == (0, 0)

    def test_target_must_be_a_share(self) -> None:
        """A target outside (0, 1) is refused with its value."""
        with pytest.raises(ValueError, match=r"1\.5"):
            MissFeedback(name="TTFT", target=1.5)


class TestCountWithin:
    """Counts within a bound from cumulative buckets."""

    def test_interpolates_inside_a_bucket(self) -> None:
        """375 is half-way through (250, 500]: half its 16 requests are within."""
        buckets = ((250.0, 80.0), (500.0, 96.0), (1000.0, 100.0))
        assert count_within(buckets, 375.0) == (100.0, 88.0)

    def test_bucket_edges_and_ends(self) -> None:
        """On an edge the bucket counts whole; the first bucket starts at 0; past
        the last finite bound, +Inf holds the rest."""
        buckets = ((250.0, 80.0), (500.0, 96.0), (math.inf, 100.0))
        assert count_within(buckets, 500.0) == (100.0, 96.0)
        assert count_within(buckets, 125.0) == (100.0, 40.0)
        assert count_within(buckets, 9999.0) == (100.0, 96.0)
        assert count_within((), 500.0) == (0.0, 0.0)

    def test_count_missed_prefers_samples(self) -> None:
        """Samples are counted exactly (NaN left out); without them, the buckets."""
        buckets = ((250.0, 80.0), (500.0, 96.0), (math.inf, 100.0))
        assert count_missed((100.0, 600.0, math.nan), buckets, 500.0) == (2.0, 1.0)
        assert count_missed((), buckets, 500.0) == (100.0, 4.0)
        assert count_missed((), (), 500.0) == (0.0, 0.0)


def both(**options: Any) -> AttainmentFeedback:
    return AttainmentFeedback(
        prefill=MissFeedback(name="TTFT", target=0.99, window=1),
        decode=MissFeedback(name="ITL", target=0.99, window=1, max_multiple=1.0),
        **options,
    )


def interval(
    ttft_ms: list[float], itl_ms: list[float], isl: list[float]
) -> Observation:
    return Observation(
        interval_s=60.0,
        num_req=float(len(ttft_ms)),
        ttft_samples_ms=tuple(ttft_ms),
        itl_samples_ms=tuple(itl_ms),
        isl_samples_tokens=tuple(isl),
    )


class TestAttainmentFeedback:
    """TTFT misses to prefill (less the prompts written off), ITL misses to decode."""

    def test_written_off_prompts_are_not_counted_as_misses(self) -> None:
        """2,000 requests, 100 of them too long to meet TTFT alone and missing it, 2
        more missing it: prefill counts 2 misses of 1,900, decode 0 of 2,000."""
        ttft = [900.0] * 102 + [100.0] * 1898
        isl = [90_000.0] * 100 + [1_000.0] * 1900
        fb = both()
        details: dict[str, Any] = {}
        words = fb.observe(
            interval(ttft, [10.0] * 2000, isl),
            ttft_ms=500.0,
            itl_ms=20.0,
            counted_share=lambda lengths: float(np.mean(lengths < 50_000)),
            details=details,
        )
        assert details["observed_ttft_miss_share"] == pytest.approx(2 / 1900)
        assert details["observed_itl_miss_share"] == 0.0
        assert fb.last_missed == pytest.approx({"prefill": 2 / 1900, "decode": 0.0})
        assert len(words) == 2
        assert fb.prefill.pooled == pytest.approx((1900.0, 2.0))
        assert fb.decode.pooled == (2000.0, 0.0)
        # 0.1% missed against 0.3% aimed at: prefill relaxes (counting the 100 written
        # off, 5.1%, it would not); decode (ceiling 1x the allowance) cannot
        assert fb.sized[0] < 0.99
        assert fb.sized[1] == pytest.approx(0.99)

    def test_too_few_requests_count_nothing(self) -> None:
        fb = both(min_requests=20)
        words = fb.observe(
            interval([900.0] * 5, [50.0] * 5, [1_000.0] * 5),
            ttft_ms=500.0,
            itl_ms=20.0,
            counted_share=lambda lengths: 1.0,
            details={},
        )
        assert words == [
            "attainment feedback: too few TTFTs and ITLs observed to count misses"
        ]
        assert fb.last_missed == {}
        assert fb.sized == (pytest.approx(0.99), pytest.approx(0.99))
