"""The forecast's recent errors, as scenarios of the next interval's request count.

The ``sla`` scaler sizes for the forecast's upper quantile (q0.75 by default): the typical
error. Bursty traffic errs rarely but far. On ServeGen's m-large trace the request count
rises by a fifth to a third within a minute several times an hour, and a constant forecast
sees none of it coming. Where one worker more or less decides whether its requests meet
the target (one decode worker, near its limit), one such error costs an interval or two of
misses, far more than the target allows, while the quantile says all is well.

:class:`ForecastErrors` keeps, per decision, the relative error of the forecast made at the
decision before (``observed / forecast - 1``) over the last :data:`ERROR_HISTORY_S`
seconds. :meth:`ForecastErrors.scenarios` applies them to this decision's forecast: the
rates the next interval would have if the forecast erred as it did in each recent
interval. Each error holds the random draw of the interval it was measured on (which
requests happened to arrive), which the sizing models already carry, so each is narrowed
as the forecast's band is (:mod:`~dynamo_planner.scalers.sampling_noise`): where the
errors are all draw, to ``sqrt(1/2)`` of themselves.

:func:`expected_miss_share` averages a replica count's predicted miss share over the
scenarios, weighted by their requests. A count whose expected misses exceed what the
target allows is too few, however well it does at the quantile: traffic that has shown
bursts keeps the headroom to survive one, and smooth traffic, whose errors are small, is
sized as before. The errors are those of whichever predictor runs, so a better forecast
earns less headroom.

With fewer than :data:`MIN_ERRORS` errors recorded there are no scenarios.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable

import attrs
import numpy as np
import numpy.typing as npt

__all__ = ["ERROR_HISTORY_S", "MIN_ERRORS", "ForecastErrors", "expected_miss_share"]

FloatArray = npt.NDArray[np.float64]

ERROR_HISTORY_S = 3600.0
"""How far back the errors are kept: an hour (60 intervals of 60 s, 20 of 180 s)."""
MIN_ERRORS = 3
"""Fewest errors recorded before scenarios are given."""
_MAX_ERRORS = 3600
"""Most errors kept, whatever the interval (one a second for an hour)."""


@attrs.define
class ForecastErrors:
    """The relative errors of recent request-count forecasts.

    Call :meth:`record` once per decision, with the count observed over the interval just
    ended and the forecast made now for the next one.

    Example:
        >>> errors = ForecastErrors()
        >>> for observed, forecast in [(None, 100.0), (100.0, 100.0), (130.0, 130.0),
        ...                            (117.0, 117.0)]:
        ...     errors.record(observed, forecast, interval_s=60.0)
        >>> [round(e, 2) for e in errors.errors]
        [0.0, 0.3, -0.1]
        >>> errors.scenarios(10.0).round(2).tolist()
        [10.0, 13.0, 9.0]
    """

    history_s: float = ERROR_HISTORY_S
    _errors: collections.deque[tuple[float, float]] = attrs.field(
        init=False, factory=lambda: collections.deque(maxlen=_MAX_ERRORS)
    )
    _forecast: float | None = attrs.field(init=False, default=None)

    def record(
        self, observed: float | None, forecast: float, interval_s: float
    ) -> None:
        """Record the error of the previous forecast, and keep this one.

        Args:
            observed: The request count observed over the interval just ended (``None``
                when unknown: no error is recorded, and the forecast made now is the
                next one compared).
            forecast: The count forecast now for the next interval.
            interval_s: The interval's length.
        """
        previous = self._forecast
        if (
            observed is not None
            and previous is not None
            and previous > 0.0
            and math.isfinite(observed)
        ):
            self._errors.append((observed / previous - 1.0, interval_s))
        self._forecast = forecast if math.isfinite(forecast) else None

    @property
    def errors(self) -> tuple[float, ...]:
        """The errors within :attr:`history_s`, oldest first."""
        kept: list[float] = []
        span_s = 0.0
        for error, interval_s in reversed(self._errors):
            span_s += interval_s
            if span_s > self.history_s + 1e-9 and kept:
                break
            kept.append(error)
        return tuple(reversed(kept))

    @property
    def largest(self) -> float:
        """The largest error within :attr:`history_s` (0 with none)."""
        return max(self.errors, default=0.0)

    def scenarios(self, rate: float, kept: float = 1.0) -> FloatArray | None:
        """The next interval's rate if the forecast erred as in each recent interval.

        Args:
            rate: The forecast rate (or count).
            kept: The share of each error to apply: the part that is not the next
                interval's own random draw, which the sizing models already carry
                (:meth:`SamplingNoise.kept_count
                <dynamo_planner.scalers.sampling_noise.SamplingNoise.kept_count>`).

        Returns:
            ``rate x (1 + kept x error)`` per error (never below 0), or ``None`` with
            fewer than :data:`MIN_ERRORS` errors.
        """
        errors = self.errors
        if len(errors) < MIN_ERRORS:
            return None
        changes = kept * np.asarray(errors, dtype=np.float64)
        return np.maximum(0.0, rate * (1.0 + changes))


def expected_miss_share(
    rates: FloatArray, miss_share: Callable[[float], float]
) -> float:
    """The share of requests missing the target over scenarios of the rate.

    Args:
        rates: One rate per scenario, equally likely.
        miss_share: The share of requests that miss at a rate.

    Returns:
        ``sum(rate x miss_share(rate)) / sum(rate)``: each scenario weighs by its requests;
        0 when every rate is 0.

    Example:
        >>> expected_miss_share(np.array([10.0, 30.0]), lambda r: 0.5 if r > 20 else 0.0)
        0.375
    """
    total = float(np.sum(rates))
    if total <= 0.0:
        return 0.0
    return sum(float(r) * miss_share(float(r)) for r in rates if r > 0.0) / total
