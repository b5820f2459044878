"""A smooth physical performance model fitted to a profile by least squares.

Dynamo's interpolators (:mod:`dynamo_planner.interpolators.reference`) pass exactly through
the profiled points, with cubic curves and gridded cubic surfaces, and keep **two decode
surfaces that disagree**: on the bundled H200 profile at context 1,260 tokens and ITL 20 ms
the throughput surface gives 11.7k tokens/s per GPU while the batch it chose, divided by its
own ITL, gives 6.1k. This model instead fits three numbers per component, each with a
physical meaning, and derives everything else from them, so it is consistent by
construction:

**Prefill.** One batch of prompts costs a fixed overhead plus a per-token cost (weights,
MLP) plus a per-request quadratic cost (attention over its own prompt)::

    TTFT(x) = a + b * x + c * x**2              (ms; a, b, c >= 0, so monotone in x)
    batch(x_1..x_k) = a + sum(b * x_i + c * x_i**2)

Beyond the largest profiled ISL the curve continues along its tangent rather than its
curvature (a fit to a few noisy points does not pin the curvature down). Throughput per
GPU is ``x / TTFT(x)`` divided by the GPUs of one engine.

**Decode.** One decode step reads the weights once, does per-sequence work, and reads the KV
cache of every running request::

    ITL(n, ctx) = a + b * n + c * n * ctx       (ms; n requests of mean context ctx)

Throughput per GPU is ``n / ITL(n, ctx)`` (tokens/s) divided by the GPUs of one engine: it
follows from the ITL model, it is not a second surface. The best operating point at an ITL
target is the largest ``n`` meeting it within the KV capacity, in closed form.

Both fits minimise the squared *relative* error (every point counts alike, whatever its
scale) under non-negative coefficients (scipy's ``nnls``). Decode points whose measured
throughput is more than 10% below ``concurrency / ITL`` are left out of the fit: there the
engine did not run the profiled number of requests at once (its batch limit queued the
rest), so the point's ITL does not belong to that concurrency. On the H200 profile these are
the three largest concurrencies at context 350.

:func:`cross_validate` reports the error on points a model was *not* fitted on
(leave-one-out for prefill ISLs, leave-one-context-out for decode), for this model or any
other interpolator factory, so the two can be compared on equal terms.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import attrs
import numpy as np
import numpy.typing as npt

from dynamo_planner.exceptions import ProfileError
from dynamo_planner.protocols import Interpolator
from dynamo_planner.values import (
    DecodePoint,
    DecodeProfile,
    PerfProfile,
    PrefillProfile,
)

__all__ = [
    "DecodeFit",
    "FitErrors",
    "FitReport",
    "FittedInterpolator",
    "PrefillFit",
    "consistent_decode_points",
    "cross_validate",
]

FloatArray = npt.NDArray[np.float64]

SATURATION_TOLERANCE = 0.9
"""A decode point is used when measured throughput >= this x ``concurrency / ITL``."""

_HUGE = 1e12  # stand-in for infinite inputs, so every query stays finite


def _finite(value: float, *, low: float = 0.0) -> float:
    """``value`` made finite and at least ``low`` (NaN goes to ``low``)."""
    value = float(value)
    if math.isnan(value):
        return low
    return min(max(value, low), _HUGE)


def _nnls_relative(columns: FloatArray, target: FloatArray) -> FloatArray:
    """Non-negative coefficients minimising the squared relative error to ``target``."""
    from scipy.optimize import nnls

    weights = 1.0 / target
    coef, _ = nnls(columns * weights[:, None], target * weights)
    return np.asarray(coef, dtype=np.float64)


def _engine_gpus(ratios: FloatArray) -> int:
    """GPUs per engine: the profiler's throughput is per GPU, so ``ratio`` ~ GPU count."""
    finite = ratios[np.isfinite(ratios) & (ratios > 0)]
    if finite.size == 0:
        return 1
    return max(1, round(float(np.median(finite))))


@attrs.frozen(kw_only=True)
class PrefillFit:
    """Prefill time of one batch: overhead + per-token + per-request quadratic cost.

    Attributes:
        overhead_ms: Fixed cost of one batch (``a``).
        per_token_ms: Cost of each prompt token (``b``).
        per_token_squared_ms: Attention cost per squared prompt token (``c``).
        max_isl_tokens: Largest profiled ISL; beyond it TTFT follows the tangent.
        gpus_per_engine: GPUs of one prefill engine (from the profile's throughput).
    """

    overhead_ms: float
    per_token_ms: float
    per_token_squared_ms: float
    max_isl_tokens: float
    gpus_per_engine: int = 1

    @classmethod
    def from_profile(cls, profile: PrefillProfile, *, source: str = "") -> PrefillFit:
        """Fit ``a + b x + c x^2`` to the profile's TTFTs (affine under 3 points).

        Raises:
            ProfileError: Fewer than 2 points, or non-positive TTFTs.
        """
        x = np.asarray(profile.isl_tokens, dtype=np.float64)
        y = np.asarray(profile.ttft_ms, dtype=np.float64)
        if x.size < 2 or not np.all(np.isfinite(y)) or np.any(y <= 0):
            raise ProfileError(
                "a fitted prefill model needs at least 2 points with positive TTFT",
                path=source or "<profile>",
                field="prefill_ttft",
            )
        columns = [np.ones_like(x), x] + ([x * x] if x.size >= 3 else [])
        coef = _nnls_relative(np.stack(columns, axis=1), y)
        squared = float(coef[2]) if coef.size > 2 else 0.0
        thpt = np.asarray(profile.throughput_per_gpu, dtype=np.float64)
        with np.errstate(all="ignore"):
            gpus = _engine_gpus(x / y * 1000.0 / thpt)
        return cls(
            overhead_ms=float(coef[0]),
            per_token_ms=float(coef[1]),
            per_token_squared_ms=squared,
            max_isl_tokens=float(x.max()),
            gpus_per_engine=gpus,
        )

    def work_ms(self, isl_tokens: float) -> float:
        """The cost one prompt adds to a batch (TTFT without the batch overhead)."""
        x = _finite(isl_tokens)
        edge = self.max_isl_tokens
        if x <= edge:
            return self.per_token_ms * x + self.per_token_squared_ms * x * x
        at_edge = self.per_token_ms * edge + self.per_token_squared_ms * edge * edge
        slope = self.per_token_ms + 2.0 * self.per_token_squared_ms * edge
        return at_edge + slope * (x - edge)

    def work_ms_array(self, isl_tokens: npt.ArrayLike) -> FloatArray:
        """:meth:`work_ms` over an array."""
        x = np.clip(np.nan_to_num(np.asarray(isl_tokens, dtype=np.float64)), 0, _HUGE)
        edge = self.max_isl_tokens
        inside = self.per_token_ms * x + self.per_token_squared_ms * x * x
        at_edge = self.per_token_ms * edge + self.per_token_squared_ms * edge * edge
        slope = self.per_token_ms + 2.0 * self.per_token_squared_ms * edge
        beyond = at_edge + slope * (x - edge)
        return np.asarray(np.where(x > edge, beyond, inside), dtype=np.float64)

    def ttft_ms(self, isl_tokens: float) -> float:
        """TTFT of one request alone."""
        return self.overhead_ms + self.work_ms(isl_tokens)

    def batch_ms(self, isl_tokens: Iterable[float]) -> float:
        """Time of one batch of prompts: the overhead once, each prompt's work."""
        return self.overhead_ms + sum(self.work_ms(x) for x in isl_tokens)


@attrs.frozen(kw_only=True)
class DecodeFit:
    """Decode step time: weights read + per-request work + KV read of every request.

    Attributes:
        step_overhead_ms: Fixed cost of one step (``a``).
        per_request_ms: Cost of each running request (``b``).
        per_kv_token_ms: Cost of each KV-cache token read (``c``).
        max_kv_tokens: KV-cache capacity of one engine, in tokens.
        gpus_per_engine: GPUs of one decode engine (from the profile's throughput).
        points_used: Profile points the fit used.
        points_excluded: Saturated profile points left out (see the module docstring).
    """

    step_overhead_ms: float
    per_request_ms: float
    per_kv_token_ms: float
    max_kv_tokens: int
    gpus_per_engine: int = 1
    points_used: int = 0
    points_excluded: int = 0

    @classmethod
    def from_profile(cls, profile: DecodeProfile, *, source: str = "") -> DecodeFit:
        """Fit ``a + b n + c n ctx`` to the profile's unsaturated points.

        Raises:
            ProfileError: Fewer than 3 usable points.
        """
        n, ctx, itl, gpus, keep = consistent_decode_points(profile)
        if int(keep.sum()) < 3:
            raise ProfileError(
                f"a fitted decode model needs at least 3 unsaturated points, "
                f"found {int(keep.sum())}",
                path=source or "<profile>",
                field="z_itl",
            )
        n, ctx, itl = n[keep], ctx[keep], itl[keep]
        columns = np.stack([np.ones_like(n), n, n * ctx], axis=1)
        coef = _nnls_relative(columns, itl)
        return cls(
            step_overhead_ms=float(coef[0]),
            per_request_ms=float(coef[1]),
            per_kv_token_ms=float(coef[2]),
            max_kv_tokens=int(profile.max_kv_tokens),
            gpus_per_engine=gpus,
            points_used=int(keep.sum()),
            points_excluded=int(keep.size - keep.sum()),
        )

    def itl_ms(self, concurrency: float, context_tokens: float) -> float:
        """ITL with ``concurrency`` requests (at least one) of mean context."""
        n = max(1.0, _finite(concurrency))
        ctx = _finite(context_tokens)
        return (
            self.step_overhead_ms
            + self.per_request_ms * n
            + self.per_kv_token_ms * n * ctx
        )

    def step_ms(self, requests: float, kv_tokens: float) -> float:
        """Step time with ``requests`` running that hold ``kv_tokens`` in total."""
        return (
            self.step_overhead_ms
            + self.per_request_ms * _finite(requests)
            + self.per_kv_token_ms * _finite(kv_tokens)
        )

    def max_concurrency(self, itl_ms: float, context_tokens: float) -> float:
        """Most requests of that context meeting ``itl_ms`` within the KV capacity.

        Continuous (not rounded); 0 when even one request exceeds the target.
        """
        ctx = _finite(context_tokens)
        per_request = self.per_request_ms + self.per_kv_token_ms * ctx
        room = _finite(itl_ms) - self.step_overhead_ms
        by_itl = room / per_request if per_request > 0 else _HUGE
        by_kv = self.max_kv_tokens / ctx if ctx > 0 else _HUGE
        n = min(by_itl, by_kv)
        return n if n >= 1.0 else 0.0


def consistent_decode_points(
    profile: DecodeProfile,
) -> tuple[FloatArray, FloatArray, FloatArray, int, npt.NDArray[np.bool_]]:
    """The decode points with their concurrency, and which ones the fit may use.

    Args:
        profile: A decode profile.

    Returns:
        ``(concurrency, context_tokens, itl_ms, gpus_per_engine, usable)``: a point is
        usable when its measured throughput is at least :data:`SATURATION_TOLERANCE` x
        ``concurrency / ITL`` per GPU, and its ITL is positive.
    """
    n = np.maximum(np.asarray(profile.concurrency, dtype=np.float64), 1.0)
    ctx = np.asarray(profile.context_length_tokens, dtype=np.float64)
    itl = np.asarray(profile.itl_ms, dtype=np.float64)
    thpt = np.asarray(profile.throughput_per_gpu, dtype=np.float64)
    with np.errstate(all="ignore"):
        implied = n / itl * 1000.0
        gpus = _engine_gpus(implied / thpt)
        usable = (
            np.isfinite(itl)
            & (itl > 0)
            & (thpt * gpus >= SATURATION_TOLERANCE * implied)
        )
    return n, ctx, itl, gpus, np.asarray(usable, dtype=np.bool_)


@attrs.frozen(kw_only=True)
class FittedInterpolator:
    """The fitted physical model of one prefill and one decode engine.

    Build it with :meth:`from_profile`. It satisfies
    :class:`dynamo_planner.protocols.Interpolator`; :attr:`prefill` and :attr:`decode`
    expose the fitted coefficients (and batch-level helpers) to scalers that want them.

    Attributes:
        prefill: The prefill fit.
        decode: The decode fit.
        source: Where the profile came from.
    """

    prefill: PrefillFit
    decode: DecodeFit
    source: str = ""

    @classmethod
    def from_profile(cls, profile: PerfProfile) -> FittedInterpolator:
        """Fit both components to a profile.

        Raises:
            ProfileError: The profile has too few usable points to fit.
        """
        return cls(
            prefill=PrefillFit.from_profile(profile.prefill, source=profile.source),
            decode=DecodeFit.from_profile(profile.decode, source=profile.source),
            source=profile.source,
        )

    def max_kv_tokens(self) -> int:
        """KV-cache capacity of one decode engine, in tokens."""
        return self.decode.max_kv_tokens

    def prefill_ttft_ms(self, isl_tokens: float) -> float:
        """TTFT of one request alone."""
        return self.prefill.ttft_ms(isl_tokens)

    def prefill_throughput_per_gpu(self, isl_tokens: float) -> float:
        """Prefill tokens/s per GPU of one request alone: ``ISL / TTFT``."""
        x = _finite(isl_tokens)
        ttft = self.prefill.ttft_ms(x)
        if ttft <= 0:
            return 0.0
        return x / ttft * 1000.0 / self.prefill.gpus_per_engine

    def decode_itl_ms(self, concurrency: float, context_tokens: float) -> float:
        """ITL with ``concurrency`` requests (at least one) of ``context_tokens`` each."""
        return self.decode.itl_ms(concurrency, context_tokens)

    def decode_throughput_per_gpu(
        self, concurrency: float, context_tokens: float
    ) -> float:
        """Output tokens/s per GPU: ``concurrency / ITL``, from the ITL model itself."""
        n = _finite(concurrency)
        return (
            n
            / self.decode.itl_ms(n, context_tokens)
            * 1000.0
            / (self.decode.gpus_per_engine)
        )

    def best_decode_point(self, itl_ms: float, context_tokens: float) -> DecodePoint:
        """The largest load meeting ``itl_ms`` within the KV capacity.

        When one request alone exceeds the target, the one-request point is returned (its
        ITL is then above the target; the caller should check).
        """
        ctx = _finite(context_tokens)
        n = max(1.0, self.decode.max_concurrency(itl_ms, ctx))
        max_kv = self.decode.max_kv_tokens
        return DecodePoint(
            throughput_per_gpu=self.decode_throughput_per_gpu(n, ctx),
            itl_ms=self.decode.itl_ms(n, ctx),
            kv_usage=min(1.0, n * ctx / max_kv) if max_kv > 0 else 0.0,
        )


# --------------------------------------------------------------------------------------
# Error on held-out points
# --------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True, eq=False)
class FitErrors:
    """Relative errors of a model on points it was not fitted on.

    Attributes:
        name: What was predicted (``"prefill TTFT"``, ``"decode ITL"``).
        folds: How the points were held out.
        x: The held-out points' first coordinate (ISL, or context length).
        y: Their second coordinate (0 for prefill, concurrency for decode).
        measured: The measured values.
        predicted: The model's values, fitted without the point (or its fold).
    """

    name: str
    folds: str
    x: FloatArray
    y: FloatArray
    measured: FloatArray
    predicted: FloatArray

    @property
    def relative(self) -> FloatArray:
        """``predicted / measured - 1`` per point."""
        return np.asarray(self.predicted / self.measured - 1.0, dtype=np.float64)

    @property
    def mean_abs(self) -> float:
        """Mean absolute relative error."""
        return float(np.mean(np.abs(self.relative))) if self.x.size else math.nan

    @property
    def max_abs(self) -> float:
        """Largest absolute relative error."""
        return float(np.max(np.abs(self.relative))) if self.x.size else math.nan

    @property
    def rms(self) -> float:
        """Root-mean-square relative error."""
        return float(np.sqrt(np.mean(self.relative**2))) if self.x.size else math.nan

    def summary(self) -> str:
        """One line: the errors in percent."""
        return (
            f"{self.name} ({self.folds}, {self.x.size} points): mean |error| "
            f"{self.mean_abs:.1%}, RMS {self.rms:.1%}, max |error| {self.max_abs:.1%}"
        )


@attrs.frozen(kw_only=True, eq=False)
class FitReport:
    """Held-out errors of one model on one profile.

    Attributes:
        model: A name for the model.
        prefill: Leave-one-out errors of TTFT over the profiled ISLs.
        decode: Leave-one-context-out errors of ITL over the unsaturated decode points.
    """

    model: str
    prefill: FitErrors
    decode: FitErrors

    def summary(self) -> str:
        """Two lines, one per component."""
        return f"{self.model}: {self.prefill.summary()}\n{self.model}: " + (
            self.decode.summary()
        )


def _subset_prefill(
    profile: PrefillProfile, keep: npt.NDArray[np.bool_]
) -> PrefillProfile:
    return PrefillProfile(
        isl_tokens=profile.isl_tokens[keep],
        ttft_ms=profile.ttft_ms[keep],
        throughput_per_gpu=profile.throughput_per_gpu[keep],
    )


def _subset_decode(
    profile: DecodeProfile, keep: npt.NDArray[np.bool_]
) -> DecodeProfile:
    return DecodeProfile(
        kv_usage=profile.kv_usage[keep],
        context_length_tokens=profile.context_length_tokens[keep],
        itl_ms=profile.itl_ms[keep],
        throughput_per_gpu=profile.throughput_per_gpu[keep],
        max_kv_tokens=profile.max_kv_tokens,
    )


def cross_validate(
    profile: PerfProfile,
    build: Callable[[PerfProfile], Interpolator] = FittedInterpolator.from_profile,
    *,
    model: str = "",
) -> FitReport:
    """Errors of a model on profile points it was not fitted on.

    * Prefill: each profiled ISL in turn is left out, the model is rebuilt on the others,
      and its TTFT at the left-out ISL is compared with the measurement.
    * Decode: each profiled context length in turn is left out with all its points, the
      model is rebuilt on the other contexts, and its ITL at the left-out points'
      concurrency is compared with the measurement. Saturated points (see
      :func:`consistent_decode_points`) are neither fitted nor scored.

    Args:
        profile: The profile.
        build: Builds an interpolator from a profile, e.g.
            :meth:`FittedInterpolator.from_profile` (the default) or
            :meth:`~dynamo_planner.interpolators.reference.ReferenceInterpolator.from_profile`.
        model: A name for the report (the builder's qualified name when empty).

    Returns:
        The report.
    """
    name = model or getattr(build, "__qualname__", "model")
    pre = profile.prefill
    isl = np.asarray(pre.isl_tokens, dtype=np.float64)
    predicted = np.empty_like(isl)
    for i in range(isl.size):
        keep = np.ones(isl.size, dtype=np.bool_)
        keep[i] = False
        fold = PerfProfile(
            prefill=_subset_prefill(pre, keep),
            decode=profile.decode,
            source=profile.source,
        )
        predicted[i] = build(fold).prefill_ttft_ms(float(isl[i]))
    prefill_errors = FitErrors(
        name="prefill TTFT",
        folds="leave one ISL out",
        x=isl,
        y=np.zeros_like(isl),
        measured=np.asarray(pre.ttft_ms, dtype=np.float64),
        predicted=predicted,
    )

    dec = profile.decode
    n, ctx, itl, _, usable = consistent_decode_points(dec)
    xs: list[float] = []
    ys: list[float] = []
    measured: list[float] = []
    out: list[float] = []
    for context in np.unique(ctx):
        held = ctx == context
        fold = PerfProfile(
            prefill=pre,
            decode=_subset_decode(dec, ~held),
            source=profile.source,
        )
        fitted = build(fold)
        for i in np.flatnonzero(held & usable).tolist():
            xs.append(float(ctx[i]))
            ys.append(float(n[i]))
            measured.append(float(itl[i]))
            out.append(fitted.decode_itl_ms(float(n[i]), float(ctx[i])))
    decode_errors = FitErrors(
        name="decode ITL",
        folds="leave one context length out",
        x=np.asarray(xs),
        y=np.asarray(ys),
        measured=np.asarray(measured),
        predicted=np.asarray(out),
    )
    return FitReport(model=name, prefill=prefill_errors, decode=decode_errors)
