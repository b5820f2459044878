"""Traffic from Prometheus: the frontend histograms queried over one interval (spec §5).

For an interval of ``W`` seconds the source runs, at one evaluation instant::

    increase(dynamo_frontend_<m>_sum[W]) / increase(dynamo_frontend_<m>_count[W])
    increase(dynamo_frontend_requests_total[W])
    increase(dynamo_frontend_<latency>_bucket[W])

keeps the series of the planner's model (case-insensitive) and Dynamo namespace, and
reduces them: averages are the unweighted mean over matching series, the request count is
their sum, and the TTFT and ITL buckets are summed per ``le`` bound into
``Observation.ttft_histogram_ms`` and ``itl_histogram_ms`` (bounds in milliseconds), from
which the ``sla`` scaler counts the requests that missed a target, and the input and output
length buckets into ``isl_histogram_tokens`` and ``osl_histogram_tokens`` (bounds in
tokens), from which it draws its request mix. A bucket series without
a numeric ``le`` label is logged as a warning naming the query and the label, and that
histogram is left empty (unknown); the rest of the observation is kept.

Unknown is not zero. Where the reference reports 0 for "no data", this source reports
:meth:`~dynamo_planner.values.Sample.unknown`:

* no series at all, or none for this model and namespace: unknown;
* the request count summed to 0 over existing series: :attr:`~dynamo_planner.values.Status.ZERO`;
* an average whose every matching series is NaN (``0/0``: no request in the window): unknown.
  A NaN series next to finite ones carries no information and is left out of the mean.

Failures are errors, not values: Prometheus unreachable after the retries raises
:class:`~dynamo_planner.exceptions.MetricSourceError`, an answer that is not a Prometheus
vector raises :class:`~dynamo_planner.exceptions.MalformedMetricsError`.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs
import httpx

from dynamo_planner.exceptions import MalformedMetricsError, MetricSourceError
from dynamo_planner.sources._names import (
    DEFAULT_PREFIX,
    HISTOGRAMS,
    REQUESTS_TOTAL,
    SECONDS_TO_MS_FIELDS,
)
from dynamo_planner.values import Observation, Sample

if TYPE_CHECKING:
    from dynamo_planner.config import PlannerConfig

__all__ = [
    "PromSeries",
    "PrometheusMetricSource",
    "buckets_of_series",
    "filter_series",
    "mean_of_series",
    "parse_vector",
    "sum_of_series",
]

logger = logging.getLogger(__name__)

_SOURCE = "prometheus"


def _frozen_labels(labels: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(labels))


@attrs.frozen
class PromSeries:
    """One series of an instant-vector answer.

    Attributes:
        labels: The series' labels.
        value: Its value (NaN and infinities kept as floats).
    """

    labels: Mapping[str, str] = attrs.field(converter=_frozen_labels)
    value: float


def _series_of(item: Any) -> PromSeries | None:
    """One result item, or ``None`` when its shape is wrong."""
    if not isinstance(item, Mapping):
        return None
    metric = item.get("metric")
    value = item.get("value")
    if not isinstance(metric, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metric.items()
    ):
        return None
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        return None
    stamp, raw = value
    if not isinstance(stamp, int | float) or isinstance(stamp, bool):
        return None
    if not isinstance(raw, str):
        return None
    try:
        number = float(raw)  # Prometheus sends "NaN", "+Inf", "-Inf" as strings.
    except ValueError:
        return None
    return PromSeries(metric, number)


def parse_vector(answer: Any, *, query: str = "") -> tuple[list[PromSeries], int]:
    """Parse a Prometheus ``/api/v1/query`` answer holding an instant vector.

    Args:
        answer: The decoded JSON document (or the raw text / bytes of it).
        query: The query, named in errors.

    Returns:
        The well-formed series and the number of malformed series skipped. A ``null``
        result is an empty vector.

    Raises:
        MalformedMetricsError: The answer is not JSON, reports an error, or is not a
            vector.
    """
    where = f"query {query!r}: " if query else ""
    if isinstance(answer, bytes | str):
        try:
            answer = json.loads(answer)
        except ValueError as exc:
            raise MalformedMetricsError(
                f"{where}answer is not JSON ({exc})", source=_SOURCE
            ) from exc
    if not isinstance(answer, Mapping):
        raise MalformedMetricsError(
            f"{where}answer is a {type(answer).__name__}, not a JSON object",
            source=_SOURCE,
        )
    status = answer.get("status")
    if status != "success":
        detail = answer.get("error") or answer.get("errorType") or status
        raise MalformedMetricsError(
            f"{where}Prometheus answered status {status!r}: {detail}", source=_SOURCE
        )
    data = answer.get("data")
    if not isinstance(data, Mapping):
        raise MalformedMetricsError(
            f"{where}answer has no 'data' object", source=_SOURCE
        )
    result_type = data.get("resultType")
    if result_type != "vector":
        raise MalformedMetricsError(
            f"{where}expected resultType 'vector', got {result_type!r}", source=_SOURCE
        )
    result = data.get("result")
    if result is None:
        return [], 0
    if not isinstance(result, list):
        raise MalformedMetricsError(
            f"{where}'data.result' is a {type(result).__name__}, not a list",
            source=_SOURCE,
        )
    series: list[PromSeries] = []
    skipped = 0
    for item in result:
        parsed = _series_of(item)
        if parsed is None:
            skipped += 1
            logger.debug("%sskipping malformed series %r", where, item)
        else:
            series.append(parsed)
    return series, skipped


def filter_series(
    series: Iterable[PromSeries],
    *,
    model_name: str,
    namespace: str,
    require_namespace_label: bool = False,
) -> list[PromSeries]:
    """Keep the series of one model in one Dynamo namespace.

    The ``model`` label is compared case-insensitively (the frontend lower-cases it). A
    series whose ``dynamo_namespace`` label names another namespace is dropped. A series
    without the label at all is kept unless ``require_namespace_label``: some frontends do
    not put the label on every metric (upstream PR #6725, #13143), and dropping those series
    would make the planner see no traffic at all.

    Args:
        series: The series to filter.
        model_name: The served model name.
        namespace: The Dynamo namespace (``--namespace``).
        require_namespace_label: Drop series that have no ``dynamo_namespace`` label.

    Returns:
        The matching series, in order.
    """
    model = model_name.lower()
    kept = []
    for s in series:
        if s.labels.get("model", "").lower() != model:
            continue
        label = s.labels.get("dynamo_namespace")
        if label is None and require_namespace_label:
            continue
        if label is not None and label != namespace:
            continue
        kept.append(s)
    return kept


def mean_of_series(series: Iterable[PromSeries]) -> float | None:
    """Unweighted mean of the finite values, or ``None`` when there is none."""
    values = [s.value for s in series if math.isfinite(s.value)]
    if not values:
        return None
    return math.fsum(values) / len(values)


def sum_of_series(series: Iterable[PromSeries]) -> float | None:
    """Sum of the finite values, or ``None`` when there is none."""
    values = [s.value for s in series if math.isfinite(s.value)]
    if not values:
        return None
    return math.fsum(values)


_BUCKETED = {
    "ttft_histogram_ms": ("ttft_ms", 1000.0),
    "itl_histogram_ms": ("itl_ms", 1000.0),
    "isl_histogram_tokens": ("isl_tokens", 1.0),
    "osl_histogram_tokens": ("osl_tokens", 1.0),
}
"""Observation histogram field → the metric whose buckets fill it, and the factor from
the metric's unit to the field's (seconds to milliseconds; tokens stay tokens)."""


def buckets_of_series(
    series: Iterable[PromSeries], *, query: str = "", scale: float = 1000.0
) -> tuple[tuple[float, float], ...]:
    """Cumulative ``(le x scale, count)`` buckets summed over series, by ``le`` label.

    Series with a non-finite value (no observation in the window) are left out; with
    none left the histogram is empty (unknown).

    Args:
        series: The bucket series of one histogram.
        query: The query that gave them, for errors.
        scale: Factor from the ``le`` unit to the histogram's (1000: seconds to ms).

    Raises:
        MalformedMetricsError: A series has no ``le`` label or one that is not a number.
    """
    where = f"query {query!r}: " if query else ""
    totals: dict[float, float] = {}
    for s in series:
        raw = s.labels.get("le")
        try:
            bound = float(raw) if raw is not None else math.nan
        except ValueError:
            bound = math.nan
        if math.isnan(bound):
            raise MalformedMetricsError(
                f"{where}a bucket series has le={raw!r}, not a bound", source=_SOURCE
            )
        if math.isfinite(s.value):
            key = bound * scale
            totals[key] = totals.get(key, 0.0) + max(0.0, s.value)
    return tuple(sorted(totals.items()))


def _window(interval_s: float) -> str:
    """A PromQL range for ``interval_s`` seconds (``180s``, or ``2500ms``)."""
    if interval_s <= 0 or not math.isfinite(interval_s):
        msg = f"interval_s must be positive and finite, got {interval_s!r}"
        raise ValueError(msg)
    if float(interval_s).is_integer():
        return f"{int(interval_s)}s"
    return f"{round(interval_s * 1000)}ms"


def _retryable_status(code: int) -> bool:
    return code >= 500 or code == 429


@attrs.define(kw_only=True)
class PrometheusMetricSource:
    """Measures an interval's traffic with the PromQL of spec §5.

    Args:
        endpoint: Prometheus' base URL (``http://host:9090``).
        model_name: The served model whose series count (case-insensitive).
        namespace: The Dynamo namespace (``dynamo_namespace`` label).
        verify_tls: Verify the server's TLS certificate. On by default; the reference
            turns it off. A path to a CA bundle is accepted too.
        timeout_s: Timeout of one HTTP request.
        retries: Further attempts after a failed request (connection error, timeout,
            HTTP 5xx or 429).
        backoff_s: Sleep before the first retry; doubled for each further one.
        metric_prefix: The frontend's metric prefix (``DYN_METRICS_PREFIX``).
        require_namespace_label: Drop series without a ``dynamo_namespace`` label (see
            :func:`filter_series`).
        clock: Wall-clock seconds for the evaluation instant (``time.time``).

    .. versionadded:: 0.1.0
    """

    endpoint: str
    model_name: str
    namespace: str = "dynamo"
    verify_tls: bool | str = True
    timeout_s: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    retries: int = attrs.field(default=2, validator=attrs.validators.ge(0))
    backoff_s: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    metric_prefix: str = DEFAULT_PREFIX
    require_namespace_label: bool = False
    clock: Any = time.time
    _client: httpx.AsyncClient | None = attrs.field(default=None, init=False)
    malformed_series_total: int = attrs.field(default=0, init=False)
    """Malformed series skipped so far (each is also logged at debug level)."""

    @classmethod
    def from_config(
        cls, config: PlannerConfig, **kwargs: Any
    ) -> PrometheusMetricSource:
        """Build from the planner configuration; keyword arguments override it.

        Raises:
            ConfigError: No model name is configured or given.
        """
        from dynamo_planner.exceptions import ConfigError

        options: dict[str, Any] = {
            "endpoint": config.metric_pulling_prometheus_endpoint,
            "model_name": config.model_name,
            "namespace": config.namespace,
            "verify_tls": config.prometheus_verify_tls,
            "timeout_s": config.metric_timeout_s,
        }
        options.update(kwargs)
        if not options.get("model_name"):
            raise ConfigError(
                "the Prometheus source needs the served model name "
                "(--model-name, or read from the deployment)",
                field="model_name",
            )
        return cls(**options)

    @property
    def base_url(self) -> str:
        """The endpoint without a trailing slash."""
        return self.endpoint.rstrip("/")

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                verify=self.verify_tls, timeout=httpx.Timeout(self.timeout_s)
            )
        return self._client

    async def query(
        self, promql: str, *, at_s: float | None = None
    ) -> list[PromSeries]:
        """Run one instant query, with retries.

        Args:
            promql: The query.
            at_s: Evaluation time (Unix seconds); Prometheus' "now" if ``None``.

        Returns:
            The well-formed series of the answer.

        Raises:
            MetricSourceError: Prometheus was unreachable or failed after the retries,
                or rejected the query.
            MalformedMetricsError: The answer was not a Prometheus vector.
        """
        params: dict[str, str] = {"query": promql}
        if at_s is not None:
            params["time"] = f"{at_s:.3f}"
        url = f"{self.base_url}/api/v1/query"
        attempts = self.retries + 1
        last_error = ""
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = await self._http().get(url, params=params)
            except httpx.HTTPError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                logger.debug(
                    "Prometheus %s attempt %d: %s", url, attempt + 1, last_error
                )
                continue
            if _retryable_status(response.status_code):
                last_error = f"HTTP {response.status_code}"
                logger.debug(
                    "Prometheus %s attempt %d: %s", url, attempt + 1, last_error
                )
                continue
            if response.status_code >= 400 and response.status_code not in (400, 422):
                raise MetricSourceError(
                    f"{url} answered HTTP {response.status_code} to {promql!r}",
                    source=_SOURCE,
                )
            series, skipped = parse_vector(response.content, query=promql)
            if skipped:
                self.malformed_series_total += skipped
                logger.warning(
                    "query %r: skipped %d malformed series of %d",
                    promql,
                    skipped,
                    skipped + len(series),
                )
            return series
        raise MetricSourceError(
            f"{url} failed {attempts} time(s) for {promql!r}; last error: {last_error}",
            source=_SOURCE,
        )

    def queries(self, interval_s: float) -> dict[str, str]:
        """The PromQL run for an interval: Observation field → query."""
        window = _window(interval_s)
        p = self.metric_prefix
        out = {
            field: f"increase({p}_{suffix}_sum[{window}]) / "
            f"increase({p}_{suffix}_count[{window}])"
            for field, suffix in HISTOGRAMS.items()
        }
        out["num_req"] = f"increase({p}_{REQUESTS_TOTAL}[{window}])"
        for field, (metric, _) in _BUCKETED.items():
            out[field] = f"increase({p}_{HISTOGRAMS[metric]}_bucket[{window}])"
        return out

    async def fetch(self, interval_s: float) -> Observation:
        """Measure the last ``interval_s`` seconds of traffic.

        Raises:
            MetricSourceError: Prometheus was unreachable (after retries).
            MalformedMetricsError: An answer could not be understood.
        """
        now_s = float(self.clock())
        queries = self.queries(interval_s)
        names = list(queries)
        answers = await asyncio.gather(
            *(self.query(queries[n], at_s=now_s) for n in names)
        )
        values: dict[str, Sample] = {}
        buckets: dict[str, tuple[tuple[float, float], ...]] = {}
        for name, series in zip(names, answers, strict=True):
            matching = filter_series(
                series,
                model_name=self.model_name,
                namespace=self.namespace,
                require_namespace_label=self.require_namespace_label,
            )
            if series and not matching:
                logger.debug(
                    "%s: %d series, none for model %r in namespace %r",
                    name,
                    len(series),
                    self.model_name,
                    self.namespace,
                )
            if name in _BUCKETED:
                try:
                    buckets[name] = buckets_of_series(
                        matching, query=queries[name], scale=_BUCKETED[name][1]
                    )
                except MalformedMetricsError as exc:
                    # the buckets only refine the sla scaler's mix and feedback: keep
                    # the rest
                    logger.warning("%s; %s is left unknown", exc, name)
                    buckets[name] = ()
                continue
            if name == "num_req":
                value = sum_of_series(matching)
            else:
                value = mean_of_series(matching)
                if value is not None and name in SECONDS_TO_MS_FIELDS:
                    value *= 1000.0
            values[name] = Sample.of(value)
        return Observation(
            timestamp_s=now_s,
            interval_s=interval_s,
            num_req=values["num_req"],
            isl_tokens=values["isl_tokens"],
            osl_tokens=values["osl_tokens"],
            ttft_ms=values["ttft_ms"],
            itl_ms=values["itl_ms"],
            request_duration_s=values["request_duration_s"],
            ttft_histogram_ms=buckets["ttft_histogram_ms"],
            itl_histogram_ms=buckets["itl_histogram_ms"],
            isl_histogram_tokens=buckets["isl_histogram_tokens"],
            osl_histogram_tokens=buckets["osl_histogram_tokens"],
        )

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
