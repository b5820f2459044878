"""The constant predictor: the next value is the last one (spec §3.2).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import attrs

from dynamo_planner.predictors._base import (
    DEFAULT_QUANTILE,
    IdleSkip,
    ResidualBand,
    check_value,
    config_value,
    quantile_validator,
)
from dynamo_planner.values import Forecast

__all__ = ["ConstantPredictor"]


@attrs.define(kw_only=True, eq=False)
class ConstantPredictor:
    """Forecast the last observed value (a random walk), or 0 before any.

    Assumes nothing about the series: it is right when the next interval looks like this
    one, and it is the baseline every other predictor must beat. Leading zeros are skipped
    (idle-skip, spec §3.1). The upper quantile comes from the recent one-step errors.

    Attributes:
        forecast_quantile: Level of :attr:`Forecast.upper`.
        residual_window: Recent errors the upper quantile is taken from.
    """

    forecast_quantile: float = attrs.field(
        default=DEFAULT_QUANTILE, validator=quantile_validator
    )
    residual_window: int = attrs.field(default=50, validator=attrs.validators.ge(2))
    _idle: IdleSkip = attrs.field(init=False, factory=IdleSkip)
    _band: ResidualBand = attrs.field(init=False)
    _last: float = attrs.field(init=False, default=0.0)
    _count: int = attrs.field(init=False, default=0)

    @_band.default
    def _default_band(self) -> ResidualBand:
        return ResidualBand(self.residual_window)

    @classmethod
    def from_config(cls, config: object) -> ConstantPredictor:
        """Build from a :class:`~dynamo_planner.config.PlannerConfig` (``forecast_quantile``)."""
        return cls(
            forecast_quantile=config_value(
                config, "forecast_quantile", DEFAULT_QUANTILE
            )
        )

    @property
    def num_observed(self) -> int:
        """Values kept so far (zeros dropped by idle-skip are not counted)."""
        return self._count

    @property
    def last_value(self) -> float:
        """The last value kept, or 0."""
        return self._last

    def observe(self, value: float) -> None:
        """Add the next interval's value (finite, >= 0).

        Raises:
            ValueError: The value is NaN, infinite or negative.
        """
        number = check_value(value)
        if not self._idle.accept(number):
            return
        if self._count:
            self._band.record(self._last, number)
        self._last = number
        self._count += 1

    def predict(self) -> Forecast:
        """The last value, with the upper quantile of the recent changes."""
        return Forecast(
            self._last,
            self._band.upper(self._last, self.forecast_quantile),
            self.forecast_quantile,
        )

    def rearm_idle_skip(self) -> None:
        """Skip zeros again until the next non-zero value (called after warm start)."""
        self._idle.rearm()
