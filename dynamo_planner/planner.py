"""The Planner facade: composes predictors, a scaler and the GPU budget; runs the loop.

:meth:`Planner.plan` is synchronous and does no I/O: give it an observation and the running
replicas, get a :class:`~dynamo_planner.values.ReplicaPlan` with its reasons.
:meth:`Planner.step` and :meth:`Planner.run` add the edges: fetch from a
:class:`~dynamo_planner.protocols.MetricSource`, apply through a
:class:`~dynamo_planner.protocols.Connector`, wait on a :class:`~dynamo_planner.protocols.Clock`.
A failing source or connector is logged, counted and retried on the next tick; it never stops
the loop.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from dynamo_planner._edges import (
    apply_counted,
    current_or_last,
    fetch_or_unknown,
    sleep_or_stop,
)
from dynamo_planner.protocols import (
    Clock,
    Connector,
    Interpolator,
    MetricSource,
    Predictor,
    Scaler,
    ScalingRequest,
)
from dynamo_planner.values import (
    Corrections,
    Demand,
    Observation,
    ReplicaPlan,
    ReplicaState,
)

if TYPE_CHECKING:
    from dynamo_planner.config import PlannerConfig
    from dynamo_planner.plugins import Registry
    from dynamo_planner.values import PerfProfile

__all__ = ["SERIES", "Planner", "StepRecord", "SystemClock", "build_predictors"]

logger = logging.getLogger(__name__)

SERIES = ("num_req", "isl", "osl")
"""The three forecast series, as keys of :attr:`Planner.predictors`."""

_MODES = ("disagg", "prefill", "decode", "agg")


@attrs.frozen
class SystemClock:
    """The real clock: :func:`time.monotonic` and :func:`asyncio.sleep`."""

    def now(self) -> float:
        """Seconds on the monotonic clock."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of real time."""
        await asyncio.sleep(seconds)


@attrs.frozen(kw_only=True)
class StepRecord:
    """What one :meth:`Planner.step` saw and did, given to listeners.

    Attributes:
        observation: What the source reported (all unknown if it failed).
        current: The replicas the connector reported (or the last known).
        plan: The plan made.
        applied: True when the plan was sent to the connector and accepted.
        errors: Error counts by kind so far: ``"source"``, ``"connector"``, and
            ``"deferred"`` (the connector held a decision back until the previous one is done).
    """

    observation: Observation
    current: ReplicaState
    plan: ReplicaPlan
    applied: bool
    errors: Mapping[str, int]


def _validate_predictors(
    _instance: Planner, _attribute: attrs.Attribute[Any], value: Mapping[str, Predictor]
) -> None:
    missing = [name for name in SERIES if name not in value]
    if missing:
        msg = f"predictors must have the keys {SERIES}; missing {missing}"
        raise ValueError(msg)


@attrs.define(kw_only=True)
class Planner:
    """Forecasts the next interval and sizes prefill and decode replicas for it.

    Build one from a :class:`~dynamo_planner.config.PlannerConfig` with :meth:`from_config`,
    or pass instances directly (notebooks and tests need no entry points).

    Attributes:
        predictors: One predictor per series, keyed ``"num_req"``, ``"isl"``, ``"osl"``.
        scaler: Turns demand into replicas (before the budget).
        interpolator: The performance model, used for the correction factors.
        mode: ``"disagg"``, ``"prefill"``, ``"decode"`` or ``"agg"``.
        interval_s: The adjustment interval in seconds.
        min_endpoint: The fewest replicas of each planned component.
        max_gpu_budget: The most GPUs in total (``-1``: no budget).
        prefill_gpus_per_engine: GPUs of one prefill engine.
        decode_gpus_per_engine: GPUs of one decode engine.
        correction: Whether observed-vs-expected latency corrects the sizing.
        unknown_fallback_intervals: After this many consecutive intervals with unknown
            traffic, plan ``min_endpoint`` (``<= 0``: hold forever, as the reference).
        source: Where :meth:`step` reads traffic from.
        connector: Where :meth:`step` applies plans.
        clock: Time for :meth:`run`.
        advisory: Record plans and apply nothing.
        listeners: Called with a :class:`StepRecord` after every :meth:`step`.
    """

    predictors: Mapping[str, Predictor] = attrs.field(validator=_validate_predictors)
    scaler: Scaler
    interpolator: Interpolator | None = None
    mode: str = attrs.field(default="disagg", validator=attrs.validators.in_(_MODES))
    interval_s: float = attrs.field(default=180.0, validator=attrs.validators.gt(0))
    min_endpoint: int = attrs.field(default=1, validator=attrs.validators.ge(0))
    max_gpu_budget: int = -1
    prefill_gpus_per_engine: int = attrs.field(
        default=1, validator=attrs.validators.ge(1)
    )
    decode_gpus_per_engine: int = attrs.field(
        default=1, validator=attrs.validators.ge(1)
    )
    correction: bool = True
    unknown_fallback_intervals: int = 3
    source: MetricSource | None = None
    connector: Connector | None = None
    clock: Clock = attrs.field(factory=SystemClock)
    advisory: bool = False
    listeners: list[Callable[[StepRecord], None]] = attrs.field(factory=list)

    _corrections: Corrections = attrs.field(init=False, factory=Corrections)
    _unknown_streak: int = attrs.field(init=False, default=0)
    _errors: Counter[str] = attrs.field(init=False, factory=Counter)
    _last_applied: ReplicaState | None = attrs.field(init=False, default=None)
    _last_current: ReplicaState = attrs.field(init=False, factory=ReplicaState)
    _last_plan: ReplicaPlan | None = attrs.field(init=False, default=None)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_config(
        cls,
        config: PlannerConfig,
        *,
        profile: PerfProfile | None = None,
        source: MetricSource | None = None,
        connector: Connector | None = None,
        clock: Clock | None = None,
        registry: Registry | None = None,
    ) -> Planner:
        """Build a planner from a configuration, loading plugins by name.

        Args:
            config: The configuration.
            profile: The performance profile; read from ``config.profile_results_dir``
                when not given.
            source: The metric source for :meth:`step` (optional for :meth:`plan`).
            connector: The connector for :meth:`step` (optional for :meth:`plan`).
            clock: The clock for :meth:`run`; the real clock when not given.
            registry: The plugin registry; the installed entry points when not given.

        Returns:
            A ready planner, warm-started from ``config.load_predictor_warmup_trace`` if set.
        """
        from dynamo_planner.plugins import default_registry

        registry = registry or default_registry()
        if profile is None:
            from dynamo_planner.profiles import load_profile

            profile = load_profile(config.profile_results_dir, select=config.select)
        predictor_cls = registry.load(
            "dynamo_planner.predictors", config.load_predictor
        )
        predictors = {name: predictor_cls.from_config(config) for name in SERIES}
        interpolator = registry.load(
            "dynamo_planner.interpolators", config.interpolator_name
        ).from_profile(profile)
        scaler = registry.load("dynamo_planner.scalers", config.scaler).from_config(
            config, interpolator=interpolator
        )
        if config.load_predictor_warmup_trace:
            from dynamo_planner.traces import load_intervals, warm_start

            series = load_intervals(
                config.load_predictor_warmup_trace, config.adjustment_interval_s
            )
            warm_start(predictors, series)
        return cls(
            predictors=predictors,
            scaler=scaler,
            interpolator=interpolator,
            mode=config.mode,
            interval_s=config.adjustment_interval_s,
            min_endpoint=config.min_endpoint,
            max_gpu_budget=config.max_gpu_budget,
            prefill_gpus_per_engine=config.prefill_engine_num_gpu or 1,
            decode_gpus_per_engine=config.decode_engine_num_gpu or 1,
            correction=not config.no_correction,
            unknown_fallback_intervals=config.unknown_fallback_intervals,
            source=source,
            connector=connector,
            clock=clock or SystemClock(),
            advisory=config.no_operation,
        )

    # ----------------------------------------------------------------- state
    @property
    def corrections(self) -> Corrections:
        """The current correction factors."""
        return self._corrections

    @property
    def errors(self) -> Mapping[str, int]:
        """Counts of source and connector failures by kind."""
        return dict(self._errors)

    @property
    def last_plan(self) -> ReplicaPlan | None:
        """The most recent plan, if any."""
        return self._last_plan

    # ----------------------------------------------------------------- pure core
    def forecast(self, observation: Observation | None = None) -> Demand:
        """The demand the predictors expect for the next interval (no side effects)."""
        isl_samples = observation.isl_samples_tokens if observation else ()
        osl_samples = observation.osl_samples_tokens if observation else ()
        return Demand(
            interval_s=self.interval_s,
            num_req=self.predictors["num_req"].predict(),
            isl_tokens=self.predictors["isl"].predict(),
            osl_tokens=self.predictors["osl"].predict(),
            isl_samples_tokens=isl_samples,
            osl_samples_tokens=osl_samples,
        )

    def plan(self, observation: Observation, current: ReplicaState) -> ReplicaPlan:
        """Learn from one interval's observation and plan the next interval.

        Unknown traffic is never read as zero: the predictors are not fed, the replicas are
        held, and after ``unknown_fallback_intervals`` such intervals in a row the plan falls
        back to ``min_endpoint``. A request count measured as zero is known: it is fed to
        the predictors, so an idle deployment scales down.

        Args:
            observation: What the metric source saw over the last interval.
            current: The replicas running now.

        Returns:
            The plan for the next interval, after the GPU budget.
        """
        if not observation.traffic_known:
            plan = self._plan_unknown(observation, current)
        else:
            self._unknown_streak = 0
            self._observe(observation)
            if self.correction and self.interpolator is not None:
                from dynamo_planner.scalers.corrections import update_corrections

                self._corrections = update_corrections(
                    self._corrections,
                    observation,
                    self.interpolator,
                    decode_workers=current.decode,
                    interval_s=self.interval_s,
                )
            plan = self.size(self.forecast(observation), current, observation)
        self._last_plan = plan
        return plan

    def size(
        self,
        demand: Demand,
        current: ReplicaState,
        observation: Observation | None = None,
    ) -> ReplicaPlan:
        """Size replicas for a given demand (no learning): the scaler, then the budget.

        Use it directly to ask "what would the planner run for this load?", e.g. with the
        actual next-interval load for a perfect-forecast baseline.
        """
        from dynamo_planner.scalers.budget import apply_budget

        request = ScalingRequest(
            demand=demand,
            current=current,
            corrections=self._corrections if self.correction else Corrections(),
            observation=observation,
        )
        plan = self.scaler.decide(request)
        return apply_budget(
            plan,
            current=current,
            mode=self.mode,
            prefill_gpus_per_engine=self.prefill_gpus_per_engine,
            decode_gpus_per_engine=self.decode_gpus_per_engine,
            budget_gpus=self.max_gpu_budget,
            min_endpoint=self.min_endpoint,
        )

    def _observe(self, observation: Observation) -> None:
        self.predictors["num_req"].observe(observation.num_req.value)
        if observation.isl_tokens.known:
            self.predictors["isl"].observe(observation.isl_tokens.value)
        if observation.osl_tokens.known:
            self.predictors["osl"].observe(observation.osl_tokens.value)

    def _planned_components(self) -> tuple[bool, bool]:
        return (
            self.mode in ("disagg", "prefill"),
            self.mode in ("disagg", "decode", "agg"),
        )

    def _plan_unknown(
        self, observation: Observation, current: ReplicaState
    ) -> ReplicaPlan:
        self._unknown_streak += 1
        fields = ", ".join(observation.unknown_fields()) or "traffic"
        threshold = self.unknown_fallback_intervals
        if threshold <= 0 or self._unknown_streak < threshold:
            limit = f"/{threshold}" if threshold > 0 else ""
            reason = (
                f"traffic unknown ({fields}); holding current replicas "
                f"(unknown interval {self._unknown_streak}{limit})"
            )
            return ReplicaPlan(
                prefill=None,
                decode=None,
                reasons=(reason,),
                clamps=("unknown_metrics",),
                details={"unknown_streak": self._unknown_streak},
            )
        from dynamo_planner.scalers.budget import apply_budget

        plan_prefill, plan_decode = self._planned_components()
        reason = (
            f"traffic unknown for {self._unknown_streak} intervals in a row "
            f"({fields}); falling back to min_endpoint={self.min_endpoint}"
        )
        plan = ReplicaPlan(
            prefill=self.min_endpoint if plan_prefill else None,
            decode=self.min_endpoint if plan_decode else None,
            reasons=(reason,),
            clamps=("unknown_metrics",),
            details={"unknown_streak": self._unknown_streak},
        )
        return apply_budget(
            plan,
            current=current,
            mode=self.mode,
            prefill_gpus_per_engine=self.prefill_gpus_per_engine,
            decode_gpus_per_engine=self.decode_gpus_per_engine,
            budget_gpus=self.max_gpu_budget,
            min_endpoint=self.min_endpoint,
        )

    # ----------------------------------------------------------------- edges
    async def step(self) -> ReplicaPlan:
        """Fetch one observation, plan, and apply the plan (unless advisory).

        A failing source yields an all-unknown observation; a failing connector keeps the
        last known replicas. Both are logged and counted in :attr:`errors`, and the next
        step tries again. A plan whose target was already applied is not applied twice.
        """
        if self.source is None:
            msg = "Planner.step() needs a metric source"
            raise RuntimeError(msg)
        observation = await fetch_or_unknown(self.source, self.interval_s, self._errors)
        current = await self._current()
        plan = self.plan(observation, current)
        applied = await self._apply(plan, current)
        record = StepRecord(
            observation=observation,
            current=current,
            plan=plan,
            applied=applied,
            errors=self.errors,
        )
        for listener in self.listeners:
            listener(record)
        return plan

    async def _current(self) -> ReplicaState:
        if self.connector is not None:
            self._last_current = await current_or_last(
                self.connector, self._last_current, self._errors
            )
        return self._last_current

    async def _apply(self, plan: ReplicaPlan, current: ReplicaState) -> bool:
        if self.advisory or self.connector is None or plan.is_hold:
            return False
        target = plan.target(current)
        if target == self._last_applied:
            logger.debug("target %s already applied; not applying again", target)
            return False
        if not await apply_counted(
            self.connector, plan, blocking=False, errors=self._errors, what=target
        ):
            return False
        self._last_applied = target
        return True

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Plan every ``interval_s`` until ``stop`` is set.

        As the reference, the first decision comes one full interval after the start.
        """
        stop = stop or asyncio.Event()
        while not stop.is_set():
            await sleep_or_stop(self.clock, self.interval_s, stop)
            if stop.is_set():
                break
            await self.step()


def build_predictors(
    factory: Callable[[], Predictor], names: Sequence[str] = SERIES
) -> dict[str, Predictor]:
    """One fresh predictor per series from a zero-argument factory."""
    return {name: factory() for name in names}
