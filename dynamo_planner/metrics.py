"""The planner's own Prometheus metrics (spec §7, the newer ``dynamo_planner_*`` names).

:class:`PlannerMetrics` keeps its gauges in a private ``CollectorRegistry`` and listens to a
:class:`~dynamo_planner.planner.Planner`: after every step it publishes what was observed,
predicted and decided, the correction factors, the cumulative GPU-hours and the errors by
kind. Serve them with :meth:`PlannerMetrics.serve` (``PLANNER_PROMETHEUS_PORT``).

Unknown is not zero here either: an observed value the source could not measure is
exported as NaN (Grafana draws a gap), a measured zero as 0.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from dynamo_planner._serving import RegistryServer

if TYPE_CHECKING:
    from dynamo_planner.load_planner import CombinedPlanner, LoadPlanner
    from dynamo_planner.planner import Planner, StepRecord
    from dynamo_planner.values import Observation, ReplicaPlan, ReplicaState

__all__ = ["ERROR_KINDS", "METRIC_NAMES", "PlannerMetrics"]

PREFIX = "dynamo_planner"

_GAUGES = {
    "num_prefill_replicas": "Prefill workers running",
    "num_decode_replicas": "Decode workers running",
    "observed_ttft_ms": "Mean time to first token over the last interval (ms)",
    "observed_itl_ms": "Mean inter-token latency over the last interval (ms)",
    "observed_requests_per_second": "Requests per second over the last interval",
    "observed_request_duration_seconds": "Mean request duration over the last interval",
    "observed_input_sequence_tokens": "Mean input length over the last interval",
    "observed_output_sequence_tokens": "Mean output length over the last interval",
    "observed_arrival_dispersion": "Index of dispersion of the last interval's arrivals "
    "(1 for Poisson; NaN when not measured)",
    "observed_traffic_known": "1 when the last interval's traffic was measured, else 0",
    "predicted_requests_per_second": "Forecast requests per second, next interval",
    "predicted_input_sequence_tokens": "Forecast mean input length, next interval",
    "predicted_output_sequence_tokens": "Forecast mean output length, next interval",
    "predicted_num_prefill_replicas": "Prefill replicas decided (after the GPU budget)",
    "predicted_num_decode_replicas": "Decode replicas decided (after the GPU budget)",
    "prefill_correction_factor": "Observed over expected TTFT",
    "decode_correction_factor": "Observed over expected ITL",
    "prefill_sized_attainment": "Share of requests the sla scaler sized prefill for "
    "(its attainment feedback); NaN for other scalers",
    "decode_sized_attainment": "Share of requests the sla scaler sized decode for; NaN "
    "for other scalers",
    "gpu_hours": "Cumulative GPU-hours of the running workers",
    "unknown_intervals": "Consecutive intervals with unknown traffic",
}
_COUNTERS = {
    "errors": (
        "Source and connector failures, and deferred decisions, by kind",
        ("kind",),
    ),
    "decisions": ("Plans applied through the connector", ()),
}

ERROR_KINDS = ("source", "connector", "deferred")
"""The error kinds the planner counts (:attr:`~dynamo_planner.planner.Planner.errors`)."""

METRIC_NAMES = tuple(
    [f"{PREFIX}_{name}" for name in _GAUGES]
    + [f"{PREFIX}_{name}_total" for name in _COUNTERS]
)
"""Every sample name the registry exposes (counters with their ``_total``)."""


def _value(sample: Any) -> float:
    return float(sample.value) if sample.known else math.nan


class PlannerMetrics:
    """The planner's gauges, in their own registry.

    Args:
        registry: The registry to use; a new private one by default.
        prefill_gpus_per_engine: GPUs of one prefill engine (for GPU-hours).
        decode_gpus_per_engine: GPUs of one decode engine (for GPU-hours).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        prefill_gpus_per_engine: int = 1,
        decode_gpus_per_engine: int = 1,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.prefill_gpus_per_engine = prefill_gpus_per_engine
        self.decode_gpus_per_engine = decode_gpus_per_engine
        self.gauges = {
            name: Gauge(f"{PREFIX}_{name}", doc, registry=self.registry)
            for name, doc in _GAUGES.items()
        }
        self.counters = {
            name: Counter(f"{PREFIX}_{name}", doc, labels, registry=self.registry)
            for name, (doc, labels) in _COUNTERS.items()
        }
        for name in ("observed_ttft_ms", "observed_itl_ms"):
            self.gauges[name].set(math.nan)
        for kind in ERROR_KINDS:  # start at 0, so "no error yet" is not "no data"
            self.counters["errors"].labels(kind=kind)
        self._gpu_hours = 0.0
        self._errors_seen: dict[str, int] = {}
        self._planner: Planner | None = None
        self._http = RegistryServer(self.registry, "metrics server")

    # ----------------------------------------------------------------- wiring
    def attach(self, planner: Planner | LoadPlanner | CombinedPlanner) -> None:
        """Listen to a planner's steps (and read its correction factors).

        A load-based or combined planner has no correction factors (they are off with
        load-based scaling); their GPUs per engine come from the load scaler.
        """
        from dynamo_planner.load_planner import CombinedPlanner, LoadPlanner

        inner = planner.throughput if isinstance(planner, CombinedPlanner) else planner
        if isinstance(inner, LoadPlanner):
            self.prefill_gpus_per_engine = inner.scaler.prefill_gpus_per_engine
            self.decode_gpus_per_engine = inner.scaler.decode_gpus_per_engine
        else:
            self._planner = inner
            self.prefill_gpus_per_engine = inner.prefill_gpus_per_engine
            self.decode_gpus_per_engine = inner.decode_gpus_per_engine
        planner.listeners.append(self.on_step)

    def on_step(self, record: StepRecord) -> None:
        """Publish one step: observation, replicas, plan, corrections, errors."""
        self.observe(record.observation)
        self.set_replicas(record.current)
        self.add_gpu_hours(record.current, record.observation.interval_s)
        self.record_plan(record.plan, record.current)
        if record.applied:
            self.counters["decisions"].inc()
        if self._planner is not None:
            corrections = self._planner.corrections
            self.gauges["prefill_correction_factor"].set(corrections.prefill)
            self.gauges["decode_correction_factor"].set(corrections.decode)
        for kind, total in record.errors.items():
            new = total - self._errors_seen.get(kind, 0)
            if new > 0:
                self.count_error(kind, new)
            self._errors_seen[kind] = total

    # ----------------------------------------------------------------- setters
    def observe(self, observation: Observation) -> None:
        """Publish an interval's observation (NaN where unknown)."""
        g = self.gauges
        rate = _value(observation.num_req) / observation.interval_s
        g["observed_requests_per_second"].set(rate)
        g["observed_ttft_ms"].set(_value(observation.ttft_ms))
        g["observed_itl_ms"].set(_value(observation.itl_ms))
        g["observed_request_duration_seconds"].set(
            _value(observation.request_duration_s)
        )
        g["observed_input_sequence_tokens"].set(_value(observation.isl_tokens))
        g["observed_output_sequence_tokens"].set(_value(observation.osl_tokens))
        g["observed_arrival_dispersion"].set(_value(observation.arrival_dispersion))
        known = observation.traffic_known
        g["observed_traffic_known"].set(1.0 if known else 0.0)
        if known:
            g["unknown_intervals"].set(0)
        else:
            g["unknown_intervals"].inc()

    def set_replicas(self, state: ReplicaState) -> None:
        """Publish the running replicas."""
        self.gauges["num_prefill_replicas"].set(state.prefill)
        self.gauges["num_decode_replicas"].set(state.decode)

    def add_gpu_hours(self, state: ReplicaState, interval_s: float) -> None:
        """Add one interval of the running workers' GPUs (spec §1.11)."""
        gpus = (
            state.prefill * self.prefill_gpus_per_engine
            + state.decode * self.decode_gpus_per_engine
        )
        self._gpu_hours += gpus * interval_s / 3600.0
        self.gauges["gpu_hours"].set(self._gpu_hours)

    def record_plan(self, plan: ReplicaPlan, current: ReplicaState) -> None:
        """Publish the decided replicas and the forecast behind them."""
        target = plan.target(current)
        self.gauges["predicted_num_prefill_replicas"].set(target.prefill)
        self.gauges["predicted_num_decode_replicas"].set(target.decode)
        sized = plan.details.get("sized_attainment")
        prefill_share, decode_share = sized if sized is not None else (math.nan,) * 2
        self.gauges["prefill_sized_attainment"].set(prefill_share)
        self.gauges["decode_sized_attainment"].set(decode_share)
        demand = plan.demand
        if demand is not None:
            g = self.gauges
            g["predicted_requests_per_second"].set(
                demand.num_req.value / demand.interval_s
            )
            g["predicted_input_sequence_tokens"].set(demand.isl_tokens.value)
            g["predicted_output_sequence_tokens"].set(demand.osl_tokens.value)

    def count_error(self, kind: str, amount: int = 1) -> None:
        """Count failures of one kind (``source``, ``connector``, ...)."""
        self.counters["errors"].labels(kind=kind).inc(amount)

    @property
    def gpu_hours(self) -> float:
        """Cumulative GPU-hours so far."""
        return self._gpu_hours

    # ----------------------------------------------------------------- serving
    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)

    def serve(self, port: int, addr: str = "0.0.0.0") -> int:  # noqa: S104
        """Serve ``/metrics`` on ``addr:port`` in a daemon thread; returns the port."""
        return self._http.start(port, addr)

    def close(self) -> None:
        """Stop serving."""
        self._http.close()
