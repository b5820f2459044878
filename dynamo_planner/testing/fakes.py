"""Test doubles for driving a :class:`~dynamo_planner.planner.Planner` with no servers.

They satisfy the Protocols in :mod:`dynamo_planner.protocols` and record what happened, so a
notebook or a test can script traffic, step the planner, and read the decisions.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

import attrs

from dynamo_planner.exceptions import ConnectorError, MetricSourceError
from dynamo_planner.values import Forecast, Observation, ReplicaPlan, ReplicaState

__all__ = [
    "FailingMetricSource",
    "InMemoryMetricSource",
    "ManualClock",
    "RecordingConnector",
    "ScriptedPredictor",
]


def _script(
    items: Iterable[Observation | Exception],
) -> collections.deque[Observation | Exception]:
    return collections.deque(items)


@attrs.define
class InMemoryMetricSource:
    """Returns scripted observations in order; an exception in the script is raised.

    When the script runs out, every further fetch is all-unknown (the source went quiet).
    """

    script: collections.deque[Observation | Exception] = attrs.field(
        converter=_script, factory=collections.deque
    )
    fetches: int = 0

    def push(self, item: Observation | Exception) -> None:
        """Append an observation (or an error to raise) to the script."""
        self.script.append(item)

    async def fetch(self, interval_s: float) -> Observation:
        """The next scripted observation."""
        self.fetches += 1
        if not self.script:
            return Observation(interval_s=interval_s)
        item = self.script.popleft()
        if isinstance(item, Exception):
            raise item
        return item

    async def aclose(self) -> None:
        """Nothing to release."""


@attrs.define
class FailingMetricSource:
    """A source that is down: every fetch raises :class:`MetricSourceError`."""

    fetches: int = 0

    async def fetch(self, interval_s: float) -> Observation:
        """Raise, as a source that cannot be reached."""
        self.fetches += 1
        raise MetricSourceError("source is down", source="failing")

    async def aclose(self) -> None:
        """Nothing to release."""


@attrs.define
class RecordingConnector:
    """Applies plans to an in-memory replica state and records them.

    Attributes:
        state: The replicas "running".
        applied: Every plan applied, in order.
        fail_next: How many of the next calls to :meth:`apply` raise ``ConnectorError``.
    """

    state: ReplicaState = attrs.field(factory=ReplicaState)
    applied: list[ReplicaPlan] = attrs.field(factory=list)
    fail_next: int = 0

    async def current(self) -> ReplicaState:
        """The in-memory replicas."""
        return self.state

    async def apply(self, plan: ReplicaPlan, *, blocking: bool = False) -> None:
        """Record the plan and move the state to its target."""
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ConnectorError("scripted failure", connector="recording")
        self.applied.append(plan)
        self.state = plan.target(self.state)

    async def aclose(self) -> None:
        """Nothing to release."""


@attrs.define
class ManualClock:
    """A clock that advances only when slept on (or by :meth:`advance`)."""

    time_s: float = 0.0
    sleeps: list[float] = attrs.field(factory=list)

    def now(self) -> float:
        """The simulated time."""
        return self.time_s

    async def sleep(self, seconds: float) -> None:
        """Advance the simulated time at once."""
        self.sleeps.append(seconds)
        self.time_s += seconds

    def advance(self, seconds: float) -> None:
        """Advance the simulated time."""
        self.time_s += seconds


@attrs.define
class ScriptedPredictor:
    """Forecasts the last observed value (or a fixed value) and records its inputs.

    Attributes:
        fixed: If set, always forecast this value.
        observed: Every value observed, in order.
    """

    fixed: float | None = None
    observed: list[float] = attrs.field(factory=list)

    def observe(self, value: float) -> None:
        """Record the value."""
        self.observed.append(value)

    def predict(self) -> Forecast:
        """The fixed value, else the last observed value, else 0."""
        if self.fixed is not None:
            return Forecast.point(self.fixed)
        return Forecast.point(self.observed[-1] if self.observed else 0.0)

    @classmethod
    def of(cls, values: Iterable[float]) -> ScriptedPredictor:
        """A predictor that has already observed ``values``."""
        return cls(observed=list(values))
