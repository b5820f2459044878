"""Tests of the Kalman predictor (spec §3.4, §11.7, issue #14493)."""

from __future__ import annotations

import numpy as np
import pytest

from dynamo_planner.config import PlannerConfig
from dynamo_planner.predictors.kalman import KalmanPredictor


def _reference_levels(
    values: list[float], q_level: float, q_trend: float, r: float
) -> list[float]:
    """The reference filter in plain numpy: the forecast after each value."""
    f = np.array([[1.0, 1.0], [0.0, 1.0]])
    h = np.array([[1.0, 0.0]])
    q = np.diag([q_level, q_trend])
    x = np.array([[values[0]], [0.0]])
    p = np.eye(2) * 1000.0
    out = [float((f @ x)[0, 0])]
    for z in values[1:]:
        x, p = f @ x, f @ p @ f.T + q
        s = (h @ p @ h.T)[0, 0] + r
        k = p @ h.T / s
        x = x + k * (z - (h @ x)[0, 0])
        p = (np.eye(2) - k @ h) @ p
        out.append(float((f @ x)[0, 0]))
    return out


class TestKalmanSpec:
    """The Kalman cases of spec §11.7 and the reference filter."""

    def test_uninitialised_is_zero(self) -> None:
        """Nothing observed forecasts 0."""
        assert KalmanPredictor().predict().value == 0.0

    def test_predict_twice_is_identical(self) -> None:
        """Two forecasts without a new value are equal and do not advance the filter."""
        predictor = KalmanPredictor(min_points=1)
        for value in (10, 12, 15, 13, 18):
            predictor.observe(value)
        state = predictor.state
        assert predictor.predict() == predictor.predict()
        assert predictor.state == state

    def test_log_mode_is_non_negative(self) -> None:
        """In log1p mode the forecast is >= 0 on falling data."""
        predictor = KalmanPredictor(log1p=True, min_points=1)
        for value in (100, 50, 20, 5, 1, 0, 0):
            predictor.observe(value)
            assert predictor.predict().value >= 0

    def test_raw_decline_is_clamped(self) -> None:
        """Issue #14493: the raw level goes negative on a decline, the forecast does not."""
        predictor = KalmanPredictor(q_level=1e-4, q_trend=1e-5, r=0.1, min_points=3)
        for value in (100, 80, 60, 40, 20, 5, 0):
            predictor.observe(value)
        level, trend = predictor.state
        assert level + trend < 0
        assert predictor.predict().value == 0.0

    def test_matches_reference_filter(self) -> None:
        """With min_points=1 the forecasts are the reference filter's, value by value."""
        values = [120.0, 135.0, 128.0, 160.0, 150.0, 170.0, 165.0]
        expected = _reference_levels(values, 1.0, 0.1, 10.0)
        predictor = KalmanPredictor(min_points=1)
        got = []
        for value in values:
            predictor.observe(value)
            got.append(predictor.predict().value)
        assert got == pytest.approx(expected, rel=1e-9)

    def test_min_points_is_honoured(self) -> None:
        """Our delta: before min_points values the forecast is the last value."""
        predictor = KalmanPredictor(min_points=4)
        for value in (100, 200, 300):
            predictor.observe(value)
        assert predictor.predict().value == 300.0
        predictor.observe(400)
        assert predictor.predict().value != 400.0


class TestKalmanExtras:
    """Quantiles and configuration."""

    def test_upper_quantile_covers_about_its_level(self) -> None:
        """On a noisy random walk the 0.9 upper bound covers roughly 90% of next values."""
        rng = np.random.default_rng(7)
        values = 5000 + np.cumsum(rng.normal(0, 20, 600))
        predictor = KalmanPredictor(forecast_quantile=0.9)
        hits = 0
        for index, value in enumerate(values):
            if index >= 50:
                hits += value <= predictor.predict().upper
            predictor.observe(float(value))
        assert 0.82 <= hits / (len(values) - 50) <= 0.96

    def test_from_config(self) -> None:
        """from_config reads the kalman_* options, log1p and the quantile."""
        config = PlannerConfig(
            kalman_q_level=2.0,
            kalman_q_trend=0.5,
            kalman_r=3.0,
            kalman_min_points=7,
            load_predictor_log1p=True,
            forecast_quantile=0.8,
        )
        predictor = KalmanPredictor.from_config(config)
        assert (predictor.q_level, predictor.q_trend, predictor.r) == (2.0, 0.5, 3.0)
        assert predictor.min_points == 7
        assert predictor.log1p is True
        assert predictor.forecast_quantile == 0.8

    def test_idle_skip(self) -> None:
        """Leading zeros do not start the filter."""
        predictor = KalmanPredictor(min_points=1)
        for value in (0, 0, 50):
            predictor.observe(value)
        assert predictor.num_observed == 1
        assert predictor.state == (50.0, 0.0)
