"""Per-worker load straight from the frontend/router ``/metrics`` (spec §4.1, §4.2).

:class:`RouterMetricSource` scrapes the router's Prometheus text every
``interval_s / num_samples`` seconds into a rolling buffer of the last ``num_samples``
scrapes, and offers the three read views of the reference's snapshot B for each
``worker_type`` (:meth:`RouterMetricSource.views`):

* ``recent``: the workers of the last scrape;
* ``per_worker``: each worker's metrics averaged over the scrapes it appeared in;
* ``cluster``: one average per metric over every scrape and worker (sum of all values over
  their count).

:meth:`RouterMetricSource.fetch` also turns the frontend's cumulative histograms into an
interval's traffic, as differences between two scrapes (the first fetch is the baseline and
reports unknown traffic), so the router alone can feed the throughput planner too. The
request counter as every background scrape saw it since the previous fetch gives the
arrivals' index of dispersion (:func:`~dynamo_planner.sources.dispersion.index_of_dispersion`,
unknown with fewer than ten scrapes or scrapes more than two seconds apart), as the
Prometheus source reads it from Prometheus.

The text is parsed with ``prometheus_client``'s parser; text it cannot parse raises
:class:`~dynamo_planner.exceptions.MalformedMetricsError`.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs
import httpx
from prometheus_client.parser import text_string_to_metric_families

from dynamo_planner.exceptions import MalformedMetricsError, MetricSourceError
from dynamo_planner.sources._names import (
    DEFAULT_PREFIX,
    HISTOGRAMS,
    REQUESTS_TOTAL,
    SECONDS_TO_MS_FIELDS,
    WORKER_GAUGES,
)
from dynamo_planner.sources.dispersion import index_of_dispersion
from dynamo_planner.values import Observation, Sample, WorkerLoad

if TYPE_CHECKING:
    from dynamo_planner.config import PlannerConfig

__all__ = [
    "RouterMetricSource",
    "RouterSample",
    "RouterViews",
    "SampleBuffer",
    "parse_router_metrics",
    "traffic_between",
]

logger = logging.getLogger(__name__)

_SOURCE = "router"
_LOAD_FIELDS = tuple(WORKER_GAUGES)
UNKNOWN_WORKER = "unknown"
"""``worker_id`` / ``worker_type`` of series that lack the label."""
MAX_COUNTER_SAMPLES = 10_000
"""Request-counter samples kept between fetches (an hour and more at two a second)."""


def _frozen(mapping: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(mapping))


@attrs.frozen(kw_only=True)
class RouterSample:
    """One scrape of the router's ``/metrics``.

    Attributes:
        timestamp_s: When it was taken (wall clock).
        workers: One :class:`~dynamo_planner.values.WorkerLoad` per
            ``(worker_type, worker_id)``.
        totals: Cumulative frontend counters summed over matching series:
            ``<field>_sum`` and ``<field>_count`` per histogram, and ``num_req``.
    """

    timestamp_s: float = 0.0
    workers: tuple[WorkerLoad, ...] = ()
    totals: Mapping[str, float] = attrs.field(converter=_frozen, factory=dict)


def _matches(
    labels: Mapping[str, str], model_name: str | None, namespace: str | None
) -> bool:
    model = labels.get("model")
    if (
        model_name is not None
        and model is not None
        and model.lower() != model_name.lower()
    ):
        return False
    label_ns = labels.get("dynamo_namespace")
    return namespace is None or label_ns is None or label_ns == namespace


def parse_router_metrics(
    text: str,
    *,
    prefix: str = DEFAULT_PREFIX,
    model_name: str | None = None,
    namespace: str | None = None,
    timestamp_s: float = 0.0,
) -> RouterSample:
    """Parse the router's Prometheus text into per-worker loads and traffic totals.

    Series are grouped by ``(worker_type, worker_id)``; a missing label reads
    ``"unknown"``. With ``model_name`` (compared case-insensitively) or ``namespace``,
    series labelled with another model or ``dynamo_namespace`` are left out (snapshot A's
    filter); series without those labels are kept.

    Raises:
        MalformedMetricsError: The text is not valid Prometheus exposition format.
    """
    gauge_of = {f"{prefix}_{suffix}": field for field, suffix in WORKER_GAUGES.items()}
    total_of = {}
    for field, suffix in HISTOGRAMS.items():
        total_of[f"{prefix}_{suffix}_sum"] = f"{field}_sum"
        total_of[f"{prefix}_{suffix}_count"] = f"{field}_count"
    total_of[f"{prefix}_{REQUESTS_TOTAL}"] = "num_req"
    workers: dict[tuple[str, str], dict[str, float]] = {}
    totals: dict[str, float] = {}
    try:
        families = list(text_string_to_metric_families(text))
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise MalformedMetricsError(
            f"cannot parse the metrics text: {exc}", source=_SOURCE
        ) from exc
    for family in families:
        for sample in family.samples:
            name = sample.name
            if name not in gauge_of and name not in total_of:
                continue
            if not _matches(sample.labels, model_name, namespace):
                continue
            value = float(sample.value)
            if name in total_of:
                key = total_of[name]
                totals[key] = totals.get(key, 0.0) + value
                continue
            field = gauge_of[name]
            if field in SECONDS_TO_MS_FIELDS:
                value *= 1000.0
            worker = (
                sample.labels.get("worker_type") or UNKNOWN_WORKER,
                sample.labels.get("worker_id") or UNKNOWN_WORKER,
            )
            workers.setdefault(worker, {})[field] = value
    loads = tuple(
        WorkerLoad(worker_id=worker_id, worker_type=worker_type, **fields)
        for (worker_type, worker_id), fields in sorted(workers.items())
    )
    return RouterSample(timestamp_s=timestamp_s, workers=loads, totals=totals)


@attrs.frozen(kw_only=True)
class RouterViews:
    """The three read views of the sampling buffer for one ``worker_type``.

    Attributes:
        recent: The workers of the last scrape.
        per_worker: Each worker's metrics averaged over the scrapes it appeared in.
        cluster: One average per metric over every scrape and worker (``worker_id``
            ``"*"``); ``None`` where no value was seen.
    """

    recent: tuple[WorkerLoad, ...]
    per_worker: tuple[WorkerLoad, ...]
    cluster: WorkerLoad


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _average(
    loads: Iterable[WorkerLoad], worker_id: str, worker_type: str
) -> WorkerLoad:
    seen: dict[str, list[float]] = {field: [] for field in _LOAD_FIELDS}
    for load in loads:
        for field in _LOAD_FIELDS:
            value = getattr(load, field)
            if value is not None:
                seen[field].append(value)
    fields: dict[str, Any] = {field: _mean(values) for field, values in seen.items()}
    return WorkerLoad(worker_id=worker_id, worker_type=worker_type, **fields)


class SampleBuffer:
    """The last ``maxlen`` scrapes, with the reference's read views.

    Args:
        maxlen: Scrapes kept (``--loadbased-metric-samples``).
    """

    def __init__(self, maxlen: int = 10) -> None:
        if maxlen < 1:
            msg = f"maxlen must be at least 1, got {maxlen}"
            raise ValueError(msg)
        self._samples: deque[tuple[WorkerLoad, ...]] = deque(maxlen=maxlen)

    def __len__(self) -> int:
        return len(self._samples)

    def append(self, workers: Sequence[WorkerLoad]) -> None:
        """Add one scrape's workers."""
        self._samples.append(tuple(workers))

    def clear(self) -> None:
        """Forget every scrape."""
        self._samples.clear()

    def averaged(self) -> tuple[WorkerLoad, ...] | None:
        """Per-worker means over the buffer, all worker types (snapshot A's view).

        Returns:
            One load per ``(worker_type, worker_id)``, or ``None`` when empty.
        """
        if not self._samples:
            return None
        by_worker: dict[tuple[str, str], list[WorkerLoad]] = {}
        for sample in self._samples:
            for load in sample:
                by_worker.setdefault((load.worker_type, load.worker_id), []).append(
                    load
                )
        return tuple(
            _average(loads, worker_id, worker_type)
            for (worker_type, worker_id), loads in sorted(by_worker.items())
        )

    def views(self, worker_type: str) -> RouterViews | None:
        """Recent, per-worker-averaged and cluster-averaged loads of one worker type.

        Returns:
            The views, or ``None`` when the buffer is empty.
        """
        if not self._samples:
            return None
        samples = [
            tuple(w for w in sample if w.worker_type == worker_type)
            for sample in self._samples
        ]
        by_worker: dict[str, list[WorkerLoad]] = {}
        for sample in samples:
            for load in sample:
                by_worker.setdefault(load.worker_id, []).append(load)
        per_worker = tuple(
            _average(loads, worker_id, worker_type)
            for worker_id, loads in sorted(by_worker.items())
        )
        cluster = _average(
            (load for sample in samples for load in sample), "*", worker_type
        )
        return RouterViews(recent=samples[-1], per_worker=per_worker, cluster=cluster)


def _delta(
    before: Mapping[str, float], after: Mapping[str, float], key: str
) -> float | None:
    if key not in after:
        return None
    now = after[key]
    then = before.get(key)
    if then is None:
        return None
    # A counter that went down was reset: count from zero, as Prometheus does.
    return now - then if now >= then else now


def traffic_between(
    before: RouterSample, after: RouterSample, interval_s: float
) -> Observation:
    """An interval's traffic from two scrapes' cumulative totals.

    Averages are Δsum / Δcount of each histogram (unknown when Δcount is 0); the request
    count is Δ``requests_total`` (zero when nothing arrived, unknown when the counter is
    missing).
    """
    values: dict[str, float | None] = {}
    for field in HISTOGRAMS:
        total = _delta(before.totals, after.totals, f"{field}_sum")
        count = _delta(before.totals, after.totals, f"{field}_count")
        if total is None or count is None or count <= 0:
            values[field] = None
            continue
        mean = total / count
        values[field] = mean * 1000.0 if field in SECONDS_TO_MS_FIELDS else mean
    return Observation(
        timestamp_s=after.timestamp_s,
        interval_s=interval_s,
        num_req=Sample.of(_delta(before.totals, after.totals, "num_req")),
        isl_tokens=Sample.of(values["isl_tokens"]),
        osl_tokens=Sample.of(values["osl_tokens"]),
        ttft_ms=Sample.of(values["ttft_ms"]),
        itl_ms=Sample.of(values["itl_ms"]),
        request_duration_s=Sample.of(values["request_duration_s"]),
        workers=after.workers,
    )


@attrs.define(kw_only=True)
class RouterMetricSource:
    """Samples the router's ``/metrics`` and reports per-worker load (spec §4.2).

    Args:
        url: The router's metrics URL (``--loadbased-router-metrics-url``).
        interval_s: The load-based interval; the buffer is sampled every
            ``interval_s / num_samples`` seconds.
        num_samples: Scrapes kept in the buffer.
        timeout_s: HTTP timeout of one scrape (the reference uses 2 s).
        model_name: Keep only series of this model, where labelled (case-insensitive).
        namespace: Keep only series of this ``dynamo_namespace``, where labelled.
        metric_prefix: The frontend's metric prefix (``DYN_METRICS_PREFIX``).
        verify_tls: Verify the router's TLS certificate.
        clock: Wall-clock seconds for timestamps.

    .. versionadded:: 0.1.0
    """

    url: str
    interval_s: float = attrs.field(default=5.0, validator=attrs.validators.gt(0))
    num_samples: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    timeout_s: float = attrs.field(default=2.0, validator=attrs.validators.gt(0))
    model_name: str | None = None
    namespace: str | None = None
    metric_prefix: str = DEFAULT_PREFIX
    verify_tls: bool | str = True
    clock: Any = time.time
    buffer: SampleBuffer = attrs.field(init=False)
    scrape_errors_total: int = attrs.field(init=False, default=0)
    """Failed background scrapes so far (each is logged)."""
    _client: httpx.AsyncClient | None = attrs.field(init=False, default=None)
    _task: asyncio.Task[None] | None = attrs.field(init=False, default=None)
    _baseline: RouterSample | None = attrs.field(init=False, default=None)
    _counter: deque[tuple[float, float]] = attrs.field(
        init=False, factory=lambda: deque(maxlen=MAX_COUNTER_SAMPLES)
    )

    @buffer.default
    def _buffer(self) -> SampleBuffer:
        return SampleBuffer(self.num_samples)

    @classmethod
    def from_config(cls, config: PlannerConfig, **kwargs: Any) -> RouterMetricSource:
        """Build from the planner configuration; keyword arguments override it.

        Raises:
            ConfigError: No router URL is configured or given.
        """
        from dynamo_planner.exceptions import ConfigError

        options: dict[str, Any] = {
            "url": config.loadbased_router_metrics_url,
            "interval_s": config.loadbased_adjustment_interval_s,
            "num_samples": config.loadbased_metric_samples,
            "timeout_s": min(2.0, config.metric_timeout_s),
            "model_name": config.model_name,
            "namespace": config.namespace,
        }
        options.update(kwargs)
        if not options.get("url"):
            raise ConfigError(
                "the router source needs the router's /metrics URL",
                field="loadbased_router_metrics_url",
            )
        return cls(**options)

    @property
    def sample_period_s(self) -> float:
        """Seconds between background scrapes."""
        return self.interval_s / self.num_samples

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                verify=self.verify_tls, timeout=httpx.Timeout(self.timeout_s)
            )
        return self._client

    async def scrape(self) -> RouterSample:
        """Scrape and parse the metrics once.

        Raises:
            MetricSourceError: The router could not be reached or answered an error.
            MalformedMetricsError: The text could not be parsed.
        """
        try:
            response = await self._http().get(self.url)
        except httpx.HTTPError as exc:
            raise MetricSourceError(
                f"{self.url}: {type(exc).__name__}: {exc}", source=_SOURCE
            ) from exc
        if response.status_code != 200:
            raise MetricSourceError(
                f"{self.url} answered HTTP {response.status_code}", source=_SOURCE
            )
        return parse_router_metrics(
            response.text,
            prefix=self.metric_prefix,
            model_name=self.model_name,
            namespace=self.namespace,
            timestamp_s=float(self.clock()),
        )

    async def sample_once(self) -> bool:
        """One background scrape into the buffer; failures are logged and counted.

        Returns:
            True when a non-empty scrape was added.
        """
        try:
            sample = await self.scrape()
        except MetricSourceError as exc:
            self.scrape_errors_total += 1
            logger.warning("router scrape failed: %s", exc)
            return False
        self._count(sample)
        if not sample.workers:
            return False
        self.buffer.append(sample.workers)
        return True

    async def _sample_forever(self) -> None:
        while True:
            await self.sample_once()
            await asyncio.sleep(self.sample_period_s)

    def start(self) -> None:
        """Start background sampling (idempotent; needs a running event loop)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._sample_forever(), name="router-metrics-sampler"
            )

    @property
    def sampling(self) -> bool:
        """True while background sampling runs."""
        return self._task is not None and not self._task.done()

    def views(self, worker_type: str) -> RouterViews | None:
        """The buffer's recent / per-worker / cluster views (``None`` when empty)."""
        return self.buffer.views(worker_type)

    def averaged(self) -> tuple[WorkerLoad, ...] | None:
        """Per-worker means over the buffer (``None`` when empty)."""
        return self.buffer.averaged()

    async def fetch(self, interval_s: float) -> Observation:
        """Traffic since the previous fetch, and the workers seen now.

        Starts background sampling on first use. The first call is the baseline: its
        traffic is unknown.

        Raises:
            MetricSourceError: The router could not be reached.
            MalformedMetricsError: The text could not be parsed.
        """
        self.start()
        sample = await self.scrape()
        self._count(sample)
        if sample.workers:
            self.buffer.append(sample.workers)
        baseline, self._baseline = self._baseline, sample
        # the counter as the scrapes since the previous fetch saw it; the last one
        # starts the next interval
        counter = [s for s in self._counter if s[0] <= sample.timestamp_s]
        self._counter.clear()
        self._counter.extend(counter[-1:])
        if baseline is None:
            return Observation(
                timestamp_s=sample.timestamp_s,
                interval_s=interval_s,
                workers=sample.workers,
            )
        return attrs.evolve(
            traffic_between(baseline, sample, interval_s),
            arrival_dispersion=index_of_dispersion([counter]),
        )

    def _count(self, sample: RouterSample) -> None:
        """Keep the request counter's value at this scrape, for the dispersion."""
        value = sample.totals.get("num_req")
        if value is not None:
            self._counter.append((sample.timestamp_s, value))

    async def aclose(self) -> None:
        """Stop sampling and close the HTTP client."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
