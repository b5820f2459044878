"""The request mix on its own: lengths from samples, from histograms, or a stand-in."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_planner.scalers.request_mix import (
    MAX_MIX,
    lengths_from_histogram,
    observed_lengths,
    observed_mix,
    sized_mix,
)
from dynamo_planner.values import Demand, Forecast, Observation

#: 95% short prompts (256 to 512 tokens), 5% long ones (16k to 32k tokens).
HEAVY_TAIL = ((256.0, 0.0), (512.0, 950.0), (16384.0, 950.0), (32768.0, 1000.0), (math.inf, 1000.0))  # fmt: skip
OUTPUTS = ((128.0, 500.0), (256.0, 1000.0), (math.inf, 1000.0))


def share_within(lengths: np.ndarray, bound: float) -> float:
    return float(np.mean(lengths <= bound))


class TestLengthsFromHistogram:
    """Representative lengths at evenly spaced quantiles."""

    def test_the_buckets_shares_are_kept(self) -> None:
        """Each bound has the histogram's share of the lengths at or below it."""
        lengths = lengths_from_histogram(HEAVY_TAIL)
        assert lengths.size == MAX_MIX
        for bound, count in HEAVY_TAIL[:-1]:
            assert share_within(lengths, bound) == pytest.approx(
                count / 1000.0, abs=1e-3
            )

    def test_uniform_within_a_bucket(self) -> None:
        """Lengths spread evenly over a bucket, from 0 below the first bound."""
        lengths = lengths_from_histogram(((1000.0, 10.0), (math.inf, 10.0)), size=4)
        assert lengths.tolist() == [125.0, 375.0, 625.0, 875.0]

    def test_the_open_bucket_meets_the_mean(self) -> None:
        """The +Inf bucket's lengths are spread so that all of them have the mean."""
        buckets = ((1000.0, 90.0), (math.inf, 100.0))
        lengths = lengths_from_histogram(buckets, mean=1450.0)
        assert float(np.mean(lengths)) == pytest.approx(1450.0, rel=1e-2)
        assert share_within(lengths, 1000.0) == pytest.approx(0.9, abs=1e-3)
        assert lengths.max() > 1000.0

    def test_the_open_bucket_without_a_mean(self) -> None:
        """Without a mean, the +Inf bucket's share sits at the last finite bound."""
        lengths = lengths_from_histogram(((1000.0, 90.0), (math.inf, 100.0)))
        assert lengths.max() == pytest.approx(1000.0)
        assert share_within(lengths, 999.0) == pytest.approx(0.9, abs=1e-3)

    @pytest.mark.parametrize(
        "buckets", [(), ((100.0, 0.0), (math.inf, 0.0))], ids=["empty", "no count"]
    )
    def test_nothing_counted_gives_no_lengths(
        self, buckets: tuple[tuple[float, float], ...]
    ) -> None:
        """A histogram that counted nothing gives no lengths (unknown, not zero)."""
        assert lengths_from_histogram(buckets).size == 0

    @given(
        st.lists(st.floats(0.0, 1e4), min_size=1, max_size=8),
        st.floats(1.0, 1e5) | st.none(),
        st.integers(1, 64),
    )
    def test_sorted_and_in_proportion(
        self, counts: list[float], mean: float | None, size: int
    ) -> None:
        """Lengths are non-decreasing and non-negative, and below each finite bound lie
        the histogram's share of them, to within one length."""
        bounds = [2.0**k * 16 for k in range(len(counts))]
        cumulative = np.cumsum(counts).tolist()
        total = cumulative[-1] + 1.0
        buckets = (*zip(bounds, cumulative, strict=True), (math.inf, total))
        lengths = lengths_from_histogram(buckets, mean=mean, size=size)
        assert lengths.size == size
        assert np.all(np.diff(lengths) >= -1e-9)
        assert lengths.min() >= 0.0
        for bound, count in zip(bounds, cumulative, strict=True):
            below = float(np.mean(lengths < bound))
            assert below == pytest.approx(count / total, abs=1.0 / size + 1e-9)
        if mean is None:
            assert lengths.max() <= bounds[-1]


def demand() -> Demand:
    return Demand(
        interval_s=60.0,
        num_req=Forecast.point(1200.0),
        isl_tokens=Forecast.point(2000.0),
        osl_tokens=Forecast.point(160.0),
    )


class TestMixFromHistograms:
    """Without per-request samples, the frontend's histograms give the mix."""

    def test_sized_mix_draws_from_the_histograms(self) -> None:
        """The mix keeps the histogram's shape, scaled to the mean sized for."""
        seen = Observation(
            interval_s=60.0,
            num_req=1000.0,
            isl_tokens=1590.0,
            osl_tokens=160.0,
            isl_histogram_tokens=HEAVY_TAIL,
            osl_histogram_tokens=OUTPUTS,
        )
        mix = sized_mix(demand(), seen)
        assert "ISL and OSL histograms" in mix.words
        assert float(np.mean(mix.isl)) == pytest.approx(2000.0, rel=1e-6)
        # 5% of the prompts are the long ones, scaled with the rest
        assert float(np.quantile(mix.isl, 0.96)) > 10 * float(np.median(mix.isl))
        # outputs are not paired with inputs by rank
        assert abs(float(np.corrcoef(mix.isl, mix.osl)[0, 1])) < 0.2

    def test_samples_come_first(self) -> None:
        """Per-request samples are used over the histograms."""
        seen = Observation(
            interval_s=60.0,
            num_req=3.0,
            isl_tokens=200.0,
            osl_tokens=20.0,
            isl_samples_tokens=(100.0, 200.0, 300.0),
            osl_samples_tokens=(10.0, 20.0, 30.0),
            isl_histogram_tokens=HEAVY_TAIL,
            osl_histogram_tokens=OUTPUTS,
        )
        isl, osl = observed_lengths(seen)
        assert (isl.tolist(), osl.tolist()) == (
            [100.0, 200.0, 300.0],
            [10.0, 20.0, 30.0],
        )
        mix = observed_mix(seen)
        assert mix is not None
        assert mix.words == "observed: the last observation"

    def test_neither_gives_the_stand_in(self) -> None:
        """No samples and no histograms: an exponential mix around the means."""
        seen = Observation(
            interval_s=60.0, num_req=1000.0, isl_tokens=1590.0, osl_tokens=160.0
        )
        mix = sized_mix(demand(), seen)
        assert "exponential mix" in mix.words
        observed = observed_mix(seen)
        assert observed is not None
        assert observed.words == "observed means"
