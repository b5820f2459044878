"""The Kalman predictor: a local linear trend filtered online (spec §3.4, filterpy).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import attrs
import numpy as np

from dynamo_planner.predictors._base import (
    DEFAULT_QUANTILE,
    IdleSkip,
    check_value,
    config_value,
    finite_forecast,
    normal_quantile,
    quantile_validator,
)
from dynamo_planner.values import Forecast

__all__ = ["KalmanPredictor"]

_F = np.array([[1.0, 1.0], [0.0, 1.0]])
_H = np.array([[1.0, 0.0]])


@attrs.define(kw_only=True, eq=False)
class KalmanPredictor:
    """A local linear trend model (state ``[level, trend]``) updated by a Kalman filter.

    Assumes the series is a level that drifts with a slowly changing trend, seen through
    measurement noise. ``q_level`` and ``q_trend`` say how much the level and the trend may
    move per interval and ``r`` how noisy a measurement is; only their ratios matter for the
    point forecast (with the reference defaults the filter follows the data closely). The
    filter is the reference's: ``F = [[1, 1], [0, 1]]``, ``H = [1, 0]``, ``P0 = 1000 I``, the
    first value sets the level with zero trend. It costs the same per step at any history.

    Deltas from the reference: it forecasts only after ``min_points`` values (before that,
    the last value), and the forecast is never negative (issue #14493). The upper quantile is
    the filter's forecast variance scaled by the recent normalised innovations, so it is
    calibrated even when ``q``/``r`` are not in the data's units.

    Attributes:
        q_level: Process noise of the level (> 0; floored at 1e-12 as the reference does).
        q_trend: Process noise of the trend.
        r: Measurement noise (floored at 1e-9).
        min_points: Values needed before the filter's forecast is used.
        log1p: Filter ``log1p(value)`` instead of the value.
        forecast_quantile: Level of :attr:`Forecast.upper`.
        calibration_window: Recent innovations the variance scale is estimated from.
    """

    q_level: float = attrs.field(default=1.0, validator=attrs.validators.ge(0.0))
    q_trend: float = attrs.field(default=0.1, validator=attrs.validators.ge(0.0))
    r: float = attrs.field(default=10.0, validator=attrs.validators.ge(0.0))
    min_points: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    log1p: bool = False
    forecast_quantile: float = attrs.field(
        default=DEFAULT_QUANTILE, validator=quantile_validator
    )
    calibration_window: int = attrs.field(default=50, validator=attrs.validators.ge(2))
    _idle: IdleSkip = attrs.field(init=False, factory=IdleSkip)
    _kf: Any = attrs.field(init=False, default=None)
    _count: int = attrs.field(init=False, default=0)
    _last: float = attrs.field(init=False, default=0.0)
    _scores: deque[float] = attrs.field(init=False)
    _cache: Forecast | None = attrs.field(init=False, default=None)

    @_scores.default
    def _default_scores(self) -> deque[float]:
        return deque(maxlen=self.calibration_window)

    @classmethod
    def from_config(cls, config: object) -> KalmanPredictor:
        """Build from a :class:`~dynamo_planner.config.PlannerConfig`.

        Reads ``kalman_q_level``, ``kalman_q_trend``, ``kalman_r``, ``kalman_min_points``,
        ``load_predictor_log1p`` and ``forecast_quantile``.
        """
        return cls(
            q_level=config_value(config, "kalman_q_level", 1.0),
            q_trend=config_value(config, "kalman_q_trend", 0.1),
            r=config_value(config, "kalman_r", 10.0),
            min_points=config_value(config, "kalman_min_points", 5),
            log1p=config_value(config, "load_predictor_log1p", False),
            forecast_quantile=config_value(
                config, "forecast_quantile", DEFAULT_QUANTILE
            ),
        )

    @property
    def num_observed(self) -> int:
        """Values kept so far (zeros dropped by idle-skip are not counted)."""
        return self._count

    @property
    def last_value(self) -> float:
        """The last value kept, or 0."""
        return self._last

    @property
    def state(self) -> tuple[float, float]:
        """The filtered ``(level, trend)`` in model space (``(0, 0)`` before any value)."""
        if self._kf is None:
            return (0.0, 0.0)
        return (float(self._kf.x[0, 0]), float(self._kf.x[1, 0]))

    def _to_model(self, value: float) -> float:
        return math.log1p(value) if self.log1p else value

    def _from_model(self, value: float) -> float:
        return math.expm1(value) if self.log1p else value

    def _new_filter(self, z: float) -> Any:
        from filterpy.kalman import KalmanFilter

        kf = KalmanFilter(dim_x=2, dim_z=1)
        kf.F = _F.copy()
        kf.H = _H.copy()
        kf.P = np.eye(2) * 1000.0
        kf.R = np.array([[max(1e-9, self.r)]])
        kf.Q = np.diag([max(1e-12, self.q_level), max(1e-12, self.q_trend)])
        kf.x = np.array([[z], [0.0]])
        return kf

    def observe(self, value: float) -> None:
        """Add the next interval's value and update the filter.

        Raises:
            ValueError: The value is NaN, infinite or negative.
        """
        number = check_value(value)
        if not self._idle.accept(number):
            return
        z = self._to_model(number)
        if self._kf is None:
            self._kf = self._new_filter(z)
        else:
            kf = self._kf
            kf.predict()
            kf.update(np.array([[z]]))
            innovation = float(kf.y[0, 0])
            variance = float(kf.S[0, 0])
            if variance > 0 and math.isfinite(innovation):
                self._scores.append(innovation * innovation / variance)
        self._last = number
        self._count += 1
        self._cache = None

    def _forecast(self) -> Forecast:
        q = self.forecast_quantile
        if self._kf is None:
            return Forecast(0.0, 0.0, q)
        kf = self._kf
        x_next = _F @ kf.x
        p_next = _F @ kf.P @ _F.T + kf.Q
        level = float(x_next[0, 0])
        variance = float(p_next[0, 0] + kf.R[0, 0])
        if len(self._scores) >= 2:
            variance *= float(np.mean(np.fromiter(self._scores, float)))
        spread = normal_quantile(q) * math.sqrt(max(0.0, variance))
        if self._count < self.min_points:
            point = self._last
            upper = self._from_model(self._to_model(point) + spread)
        else:
            point = self._from_model(level)
            upper = self._from_model(level + spread)
        return finite_forecast(point, upper, q, fallback=self._last)

    def predict(self) -> Forecast:
        """The filter's one-step forecast of the level (the last value before min_points).

        Does not advance the filter: calling it again gives the same forecast.
        """
        if self._cache is None:
            self._cache = self._forecast()
        return self._cache

    def rearm_idle_skip(self) -> None:
        """Skip zeros again until the next non-zero value (called after warm start)."""
        self._idle.rearm()
