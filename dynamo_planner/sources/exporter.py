"""A ``/metrics`` endpoint that speaks the Dynamo frontend's metric names.

Anything that serves requests (the simulator, a test, a proxy in front of another engine)
can feed a :class:`FrontendMetricsExporter`; Prometheus scrapes it, and the
:class:`~dynamo_planner.sources.prometheus.PrometheusMetricSource` and
:class:`~dynamo_planner.sources.router.RouterMetricSource` read it exactly as they read a
real Dynamo frontend:

* histograms ``dynamo_frontend_time_to_first_token_seconds``,
  ``…_inter_token_latency_seconds``, ``…_request_duration_seconds``,
  ``…_input_sequence_tokens``, ``…_output_sequence_tokens`` and the counter
  ``dynamo_frontend_requests_total``, labelled ``model`` and ``dynamo_namespace``;
* per-worker gauges (spec §4.1) labelled ``worker_id`` and ``worker_type`` as well.

Example::

    exporter = FrontendMetricsExporter(model_name="llama", namespace="dynamo")
    exporter.serve(port=8000)
    exporter.record_request(isl_tokens=3000, osl_tokens=150, ttft_s=0.2, itl_s=0.02,
                            duration_s=3.2)

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import threading

import attrs
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from dynamo_planner._serving import RegistryServer
from dynamo_planner.sources._names import (
    BUCKETS,
    DEFAULT_PREFIX,
    HISTOGRAMS,
    REQUESTS_TOTAL,
    SECONDS_TO_MS_FIELDS,
    WORKER_GAUGES,
)
from dynamo_planner.values import WorkerLoad

__all__ = ["FrontendMetricsExporter"]

_HELP = {
    "ttft_ms": "Time to first token",
    "itl_ms": "Inter-token latency",
    "request_duration_s": "Request duration",
    "isl_tokens": "Input sequence length",
    "osl_tokens": "Output sequence length",
}
_TRAFFIC_LABELS = ("model", "dynamo_namespace")
_WORKER_LABELS = ("worker_id", "worker_type", "model", "dynamo_namespace")


def _lower(value: str) -> str:
    return value.lower()


@attrs.define(kw_only=True)
class FrontendMetricsExporter:
    """Dynamo frontend metrics in a private :class:`prometheus_client.CollectorRegistry`.

    Thread-safe: ``prometheus_client`` metrics may be updated from any thread while the
    HTTP server renders them.

    Args:
        model_name: The ``model`` label (lower-cased, as the frontend does).
        namespace: The ``dynamo_namespace`` label.
        prefix: The metric prefix (``DYN_METRICS_PREFIX``).
    """

    model_name: str = attrs.field(converter=_lower)
    namespace: str = "dynamo"
    prefix: str = DEFAULT_PREFIX
    registry: CollectorRegistry = attrs.field(init=False, factory=CollectorRegistry)
    _histograms: dict[str, Histogram] = attrs.field(init=False, factory=dict)
    _requests: Counter = attrs.field(init=False)
    _gauges: dict[str, Gauge] = attrs.field(init=False, factory=dict)
    _workers: set[tuple[str, str]] = attrs.field(init=False, factory=set)
    _http: RegistryServer = attrs.field(init=False)
    _lock: threading.Lock = attrs.field(init=False, factory=threading.Lock)

    def __attrs_post_init__(self) -> None:
        self._http = RegistryServer(self.registry, "exporter")
        for field, suffix in HISTOGRAMS.items():
            self._histograms[field] = Histogram(
                f"{self.prefix}_{suffix}",
                _HELP[field],
                _TRAFFIC_LABELS,
                buckets=BUCKETS[field],
                registry=self.registry,
            )
        self._requests = Counter(
            f"{self.prefix}_{REQUESTS_TOTAL.removesuffix('_total')}",
            "Requests received by the frontend",
            _TRAFFIC_LABELS,
            registry=self.registry,
        )
        for field, suffix in WORKER_GAUGES.items():
            self._gauges[field] = Gauge(
                f"{self.prefix}_{suffix}",
                f"Per-worker {field}",
                _WORKER_LABELS,
                registry=self.registry,
            )
        # Create the traffic series at zero, as a frontend does once its model is
        # registered: then "no request yet" is a measured zero, not a missing series.
        labels = (self.model_name, self.namespace)
        self._requests.labels(*labels)
        for histogram in self._histograms.values():
            histogram.labels(*labels)

    def record_request(
        self,
        *,
        isl_tokens: float,
        osl_tokens: float,
        ttft_s: float,
        itl_s: float | None,
        duration_s: float,
    ) -> None:
        """Record one finished request.

        ``itl_s`` is ``None`` for a request with a single output token: it has no
        inter-token gap, and the frontend observes no inter-token latency for it.
        """
        labels = (self.model_name, self.namespace)
        self._requests.labels(*labels).inc()
        values = {
            "ttft_ms": ttft_s,
            "itl_ms": itl_s,
            "request_duration_s": duration_s,
            "isl_tokens": isl_tokens,
            "osl_tokens": osl_tokens,
        }
        for field, value in values.items():
            if value is not None:
                self._histograms[field].labels(*labels).observe(value)

    def record_arrival(self, *, isl_tokens: float) -> None:
        """Count one request as it arrives, with its input length.

        With :meth:`record_first_token` and :meth:`record_completion`, an alternative to
        :meth:`record_request` that records each value when it becomes known (the
        simulator's frontend model: requests and ISL by arrival).
        """
        labels = (self.model_name, self.namespace)
        self._requests.labels(*labels).inc()
        self._histograms["isl_tokens"].labels(*labels).observe(isl_tokens)

    def record_first_token(self, *, ttft_s: float) -> None:
        """Record one request's time to first token."""
        labels = (self.model_name, self.namespace)
        self._histograms["ttft_ms"].labels(*labels).observe(ttft_s)

    def record_completion(
        self, *, osl_tokens: float, itl_s: float | None, duration_s: float
    ) -> None:
        """Record one request's end: output length, mean ITL (``None``: none), duration."""
        labels = (self.model_name, self.namespace)
        self._histograms["osl_tokens"].labels(*labels).observe(osl_tokens)
        self._histograms["request_duration_s"].labels(*labels).observe(duration_s)
        if itl_s is not None:
            self._histograms["itl_ms"].labels(*labels).observe(itl_s)

    def set_worker(self, load: WorkerLoad) -> None:
        """Publish one worker's gauges (``None`` fields are left out)."""
        labels = (load.worker_id, load.worker_type, self.model_name, self.namespace)
        with self._lock:
            self._workers.add((load.worker_id, load.worker_type))
        for field, gauge in self._gauges.items():
            value = getattr(load, field)
            if value is None:
                continue
            if field in SECONDS_TO_MS_FIELDS:
                value = value / 1000.0
            gauge.labels(*labels).set(value)

    def remove_worker(self, worker_id: str, worker_type: str) -> None:
        """Stop publishing a worker's gauges."""
        labels = (worker_id, worker_type, self.model_name, self.namespace)
        with self._lock:
            self._workers.discard((worker_id, worker_type))
        for gauge in self._gauges.values():
            try:
                gauge.remove(*labels)
            except KeyError:
                continue

    def set_workers(self, loads: list[WorkerLoad]) -> None:
        """Publish exactly these workers, removing the others."""
        keep = {(w.worker_id, w.worker_type) for w in loads}
        with self._lock:
            stale = self._workers - keep
        for worker_id, worker_type in stale:
            self.remove_worker(worker_id, worker_type)
        for load in loads:
            self.set_worker(load)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    def serve(self, port: int = 0, addr: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` over HTTP in a daemon thread.

        Args:
            port: The port; 0 picks a free one.
            addr: The address to listen on.

        Returns:
            The port listened on.
        """
        return self._http.start(port, addr)

    @property
    def port(self) -> int | None:
        """The port served, or ``None`` when not serving."""
        return self._http.port

    def close(self) -> None:
        """Stop serving (the metrics keep their values)."""
        self._http.close()
