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

The request counter's raw samples over the interval
(``dynamo_frontend_requests_total{model=~"(?i)<model>"}[W]``, a range vector of the
model's series only, since raw samples are many) give the arrivals' index of dispersion
at the scrape interval (:func:`~dynamo_planner.sources.dispersion.index_of_dispersion`),
the ``Ca²`` of the ``sla`` scaler's prefill queue: ``Observation.arrival_dispersion``. It is unknown when the
counter was scraped fewer than ten times in the interval or more than two seconds apart
(:data:`~dynamo_planner.sources.dispersion.MAX_SCRAPE_S`), or when that answer cannot be
read (logged as a warning; the rest of the observation is kept).

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs
import httpx

from dynamo_planner.exceptions import MalformedMetricsError, MetricSourceError
from dynamo_planner.sources._names import (
    DEFAULT_PREFIX,
    HISTOGRAMS,
    REQUESTS_TOTAL,
    SECONDS_TO_MS_FIELDS,
)
from dynamo_planner.sources.dispersion import index_of_dispersion
from dynamo_planner.values import Observation, Sample

if TYPE_CHECKING:
    from dynamo_planner.config import PlannerConfig

__all__ = [
    "PromRange",
    "PromSeries",
    "PrometheusMetricSource",
    "buckets_of_series",
    "filter_series",
    "mean_of_series",
    "parse_matrix",
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


@attrs.frozen
class PromRange:
    """One series of a range-vector answer: its raw samples over the range.

    Attributes:
        labels: The series' labels.
        samples: ``(time_s, value)`` pairs, in time order.
    """

    labels: Mapping[str, str] = attrs.field(converter=_frozen_labels)
    samples: tuple[tuple[float, float], ...]


def _labels_of(item: Any) -> Mapping[str, str] | None:
    """A result item's labels, or ``None`` when it has none or they are not strings."""
    if not isinstance(item, Mapping):
        return None
    metric = item.get("metric")
    if not isinstance(metric, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metric.items()
    ):
        return None
    return metric


def _point_of(value: Any) -> tuple[float, float] | None:
    """One ``[time, "value"]`` pair, or ``None`` when its shape is wrong."""
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
    return float(stamp), number


def _series_of(item: Any) -> PromSeries | None:
    """One instant-vector item, or ``None`` when its shape is wrong."""
    metric = _labels_of(item)
    point = _point_of(item.get("value")) if metric is not None else None
    if metric is None or point is None:
        return None
    return PromSeries(metric, point[1])


def _range_of(item: Any) -> PromRange | None:
    """One range-vector item, or ``None`` when its shape is wrong."""
    metric = _labels_of(item)
    values = item.get("values") if metric is not None else None
    if metric is None or not isinstance(values, list):
        return None
    points = [_point_of(v) for v in values]
    if any(p is None for p in points):
        return None
    return PromRange(metric, tuple(p for p in points if p is not None))


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
    return _parse(answer, query, "vector", _series_of)


def parse_matrix(answer: Any, *, query: str = "") -> tuple[list[PromRange], int]:
    """Parse a Prometheus ``/api/v1/query`` answer holding a range vector.

    Args:
        answer: The decoded JSON document (or the raw text / bytes of it).
        query: The query, named in errors.

    Returns:
        The well-formed series and the number of malformed series skipped (a series
        with any malformed sample is skipped whole). A ``null`` result is empty.

    Raises:
        MalformedMetricsError: The answer is not JSON, reports an error, or is not a
            range vector (``resultType`` ``"matrix"``).
    """
    return _parse(answer, query, "matrix", _range_of)


_Item = TypeVar("_Item")


def _parse(
    answer: Any, query: str, result_type: str, item: Callable[[Any], _Item | None]
) -> tuple[list[_Item], int]:
    """The items of an answer of ``result_type``, and how many were malformed."""
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
    found_type = data.get("resultType")
    if found_type != result_type:
        raise MalformedMetricsError(
            f"{where}expected resultType {result_type!r}, got {found_type!r}",
            source=_SOURCE,
        )
    result = data.get("result")
    if result is None:
        return [], 0
    if not isinstance(result, list):
        raise MalformedMetricsError(
            f"{where}'data.result' is a {type(result).__name__}, not a list",
            source=_SOURCE,
        )
    series: list[_Item] = []
    skipped = 0
    for raw in result:
        parsed = item(raw)
        if parsed is None:
            skipped += 1
            logger.debug("%sskipping malformed series %r", where, raw)
        else:
            series.append(parsed)
    return series, skipped


class _Labelled(Protocol):
    @property
    def labels(self) -> Mapping[str, str]: ...


_Series = TypeVar("_Series", bound=_Labelled)


def filter_series(
    series: Iterable[_Series],
    *,
    model_name: str,
    namespace: str,
    require_namespace_label: bool = False,
) -> list[_Series]:
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


_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def _model_pattern(model_name: str) -> str:
    r"""A PromQL string literal of a regex matching ``model_name`` in any case.

    Only the characters special to RE2, Prometheus' regex syntax, are escaped (RE2
    refuses some escapes that Python's ``re.escape`` writes, such as of a space), then
    the string is quoted for PromQL.

    >>> print(_model_pattern('Meta-Llama/Llama-3.1 8B'))
    "(?i)Meta-Llama/Llama-3\\.1 8B"
    """
    escaped = "".join("\\" + c if c in _RE2_SPECIAL else c for c in model_name)
    text = "(?i)" + escaped
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


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
        measure_dispersion: Measure the arrivals' index of dispersion from the request
            counter's samples (one more query per interval); off, it is unknown.
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
    measure_dispersion: bool = True
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
            "measure_dispersion": config.prometheus_arrival_dispersion,
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
        content = await self._answer(promql, at_s)
        return self._counted(promql, *parse_vector(content, query=promql))

    async def query_range_vector(
        self, promql: str, *, at_s: float | None = None
    ) -> list[PromRange]:
        """As :meth:`query`, for a range vector (``metric[60s]``).

        Returns:
            The well-formed series of the answer, with their raw samples.

        Raises:
            MalformedMetricsError: The answer was not a Prometheus range vector (and
                :class:`~dynamo_planner.exceptions.MetricSourceError` as :meth:`query`).
        """
        content = await self._answer(promql, at_s)
        return self._counted(promql, *parse_matrix(content, query=promql))

    def _counted(self, promql: str, series: list[_Item], skipped: int) -> list[_Item]:
        """``series``, after counting and logging the malformed ones skipped."""
        if skipped:
            self.malformed_series_total += skipped
            logger.warning(
                "query %r: skipped %d malformed series of %d",
                promql,
                skipped,
                skipped + len(series),
            )
        return series

    async def _answer(self, promql: str, at_s: float | None) -> bytes:
        """The body of Prometheus' answer to one instant query, with retries."""
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
            return response.content
        raise MetricSourceError(
            f"{url} failed {attempts} time(s) for {promql!r}; last error: {last_error}",
            source=_SOURCE,
        )

    def queries(self, interval_s: float) -> dict[str, str]:
        """The PromQL run for an interval: Observation field → query.

        ``arrival_dispersion``'s query is a range vector (the counter's raw samples
        of the model's series, matched ignoring case); the others are instant
        vectors, filtered after the answer.
        """
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
        # raw samples are many: only the model's series (any case), the rest as above
        model = _model_pattern(self.model_name)
        out["arrival_dispersion"] = f"{p}_{REQUESTS_TOTAL}{{model=~{model}}}[{window}]"
        return out

    async def fetch(self, interval_s: float) -> Observation:
        """Measure the last ``interval_s`` seconds of traffic.

        Raises:
            MetricSourceError: Prometheus was unreachable (after retries).
            MalformedMetricsError: An answer could not be understood.
        """
        now_s = float(self.clock())
        queries = self.queries(interval_s)
        counter_query = queries.pop("arrival_dispersion")
        names = list(queries)
        answers, dispersion = await asyncio.gather(
            asyncio.gather(*(self.query(queries[n], at_s=now_s) for n in names)),
            self._dispersion(counter_query, now_s),
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
            arrival_dispersion=dispersion,
        )

    async def _dispersion(self, promql: str, at_s: float) -> float | None:
        """The arrivals' index of dispersion from the request counter's samples.

        An answer that is not a range vector is logged and gives ``None`` (unknown):
        the dispersion only refines the ``sla`` scaler's queue, so the rest of the
        observation is kept.
        """
        if not self.measure_dispersion:
            return None
        try:
            series = await self.query_range_vector(promql, at_s=at_s)
        except MalformedMetricsError as exc:
            logger.warning("%s; arrival_dispersion is left unknown", exc)
            return None
        matching = filter_series(
            series,
            model_name=self.model_name,
            namespace=self.namespace,
            require_namespace_label=self.require_namespace_label,
        )
        return index_of_dispersion(s.samples for s in matching)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
