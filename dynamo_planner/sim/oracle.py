"""The hindsight oracle: the cheapest per-interval deployments, chosen knowing the trace.

A planner that knew every request in advance and could change workers instantly at the
start of each interval would pick, interval by interval, the deployment that buys the
needed attainment most cheaply. It need not meet the target in *every* interval: the
target is a share of all counted requests, so it can serve a peak interval a little worse
and a quiet one a little better, if that saves GPUs. :func:`interval_oracle` estimates
what such a planner would spend:

1. Simulate each candidate static deployment ``(P, D)`` over the whole trace (the grid is
   ``prefill_options x decode_options``) and record, per interval, how many of the
   requests arriving in it met both targets.
2. Choose one candidate per interval to minimise GPU-seconds subject to the total of
   requests meeting the targets reaching ``attainment_target`` of the counted requests.
   This is solved through its Lagrangian: for a price ``λ`` per request served in time,
   each interval takes the candidate maximising ``λ x served - GPU-seconds``, and ``λ``
   is bisected to the smallest price whose choice meets the target.

The intervals are the planner's, ``[j x interval_s, (j + 1) x interval_s)`` from the start
of the trace, from the one holding ``warmup_s``
(:func:`~dynamo_planner.sim.metrics.first_interval_start`), so the oracle changes
deployments where a planner with that interval can.

With ``cold_start_s`` the oracle pays for cold starts as a planner does: knowing the
future, it asks for each added worker ``cold_start_s`` before the interval it is needed
in, and holds its GPUs meanwhile, so every step up costs ``cold_start_s`` GPU-seconds per
added GPU (a step down costs nothing). That couples the intervals, so the choice for a
price is a shortest path over the intervals (dynamic programming over the candidates)
instead of one choice per interval. It then shows what a planner with a perfect forecast
and that cold start could spend; with ``cold_start_s = 0`` workers start instantly.

It is an estimate, not a bound: an interval's attainment is measured with the same
deployment before and after it (queues that spill over an interval boundary are those of
that deployment), a worker serves from the first moment of its interval, and the
Lagrangian choice can be a little above the exact optimum where the attainment steps are
coarse. A deployment short of workers only for a few intervals is judged by a static run
short of them all along, so the estimate is pessimistic about cheap intervals after busy
ones (on Azure conversation x10 at 60 s intervals, its schedule replayed and refined by
:func:`~dynamo_planner.sim.schedule.refine_schedule` spends 1% less). What it shows is
roughly how much a *perfect* dynamic planner could save over the best static deployment
on a trace; the refined schedule is a figure such a planner can reach. GPU-hours run from
``warmup_s`` to the last arrival (the static runs' drain after it is not counted).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import attrs
import numpy as np
import numpy.typing as npt

from dynamo_planner.sim.baselines import static_result
from dynamo_planner.sim.engine import SimConfig
from dynamo_planner.sim.engine_model import EngineModel
from dynamo_planner.sim.metrics import meets_targets, planner_intervals
from dynamo_planner.traces import RequestTrace

__all__ = [
    "CandidateOutcomes",
    "IntervalOracle",
    "interval_oracle",
    "interval_oracles",
    "oracle_options",
    "simulate_candidates",
]

FloatArray = npt.NDArray[np.float64]

_BISECTION_STEPS = 60


@attrs.frozen(kw_only=True)
class IntervalOracle:
    """The outcome of :func:`interval_oracle`.

    Attributes:
        interval_s: The interval length.
        attainment: Share of counted requests meeting both targets with the chosen
            deployments (as measured in the static runs).
        gpu_hours: GPU-hours of the chosen deployments from ``warmup_s`` to the last
            arrival.
        prefill: Prefill workers chosen per interval.
        decode: Decode workers chosen per interval.
        feasible: False when no choice reaches the target (the most attainment is
            chosen then).
        candidates: The ``(prefill, decode)`` deployments simulated.
        cold_start_s: The cold start paid for each added worker (0: instant).
        cold_start_gpu_hours: The part of ``gpu_hours`` spent on cold starts.
    """

    interval_s: float
    attainment: float
    gpu_hours: float
    prefill: tuple[int, ...]
    decode: tuple[int, ...]
    feasible: bool
    candidates: tuple[tuple[int, int], ...]
    cold_start_s: float = 0.0
    cold_start_gpu_hours: float = 0.0

    @property
    def mean_workers(self) -> float:
        """Mean prefill plus decode workers over the intervals (unweighted)."""
        if not self.prefill:
            return math.nan
        return float(np.mean(np.add(self.prefill, self.decode)))


def oracle_options(best: int, *, low_share: float = 0.75, above: int = 1) -> list[int]:
    """Candidate counts around a best static count.

    From ``floor(low_share x best)`` (at least 1) to ``best + above``.

    Args:
        best: The best static deployment's count for one component.
        low_share: Lowest candidate as a share of ``best``.
        above: How many counts above ``best`` to try.
    """
    low = max(1, math.floor(low_share * best))
    return list(range(low, max(low, best + above) + 1))


def interval_oracle(
    trace: RequestTrace,
    model: EngineModel,
    config: SimConfig,
    *,
    ttft_ms: float,
    itl_ms: float,
    interval_s: float,
    prefill_options: Sequence[int],
    decode_options: Sequence[int],
    attainment_target: float = 0.99,
    warmup_s: float = 0.0,
    cold_start_s: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> IntervalOracle:
    """The cheapest per-interval deployments meeting the target in hindsight (module doc).

    Args:
        trace: The requests.
        model: The engine model.
        config: Deployment behaviour (initial counts are overridden).
        ttft_ms: TTFT target.
        itl_ms: ITL target.
        interval_s: Interval length (the planner's adjustment interval).
        prefill_options: Prefill worker counts to consider.
        decode_options: Decode worker counts to consider.
        attainment_target: Share of counted requests that must meet both targets.
        warmup_s: Requests arriving earlier are not counted, nor GPU time before it.
        cold_start_s: GPU-seconds paid per GPU added from one interval to the next (0:
            workers start instantly).
        progress: Called with ``(prefill, decode)`` before each simulation.

    Raises:
        ValueError: An empty or non-positive option list, a non-positive interval, a
            negative cold start, an agg configuration, or no counted request.
    """
    (oracle,) = interval_oracles(
        trace,
        model,
        config,
        ttft_ms=ttft_ms,
        itl_ms=itl_ms,
        intervals_s=(interval_s,),
        prefill_options=prefill_options,
        decode_options=decode_options,
        attainment_target=attainment_target,
        warmup_s=warmup_s,
        cold_start_s=cold_start_s,
        progress=progress,
    )
    return oracle


def interval_oracles(
    trace: RequestTrace,
    model: EngineModel,
    config: SimConfig,
    *,
    ttft_ms: float,
    itl_ms: float,
    intervals_s: Sequence[float],
    prefill_options: Sequence[int],
    decode_options: Sequence[int],
    attainment_target: float = 0.99,
    warmup_s: float = 0.0,
    cold_start_s: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> list[IntervalOracle]:
    """:func:`interval_oracle` for several intervals, simulating each candidate once.

    Takes the arguments of :func:`interval_oracle`, with ``intervals_s`` for its
    ``interval_s``; returns one oracle per interval, in order. To vary the cold start
    too, call :func:`simulate_candidates` once and :meth:`CandidateOutcomes.oracle` per
    setting.
    """
    for interval_s in intervals_s:
        _check_interval(interval_s)
    _check_cold_start(cold_start_s)
    outcomes = simulate_candidates(
        trace,
        model,
        config,
        ttft_ms=ttft_ms,
        itl_ms=itl_ms,
        prefill_options=prefill_options,
        decode_options=decode_options,
        warmup_s=warmup_s,
        progress=progress,
    )
    return [
        outcomes.oracle(
            interval_s=interval_s,
            attainment_target=attainment_target,
            cold_start_s=cold_start_s,
        )
        for interval_s in intervals_s
    ]


@attrs.frozen(kw_only=True, eq=False)
class CandidateOutcomes:
    """Which counted requests each candidate static deployment served in time.

    Made by :func:`simulate_candidates`; :meth:`oracle` chooses among the candidates.

    Attributes:
        options: The ``(prefill, decode)`` candidates, in row order.
        in_time: Per candidate (row) and counted request (column), 1.0 where the
            request met both targets on that static deployment, else 0.0.
        prefill_gpus: GPUs of one prefill worker.
        decode_gpus: GPUs of one decode worker.
        arrival_s: Arrival time of each counted request.
        warmup_s: Requests arriving earlier are not counted, nor GPU time before it.
    """

    options: tuple[tuple[int, int], ...]
    in_time: FloatArray
    prefill_gpus: int
    decode_gpus: int
    arrival_s: FloatArray
    warmup_s: float

    def oracle(
        self,
        *,
        interval_s: float,
        attainment_target: float = 0.99,
        cold_start_s: float = 0.0,
    ) -> IntervalOracle:
        """The oracle for one interval length and cold start (module doc).

        Raises:
            ValueError: A non-positive interval or a negative cold start.
        """
        _check_interval(interval_s)
        _check_cold_start(cold_start_s)
        index, lengths_s = planner_intervals(self.arrival_s, self.warmup_s, interval_s)
        bins = lengths_s.size
        served = np.stack(
            [np.bincount(index, weights=row, minlength=bins) for row in self.in_time]
        ).astype(np.float64)
        prefill = np.array([p for p, _ in self.options], dtype=np.float64)
        prefill *= self.prefill_gpus
        decode = np.array([d for _, d in self.options], dtype=np.float64)
        decode *= self.decode_gpus
        cost_s = (prefill + decode)[:, None] * lengths_s[None, :]
        # GPU-seconds of cold start to go from candidate j (row) to candidate k (column)
        added = np.maximum(prefill[None, :] - prefill[:, None], 0.0) + np.maximum(
            decode[None, :] - decode[:, None], 0.0
        )
        switch_s = added * float(cold_start_s)
        needed = attainment_target * self.arrival_s.size
        choice = _cheapest_choice(served, cost_s, switch_s, needed)
        columns = np.arange(bins)
        total = float(served[choice, columns].sum())
        starting_s = float(switch_s[choice[:-1], choice[1:]].sum())
        return IntervalOracle(
            interval_s=float(interval_s),
            attainment=total / self.arrival_s.size,
            gpu_hours=(float(cost_s[choice, columns].sum()) + starting_s) / 3600.0,
            prefill=tuple(self.options[k][0] for k in choice.tolist()),
            decode=tuple(self.options[k][1] for k in choice.tolist()),
            feasible=total >= needed - 1e-9,
            candidates=self.options,
            cold_start_s=float(cold_start_s),
            cold_start_gpu_hours=starting_s / 3600.0,
        )


def simulate_candidates(
    trace: RequestTrace,
    model: EngineModel,
    config: SimConfig,
    *,
    ttft_ms: float,
    itl_ms: float,
    prefill_options: Sequence[int],
    decode_options: Sequence[int],
    warmup_s: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> CandidateOutcomes:
    """Simulate every candidate static deployment once (see :class:`CandidateOutcomes`).

    Takes the arguments of :func:`interval_oracle` that concern the simulations.

    Raises:
        ValueError: An empty or non-positive option list, an agg configuration, or no
            counted request.
    """
    if config.mode == "agg":
        raise ValueError("the interval oracle covers disaggregated deployments only")
    options = [
        (int(p), int(d))
        for p in sorted(set(prefill_options))
        for d in sorted(set(decode_options))
    ]
    if not options or min(min(o) for o in options) < 1:
        raise ValueError(
            "prefill_options and decode_options must be non-empty lists of counts >= 1, "
            f"got {list(prefill_options)!r} and {list(decode_options)!r}"
        )
    arrival_s = np.asarray(trace.arrival_s, dtype=np.float64)
    counted = arrival_s >= warmup_s
    if not counted.any():
        raise ValueError(f"no request arrives after warmup_s={warmup_s:g}")
    ok = np.empty((len(options), int(counted.sum())), dtype=np.float64)
    for k, (p, d) in enumerate(options):
        if progress is not None:
            progress(p, d)
        ok[k] = _in_time(trace, model, config, p, d, ttft_ms, itl_ms)[counted]
    return CandidateOutcomes(
        options=tuple(options),
        in_time=ok,
        prefill_gpus=config.prefill_gpus_per_engine,
        decode_gpus=config.decode_gpus_per_engine,
        arrival_s=arrival_s[counted],
        warmup_s=float(warmup_s),
    )


def _check_interval(interval_s: float) -> None:
    if not (math.isfinite(interval_s) and interval_s > 0):
        raise ValueError(f"interval_s must be > 0, got {interval_s!r}")


def _check_cold_start(cold_start_s: float) -> None:
    if not (math.isfinite(cold_start_s) and cold_start_s >= 0):
        raise ValueError(f"cold_start_s must be >= 0, got {cold_start_s!r}")


def _in_time(
    trace: RequestTrace,
    model: EngineModel,
    config: SimConfig,
    prefill: int,
    decode: int,
    ttft_ms: float,
    itl_ms: float,
) -> FloatArray:
    """Per request, 1.0 where it met both targets on a static deployment, else 0.0."""
    result = static_result(trace, model, config, prefill=prefill, decode=decode)
    ok_ttft, ok_itl = meets_targets(result, ttft_ms=ttft_ms, itl_ms=itl_ms)
    return np.asarray(ok_ttft & ok_itl, dtype=np.float64)


def _best_path(score: FloatArray, switch_s: FloatArray) -> npt.NDArray[np.int64]:
    """The candidate per interval maximising ``score`` summed minus the switches' cost.

    ``score[k, b]`` is candidate ``k``'s value in interval ``b``; ``switch_s[j, k]`` is
    subtracted wherever interval ``b`` runs ``j`` and interval ``b + 1`` runs ``k``.
    Dynamic programming over the intervals; ties go to the lower candidate index.
    """
    size, bins = score.shape
    rows = np.arange(size)
    best = score[:, 0].copy()
    back = np.zeros((size, bins), dtype=np.int64)
    for b in range(1, bins):
        reach = best[:, None] - switch_s
        back[:, b] = np.argmax(reach, axis=0)
        best = reach[back[:, b], rows] + score[:, b]
    path = np.empty(bins, dtype=np.int64)
    path[-1] = int(np.argmax(best))
    for b in range(bins - 1, 0, -1):
        path[b - 1] = back[path[b], b]
    return path


def _cheapest_choice(
    served: FloatArray, cost_s: FloatArray, switch_s: FloatArray, needed: float
) -> npt.NDArray[np.int64]:
    """Per interval, the candidates maximising ``price x served - cost - switches``.

    The price is the smallest whose choice serves ``needed`` requests; when none does,
    the most-serving choice is returned.
    """
    columns = np.arange(served.shape[1])

    def choose(price: float) -> npt.NDArray[np.int64]:
        # ties go to the cheaper candidate: subtract a hair of cost
        score = price * served - cost_s * (1.0 + 1e-12)
        if not switch_s.any():
            return np.asarray(np.argmax(score, axis=0), dtype=np.int64)
        return _best_path(score, switch_s * (1.0 + 1e-12))

    most = choose(1e30)
    if float(served[most, columns].sum()) < needed:
        return most
    low, high = 0.0, 1.0
    while float(served[choose(high), columns].sum()) < needed:
        high *= 2.0
    for _ in range(_BISECTION_STEPS):
        mid = (low + high) / 2.0
        if float(served[choose(mid), columns].sum()) >= needed:
            high = mid
        else:
            low = mid
    return _tidy(served, cost_s, switch_s, needed, choose(high))


def _tidy(
    served: FloatArray,
    cost_s: FloatArray,
    switch_s: FloatArray,
    needed: float,
    choice: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]:
    """Greedily move intervals to cheaper candidates while the total serves ``needed``.

    The Lagrangian choice overshoots where many intervals switch at one price; each step
    takes the move saving the most GPU-seconds (cold starts to and from the neighbours
    included) per request lost.
    """
    choice = choice.copy()
    columns = np.arange(served.shape[1])
    slack = float(served[choice, columns].sum()) - needed
    while True:
        saved = cost_s[choice, columns][None, :] - cost_s
        before, after = choice[:-1], choice[1:]
        # switching cost into each interval (from its left neighbour) and out of it
        saved[:, 1:] += switch_s[before, after][None, :] - switch_s[before, :].T
        saved[:, :-1] += switch_s[before, after][None, :] - switch_s[:, after]
        lost = served[choice, columns][None, :] - served
        allowed = (saved > 0) & (lost <= slack + 1e-9)
        if not allowed.any():
            return choice
        ratio = np.where(allowed, saved / np.maximum(lost, 1e-9), -np.inf)
        k, b = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
        slack -= float(lost[k, b])
        choice[b] = k
