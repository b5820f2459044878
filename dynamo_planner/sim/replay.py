"""Replay a trace through a planner on simulated workers, with the baselines beside it.

:func:`replay` is the library entry behind ``dynamo-planner replay``::

    from dynamo_planner.config import PlannerConfig
    from dynamo_planner.data import AZURE_CONV_TRACE, H200_PROFILE_DIR
    from dynamo_planner.profiles import load_profile
    from dynamo_planner.sim import replay
    from dynamo_planner.traces import load_requests

    report = replay(
        load_requests(AZURE_CONV_TRACE),
        load_profile(H200_PROFILE_DIR),
        PlannerConfig(load_predictor="constant"),
    )
    print(report.format_text())

The planner runs unchanged: :meth:`Planner.run <dynamo_planner.planner.Planner.run>` on a
:class:`~dynamo_planner.sim.edges.SimClock`, reading a
:class:`~dynamo_planner.sim.edges.SimMetricSource` and scaling through a
:class:`~dynamo_planner.sim.edges.SimConnector`. The run ends when every request has
completed (or ``drain_limit_s`` after the last arrival). Beside it, the baselines of
:mod:`dynamo_planner.sim.baselines` are computed on the same trace.

A configuration is replayed with the planner it asks for
(:func:`~dynamo_planner.load_planner.planner_from_config`): the throughput
:class:`~dynamo_planner.planner.Planner`, the load-based
:class:`~dynamo_planner.load_planner.LoadPlanner` (disagg or agg), or both together
(:class:`~dynamo_planner.load_planner.CombinedPlanner`). A load-based planner reads a
:class:`~dynamo_planner.sim.edges.SimRouterSource`: the router's sampling buffer of
per-worker loads, every ``loadbased_adjustment_interval_s`` (its own cadence), with the
metric delay. An agg configuration replays aggregated workers. The perfect-forecast
baseline of a load-based planner, which forecasts nothing, is the throughput planner of
the same configuration with a perfect forecast; agg has none (throughput planning has no
agg mode).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from dynamo_planner.exceptions import ConfigError
from dynamo_planner.sim.baselines import (
    best_static,
    capacity_floor,
    end_of_run,
    oracle_predictors,
)
from dynamo_planner.sim.edges import (
    SimClock,
    SimConnector,
    SimMetricSource,
    SimRouterSource,
)
from dynamo_planner.sim.engine import SimConfig, Simulation
from dynamo_planner.sim.engine_model import BEYOND_PROFILE, EngineModel
from dynamo_planner.sim.metrics import (
    interval_table,
    summarize,
)
from dynamo_planner.sim.oracle import interval_oracle, oracle_options
from dynamo_planner.sim.report import PlannerRun, ReplayReport, share_text
from dynamo_planner.sim.schedule import RefinedSchedule, ScheduleRun, refine_schedule
from dynamo_planner.traces import RequestTrace
from dynamo_planner.values import PerfProfile, ReplicaPlan, ReplicaState

if TYPE_CHECKING:
    from dynamo_planner.config import PlannerConfig
    from dynamo_planner.load_planner import CombinedPlanner, LoadPlanner
    from dynamo_planner.planner import Planner, StepRecord
    from dynamo_planner.plugins import Registry

    AnyPlanner = Planner | LoadPlanner | CombinedPlanner

__all__ = [
    "BASELINES",
    "PlannerRun",
    "ReplayOptions",
    "ReplayReport",
    "areplay",
    "replay",
    "run_planner",
    "scaling_actions",
    "scaling_modes",
]

BASELINES = (
    "best_static",
    "perfect_forecast",
    "capacity_floor",
    "interval_oracle",
    "hindsight_schedule",
)
"""Names of the baselines :func:`replay` can compute (``interval_oracle`` needs
``best_static``: it searches around that deployment; ``hindsight_schedule`` needs
``interval_oracle``: it replays and refines the oracle's schedule)."""

Progress = Callable[[str, float], None]
"""Progress callback: ``(phase, fraction done)``."""


def _baselines(value: Sequence[str]) -> tuple[str, ...]:
    names = tuple(value)
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ConfigError(
            f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}",
            field="baselines",
            value=names,
        )
    return names


@attrs.frozen(kw_only=True)
class ReplayOptions:
    """How a replay is run and judged.

    Attributes:
        sim: The simulated deployment (cold start, transfer, batching, initial workers).
            When a planner configuration is given, GPUs per engine are taken from it,
            its mode too (an agg configuration replays aggregated workers and no prefill
            worker), and with load-based scaling the scrape period
            (``loadbased_adjustment_interval_s / loadbased_metric_samples``).
        interval_s: The planner's adjustment interval; the configuration's when ``None``
            (``loadbased_adjustment_interval_s`` when load-based scaling is on: the
            planner's tick).
        ttft_ms: TTFT target to judge by; the configuration's when ``None``.
        itl_ms: ITL target to judge by; the configuration's when ``None``.
        attainment_target: Share of requests the best static deployment must serve
            within both targets.
        warmup_s: Requests arriving before this are not counted, nor GPU time before it.
        drain_limit_s: How long after the last arrival the run may go on finishing
            requests.
        baselines: Which baselines to compute (any of :data:`BASELINES`).
        prefill_beyond: Prefill time beyond the profile's largest ISL: ``"linear"`` or
            ``"clamp"`` (see :meth:`EngineModel.from_profile
            <dynamo_planner.sim.engine_model.EngineModel.from_profile>`).
        decode_beyond: Decode step time beyond the profile's largest context:
            ``"linear"`` or ``"clamp"`` (same reference).
    """

    sim: SimConfig = attrs.field(factory=SimConfig)
    interval_s: float | None = None
    ttft_ms: float | None = None
    itl_ms: float | None = None
    attainment_target: float = attrs.field(
        default=0.99, validator=[attrs.validators.gt(0), attrs.validators.le(1)]
    )
    warmup_s: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    drain_limit_s: float = attrs.field(default=3600.0, validator=attrs.validators.gt(0))
    baselines: tuple[str, ...] = attrs.field(default=BASELINES, converter=_baselines)
    prefill_beyond: str = attrs.field(
        default="linear", validator=attrs.validators.in_(BEYOND_PROFILE)
    )
    decode_beyond: str = attrs.field(
        default="linear", validator=attrs.validators.in_(BEYOND_PROFILE)
    )


# ------------------------------------------------------------------------ planner runs


def _load_interval_s(planner: AnyPlanner) -> float | None:
    """The load planner's interval, if ``planner`` scales from per-worker load."""
    from dynamo_planner.load_planner import CombinedPlanner, LoadPlanner

    if isinstance(planner, CombinedPlanner):
        return planner.load.interval_s
    if isinstance(planner, LoadPlanner):
        return planner.interval_s
    return None


async def _run_planner_async(
    sim: Simulation,
    planner: AnyPlanner,
    *,
    limit_s: float,
    progress: Callable[[float], None] | None,
) -> tuple[SimConnector, list[tuple[float, ReplicaPlan]]]:
    load_interval = _load_interval_s(planner)
    source = (
        SimMetricSource(sim)
        if load_interval is None
        else SimRouterSource(sim, interval_s=load_interval)
    )
    connector = SimConnector(sim)
    stop = asyncio.Event()
    clock = SimClock(
        sim,
        stop_when=lambda s: s.done or s.now >= limit_s,
        stop=stop,
        on_advance=progress,
    )
    planner.source = source
    planner.connector = connector
    planner.clock = clock
    plans: list[tuple[float, ReplicaPlan]] = []

    def record(step: StepRecord) -> None:
        plans.append((sim.now, step.plan))

    planner.listeners.append(record)
    try:
        await planner.run(stop)
    finally:
        planner.listeners.remove(record)
    return connector, plans


def scaling_actions(initial: ReplicaState, targets: Sequence[ReplicaState]) -> int:
    """How many applied plans changed the requested replicas.

    A plan that asks for what is already requested (the initial deployment, or the
    previous plan's target) is not a scaling action.

    Args:
        initial: The replicas requested at the start (the initial deployment).
        targets: The replicas each applied plan requested, in order.
    """
    count = 0
    previous = initial
    for target in targets:
        if target != previous:
            count += 1
        previous = target
    return count


async def arun_planner(
    trace: RequestTrace,
    model: EngineModel,
    planner: AnyPlanner,
    *,
    sim_config: SimConfig,
    ttft_ms: float,
    itl_ms: float,
    warmup_s: float = 0.0,
    drain_limit_s: float = 3600.0,
    name: str = "planner",
    progress: Callable[[float], None] | None = None,
) -> PlannerRun:
    """Async :func:`run_planner` (for callers already inside an event loop)."""
    sim = Simulation(trace, model, sim_config)
    limit = sim.trace_end_s + drain_limit_s
    initial = ReplicaState(
        prefill=sim_config.initial_prefill, decode=sim_config.initial_decode
    )
    connector, plans = await _run_planner_async(
        sim, planner, limit_s=limit, progress=progress
    )
    sim.run_to_completion(limit_s=limit)
    result = sim.result(end_of_run(sim))
    interval_s = planner.interval_s
    by_interval = {round(t / interval_s): plan for t, plan in plans}
    summary = summarize(
        result,
        name=name,
        ttft_ms=ttft_ms,
        itl_ms=itl_ms,
        warmup_s=warmup_s,
        scaling_actions=scaling_actions(
            initial, [target for _, _, target in connector.applied]
        ),
    )
    rows = interval_table(
        result, interval_s=interval_s, ttft_ms=ttft_ms, itl_ms=itl_ms, plans=by_interval
    )
    return PlannerRun(
        summary=summary, result=result, intervals=tuple(rows), plans=tuple(plans)
    )


def run_planner(
    trace: RequestTrace,
    model: EngineModel,
    planner: AnyPlanner,
    *,
    sim_config: SimConfig,
    ttft_ms: float,
    itl_ms: float,
    warmup_s: float = 0.0,
    drain_limit_s: float = 3600.0,
    name: str = "planner",
    progress: Callable[[float], None] | None = None,
) -> PlannerRun:
    """Replay ``trace`` with ``planner`` in the loop.

    The planner's source, connector and clock are replaced by the simulation's, and it is
    driven in place. A load-based planner (alone or combined) reads a
    :class:`~dynamo_planner.sim.edges.SimRouterSource` spanning its interval.

    Args:
        trace: The requests.
        model: The engine model.
        planner: The planner: a :class:`~dynamo_planner.planner.Planner`,
            :class:`~dynamo_planner.load_planner.LoadPlanner` or
            :class:`~dynamo_planner.load_planner.CombinedPlanner`.
        sim_config: The simulated deployment.
        ttft_ms: TTFT target to judge by.
        itl_ms: ITL target to judge by.
        warmup_s: Requests arriving earlier are not counted.
        drain_limit_s: How long after the last arrival the run may continue.
        name: The run's name in summaries.
        progress: Called with the simulated time after every planner sleep.
    """
    return asyncio.run(
        arun_planner(
            trace,
            model,
            planner,
            sim_config=sim_config,
            ttft_ms=ttft_ms,
            itl_ms=itl_ms,
            warmup_s=warmup_s,
            drain_limit_s=drain_limit_s,
            name=name,
            progress=progress,
        )
    )


# ------------------------------------------------------------------------ replay


def scaling_modes(config: PlannerConfig) -> str:
    """The scaling a configuration asks for, in words (the report's ``scaling``).

    ``"throughput"``, ``"load-based"``, ``"load-based over a throughput floor"`` or
    ``"agg, load-based"``, with the intervals.
    """
    load = f"{config.loadbased_adjustment_interval_s:g} s"
    throughput = f"{config.adjustment_interval_s:g} s"
    if not config.enable_loadbased_scaling:
        return f"throughput ({config.scaler} scaler, every {throughput})"
    if config.mode == "agg":
        return f"agg, load-based (every {load})"
    if not config.enable_throughput_scaling:
        return f"load-based (every {load})"
    return (
        f"load-based (every {load}) over a throughput floor ({config.scaler} scaler, "
        f"every {throughput})"
    )


@attrs.frozen
class _Resolved:
    interval_s: float
    ttft_ms: float
    itl_ms: float
    sim: SimConfig


def _resolve(
    planner: PlannerConfig | Callable[[], AnyPlanner] | None, options: ReplayOptions
) -> _Resolved:
    from dynamo_planner.config import PlannerConfig

    config = planner if isinstance(planner, PlannerConfig) else None
    sim = options.sim
    interval = None
    if config is not None:
        sim = attrs.evolve(
            sim,
            prefill_gpus_per_engine=config.prefill_gpus_per_engine,
            decode_gpus_per_engine=config.decode_gpus_per_engine,
        )
        if config.mode == "agg":
            sim = attrs.evolve(sim, mode="agg", initial_prefill=0)
        elif sim.mode == "agg":
            raise ConfigError(
                f"an agg simulated deployment needs a planner in mode 'agg', got "
                f"{config.mode!r}",
                field="mode",
                value=config.mode,
            )
        interval = config.adjustment_interval_s
        if config.enable_loadbased_scaling:
            interval = config.loadbased_adjustment_interval_s
            sim = attrs.evolve(
                sim, load_scrape_s=interval / config.loadbased_metric_samples
            )
    values: dict[str, float] = {}
    for name, fallback in (
        ("interval_s", interval),
        ("ttft_ms", config.ttft_ms if config else None),
        ("itl_ms", config.itl_ms if config else None),
    ):
        value = getattr(options, name)
        value = fallback if value is None else value
        if value is None:
            raise ConfigError(
                "must be given in ReplayOptions when the planner is not a PlannerConfig",
                field=name,
            )
        values[name] = float(value)
    return _Resolved(
        interval_s=values["interval_s"],
        ttft_ms=values["ttft_ms"],
        itl_ms=values["itl_ms"],
        sim=sim,
    )


def _factory(
    planner: PlannerConfig | Callable[[], AnyPlanner],
    profile: PerfProfile,
    registry: Registry | None,
) -> Callable[[], AnyPlanner]:
    from dynamo_planner.config import PlannerConfig

    if isinstance(planner, PlannerConfig):
        config = planner

        def build() -> AnyPlanner:
            from dynamo_planner.load_planner import planner_from_config

            return _checked(
                config,
                planner_from_config(config, profile=profile, registry=registry),
            )

        return build
    return planner


def _checked(config: PlannerConfig, planner: AnyPlanner) -> AnyPlanner:
    """The planner, if it is the one the configuration's scaling modes ask for.

    Raises:
        ConfigError: It is not (a load-based configuration must never be replayed by
            the throughput planner, nor the reverse).
    """
    from dynamo_planner.load_planner import CombinedPlanner, LoadPlanner
    from dynamo_planner.planner import Planner

    want: type[Any]
    if not config.enable_loadbased_scaling:
        want = Planner
    elif config.enable_throughput_scaling:
        want = CombinedPlanner
    else:
        want = LoadPlanner
    if not isinstance(planner, want):
        raise ConfigError(
            f"the configuration asks for a {want.__name__} "
            f"({scaling_modes(config)}), got a {type(planner).__name__}",
            field="enable_loadbased_scaling",
            value=config.enable_loadbased_scaling,
        )
    return planner


def _oracle_planner(
    planner: PlannerConfig | Callable[[], AnyPlanner],
    build: Callable[[], AnyPlanner],
    profile: PerfProfile,
    registry: Registry | None,
) -> tuple[Planner | CombinedPlanner | None, str, str | None]:
    """The planner of the perfect-forecast run, its run name, and a note.

    A planner with predictors (throughput, or both modes) gets oracle predictors. A
    load-based planner has none: its configuration's throughput planner stands in. Agg
    and factories of planners without predictors have no perfect-forecast run.
    """
    from dynamo_planner.config import PlannerConfig
    from dynamo_planner.load_planner import LoadPlanner

    if isinstance(planner, PlannerConfig) and planner.enable_loadbased_scaling:
        if planner.mode == "agg":
            return (
                None,
                "",
                "no perfect-forecast run for agg: throughput planning has no agg mode",
            )
        if not planner.enable_throughput_scaling:
            from dynamo_planner.planner import Planner

            # Load-based scaling forced the correction factors off; the throughput
            # planner alone runs with them, as it does by default.
            config = attrs.evolve(
                planner,
                enable_loadbased_scaling=False,
                enable_throughput_scaling=True,
                no_correction=False,
            )
            return (
                Planner.from_config(config, profile=profile, registry=registry),
                "perfect forecast (throughput)",
                (
                    "load-based scaling forecasts nothing: the perfect-forecast run is "
                    "the throughput planner of the same configuration (correction "
                    "factors on) with a perfect forecast"
                ),
            )
    oracle = build()
    if isinstance(oracle, LoadPlanner):
        return (
            None,
            "",
            "no perfect-forecast run: the planner forecasts nothing (load-based)",
        )
    return oracle, "perfect forecast", None


async def areplay(
    trace: RequestTrace,
    profile: PerfProfile,
    planner: PlannerConfig | Callable[[], AnyPlanner] | None,
    *,
    options: ReplayOptions | None = None,
    progress: Progress | None = None,
    registry: Registry | None = None,
) -> ReplayReport:
    """Async :func:`replay` (for callers already inside an event loop)."""
    from dynamo_planner.config import PlannerConfig

    options = options or ReplayOptions()
    started = time.perf_counter()
    resolved = _resolve(planner, options)
    agg = resolved.sim.mode == "agg"
    model = EngineModel.from_profile(
        profile,
        prefill_beyond=options.prefill_beyond,
        decode_beyond=options.decode_beyond,
    )
    horizon = max(trace.duration_s, 1e-9)
    notes: list[str] = []

    def phase(name: str) -> Callable[[float], None]:
        def report(now_s: float) -> None:
            if progress is not None:
                progress(name, min(1.0, now_s / horizon))

        return report

    planner_run = perfect = None
    planner_wall = math.nan
    if planner is not None:
        build = _factory(planner, profile, registry)
        t0 = time.perf_counter()
        planner_run = await arun_planner(
            trace,
            model,
            build(),
            sim_config=resolved.sim,
            ttft_ms=resolved.ttft_ms,
            itl_ms=resolved.itl_ms,
            warmup_s=options.warmup_s,
            drain_limit_s=options.drain_limit_s,
            name="planner",
            progress=phase("planner"),
        )
        planner_wall = time.perf_counter() - t0
        if "perfect_forecast" in options.baselines:
            oracle, name, note = _oracle_planner(planner, build, profile, registry)
            if note:
                notes.append(note)
            if oracle is not None:
                perfect = await _perfect_forecast(
                    trace,
                    model,
                    oracle,
                    resolved,
                    options,
                    phase("perfect forecast"),
                    name=name,
                )
    static = None
    if "best_static" in options.baselines:
        static = best_static(
            trace,
            model,
            resolved.sim,
            ttft_ms=resolved.ttft_ms,
            itl_ms=resolved.itl_ms,
            attainment_target=options.attainment_target,
            warmup_s=options.warmup_s,
            progress=_deployment_progress(progress, "best static: trying", agg=agg),
        )
    hindsight = None
    if "interval_oracle" in options.baselines:
        if static is None or agg:
            notes.append(
                "the interval oracle needs the best static deployment of a "
                "disaggregated run (add best_static to the baselines)"
                if not agg
                else "the interval oracle covers disaggregated deployments only"
            )
        else:
            hindsight = interval_oracle(
                trace,
                model,
                resolved.sim,
                ttft_ms=resolved.ttft_ms,
                itl_ms=resolved.itl_ms,
                interval_s=resolved.interval_s,
                prefill_options=oracle_options(static.prefill),
                decode_options=oracle_options(static.decode),
                attainment_target=static.target,
                warmup_s=options.warmup_s,
                cold_start_s=resolved.sim.cold_start_s,
                progress=_deployment_progress(progress, "interval oracle: simulating"),
            )
    schedule = None
    if "hindsight_schedule" in options.baselines:
        if hindsight is None or static is None:
            notes.append(
                "the hindsight schedule refines the interval oracle's (add "
                "interval_oracle to the baselines)"
            )
        else:
            schedule = refine_schedule(
                trace,
                model,
                attrs.evolve(
                    resolved.sim,
                    initial_prefill=static.prefill,
                    initial_decode=static.decode,
                ),
                prefill=hindsight.prefill,
                decode=hindsight.decode,
                interval_s=resolved.interval_s,
                cold_start_s=resolved.sim.cold_start_s,
                ttft_ms=resolved.ttft_ms,
                itl_ms=resolved.itl_ms,
                attainment_target=static.target,
                warmup_s=options.warmup_s,
                progress=_replays_progress(progress),
            )
            notes.append(_schedule_note(schedule, static.target))
    floor = None
    if "capacity_floor" in options.baselines:
        # agg engines do both kinds of work on the decode engine's GPUs
        floor = capacity_floor(
            trace,
            model,
            ttft_ms=resolved.ttft_ms,
            itl_ms=resolved.itl_ms,
            prefill_gpus_per_engine=(
                resolved.sim.decode_gpus_per_engine
                if agg
                else resolved.sim.prefill_gpus_per_engine
            ),
            decode_gpus_per_engine=resolved.sim.decode_gpus_per_engine,
            max_decode_batch=resolved.sim.max_decode_batch,
            warmup_s=options.warmup_s,
            interval_s=resolved.interval_s,
        )
    return ReplayReport(
        trace=trace.source or "trace",
        requests=len(trace),
        duration_s=trace.duration_s,
        profile=profile.source or "profile",
        interval_s=resolved.interval_s,
        ttft_ms=resolved.ttft_ms,
        itl_ms=resolved.itl_ms,
        options=attrs.evolve(options, sim=resolved.sim),
        planner=planner_run,
        perfect_forecast=perfect,
        best_static=static,
        capacity_floor=floor,
        interval_oracle=hindsight,
        hindsight_schedule=schedule,
        wall_s=time.perf_counter() - started,
        planner_wall_s=planner_wall,
        scaling=scaling_modes(planner) if isinstance(planner, PlannerConfig) else "",
        notes=tuple(notes),
    )


def _schedule_note(schedule: RefinedSchedule, target: float) -> str:
    """How the hindsight schedule was found, in one line."""
    first = schedule.initial
    words = (
        f"hindsight schedule: the interval oracle's schedule replayed serves "
        f"{share_text(first.attainment)} at {first.gpu_hours:.2f} GPU-h; "
        f"{len(schedule.additions)} worker(s) added, {len(schedule.removals)} removed "
        f"in {schedule.replays} replays"
    )
    if not schedule.best.attainment >= target:
        words += f"; no schedule found meets the target {target:.1%}"
    elif not schedule.exhausted:
        words += " (stopped at the replay limit)"
    return words


def _replays_progress(
    progress: Progress | None,
) -> Callable[[int, ScheduleRun], None] | None:
    """A refinement callback reporting the replays done and the best schedule's cost."""
    if progress is None:
        return None

    def report(done: int, best: ScheduleRun) -> None:
        progress(
            f"hindsight schedule: {done} replays, best {best.gpu_hours:.2f} GPU-h",
            math.nan,
        )

    return report


def _deployment_progress(
    progress: Progress | None, words: str, *, agg: bool = False
) -> Callable[[int, int], None] | None:
    """A ``(prefill, decode)`` callback reporting ``words`` and the deployment."""
    if progress is None:
        return None

    def report(prefill: int, decode: int) -> None:
        name = f"{decode} agg" if agg else f"{prefill}P+{decode}D"
        progress(f"{words} {name}", math.nan)

    return report


async def _perfect_forecast(
    trace: RequestTrace,
    model: EngineModel,
    planner: Planner | CombinedPlanner,
    resolved: _Resolved,
    options: ReplayOptions,
    progress: Callable[[float], None],
    *,
    name: str = "perfect forecast",
) -> PlannerRun:
    """Run ``planner`` with oracle predictors (they read the clock the run installs).

    The oracle forecasts the throughput planner's intervals (a combined planner's
    throughput interval, not its load tick).
    """
    from dynamo_planner.load_planner import CombinedPlanner

    class _LateClock:
        """Reads whichever clock the planner has when asked (installed by the run)."""

        def now(self) -> float:
            return planner.clock.now()

        async def sleep(self, seconds: float) -> None:
            await planner.clock.sleep(seconds)

    interval_s = (
        planner.throughput.interval_s
        if isinstance(planner, CombinedPlanner)
        else planner.interval_s
    )
    planner.predictors = oracle_predictors(
        trace, interval_s=interval_s, clock=_LateClock()
    )
    return await arun_planner(
        trace,
        model,
        planner,
        sim_config=resolved.sim,
        ttft_ms=resolved.ttft_ms,
        itl_ms=resolved.itl_ms,
        warmup_s=options.warmup_s,
        drain_limit_s=options.drain_limit_s,
        name=name,
        progress=progress,
    )


def replay(
    trace: RequestTrace,
    profile: PerfProfile,
    planner: PlannerConfig | Callable[[], AnyPlanner] | None,
    *,
    options: ReplayOptions | None = None,
    progress: Progress | None = None,
    registry: Registry | None = None,
) -> ReplayReport:
    """Replay a trace with a planner in the loop and compute the baselines.

    Args:
        trace: The requests (arrival times in seconds; the run starts at time 0).
        profile: The performance profile the simulated engines follow.
        planner: A configuration (a fresh planner is built from it for each run, the
            one its scaling modes ask for), a zero-argument factory of planners, or
            ``None`` to compute the baselines only.
        options: How to run and judge; the configuration's interval and targets by
            default.
        progress: Called with ``(phase, fraction)`` as the replay advances.
        registry: Where :meth:`Planner.from_config` finds plugins (the installed entry
            points by default).

    Returns:
        The report: the planner run, the baselines, and per-interval figures. Its
        ``options.sim`` is the simulated deployment as run (mode and GPUs per engine
        from the configuration).

    Raises:
        ConfigError: Targets or interval are missing (a factory gives none) or invalid,
            or an agg simulated deployment is given a planner not in agg mode.
    """
    return asyncio.run(
        areplay(
            trace,
            profile,
            planner,
            options=options,
            progress=progress,
            registry=registry,
        )
    )
