"""Online calibration: the scale factor that makes a model's mean match an observation.

The ``sla`` scaler multiplies prefill times and decode step times by running factors. After
each steady interval it asks which factor would have made the model's mean TTFT (ITL) at
the observed load equal the observed mean (:func:`solve_factor`), and blends that into the
running factor (:func:`blend`):

* the blend is geometric (factors are ratios), with the new interval's weight ``w``
  (0.5 by default: a half-life of one interval);
* the result is kept within bounds (:data:`CALIBRATION_BOUNDS`, ``[0.5, 2]``);
* an observation no factor within the bounds explains is a transient (a backlog after a
  cold start, say), not a model error, and changes nothing.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = ["CALIBRATION_BOUNDS", "blend", "solve_factor"]

CALIBRATION_BOUNDS = (0.5, 2.0)
"""The range a calibration factor is kept in."""
TOLERANCE = 1.005
""":func:`solve_factor` stops when its bracket is this narrow (a ratio)."""


def blend(
    previous: float,
    found: float,
    weight: float,
    bounds: tuple[float, float] = CALIBRATION_BOUNDS,
) -> float:
    """Blend a new factor into a running one, geometrically, within ``bounds``.

    Args:
        previous: The running factor.
        found: The factor the last interval gave.
        weight: The new factor's weight (at most 1).
        bounds: The range the result is kept in.

    Example:
        >>> round(blend(1.0, 1.21, 0.5), 6)
        1.1
        >>> blend(1.8, 4.0, 1.0)
        2.0
    """
    low, high = bounds
    w = min(1.0, weight)
    value = math.exp((1.0 - w) * math.log(previous) + w * math.log(found))
    return min(high, max(low, value))


def solve_factor(
    model: Callable[[float], float], observed: float, low: float, high: float
) -> float | None:
    """The factor in ``[low, high]`` where ``model(factor) = observed`` (bisection).

    Args:
        model: The modelled mean at a factor; it must increase with the factor, and may
            be infinite where the modelled queue would be unstable.
        observed: The observed mean.
        low: The smallest factor tried.
        high: The largest factor tried.

    Returns:
        The factor, within :data:`TOLERANCE`; ``None`` when the observation lies outside
        what the model gives over ``[low, high]`` (a transient such as a backlog after a
        cold start, not a model error) or the model cannot be evaluated.

    Example:
        >>> round(solve_factor(lambda f: 10.0 * f, 12.0, 0.5, 2.0), 2)
        1.2
        >>> solve_factor(lambda f: 10.0 * f, 30.0, 0.5, 2.0) is None
        True
    """
    if not (math.isfinite(observed) and observed > 0):
        return None
    at_low = model(low)
    if not math.isfinite(at_low):
        return None
    if observed < at_low:
        return None
    at_high = model(high)  # infinite when the queue would be unstable: above anything
    if observed > at_high:
        return None
    lo, hi = low, high
    for _ in range(25):
        mid = math.sqrt(lo * hi)
        value = model(mid)
        if math.isfinite(value) and value < observed:
            lo = mid
        else:
            hi = mid
        if hi / lo < TOLERANCE:
            break
    return math.sqrt(lo * hi)
