"""Correction factors: observed latency over what the profile predicts (spec §1.4).

* prefill: ``observed TTFT / TTFT(observed ISL)``;
* decode: ``observed ITL / ITL(concurrency, ISL + OSL/2)`` with the per-worker concurrency
  from Little's law, ``num_req / decode_workers * request_duration / interval``.

Both are recomputed from scratch each interval (no smoothing, no clamp here; the reference
scaler applies ``min(1, p)`` and ``ITL / d``). Where Dynamo would skip the whole tick (an
unknown metric, a zero expectation) only the affected factor keeps its previous value.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math

from dynamo_planner.protocols import Interpolator
from dynamo_planner.values import Corrections, Observation, Sample

__all__ = ["decode_correction", "prefill_correction", "update_corrections"]


def _known(*samples: Sample) -> bool:
    return all(s.known for s in samples)


def _ratio(observed: float, expected: float, previous: float) -> float:
    """``observed / expected``, or ``previous`` when that is not a usable number."""
    if not math.isfinite(expected) or expected <= 0:
        return previous
    ratio = observed / expected
    return ratio if math.isfinite(ratio) else previous


def prefill_correction(
    previous: float, observation: Observation, interpolator: Interpolator
) -> float:
    """The prefill factor for one observation.

    Args:
        previous: The factor to keep when this one cannot be computed.
        observation: Needs ``ttft_ms`` and ``isl_tokens`` known.
        interpolator: The performance model.

    Returns:
        ``observed TTFT / expected TTFT``, or ``previous``.
    """
    if not _known(observation.ttft_ms, observation.isl_tokens):
        return previous
    expected = interpolator.prefill_ttft_ms(observation.isl_tokens.value)
    return _ratio(observation.ttft_ms.value, expected, previous)


def decode_correction(
    previous: float,
    observation: Observation,
    interpolator: Interpolator,
    *,
    decode_workers: int,
    interval_s: float,
) -> float:
    """The decode factor for one observation.

    Args:
        previous: The factor to keep when this one cannot be computed.
        observation: Needs ``itl_ms``, ``num_req``, ``isl_tokens``, ``osl_tokens`` and
            ``request_duration_s`` known.
        interpolator: The performance model.
        decode_workers: Decode workers running in the interval (0 keeps ``previous``).
        interval_s: Length of the interval in seconds.

    Returns:
        ``observed ITL / expected ITL``, or ``previous``.
    """
    needed = (
        observation.itl_ms,
        observation.num_req,
        observation.isl_tokens,
        observation.osl_tokens,
        observation.request_duration_s,
    )
    if decode_workers <= 0 or interval_s <= 0 or not _known(*needed):
        return previous
    concurrency = (
        observation.num_req.value
        / decode_workers
        * observation.request_duration_s.value
        / interval_s
    )
    context_tokens = observation.isl_tokens.value + observation.osl_tokens.value / 2
    expected = interpolator.decode_itl_ms(concurrency, context_tokens)
    return _ratio(observation.itl_ms.value, expected, previous)


def update_corrections(
    previous: Corrections,
    observation: Observation,
    interpolator: Interpolator,
    *,
    decode_workers: int,
    interval_s: float,
) -> Corrections:
    """Both correction factors after one observed interval.

    Args:
        previous: The factors so far (start from ``Corrections()``, i.e. 1.0 each).
        observation: The interval just observed.
        interpolator: The performance model.
        decode_workers: Decode workers running in the interval.
        interval_s: Length of the interval in seconds.

    Returns:
        The new factors; each component keeps its previous factor when its inputs are
        unknown, its expected latency is zero, or (decode) there were no decode workers.
    """
    return Corrections(
        prefill=prefill_correction(previous.prefill, observation, interpolator),
        decode=decode_correction(
            previous.decode,
            observation,
            interpolator,
            decode_workers=decode_workers,
            interval_s=interval_s,
        ),
    )
