"""The load-based planner facade: learns latency-vs-load and scales within seconds (spec §4).

:meth:`LoadPlanner.plan` is synchronous and does no I/O: give it the workers' loads (one
scrape as a sequence of :class:`~dynamo_planner.values.WorkerLoad`, or the router's views as
a :class:`~dynamo_planner.scalers.load.LoadSnapshot`) and the running replicas; it feeds the
regressions and returns a :class:`~dynamo_planner.values.ReplicaPlan` with its reasons.
:meth:`LoadPlanner.step` and :meth:`LoadPlanner.run` add the edges, every
``loadbased_adjustment_interval_s``: read the source, ask the connector for the replicas,
plan, apply. A failing source or connector is logged, counted
and retried on the next tick.

With both scaling modes on, :class:`CombinedPlanner` runs the throughput
:class:`~dynamo_planner.planner.Planner` as a floor-setter (it plans, applies nothing) and
this planner as the only one that scales, enforcing the floor on every tick.
:func:`planner_from_config` picks the planner a configuration asks for.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from dynamo_planner._edges import (
    apply_counted,
    current_or_last,
    fetch_or_unknown,
    sleep_or_stop,
)
from dynamo_planner.planner import StepRecord, SystemClock
from dynamo_planner.protocols import Clock, Connector, MetricSource
from dynamo_planner.scalers.load import (
    LoadRequest,
    LoadScaler,
    LoadSnapshot,
    decode_observations,
    prefill_observations,
)
from dynamo_planner.scalers.load_regression import LoadRegression
from dynamo_planner.values import Observation, ReplicaPlan, ReplicaState, WorkerLoad

if TYPE_CHECKING:
    from dynamo_planner.config import PlannerConfig
    from dynamo_planner.planner import Planner
    from dynamo_planner.plugins import Registry
    from dynamo_planner.values import PerfProfile

__all__ = [
    "CombinedPlanner",
    "LoadPlanner",
    "WorkerViewsSource",
    "planner_from_config",
    "run_together",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class WorkerViewsSource(Protocol):
    """A source with a sampling buffer read per worker type (the router source).

    When the load planner's source has ``views``, :meth:`LoadPlanner.step` reads the
    buffer (non-blocking) instead of calling ``fetch``, so a router source can feed the
    throughput planner's ``fetch`` at the same time.
    """

    def views(self, worker_type: str) -> Any:
        """The recent / per-worker / cluster views of one worker type, or ``None``."""


@attrs.define(kw_only=True)
class LoadPlanner:
    """Learns each component's latency-vs-load line and scales by one replica per tick.

    Build one from a :class:`~dynamo_planner.config.PlannerConfig` with :meth:`from_config`,
    or pass instances directly.

    Attributes:
        scaler: The decision rules, floor, ``min_endpoint`` and budget.
        prefill_regression: TTFT against active prefill tokens plus ISL.
        decode_regression: ITL against active decode blocks.
        interval_s: Seconds between ticks (``loadbased_adjustment_interval_s``).
        source: Where :meth:`step` reads worker loads.
        connector: Where :meth:`step` reads replicas and applies plans.
        clock: Time for :meth:`run`.
        advisory: Record plans and apply nothing.
        blocking: Apply with ``blocking=True`` (wait for the deployment) as the reference
            does. Off by default: the scaling-in-progress guard already holds a
            component until its change converges, without stalling the other component
            or the floor.
        max_wait_s: How long a change may stay unconverged before the scaling-in-progress
            guard gives up on it.
        floor: The throughput planner's latest replicas; :meth:`step` enforces it.
        listeners: Called with a :class:`~dynamo_planner.planner.StepRecord` after every
            :meth:`step`.
    """

    scaler: LoadScaler = attrs.field(factory=LoadScaler)
    prefill_regression: LoadRegression = attrs.field(factory=LoadRegression)
    decode_regression: LoadRegression = attrs.field(factory=LoadRegression)
    interval_s: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    source: MetricSource | None = None
    connector: Connector | None = None
    clock: Clock = attrs.field(factory=SystemClock)
    advisory: bool = False
    blocking: bool = False
    max_wait_s: float = attrs.field(default=1800.0, validator=attrs.validators.gt(0))
    floor: ReplicaState | None = None
    listeners: list[Callable[[StepRecord], None]] = attrs.field(factory=list)

    _errors: Counter[str] = attrs.field(init=False, factory=Counter)
    _last_current: ReplicaState = attrs.field(init=False, factory=ReplicaState)
    _last_plan: ReplicaPlan | None = attrs.field(init=False, default=None)
    _pending: dict[str, tuple[int, float]] = attrs.field(init=False, factory=dict)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_config(
        cls,
        config: PlannerConfig,
        *,
        source: MetricSource | None = None,
        connector: Connector | None = None,
        clock: Clock | None = None,
    ) -> LoadPlanner:
        """Build from a configuration (its load-based fields, targets, budget, mode).

        ``PlannerConfig`` has already validated the combination: a load interval shorter
        than the throughput interval when both modes are on, agg only with load-based
        scaling alone, and correction factors turned off (with a warning).
        """
        return cls(
            scaler=LoadScaler.from_config(config),
            prefill_regression=LoadRegression(
                window=config.loadbased_learning_window,
                min_observations=config.loadbased_min_observations,
            ),
            decode_regression=LoadRegression(
                window=config.loadbased_learning_window,
                min_observations=config.loadbased_min_observations,
            ),
            interval_s=config.loadbased_adjustment_interval_s,
            source=source,
            connector=connector,
            clock=clock or SystemClock(),
            advisory=config.no_operation,
            max_wait_s=config.scaling_max_wait_s,
        )

    # ----------------------------------------------------------------- state
    @property
    def errors(self) -> Mapping[str, int]:
        """Counts of source and connector failures by kind."""
        return dict(self._errors)

    @property
    def last_plan(self) -> ReplicaPlan | None:
        """The most recent plan, if any."""
        return self._last_plan

    def update_floor(self, plan: ReplicaPlan) -> None:
        """Take the throughput planner's plan as the floor.

        A component the plan leaves ``None`` (the throughput path skipped it) keeps its
        previous floor (0 if none), as the reference keeps its last lower bound.
        """
        old = self.floor or ReplicaState()
        self.floor = ReplicaState(
            prefill=old.prefill if plan.prefill is None else plan.prefill,
            decode=old.decode if plan.decode is None else plan.decode,
        )

    def floor_listener(self, record: StepRecord) -> None:
        """A :class:`~dynamo_planner.planner.Planner` listener that updates the floor."""
        self.update_floor(record.plan)

    # ----------------------------------------------------------------- pure core
    def observe(self, snapshot: LoadSnapshot) -> int:
        """Feed the regressions one observation per eligible worker.

        Disagg, prefill and decode modes learn from the ``recent`` loads; agg learns both
        regressions from the per-worker time averages of its workers, since chunked
        prefill makes instantaneous values noisy (spec §4.3). Only workers of the right
        ``worker_type`` teach each regression.

        Returns:
            The number of observations added.
        """
        added = 0
        components = self.scaler.components
        if self.scaler.mode == "agg":
            workers = snapshot.decode.per_worker
            points_p = prefill_observations(workers)
            points_d = decode_observations(workers)
        else:
            points_p = (
                prefill_observations(snapshot.prefill.recent)
                if "prefill" in components
                else []
            )
            points_d = (
                decode_observations(snapshot.decode.recent)
                if "decode" in components
                else []
            )
        for x, y in points_p:
            self.prefill_regression.observe(x, y)
            added += 1
        for x, y in points_d:
            self.decode_regression.observe(x, y)
            added += 1
        return added

    def plan(
        self,
        load: Sequence[WorkerLoad] | LoadSnapshot,
        current: ReplicaState,
        *,
        floor: ReplicaState | None = None,
        in_progress: ReplicaState | None = None,
    ) -> ReplicaPlan:
        """Learn from the workers' loads and decide this tick's replicas.

        Args:
            load: One scrape's workers, or the router's views per worker type.
            current: The replicas the deployment has.
            floor: The throughput planner's replicas, enforced as a minimum.
            in_progress: The target of a change not yet converged (components that differ
                from ``current`` are held).

        Returns:
            The plan after floor, ``min_endpoint`` and budget; ``None`` components are
            left as they are.
        """
        snapshot = (
            load if isinstance(load, LoadSnapshot) else LoadSnapshot.of_workers(load)
        )
        added = self.observe(snapshot)
        request = LoadRequest(
            current=current,
            snapshot=snapshot,
            prefill_fit=self.prefill_regression.fit(),
            decode_fit=self.decode_regression.fit(),
            floor=floor,
            in_progress=in_progress,
            min_observations=self.prefill_regression.min_observations,
        )
        plan = self.scaler.decide(request)
        details = dict(plan.details)
        details["observations_added"] = added
        details["prefill_regression_observations"] = (
            self.prefill_regression.num_observations
        )
        details["decode_regression_observations"] = (
            self.decode_regression.num_observations
        )
        plan = attrs.evolve(plan, details=details)
        self._last_plan = plan
        return plan

    # ----------------------------------------------------------------- edges
    async def step(self) -> ReplicaPlan:
        """Read worker loads, plan, and apply the plan (unless advisory)."""
        if self.source is None:
            msg = "LoadPlanner.step() needs a metric source"
            raise RuntimeError(msg)
        snapshot, observation = await self._read(self.source)
        current = await self._current()
        plan = self.plan(
            snapshot,
            current,
            floor=self.floor,
            in_progress=self._in_progress(current),
        )
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

    async def _read(self, source: MetricSource) -> tuple[LoadSnapshot, Observation]:
        if isinstance(source, WorkerViewsSource):
            start = getattr(source, "start", None)
            try:
                if callable(start):
                    start()
                snapshot = LoadSnapshot.of_router(source)
            except Exception:
                self._errors["source"] += 1
                logger.warning(
                    "router views unavailable; no worker loads", exc_info=True
                )
                snapshot = LoadSnapshot()
            workers = (*snapshot.prefill.recent, *snapshot.decode.recent)
            return snapshot, Observation(interval_s=self.interval_s, workers=workers)
        observation = await fetch_or_unknown(source, self.interval_s, self._errors)
        return LoadSnapshot.of_workers(observation.workers), observation

    async def _current(self) -> ReplicaState:
        if self.connector is not None:
            self._last_current = await current_or_last(
                self.connector, self._last_current, self._errors
            )
        return self._last_current

    def _in_progress(self, current: ReplicaState) -> ReplicaState | None:
        """Per component, the last applied target while the deployment differs from it.

        Components with no change in flight report their current count. A component
        that reached its target, or waited longer than ``max_wait_s``, is no longer in
        flight.
        """
        now = self.clock.now()
        for component, (target, since_s) in list(self._pending.items()):
            have = getattr(current, component)
            if have == target:
                del self._pending[component]
            elif now - since_s > self.max_wait_s:
                logger.warning(
                    "scaling %s to %d did not converge in %.0f s (deployment reports "
                    "%d); deciding again",
                    component,
                    target,
                    now - since_s,
                    have,
                )
                del self._pending[component]
        if not self._pending:
            return None
        return ReplicaState(
            prefill=self._pending.get("prefill", (current.prefill, 0.0))[0],
            decode=self._pending.get("decode", (current.decode, 0.0))[0],
        )

    async def _apply(self, plan: ReplicaPlan, current: ReplicaState) -> bool:
        if plan.is_hold or self.advisory or self.connector is None:
            return False
        changes = {
            component: value
            for component in ("prefill", "decode")
            if (value := getattr(plan, component)) is not None
        }
        if all(
            component in self._pending and self._pending[component][0] == value
            for component, value in changes.items()
        ):
            logger.debug("targets %s already applied; not applying again", changes)
            return False
        if not await apply_counted(
            self.connector,
            plan,
            blocking=self.blocking,
            errors=self._errors,
            what=changes,
        ):
            return False
        now = self.clock.now()
        for component, value in changes.items():
            if value == getattr(current, component):
                self._pending.pop(component, None)
            else:
                self._pending[component] = (value, now)
        return True

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Plan every ``interval_s`` until ``stop`` is set (first tick after one interval)."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            await sleep_or_stop(self.clock, self.interval_s, stop)
            if stop.is_set():
                break
            await self.step()


@attrs.define(kw_only=True)
class CombinedPlanner:
    """Both scaling modes on one clock (spec §4.7, floor enforced on every load tick).

    One loop ticks every ``load.interval_s``; when a throughput interval has passed it
    first steps the throughput planner, which is advisory (it forecasts and plans but
    applies nothing) and whose plan becomes the load planner's floor; then it steps the
    load planner, the only one that scales. One loop rather than two concurrent ones
    keeps the order deterministic and works with a simulated clock, where sleeping
    advances time.

    It has the surface a :class:`~dynamo_planner.planner.Planner` driver uses
    (``source``, ``connector``, ``clock``, ``listeners``, ``interval_s``, ``step``,
    ``run``), so a replay or a live loop drives it unchanged. Setting ``source``,
    ``connector`` or ``clock`` sets them on both planners.

    Attributes:
        throughput: The throughput planner (made advisory).
        load: The load planner.

    Raises:
        ValueError: The load interval is not shorter than the throughput interval.
    """

    throughput: Planner
    load: LoadPlanner
    _next_throughput_s: float | None = attrs.field(init=False, default=None)

    def __attrs_post_init__(self) -> None:
        if self.load.interval_s >= self.throughput.interval_s:
            msg = (
                f"the load interval ({self.load.interval_s:g} s) must be shorter than "
                f"the throughput interval ({self.throughput.interval_s:g} s)"
            )
            raise ValueError(msg)
        self.throughput.advisory = True
        if self.load.floor_listener not in self.throughput.listeners:
            self.throughput.listeners.append(self.load.floor_listener)

    # The driver-facing surface, forwarded to both planners.
    @property
    def source(self) -> MetricSource | None:
        """The load planner's source (setting it sets both planners')."""
        return self.load.source

    @source.setter
    def source(self, value: MetricSource | None) -> None:
        self.load.source = value
        self.throughput.source = value

    @property
    def connector(self) -> Connector | None:
        """The load planner's connector (setting it sets both planners')."""
        return self.load.connector

    @connector.setter
    def connector(self, value: Connector | None) -> None:
        self.load.connector = value
        self.throughput.connector = value

    @property
    def clock(self) -> Clock:
        """The load planner's clock (setting it sets both planners')."""
        return self.load.clock

    @clock.setter
    def clock(self, value: Clock) -> None:
        self.load.clock = value
        self.throughput.clock = value

    @property
    def predictors(self) -> Mapping[str, Any]:
        """The throughput planner's predictors (settable, e.g. for an oracle)."""
        return self.throughput.predictors

    @predictors.setter
    def predictors(self, value: Mapping[str, Any]) -> None:
        self.throughput.predictors = value

    @property
    def listeners(self) -> list[Callable[[StepRecord], None]]:
        """The load planner's listeners (its plans are the ones applied)."""
        return self.load.listeners

    @property
    def interval_s(self) -> float:
        """The load interval (the loop's tick)."""
        return self.load.interval_s

    @property
    def errors(self) -> Mapping[str, int]:
        """Failures of both planners, by kind (``throughput_source``, ``source``, ...)."""
        merged = dict(self.load.errors)
        for kind, count in self.throughput.errors.items():
            merged[f"throughput_{kind}"] = count
        return merged

    async def step(self) -> ReplicaPlan:
        """A throughput step if one is due, then a load step."""
        now = self.clock.now()
        if self._next_throughput_s is None:
            self._next_throughput_s = now + self.throughput.interval_s
        # Half a load tick of slack absorbs floating-point drift in the clock.
        if now >= self._next_throughput_s - self.load.interval_s / 2:
            await self.throughput.step()
            self._next_throughput_s += self.throughput.interval_s
        return await self.load.step()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Tick every load interval until ``stop`` is set.

        The first load decision comes one load interval after the start, the first
        throughput decision one throughput interval after it, as in the reference.
        """
        stop = stop or asyncio.Event()
        self._next_throughput_s = self.clock.now() + self.throughput.interval_s
        while not stop.is_set():
            await sleep_or_stop(self.clock, self.load.interval_s, stop)
            if stop.is_set():
                break
            await self.step()


async def run_together(
    throughput: Planner, load: LoadPlanner, stop: asyncio.Event | None = None
) -> None:
    """Run both scaling modes until ``stop`` is set (see :class:`CombinedPlanner`).

    Args:
        throughput: The throughput planner (its ``advisory`` is set to True).
        load: The load planner.
        stop: Set it to stop.

    Raises:
        ValueError: The load interval is not shorter than the throughput interval.
    """
    await CombinedPlanner(throughput=throughput, load=load).run(stop)


def planner_from_config(
    config: PlannerConfig,
    *,
    profile: PerfProfile | None = None,
    source: MetricSource | None = None,
    connector: Connector | None = None,
    clock: Clock | None = None,
    registry: Registry | None = None,
    load_source: MetricSource | None = None,
) -> Planner | LoadPlanner | CombinedPlanner:
    """The planner a configuration asks for, by its scaling modes.

    * throughput only:
      :meth:`Planner.from_config <dynamo_planner.planner.Planner.from_config>`;
    * load-based only (including agg): :meth:`LoadPlanner.from_config`, which needs no
      performance profile;
    * both: a :class:`CombinedPlanner`.

    Args:
        config: The configuration.
        profile: The performance profile (throughput scaling; read from
            ``config.profile_results_dir`` when not given).
        source: The metric source (of both planners unless ``load_source`` is given).
        connector: The connector for both planners.
        clock: The clock for both planners.
        registry: The plugin registry for the throughput planner.
        load_source: The load planner's source when it differs from the throughput
            planner's (live: the router source beside the Prometheus source).
    """
    from dynamo_planner.planner import Planner

    if not config.enable_loadbased_scaling:
        return Planner.from_config(
            config,
            profile=profile,
            source=source,
            connector=connector,
            clock=clock,
            registry=registry,
        )
    load = LoadPlanner.from_config(
        config,
        source=source if load_source is None else load_source,
        connector=connector,
        clock=clock,
    )
    if not config.enable_throughput_scaling:
        return load
    throughput = Planner.from_config(
        config,
        profile=profile,
        source=source,
        connector=connector,
        clock=clock,
        registry=registry,
    )
    return CombinedPlanner(throughput=throughput, load=load)
