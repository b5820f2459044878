"""The simulator's edges, so a :class:`~dynamo_planner.planner.Planner` drives it unchanged.

* :class:`SimClock` is the planner's :class:`~dynamo_planner.protocols.Clock`: ``sleep(s)``
  advances the simulation by ``s`` seconds (processing every request event on the way);
* :class:`SimMetricSource` is its :class:`~dynamo_planner.protocols.MetricSource`: what a
  Dynamo frontend would report over the last interval (see
  :meth:`Simulation.observe <dynamo_planner.sim.engine.Simulation.observe>`);
  :class:`SimRouterSource` adds the router's sampling buffer of per-worker loads, read by
  the load-based planner as it reads a live router source;
* :class:`SimConnector` is its :class:`~dynamo_planner.protocols.Connector`: ``current()``
  reports the ready workers (as the deployment's status does), ``apply()`` asks for the
  plan's replicas (new workers start cold, surplus ones drain);
* :class:`OraclePredictor` forecasts the next interval perfectly, from the trace itself
  (the perfect-forecast baseline).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from dynamo_planner.protocols import Clock
from dynamo_planner.sim.engine import Simulation
from dynamo_planner.values import (
    Forecast,
    Observation,
    ReplicaPlan,
    ReplicaState,
    WorkerLoad,
)

__all__ = [
    "OraclePredictor",
    "SimClock",
    "SimConnector",
    "SimMetricSource",
    "SimRouterSource",
]


@attrs.define(eq=False)
class SimClock:
    """Simulated time: sleeping runs the simulation.

    Attributes:
        sim: The simulation to advance.
        stop_when: Checked after every sleep; when it returns True, ``stop`` is set.
        stop: The event a :meth:`Planner.run <dynamo_planner.planner.Planner.run>` loop
            waits on.
        on_advance: Called with the new time after every sleep (progress reports).
    """

    sim: Simulation
    stop_when: Callable[[Simulation], bool] | None = None
    stop: asyncio.Event | None = None
    on_advance: Callable[[float], None] | None = None

    def now(self) -> float:
        """The simulated time, in seconds."""
        return self.sim.now

    async def sleep(self, seconds: float) -> None:
        """Advance the simulation by ``seconds``."""
        self.sim.run_until(self.sim.now + max(0.0, seconds))
        if self.on_advance is not None:
            self.on_advance(self.sim.now)
        if (
            self.stop is not None
            and self.stop_when is not None
            and self.stop_when(self.sim)
        ):
            self.stop.set()
        await asyncio.sleep(0)


@attrs.define(eq=False)
class SimMetricSource:
    """The frontend's metrics of a simulation, per interval.

    Attributes:
        sim: The simulation observed.
        fetched: Every observation returned, in order.
    """

    sim: Simulation
    fetched: list[Observation] = attrs.field(factory=list)

    async def fetch(self, interval_s: float) -> Observation:
        """What the frontend reports for the last ``interval_s`` seconds."""
        observation = self.sim.observe(interval_s)
        self.fetched.append(observation)
        return observation

    async def aclose(self) -> None:
        """Nothing to release."""


@attrs.define(eq=False)
class SimRouterSource(SimMetricSource):
    """A simulation's frontend metrics plus the router's per-worker sampling buffer.

    :meth:`views` gives what a :class:`~dynamo_planner.sources.router.RouterMetricSource`
    scraping every ``load_scrape_s`` (the simulation's) would hold now: the last
    ``interval_s / load_scrape_s`` scrapes, each ``metric_delay_s`` late, so the load
    planner reads its *recent*, *per-worker* and *cluster* views as it does live. Scrapes
    before time 0 do not exist (the buffer fills during the first interval).

    Attributes:
        interval_s: The span of the buffer (the load planner's interval).
    """

    interval_s: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    _cached: tuple[float, list[tuple[WorkerLoad, ...]]] | None = attrs.field(
        init=False, default=None
    )

    def __attrs_post_init__(self) -> None:
        self.sim.keep_load_history(self.interval_s)

    @property
    def num_samples(self) -> int:
        """Scrapes in the buffer: ``interval_s / load_scrape_s`` (at least 1)."""
        return max(1, round(self.interval_s / self.sim.config.load_scrape_s))

    def scrapes(self) -> list[tuple[WorkerLoad, ...]]:
        """The buffer's scrapes, oldest first."""
        now = self.sim.now
        if self._cached is not None and self._cached[0] == now:
            return self._cached[1]
        end = now - self.sim.config.metric_delay_s
        count = self.num_samples
        every = self.interval_s / count
        times = [end - k * every for k in reversed(range(count))]
        samples = [self.sim.worker_loads_at(t) for t in times if t >= -1e-9]
        self._cached = (now, samples)
        return samples

    def views(self, worker_type: str) -> Any:
        """The buffer's recent / per-worker / cluster views of one worker type."""
        from dynamo_planner.sources.router import SampleBuffer

        samples = self.scrapes()
        buffer = SampleBuffer(max(1, len(samples)))
        for sample in samples:
            buffer.append(sample)
        return buffer.views(worker_type)


@attrs.define(eq=False)
class SimConnector:
    """Scales a simulation's workers.

    Attributes:
        sim: The simulation scaled.
        applied: ``(time, plan, target)`` of every plan applied, in order.
    """

    sim: Simulation
    applied: list[tuple[float, ReplicaPlan, ReplicaState]] = attrs.field(factory=list)

    async def current(self) -> ReplicaState:
        """The ready (serving, not draining) workers per component."""
        counts = self.sim.counts()
        return ReplicaState(prefill=counts.prefill_ready, decode=counts.decode_ready)

    def requested(self) -> ReplicaState:
        """The workers requested and not being removed (starting plus ready)."""
        counts = self.sim.counts()
        return ReplicaState(prefill=counts.prefill_target, decode=counts.decode_target)

    async def apply(self, plan: ReplicaPlan, *, blocking: bool = False) -> None:
        """Ask for the plan's replicas; with ``blocking``, run until they are ready."""
        target = plan.target(self.requested())
        self.applied.append((self.sim.now, plan, target))
        self.sim.scale_to(target.prefill, target.decode)
        if blocking:
            cold = self.sim.config.cold_start_s
            if cold > 0:
                self.sim.run_until(self.sim.now + cold)

    async def aclose(self) -> None:
        """Nothing to release."""


def _hold_last(values: npt.NDArray[np.float64], fallback: float) -> list[float]:
    out: list[float] = []
    last = fallback
    for v in values.tolist():
        if math.isfinite(v):
            last = v
        out.append(last)
    return out


@attrs.define(eq=False)
class OraclePredictor:
    """Forecasts the next interval's true value, read from the trace.

    At time ``t`` it predicts the value of the interval starting at ``t`` (the interval a
    plan made at ``t`` serves). Means of empty intervals hold the last known mean.

    Attributes:
        values: The series, one value per interval from time 0.
        interval_s: Length of one interval.
        clock: Where the current time comes from.
        beyond: The value after the last interval (``None``: the last value).
    """

    values: list[float]
    interval_s: float
    clock: Clock
    beyond: float | None = None

    @classmethod
    def of(
        cls,
        series: npt.ArrayLike,
        *,
        interval_s: float,
        clock: Clock,
        fallback: float = 0.0,
        beyond: float | None = None,
    ) -> OraclePredictor:
        """Build one from a series whose NaNs (unknown means) hold the last known value.

        Args:
            series: One value per interval from time 0.
            interval_s: Length of one interval.
            clock: Where the current time comes from.
            fallback: The value before the first known one.
            beyond: The value after the last interval (``None``: the last value).
        """
        array = np.asarray(series, dtype=np.float64)
        return cls(_hold_last(array, fallback), interval_s, clock, beyond)

    def observe(self, value: float) -> None:
        """Ignored: the oracle already knows."""

    def predict(self) -> Forecast:
        """The true value of the interval starting now."""
        index = max(0, math.floor(self.clock.now() / self.interval_s + 1e-9))
        if index < len(self.values):
            return Forecast.point(max(0.0, self.values[index]))
        if self.beyond is not None:
            return Forecast.point(self.beyond)
        return Forecast.point(max(0.0, self.values[-1]) if self.values else 0.0)
