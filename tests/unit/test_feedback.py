"""The miss-allowance feedback on its own."""

from __future__ import annotations

import math
from typing import Any

import pytest

from dynamo_planner.scalers.feedback import (
    MIN_ALLOWED_MISSES,
    MissFeedback,
    count_missed,
    count_within,
)


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
