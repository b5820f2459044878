"""What a frontend's metrics give of the requests in a window.

:meth:`Simulation.window <dynamo_planner.sim.engine.Simulation.window>` builds the
planner's observation from the simulated requests. Beside counts and means it gives
either the per-request samples and the arrivals' dispersion over one-second bins
(:func:`arrival_dispersion`), or, as a Dynamo frontend does, bucket counts
(:func:`histogram_buckets`, on the exporter's bounds) and the dispersion the Prometheus
source reads from the request counter scraped every few seconds
(:func:`scraped_dispersion`).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from dynamo_planner.sources._names import BUCKETS
from dynamo_planner.sources.dispersion import counter_samples, index_of_dispersion

__all__ = [
    "DISPERSION_BIN_S",
    "MIN_DISPERSION_BINS",
    "arrival_dispersion",
    "histogram_buckets",
    "scraped_dispersion",
]

DISPERSION_BIN_S = 1.0
"""Width of the bins :meth:`~dynamo_planner.sim.engine.Simulation.window` counts arrivals in for their dispersion."""
MIN_DISPERSION_BINS = 10
"""Fewest whole bins a window needs for a dispersion (shorter windows report unknown)."""


def arrival_dispersion(
    arrivals_s: Sequence[float], start_s: float, end_s: float
) -> float | None:
    """Variance over mean of the per-second arrival counts in ``[start_s, end_s)``."""
    bins = math.floor((end_s - start_s) / DISPERSION_BIN_S)
    if bins < MIN_DISPERSION_BINS or not arrivals_s:
        return None
    index = np.floor((np.asarray(arrivals_s) - start_s) / DISPERSION_BIN_S)
    index = index[index < bins].astype(np.int64)
    counts = np.bincount(index, minlength=bins)
    mean = float(counts.mean())
    return float(counts.var()) / mean if mean > 0 else None


def scraped_dispersion(
    arrivals_s: Sequence[float], start_s: float, end_s: float, scrape_s: float
) -> float | None:
    """The index of dispersion the Prometheus source reads from the request counter.

    The counter counts arrivals and is scraped at the multiples of ``scrape_s`` within
    ``(start_s, end_s]``, as a range selector over the window returns them.
    """
    return index_of_dispersion([counter_samples(arrivals_s, start_s, end_s, scrape_s)])


def histogram_buckets(
    values: Sequence[float] | npt.NDArray[np.float64],
    field: str,
    *,
    scale: float = 1.0,
    weights: Sequence[float] | None = None,
) -> tuple[tuple[float, float], ...]:
    """Cumulative ``(bound x scale, count)`` buckets of ``values``, weighted.

    The bounds are those the exporter gives the histogram of ``field``, then ``inf``.
    Empty without values.
    """
    if not len(values):
        return ()
    bounds = np.array([*BUCKETS[field], math.inf], dtype=np.float64) * scale
    data = np.asarray(values, dtype=np.float64)
    order = np.argsort(data)
    w = np.ones(data.size) if weights is None else np.asarray(weights, np.float64)
    cumulative = np.concatenate(([0.0], np.cumsum(w[order])))
    within = cumulative[np.searchsorted(data[order], bounds, side="right")]
    return tuple(zip(bounds.tolist(), within.tolist(), strict=True))
