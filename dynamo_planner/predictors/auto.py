"""The ``auto`` predictor: picks, at every step, the forecaster that has been right lately.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from typing import Any

import attrs
import numpy as np

from dynamo_planner.predictors._base import (
    DEFAULT_QUANTILE,
    IdleSkip,
    ResidualBand,
    check_value,
    config_value,
    quantile_validator,
)
from dynamo_planner.values import Forecast

__all__ = ["AutoPredictor"]


def _floats(values: Iterable[float]) -> tuple[float, ...]:
    return tuple(values)


def _rates_validator(
    _instance: Any, attribute: attrs.Attribute[Any], value: Any
) -> None:
    rates = tuple(value) if isinstance(value, tuple | list) else ()
    if not rates or not all(isinstance(r, int | float) and 0 < r < 1 for r in rates):
        raise ValueError(f"{attribute.name} must be rates in (0, 1), got {value!r}")


def _smape_term(forecast: float, actual: float) -> float:
    total = abs(forecast) + abs(actual)
    return 0.0 if total == 0 else 2.0 * abs(forecast - actual) / total


@attrs.define(kw_only=True, eq=False)
class AutoPredictor:
    """Forecast with whichever simple model had the lowest recent one-step error.

    The pool holds cheap online forecasters that suit different series: the last value
    (right for a random walk), exponential smoothing at several rates (a level seen through
    noise, from fast to slow), the mean of the last few values, and Holt's linear trend.
    After every value each member's forecast error is scored as a term of sMAPE
    (``2|f - a| / (|f| + |a|)``), and the next forecast comes from the member whose errors
    over the last ``window`` values are lowest. The scores are shrunk towards a common
    prior worth ``prior_weight`` errors, with the last value's prior ``constant_bias``
    times the others', so with little evidence the choice stays with the last value and
    moves away only when another member has been clearly better.

    The cost per step is a few dozen arithmetic operations, whatever the history. The upper
    quantile comes from the recent errors of the forecasts actually made. Leading zeros are
    skipped (idle-skip).

    Attributes:
        smoothing_rates: The exponential-smoothing members' rates (each in (0, 1)).
        mean_window: Values averaged by the moving-mean member.
        trend_rates: ``(alpha, beta)`` of the Holt member, or ``None`` to leave it out.
        window: Recent errors each member is judged on.
        prior_weight: How many errors the prior is worth.
        constant_bias: The last value's prior relative to the others' (< 1 favours it).
        forecast_quantile: Level of :attr:`Forecast.upper`.
    """

    smoothing_rates: tuple[float, ...] = attrs.field(
        default=(0.8, 0.6, 0.4, 0.2), converter=_floats, validator=_rates_validator
    )
    mean_window: int = attrs.field(default=3, validator=attrs.validators.ge(2))
    trend_rates: tuple[float, float] | None = (0.5, 0.1)
    window: int = attrs.field(default=200, validator=attrs.validators.ge(1))
    prior_weight: float = attrs.field(default=2.0, validator=attrs.validators.ge(0.0))
    constant_bias: float = attrs.field(default=0.9, validator=attrs.validators.gt(0.0))
    forecast_quantile: float = attrs.field(
        default=DEFAULT_QUANTILE, validator=quantile_validator
    )
    _idle: IdleSkip = attrs.field(init=False, factory=IdleSkip)
    _count: int = attrs.field(init=False, default=0)
    _last: float = attrs.field(init=False, default=0.0)
    _levels: list[float] = attrs.field(init=False, factory=list)
    _recent: deque[float] = attrs.field(init=False)
    _holt: tuple[float, float] = attrs.field(init=False, default=(0.0, 0.0))
    _errors: deque[list[float]] = attrs.field(init=False)
    _sums: list[float] = attrs.field(init=False)
    _band: ResidualBand = attrs.field(init=False, factory=ResidualBand)
    _cache: Forecast | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        if self.trend_rates is not None:
            alpha, beta = self.trend_rates
            if not (0 < alpha < 1 and 0 < beta < 1):
                raise ValueError(
                    f"trend_rates must be two rates in (0, 1), got {self.trend_rates!r}"
                )
        self._recent = deque(maxlen=self.mean_window)
        self._errors = deque(maxlen=self.window)
        self._sums = [0.0] * len(self.member_names)

    @classmethod
    def from_config(cls, config: object) -> AutoPredictor:
        """Build from a :class:`~dynamo_planner.config.PlannerConfig` (``forecast_quantile``)."""
        return cls(
            forecast_quantile=config_value(
                config, "forecast_quantile", DEFAULT_QUANTILE
            )
        )

    # ---- introspection -------------------------------------------------------------------

    @property
    def member_names(self) -> tuple[str, ...]:
        """Names of the pool's members, in order (``"constant"`` first)."""
        names = ["constant"]
        names += [f"smoothing({rate:g})" for rate in self.smoothing_rates]
        names.append(f"mean({self.mean_window})")
        if self.trend_rates is not None:
            names.append(f"holt({self.trend_rates[0]:g}, {self.trend_rates[1]:g})")
        return tuple(names)

    @property
    def num_observed(self) -> int:
        """Values kept so far (zeros dropped by idle-skip are not counted)."""
        return self._count

    @property
    def last_value(self) -> float:
        """The last value kept, or 0."""
        return self._last

    @property
    def chosen(self) -> str:
        """The member whose forecast :meth:`predict` returns now."""
        return self.member_names[self._choice()]

    def scores(self) -> dict[str, float]:
        """Each member's shrunk mean error (lower is better), by name."""
        return dict(zip(self.member_names, self._scores().tolist(), strict=True))

    # ---- protocol --------------------------------------------------------------------------

    def observe(self, value: float) -> None:
        """Score every member on the new value, then update them.

        Raises:
            ValueError: The value is NaN, infinite or negative.
        """
        number = check_value(value)
        if not self._idle.accept(number):
            return
        if self._count:
            self._band.record(self.predict().value, number)
            errors = [_smape_term(f, number) for f in self._member_forecasts()]
            if len(self._errors) == self._errors.maxlen:
                dropped = self._errors[0]
                self._sums = [s - d for s, d in zip(self._sums, dropped, strict=True)]
            self._errors.append(errors)
            self._sums = [s + e for s, e in zip(self._sums, errors, strict=True)]
        self._update_members(number)
        self._last = number
        self._count += 1
        self._cache = None

    def predict(self) -> Forecast:
        """The chosen member's forecast; the same until a new value arrives."""
        if self._cache is None:
            q = self.forecast_quantile
            if self._count == 0:
                self._cache = Forecast(0.0, 0.0, q)
            else:
                value = max(0.0, self._member_forecasts()[self._choice()])
                self._cache = Forecast(value, self._band.upper(value, q), q)
        return self._cache

    def rearm_idle_skip(self) -> None:
        """Skip zeros again until the next non-zero value (called after warm start)."""
        self._idle.rearm()

    # ---- internals -------------------------------------------------------------------------

    def _member_forecasts(self) -> list[float]:
        forecasts = [self._last, *self._levels]
        forecasts.append(
            math.fsum(self._recent) / len(self._recent) if self._recent else 0.0
        )
        if self.trend_rates is not None:
            level, trend = self._holt
            forecasts.append(level + trend)
        return forecasts

    def _update_members(self, value: float) -> None:
        if self._count == 0:
            self._levels = [value] * len(self.smoothing_rates)
            self._holt = (value, 0.0)
        else:
            self._levels = [
                level + rate * (value - level)
                for level, rate in zip(self._levels, self.smoothing_rates, strict=True)
            ]
            if self.trend_rates is not None:
                alpha, beta = self.trend_rates
                level, trend = self._holt
                new_level = alpha * value + (1 - alpha) * (level + trend)
                self._holt = (
                    new_level,
                    beta * (new_level - level) + (1 - beta) * trend,
                )
        self._recent.append(value)

    def _scores(self) -> np.ndarray:
        sums = np.asarray(self._sums, dtype=np.float64)
        n = len(self._errors)
        prior = float(sums.mean()) / n if n else 1.0
        priors = np.full(sums.shape, prior)
        priors[0] *= self.constant_bias
        return (sums + self.prior_weight * priors) / (n + self.prior_weight or 1.0)

    def _choice(self) -> int:
        return int(np.argmin(self._scores()))
