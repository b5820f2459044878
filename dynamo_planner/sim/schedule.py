"""Hindsight schedules replayed in the simulator, and refined there.

The :mod:`interval oracle <dynamo_planner.sim.oracle>` judges each candidate deployment
by static runs, so it is an estimate: a deployment that is short of workers only in some
intervals is judged as if it had been short all along, with the queues that built up
before. :func:`replay_schedule` runs a per-interval schedule in the simulator as a
planner that knows the future would: each worker an interval needs is asked for one cold
start before that interval and holds its GPUs meanwhile, and a worker is released at the
start of the first interval that no longer needs it (after serving what it holds).

:func:`refine_schedule` then removes workers from such a schedule, one interval and one
component at a time, while the replayed attainment stays at the target and the GPU-hours
fall (greedy; a removal that failed is not tried again). A schedule whose replay falls
short of the target (the oracle's can, by a few requests) is first repaired: workers are
added where the replay missed the most requests per worker until it meets the target.
The result is a schedule that exists and meets the target in the simulator: a GPU-hour
figure that a perfect dynamic planner can reach, where the oracle's is only an estimate.
It is not the optimum, only the cheapest schedule the greedy search found.

The intervals are the planner's, ``[j x interval_s, (j + 1) x interval_s)`` from the start
of the trace: interval ``k`` of a schedule is the ``k``-th from the one holding
``warmup_s`` (:func:`~dynamo_planner.sim.metrics.first_interval_start`), as in the oracle.
Before it the configuration's initial deployment runs (ready at time 0), and after the
last interval the last interval's deployment. Attainment and
GPU-hours are counted as for every run (:func:`~dynamo_planner.sim.metrics.summarize`):
requests arriving from ``warmup_s`` on, GPU time from ``warmup_s`` to the end of the run.

Example:
    >>> from dynamo_planner.data import H200_PROFILE_DIR
    >>> from dynamo_planner.profiles import load_profile
    >>> from dynamo_planner.sim import EngineModel, SimConfig
    >>> from dynamo_planner.traces import RequestTrace
    >>> trace = RequestTrace(
    ...     arrival_s=[0.5 * i for i in range(240)],
    ...     isl_tokens=[1000] * 240,
    ...     osl_tokens=[50] * 240,
    ... )
    >>> model = EngineModel.from_profile(load_profile(H200_PROFILE_DIR))
    >>> run = replay_schedule(
    ...     trace, model, SimConfig(initial_prefill=2, initial_decode=1),
    ...     prefill=[2, 1], decode=[1, 1], interval_s=60.0, cold_start_s=60.0,
    ...     ttft_ms=500.0, itl_ms=20.0,
    ... )
    >>> run.attainment
    1.0

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np

from dynamo_planner.sim.baselines import end_of_run
from dynamo_planner.sim.engine import SimConfig, Simulation
from dynamo_planner.sim.engine_model import EngineModel
from dynamo_planner.sim.metrics import (
    RunSummary,
    first_interval_start,
    meets_targets,
    planner_intervals,
    summarize,
)
from dynamo_planner.sim.results import SimResult, WorkerSpan
from dynamo_planner.traces import RequestTrace

__all__ = ["RefinedSchedule", "ScheduleRun", "refine_schedule", "replay_schedule"]

_EPS = 1e-9


@attrs.frozen(kw_only=True)
class ScheduleRun:
    """One schedule replayed by :func:`replay_schedule`.

    Attributes:
        prefill: Prefill workers per interval.
        decode: Decode workers per interval.
        interval_s: The interval length.
        cold_start_s: The cold start paid for every added worker.
        summary: The run's attainment, latencies and GPU-hours.
        workers: Every worker's life (when it was requested, ready and released).
        prefill_misses: Per interval, counted requests arriving in it that missed the
            TTFT target though their prefill alone meets it (they waited too long).
        decode_misses: Per interval, counted requests arriving in it that missed the
            ITL target (or never completed).
    """

    prefill: tuple[int, ...]
    decode: tuple[int, ...]
    interval_s: float
    cold_start_s: float
    summary: RunSummary
    workers: tuple[WorkerSpan, ...]
    prefill_misses: tuple[int, ...]
    decode_misses: tuple[int, ...]

    @property
    def attainment(self) -> float:
        """Share of counted requests meeting both targets."""
        return self.summary.attainment

    @property
    def gpu_hours(self) -> float:
        """GPU-hours from ``warmup_s`` to the end of the run."""
        return self.summary.gpu_hours


@attrs.frozen(kw_only=True)
class RefinedSchedule:
    """The outcome of :func:`refine_schedule`.

    Attributes:
        initial: The schedule as given, replayed.
        best: The cheapest schedule found that meets the target: the initial schedule,
            repaired if it missed the target, with the removals that kept it. When no
            repair reached the target, ``initial``.
        additions: The workers added to reach the target, in order: ``(component,
            interval index)`` with component ``"prefill"`` or ``"decode"``.
        removals: The removals taken, in order, in the same form.
        replays: Schedules simulated, ``initial`` included.
        exhausted: True when the search ended by itself (every removal tried, or no
            addition left that could help), False when ``max_replays`` stopped it.
    """

    initial: ScheduleRun
    best: ScheduleRun
    removals: tuple[tuple[str, int], ...]
    replays: int
    exhausted: bool
    additions: tuple[tuple[str, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary of the search.

        The best schedule's attainment, GPU-hours and worker counts, the initial
        schedule's replay (``oracle_replayed_*``) and the search's effort.
        """
        return {
            "attainment": self.best.attainment,
            "gpu_hours": self.best.gpu_hours,
            "prefill": list(self.best.prefill),
            "decode": list(self.best.decode),
            "oracle_replayed_attainment": self.initial.attainment,
            "oracle_replayed_gpu_hours": self.initial.gpu_hours,
            "workers_added": len(self.additions),
            "workers_removed": len(self.removals),
            "replays": self.replays,
            "exhausted": self.exhausted,
        }


def replay_schedule(
    trace: RequestTrace,
    model: EngineModel,
    config: SimConfig,
    *,
    prefill: Sequence[int],
    decode: Sequence[int],
    interval_s: float,
    cold_start_s: float,
    ttft_ms: float,
    itl_ms: float,
    warmup_s: float = 0.0,
) -> ScheduleRun:
    """Run a per-interval schedule, asking for each worker one cold start early.

    Args:
        trace: The requests.
        model: The engine model.
        config: Deployment behaviour; its initial counts run before the first interval
            and its cold start is replaced by ``cold_start_s``.
        prefill: Prefill workers per interval (from the one holding ``warmup_s``).
        decode: Decode workers per interval, as many as ``prefill``.
        interval_s: Interval length.
        cold_start_s: Time from asking for a worker to it serving.
        ttft_ms: TTFT target.
        itl_ms: ITL target.
        warmup_s: Earlier requests are not counted, nor GPU time before it; the first
            interval is the planner's that holds it.

    Raises:
        ValueError: Schedules of different or zero length, a count below 1, a
            non-positive interval, a negative cold start or warm-up, or an agg
            configuration.
    """
    p, d = _checked(prefill, decode, interval_s, cold_start_s, warmup_s, config)
    sim = Simulation(trace, model, attrs.evolve(config, cold_start_s=cold_start_s))
    origin = first_interval_start(warmup_s, interval_s)
    starts = [origin + k * interval_s for k in range(len(p))]
    times = sorted({t for s in starts for t in (s, s - cold_start_s) if t >= 0.0})
    initial = (config.initial_prefill, config.initial_decode)
    for t in times:
        sim.run_until(t)
        sim.scale_to(*_needed(t, p, d, initial, interval_s, cold_start_s, origin))
    sim.run_to_completion()
    result = sim.result(end_of_run(sim))
    summary = summarize(
        result,
        name="hindsight schedule",
        ttft_ms=ttft_ms,
        itl_ms=itl_ms,
        warmup_s=warmup_s,
    )
    prefill_misses, decode_misses = _misses(
        result, model, len(p), interval_s, warmup_s, ttft_ms, itl_ms
    )
    return ScheduleRun(
        prefill=p,
        decode=d,
        interval_s=float(interval_s),
        cold_start_s=float(cold_start_s),
        summary=summary,
        workers=tuple(result.workers),
        prefill_misses=prefill_misses,
        decode_misses=decode_misses,
    )


def refine_schedule(
    trace: RequestTrace,
    model: EngineModel,
    config: SimConfig,
    *,
    prefill: Sequence[int],
    decode: Sequence[int],
    interval_s: float,
    cold_start_s: float,
    ttft_ms: float,
    itl_ms: float,
    attainment_target: float,
    warmup_s: float = 0.0,
    max_replays: int = 400,
    progress: Callable[[int, ScheduleRun], None] | None = None,
) -> RefinedSchedule:
    """Remove workers from a schedule while its replayed attainment meets the target.

    A schedule that misses the target is repaired first: one worker at a time is added
    where the replay missed most requests per worker (a prefill worker where requests
    waited past the TTFT target, a decode worker where they missed the ITL target), and
    kept when attainment rises, until the target is met. An addition that did not raise
    attainment is not tried again; the added workers are not removed later.

    Removals are tried in order of the load the remaining workers would carry (the
    interval's prompt tokens per prefill worker left, its output tokens per decode
    worker left), lightest first. A removal is taken when the replayed attainment stays
    at least ``attainment_target`` and the GPU-hours fall (a removal between two
    intervals that need the worker costs a cold start, which can exceed the saving);
    a removal that failed once is not tried again (removing other workers mostly lowers
    attainment further), so at most one replay per interval and component is spent on
    failures.

    Args:
        trace: The requests.
        model: The engine model.
        config: As for :func:`replay_schedule`.
        prefill: The starting schedule's prefill workers per interval (e.g. an
            :class:`~dynamo_planner.sim.oracle.IntervalOracle`'s).
        decode: Its decode workers per interval.
        interval_s: Interval length.
        cold_start_s: Cold start of every added worker.
        ttft_ms: TTFT target.
        itl_ms: ITL target.
        attainment_target: Share of counted requests that must meet both targets.
        warmup_s: As for :func:`replay_schedule`.
        max_replays: Most schedules to simulate, the initial one included.
        progress: Called after each replay with the number done and the best run so far.

    Raises:
        ValueError: As :func:`replay_schedule`, or ``max_replays`` below 1.
    """
    if max_replays < 1:
        raise ValueError(f"max_replays must be >= 1, got {max_replays!r}")

    run = functools.partial(
        replay_schedule,
        trace,
        model,
        config,
        interval_s=interval_s,
        cold_start_s=cold_start_s,
        ttft_ms=ttft_ms,
        itl_ms=itl_ms,
        warmup_s=warmup_s,
    )
    initial = best = run(prefill=prefill, decode=decode)
    replays = 1
    if progress is not None:
        progress(replays, best)
    removals: list[tuple[str, int]] = []
    additions: list[tuple[str, int]] = []
    # (component, interval, workers) whose removal failed, or that were added
    failed: set[tuple[str, int, int]] = set()
    tried: set[tuple[str, int, int]] = set()
    while not best.attainment >= attainment_target:
        candidates = _additions(best, tried)
        if not candidates or replays >= max_replays:
            return RefinedSchedule(
                initial=initial,
                best=initial,
                removals=(),
                replays=replays,
                exhausted=not candidates,
                additions=tuple(additions),
            )
        component, k = candidates[0]
        workers = _workers(best, component)[k]
        tried.add((component, k, workers))
        prefill_k, decode_k = _moved(best, component, k, +1)
        trial = run(prefill=prefill_k, decode=decode_k)
        replays += 1
        if trial.attainment > best.attainment:
            best = trial
            additions.append((component, k))
            failed.add((component, k, workers + 1))
        if progress is not None:
            progress(replays, best)
    isl, osl = _tokens_per_interval(trace, len(best.prefill), interval_s, warmup_s)
    while True:
        candidates = _removals(best, isl, osl, failed)
        if not candidates:
            exhausted = True
            break
        if replays >= max_replays:
            exhausted = False
            break
        component, k = candidates[0]
        workers = _workers(best, component)[k]
        prefill_k, decode_k = _moved(best, component, k, -1)
        trial = run(prefill=prefill_k, decode=decode_k)
        replays += 1
        if (
            trial.attainment >= attainment_target
            and trial.gpu_hours < best.gpu_hours - _EPS
        ):
            best = trial
            removals.append((component, k))
        else:
            failed.add((component, k, workers))
        if progress is not None:
            progress(replays, best)
    return RefinedSchedule(
        initial=initial,
        best=best,
        removals=tuple(removals),
        replays=replays,
        exhausted=exhausted,
        additions=tuple(additions),
    )


def _workers(run: ScheduleRun, component: str) -> tuple[int, ...]:
    """One component's workers per interval."""
    return run.prefill if component == "prefill" else run.decode


def _moved(
    run: ScheduleRun, component: str, k: int, by: int
) -> tuple[list[int], list[int]]:
    """``run``'s prefill and decode schedules, ``by`` more ``component`` workers at ``k``."""
    prefill, decode = list(run.prefill), list(run.decode)
    (prefill if component == "prefill" else decode)[k] += by
    return prefill, decode


def _additions(
    run: ScheduleRun, tried: set[tuple[str, int, int]]
) -> list[tuple[str, int]]:
    """Additions not yet tried where requests were missed, most misses per worker first."""
    scored: list[tuple[float, str, int]] = []
    for name, counts, misses in (
        ("prefill", run.prefill, run.prefill_misses),
        ("decode", run.decode, run.decode_misses),
    ):
        for k, (n, missed) in enumerate(zip(counts, misses, strict=True)):
            if missed > 0 and (name, k, n) not in tried:
                scored.append((-missed / n, name, k))
    scored.sort()
    return [(name, k) for _, name, k in scored]


def _misses(
    result: SimResult,
    model: EngineModel,
    bins: int,
    interval_s: float,
    warmup_s: float,
    ttft_ms: float,
    itl_ms: float,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per interval, counted requests that waited past TTFT, and that missed ITL.

    A request counts for the interval it arrived in (the last interval for any after
    it). A TTFT miss counts only when the request's prefill alone meets the target:
    more prefill workers cannot help the others.
    """
    counted = result.arrival_s >= warmup_s
    if not counted.any():
        return (0,) * bins, (0,) * bins
    ok_ttft, ok_itl = meets_targets(result, ttft_ms=ttft_ms, itl_ms=itl_ms)
    alone_ok = model.prefill_ms_array(result.isl_tokens) <= ttft_ms
    index, _ = planner_intervals(result.arrival_s[counted], warmup_s, interval_s)
    index = np.minimum(index, bins - 1)
    waited, slow = (~ok_ttft & alone_ok)[counted], (~ok_itl)[counted]
    prefill, decode = (
        tuple(int(x) for x in np.bincount(index[missed], minlength=bins))
        for missed in (waited, slow)
    )
    return prefill, decode


def _removals(
    run: ScheduleRun,
    isl: Sequence[float],
    osl: Sequence[float],
    failed: set[tuple[str, int, int]],
) -> list[tuple[str, int]]:
    """Removals not yet failed, lightest load per remaining worker first."""
    scored: list[tuple[float, str, int]] = []
    for name, counts, tokens in (
        ("prefill", run.prefill, isl),
        ("decode", run.decode, osl),
    ):
        for k, n in enumerate(counts):
            if n > 1 and (name, k, n) not in failed:
                scored.append((tokens[k] / (n - 1), name, k))
    scored.sort()
    return [(name, k) for _, name, k in scored]


def _tokens_per_interval(
    trace: RequestTrace, bins: int, interval_s: float, warmup_s: float
) -> tuple[list[float], list[float]]:
    """Prompt and output tokens of the counted requests arriving in each interval."""
    arrival = np.asarray(trace.arrival_s, dtype=np.float64)
    counted = arrival >= warmup_s
    index, _ = planner_intervals(arrival[counted], warmup_s, interval_s)
    keep = index < bins
    isl, osl = (
        np.bincount(
            index[keep],
            weights=np.asarray(tokens, dtype=np.float64)[counted][keep],
            minlength=bins,
        ).tolist()
        for tokens in (trace.isl_tokens, trace.osl_tokens)
    )
    return isl, osl


def _needed(
    t: float,
    prefill: Sequence[int],
    decode: Sequence[int],
    initial: tuple[int, int],
    interval_s: float,
    cold_start_s: float,
    origin_s: float,
) -> tuple[int, int]:
    """Workers to have asked for at ``t``: the most any interval in reach needs.

    An interval is in reach when it overlaps ``[t, t + cold_start_s]``: a worker asked
    for now serves from ``t + cold_start_s``.
    """
    first = math.floor((t - origin_s) / interval_s + _EPS)
    last = math.floor((t + cold_start_s - origin_s) / interval_s + _EPS)
    p = d = 0
    for k in range(first, last + 1):
        if k < 0:
            pk, dk = initial
        else:
            j = min(k, len(prefill) - 1)
            pk, dk = prefill[j], decode[j]
        p, d = max(p, pk), max(d, dk)
    return p, d


def _checked(
    prefill: Sequence[int],
    decode: Sequence[int],
    interval_s: float,
    cold_start_s: float,
    warmup_s: float,
    config: SimConfig,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if config.mode == "agg":
        raise ValueError("schedules cover disaggregated deployments only")
    p = tuple(int(x) for x in prefill)
    d = tuple(int(x) for x in decode)
    if not p or len(p) != len(d):
        raise ValueError(
            "prefill and decode must be schedules of the same non-zero length, got "
            f"{len(p)} and {len(d)} intervals"
        )
    low = min((*p, *d))
    if low < 1:
        raise ValueError(
            f"every interval needs at least 1 worker of each kind, got {low}"
        )
    if not (math.isfinite(interval_s) and interval_s > 0):
        raise ValueError(f"interval_s must be > 0, got {interval_s!r}")
    if not (math.isfinite(cold_start_s) and cold_start_s >= 0):
        raise ValueError(f"cold_start_s must be >= 0, got {cold_start_s!r}")
    if not (math.isfinite(warmup_s) and warmup_s >= 0):
        raise ValueError(f"warmup_s must be >= 0, got {warmup_s!r}")
    return p, d
