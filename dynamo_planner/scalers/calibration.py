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

The decode model's *spread* (the ITL at the attainment quantile less the mean) is calibrated
the same way, from per-request ITLs where the source has them, else from the ITL buckets a
frontend reports (:func:`spread_from_histogram`).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist

import attrs

__all__ = [
    "CALIBRATION_BOUNDS",
    "HistogramSpread",
    "blend",
    "solve_factor",
    "spread_from_histogram",
]

CALIBRATION_BOUNDS = (0.5, 2.0)
"""The range a calibration factor is kept in."""
TOLERANCE = 1.005
""":func:`solve_factor` stops when its bracket is this narrow (a ratio)."""
MIN_BUCKET_COUNT = 10.0
"""Fewest counts :func:`spread_from_histogram` needs on each side of a bucket bound."""
MIN_BOUND_Z = 0.5
"""Fewest standard deviations a bucket bound must lie from the mean to measure the spread
(nearer, the share below it says little about the width)."""


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


@attrs.frozen
class HistogramSpread:
    """The standard deviation a histogram gives, and the bucket bound it was read at.

    Attributes:
        sd: The standard deviation, in the histogram's unit.
        bound: The bucket bound used.
        share_above: The share of counts above ``bound``.
    """

    sd: float
    bound: float
    share_above: float


def spread_from_histogram(
    histogram: tuple[tuple[float, float], ...], mean: float
) -> HistogramSpread | None:
    """The spread of a cumulative histogram about its mean, read as a normal's.

    A bucket bound ``b`` with a share ``p`` of the counts below it gives
    ``sd = (b - mean) / z(p)``, ``z`` the standard-normal quantile. Bounds count only
    with at least :data:`MIN_BUCKET_COUNT` counts on each side and at least
    :data:`MIN_BOUND_Z` standard deviations from the mean. The bound above the mean with
    the smallest share above it is used (the tail is what the attainment quantile is
    about); without one, the nearest bound below the mean. The normal is the decode
    model's own shape (mean plus ``z`` standard deviations), so the result is compared
    with the model's standard deviation like for like.

    Args:
        histogram: Cumulative ``(upper bound, count)`` pairs, the last ``+Inf`` (or the
            total), as :class:`~dynamo_planner.values.Observation` carries them.
        mean: The mean of the observed values, e.g. ``Observation.itl_ms``.

    Returns:
        The spread, or ``None`` when no bound qualifies (every count in one bucket, or
        too few counts, or no finite mean).

    Example:
        Tokens with a mean ITL of 13 ms, 0.1% of them above the 20 ms bound:

        >>> hist = ((10.0, 9_000.0), (20.0, 999_000.0), (float("inf"), 1_000_000.0))
        >>> found = spread_from_histogram(hist, 13.0)
        >>> found.bound, round(found.sd, 2)
        (20.0, 2.27)
    """
    if not histogram or not math.isfinite(mean):
        return None
    total = histogram[-1][1]
    above_mean: HistogramSpread | None = None
    below_mean: HistogramSpread | None = None
    for bound, count in histogram:
        above = total - count
        if not math.isfinite(bound) or min(count, above) < MIN_BUCKET_COUNT:
            continue
        z = NormalDist().inv_cdf(count / total)
        if abs(z) < MIN_BOUND_Z:
            continue
        sd = (bound - mean) / z
        if sd <= 0.0:  # the share and the mean disagree on the bound's side
            continue
        found = HistogramSpread(sd=sd, bound=bound, share_above=above / total)
        if bound > mean:
            above_mean = found  # later bounds leave a smaller share above
        else:
            below_mean = found  # later bounds lie nearer the mean
    return above_mean or below_mean
