"""The contracts: one Protocol per role, one verb each.

Built-in implementations do not inherit from these; they satisfy them structurally, exactly
as a third-party plugin does. Every Protocol is ``runtime_checkable`` so the plugin registry can
check a loaded object cheaply.

============== ============================== =========================================
Role           Protocol                       Entry-point group
============== ============================== =========================================
forecast       :class:`Predictor`             ``dynamo_planner.predictors``
performance    :class:`Interpolator`          ``dynamo_planner.interpolators``
sizing         :class:`Scaler`                ``dynamo_planner.scalers``
input (edge)   :class:`MetricSource`          ``dynamo_planner.metric_sources``
output (edge)  :class:`Connector`             ``dynamo_planner.connectors``
============== ============================== =========================================

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import attrs

from dynamo_planner.values import (
    Corrections,
    DecodePoint,
    Demand,
    Forecast,
    Observation,
    ReplicaPlan,
    ReplicaState,
)

__all__ = [
    "Clock",
    "Connector",
    "Interpolator",
    "MetricSource",
    "Predictor",
    "Scaler",
    "ScalingRequest",
]


@runtime_checkable
class Predictor(Protocol):
    """An online univariate forecaster (one per series: request count, ISL, OSL).

    ``predict`` has no observable side effects: calling it twice without a new ``observe``
    gives the same forecast. It never returns NaN or a negative value.
    """

    def observe(self, value: float) -> None:
        """Add the next interval's measured value (finite, not negative)."""

    def predict(self) -> Forecast:
        """Forecast the next interval's value (0 when nothing was observed yet)."""


@runtime_checkable
class Interpolator(Protocol):
    """A performance model of one prefill and one decode engine; pure and deterministic."""

    def max_kv_tokens(self) -> int:
        """KV-cache capacity of one decode engine, in tokens."""

    def prefill_ttft_ms(self, isl_tokens: float) -> float:
        """TTFT of one request alone with ``isl_tokens`` input tokens."""

    def prefill_throughput_per_gpu(self, isl_tokens: float) -> float:
        """Prefill tokens per second per GPU at that input length."""

    def decode_itl_ms(self, concurrency: float, context_tokens: float) -> float:
        """ITL with ``concurrency`` running requests of ``context_tokens`` context each."""

    def decode_throughput_per_gpu(
        self, concurrency: float, context_tokens: float
    ) -> float:
        """Output tokens per second per GPU at that load."""

    def best_decode_point(self, itl_ms: float, context_tokens: float) -> DecodePoint:
        """The highest-throughput operating point whose ITL is within ``itl_ms``."""


@attrs.frozen(kw_only=True)
class ScalingRequest:
    """Everything a scaler needs for one decision.

    Attributes:
        demand: The forecast load for the next interval.
        current: The replicas running now.
        corrections: Observed-over-expected latency factors.
        observation: The latest observation, if any (for scalers that use distributions).
    """

    demand: Demand
    current: ReplicaState
    corrections: Corrections = attrs.field(factory=Corrections)
    observation: Observation | None = None


@runtime_checkable
class Scaler(Protocol):
    """Turns forecast demand into replica counts (before the GPU budget)."""

    def decide(self, request: ScalingRequest) -> ReplicaPlan:
        """Decide replicas for the next interval."""


@runtime_checkable
class MetricSource(Protocol):
    """An edge that measures traffic. Async; owns its connections."""

    async def fetch(self, interval_s: float) -> Observation:
        """Measure the last ``interval_s`` seconds. Unknown values are marked unknown."""

    async def aclose(self) -> None:
        """Release connections."""


@runtime_checkable
class Connector(Protocol):
    """An edge that reads and changes the deployment. Async."""

    async def current(self) -> ReplicaState:
        """The replicas the deployment runs now."""

    async def apply(self, plan: ReplicaPlan, *, blocking: bool = False) -> None:
        """Apply a plan; with ``blocking`` wait until the deployment has converged."""

    async def aclose(self) -> None:
        """Release connections."""


@runtime_checkable
class Clock(Protocol):
    """Time for the run loop: real in production, simulated in replays and tests."""

    def now(self) -> float:
        """Seconds on a monotonic clock."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
