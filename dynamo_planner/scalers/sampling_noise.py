"""The share of a forecast band that is not the next interval's own sampling noise.

A forecast's upper quantile is measured from its past errors, and each error contains the
random draw of the interval it forecast: which requests happened to arrive, and how long
they happened to be. The SLA scaler's models already carry that draw. The prefill queue
assumes random arrivals (Poisson, or bursty at the observed ``Ca²``) and a random mix of
prompts, and the decode model a random population of running requests. Sizing for the
band *and* the queue counts the draw twice. At load x1 on the Mooncake trace (about 200
requests a minute) the draw is a 7% swing in the count and more in the mean prompt, so the
doubled count buys a worker the best static deployment does without.

:class:`SamplingNoise` keeps the recent request counts and mean lengths and estimates how
much of the spread of their interval-to-interval changes is that draw:

* a request count ``N`` drawn at rate ``λ`` varies by ``Ca² x N`` (the index of
  dispersion times the count; Poisson: ``N``);
* the mean of ``N`` lengths varies by the lengths' variance over ``N``.

A change between two intervals carries two draws, the forecast's error for the next
interval one that the models carry and one they do not (the forecast's own base). So the
band keeps ``sqrt(1 - noise / var(change))`` of its width, and never less than
``sqrt(1/2)``: at most one of the two draws is removed, whatever the estimates say. The
upper quantile becomes ``value + kept x (upper - value)``, which grows with both the
forecast and its upper quantile, so more demand never sizes for less.

With fewer than :data:`MIN_CHANGES` changes recorded, or no variance of the lengths
observed, the band is kept whole.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import collections
import math

import attrs
import numpy as np
import numpy.typing as npt

__all__ = ["MIN_CHANGES", "MIN_KEPT", "NOISE_INTERVALS", "SamplingNoise", "kept_share"]

NOISE_INTERVALS = 20
"""Recent intervals the changes and the draws are measured over."""
MIN_CHANGES = 5
"""Fewest interval-to-interval changes before any of the band is removed."""
MIN_KEPT = math.sqrt(0.5)
"""Least share of the band kept: a change carries two draws, one is removed at most."""


def kept_share(values: list[float], noise_variance: float) -> float:
    """The share of a band to keep once one interval's draw is removed.

    Args:
        values: The recent values of one series (request count, mean ISL or OSL), one
            per interval, oldest first.
        noise_variance: The variance of one interval's value from its draw alone.

    Returns:
        ``sqrt(1 - noise_variance / var(changes))``, within ``[MIN_KEPT, 1]``; 1 with
        fewer than :data:`MIN_CHANGES` changes, a non-finite value, or a non-finite or
        non-positive noise variance.

    >>> round(kept_share([100.0, 110.0, 90.0, 105.0, 95.0, 100.0], 100.0), 3)
    0.728
    >>> round(kept_share([100.0, 110.0, 90.0, 105.0, 95.0, 100.0], 500.0), 3)
    0.707
    >>> kept_share([100.0, 101.0], 100.0)
    1.0
    """
    if len(values) < MIN_CHANGES + 1:
        return 1.0
    if not (math.isfinite(noise_variance) and noise_variance > 0.0):
        return 1.0
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        return 1.0
    variance = float(np.var(np.diff(array), ddof=1))
    if variance <= noise_variance:
        return MIN_KEPT
    return max(MIN_KEPT, math.sqrt(1.0 - noise_variance / variance))


@attrs.define
class SamplingNoise:
    """Recent counts and mean lengths, and the variance of their draws.

    Attributes:
        intervals: How many recent intervals are kept.
    """

    intervals: int = NOISE_INTERVALS
    _counts: collections.deque[float] = attrs.field(init=False)
    _isl: collections.deque[tuple[float, float]] = attrs.field(init=False)
    _osl: collections.deque[tuple[float, float]] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._counts = collections.deque(maxlen=self.intervals)
        self._isl = collections.deque(maxlen=self.intervals)
        self._osl = collections.deque(maxlen=self.intervals)

    def record(
        self,
        num_req: float,
        isl_mean_tokens: float | None = None,
        osl_mean_tokens: float | None = None,
        isl_samples: npt.NDArray[np.float64] | None = None,
        osl_samples: npt.NDArray[np.float64] | None = None,
    ) -> None:
        """Add one observed interval.

        A mean length is recorded only with at least two samples of it and a positive
        count: its draw's variance is the samples' variance over the count (the samples
        may be a subsample of the interval's requests).

        Args:
            num_req: Requests in the interval.
            isl_mean_tokens: Their mean input length, if known.
            osl_mean_tokens: Their mean output length, if known.
            isl_samples: Input lengths of (some of) them.
            osl_samples: Output lengths of (some of) them.
        """
        if not (math.isfinite(num_req) and num_req >= 0.0):
            return
        self._counts.append(num_req)
        for series, mean, samples in (
            (self._isl, isl_mean_tokens, isl_samples),
            (self._osl, osl_mean_tokens, osl_samples),
        ):
            if mean is None or samples is None or samples.size < 2 or num_req <= 0.0:
                continue
            if math.isfinite(mean):
                series.append((mean, float(np.var(samples, ddof=1)) / num_req))

    def kept_count(self, dispersion: float) -> float:
        """Share of the request count's band to keep, for arrivals at ``Ca² = dispersion``."""
        counts = list(self._counts)
        if not counts:
            return 1.0
        return kept_share(counts, dispersion * float(np.mean(counts)))

    def kept_isl(self) -> float:
        """Share of the mean input length's band to keep."""
        return _kept_mean(self._isl)

    def kept_osl(self) -> float:
        """Share of the mean output length's band to keep."""
        return _kept_mean(self._osl)


def _kept_mean(series: collections.deque[tuple[float, float]]) -> float:
    if not series:
        return 1.0
    means = [m for m, _ in series]
    noise = float(np.mean([v for _, v in series]))
    return kept_share(means, noise)
