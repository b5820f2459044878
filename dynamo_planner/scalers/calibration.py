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

:class:`ModelCalibration` holds the three running factors and applies one interval's
evidence to them; the ``sla`` scaler decides which intervals calibrate (replicas steady for
:data:`STEADY_INTERVALS` decisions, at least :data:`MIN_CALIBRATION_REQUESTS` requests) and
supplies the model's means at the observed load.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist
from typing import Any, Literal

import attrs
import numpy as np

from dynamo_planner.scalers.request_mix import clean
from dynamo_planner.values import Observation, Status

__all__ = [
    "CALIBRATION_BOUNDS",
    "HistogramSpread",
    "ModelCalibration",
    "blend",
    "observed_spread",
    "solve_factor",
    "spread_from_histogram",
]

CALIBRATION_BOUNDS = (0.5, 2.0)
"""The range a calibration factor is kept in."""
SPREAD_BOUNDS = (0.25, 2.0)
"""Bounds of the decode spread factor (:attr:`ModelCalibration.spread`)."""
MIN_CALIBRATION_REQUESTS = 20
"""Fewest requests in an interval for it to calibrate the model."""
STEADY_INTERVALS = 2
"""Decisions the running replicas must have been unchanged for an interval to calibrate."""
MIN_SPREAD_SAMPLES = 50
"""Fewest per-request ITLs (or requests in the buckets) an interval needs to measure the
spread."""
SPREAD_TAIL_SAMPLES = 10
"""Fewest requests above the quantile the spread is measured at."""
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


Component = Literal["prefill", "decode"]


@attrs.define(kw_only=True)
class ModelCalibration:
    """The running factors on the model's prefill time, decode step time and ITL spread.

    Each factor starts at 1. :meth:`update_factor` blends in the factor that explains an
    interval's mean TTFT or ITL; :meth:`update_spread` the ratio of the observed ITL
    spread to the model's.

    Attributes:
        attainment: The share of requests the targets are for; the spread is measured at
            this quantile.
        weight: A new interval's weight in each running factor.
        prefill: The factor on prefill times.
        decode: The factor on decode step times.
        spread: The factor on the decode model's ITL spread (the ITL at the attainment
            quantile less the mean).
    """

    attainment: float
    weight: float = 0.5
    prefill: float = 1.0
    decode: float = 1.0
    spread: float = 1.0

    @property
    def words(self) -> str:
        """The prefill and decode factors, for a plan's reasons."""
        return f"factors prefill {self.prefill:.2f}, decode {self.decode:.2f}"

    def spread_on(self, replicas: int) -> float:
        """The spread factor for ``replicas`` decode workers: 1 for a single one.

        The factor measures how admission to the worker with the fewest reserved KV
        tokens evens out work across several workers; a single worker has nothing to
        even out.
        """
        return self.spread if replicas >= 2 else 1.0

    def update_factor(
        self,
        component: Component,
        metric: str,
        observed: float,
        model: Callable[[float], float],
        replicas: int,
        details: dict[str, Any],
    ) -> tuple[str, bool]:
        """Blend the interval's factor into the component's running factor.

        Args:
            component: ``"prefill"`` or ``"decode"``.
            metric: What was observed (``"TTFT"``, ``"ITL"``), for the words.
            observed: The interval's observed mean, in ms.
            model: The model's mean at the observed load for a factor, in ms.
            replicas: The component's running replicas, for the words.
            details: The plan's details; the observed and modelled means are added.

        Returns:
            The words, and whether a factor in :data:`CALIBRATION_BOUNDS` explained the
            interval (if not, it is a transient and changes nothing).
        """
        low, high = CALIBRATION_BOUNDS
        previous = self.prefill if component == "prefill" else self.decode
        modelled = model(previous)
        found = solve_factor(model, observed, low, high)
        details[f"{component}_calibration_observed_ms"] = observed
        details[f"{component}_calibration_modelled_ms"] = modelled
        head = (
            f"calibration: observed mean {metric} {observed:,.2f} ms vs model "
            f"{modelled:,.2f} ms at {replicas} {component} replicas"
        )
        if found is None:
            return (
                f"{head}; no factor in [{low:g}, {high:g}] explains it, so the interval "
                f"is treated as a transient (e.g. a backlog) and ignored; {component} "
                f"factor stays {previous:.2f}"
            ), False
        value = blend(previous, found, self.weight)
        if component == "prefill":
            self.prefill = value
        else:
            self.decode = value
        return (
            f"{head} -> interval factor {found:.2f}; {component} factor now {value:.2f} "
            f"(blended with weight {self.weight:g}, bounded to [{low:g}, {high:g}])"
        ), True

    def update_spread(
        self,
        observation: Observation,
        model_spread_ms: Callable[[float], float],
        replicas: int,
        details: dict[str, Any],
        *,
        transient: bool = False,
    ) -> str:
        """Fold the interval's ITL spread into :attr:`spread`; say so.

        Not on one decode worker, nor in an interval whose mean ITL the calibration
        took for a transient.

        Args:
            observation: The interval, with per-request ITLs or ITL buckets.
            model_spread_ms: The model's ITL at a standard-normal quantile ``z`` less its
                mean ITL, at the observed load on the running workers, in ms.
            replicas: The running decode workers.
            details: The plan's details; the observed and modelled spreads are added.
            transient: Whether the mean ITL's calibration found a transient.

        Returns:
            One sentence for the plan's reasons.
        """
        previous = self.spread
        if replicas < 2:
            return (
                "calibration: ITL spread not measured on one decode worker (the factor "
                f"is how admission evens out several); spread factor stays {previous:.2f}"
            )
        if transient:
            return (
                "calibration: ITL spread not measured in a transient; spread factor "
                f"stays {previous:.2f}"
            )
        measured = observed_spread(observation, self.attainment)
        if isinstance(measured, str):
            return (
                f"calibration: ITL spread not measured ({measured}); spread factor "
                f"stays {previous:.2f}"
            )
        quantile, mean, observed, source = measured
        modelled = model_spread_ms(NormalDist().inv_cdf(quantile))
        head = (
            f"calibration: observed ITL p{quantile * 100:.4g} {mean + observed:.2f} ms "
            f"({source}), {observed:.2f} ms over the mean, vs the model's "
            f"{modelled:.2f} ms at {replicas} decode replicas"
        )
        if not (math.isfinite(modelled) and modelled > 0 and observed > 0):
            return f"{head}; not comparable, spread factor stays {previous:.2f}"
        low, high = SPREAD_BOUNDS
        found = min(high, max(low, observed / modelled))
        value = blend(previous, found, self.weight, SPREAD_BOUNDS)
        self.spread = value
        details["decode_spread_observed_ms"] = observed
        details["decode_spread_modelled_ms"] = modelled
        return (
            f"{head} -> interval spread factor {found:.2f}; spread factor now "
            f"{value:.2f} (blended with weight {self.weight:g}, bounded to "
            f"[{low:g}, {high:g}])"
        )


def observed_spread(
    observation: Observation, attainment: float
) -> tuple[float, float, float, str] | str:
    """``(quantile, mean, ITL at the quantile less the mean, source)``, or why not.

    From per-request ITLs where there are at least :data:`MIN_SPREAD_SAMPLES` (the
    empirical quantile, at a lower quantile while fewer than :data:`SPREAD_TAIL_SAMPLES`
    would lie above it), else from the ITL buckets and the mean ITL, read as a normal's
    (:func:`spread_from_histogram`) at the attainment quantile, when the OSL buckets (the
    requests the ITLs came from; the ITL buckets themselves where there are none) count
    at least :data:`MIN_SPREAD_SAMPLES`.

    Args:
        observation: The interval.
        attainment: The quantile to measure at.

    Returns:
        The spread and where it came from, or a phrase saying why it was not measured.
    """
    samples = clean(observation.itl_samples_ms)
    if samples.size >= MIN_SPREAD_SAMPLES:
        quantile = min(attainment, 1.0 - SPREAD_TAIL_SAMPLES / samples.size)
        mean = float(np.mean(samples))
        observed = float(np.quantile(samples, quantile)) - mean
        return quantile, mean, observed, f"{samples.size} per-request ITLs"
    if not observation.itl_histogram_ms:
        if samples.size:
            return f"{samples.size} per-request ITLs, {MIN_SPREAD_SAMPLES} needed"
        return "no per-request ITLs or ITL buckets observed"
    if observation.itl_ms.status is not Status.OK:
        return "ITL buckets without a mean ITL"
    # the ITL buckets count tokens; the OSL buckets count the requests they came from
    counted = observation.osl_histogram_tokens or observation.itl_histogram_ms
    if counted[-1][1] < MIN_SPREAD_SAMPLES:
        return f"ITL buckets of {counted[-1][1]:,.0f} requests, {MIN_SPREAD_SAMPLES} needed"
    mean = observation.itl_ms.value
    found = spread_from_histogram(observation.itl_histogram_ms, mean)
    if found is None:
        return "no ITL bucket bound with enough counts on each side"
    observed = NormalDist().inv_cdf(attainment) * found.sd
    side = (
        f"{found.share_above:.3%} above"
        if found.bound > mean
        else f"{1.0 - found.share_above:.3%} below"
    )
    source = (
        f"ITL buckets: {side} {found.bound:g} ms, mean {mean:.2f} ms, sd "
        f"{found.sd:.2f} ms as a normal's"
    )
    return attainment, mean, observed, source
