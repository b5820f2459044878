"""The arrivals' index of dispersion, from the samples of a request counter.

The ``sla`` scaler's prefill queue needs ``Ca²``, the burstiness of arrivals. The simulator
counts arrivals per second; a live deployment has only its frontend's request counter as
Prometheus scraped it. Between two scrapes the counter rose by the requests that arrived
in between, so the increments are arrival counts over the scrape interval, and their
variance over their mean is the index of dispersion at that interval (1 for Poisson
arrivals at any interval, more for bursty ones).

:func:`index_of_dispersion` estimates it from one or more counters' samples over an
adjustment interval:

* a counter that went down was reset (a restarted frontend); its increment is the new
  value, as Prometheus' ``increase`` counts it;
* the rate may drift within the interval (a ramp), which is not burstiness: each
  counter's increments are fitted with a rate linear in time, weighted by the time
  between the scrapes (a missed scrape gives one increment over two intervals), and the
  index is the Pearson statistic of the residuals over their degrees of freedom, so
  Poisson arrivals at a drifting rate still give about 1;
* several counters (frontends behind one model) are pooled as independent streams;
* fewer than :data:`MIN_INCREMENTS` increments, no arrival at all, or scrapes further
  apart than :data:`MAX_SCRAPE_S` (two seconds, by their median) give ``None``
  (unknown).

:func:`interval_dispersion` gives the same estimate for each interval of a recorded trace,
from its arrival times as a counter scraped every second would show them: where the live
counter is scraped too rarely, a past trace of the same traffic tells what ``Ca²`` to
configure (``sla_arrival_cv2``).

The estimate is at the scrape interval, not per second. For a Poisson process the two
agree; bursts shorter than the scrape interval show less, and swings of the rate over a
few scrape intervals more, the more the longer the interval: that is why coarser scrapes
are not used (:data:`MAX_SCRAPE_S`).

Example:
    A counter scraped every second: 4, 2, 4, 2... requests a second, then 0, 0, 12 a
    second:

    >>> steady = [(float(t), 3.0 * t + (t % 2)) for t in range(14)]
    >>> round(index_of_dispersion([steady]), 2)
    0.38
    >>> bursty = [(float(t), 12.0 * (t // 3)) for t in range(14)]
    >>> round(index_of_dispersion([bursty]), 1)
    9.7

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "MAX_SCRAPE_S",
    "MIN_INCREMENTS",
    "counter_increments",
    "counter_samples",
    "index_of_dispersion",
    "interval_dispersion",
]

FloatArray = npt.NDArray[np.float64]

MIN_INCREMENTS = 10
"""Fewest increments (scrape intervals) an estimate needs, over all counters."""
MAX_SCRAPE_S = 2.0
"""Coarsest scrape interval (the median time between samples) the index is taken from.

Counted over longer windows, the index carries the swings of the rate over those windows
besides the arrivals' burstiness; for a rate that wanders it grows with the window, and
the ``sla`` scaler's queue (and its calibration, which explains observed waits with it)
would take those swings for bursts. In the replays of Azure conversation x10 read from
histograms (``python benchmarks/sla_table.py --frontend-metrics histograms
--frontend-scrape-s S --no-oracle``), 1 and 2 s scrapes keep all four settings on target;
before this limit, 5 s scrapes made one setting miss it (the commit that set the limit
gives the figures)."""


def counter_increments(
    samples: Sequence[tuple[float, float]],
) -> tuple[list[float], list[float], list[float]]:
    """``(increments, durations_s, midpoints_s)`` between consecutive counter samples.

    Samples are ``(time_s, value)`` in time order. A value below the one before it is a
    reset: the increment is the new value. Non-finite samples and samples not later than
    the one before are left out.

    Example:
        >>> counter_increments([(0.0, 5.0), (1.0, 7.0), (2.0, 1.0)])
        ([2.0, 1.0], [1.0, 1.0], [0.5, 1.5])
    """
    increments: list[float] = []
    durations: list[float] = []
    midpoints: list[float] = []
    previous: tuple[float, float] | None = None
    for t, value in samples:
        if not (math.isfinite(t) and math.isfinite(value)):
            continue
        if previous is not None:
            t0, v0 = previous
            if t <= t0:
                continue
            increments.append(value - v0 if value >= v0 else value)
            durations.append(t - t0)
            midpoints.append((t + t0) / 2.0)
        previous = (t, value)
    return increments, durations, midpoints


def _residuals(
    increments: Sequence[float], durations: Sequence[float], midpoints: Sequence[float]
) -> tuple[float, float, int]:
    """``(sum of r²/τ, total increments, degrees of freedom)`` of one counter's fit."""
    d = np.asarray(increments, dtype=np.float64)
    tau = np.asarray(durations, dtype=np.float64)
    t = np.asarray(midpoints, dtype=np.float64)
    t = t - t.mean()
    root = np.sqrt(tau)
    # E[d] = tau (a + b t), Var[d] ~ tau: least squares on d / sqrt(tau)
    design = np.column_stack((root, root * t))
    target = d / root
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coef
    return float(residual @ residual), float(d.sum()), d.size - 2


def index_of_dispersion(
    counters: Iterable[Sequence[tuple[float, float]]],
    *,
    min_increments: int = MIN_INCREMENTS,
    max_scrape_s: float = MAX_SCRAPE_S,
) -> float | None:
    """Variance over mean of arrivals between scrapes, pooled over counters, or ``None``.

    Args:
        counters: Each counter's ``(time_s, value)`` samples over the interval, in time
            order (one counter per frontend series).
        min_increments: Fewest increments needed over all counters.
        max_scrape_s: Coarsest median time between samples accepted.

    Returns:
        The index (1 for Poisson arrivals), or ``None`` when there are too few
        increments, no arrival, or the scrapes are too far apart.
    """
    pearson = 0.0
    expected = 0.0
    spacings: list[float] = []
    for samples in counters:
        increments, durations, midpoints = counter_increments(samples)
        if len(increments) < 3:
            continue
        squares, total, dof = _residuals(increments, durations, midpoints)
        # a counter's rate per second, times the seconds its residuals cover
        rate_per_s = total / math.fsum(durations)
        pearson += squares
        expected += rate_per_s * dof
        spacings.extend(durations)
    if len(spacings) < min_increments or expected <= 0.0:
        return None
    if float(np.median(spacings)) > max_scrape_s:
        return None
    return pearson / expected


def counter_samples(
    arrival_s: npt.ArrayLike, start_s: float, end_s: float, scrape_s: float
) -> list[tuple[float, float]]:
    """A request counter as scraped every ``scrape_s`` within ``(start_s, end_s]``.

    Args:
        arrival_s: Arrival times, sorted ascending.
        start_s: Start of the window (a scrape at it is not included, as a range selector
            over the window leaves it out).
        end_s: End of the window.
        scrape_s: Time between scrapes, at its multiples.

    Returns:
        ``(time_s, arrivals up to and including time_s)`` at each scrape.

    Example:
        >>> counter_samples([0.5, 1.5, 1.7, 3.2], 0.0, 4.0, 1.0)
        [(1.0, 1.0), (2.0, 3.0), (3.0, 3.0), (4.0, 4.0)]
    """
    arrivals = np.asarray(arrival_s, dtype=np.float64)
    first = math.floor(start_s / scrape_s) + 1
    times = np.arange(first, math.floor(end_s / scrape_s) + 1) * scrape_s
    counts = np.searchsorted(arrivals, times, "right").astype(np.float64)
    return list(zip(times.tolist(), counts.tolist(), strict=True))


def interval_dispersion(
    arrival_s: npt.ArrayLike, interval_s: float, *, scrape_s: float = 1.0
) -> FloatArray:
    """Each interval's index of dispersion, as a live source would measure it.

    The arrivals are counted as a request counter scraped every ``scrape_s`` would count
    them, interval by interval from the first arrival, and each interval's samples go
    through :func:`index_of_dispersion`.

    Args:
        arrival_s: Arrival times in seconds, sorted ascending (e.g.
            :attr:`RequestTrace.arrival_s <dynamo_planner.traces.RequestTrace.arrival_s>`).
        interval_s: The adjustment interval.
        scrape_s: Time between the counter's scrapes (at most :data:`MAX_SCRAPE_S`).

    Returns:
        One index per whole interval; NaN where it is unknown (no arrival).

    Raises:
        ValueError: ``interval_s`` or ``scrape_s`` is not positive, ``scrape_s`` is
            above :data:`MAX_SCRAPE_S`, or the arrivals are not sorted.

    Example:
        Poisson arrivals give about 1 in every interval:

        >>> rng = np.random.default_rng(0)
        >>> arrivals = np.cumsum(rng.exponential(0.1, 6_300))
        >>> indices = interval_dispersion(arrivals, 60.0)
        >>> len(indices), bool(0.6 < np.median(indices) < 1.4)
        (10, True)
    """
    if not interval_s > 0 or not scrape_s > 0:
        raise ValueError(
            f"interval_s and scrape_s must be positive, got {interval_s} and {scrape_s}"
        )
    if scrape_s > MAX_SCRAPE_S:
        raise ValueError(
            f"scrape_s {scrape_s:g} s is above {MAX_SCRAPE_S:g} s: coarser scrapes mix "
            "the rate's swings into the index (see MAX_SCRAPE_S)"
        )
    arrivals = np.asarray(arrival_s, dtype=np.float64)
    if arrivals.size == 0:
        return np.empty(0, dtype=np.float64)
    if bool(np.any(np.diff(arrivals) < 0)):
        raise ValueError("arrival_s must be sorted ascending")
    since_first = arrivals - arrivals[0]
    count = math.floor(float(since_first[-1]) / interval_s)
    out = np.full(count, math.nan)
    for k in range(count):
        start = k * interval_s
        samples = counter_samples(since_first, start, start + interval_s, scrape_s)
        index = index_of_dispersion([samples])
        if index is not None:
            out[k] = index
    return out
