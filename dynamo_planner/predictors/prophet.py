"""The Prophet predictor: a trend model refit on a bounded window (spec §3.5).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

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

__all__ = ["ProphetPredictor"]

logger = logging.getLogger(__name__)

EPOCH = "2024-01-01"
"""The reference's origin for the synthetic timestamps (``ds``) Prophet is given."""

_GROWTHS = ("linear", "flat")


class _BelowWarning(logging.Filter):
    """Drop records below WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


@contextmanager
def _quiet_stan() -> Iterator[None]:
    """Drop cmdstanpy's and Prophet's per-fit INFO lines for the duration of one fit."""
    noisy = [logging.getLogger(name) for name in ("cmdstanpy", "prophet")]
    quiet = _BelowWarning()
    for noisy_logger in noisy:
        noisy_logger.addFilter(quiet)
    try:
        yield
    finally:
        for noisy_logger in noisy:
            noisy_logger.removeFilter(quiet)


@attrs.define(kw_only=True, eq=False)
class ProphetPredictor:
    """Meta's Prophet (piecewise-linear trend plus seasonalities) refit on a window.

    Assumes the series is a smooth trend, possibly with daily or weekly cycles, plus noise.
    Prophet needs timestamps: value ``k`` is stamped ``2024-01-01 + k * step_s`` (as in the
    reference), so ``step_s`` must be the planner's adjustment interval. Every forecast
    refits a fresh model on the last ``window_size`` values (about 0.1 s per fit, almost all
    of it starting the Stan optimiser), so the cost per step is bounded by the window.

    Deltas from the reference: the forecast is for the next interval's timestamp (the
    reference asked for ``start + step`` *seconds*, a point inside the training window;
    issue #7211) and is never negative. The fit runs when a forecast is first asked for
    after a new value, not on every value, so a warm start costs nothing. The upper
    quantile is Prophet's ``yhat_upper`` with ``interval_width = 2 * forecast_quantile - 1``;
    its sampling draws from NumPy's global generator, which is seeded with ``seed`` for the
    call and restored afterwards, so forecasts are reproducible.

    Attributes:
        window_size: Values the model is fitted on (the reference's default 50).
        step_s: Seconds between values (the adjustment interval).
        log1p: Fit ``log1p(value)`` instead of the value.
        min_points: Values needed before Prophet is fitted (the last value before).
        growth: ``"linear"`` (Prophet's default) or ``"flat"`` (no trend, only the level
            and seasonalities).
        changepoint_prior_scale: Flexibility of the trend (Prophet's default 0.05).
        uncertainty_samples: Draws for ``yhat_upper`` (0 uses the fitted noise instead).
        forecast_quantile: Level of :attr:`Forecast.upper`.
        seed: Seed of the draws.
    """

    window_size: int = attrs.field(default=50, validator=attrs.validators.ge(1))
    step_s: float = attrs.field(default=180.0, validator=attrs.validators.gt(0.0))
    log1p: bool = False
    min_points: int = attrs.field(default=5, validator=attrs.validators.ge(2))
    growth: Literal["linear", "flat"] = attrs.field(
        default="linear", validator=attrs.validators.in_(_GROWTHS)
    )
    changepoint_prior_scale: float = attrs.field(
        default=0.05, validator=attrs.validators.gt(0.0)
    )
    uncertainty_samples: int = attrs.field(
        default=1000, validator=attrs.validators.ge(0)
    )
    forecast_quantile: float = attrs.field(
        default=DEFAULT_QUANTILE, validator=quantile_validator
    )
    seed: int = 0
    _idle: IdleSkip = attrs.field(init=False, factory=IdleSkip)
    _values: deque[float] = attrs.field(init=False)
    _step: int = attrs.field(init=False, default=0)
    _cache: Forecast | None = attrs.field(init=False, default=None)

    @_values.default
    def _default_values(self) -> deque[float]:
        return deque(maxlen=self.window_size)

    @classmethod
    def from_config(cls, config: object) -> ProphetPredictor:
        """Build from a :class:`~dynamo_planner.config.PlannerConfig`.

        Reads ``prophet_window_size``, ``adjustment_interval_s`` (the step),
        ``load_predictor_log1p`` and ``forecast_quantile``.
        """
        return cls(
            window_size=config_value(config, "prophet_window_size", 50),
            step_s=config_value(config, "adjustment_interval_s", 180.0),
            log1p=config_value(config, "load_predictor_log1p", False),
            forecast_quantile=config_value(
                config, "forecast_quantile", DEFAULT_QUANTILE
            ),
        )

    # ---- introspection -------------------------------------------------------------------

    @property
    def num_observed(self) -> int:
        """Values kept so far; the reference's ``curr_step`` (idle-skipped zeros excluded)."""
        return self._step

    @property
    def window(self) -> tuple[float, ...]:
        """The values Prophet is fitted on, in model space (``log1p`` when on)."""
        return tuple(self._values)

    @property
    def last_value(self) -> float:
        """The last value kept (back in the data's scale), or 0."""
        return self._from_model(self._values[-1]) if self._values else 0.0

    def timestamps(self) -> list[Any]:
        """The ``ds`` of each value in :attr:`window` (pandas timestamps)."""
        import pandas as pd

        first = self._step - len(self._values)
        origin = pd.Timestamp(EPOCH)
        return [
            origin + pd.Timedelta(seconds=(first + i) * self.step_s)
            for i in range(len(self._values))
        ]

    def next_timestamp(self) -> Any:
        """The ``ds`` of the interval being forecast: the last ``ds`` plus ``step_s``."""
        import pandas as pd

        return pd.Timestamp(EPOCH) + pd.Timedelta(seconds=self._step * self.step_s)

    # ---- protocol --------------------------------------------------------------------------

    def _to_model(self, value: float) -> float:
        return math.log1p(value) if self.log1p else value

    def _from_model(self, value: float) -> float:
        return math.expm1(min(value, 700.0)) if self.log1p else value

    def observe(self, value: float) -> None:
        """Add the next interval's value (no fit happens here).

        Raises:
            ValueError: The value is NaN, infinite or negative.
        """
        number = check_value(value)
        if not self._idle.accept(number):
            return
        self._values.append(self._to_model(number))
        self._step += 1
        self._cache = None

    def predict(self) -> Forecast:
        """Fit on the window and forecast the next timestamp (memoised until a new value)."""
        if self._cache is None:
            self._cache = self._forecast()
        return self._cache

    def rearm_idle_skip(self) -> None:
        """Skip zeros again until the next non-zero value (called after warm start)."""
        self._idle.rearm()

    # ---- internals -------------------------------------------------------------------------

    def _forecast(self) -> Forecast:
        q = self.forecast_quantile
        last = self.last_value
        if len(self._values) < self.min_points:
            return Forecast(last, last, q)
        try:
            mean, high = self._fit_and_predict()
        except Exception as exc:  # noqa: BLE001 - a failed fit falls back to the last value
            logger.warning("Prophet fit failed (%s); using the last value", exc)
            return Forecast(last, last, q)
        return finite_forecast(
            self._from_model(mean), self._from_model(high), q, fallback=last
        )

    def _fit_and_predict(self) -> tuple[float, float]:
        import pandas as pd
        from prophet import Prophet

        frame = pd.DataFrame({"ds": self.timestamps(), "y": list(self._values)})
        future = pd.DataFrame({"ds": [self.next_timestamp()]})
        model = Prophet(
            growth=self.growth,
            changepoint_prior_scale=self.changepoint_prior_scale,
            interval_width=2.0 * self.forecast_quantile - 1.0,
            uncertainty_samples=self.uncertainty_samples,
        )
        with warnings.catch_warnings(), _quiet_stan():
            warnings.simplefilter("ignore")
            model.fit(frame)
            # Prophet samples from NumPy's global generator: seed it for this call only.
            state = np.random.get_state()  # noqa: NPY002
            np.random.seed(self.seed)  # noqa: NPY002
            try:
                result = model.predict(future)
            finally:
                np.random.set_state(state)  # noqa: NPY002
        mean = float(result["yhat"].iloc[0])
        if self.uncertainty_samples and "yhat_upper" in result:
            return mean, float(result["yhat_upper"].iloc[0])
        scale = float(model.y_scale or 1.0)
        sigma = float(np.ravel(model.params["sigma_obs"])[0]) * scale
        return mean, mean + normal_quantile(self.forecast_quantile) * sigma
