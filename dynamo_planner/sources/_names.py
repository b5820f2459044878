"""Metric names the Dynamo frontend exports (spec §4.1, §5).

The names are ``{prefix}_{suffix}`` with the prefix ``dynamo_frontend`` unless the frontend
was started with ``DYN_METRICS_PREFIX``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

__all__ = [
    "BUCKETS",
    "DEFAULT_PREFIX",
    "HISTOGRAMS",
    "REQUESTS_TOTAL",
    "WORKER_GAUGES",
]

DEFAULT_PREFIX = "dynamo_frontend"
"""The frontend's metric prefix."""

HISTOGRAMS = {
    "ttft_ms": "time_to_first_token_seconds",
    "itl_ms": "inter_token_latency_seconds",
    "request_duration_s": "request_duration_seconds",
    "isl_tokens": "input_sequence_tokens",
    "osl_tokens": "output_sequence_tokens",
}
"""Observation field → histogram suffix. The ``_ms`` fields are seconds times 1000."""

LATENCY_BUCKETS_S = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip
"""Upper bounds (s) of the TTFT and request-duration buckets of our exporter."""
ITL_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28)
"""Upper bounds (s) of the ITL buckets of our exporter."""
TOKEN_BUCKETS = (
    16.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0,
    65536.0, 131072.0,
)  # fmt: skip
"""Upper bounds (tokens) of the ISL and OSL buckets of our exporter."""
BUCKETS = {
    "ttft_ms": LATENCY_BUCKETS_S,
    "itl_ms": ITL_BUCKETS_S,
    "request_duration_s": LATENCY_BUCKETS_S,
    "isl_tokens": TOKEN_BUCKETS,
    "osl_tokens": TOKEN_BUCKETS,
}
"""Observation field → the finite upper bounds of its histogram, in the metric's unit
(``+Inf`` is implied). The exporter uses them, and so does the simulator when it reports
histograms as a frontend does."""

REQUESTS_TOTAL = "requests_total"
"""Suffix of the request counter."""

WORKER_GAUGES = {
    "active_prefill_tokens": "worker_active_prefill_tokens",
    "active_decode_blocks": "worker_active_decode_blocks",
    "last_ttft_ms": "worker_last_time_to_first_token_seconds",
    "last_isl_tokens": "worker_last_input_sequence_tokens",
    "last_itl_ms": "worker_last_inter_token_latency_seconds",
}
""":class:`~dynamo_planner.values.WorkerLoad` field → per-worker gauge suffix (§4.1)."""

SECONDS_TO_MS_FIELDS = frozenset({"ttft_ms", "itl_ms", "last_ttft_ms", "last_itl_ms"})
"""Fields whose metric is in seconds and whose value is in milliseconds."""
