"""Attainment feedback: how much of a miss allowance recent intervals left unused.

A latency target such as "99% of requests within 500 ms" is judged over many requests, not
per interval. A sizing model that is conservative where traffic is smooth meets it with
room to spare, and sizing every interval for the full target then buys replicas that no
request needed. :class:`MissFeedback` counts the misses of one component (TTFT for
prefill, ITL for decode) over the last intervals and moves the share that component is
sized for toward the value that would use ``setpoint`` of the allowance:

* the misses of the last ``window`` intervals are pooled, so that a quiet interval of a
  few hundred requests does not read as a perfect one;
* nothing moves until the pooled requests allow at least :data:`MIN_ALLOWED_MISSES`
  misses (below that, zero misses is no evidence);
* each interval moves the allowed miss share half a step in log scale (gain
  :data:`GAIN`) toward ``setpoint x allowance x (allowance / pooled misses)``;
* the share sized for stays within ``[1 - max_multiple x allowance, target]``: feedback
  never sizes *above* the target, and never below 90% for a 99% target by default.

With two components each aiming at 30% of the allowance, the misses they let through add
up to at most 60% of it in steady traffic. :class:`AttainmentFeedback` holds the two and
counts an interval's misses into them: TTFT misses (less the prompts written off) for
prefill, ITL misses for decode.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import collections
import math
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from dynamo_planner.scalers.request_mix import observed_lengths
from dynamo_planner.values import Observation

__all__ = [
    "GAIN",
    "MIN_ALLOWED_MISSES",
    "AttainmentFeedback",
    "MissFeedback",
    "count_missed",
    "count_within",
]

GAIN = 0.5
"""Exponent of one interval's correction of the allowed miss share (half a step)."""
MIN_ALLOWED_MISSES = 10.0
"""Fewest misses the pooled requests must allow before the feedback trusts them."""


def count_within(
    histogram: tuple[tuple[float, float], ...], bound: float
) -> tuple[float, float]:
    """``(total, within bound)`` of a cumulative ``(upper bound, count)`` histogram.

    Inside the bucket that holds ``bound`` the count is interpolated linearly, as
    Prometheus' ``histogram_quantile`` does (the first bucket starts at 0). The total
    is the last bucket's count (``+Inf`` in a Prometheus histogram).

    >>> count_within(((250.0, 80.0), (500.0, 96.0), (1000.0, 100.0)), 375.0)
    (100.0, 88.0)
    """
    if not histogram:
        return 0.0, 0.0
    total = histogram[-1][1]
    low_bound, low_count = 0.0, 0.0
    for upper, count in histogram:
        if bound < upper:
            if math.isinf(upper) or upper <= low_bound:
                return total, low_count
            share = max(0.0, bound - low_bound) / (upper - low_bound)
            return total, low_count + share * (count - low_count)
        low_bound, low_count = upper, count
    return total, total


def count_missed(
    samples: tuple[float, ...],
    histogram: tuple[tuple[float, float], ...],
    bound: float,
) -> tuple[float, float]:
    """``(total, above bound)``: from per-request samples if any, else from buckets.

    Non-finite samples are left out.
    """
    values = [v for v in samples if math.isfinite(v)]
    if values:
        return float(len(values)), float(sum(v > bound for v in values))
    total, within = count_within(histogram, bound)
    return total, total - within


@attrs.define(kw_only=True)
class MissFeedback:
    """The share of one component's requests to size for, corrected by observed misses.

    Attributes:
        name: What is counted (``"TTFT"``, ``"ITL"``), for the words.
        target: The share that must meet the target over the run (e.g. 0.99).
        setpoint: Share of the allowance ``1 - target`` the feedback aims to use.
        max_multiple: Most misses the sizing may allow, as a multiple of the allowance
            (and at most half the requests).
        window: Intervals pooled.
    """

    name: str
    target: float
    setpoint: float = 0.3
    max_multiple: float = 10.0
    window: int = 10
    _share: float = attrs.field(init=False)
    _pool: collections.deque[tuple[float, float]] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if not 0.0 < self.target < 1.0:
            msg = f"target must be strictly between 0 and 1, got {self.target!r}"
            raise ValueError(msg)
        self._share = self.allowance
        self._pool = collections.deque(maxlen=max(1, self.window))

    @property
    def allowance(self) -> float:
        """The share of requests the target allows to miss."""
        return 1.0 - self.target

    @property
    def ceiling(self) -> float:
        """The most misses the sizing may allow."""
        return max(self.allowance, min(0.5, self.max_multiple * self.allowance))

    @property
    def sized(self) -> float:
        """The share to size for now (between ``1 - ceiling`` and ``target``)."""
        return 1.0 - self._share

    @property
    def pooled(self) -> tuple[float, float]:
        """``(requests, misses)`` over the pooled intervals."""
        return (sum(n for n, _ in self._pool), sum(m for _, m in self._pool))

    def observe(self, requests: float, missed: float) -> str:
        """Add one interval's counts and update the share sized for; say what changed.

        Args:
            requests: Requests counted in the interval (may be fractional when some
                are written off by expectation).
            missed: How many of them missed the target.

        Returns:
            One sentence for the plan's reasons.
        """
        if not (math.isfinite(requests) and requests > 0 and math.isfinite(missed)):
            return f"{self.name}: nothing counted; sizing for {self.sized:.2%}"
        self._pool.append((requests, min(max(missed, 0.0), requests)))
        total, misses = self.pooled
        pooled = misses / total
        head = (
            f"{self.name}: {missed / requests:.2%} missed last interval, {pooled:.2%} "
            f"over the last {len(self._pool)} intervals ({total:,.0f} requests) against "
            f"{self.allowance:.2%} allowed"
        )
        allowed = total * self.allowance
        if allowed < MIN_ALLOWED_MISSES:
            return (
                f"{head}; {allowed:.1f} allowed misses are too few to judge by; sizing "
                f"for {self.sized:.2%}"
            )
        previous = self.sized
        floor = self.allowance / self.max_multiple
        ratio = self.setpoint * self.allowance / max(pooled, floor)
        self._share = min(self.ceiling, max(self.allowance, self._share * ratio**GAIN))
        return (
            f"{head}; aiming at {self.setpoint:.0%} of the allowance, the share sized "
            f"for moves from {previous:.2%} to {self.sized:.2%} (kept within "
            f"[{1.0 - self.ceiling:.2%}, {self.target:.2%}])"
        )


@attrs.define(kw_only=True)
class AttainmentFeedback:
    """Both components' feedback: TTFT misses move prefill's share, ITL misses decode's.

    Attributes:
        prefill: The prefill component's feedback (TTFT misses).
        decode: The decode component's feedback (ITL misses).
        min_requests: Fewest TTFTs (ITLs) an interval needs for its misses to count.
        last_missed: The last counted interval's miss share by component
            (``"prefill"``, ``"decode"``); the caller clears it before each interval.
    """

    prefill: MissFeedback
    decode: MissFeedback
    min_requests: int = 20
    last_missed: dict[str, float] = attrs.field(factory=dict)

    @property
    def sized(self) -> tuple[float, float]:
        """The ``(prefill, decode)`` shares the feedback would size for."""
        return self.prefill.sized, self.decode.sized

    def observe(
        self,
        observation: Observation,
        *,
        ttft_ms: float,
        itl_ms: float,
        counted_share: Callable[[npt.NDArray[np.float64]], float],
        details: dict[str, Any],
    ) -> list[str]:
        """Count the interval's TTFT and ITL misses into the feedback; say what moved.

        Per-request samples are used where the source has them, else the histogram
        buckets (interpolated at the target). TTFT misses of prompts written off are
        left out: ``counted_share`` gives the share of the observed prompts that count
        (those the caller's model does not put clearly past the target alone), and the
        rest are taken as misses.

        Args:
            observation: The interval.
            ttft_ms: The TTFT target.
            itl_ms: The ITL target.
            counted_share: The share of these input lengths whose misses count.
            details: The plan's details; the miss shares counted are added.

        Returns:
            One sentence per component counted, for the plan's reasons.
        """
        words = []
        total, missed = count_missed(
            observation.ttft_samples_ms, observation.ttft_histogram_ms, ttft_ms
        )
        if total >= self.min_requests:
            isl, _ = observed_lengths(observation)
            feasible = counted_share(isl) if isl.size else 1.0
            counted = total * feasible
            missed = max(0.0, missed - (total - counted))
            share = missed / max(counted, 1e-9)
            details["observed_ttft_miss_share"] = self.last_missed["prefill"] = share
            words.append(self.prefill.observe(counted, missed))
        total, missed = count_missed(
            observation.itl_samples_ms, observation.itl_histogram_ms, itl_ms
        )
        if total >= self.min_requests:
            share = missed / total
            details["observed_itl_miss_share"] = self.last_missed["decode"] = share
            words.append(self.decode.observe(total, missed))
        if not words:
            words.append(
                "attainment feedback: too few TTFTs and ITLs observed to count misses"
            )
        return words
