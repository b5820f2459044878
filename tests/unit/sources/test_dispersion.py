"""The arrivals' index of dispersion from a request counter's samples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_planner.sources.dispersion import (
    MAX_SCRAPE_S,
    MIN_INCREMENTS,
    counter_increments,
    counter_samples,
    index_of_dispersion,
    interval_dispersion,
)

Samples = list[tuple[float, float]]


def counter(
    increments: np.ndarray, scrape_s: float = 1.0, start: float = 0.0
) -> Samples:
    """A counter's samples, one scrape every ``scrape_s``, rising by ``increments``."""
    values = start + np.concatenate(([0.0], np.cumsum(increments)))
    return [(i * scrape_s, float(v)) for i, v in enumerate(values)]


def poisson_estimates(rates: np.ndarray, repeats: int = 300) -> np.ndarray:
    rng = np.random.default_rng(7)
    found = [
        index_of_dispersion([counter(rng.poisson(rates).astype(float))])
        for _ in range(repeats)
    ]
    return np.array(found, dtype=float)


class TestIndexOfDispersion:
    @pytest.mark.parametrize("rate", [2.0, 40.0])
    def test_poisson_arrivals_give_one(self, rate: float) -> None:
        estimates = poisson_estimates(np.full(60, rate))
        assert estimates.mean() == pytest.approx(1.0, abs=0.05)

    def test_a_ramp_is_not_burstiness(self) -> None:
        """Poisson arrivals whose rate triples over the interval still give about 1."""
        estimates = poisson_estimates(np.linspace(10.0, 30.0, 60))
        assert estimates.mean() == pytest.approx(1.0, abs=0.05)

    def test_bursts_give_more_and_regular_arrivals_less(self) -> None:
        bursts = np.tile([0.0, 0.0, 0.0, 20.0], 15)  # 20 requests every 4 s
        regular = np.full(60, 5.0)
        assert index_of_dispersion([counter(bursts)]) == pytest.approx(
            np.var(bursts) / np.mean(bursts), rel=0.05
        )
        assert index_of_dispersion([counter(regular)]) == pytest.approx(0.0)

    def test_a_reset_counter_counts_from_zero(self) -> None:
        """A restarted frontend's counter starts again from 0; no negative count."""
        before = counter(np.full(8, 5.0), start=1000.0)
        after = [(t + 8.0, v) for t, v in counter(np.full(8, 5.0))[1:]]
        increments, _, _ = counter_increments(before + after)
        assert increments == [5.0] * 16
        assert index_of_dispersion([before + after]) == pytest.approx(0.0, abs=0.02)

    def test_a_missed_scrape_is_one_increment_over_two_intervals(self) -> None:
        """A gap in the scrapes does not read as a burst."""
        samples = counter(np.full(20, 5.0))
        del samples[10]
        assert index_of_dispersion([samples]) == pytest.approx(0.0, abs=1e-9)

    def test_counters_pool_as_independent_streams(self) -> None:
        rng = np.random.default_rng(3)
        estimates = [
            index_of_dispersion(
                [
                    counter(rng.poisson(3.0, 30).astype(float)),
                    counter(rng.poisson(30.0, 30).astype(float), scrape_s=2.0),
                ]
            )
            for _ in range(300)
        ]
        assert np.mean(estimates) == pytest.approx(1.0, abs=0.05)

    def test_too_few_increments_or_no_arrival_is_unknown(self) -> None:
        assert index_of_dispersion([counter(np.full(MIN_INCREMENTS - 1, 5.0))]) is None
        assert index_of_dispersion([counter(np.zeros(30))]) is None
        assert index_of_dispersion([]) is None
        # two counters of five increments each reach the minimum together
        pair = [counter(np.array([4.0, 6.0] * 3)), counter(np.array([6.0, 4.0] * 3))]
        assert index_of_dispersion(pair) is not None

    def test_scrapes_too_far_apart_are_not_used(self) -> None:
        """Counted over long windows the index carries the rate's swings: unknown."""
        bursts = np.tile([0.0, 20.0], 15)
        assert index_of_dispersion([counter(bursts, scrape_s=MAX_SCRAPE_S)]) is not None
        assert index_of_dispersion([counter(bursts, scrape_s=5.0)]) is None
        assert index_of_dispersion(
            [counter(bursts, scrape_s=5.0)], max_scrape_s=5.0
        ) == pytest.approx(np.var(bursts) / np.mean(bursts), rel=0.1)

    def test_non_finite_and_repeated_samples_are_left_out(self) -> None:
        samples = counter(np.full(20, 5.0))
        noisy = [*samples[:5], (4.0, 99.0), (5.5, float("nan")), *samples[5:]]
        assert index_of_dispersion([noisy]) == pytest.approx(0.0, abs=1e-9)

    @given(
        st.lists(st.integers(0, 50), min_size=MIN_INCREMENTS, max_size=60),
        st.integers(2, 10),
    )
    def test_counts_k_times_larger_give_k_times_the_index(
        self, increments: list[int], k: int
    ) -> None:
        """Variance over mean scales with the unit counted (a property of the index)."""
        base = index_of_dispersion([counter(np.array(increments, dtype=float))])
        scaled = index_of_dispersion([counter(k * np.array(increments, dtype=float))])
        if base is None:
            assert scaled is None
        else:
            assert scaled == pytest.approx(k * base, rel=1e-6, abs=1e-9)


class TestCounterSamples:
    def test_counts_up_to_each_scrape(self) -> None:
        """Each scrape counts the arrivals at or before it; the window's start is left out."""
        samples = counter_samples([0.5, 1.0, 1.5, 3.2], 0.0, 3.0, 1.0)
        assert samples == [(1.0, 2.0), (2.0, 3.0), (3.0, 3.0)]

    def test_matches_the_simulators_scraped_view(self) -> None:
        """The simulator's frontend view reads the same counter."""
        from dynamo_planner.sim.frontend_view import scraped_dispersion

        arrivals = np.cumsum(np.random.default_rng(3).exponential(0.05, 2_000))
        samples = counter_samples(arrivals, 10.0, 70.0, 1.0)
        assert scraped_dispersion(arrivals, 10.0, 70.0, 1.0) == index_of_dispersion(
            [samples]
        )


class TestIntervalDispersion:
    def test_poisson_is_one_and_bursts_are_more(self) -> None:
        """Poisson arrivals give about 1 per interval; the same count in bursts far more."""
        rng = np.random.default_rng(11)
        poisson = np.cumsum(rng.exponential(0.1, 12_000))
        bursts = np.repeat(np.arange(0.0, 1_200.0, 5.0), 50)
        calm = interval_dispersion(poisson, 60.0)
        bursty = interval_dispersion(bursts, 60.0)
        assert calm.size == 19
        assert 0.8 < float(np.median(calm)) < 1.2
        assert float(np.min(bursty)) > 20.0

    def test_an_empty_interval_is_unknown(self) -> None:
        """An interval without arrivals is NaN, not zero (or one)."""
        arrivals = np.array([0.0, 1.0, 2.0, 3.0, 130.0, 131.0])
        indices = interval_dispersion(arrivals, 60.0)
        assert indices.size == 2
        assert np.isfinite(indices[0])
        assert np.isnan(indices[1])

    def test_no_arrivals_give_no_intervals(self) -> None:
        """An empty trace has no interval to measure."""
        assert interval_dispersion([], 60.0).size == 0

    @pytest.mark.parametrize(
        ("arrivals", "interval_s", "scrape_s", "match"),
        [
            ([0.0, 1.0], 0.0, 1.0, "positive"),
            ([0.0, 1.0], 60.0, MAX_SCRAPE_S + 1.0, "coarser"),
            ([2.0, 1.0], 60.0, 1.0, "sorted"),
        ],
    )
    def test_bad_input_is_refused(
        self, arrivals: list[float], interval_s: float, scrape_s: float, match: str
    ) -> None:
        """Non-positive lengths, scrapes too coarse and unsorted arrivals name the value."""
        with pytest.raises(ValueError, match=match):
            interval_dispersion(arrivals, interval_s, scrape_s=scrape_s)
