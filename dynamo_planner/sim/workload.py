"""Request streams for the simulator: transforms of a trace, and ServeGen arrival synthesis.

Every function takes and returns a :class:`~dynamo_planner.traces.RequestTrace`, so they
compose: ``load_scale(rate_scale(window(trace, 0, 1800), 2.0), 3)``.

* :func:`window` keeps a time range and moves it to start at 0;
* :func:`rate_scale` compresses time (``k`` times the rate, same requests, ``1/k`` the
  duration);
* :func:`load_scale` superposes ``k`` copies of the trace shifted in time (cyclically within
  the trace's span): ``k`` times the load over the same duration, each copy keeping the
  trace's own burst structure;
* :func:`spread_ties` spreads requests that share a timestamp (e.g. the mooncake trace's
  3 s buckets) uniformly over the bucket;
* :func:`synthesize_servegen` draws per-request arrivals from ServeGen's per-client windows,
  each client with its fitted inter-arrival law, and request lengths from another trace or
  fixed values.

Randomness only enters through an explicit ``seed``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from dynamo_planner.traces import RequestTrace, ServeGenWindows

__all__ = [
    "load_scale",
    "rate_scale",
    "spread_ties",
    "synthesize_servegen",
    "window",
]

FloatArray = npt.NDArray[np.float64]


def _trace(
    arrival: FloatArray, isl: FloatArray, osl: FloatArray, source: str
) -> RequestTrace:
    order = np.argsort(arrival, kind="stable")
    return RequestTrace(
        arrival_s=arrival[order],
        isl_tokens=isl[order],
        osl_tokens=osl[order],
        source=source,
    )


def window(
    trace: RequestTrace, start_s: float = 0.0, end_s: float | None = None
) -> RequestTrace:
    """The requests arriving in ``[start_s, end_s)``, shifted so ``start_s`` becomes 0.

    Args:
        trace: The requests.
        start_s: Start of the window, on the trace's clock.
        end_s: End of the window (exclusive); ``None``: the end of the trace.

    Raises:
        ValueError: The window is empty or inverted.
    """
    end = math.inf if end_s is None else float(end_s)
    if not end > start_s:
        raise ValueError(f"window end {end_s!r} must be after its start {start_s!r}")
    arrival = trace.arrival_s
    lo = int(np.searchsorted(arrival, start_s, side="left"))
    hi = int(np.searchsorted(arrival, end, side="left"))
    return RequestTrace(
        arrival_s=arrival[lo:hi] - start_s,
        isl_tokens=trace.isl_tokens[lo:hi],
        osl_tokens=trace.osl_tokens[lo:hi],
        source=f"{trace.source}[{start_s:g}s:{'' if end_s is None else f'{end:g}'}s]",
    )


def rate_scale(trace: RequestTrace, factor: float) -> RequestTrace:
    """Compress time by ``factor``: the same requests at ``factor`` times the rate.

    Args:
        trace: The requests.
        factor: Rate multiplier (> 0); 2 halves every inter-arrival gap.

    Raises:
        ValueError: ``factor`` is not a positive finite number.
    """
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"rate scale must be a finite number > 0, got {factor!r}")
    if factor == 1:
        return trace
    return RequestTrace(
        arrival_s=trace.arrival_s / factor,
        isl_tokens=trace.isl_tokens,
        osl_tokens=trace.osl_tokens,
        source=f"{trace.source} rate x{factor:g}",
    )


def load_scale(
    trace: RequestTrace, copies: int, *, shift_s: float | None = None
) -> RequestTrace:
    """Superpose ``copies`` time-shifted copies of a trace.

    Copy ``j`` (``j = 0 .. copies-1``) is shifted by ``j * shift_s`` and wrapped around the
    trace's span ``[first arrival, last arrival]``, so the result covers the same span with
    ``copies`` times the requests, and each copy keeps the trace's bursts (unlike
    :func:`rate_scale`, which makes bursts shorter). The default shift spreads the copies
    evenly over the span (``span / copies``).

    Args:
        trace: The requests.
        copies: How many copies (>= 1).
        shift_s: Shift between consecutive copies, in seconds.

    Raises:
        ValueError: ``copies`` is below 1 or the shift is negative.
    """
    if copies < 1:
        raise ValueError(f"load scale must be a whole number >= 1, got {copies!r}")
    if copies == 1 or len(trace) == 0:
        return trace
    start = float(trace.arrival_s[0])
    span = float(trace.arrival_s[-1]) - start
    step = span / copies if shift_s is None else float(shift_s)
    if not (math.isfinite(step) and step >= 0):
        raise ValueError(f"load-scale shift must be >= 0, got {shift_s!r}")
    parts = []
    for j in range(copies):
        offset = trace.arrival_s - start + j * step
        if span > 0:
            offset = np.mod(offset, span + _wrap_gap(trace))
        parts.append(offset + start)
    return _trace(
        np.concatenate(parts),
        np.tile(trace.isl_tokens, copies),
        np.tile(trace.osl_tokens, copies),
        f"{trace.source} load x{copies}",
    )


def _wrap_gap(trace: RequestTrace) -> float:
    """The mean gap between requests: the wrap-around period is span + one mean gap."""
    n = len(trace)
    return trace.duration_s / (n - 1) if n > 1 else 0.0


def spread_ties(trace: RequestTrace, width_s: float, *, seed: int = 0) -> RequestTrace:
    """Spread requests that share a timestamp uniformly over ``[t, t + width_s)``.

    Traces that record arrivals in coarse buckets (the mooncake conversation trace uses
    ~3 s) otherwise replay as bursts that never happened. Requests alone at their timestamp
    keep it; the order of requests within a bucket is kept.

    Args:
        trace: The requests.
        width_s: Width of a bucket, in seconds (0 returns the trace unchanged).
        seed: Seed of the uniform offsets.
    """
    if width_s < 0 or not math.isfinite(width_s):
        raise ValueError(f"spread width must be finite and >= 0, got {width_s!r}")
    if width_s == 0 or len(trace) < 2:
        return trace
    arrival = trace.arrival_s
    _, counts = np.unique(arrival, return_counts=True)
    tied = np.repeat(counts > 1, counts)
    group = np.repeat(np.arange(counts.size), counts)
    raw = np.random.default_rng(seed).uniform(0.0, width_s, size=len(trace))
    # requests are grouped contiguously, so sorting by (group, offset) keeps their order
    within = raw[np.lexsort((raw, group))]
    new = np.where(tied, arrival + within, arrival)
    return _trace(
        new,
        np.asarray(trace.isl_tokens),
        np.asarray(trace.osl_tokens),
        f"{trace.source} spread {width_s:g}s",
    )


def synthesize_servegen(
    windows: ServeGenWindows,
    *,
    start_s: float = 0.0,
    duration_s: float | None = None,
    rate_factor: float = 1.0,
    lengths: RequestTrace | None = None,
    isl_tokens: float = 1024.0,
    osl_tokens: float = 256.0,
    seed: int = 0,
) -> RequestTrace:
    """Per-request arrivals drawn from ServeGen's per-client windows.

    For every client and window with traffic, the number of requests is the window's mean
    rate times its length (times ``rate_factor``), rounded stochastically; their
    inter-arrival gaps are drawn from the client's fitted law (Gamma with shape ``arg1``, or
    Weibull with shape ``arg1``; the scale ``arg2`` cancels) and rescaled to fill the window,
    as ServeGen's own generator does, so each client keeps its burstiness (CV). Clients are
    superposed.

    Lengths are drawn (with replacement, ISL and OSL together) from ``lengths`` if given,
    otherwise every request gets ``isl_tokens`` and ``osl_tokens``.

    Args:
        windows: The ServeGen windows (:func:`dynamo_planner.traces.load_servegen`).
        start_s: Start of the synthesized span, on the windows' clock.
        duration_s: Length of the span; ``None``: to the end of the last window.
        rate_factor: Multiplier of every client's rate (e.g. 0.01 to fit a small
            deployment).
        lengths: A trace to draw (ISL, OSL) pairs from.
        isl_tokens: ISL of every request when ``lengths`` is not given.
        osl_tokens: OSL of every request when ``lengths`` is not given.
        seed: Seed of every random draw.

    Returns:
        The requests, arrival times relative to ``start_s``.

    Raises:
        ValueError: A parameter is out of range or a window has an unknown pattern.
    """
    if not (math.isfinite(rate_factor) and rate_factor >= 0):
        raise ValueError(f"rate_factor must be finite and >= 0, got {rate_factor!r}")
    width = float(windows.window_s)
    last = float(windows.start_s[-1]) + width if windows.start_s.size else 0.0
    end = last if duration_s is None else start_s + float(duration_s)
    if not end > start_s:
        raise ValueError("duration_s must be > 0")
    rng = np.random.default_rng(seed)
    chunks: list[FloatArray] = []
    for w, w_start in enumerate(windows.start_s.tolist()):
        w_end = w_start + width
        if w_end <= start_s or w_start >= end:
            continue
        for c in range(windows.rate_per_s.shape[0]):
            rate = float(windows.rate_per_s[c, w]) * rate_factor
            if rate <= 0:
                continue
            expected = rate * width
            n = math.floor(expected)
            if rng.random() < expected - n:
                n += 1
            if n == 0:
                continue
            gaps = _gaps(
                str(windows.pattern[c, w]),
                float(windows.arg1[c, w]),
                float(windows.cv[c, w]),
                n + 1,
                rng,
            )
            times = w_start + width * np.cumsum(gaps)[:-1] / gaps.sum()
            chunks.append(times[(times >= start_s) & (times < end)])
    arrival = np.concatenate(chunks) if chunks else np.zeros(0)
    arrival = np.sort(arrival) - start_s
    count = arrival.size
    if lengths is not None and len(lengths) > 0:
        pick = rng.integers(0, len(lengths), size=count)
        isl = np.asarray(lengths.isl_tokens)[pick]
        osl = np.asarray(lengths.osl_tokens)[pick]
        what = f"lengths from {lengths.source}"
    else:
        isl = np.full(count, float(isl_tokens))
        osl = np.full(count, float(osl_tokens))
        what = f"ISL {isl_tokens:g}, OSL {osl_tokens:g}"
    return RequestTrace(
        arrival_s=arrival,
        isl_tokens=isl,
        osl_tokens=osl,
        source=(
            f"ServeGen {windows.source} [{start_s:g}s, {end:g}s) x{rate_factor:g}, "
            f"{what}, seed {seed}"
        ),
    )


def _gaps(
    pattern: str, shape: float, cv: float, size: int, rng: np.random.Generator
) -> FloatArray:
    """Inter-arrival gaps of a window's fitted law (unit scale: only ratios matter)."""
    if pattern == "Gamma" and shape > 0:
        return np.asarray(rng.gamma(shape, 1.0, size=size), dtype=np.float64)
    if pattern == "Weibull" and shape > 0:
        return np.asarray(rng.weibull(shape, size=size), dtype=np.float64) + 1e-300
    if pattern in ("", "Gamma", "Weibull"):
        # no fitted law: a Gamma with the window's CV (exponential if unknown)
        k = 1.0 / (cv * cv) if cv > 0 else 1.0
        return np.asarray(rng.gamma(k, 1.0, size=size), dtype=np.float64)
    raise ValueError(f"unknown ServeGen inter-arrival pattern {pattern!r}")
