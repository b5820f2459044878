"""Pieces every built-in predictor composes: input checks, idle-skip, residual quantiles.

These are private helpers held as attributes (composition), not base classes: a predictor is
anything with ``observe`` and ``predict`` (see :class:`~dynamo_planner.protocols.Predictor`).
"""

from __future__ import annotations

import math
from collections import deque
from statistics import NormalDist
from typing import Any

import attrs

from dynamo_planner.values import DEFAULT_FORECAST_QUANTILE, Forecast

__all__ = [
    "IdleSkip",
    "ResidualBand",
    "check_value",
    "config_value",
    "finite_forecast",
    "normal_quantile",
    "quantile_validator",
]

DEFAULT_QUANTILE = DEFAULT_FORECAST_QUANTILE
"""The default level of :attr:`Forecast.upper`."""


def check_value(value: float) -> float:
    """Return ``value`` as a float, refusing NaN, infinities and negatives.

    The planner never feeds unknown values (it skips them), so a non-finite value here is a
    caller's bug; silently turning it into 0 (as the reference does) would hide it.

    Raises:
        ValueError: The value is not a finite number >= 0.
    """
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"observed value must be finite and >= 0, got {value!r}")
    return number


def quantile_validator(
    _instance: Any, attribute: attrs.Attribute[float], value: float
) -> None:
    """Validate (for attrs) a quantile level strictly between 0 and 1."""
    if not 0 < value < 1:
        raise ValueError(f"{attribute.name} must be in (0, 1), got {value!r}")


def normal_quantile(level: float) -> float:
    """The standard normal quantile at ``level`` (e.g. 1.2816 at 0.9)."""
    return NormalDist().inv_cdf(level)


def config_value(config: object, name: str, default: Any) -> Any:
    """``config.name`` when the configuration has it, else ``default``."""
    return default if config is None else getattr(config, name, default)


def finite_forecast(
    value: float, upper: float, quantile: float, fallback: float
) -> Forecast:
    """A :class:`Forecast` that is never NaN or negative, with ``upper >= value``.

    A non-finite point forecast is replaced by ``fallback``; a non-finite upper by the point.
    """
    point = value if math.isfinite(value) else fallback
    point = max(0.0, point)
    high = upper if math.isfinite(upper) else point
    return Forecast(point, max(point, high), quantile)


@attrs.define
class IdleSkip:
    """The reference's idle-skip: leading zeros are dropped until a non-zero value arrives.

    After the first non-zero value zeros are kept. :meth:`rearm` drops zeros again until the
    next non-zero value (the planner re-arms after warm start, so the idle time after a
    deployment starts does not drag the forecast down).
    """

    armed: bool = True

    def accept(self, value: float) -> bool:
        """Whether ``value`` is kept (and disarm on a non-zero value)."""
        if value != 0:
            self.armed = False
            return True
        return not self.armed

    def rearm(self) -> None:
        """Drop zeros again until the next non-zero value."""
        self.armed = True


@attrs.define
class ResidualBand:
    """An upper quantile from recent one-step errors, for models without an analytic one.

    Errors are kept in log1p space (``log1p(actual) - log1p(forecast)``), so the band scales
    with the level of the series and works at zero.

    Attributes:
        size: How many recent errors are kept.
    """

    size: int = 50
    _errors: deque[float] = attrs.field(init=False)

    @_errors.default
    def _default_errors(self) -> deque[float]:
        return deque(maxlen=self.size)

    def record(self, forecast: float, actual: float) -> None:
        """Remember the error of a forecast once its actual value is known."""
        self._errors.append(
            math.log1p(max(0.0, actual)) - math.log1p(max(0.0, forecast))
        )

    def __len__(self) -> int:
        return len(self._errors)

    def upper(self, value: float, quantile: float) -> float:
        """The ``quantile`` of the next value given the point forecast ``value``.

        With fewer than two recorded errors there is no spread to go by: the value itself.
        """
        if len(self._errors) < 2:
            return value
        shift = _linear_quantile(sorted(self._errors), quantile)
        return max(value, math.expm1(math.log1p(max(0.0, value)) + shift))


def _linear_quantile(ordered: list[float], quantile: float) -> float:
    """The ``quantile`` of sorted values, interpolated as ``numpy.quantile`` does.

    A plain loop over a few dozen floats: much cheaper than numpy on every forecast.
    """
    position = quantile * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
