"""The share of a forecast band that is not the next interval's own sampling noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo_planner.scalers.sampling_noise import (
    MIN_CHANGES,
    MIN_KEPT,
    SamplingNoise,
    kept_share,
)


class TestKeptShare:
    """``sqrt(1 - noise / var(changes))`` within ``[sqrt(1/2), 1]``."""

    def test_formula(self) -> None:
        """Changes of variance 212.5 with noise 100 keep sqrt(1 - 100/212.5)."""
        values = [100.0, 110.0, 90.0, 105.0, 95.0, 100.0]
        assert kept_share(values, 100.0) == pytest.approx(math.sqrt(1 - 100 / 212.5))

    def test_pure_poisson_counts_keep_about_one_draw(self) -> None:
        """Poisson counts at a steady rate: one of a change's two draws is removed."""
        rng = np.random.default_rng(0)
        counts = rng.poisson(1000.0, 400).astype(float).tolist()
        kept = kept_share(counts, 1000.0)
        assert kept == pytest.approx(MIN_KEPT, abs=0.05)

    def test_real_changes_keep_most(self) -> None:
        """Swings far above the draw keep nearly the whole band."""
        counts = [1000.0, 3000.0, 1200.0, 2800.0, 900.0, 3100.0, 1000.0]
        assert kept_share(counts, 1000.0) > 0.99

    def test_never_below_half_the_variance(self) -> None:
        """Noise above the changes' variance removes one draw, not more."""
        assert kept_share([10.0, 11.0, 10.0, 11.0, 10.0, 11.0], 1e6) == MIN_KEPT

    @pytest.mark.parametrize(
        ("values", "noise"),
        [
            ([100.0] * MIN_CHANGES, 100.0),
            ([100.0, 120.0, 90.0, 130.0, 80.0, 100.0], 0.0),
            ([100.0, 120.0, 90.0, 130.0, 80.0, 100.0], math.nan),
            ([100.0, 120.0, 90.0, 130.0, 80.0, math.inf], 100.0),
        ],
    )
    def test_whole_band_without_evidence(
        self, values: list[float], noise: float
    ) -> None:
        """Too few changes, no noise or no finite variance keep the band whole."""
        assert kept_share(values, noise) == 1.0

    @settings(max_examples=100, deadline=None)
    @given(
        values=st.lists(st.floats(0.0, 1e5), min_size=0, max_size=30),
        noise=st.floats(0.0, 1e6),
    )
    def test_bounded(self, values: list[float], noise: float) -> None:
        """The share is always within [MIN_KEPT, 1]."""
        assert MIN_KEPT <= kept_share(values, noise) <= 1.0

    @settings(max_examples=100, deadline=None)
    @given(
        values=st.lists(st.floats(0.0, 1e5), min_size=MIN_CHANGES + 1, max_size=30),
        noise=st.floats(1.0, 1e5),
        more=st.floats(1.0, 10.0),
    )
    def test_more_noise_never_keeps_more(
        self, values: list[float], noise: float, more: float
    ) -> None:
        """A larger draw never keeps a larger share of the band."""
        assert kept_share(values, noise * more) <= kept_share(values, noise) + 1e-12


class TestSamplingNoise:
    """Recording intervals and the shares kept per series."""

    def test_counts_use_the_dispersion(self) -> None:
        """A burstier draw (larger Ca²) removes more of the count's band."""
        noise = SamplingNoise()
        for count in (1000.0, 1040.0, 970.0, 1030.0, 980.0, 1020.0, 990.0):
            noise.record(count)
        poisson, bursty = noise.kept_count(1.0), noise.kept_count(3.0)
        assert MIN_KEPT <= bursty < poisson < 1.0

    def test_lengths_use_the_samples_variance_over_the_count(self) -> None:
        """A mean over 200 lengths of sd 1000 varies by 1000²/200 = 5000."""
        rng = np.random.default_rng(1)
        noise = SamplingNoise()
        means = [1000.0, 1100.0, 950.0, 1080.0, 920.0, 1050.0, 990.0]
        samples = rng.normal(1000.0, 1000.0, 2000)
        osls = (100.0, 900.0, 150.0, 800.0, 120.0, 950.0, 90.0)
        for mean, osl in zip(means, osls, strict=True):
            noise.record(200.0, mean, osl, samples, samples / 5)
        variance = float(np.var(np.diff(means), ddof=1))
        draw = float(np.var(samples, ddof=1)) / 200
        expected = math.sqrt(max(0.5, 1 - draw / variance))
        assert noise.kept_isl() == pytest.approx(expected)
        assert expected < 1.0
        # the OSL means swing far more than their draw: nearly the whole band is kept
        assert noise.kept_osl() > 0.99

    def test_unknown_values_are_not_recorded(self) -> None:
        """NaN counts, and means without two samples, leave their series untouched."""
        noise = SamplingNoise()
        for _ in range(10):
            noise.record(math.nan, 1000.0, 200.0, np.ones(10), np.ones(10))
        assert noise.kept_count(1.0) == 1.0
        for mean in (1000.0, 2000.0, 500.0, 1500.0, 800.0, 1700.0, 900.0):
            noise.record(100.0, mean, None, np.array([mean]), None)
        assert noise.kept_isl() == 1.0
        assert noise.kept_osl() == 1.0

    def test_window_forgets_old_intervals(self) -> None:
        """Only the last ``intervals`` are kept: an old swing stops counting."""
        noise = SamplingNoise(intervals=8)
        for count in (100.0, 5000.0, 100.0, 5000.0, 100.0, 5000.0):
            noise.record(count)
        assert noise.kept_count(1.0) > 0.99
        for count in (1000.0, 1030.0, 975.0, 1020.0, 985.0, 1010.0, 990.0, 1005.0):
            noise.record(count)
        assert noise.kept_count(1.0) == MIN_KEPT
