"""The reference interpolator: Dynamo's ``PrefillInterpolator`` and ``DecodeInterpolator``.

It reproduces spec §2.2 and §2.3 exactly:

* prefill: cubic ``interp1d`` of ISL → TTFT (ms) and ISL → tokens/s per GPU, the ISL clamped
  to the profiled range (no extrapolation);
* decode: ITL and throughput per GPU on a 100 x 100 grid over KV usage x context length
  (see :mod:`dynamo_planner.interpolators._grid`), looked up by the nearest cell.

Deltas from Dynamo, none of which changes a result Dynamo can compute:

* a prefill profile with fewer than 4 points uses linear interpolation (Dynamo fails);
* a decode profile that cannot be triangulated uses the nearest-neighbour surface;
* every query returns a finite float, whatever it is given (NaN, infinities, negatives are
  clamped to the grid or the profiled range).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import numpy as np

from dynamo_planner.interpolators._grid import DecodeGrid
from dynamo_planner.values import DecodePoint, PerfProfile, PrefillProfile

__all__ = ["PrefillCurves", "ReferenceInterpolator"]

CUBIC_MIN_POINTS = 4
"""Fewest points a cubic ``interp1d`` accepts; below it the curves are linear."""

Curve = Callable[[float], float]


def _clamp(value: float, low: float, high: float) -> float:
    """``value`` limited to ``[low, high]``; NaN goes to ``low``."""
    if math.isnan(value):
        return low
    return min(max(value, low), high)


def _curve(x: np.ndarray, y: np.ndarray) -> Curve:
    from scipy.interpolate import interp1d

    if x.size >= CUBIC_MIN_POINTS:
        fitted = interp1d(x, y, kind="cubic")
    else:
        fitted = interp1d(x, y, kind="linear")

    def evaluate(at: float) -> float:
        return float(fitted(at))

    return evaluate


@attrs.frozen(kw_only=True, eq=False)
class PrefillCurves:
    """ISL → TTFT and ISL → throughput per GPU, clamped to the profiled ISL range.

    Attributes:
        min_isl_tokens: Smallest profiled ISL.
        max_isl_tokens: Largest profiled ISL.
        ttft_ms: The fitted TTFT curve (ms).
        throughput_per_gpu: The fitted throughput curve (tokens/s per GPU).
    """

    min_isl_tokens: float
    max_isl_tokens: float
    ttft_ms: Curve
    throughput_per_gpu: Curve

    @classmethod
    def from_profile(cls, profile: PrefillProfile) -> PrefillCurves:
        """Fit both curves (cubic; linear under 4 points)."""
        isl = profile.isl_tokens
        return cls(
            min_isl_tokens=float(isl.min()),
            max_isl_tokens=float(isl.max()),
            ttft_ms=_curve(isl, profile.ttft_ms),
            throughput_per_gpu=_curve(isl, profile.throughput_per_gpu),
        )

    def clamp(self, isl_tokens: float) -> float:
        """The ISL actually looked up: limited to the profiled range."""
        return _clamp(float(isl_tokens), self.min_isl_tokens, self.max_isl_tokens)


@attrs.frozen(kw_only=True, eq=False)
class ReferenceInterpolator:
    """Dynamo's performance model of one prefill and one decode engine.

    Build it with :meth:`from_profile`. It satisfies
    :class:`dynamo_planner.protocols.Interpolator`.

    Attributes:
        prefill: The prefill curves.
        decode: The decode grid.
    """

    prefill: PrefillCurves
    decode: DecodeGrid

    @classmethod
    def from_profile(
        cls, profile: PerfProfile, *, resolution: int = 100
    ) -> ReferenceInterpolator:
        """Fit the prefill curves and evaluate the decode grid.

        Args:
            profile: A validated profile (see :func:`dynamo_planner.profiles.load_profile`).
            resolution: Decode grid cells per axis (Dynamo uses 100).

        Returns:
            The interpolator.
        """
        return cls(
            prefill=PrefillCurves.from_profile(profile.prefill),
            decode=DecodeGrid.from_profile(profile.decode, resolution=resolution),
        )

    def max_kv_tokens(self) -> int:
        """KV-cache capacity of one decode engine, in tokens."""
        return self.decode.max_kv_tokens

    def prefill_ttft_ms(self, isl_tokens: float) -> float:
        """TTFT of one request alone, at the ISL clamped to the profiled range."""
        return self.prefill.ttft_ms(self.prefill.clamp(isl_tokens))

    def prefill_throughput_per_gpu(self, isl_tokens: float) -> float:
        """Prefill tokens/s per GPU, at the ISL clamped to the profiled range."""
        return self.prefill.throughput_per_gpu(self.prefill.clamp(isl_tokens))

    def decode_itl_ms(self, concurrency: float, context_tokens: float) -> float:
        """ITL in the grid cell of that load (Dynamo's ``interpolate_itl``)."""
        return self.decode.at(concurrency, context_tokens)[0]

    def decode_throughput_per_gpu(
        self, concurrency: float, context_tokens: float
    ) -> float:
        """Output tokens/s per GPU in the grid cell of that load."""
        return self.decode.at(concurrency, context_tokens)[1]

    def best_decode_point(self, itl_ms: float, context_tokens: float) -> DecodePoint:
        """Dynamo's ``find_best_throughput_per_gpu``: see :meth:`DecodeGrid.best`."""
        return self.decode.best(itl_ms, context_tokens)
