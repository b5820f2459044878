"""What a frontend's metrics give of a window's requests: buckets and dispersion."""

from __future__ import annotations

import math

import pytest

from dynamo_planner.sim.frontend_view import (
    MIN_DISPERSION_BINS,
    arrival_dispersion,
    histogram_buckets,
    scraped_dispersion,
)


def test_buckets_are_cumulative_and_weighted() -> None:
    """Each bound counts the weight of the values at or below it; ``inf`` counts all."""
    buckets = dict(
        histogram_buckets(
            [100.0, 200.0, 200.0, 70_000.0], "isl_tokens", weights=[1, 2, 3, 4]
        )
    )
    assert buckets[128.0] == 1
    assert buckets[256.0] == 6
    assert buckets[math.inf] == 10
    counts = [count for _, count in histogram_buckets([5.0, 1.0], "isl_tokens")]
    assert counts == sorted(counts)


def test_no_values_give_no_buckets() -> None:
    """An empty window has no histogram, not a histogram of zeros."""
    assert histogram_buckets([], "ttft_ms", scale=1000.0) == ()


def test_even_arrivals_have_no_dispersion_and_bursts_a_large_one() -> None:
    """One arrival a second gives 0; all of them in one second gives the count less one."""
    even = [i + 0.5 for i in range(20)]
    assert arrival_dispersion(even, 0.0, 20.0) == pytest.approx(0.0)
    burst = [0.1] * 20
    assert arrival_dispersion(burst, 0.0, 20.0) == pytest.approx(19.0)


def test_short_windows_are_unknown() -> None:
    """Fewer whole one-second bins than the minimum give no dispersion."""
    arrivals = [i * 0.1 for i in range(100)]
    assert arrival_dispersion(arrivals, 0.0, MIN_DISPERSION_BINS - 0.5) is None
    assert scraped_dispersion(arrivals, 0.0, 5.0, 1.0) is None


def test_scraped_bursts_read_as_bursty() -> None:
    """A counter scraped every second sees bursts every two seconds as bursty."""
    bursts = [2.0 * k + 0.5 for k in range(30) for _ in range(10)]
    index = scraped_dispersion(bursts, 0.0, 60.0, 1.0)
    assert index is not None
    assert index > 5.0
