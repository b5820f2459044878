"""What the last few intervals' request counts say about where demand is going.

The ``sla`` scaler keeps a short series of per-interval values (request counts, mean
lengths) and asks three questions of it, all answered by one least-squares line through
the points:

* :func:`trend`: how fast does the value grow per interval? The slope less its noise
  (``sqrt(slope² - SE²)`` with the slope's sign), so values that merely scatter add
  nothing and a clear trend is kept nearly whole. The lookahead over the cold start
  extrapolates it.
* :func:`rising` and :func:`falling`: is the slope clearly above (below) zero, by ``t``
  standard errors? The attainment feedback is not relaxed on a ramp, rises need no
  confirmation on a steep one, and a scale-down skips the hold on a clear fall.
* :func:`increase_spread`: how large are the one-interval increases, at a quantile? The
  band of a forecast that has none.
* :func:`turned`: did the last count fall below the one before by more than the two
  counts' own noise? A slope over six intervals still says "rising" for a while after a
  ramp's peak; one clear fall says the peak has passed.

With two points the slope is exact and its standard error unknown (0); with one, there is
no slope.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["falling", "increase_spread", "rising", "slope", "trend", "turned"]


def slope(values: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope per interval of the values, and its standard error.

    Args:
        values: One value per interval, oldest first.

    Returns:
        ``(slope, standard error)``: ``(0, 0)`` with under 2 values; the error is 0 with
        2 (no residual left).

    Example:
        >>> slope([1.0, 2.0, 3.0])
        (1.0, 0.0)
    """
    if len(values) < 2:
        return 0.0, 0.0
    y = np.asarray(values, dtype=np.float64)
    x = np.arange(y.size, dtype=np.float64)
    x -= x.mean()
    sxx = float(np.sum(x * x))
    fitted = float(np.sum(x * (y - y.mean())) / sxx)
    if y.size < 3:
        return fitted, 0.0
    residual = y - y.mean() - fitted * x
    return fitted, math.sqrt(float(np.sum(residual**2)) / (y.size - 2) / sxx)


def trend(values: Sequence[float]) -> float:
    """The values' least-squares slope per interval, less its noise.

    ``slope² - SE²`` estimates the true slope's square without the bias noise adds, so
    the trend is ``sqrt(max(0, slope² - SE²))`` with the slope's sign: a slope within one
    standard error is no trend, and a clear one is kept nearly whole (94% at three
    standard errors).

    Args:
        values: One value per interval, oldest first.

    Returns:
        The trend per interval: 0 with under 2 values, the plain slope with 2.

    Example:
        >>> trend([10.0, 14.0, 9.0, 13.0])  # a slope of 0.4, within its noise
        0.0
        >>> trend([10.0, 20.0, 30.0])
        10.0
    """
    fitted, se = slope(values)
    return math.copysign(math.sqrt(max(0.0, fitted * fitted - se * se)), fitted)


def rising(values: Sequence[float], t: float = 2.0) -> bool:
    """Whether the slope is above ``t`` standard errors (with two values: any rise).

    Args:
        values: One value per interval, oldest first.
        t: Standard errors the slope must exceed.
    """
    fitted, se = slope(values)
    return fitted > t * se


def falling(values: Sequence[float], t: float = 2.0) -> bool:
    """Whether the slope is below ``-t`` standard errors, with at least 3 values.

    Args:
        values: One value per interval, oldest first.
        t: Standard errors the slope must be below zero by.
    """
    if len(values) < 3:
        return False
    fitted, se = slope(values)
    return fitted < -t * se


def increase_spread(values: Sequence[float], quantile: float) -> float:
    """The ``quantile`` of the one-interval increases (0 with under 2 values).

    Args:
        values: One value per interval, oldest first.
        quantile: The level, in ``[0, 1]``.

    Returns:
        That quantile of the changes between consecutive values, at least 0.

    Example:
        >>> increase_spread([100.0, 110.0, 105.0, 125.0], 0.5)
        10.0
    """
    if len(values) < 2:
        return 0.0
    changes = np.diff(np.asarray(values, dtype=np.float64))
    return max(0.0, float(np.quantile(changes, quantile)))


def turned(counts: Sequence[float], dispersion: float = 1.0, z: float = 1.0) -> bool:
    """Whether the last count fell below the one before by more than their noise.

    Two interval counts of a process with index of dispersion ``D`` differ by noise of
    standard deviation about ``sqrt(D (a + b))``; a fall of more than ``z`` of those
    says the demand has turned, whatever the slope over the older intervals says.

    Args:
        counts: Request counts, one per interval, oldest first.
        dispersion: The counts' index of dispersion (1 for Poisson).
        z: Standard deviations the fall must exceed.

    Example:
        >>> turned([13018.0, 13387.0, 13078.0])
        True
        >>> turned([13018.0, 13387.0, 13300.0])
        False
    """
    if len(counts) < 2:
        return False
    before, last = float(counts[-2]), float(counts[-1])
    noise = math.sqrt(max(0.0, dispersion) * max(0.0, before + last))
    return last < before - z * noise
