"""The request mix a sizing evaluates: input and output lengths, one pair per request.

The ``sla`` scaler's queueing and decode models work on a sample of requests, not on mean
lengths, because a mix of short and long prompts queues differently from its mean. The mix
comes from the per-request lengths a source reports (the demand's forecast samples, or the
last observation's), in this order:

* the samples are cleaned (negative and non-finite values dropped);
* ISL and OSL samples of different sizes are paired by quantiles, shuffled, as the source
  does not say which input went with which output;
* a mix above :data:`MAX_MIX` requests is subsampled (seeded, so a decision is
  reproducible);
* the lengths are scaled to the means being sized for (the upper forecast, raised by a
  rising trend), by a factor kept within ``[0.5, 2]``.

Without per-request samples, the frontend's ISL and OSL histograms stand in
(``Observation.isl_histogram_tokens``, ``osl_histogram_tokens``, read by the Prometheus
source): :func:`lengths_from_histogram` turns each into representative lengths at evenly
spaced quantiles, and the OSLs are shuffled, as a histogram does not pair them with
inputs. With neither, an exponential mix around the means stands in
(:func:`dynamo_planner.scalers.queueing.exponential_mix`). The words say which.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math

import attrs
import numpy as np
import numpy.typing as npt

from dynamo_planner.scalers.queueing import exponential_mix
from dynamo_planner.values import Demand, Observation, Sample

__all__ = [
    "MAX_MIX",
    "RequestMix",
    "clean",
    "lengths_from_histogram",
    "observed_lengths",
    "observed_mix",
    "sized_mix",
]

FloatArray = npt.NDArray[np.float64]

MAX_MIX = 1024
"""Most requests of a mix the models evaluate (a larger mix is subsampled, seeded)."""
SCALE_BOUNDS = (0.5, 2.0)
"""The range of the factor that scales a mix's lengths to the means sized for."""


@attrs.frozen(kw_only=True, eq=False)
class RequestMix:
    """Input and output lengths of the requests a sizing evaluates.

    Attributes:
        isl: Input lengths, tokens.
        osl: Output lengths, tokens (paired with ``isl``).
        words: Where the mix came from, for the plan's reasons.
    """

    isl: FloatArray
    osl: FloatArray
    words: str

    @property
    def context(self) -> FloatArray:
        """Each request's mean context in decode, ``ISL + OSL / 2`` tokens."""
        return np.asarray(self.isl + self.osl / 2.0, dtype=np.float64)


def clean(values: tuple[float, ...]) -> FloatArray:
    """The finite, non-negative values, as an array.

    Example:
        >>> clean((3.0, -1.0, float("nan"), 5.0)).tolist()
        [3.0, 5.0]
    """
    array = np.asarray(values, dtype=np.float64)
    return np.asarray(array[np.isfinite(array) & (array >= 0)], dtype=np.float64)


def lengths_from_histogram(
    buckets: tuple[tuple[float, float], ...],
    *,
    mean: float | None = None,
    size: int = MAX_MIX,
) -> FloatArray:
    """Representative lengths of a histogram, one per evenly spaced quantile.

    Each bucket keeps exactly its share of the lengths. Within a bucket they are spread
    uniformly (as Prometheus' ``histogram_quantile`` interpolates), from 0 below the
    first bound. Given the observed ``mean`` (the histogram's ``sum / count``):

    * when the lengths so placed fall short of the mean, the open last bucket
      (``+Inf``) reaches past the last finite bound by exponential quantiles (a long
      tail, as prompt lengths have), as far as the mean asks; without a mean, or when
      the finite buckets already reach it, its share sits at the last finite bound
      (Prometheus' convention);
    * when they exceed it, the lengths lean, in every finite bucket alike, toward its
      lower bound (position ``u**k`` instead of ``u`` within the bucket, ``k`` up to 8)
      until all of them have the mean; they lean toward the upper bounds (``k`` down to
      1/8) when they fall short and there is no open bucket to stretch. Coarse buckets
      (the exporter's double in width) hold lengths that crowd one end, and uniform
      placement overstated the mean prompt of Azure intervals.

    Args:
        buckets: Cumulative ``(upper bound, count)`` pairs sorted by bound, counts
            non-decreasing (as :class:`~dynamo_planner.values.Observation` keeps them).
        mean: The observed mean length (the histogram's ``sum / count``), if known.
        size: How many lengths to return.

    Returns:
        ``size`` lengths in increasing order; empty when the histogram counts nothing.

    Example:
        >>> buckets = ((100.0, 50.0), (1000.0, 100.0), (math.inf, 100.0))
        >>> lengths_from_histogram(buckets, size=4).tolist()
        [25.0, 75.0, 325.0, 775.0]
    """
    if not buckets or size < 1:
        return np.empty(0, dtype=np.float64)
    bounds = np.array([b for b, _ in buckets], dtype=np.float64)
    cumulative = np.array([c for _, c in buckets], dtype=np.float64)
    total = float(cumulative[-1])
    if not total > 0:
        return np.empty(0, dtype=np.float64)
    levels = (np.arange(size, dtype=np.float64) + 0.5) / size * total
    index = np.minimum(
        np.searchsorted(cumulative, levels, side="right"), bounds.size - 1
    )
    below = np.concatenate(([0.0], cumulative[:-1]))[index]
    width = cumulative[index] - below
    share = np.where(width > 0, (levels - below) / np.where(width > 0, width, 1.0), 0.5)
    lows = np.concatenate(([0.0], bounds[:-1]))[index]
    highs = bounds[index]
    lows = np.minimum(lows, highs)  # a first bound below 0 starts at itself
    open_ = ~np.isfinite(highs)
    finite = ~open_
    lengths = np.where(open_, lows, lows + share * np.where(finite, highs - lows, 0.0))
    if mean is None or not (math.isfinite(mean) and mean > 0):
        return np.asarray(lengths, np.float64)
    # the open bucket reaches past its bound only as far as the mean asks
    excess = mean * size - float(np.sum(lengths))
    if open_.any() and excess > 0:
        tail = -np.log1p(-share[open_])  # exponential quantiles
        lengths[open_] = lows[open_] + tail * excess / float(np.sum(tail))
        return np.asarray(lengths, np.float64)
    span = np.where(finite, highs - lows, 0.0)
    k = _lean(
        lows[finite],
        share[finite],
        span[finite],
        mean * size - float(np.sum(lengths[open_])),
    )
    lengths[finite] = lows[finite] + share[finite] ** k * span[finite]
    return np.asarray(lengths, np.float64)


def _lean(low: FloatArray, share: FloatArray, span: FloatArray, total: float) -> float:
    """The exponent ``k`` in ``[1/8, 8]`` whose lengths sum to ``total``.

    The lengths are ``low + share**k x span``; their sum falls as ``k`` grows, so ``k``
    is found by bisection in ``log k``, and clamped to the range.
    """
    lo, hi = math.log(1.0 / 8.0), math.log(8.0)

    def sum_at(log_k: float) -> float:
        return float(np.sum(low + share ** math.exp(log_k) * span))

    if sum_at(hi) >= total:
        return 8.0
    if sum_at(lo) <= total:
        return 1.0 / 8.0
    for _ in range(40):
        mid = (lo + hi) / 2.0
        if sum_at(mid) > total:
            lo = mid
        else:
            hi = mid
    return math.exp((lo + hi) / 2.0)


def sized_mix(
    demand: Demand,
    observation: Observation | None,
    *,
    isl_mean: float | None = None,
    osl_mean: float | None = None,
) -> RequestMix:
    """The request mix to size for: known lengths where there are, scaled to the means.

    Args:
        demand: The forecast; its samples are used first.
        observation: The last interval, whose samples, else ISL and OSL histograms,
            stand in when the demand has no samples.
        isl_mean: Mean ISL to scale to (default: the demand's upper ISL).
        osl_mean: Mean OSL to scale to (default: the demand's upper OSL).
    """
    isl_mean = demand.isl_tokens.upper if isl_mean is None else isl_mean
    osl_mean = demand.osl_tokens.upper if osl_mean is None else osl_mean
    known = _paired(demand.isl_samples_tokens, demand.osl_samples_tokens, "the demand")
    if known is None and observation is not None:
        known = _observed_pairs(observation)
    if known is None:
        isl = exponential_mix(max(isl_mean, 1.0))
        osl = exponential_mix(max(osl_mean, 1.0))
        osl = osl[np.random.default_rng(0).permutation(osl.size)]
        return RequestMix(
            isl=isl,
            osl=osl,
            words=(
                f"mix: no per-request lengths known; an exponential mix around the "
                f"forecast ISL {isl_mean:,.0f} / OSL {osl_mean:,.0f} tokens stands in"
            ),
        )
    isl, osl, where = known
    raw_isl, raw_osl = float(np.mean(isl)), float(np.mean(osl))
    isl, isl_factor = _scale_to(isl, isl_mean)
    osl, osl_factor = _scale_to(osl, osl_mean)
    return RequestMix(
        isl=isl,
        osl=np.maximum(osl, 1.0),
        words=(
            f"mix: {isl.size} requests from {where} (ISL mean {raw_isl:,.0f}, OSL mean "
            f"{raw_osl:,.0f} tokens), scaled x{isl_factor:.2f} / x{osl_factor:.2f} to "
            f"the sized ISL {isl_mean:,.0f} / OSL {osl_mean:,.0f} "
            "(upper forecast and trend)"
        ),
    )


def observed_mix(observation: Observation) -> RequestMix | None:
    """The last interval's mix as observed: samples, histograms, else the means.

    Returns:
        The mix, or ``None`` when neither lengths nor mean lengths were observed.
    """
    known = _observed_pairs(observation)
    if known is not None:
        isl, osl, where = known
        return RequestMix(isl=isl, osl=np.maximum(osl, 1.0), words=f"observed: {where}")
    if observation.isl_tokens.known and observation.osl_tokens.known:
        isl = exponential_mix(max(observation.isl_tokens.value, 1.0))
        osl = exponential_mix(max(observation.osl_tokens.value, 1.0))
        return RequestMix(isl=isl, osl=osl, words="observed means")
    return None


def observed_lengths(observation: Observation) -> tuple[FloatArray, FloatArray]:
    """The last interval's input and output lengths.

    Each comes from its samples, else is drawn from its histogram; the two are not
    paired and may differ in size. Either is empty when the source gave neither for it.
    """
    return (
        _lengths(
            observation.isl_samples_tokens,
            observation.isl_histogram_tokens,
            observation.isl_tokens,
        ),
        _lengths(
            observation.osl_samples_tokens,
            observation.osl_histogram_tokens,
            observation.osl_tokens,
        ),
    )


def _lengths(
    samples: tuple[float, ...],
    histogram: tuple[tuple[float, float], ...],
    mean: Sample,
) -> FloatArray:
    clean_samples = clean(samples)
    if clean_samples.size:
        return clean_samples
    return lengths_from_histogram(histogram, mean=_known_mean(mean))


def _paired(
    isl_samples: tuple[float, ...], osl_samples: tuple[float, ...], where: str
) -> tuple[FloatArray, FloatArray, str] | None:
    """Per-request samples, paired and subsampled; ``None`` unless both are known."""
    isl, osl = clean(isl_samples), clean(osl_samples)
    if not (isl.size and osl.size):
        return None
    isl, osl = _subsample(*_pair(isl, osl))
    return isl, osl, where


def _observed_pairs(
    observation: Observation,
) -> tuple[FloatArray, FloatArray, str] | None:
    """The observation's samples, else lengths drawn from its ISL and OSL histograms."""
    known = _paired(
        observation.isl_samples_tokens,
        observation.osl_samples_tokens,
        "the last observation",
    )
    if known is not None:
        return known
    isl, osl = observed_lengths(observation)
    if not (isl.size and osl.size):
        return None
    isl, osl = _subsample(*_pair(isl, osl))
    # a histogram does not say which input went with which output
    osl = osl[np.random.default_rng(0).permutation(osl.size)]
    return isl, osl, "the last interval's ISL and OSL histograms"


def _known_mean(sample: Sample) -> float | None:
    return sample.value if sample.known else None


def _subsample(isl: FloatArray, osl: FloatArray) -> tuple[FloatArray, FloatArray]:
    if isl.size <= MAX_MIX:
        return isl, osl
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(isl.size, MAX_MIX, replace=False))
    return isl[pick], osl[pick]


def _pair(isl: FloatArray, osl: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Pair ISL and OSL samples; unequal lengths are matched by quantiles, shuffled."""
    if isl.size == osl.size:
        return isl, osl
    size = min(MAX_MIX, max(isl.size, osl.size))
    levels = (np.arange(size) + 0.5) / size
    isl_q = np.quantile(isl, levels)
    osl_q = np.quantile(osl, levels)
    rng = np.random.default_rng(0)
    return isl_q, osl_q[rng.permutation(size)]


def _scale_to(values: FloatArray, mean: float) -> tuple[FloatArray, float]:
    current = float(np.mean(values)) if values.size else 0.0
    if current <= 0 or not (mean > 0):
        return values, 1.0
    low, high = SCALE_BOUNDS
    factor = min(high, max(low, mean / current))
    return values * factor, factor
