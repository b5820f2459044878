"""Observation fields that carry distributions."""

from __future__ import annotations

import math

import pytest

from dynamo_planner.values import Observation


class TestHistogramFields:
    """Cumulative buckets are sorted, made non-decreasing, and checked."""

    def test_sorted_and_monotone(self) -> None:
        """Buckets come back sorted by bound, with a running maximum of counts."""
        obs = Observation(
            interval_s=60.0,
            ttft_histogram_ms=[(math.inf, 100), (250.0, 80), (500.0, 79.5)],
        )
        assert obs.ttft_histogram_ms == (
            (250.0, 80.0),
            (500.0, 80.0),
            (math.inf, 100.0),
        )
        assert Observation(interval_s=60.0).itl_histogram_ms == ()

    def test_length_histograms_are_kept_alike(self) -> None:
        """ISL and OSL buckets get the same sorting and running maximum."""
        obs = Observation(
            interval_s=60.0,
            isl_histogram_tokens=[(math.inf, 10), (512.0, 6), (128.0, 6.5)],
            osl_histogram_tokens=[(256.0, 3)],
        )
        assert obs.isl_histogram_tokens == (
            (128.0, 6.5),
            (512.0, 6.5),
            (math.inf, 10.0),
        )
        assert obs.osl_histogram_tokens == ((256.0, 3.0),)

    @pytest.mark.parametrize(
        "bucket", [(math.nan, 1.0), (10.0, -1.0), (10.0, math.inf)]
    )
    def test_bad_bucket_is_refused(self, bucket: tuple[float, float]) -> None:
        """A NaN bound or a negative or infinite count is refused, naming it."""
        with pytest.raises(ValueError, match="histogram bucket"):
            Observation(interval_s=60.0, itl_histogram_ms=[bucket])
