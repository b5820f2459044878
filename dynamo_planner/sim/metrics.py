"""What a replay is judged by: SLA attainment, latency percentiles and GPU-hours.

Definitions (used everywhere in replays, baselines and docs):

* A request **meets TTFT** when its time to first token is within the TTFT target, and
  **meets ITL** when its mean inter-token latency (decode time over ``OSL - 1`` gaps) is
  within the ITL target; a request with one output token has no gap and meets ITL. A
  request that never completed meets neither.
* **Attainment** is the share of counted requests meeting both targets (also reported for
  each target alone). Counted requests are those arriving at or after ``warmup_s``.
* Latency **percentiles** are over counted requests (ITL over those with more than one
  output token), taking observed values (no interpolation).
* **GPU-hours** are the GPU-seconds held by all workers (starting, serving and draining)
  from ``warmup_s`` to the end of the run (the last completion), over 3600.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from dynamo_planner.sim.results import SimResult, WorkerSpan
from dynamo_planner.values import ReplicaPlan

__all__ = [
    "IntervalRow",
    "RunSummary",
    "first_interval_start",
    "gpu_seconds_between",
    "interval_table",
    "meets_targets",
    "planner_intervals",
    "summarize",
    "workers_over_time",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_QUANTILES = (0.5, 0.9, 0.99)


def _quantiles(values: FloatArray) -> tuple[float, float, float]:
    if values.size == 0:
        return (math.nan, math.nan, math.nan)
    q = np.quantile(values, _QUANTILES, method="inverted_cdf")
    return (float(q[0]), float(q[1]), float(q[2]))


def first_interval_start(warmup_s: float, interval_s: float) -> float:
    """Start of the planner interval that holds ``warmup_s``.

    A planner decides every ``interval_s`` from the start of the trace, so its intervals
    are ``[j x interval_s, (j + 1) x interval_s)``. The per-interval yardsticks (the
    whole-worker floor, the interval oracle, hindsight schedules) use the planner's
    intervals from the one holding ``warmup_s``, counting that one from ``warmup_s`` on.
    """
    return math.floor(warmup_s / interval_s + 1e-9) * interval_s


def planner_intervals(
    arrival_s: FloatArray, warmup_s: float, interval_s: float
) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Which planner interval each arrival falls in, and each interval's counted length.

    Interval 0 is the one holding ``warmup_s`` (:func:`first_interval_start`); it counts
    from ``warmup_s``, and the last one ends at the last arrival.

    Args:
        arrival_s: Arrival times, none before ``warmup_s``; at least one.
        warmup_s: Start of the counted time.
        interval_s: The planner's interval.
    """
    origin = first_interval_start(warmup_s, interval_s)
    index = np.floor((arrival_s - origin) / interval_s).astype(np.int64)
    bins = int(index.max()) + 1
    ends = origin + interval_s * np.arange(1, bins + 1, dtype=np.float64)
    ends[-1] = float(arrival_s.max())
    starts = np.maximum(
        origin + interval_s * np.arange(bins, dtype=np.float64), warmup_s
    )
    return index, np.maximum(ends - starts, 1e-9)


def meets_targets(
    result: SimResult, *, ttft_ms: float, itl_ms: float
) -> tuple[BoolArray, BoolArray]:
    """Per request: (meets TTFT, meets ITL), as defined in the module docstring."""
    ttft = result.ttft_ms
    itl = result.itl_ms
    completed = result.completed
    ok_ttft = completed & (ttft <= ttft_ms)
    ok_itl = completed & (np.isnan(itl) | (itl <= itl_ms))
    return np.asarray(ok_ttft), np.asarray(ok_itl)


def gpu_seconds_between(
    workers: Sequence[WorkerSpan], start_s: float, end_s: float
) -> float:
    """GPU-seconds the workers held within ``[start_s, end_s]``."""
    total = 0.0
    for w in workers:
        overlap = min(w.released_s, end_s) - max(w.requested_s, start_s)
        if overlap > 0:
            total += overlap * w.gpus
    return total


@attrs.frozen(kw_only=True)
class RunSummary:
    """One run's figures.

    Attributes:
        name: What ran (``"planner"``, ``"perfect forecast"``, ``"best static"``).
        requests: Requests counted (arrived at or after the warm-up).
        completed: Counted requests that completed.
        ttft_ms: TTFT p50, p90, p99.
        itl_ms: ITL p50, p90, p99.
        attainment_ttft: Share meeting the TTFT target.
        attainment_itl: Share meeting the ITL target.
        attainment: Share meeting both.
        gpu_hours: GPU-hours from the warm-up to the end of the run.
        end_s: End of the run (last completion), seconds.
        scaling_actions: Plans that changed the requested replicas.
        prefill: Fixed prefill workers (static runs).
        decode: Fixed decode workers (static runs).
    """

    name: str
    requests: int
    completed: int
    ttft_ms: tuple[float, float, float]
    itl_ms: tuple[float, float, float]
    attainment_ttft: float
    attainment_itl: float
    attainment: float
    gpu_hours: float
    end_s: float
    scaling_actions: int = 0
    prefill: int | None = None
    decode: int | None = None

    @property
    def label(self) -> str:
        """The name, with the fixed deployment for static runs.

        ``"best static (2P+3D)"``; with no prefill worker (an agg deployment)
        ``"best static (3 agg)"``.
        """
        if self.prefill == 0 and self.decode is not None:
            return f"{self.name} ({self.decode} agg)"
        if self.prefill is not None and self.decode is not None:
            return f"{self.name} ({self.prefill}P+{self.decode}D)"
        return self.name

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (NaN becomes ``None``)."""
        out: dict[str, Any] = {
            "name": self.name,
            "requests": self.requests,
            "completed": self.completed,
            "ttft_ms": dict(
                zip(("p50", "p90", "p99"), _json(self.ttft_ms), strict=True)
            ),
            "itl_ms": dict(zip(("p50", "p90", "p99"), _json(self.itl_ms), strict=True)),
            "attainment_ttft": self.attainment_ttft,
            "attainment_itl": self.attainment_itl,
            "attainment": self.attainment,
            "gpu_hours": self.gpu_hours,
            "end_s": self.end_s,
            "scaling_actions": self.scaling_actions,
        }
        if self.prefill is not None:
            out["prefill"] = self.prefill
            out["decode"] = self.decode
        return out


def _json(values: Sequence[float]) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values]


def summarize(
    result: SimResult,
    *,
    name: str,
    ttft_ms: float,
    itl_ms: float,
    warmup_s: float = 0.0,
    scaling_actions: int = 0,
    prefill: int | None = None,
    decode: int | None = None,
) -> RunSummary:
    """Summarize a run (definitions in the module docstring)."""
    counted = result.arrival_s >= warmup_s
    ok_ttft, ok_itl = meets_targets(result, ttft_ms=ttft_ms, itl_ms=itl_ms)
    n = int(counted.sum())
    itl = result.itl_ms[counted]

    def share(mask: BoolArray) -> float:
        return float(mask[counted].mean()) if n else math.nan

    return RunSummary(
        name=name,
        requests=n,
        completed=int(result.completed[counted].sum()),
        ttft_ms=_quantiles(result.ttft_ms[counted]),
        itl_ms=_quantiles(itl[~np.isnan(itl)]),
        attainment_ttft=share(ok_ttft),
        attainment_itl=share(ok_itl),
        attainment=share(ok_ttft & ok_itl),
        gpu_hours=gpu_seconds_between(result.workers, warmup_s, result.end_s) / 3600.0,
        end_s=result.end_s,
        scaling_actions=scaling_actions,
        prefill=prefill,
        decode=decode,
    )


@attrs.frozen(kw_only=True)
class IntervalRow:
    """One adjustment interval of a run.

    Latency columns are over requests *arriving* in the interval; forecast and plan columns
    are from the decision taken at the interval's start (NaN/None when there was none);
    worker columns are at the interval's end.
    """

    start_s: float
    end_s: float
    num_req: int
    isl_tokens: float
    osl_tokens: float
    forecast_num_req: float
    forecast_isl_tokens: float
    forecast_osl_tokens: float
    planned_prefill: int | None
    planned_decode: int | None
    prefill_ready: int
    decode_ready: int
    prefill_workers: int
    decode_workers: int
    gpu_seconds: float
    ttft_ms: tuple[float, float, float]
    itl_ms: tuple[float, float, float]
    attainment: float

    FIELDS = (
        "start_s",
        "end_s",
        "num_req",
        "request_rate_per_s",
        "isl_tokens",
        "osl_tokens",
        "forecast_num_req",
        "forecast_isl_tokens",
        "forecast_osl_tokens",
        "planned_prefill",
        "planned_decode",
        "prefill_ready",
        "decode_ready",
        "prefill_workers",
        "decode_workers",
        "gpus_mean",
        "ttft_p50_ms",
        "ttft_p90_ms",
        "ttft_p99_ms",
        "itl_p50_ms",
        "itl_p90_ms",
        "itl_p99_ms",
        "attainment",
    )
    """Column names of :meth:`as_row`."""

    def as_row(self) -> list[Any]:
        """Values in the order of :attr:`FIELDS`."""
        width = self.end_s - self.start_s
        return [
            self.start_s,
            self.end_s,
            self.num_req,
            self.num_req / width if width > 0 else math.nan,
            self.isl_tokens,
            self.osl_tokens,
            self.forecast_num_req,
            self.forecast_isl_tokens,
            self.forecast_osl_tokens,
            "" if self.planned_prefill is None else self.planned_prefill,
            "" if self.planned_decode is None else self.planned_decode,
            self.prefill_ready,
            self.decode_ready,
            self.prefill_workers,
            self.decode_workers,
            self.gpu_seconds / width if width > 0 else math.nan,
            *self.ttft_ms,
            *self.itl_ms,
            self.attainment,
        ]


def workers_over_time(
    workers: Sequence[WorkerSpan], times: npt.ArrayLike, component: str
) -> tuple[FloatArray, FloatArray]:
    """Ready and held (starting, ready or draining) workers of a component at ``times``."""
    t = np.asarray(times, dtype=np.float64)
    ready = np.zeros(t.shape)
    held = np.zeros(t.shape)
    for w in workers:
        if w.component != component:
            continue
        held += (t >= w.requested_s) & (t < w.released_s)
        ready += (t >= w.ready_s) & (t < w.released_s)
    return ready, held


def interval_table(
    result: SimResult,
    *,
    interval_s: float,
    ttft_ms: float,
    itl_ms: float,
    plans: Mapping[int, ReplicaPlan] | None = None,
) -> list[IntervalRow]:
    """Per-interval figures of a run, from time 0 to the end of the run.

    Args:
        result: The run.
        interval_s: Interval length.
        ttft_ms: TTFT target.
        itl_ms: ITL target.
        plans: The plan made at the start of interval ``k``, by ``k``.
    """
    plans = plans or {}
    count = max(1, math.ceil(result.end_s / interval_s - 1e-9))
    index = np.floor(result.arrival_s / interval_s).astype(np.int64)
    ok_ttft, ok_itl = meets_targets(result, ttft_ms=ttft_ms, itl_ms=itl_ms)
    ok = ok_ttft & ok_itl
    ttft = result.ttft_ms
    itl = result.itl_ms
    ends = (np.arange(count) + 1) * interval_s
    sample_at = np.minimum(ends, result.end_s) - 1e-9
    p_ready, p_held = workers_over_time(result.workers, sample_at, "prefill")
    d_ready, d_held = workers_over_time(result.workers, sample_at, "decode")
    bounds = np.searchsorted(index, np.arange(count + 1), side="left")
    rows = []
    for k in range(count):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        start = k * interval_s
        end = min((k + 1) * interval_s, max(result.end_s, start))
        plan = plans.get(k)
        demand = plan.demand if plan is not None else None
        k_itl = itl[lo:hi]
        rows.append(
            IntervalRow(
                start_s=start,
                end_s=end,
                num_req=hi - lo,
                isl_tokens=float(result.isl_tokens[lo:hi].mean())
                if hi > lo
                else math.nan,
                osl_tokens=float(result.osl_tokens[lo:hi].mean())
                if hi > lo
                else math.nan,
                forecast_num_req=demand.num_req.value if demand else math.nan,
                forecast_isl_tokens=demand.isl_tokens.value if demand else math.nan,
                forecast_osl_tokens=demand.osl_tokens.value if demand else math.nan,
                planned_prefill=plan.prefill if plan is not None else None,
                planned_decode=plan.decode if plan is not None else None,
                prefill_ready=int(p_ready[k]),
                decode_ready=int(d_ready[k]),
                prefill_workers=int(p_held[k]),
                decode_workers=int(d_held[k]),
                gpu_seconds=gpu_seconds_between(result.workers, start, end),
                ttft_ms=_quantiles(ttft[lo:hi]),
                itl_ms=_quantiles(k_itl[~np.isnan(k_itl)]),
                attainment=float(ok[lo:hi].mean()) if hi > lo else math.nan,
            )
        )
    return rows
