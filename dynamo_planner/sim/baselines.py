"""The yardsticks a planner run is compared with.

**Best static deployment.** The fixed prefill + decode deployment with the fewest GPUs
whose attainment (share of requests meeting both targets) reaches the target (0.99 by
default), found by simulation (:func:`best_static`). Static workers are all ready at time
0, so cold starts do not matter. The search assumes more workers never lower attainment:
it doubles ``k`` until ``kP+kD`` meets the target, then bisects the prefill count at ``kD``,
then the decode count at that prefill count, then tries trading decode workers for
prefill workers while that saves GPUs. When doubling stops improving attainment, the
target is out of reach (some requests miss a target even alone): the search then sizes for
the most attainment reached, less half a percentage point, and is flagged infeasible.
For an agg deployment (``SimConfig(mode="agg")``) the search is over the number of
aggregated workers alone: doubling, then bisection.

**Perfect forecast.** The same planner, with its three predictors replaced by
:class:`~dynamo_planner.sim.edges.OraclePredictor`: at each decision it is told the actual
request count, mean ISL and mean OSL of the coming interval (see
:func:`oracle_predictors`). Cold start, metric delay and the scaler's own model still apply,
so it isolates the cost of forecast error.

**Capacity floor** (:func:`capacity_floor`). The GPU-hours an ideal deployment would need
if every GPU always ran at its best throughput that still meets the targets, with no
queueing, no idle time, instant scaling and fractional GPUs: the integral of the load over
per-GPU capacity at the SLA, i.e. the sum over (counted) requests of

* prefill: ``ISL / Cp``, where ``Cp`` is the largest prefill throughput per GPU of the
  simulator's prefill model over batch sizes whose batch time is within the TTFT target
  (``x / prefill_ms(x) * 1000 / Np``);
* decode: ``(OSL - 1) / Cd(c)``, where ``Cd(c)`` is the largest decode throughput per GPU
  at the request's context ``c = ISL + OSL/2`` over concurrencies ``n`` whose step time is
  within the ITL target and whose KV use ``n * c`` fits the cache (``n / step_ms(n, c) *
  1000 / Nd``), with ``n`` at most the largest concurrency the profile measured (beyond it
  the model extrapolates). ``Cd`` is evaluated on a 200-point logarithmic grid of contexts
  and interpolated.

**Whole-worker floor** (``CapacityFloor.whole_worker_gpu_hours``, when ``interval_s`` is
given). Workers come whole and a planner changes them once an interval, so each interval
needs at least ``ceil(work / interval)`` prefill workers and as many decode workers, where
``work`` is the worker-seconds above of the requests arriving in it (intervals counted from
``warmup_s``; a request lasts seconds, so work spilling into the next interval is
negligible). The sum over intervals bounds from below any planner with that interval that
serves every request within the targets (one that lets some miss can dip below it in some
intervals, as the interval oracle of :mod:`dynamo_planner.sim.oracle` does); on a small
deployment it can be far above the fluid floor, which is why a GPU-hour target must be
checked against it.

No deployment in the simulator can use fewer GPU-hours while meeting the targets for every
request; where even one request alone misses a target, the floor is computed at the
single-request operating point and flagged infeasible. For agg workers, give the decode
engine's GPUs for both phases: an aggregated engine does both kinds of work, back to back
in the simulator's model, so it cannot beat the two phases at their best throughputs.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import numpy as np

from dynamo_planner.protocols import Clock
from dynamo_planner.sim.edges import OraclePredictor
from dynamo_planner.sim.engine import SimConfig, Simulation
from dynamo_planner.sim.engine_model import EngineModel
from dynamo_planner.sim.metrics import RunSummary, planner_intervals, summarize
from dynamo_planner.sim.results import SimResult
from dynamo_planner.traces import RequestTrace

__all__ = [
    "CapacityFloor",
    "StaticSearch",
    "best_static",
    "capacity_floor",
    "oracle_predictors",
    "run_static",
    "static_result",
]


# ------------------------------------------------------------------------ capacity floor


@attrs.frozen(kw_only=True)
class CapacityFloor:
    """The capacity floor of a trace (see the module docstring).

    Attributes:
        gpu_hours: Prefill plus decode GPU-hours.
        prefill_gpu_hours: Prefill GPU-hours.
        decode_gpu_hours: Decode GPU-hours.
        prefill_tokens_per_s_per_gpu: ``Cp``.
        feasible: False when some request misses a target even alone.
        interval_s: The interval of the whole-worker floor (``None``: not computed).
        whole_worker_gpu_hours: GPU-hours with whole workers changed once an interval
            (NaN when ``interval_s`` is ``None``).
    """

    gpu_hours: float
    prefill_gpu_hours: float
    decode_gpu_hours: float
    prefill_tokens_per_s_per_gpu: float
    feasible: bool
    interval_s: float | None = None
    whole_worker_gpu_hours: float = math.nan


def capacity_floor(
    trace: RequestTrace,
    model: EngineModel,
    *,
    ttft_ms: float,
    itl_ms: float,
    prefill_gpus_per_engine: int = 1,
    decode_gpus_per_engine: int = 1,
    max_decode_batch: int | None = None,
    warmup_s: float = 0.0,
    interval_s: float | None = None,
) -> CapacityFloor:
    """GPU-hours no deployment can beat while meeting the targets (module docstring).

    Args:
        trace: The requests.
        model: The simulated engine.
        ttft_ms: TTFT target.
        itl_ms: ITL target.
        prefill_gpus_per_engine: GPUs of one prefill worker.
        decode_gpus_per_engine: GPUs of one decode worker.
        max_decode_batch: Cap on one decode worker's concurrency.
        warmup_s: Requests arriving before this are not counted.
        interval_s: Also compute the whole-worker floor for this planner interval.

    Raises:
        ValueError: ``interval_s`` is not a positive number.
    """
    if interval_s is not None and not (math.isfinite(interval_s) and interval_s > 0):
        raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
    counted = trace.arrival_s >= warmup_s
    isl = np.asarray(trace.isl_tokens)[counted]
    osl = np.maximum(np.asarray(trace.osl_tokens)[counted], 1.0)
    feasible = True
    # prefill
    top = max(
        float(isl.max()) if isl.size else 1.0,
        model.max_prefill_isl_tokens,
    )
    x = np.unique(
        np.concatenate(
            [np.asarray(model.prefill_isl_tokens), np.linspace(1.0, top, 4001)]
        )
    )
    x = x[x <= top]
    time_ms = model.prefill_ms_array(x)
    ok = time_ms <= ttft_ms
    if not ok.any():
        feasible = False
        ok = time_ms <= time_ms.min()
    if isl.size and float(model.prefill_ms(float(isl.max()))) > ttft_ms:
        feasible = False
    cp = float(np.max(x[ok] / time_ms[ok])) * 1000.0 / prefill_gpus_per_engine
    prefill_each_s = isl / cp
    prefill_s = float(prefill_each_s.sum())
    # decode
    decode_each_s = np.zeros_like(osl)
    gaps = osl - 1.0
    if np.any(gaps > 0):
        ctx = np.maximum(isl + osl / 2.0, 1.0)
        grid = (
            np.geomspace(ctx.min(), ctx.max(), 200)
            if ctx.max() > ctx.min()
            else ctx[:1]
        )
        n_cap = max(max(c.concurrency) for c in model.decode_curves)
        if max_decode_batch is not None:
            n_cap = min(n_cap, max_decode_batch)
        capacity = np.empty(grid.shape)
        for k, c in enumerate(grid.tolist()):
            n_max = max(1, min(int(n_cap), math.floor(model.max_kv_tokens / c)))
            n = np.arange(1, n_max + 1, dtype=np.float64)
            step = model.decode_step_ms_array(n, c)
            good = step <= itl_ms
            if not good.any():
                feasible = False
                good = n == 1
            capacity[k] = float(np.max(n[good] / step[good])) * 1000.0
        cd = np.interp(ctx, grid, capacity) / decode_gpus_per_engine
        decode_each_s = gaps / cd
    decode_s = float(decode_each_s.sum())
    whole = math.nan
    if interval_s is not None:
        arrival_s = np.asarray(trace.arrival_s)[counted]
        whole = _whole_worker_gpu_s(
            arrival_s, prefill_each_s, prefill_gpus_per_engine, interval_s, warmup_s
        ) + _whole_worker_gpu_s(
            arrival_s, decode_each_s, decode_gpus_per_engine, interval_s, warmup_s
        )
        whole /= 3600.0
    return CapacityFloor(
        gpu_hours=(prefill_s + decode_s) / 3600.0,
        prefill_gpu_hours=prefill_s / 3600.0,
        decode_gpu_hours=decode_s / 3600.0,
        prefill_tokens_per_s_per_gpu=cp,
        feasible=feasible,
        interval_s=interval_s,
        whole_worker_gpu_hours=whole,
    )


def _whole_worker_gpu_s(
    arrival_s: np.ndarray,
    gpu_s: np.ndarray,
    gpus_per_engine: int,
    interval_s: float,
    start_s: float,
) -> float:
    """GPU-seconds of whole workers, ``ceil(work / interval)`` per planner interval."""
    if arrival_s.size == 0:
        return 0.0
    # the planner's intervals; the first counts from start_s, the last ends at the
    # last arrival
    index, lengths_s = planner_intervals(arrival_s, start_s, interval_s)
    work_s = np.bincount(
        index, weights=gpu_s / gpus_per_engine, minlength=lengths_s.size
    )
    workers = np.ceil(work_s / lengths_s - 1e-9)
    return float(np.sum(workers * lengths_s)) * gpus_per_engine


# ------------------------------------------------------------------------ static


def run_static(
    trace: RequestTrace,
    model: EngineModel,
    config: SimConfig,
    *,
    prefill: int,
    decode: int,
    ttft_ms: float,
    itl_ms: float,
    warmup_s: float = 0.0,
    name: str = "static",
) -> RunSummary:
    """Simulate a fixed deployment of ``prefill`` + ``decode`` workers, all ready at 0."""
    return summarize(
        static_result(trace, model, config, prefill=prefill, decode=decode),
        name=name,
        ttft_ms=ttft_ms,
        itl_ms=itl_ms,
        warmup_s=warmup_s,
        prefill=prefill,
        decode=decode,
    )


def static_result(
    trace: RequestTrace,
    model: EngineModel,
    config: SimConfig,
    *,
    prefill: int,
    decode: int,
) -> SimResult:
    """Every request and worker of a fixed deployment, all ready at 0, run to the end."""
    sim = Simulation(
        trace,
        model,
        attrs.evolve(config, initial_prefill=prefill, initial_decode=decode),
    )
    sim.run_to_completion()
    return sim.result(end_of_run(sim))


def end_of_run(sim: Simulation) -> float:
    """Where a run's GPU accounting ends: the last completion (or now, if unfinished)."""
    if not sim.done:
        return sim.now
    return max(sim.last_completion_s, sim.trace_end_s)


@attrs.frozen(kw_only=True)
class StaticSearch:
    """The outcome of :func:`best_static`.

    Attributes:
        summary: The best deployment's run.
        feasible: Whether some deployment met the attainment target.
        target: The attainment the search sized for: the requested target, or, when that
            is out of reach, the most any deployment reached minus ``0.005``.
        evaluated: Every deployment simulated: ``(prefill, decode, attainment, gpu_hours)``.
    """

    summary: RunSummary
    feasible: bool
    target: float
    evaluated: tuple[tuple[int, int, float, float], ...]

    @property
    def prefill(self) -> int:
        """Prefill workers of the best deployment."""
        assert self.summary.prefill is not None  # noqa: S101 - set by run_static
        return self.summary.prefill

    @property
    def decode(self) -> int:
        """Decode workers of the best deployment."""
        assert self.summary.decode is not None  # noqa: S101 - set by run_static
        return self.summary.decode


def best_static(
    trace: RequestTrace,
    model: EngineModel,
    config: SimConfig,
    *,
    ttft_ms: float,
    itl_ms: float,
    attainment_target: float = 0.99,
    warmup_s: float = 0.0,
    max_workers: int = 512,
    progress: Callable[[int, int], None] | None = None,
) -> StaticSearch:
    """The smallest fixed deployment (by GPUs) meeting the attainment target.

    When no deployment meets the target (some requests miss a target even alone, e.g.
    prompts whose prefill alone exceeds the TTFT target), the search sizes for the most
    attainment any deployment reached, less half a percentage point, and reports
    ``feasible=False``.

    Args:
        trace: The requests.
        model: The engine model.
        config: Deployment behaviour (initial counts are overridden).
        ttft_ms: TTFT target.
        itl_ms: ITL target.
        attainment_target: Share of requests that must meet both targets.
        warmup_s: Requests arriving earlier are not counted.
        max_workers: Largest count per component tried.
        progress: Called with ``(prefill, decode)`` before each simulation.
    """
    np_gpus = config.prefill_gpus_per_engine
    nd_gpus = config.decode_gpus_per_engine
    runs: dict[tuple[int, int], RunSummary] = {}
    agg = config.mode == "agg"

    def run(p: int, d: int) -> RunSummary:
        if (p, d) not in runs:
            if progress is not None:
                progress(p, d)
            runs[(p, d)] = run_static(
                trace,
                model,
                config,
                prefill=p,
                decode=d,
                ttft_ms=ttft_ms,
                itl_ms=itl_ms,
                warmup_s=warmup_s,
                name="best static",
            )
        return runs[(p, d)]

    def smallest(lo: int, hi: int, good: Callable[[int], bool]) -> int:
        """Smallest x in [lo, hi] with good(x), given good(hi)."""
        while lo < hi:
            mid = (lo + hi) // 2
            if good(mid):
                hi = mid
            else:
                lo = mid + 1
        return hi

    # grow a balanced deployment until it meets the target, or stops improving
    p0 = 0 if agg else 1  # agg: no prefill workers, the count is of agg workers
    target = attainment_target
    feasible = True
    k = 1
    previous = -1.0
    while run(k * p0, k).attainment < target:
        reached = run(k * p0, k).attainment
        if k >= max_workers or (previous > 0 and reached <= previous + 1e-3):
            feasible = False
            target = max(s.attainment for s in runs.values()) - 0.005
            k = min(d for (_, d), s in runs.items() if s.attainment >= target)
            break
        previous = reached
        k = min(2 * k, max_workers)

    def ok(p: int, d: int) -> bool:
        return run(p, d).attainment >= target

    if agg:
        d_agg = smallest(1, k, lambda d: ok(0, d))
        return StaticSearch(
            summary=run(0, d_agg),
            feasible=feasible,
            target=target,
            evaluated=tuple(
                (p, d, s.attainment, s.gpu_hours) for (p, d), s in runs.items()
            ),
        )

    p_best = smallest(1, k, lambda p: ok(p, k))
    d_best = smallest(1, k, lambda d: ok(p_best, d))

    def cost(p: int, d: int) -> int:
        return p * np_gpus + d * nd_gpus

    # trade decode for prefill while that saves GPUs
    p = p_best
    while True:
        p += 1
        d_limit = (cost(p_best, d_best) - 1 - p * np_gpus) // nd_gpus
        if d_limit < 1 or not ok(p, d_limit):
            break
        d = smallest(1, d_limit, lambda d, p=p: ok(p, d))  # type: ignore[misc]
        p_best, d_best = p, d
    return StaticSearch(
        summary=run(p_best, d_best),
        feasible=feasible,
        target=target,
        evaluated=tuple(
            (p, d, s.attainment, s.gpu_hours) for (p, d), s in runs.items()
        ),
    )


# ------------------------------------------------------------------------ perfect forecast


def oracle_predictors(
    trace: RequestTrace, *, interval_s: float, clock: Clock
) -> dict[str, OraclePredictor]:
    """Predictors that know each interval's true request count, mean ISL and mean OSL.

    Intervals are ``[k * interval_s, (k + 1) * interval_s)`` from time 0; a mean of an
    empty interval holds the last known mean.
    """
    index = np.floor(np.asarray(trace.arrival_s) / interval_s).astype(np.int64)
    size = int(index.max()) + 1 if index.size else 1
    counts = np.bincount(index, minlength=size).astype(np.float64)
    isl = np.bincount(index, weights=trace.isl_tokens, minlength=size)
    osl = np.bincount(index, weights=trace.osl_tokens, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        isl_mean = np.where(counts > 0, isl / counts, np.nan)
        osl_mean = np.where(counts > 0, osl / counts, np.nan)
    first_isl = float(np.asarray(trace.isl_tokens)[0]) if len(trace) else 0.0
    first_osl = float(np.asarray(trace.osl_tokens)[0]) if len(trace) else 0.0
    return {
        "num_req": OraclePredictor.of(
            counts, interval_s=interval_s, clock=clock, beyond=0.0
        ),
        "isl": OraclePredictor.of(
            isl_mean, interval_s=interval_s, clock=clock, fallback=first_isl
        ),
        "osl": OraclePredictor.of(
            osl_mean, interval_s=interval_s, clock=clock, fallback=first_osl
        ),
    }
