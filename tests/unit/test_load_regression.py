"""Tests for the load-based online regression (spec §4.3, conformance cases §11.3)."""

from __future__ import annotations

import pytest

from dynamo_planner.exceptions import ConfigError
from dynamo_planner.scalers.load_regression import LinearFit, LoadRegression


def _fed(points: list[tuple[float, float]], **kwargs: int) -> LoadRegression:
    regression = LoadRegression(**kwargs)
    for x, y in points:
        regression.observe(x, y)
    return regression


class TestConformance:
    """The regression cases R1 to R7 of spec §11.3, snapshot B."""

    def test_r1_no_data(self) -> None:
        """Without data the regression is not ready and the reverse solve gives None."""
        regression = LoadRegression(window=50, min_observations=5)
        assert not regression.has_sufficient_data()
        assert regression.predict_x_from_sla(100) is None
        assert regression.slope is None
        assert regression.intercept is None

    def test_r2_reverse_solve(self) -> None:
        """With y = 2x + 10 on x = 1..5 the load at 100 ms is 45."""
        regression = _fed([(x, 2 * x + 10) for x in range(1, 6)], min_observations=3)
        assert regression.predict_x_from_sla(100) == pytest.approx(45, abs=0.5)

    def test_r3_clamped_to_zero(self) -> None:
        """A target below the intercept gives 0, not the negative crossing (-9.5)."""
        regression = _fed([(x, 10 * x + 100) for x in range(1, 6)])
        assert regression.predict_x_from_sla(5) == 0.0
        fit = regression.fit()
        assert fit is not None
        assert fit.solve(5).clamped

    def test_r4_slope_and_intercept(self) -> None:
        """y = 3x + 5 is recovered: slope 3, intercept 5."""
        regression = _fed([(x, 3 * x + 5) for x in range(1, 6)])
        assert regression.slope == pytest.approx(3, abs=0.01)
        assert regression.intercept == pytest.approx(5, abs=0.01)

    def test_r5_sliding_window(self) -> None:
        """A window of 5 keeps the last 5 of 10 observations."""
        regression = _fed([(x, 2 * x) for x in range(10)], window=5)
        assert regression.num_observations == 5
        fit = regression.fit()
        assert fit is not None
        assert fit.x == (5.0, 6.0, 7.0, 8.0, 9.0)

    def test_r6_negative_slope_fallback_min_load(self) -> None:
        """y = 100 - 2x with target 50: no point under target, so the smallest load, 1."""
        regression = _fed([(x, 100 - 2 * x) for x in range(1, 6)])
        fit = regression.fit()
        assert fit is not None
        solution = fit.solve(50)
        assert solution.load == 1.0
        assert solution.method == "fallback_min_load"

    def test_r7_negative_slope_fallback_below_target(self) -> None:
        """Same data with target 95: the smallest load with latency under 95 is 3."""
        regression = _fed([(x, 100 - 2 * x) for x in range(1, 6)])
        fit = regression.fit()
        assert fit is not None
        solution = fit.solve(95)
        assert solution.load == 3.0
        assert solution.method == "fallback_below_target"
        assert regression.predict_x_from_sla(95) == 3.0


class TestLinearFit:
    """The least-squares fit itself."""

    def test_constant_load_has_zero_slope(self) -> None:
        """All-equal loads give slope 0 and the mean latency, like scikit-learn."""
        fit = LinearFit.of([4, 4, 4], [1, 2, 6])
        assert fit.slope == 0.0
        assert fit.intercept == pytest.approx(3.0)

    def test_zero_slope_uses_fallback(self) -> None:
        """A flat line is not inverted: the fallback answers."""
        fit = LinearFit.of([1, 2, 3], [10, 10, 10])
        assert fit.solve(20).method == "fallback_below_target"
        assert fit.solve(20).load == 1.0

    def test_vanishing_slope_uses_fallback(self) -> None:
        """A slope too small to divide by (found by Hypothesis) is a flat line: the
        solve falls back instead of returning an infinite load."""
        fit = LinearFit.of([0.0, 1.0], [0.0, 2.2250738585072e-309])
        assert 0 < fit.slope < 1e-300
        solution = fit.solve(1.0)
        assert solution.method == "fallback_below_target"
        assert solution.load == 0.0

    def test_fallback_clamps_negative_loads(self) -> None:
        """The fallback never returns a negative load."""
        fit = LinearFit.of([-3, -1], [50, 40])
        assert fit.solve(10).load == 0.0

    def test_matches_numpy_polyfit(self) -> None:
        """The fit equals numpy's degree-1 polyfit on noisy data."""
        import numpy as np

        rng = np.random.default_rng(7)
        x = rng.uniform(0, 5000, 40)
        y = 0.1 * x + 100 + rng.normal(0, 5, 40)
        fit = LinearFit.of(x, y)
        slope, intercept = np.polyfit(x, y, 1)
        assert fit.slope == pytest.approx(slope, rel=1e-9)
        assert fit.intercept == pytest.approx(intercept, rel=1e-9)

    @pytest.mark.parametrize(
        ("x", "y"), [([], []), ([1, 2], [1]), ([1, float("nan")], [1, 2])]
    )
    def test_rejects_bad_points(self, x: list[float], y: list[float]) -> None:
        """Empty, mismatched or non-finite points are a ValueError."""
        with pytest.raises(ValueError, match="loads and latencies"):
            LinearFit.of(x, y)


class TestLoadRegression:
    """The sliding window around the fit."""

    def test_refits_after_new_observation(self) -> None:
        """The cached fit is replaced once a new observation arrives."""
        regression = _fed([(x, 2 * x) for x in range(5)])
        first = regression.fit()
        assert regression.fit() is first
        regression.observe(10, 100)
        second = regression.fit()
        assert second is not first
        assert second is not None
        assert second.num_observations == 6

    def test_rejects_non_finite_observation(self) -> None:
        """A NaN latency is refused, not stored."""
        regression = LoadRegression()
        with pytest.raises(ValueError, match="finite"):
            regression.observe(1.0, float("nan"))
        assert regression.num_observations == 0

    def test_min_observations_above_window_is_config_error(self) -> None:
        """A regression that could never be ready is a ConfigError naming the field."""
        with pytest.raises(ConfigError) as info:
            LoadRegression(window=3, min_observations=5)
        assert info.value.field == "loadbased_min_observations"

    def test_window_must_be_positive(self) -> None:
        """A zero window is a ConfigError naming the field."""
        with pytest.raises(ConfigError) as info:
            LoadRegression(window=0, min_observations=1)
        assert info.value.field == "window"
