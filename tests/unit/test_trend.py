"""The count series' statistics on their own: slope, trend, rising, falling, spread, turn."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_planner.scalers.trend import (
    falling,
    increase_spread,
    rising,
    slope,
    trend,
    turned,
)

counts = st.lists(
    st.floats(min_value=0.0, max_value=1e5, allow_nan=False), min_size=0, max_size=12
)


class TestSlope:
    """The least-squares line through the points."""

    def test_a_line_has_its_slope_and_no_error(self) -> None:
        """Points on a line give that line's slope with a zero standard error."""
        fitted, se = slope([100.0 + 25.0 * i for i in range(6)])
        assert fitted == pytest.approx(25.0)
        assert se == pytest.approx(0.0, abs=1e-9)

    def test_agrees_with_numpy(self) -> None:
        """Slope and standard error match a direct least-squares fit."""
        y = np.array([3.0, 7.0, 4.0, 9.0, 8.0, 12.0])
        x = np.arange(y.size, dtype=np.float64)
        (b, _), cov = np.polyfit(x, y, 1, cov="unscaled")
        residual = y - np.polyval([b, _], x)
        sigma2 = float(np.sum(residual**2)) / (y.size - 2)
        fitted, se = slope(y.tolist())
        assert fitted == pytest.approx(b)
        assert se == pytest.approx(math.sqrt(sigma2 * cov[0, 0]))

    @pytest.mark.parametrize("values", [[], [5.0]])
    def test_too_few_points_give_no_slope(self, values: list[float]) -> None:
        """Under two points there is no slope and no error."""
        assert slope(values) == (0.0, 0.0)

    def test_two_points_give_the_difference(self) -> None:
        """Two points: the exact difference, with no error known."""
        assert slope([10.0, 14.0]) == (4.0, 0.0)


class TestTrend:
    """The slope less its noise."""

    @given(counts)
    def test_never_larger_than_the_slope(self, values: list[float]) -> None:
        """The trend has the slope's sign (or is 0) and at most its size."""
        fitted, _ = slope(values)
        found = trend(values)
        assert abs(found) <= abs(fitted) + 1e-9
        assert found == 0.0 or math.copysign(1.0, found) == math.copysign(1.0, fitted)

    def test_scatter_is_no_trend(self) -> None:
        """A slope within one standard error gives no trend."""
        fitted, se = slope([10.0, 14.0, 9.0, 13.0])
        assert 0 < fitted < se
        assert trend([10.0, 14.0, 9.0, 13.0]) == 0.0

    def test_a_clear_trend_is_kept_nearly_whole(self) -> None:
        """At three standard errors 94% of the slope is kept."""
        values = [0.0, 10.0, 14.0, 30.0, 38.0, 50.0]
        fitted, se = slope(values)
        assert fitted / se > 3.0
        assert 0.94 * fitted <= trend(values) < fitted


class TestRisingFalling:
    """The ramp and fall tests."""

    @given(counts, st.floats(min_value=0.0, max_value=5.0))
    def test_never_both(self, values: list[float], t: float) -> None:
        """No series is clearly rising and clearly falling at once."""
        assert not (rising(values, t) and falling(values, t))

    def test_a_steady_climb_rises(self) -> None:
        """A climb well above its noise passes the ramp test; its mirror falls."""
        values = [100.0, 110.0, 118.0, 131.0, 140.0, 149.0]
        assert rising(values)
        assert falling(values[::-1])
        assert not falling(values)

    def test_a_higher_bar_holds_back_a_noisy_climb(self) -> None:
        """A climb at about 2.5 standard errors passes at t=2 but not at t=3."""
        values = [100.0, 130.0, 112.0, 140.0, 124.0, 150.0]
        fitted, se = slope(values)
        assert 2.0 < fitted / se < 3.0
        assert rising(values, 2.0)
        assert not rising(values, 3.0)

    def test_two_points_rise_but_never_fall(self) -> None:
        """Any rise of two points counts; a fall needs three points."""
        assert rising([10.0, 11.0])
        assert not falling([11.0, 10.0])


class TestIncreaseSpread:
    """The band of a forecast that has none."""

    def test_the_quantile_of_the_changes(self) -> None:
        """The median of +10, -5, +20 is +10."""
        assert increase_spread([100.0, 110.0, 105.0, 125.0], 0.5) == pytest.approx(10.0)

    def test_falls_alone_add_nothing(self) -> None:
        """A series that only falls has no increase to add."""
        assert increase_spread([50.0, 40.0, 30.0], 0.9) == 0.0

    @given(counts, st.floats(0.0, 1.0), st.floats(0.0, 1.0))
    def test_grows_with_the_quantile(
        self, values: list[float], low: float, high: float
    ) -> None:
        """A higher quantile never gives a smaller spread."""
        low, high = sorted((low, high))
        assert increase_spread(values, low) <= increase_spread(values, high) + 1e-9


class TestTurned:
    """A fall of the last count beyond two draws' noise."""

    def test_the_azure_peak_turns(self) -> None:
        """Azure x10 at 180 s: the slope over six intervals still rises by five
        standard errors, but 13,387 then 13,078 requests is a fall of 1.8 standard
        deviations at Ca² 1.13, a turn at one but not at two."""
        counts = [9823.0, 10725.0, 12032.0, 13018.0, 13387.0, 13078.0]
        assert rising(counts)
        assert turned(counts, 1.13)
        assert not turned(counts, 1.13, z=2.0)

    def test_burstier_arrivals_need_a_larger_fall(self) -> None:
        """The noise grows with the index of dispersion."""
        assert turned([1000.0, 940.0], 1.0)
        assert not turned([1000.0, 940.0], 4.0)

    @given(counts, st.floats(0.0, 20.0), st.floats(0.0, 5.0))
    def test_a_rise_never_turns(
        self, values: list[float], dispersion: float, z: float
    ) -> None:
        """Only a fall of the last count can be a turn; one count is none."""
        if len(values) < 2 or values[-1] >= values[-2]:
            assert not turned(values, dispersion, z)

    @given(counts, st.floats(0.0, 20.0), st.floats(0.0, 20.0), st.floats(0.0, 5.0))
    def test_more_noise_turns_less(
        self, values: list[float], low: float, high: float, z: float
    ) -> None:
        """A turn at a higher dispersion is a turn at a lower one."""
        low, high = sorted((low, high))
        if turned(values, high, z):
            assert turned(values, low, z)
