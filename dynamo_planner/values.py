"""Frozen value objects passed between the planner's parts.

Everything that crosses a boundary (source → planner, planner → scaler, planner → connector)
is one of these immutable attrs classes. Units are in the field names: ``_ms``, ``_s``,
``_tokens``, ``_per_gpu``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    FloatArray = npt.NDArray[np.float64]

__all__ = [
    "DEFAULT_FORECAST_QUANTILE",
    "Corrections",
    "DecodePoint",
    "DecodeProfile",
    "Demand",
    "Forecast",
    "Observation",
    "PerfProfile",
    "PrefillProfile",
    "ReplicaPlan",
    "ReplicaState",
    "Sample",
    "Status",
    "WorkerLoad",
]


def _freeze_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


def _float_tuple(values: Iterable[float]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _histogram(
    buckets: Iterable[tuple[float, float]],
) -> tuple[tuple[float, float], ...]:
    """Cumulative ``(upper bound, count)`` pairs, sorted by bound.

    Counts are made non-decreasing (a running maximum): Prometheus' ``increase()``
    extrapolates each bucket series on its own, which can leave a bucket a little below
    the one before it.
    """
    pairs = sorted((float(b), float(c)) for b, c in buckets)
    out = []
    running = 0.0
    for bound, count in pairs:
        if math.isnan(bound) or not math.isfinite(count) or count < 0:
            msg = f"a histogram bucket must be (bound, finite count >= 0), got {(bound, count)!r}"
            raise ValueError(msg)
        running = max(running, count)
        out.append((bound, running))
    return tuple(out)


def _str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


def _workers_tuple(values: Iterable[WorkerLoad]) -> tuple[WorkerLoad, ...]:
    return tuple(values)


class Status(enum.Enum):
    """What is known about a measured value."""

    OK = "ok"
    """Measured and non-zero."""
    ZERO = "zero"
    """Measured, and nothing happened (e.g. no request in the interval)."""
    UNKNOWN = "unknown"
    """Not measured: missing, NaN, stale or the source was down. Never treated as zero."""


@attrs.frozen
class Sample:
    """One measured value with its :class:`Status`.

    Use :meth:`of` to build one from a raw float: ``None``, NaN and infinities become
    :attr:`Status.UNKNOWN`, exactly ``0`` becomes :attr:`Status.ZERO`.

    Attributes:
        value: The value; NaN when unknown.
        status: Whether the value is known, and whether it is zero.
    """

    value: float
    status: Status

    @classmethod
    def of(cls, value: float | None) -> Sample:
        """Classify a raw value."""
        if value is None or not math.isfinite(value):
            return cls(math.nan, Status.UNKNOWN)
        if value == 0:
            return cls(0.0, Status.ZERO)
        return cls(float(value), Status.OK)

    @classmethod
    def unknown(cls) -> Sample:
        """A value that could not be measured."""
        return cls(math.nan, Status.UNKNOWN)

    @property
    def known(self) -> bool:
        """True unless the status is :attr:`Status.UNKNOWN`."""
        return self.status is not Status.UNKNOWN

    def get(self, default: float) -> float:
        """The value, or ``default`` when unknown."""
        return self.value if self.known else default


@attrs.frozen(kw_only=True)
class WorkerLoad:
    """Per-worker load as the frontend/router reports it (load-based scaling).

    Attributes:
        worker_id: The worker's id.
        worker_type: ``"prefill"`` or ``"decode"``.
        active_prefill_tokens: Tokens queued or running prefill on the worker.
        active_decode_blocks: KV blocks held by running decodes.
        last_ttft_ms: TTFT of the worker's last request.
        last_itl_ms: ITL of the worker's last request.
        last_isl_tokens: ISL of the request whose TTFT is ``last_ttft_ms``.
    """

    worker_id: str
    worker_type: str
    active_prefill_tokens: float | None = None
    active_decode_blocks: float | None = None
    last_ttft_ms: float | None = None
    last_itl_ms: float | None = None
    last_isl_tokens: float | None = None


def _sample(value: Sample | float | None) -> Sample:
    return value if isinstance(value, Sample) else Sample.of(value)


@attrs.frozen(kw_only=True)
class Observation:
    """What a metric source saw over one interval.

    The averages are means over the requests of the interval, as the Dynamo frontend's
    histograms give them. Floats (or ``None``) passed to the constructor are classified with
    :meth:`Sample.of`.

    Attributes:
        timestamp_s: End of the interval (seconds, any epoch; only differences matter).
        interval_s: Length of the interval in seconds.
        num_req: Requests that arrived in the interval.
        isl_tokens: Mean input sequence length.
        osl_tokens: Mean output sequence length.
        ttft_ms: Mean time to first token.
        itl_ms: Mean inter-token latency.
        request_duration_s: Mean request duration.
        isl_samples_tokens: Input lengths of individual requests, where the source has them.
        osl_samples_tokens: Output lengths of individual requests, where the source has them.
        workers: Per-worker load, where the source has it.
        arrival_dispersion: Index of dispersion of the interval's arrivals (variance
            over mean of arrival counts over short windows: 1 for Poisson arrivals,
            more for bursty ones), where the source has it. The simulator counts per
            second; the Prometheus source counts between scrapes of the frontend's
            request counter, when it was scraped at least ten times in the interval
            (:mod:`dynamo_planner.sources.dispersion`).
        ttft_samples_ms: TTFTs of the requests whose first token came in the interval,
            where the source has them (the simulator does).
        itl_samples_ms: Mean ITLs of the requests that finished in the interval with more
            than one output token, where the source has them (the simulator does).
        ttft_histogram_ms: The interval's TTFTs as cumulative ``(upper bound ms,
            count)`` buckets, the last bound ``inf``, where the source has them (the
            Prometheus source reads the frontend's histogram buckets).
        itl_histogram_ms: The interval's ITLs, bucketed the same way. A Dynamo frontend
            observes one ITL per token, so these count tokens, not requests.
        isl_histogram_tokens: The interval's input lengths as cumulative ``(upper bound
            tokens, count)`` buckets, the last bound ``inf``, where the source has them
            (the Prometheus source reads the frontend's histogram buckets). Without
            per-request samples, the ``sla`` scaler draws its request mix from them.
        osl_histogram_tokens: The interval's output lengths, bucketed the same way.
    """

    timestamp_s: float = 0.0
    interval_s: float
    num_req: Sample = attrs.field(converter=_sample, default=None)
    isl_tokens: Sample = attrs.field(converter=_sample, default=None)
    osl_tokens: Sample = attrs.field(converter=_sample, default=None)
    ttft_ms: Sample = attrs.field(converter=_sample, default=None)
    itl_ms: Sample = attrs.field(converter=_sample, default=None)
    request_duration_s: Sample = attrs.field(converter=_sample, default=None)
    isl_samples_tokens: tuple[float, ...] = attrs.field(
        converter=_float_tuple, default=()
    )
    osl_samples_tokens: tuple[float, ...] = attrs.field(
        converter=_float_tuple, default=()
    )
    workers: tuple[WorkerLoad, ...] = attrs.field(converter=_workers_tuple, default=())
    arrival_dispersion: Sample = attrs.field(converter=_sample, default=None)
    ttft_samples_ms: tuple[float, ...] = attrs.field(converter=_float_tuple, default=())
    itl_samples_ms: tuple[float, ...] = attrs.field(converter=_float_tuple, default=())
    ttft_histogram_ms: tuple[tuple[float, float], ...] = attrs.field(
        converter=_histogram, default=()
    )
    itl_histogram_ms: tuple[tuple[float, float], ...] = attrs.field(
        converter=_histogram, default=()
    )
    isl_histogram_tokens: tuple[tuple[float, float], ...] = attrs.field(
        converter=_histogram, default=()
    )
    osl_histogram_tokens: tuple[tuple[float, float], ...] = attrs.field(
        converter=_histogram, default=()
    )

    @property
    def traffic_known(self) -> bool:
        """True when the interval's load is known.

        That is: the request count is known, and either it is zero (then lengths do not
        matter) or the mean ISL and OSL are known too.
        """
        if not self.num_req.known:
            return False
        if self.num_req.status is Status.ZERO:
            return True
        return self.isl_tokens.known and self.osl_tokens.known

    def unknown_fields(self) -> tuple[str, ...]:
        """Names of the traffic fields whose value is unknown."""
        names = (
            "num_req",
            "isl_tokens",
            "osl_tokens",
            "ttft_ms",
            "itl_ms",
            "request_duration_s",
        )
        return tuple(n for n in names if not getattr(self, n).known)


DEFAULT_FORECAST_QUANTILE = 0.75
"""The default level of :attr:`Forecast.upper` (and of ``forecast_quantile``)."""


@attrs.frozen
class Forecast:
    """A forecast of the next interval's value.

    Attributes:
        value: The point forecast (never negative, never NaN).
        upper: The upper quantile of the next value, at level ``quantile``.
        quantile: The level of ``upper`` (:data:`DEFAULT_FORECAST_QUANTILE` by default).
    """

    value: float
    upper: float
    quantile: float = DEFAULT_FORECAST_QUANTILE

    @classmethod
    def point(
        cls, value: float, quantile: float = DEFAULT_FORECAST_QUANTILE
    ) -> Forecast:
        """A forecast with no spread: the upper quantile equals the value."""
        return cls(value, value, quantile)


@attrs.frozen(kw_only=True)
class Demand:
    """The load the planner sizes for over the next interval.

    Attributes:
        interval_s: Length of the interval in seconds.
        num_req: Requests expected in the interval.
        isl_tokens: Mean input length expected.
        osl_tokens: Mean output length expected.
        isl_samples_tokens: Recent per-request input lengths (the mix), if known.
        osl_samples_tokens: Recent per-request output lengths (the mix), if known.
        peak_num_req: The largest request count expected before a new worker would be
            ready (lookahead over the cold start), if the planner looked ahead.
    """

    interval_s: float
    num_req: Forecast
    isl_tokens: Forecast
    osl_tokens: Forecast
    isl_samples_tokens: tuple[float, ...] = attrs.field(
        converter=_float_tuple, default=()
    )
    osl_samples_tokens: tuple[float, ...] = attrs.field(
        converter=_float_tuple, default=()
    )
    peak_num_req: float | None = None

    @classmethod
    def of(
        cls, *, num_req: float, isl_tokens: float, osl_tokens: float, interval_s: float
    ) -> Demand:
        """A demand from point values (no spread)."""
        return cls(
            interval_s=interval_s,
            num_req=Forecast.point(num_req),
            isl_tokens=Forecast.point(isl_tokens),
            osl_tokens=Forecast.point(osl_tokens),
        )


@attrs.frozen
class Corrections:
    """Observed-over-expected latency factors (1.0 means the profile is exact).

    Attributes:
        prefill: Observed TTFT divided by the profile's TTFT at the observed ISL.
        decode: Observed ITL divided by the profile's ITL at the observed load.
    """

    prefill: float = 1.0
    decode: float = 1.0


@attrs.frozen(kw_only=True)
class ReplicaState:
    """How many workers a deployment has (or should have) per component.

    Attributes:
        prefill: Prefill workers.
        decode: Decode workers (in agg mode: the aggregated workers).
    """

    prefill: int = 0
    decode: int = 0


@attrs.frozen(kw_only=True)
class ReplicaPlan:
    """A replica decision and why it was made.

    Attributes:
        prefill: Prefill replicas to run, or ``None`` to leave prefill as it is.
        decode: Decode replicas to run, or ``None`` to leave decode as it is.
        reasons: Human-readable explanations, in the order the steps ran.
        demand: The demand sized for, if any.
        unclamped_prefill: Prefill replicas before the GPU budget.
        unclamped_decode: Decode replicas before the GPU budget.
        clamps: Names of the clamps that changed the result (``"budget"``,
            ``"min_endpoint"``, ``"floor"``, ``"unknown_metrics"``).
        details: Numbers behind the decision (capacities, corrections, model estimates).
    """

    prefill: int | None
    decode: int | None
    reasons: tuple[str, ...] = attrs.field(converter=_str_tuple, default=())
    demand: Demand | None = None
    unclamped_prefill: int | None = None
    unclamped_decode: int | None = None
    clamps: tuple[str, ...] = attrs.field(converter=_str_tuple, default=())
    details: Mapping[str, Any] = attrs.field(
        converter=_freeze_mapping, factory=dict, eq=False
    )

    @property
    def is_hold(self) -> bool:
        """True when the plan changes nothing."""
        return self.prefill is None and self.decode is None

    def target(self, current: ReplicaState) -> ReplicaState:
        """The replica state after applying this plan to ``current``."""
        return ReplicaState(
            prefill=current.prefill if self.prefill is None else self.prefill,
            decode=current.decode if self.decode is None else self.decode,
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the plan."""
        return {
            "prefill_replicas": self.prefill,
            "decode_replicas": self.decode,
            "unclamped_prefill_replicas": self.unclamped_prefill,
            "unclamped_decode_replicas": self.unclamped_decode,
            "clamps": list(self.clamps),
            "reasons": list(self.reasons),
            "details": dict(self.details),
        }


def _array(value: Any) -> FloatArray:
    import numpy as np  # lazily: a plan or an observation needs no numpy

    return np.asarray(value, dtype=np.float64)


@attrs.frozen(kw_only=True, eq=False)
class PrefillProfile:
    """Measured prefill performance: one request alone at each ISL.

    Attributes:
        isl_tokens: Input lengths profiled, strictly increasing.
        ttft_ms: TTFT at each ISL.
        throughput_per_gpu: Prefill tokens per second per GPU at each ISL.
    """

    isl_tokens: FloatArray = attrs.field(converter=_array)
    ttft_ms: FloatArray = attrs.field(converter=_array)
    throughput_per_gpu: FloatArray = attrs.field(converter=_array)


@attrs.frozen(kw_only=True, eq=False)
class DecodeProfile:
    """Measured decode performance over KV usage and context length.

    Attributes:
        kv_usage: Fraction (0..1) of the engine's KV cache in use at each point.
        context_length_tokens: Context length (ISL + OSL/2) at each point.
        itl_ms: Inter-token latency at each point.
        throughput_per_gpu: Output tokens per second per GPU at each point.
        max_kv_tokens: KV cache capacity of one engine, in tokens.
    """

    kv_usage: FloatArray = attrs.field(converter=_array)
    context_length_tokens: FloatArray = attrs.field(converter=_array)
    itl_ms: FloatArray = attrs.field(converter=_array)
    throughput_per_gpu: FloatArray = attrs.field(converter=_array)
    max_kv_tokens: int

    @property
    def concurrency(self) -> FloatArray:
        """Concurrent requests at each point: ``kv_usage * max_kv_tokens / context``."""
        import numpy as np

        return np.asarray(
            np.round(self.kv_usage * self.max_kv_tokens / self.context_length_tokens),
            dtype=np.float64,
        )


@attrs.frozen(kw_only=True, eq=False)
class PerfProfile:
    """A deployment's measured performance: prefill and decode profiles.

    Attributes:
        prefill: The prefill profile.
        decode: The decode profile.
        source: Where it was read from (a path or a description).
        metadata: Descriptive fields (GPU type, model, parallel config), if known.
    """

    prefill: PrefillProfile
    decode: DecodeProfile
    source: str = ""
    metadata: Mapping[str, Any] = attrs.field(converter=_freeze_mapping, factory=dict)


@attrs.frozen
class DecodePoint:
    """A decode operating point found in a profile.

    Attributes:
        throughput_per_gpu: Output tokens per second per GPU at the point.
        itl_ms: Inter-token latency at the point.
        kv_usage: KV-cache usage (0..1) at the point.
    """

    throughput_per_gpu: float
    itl_ms: float
    kv_usage: float
