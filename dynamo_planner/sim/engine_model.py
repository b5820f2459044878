"""The simulator's model of one prefill and one decode engine, read off a profile.

The model is deliberately plain, so that what the simulator does can be checked against the
profile point by point:

**Prefill.** A batch of prompts totalling ``x`` tokens takes the profiled TTFT at ISL ``x``:
the measured points joined by straight lines. Below the smallest profiled ISL the time is
the first point's (a fixed per-batch overhead dominates there). Above the largest profiled
ISL it grows linearly with the slope of the secant over the upper half of the measured
points (less noisy than the last segment). Real attention cost grows faster than linearly
for very long prompts, so beyond the profile this is optimistic. One request alone takes
exactly the profiled TTFT for its ISL; a batch of several short prompts at its total token
count is an upper bound, since their attention costs less than one long prompt's.

**Decode.** One decode step (one token for every running request) takes the profiled ITL
at the engine's current concurrency ``n`` and mean context ``c``, interpolated on the
profile's own coordinates (the profiler labels a point by the concurrency it ran and the
context ``ISL + OSL/2`` of its requests):

* at each profiled context, linearly in the concurrency between the measured points, the
  first point's value below the first point (one request), and linear extrapolation with
  the slope of the upper-half secant beyond the last point (never decreasing);
* between two profiled contexts, linearly in the context at fixed concurrency (exact for an
  engine whose step time is affine in batch size and KV tokens); below the smallest profiled
  context, the smallest context's curve;
* above the largest profiled context, the largest context's curve plus the time to read the
  extra KV tokens: ``k x n x (c - c_max)``, where ``k`` (ms per request per context token) is
  the secant over the upper half of the profiled contexts, averaged over the largest
  context's measured concurrencies (never negative). Reading KV is what a decode step's
  context costs, so past the profile it keeps growing at the measured rate; holding the
  last curve instead would make a batch of 30k-token contexts as fast as one of the
  largest profiled context.

At a measured (concurrency, context) point the model returns the measured ITL exactly.

**Aggregated engine** (:meth:`EngineModel.agg_step_ms`). One engine serving both phases
with chunked prefill runs steps that decode one token for every running request and
compute a chunk of waiting prompts. No profile of such an engine is needed: the step time
is the decode step time at the running concurrency and context plus the prefill time of
the chunk's tokens, as if the two kinds of work ran back to back with no overlap. Real
engines overlap them in part (the decode tokens ride in the same forward pass), so this is
pessimistic for mixed steps; steps of one kind alone take exactly the profile's times. The
KV capacity is the decode profile's.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import attrs
import numpy as np
import numpy.typing as npt

from dynamo_planner.exceptions import ProfileError
from dynamo_planner.values import PerfProfile

__all__ = ["BEYOND_PROFILE", "DecodeCurve", "EngineModel"]

BEYOND_PROFILE = ("linear", "clamp")
"""How times go on past the profile: ``prefill_beyond`` and ``decode_beyond`` of
:meth:`EngineModel.from_profile`."""

FloatArray = npt.NDArray[np.float64]

_TABLE_SIZE = 4096


def _float_tuple(values: Sequence[float] | FloatArray) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _curve_tuple(curves: Sequence[DecodeCurve]) -> tuple[DecodeCurve, ...]:
    return tuple(curves)


def _upper_secant_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Slope of the line through the middle point and the last point (0 if decreasing)."""
    if len(x) < 2:
        return 0.0
    mid = (len(x) - 1) // 2
    if mid == len(x) - 1:
        mid -= 1
    run = x[-1] - x[mid]
    if run <= 0:
        return 0.0
    return max(0.0, (y[-1] - y[mid]) / run)


@attrs.frozen(kw_only=True)
class DecodeCurve:
    """Measured ITL against concurrency at one profiled context length.

    Attributes:
        context_tokens: The context length (``ISL + OSL/2``) the points were measured at.
        concurrency: Concurrent requests of each point, strictly increasing.
        itl_ms: The measured ITL of each point.
        tail_slope_ms: ITL added per request beyond the last point.
    """

    context_tokens: float
    concurrency: tuple[float, ...] = attrs.field(converter=_float_tuple)
    itl_ms: tuple[float, ...] = attrs.field(converter=_float_tuple)
    tail_slope_ms: float = 0.0

    def itl_at(self, concurrency: float) -> float:
        """ITL at ``concurrency`` running requests at this context."""
        ns = self.concurrency
        its = self.itl_ms
        i = bisect_right(ns, concurrency)
        if i == 0:
            return its[0]
        if i == len(ns):
            return its[-1] + self.tail_slope_ms * (concurrency - ns[-1])
        n0 = ns[i - 1]
        w = (concurrency - n0) / (ns[i] - n0)
        return its[i - 1] + w * (its[i] - its[i - 1])


@attrs.frozen(kw_only=True)
class EngineModel:
    """Prefill batch time and decode step time of one engine, from a profile.

    Build it with :meth:`from_profile`. The scalar methods are pure Python (the simulator
    calls them on every batch and every change of a decode batch); the ``*_array`` methods
    evaluate the same model on numpy arrays.

    Attributes:
        prefill_isl_tokens: Profiled ISLs, strictly increasing.
        prefill_ttft_ms: Profiled TTFT at each ISL.
        prefill_tail_slope_ms: TTFT added per token beyond the largest profiled ISL.
        decode_curves: One curve per profiled context, by increasing context.
        decode_kv_slope_ms: Step time added per running request per context token beyond
            the largest profiled context.
        max_kv_tokens: KV-cache capacity of one decode engine, in tokens.
        source: Where the profile was read from.
    """

    prefill_isl_tokens: tuple[float, ...] = attrs.field(converter=_float_tuple)
    prefill_ttft_ms: tuple[float, ...] = attrs.field(converter=_float_tuple)
    prefill_tail_slope_ms: float
    decode_curves: tuple[DecodeCurve, ...] = attrs.field(converter=_curve_tuple)
    max_kv_tokens: int
    decode_kv_slope_ms: float = 0.0
    source: str = ""
    _contexts: tuple[float, ...] = attrs.field(init=False, repr=False)
    _tables: tuple[list[float], ...] = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(
            self, "_contexts", tuple(c.context_tokens for c in self.decode_curves)
        )
        # ITL of each curve at whole concurrencies 0.._TABLE_SIZE-1 (the simulator's case)
        n = np.arange(_TABLE_SIZE, dtype=np.float64)
        object.__setattr__(
            self,
            "_tables",
            tuple(_curve_array(c, n).tolist() for c in self.decode_curves),
        )

    @classmethod
    def from_profile(
        cls,
        profile: PerfProfile,
        *,
        prefill_beyond: str = "linear",
        decode_beyond: str = "linear",
    ) -> EngineModel:
        """Build the model from a profile.

        Decode points are grouped by context length; their concurrency is recovered as
        ``round(kv_usage * max_kv_tokens / context)``, as the profiler defined it. Points of
        one context with the same concurrency are averaged.

        Args:
            profile: The profile.
            prefill_beyond: Prefill time beyond the largest profiled ISL: ``"linear"``
                (the default; grows on the upper-half secant) or ``"clamp"`` (stays at the
                last point's, as the reference interpolator clamps its queries; this
                makes long prompts unrealistically cheap, for comparisons only).
            decode_beyond: Decode step time beyond the largest profiled context:
                ``"linear"`` (the default; the KV read of the extra context, see the
                module doc) or ``"clamp"`` (the largest context's curve; long contexts
                then decode unrealistically fast, for comparisons only).

        Raises:
            ProfileError: The profile has no prefill or decode point, a non-positive time,
                or unsorted prefill ISLs.
        """
        source = profile.source or "<profile>"
        for name, value in (
            ("prefill_beyond", prefill_beyond),
            ("decode_beyond", decode_beyond),
        ):
            if value not in BEYOND_PROFILE:
                raise ValueError(f"{name} must be 'linear' or 'clamp', got {value!r}")
        isl = np.asarray(profile.prefill.isl_tokens, dtype=np.float64)
        ttft = np.asarray(profile.prefill.ttft_ms, dtype=np.float64)
        if isl.size == 0 or isl.size != ttft.size:
            raise ProfileError(
                "prefill profile needs ISL and TTFT points of one length",
                path=source,
                field="prefill_isl",
            )
        order = np.argsort(isl, kind="stable")
        isl, ttft = isl[order], ttft[order]
        if np.any(np.diff(isl) <= 0):
            raise ProfileError(
                "prefill ISLs must be distinct", path=source, field="prefill_isl"
            )
        if not np.all(np.isfinite(ttft)) or np.any(ttft <= 0):
            raise ProfileError(
                "prefill TTFT must be finite and > 0", path=source, field="prefill_ttft"
            )
        dec = profile.decode
        contexts = np.asarray(dec.context_length_tokens, dtype=np.float64)
        itl = np.asarray(dec.itl_ms, dtype=np.float64)
        if contexts.size == 0 or contexts.size != itl.size:
            raise ProfileError(
                "decode profile needs context and ITL points of one length",
                path=source,
                field="y_context_length",
            )
        if not np.all(np.isfinite(itl)) or np.any(itl <= 0):
            raise ProfileError(
                "decode ITL must be finite and > 0", path=source, field="z_itl"
            )
        concurrency = np.maximum(dec.concurrency, 1.0)
        curves = []
        for context in np.unique(contexts):
            mask = contexts == context
            ns = concurrency[mask]
            levels = np.unique(ns)
            means = np.array([itl[mask][ns == n].mean() for n in levels])
            curves.append(
                DecodeCurve(
                    context_tokens=float(context),
                    concurrency=levels,
                    itl_ms=means,
                    tail_slope_ms=_upper_secant_slope(
                        _float_tuple(levels), _float_tuple(means)
                    ),
                )
            )
        return cls(
            prefill_isl_tokens=isl,
            prefill_ttft_ms=ttft,
            prefill_tail_slope_ms=(
                _upper_secant_slope(_float_tuple(isl), _float_tuple(ttft))
                if prefill_beyond == "linear"
                else 0.0
            ),
            decode_curves=curves,
            max_kv_tokens=int(dec.max_kv_tokens),
            decode_kv_slope_ms=(
                _context_slope(curves) if decode_beyond == "linear" else 0.0
            ),
            source=profile.source,
        )

    # ------------------------------------------------------------------ prefill
    def prefill_ms(self, tokens: float) -> float:
        """Time of one prefill batch of ``tokens`` prompt tokens in total, in ms."""
        xs = self.prefill_isl_tokens
        ys = self.prefill_ttft_ms
        i = bisect_right(xs, tokens)
        if i == 0:
            return ys[0]
        if i == len(xs):
            return ys[-1] + self.prefill_tail_slope_ms * (tokens - xs[-1])
        x0 = xs[i - 1]
        return ys[i - 1] + (tokens - x0) / (xs[i] - x0) * (ys[i] - ys[i - 1])

    def prefill_ms_array(self, tokens: npt.ArrayLike) -> FloatArray:
        """:meth:`prefill_ms` over an array."""
        x = np.asarray(tokens, dtype=np.float64)
        xs = np.asarray(self.prefill_isl_tokens)
        ys = np.asarray(self.prefill_ttft_ms)
        inside = np.interp(x, xs, ys)
        beyond = ys[-1] + self.prefill_tail_slope_ms * (x - xs[-1])
        return np.asarray(np.where(x > xs[-1], beyond, inside), dtype=np.float64)

    # ------------------------------------------------------------------ decode
    def decode_step_ms(self, concurrency: float, context_tokens: float) -> float:
        """Time of one decode step with ``concurrency`` requests of mean context, in ms."""
        curves = self.decode_curves
        j = bisect_right(self._contexts, context_tokens)
        if j == 0:
            return curves[0].itl_at(concurrency)
        if j == len(curves):
            return curves[-1].itl_at(concurrency) + self._beyond_ms(
                concurrency, context_tokens
            )
        lo = curves[j - 1]
        hi = curves[j]
        w = (context_tokens - lo.context_tokens) / (
            hi.context_tokens - lo.context_tokens
        )
        a = lo.itl_at(concurrency)
        if w == 0.0:
            return a
        return a + w * (hi.itl_at(concurrency) - a)

    def decode_step_ms_whole(self, concurrency: int, context_tokens: float) -> float:
        """:meth:`decode_step_ms` for a whole number of requests (faster, same values)."""
        if concurrency >= _TABLE_SIZE:
            return self.decode_step_ms(concurrency, context_tokens)
        tables = self._tables
        j = bisect_right(self._contexts, context_tokens)
        if j == 0:
            return tables[0][concurrency]
        if j == len(tables):
            return tables[-1][concurrency] + self._beyond_ms(
                concurrency, context_tokens
            )
        c0 = self._contexts[j - 1]
        a = tables[j - 1][concurrency]
        w = (context_tokens - c0) / (self._contexts[j] - c0)
        if w == 0.0:
            return a
        return a + w * (tables[j][concurrency] - a)

    def decode_step_ms_array(
        self, concurrency: npt.ArrayLike, context_tokens: npt.ArrayLike
    ) -> FloatArray:
        """:meth:`decode_step_ms` over arrays (broadcast together)."""
        n, c = np.broadcast_arrays(
            np.asarray(concurrency, dtype=np.float64),
            np.asarray(context_tokens, dtype=np.float64),
        )
        per_curve = np.stack([_curve_array(curve, n) for curve in self.decode_curves])
        ctx = np.asarray(self._contexts)
        beyond = self.decode_kv_slope_ms * n * np.maximum(c - ctx[-1], 0.0)
        if ctx.size == 1:
            return np.asarray(per_curve[0] + beyond, dtype=np.float64)
        clipped = np.clip(c, ctx[0], ctx[-1])
        j = np.clip(np.searchsorted(ctx, clipped, side="right"), 1, ctx.size - 1)
        w = (clipped - ctx[j - 1]) / (ctx[j] - ctx[j - 1])
        lo = np.take_along_axis(per_curve, (j - 1)[None, ...], axis=0)[0]
        hi = np.take_along_axis(per_curve, j[None, ...], axis=0)[0]
        return np.asarray(lo + w * (hi - lo) + beyond, dtype=np.float64)

    def _beyond_ms(self, concurrency: float, context_tokens: float) -> float:
        """KV read time of the context past the largest profiled one (module doc)."""
        extra = context_tokens - self._contexts[-1]
        if extra <= 0.0:
            return 0.0
        return self.decode_kv_slope_ms * concurrency * extra

    # ------------------------------------------------------------------ aggregated
    def agg_step_ms(
        self, concurrency: int, context_tokens: float, prefill_tokens: float
    ) -> float:
        """One step of an aggregated engine, in ms (see the module docstring).

        Args:
            concurrency: Requests decoding (each gets one token this step).
            context_tokens: Their mean context.
            prefill_tokens: Prompt tokens computed this step (0: a decode-only step).

        Returns:
            The decode step time plus the prefill time of the chunk, back to back.
        """
        step = (
            self.decode_step_ms_whole(concurrency, context_tokens)
            if concurrency > 0
            else 0.0
        )
        if prefill_tokens > 0:
            step += self.prefill_ms(prefill_tokens)
        return step

    # ------------------------------------------------------------------ summaries
    @property
    def max_prefill_isl_tokens(self) -> float:
        """The largest profiled ISL (beyond it prefill time is extrapolated)."""
        return self.prefill_isl_tokens[-1]

    @property
    def decode_contexts_tokens(self) -> tuple[float, ...]:
        """The profiled context lengths, increasing."""
        return self._contexts


def _context_slope(curves: Sequence[DecodeCurve]) -> float:
    """Step time per running request per context token, over the upper contexts.

    The secant between the lowest and the highest context of the upper half of the
    profiled contexts, per request, averaged over the highest context's measured
    concurrencies; never negative, and 0 with a single profiled context.
    """
    if len(curves) < 2:
        return 0.0
    lo = curves[(len(curves) - 1) // 2]
    hi = curves[-1]
    span = hi.context_tokens - lo.context_tokens
    slopes = [
        (hi.itl_at(n) - lo.itl_at(n)) / (n * span) for n in hi.concurrency if n > 0
    ]
    return max(0.0, float(np.mean(slopes))) if slopes else 0.0


def _curve_array(curve: DecodeCurve, n: FloatArray) -> FloatArray:
    ns = np.asarray(curve.concurrency)
    its = np.asarray(curve.itl_ms)
    inside = np.interp(n, ns, its)
    beyond = its[-1] + curve.tail_slope_ms * (n - ns[-1])
    return np.asarray(np.where(n > ns[-1], beyond, inside), dtype=np.float64)
