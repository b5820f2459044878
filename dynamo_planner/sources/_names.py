"""Metric names the Dynamo frontend exports (spec §4.1, §5).

The names are ``{prefix}_{suffix}`` with the prefix ``dynamo_frontend`` unless the frontend
was started with ``DYN_METRICS_PREFIX``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

__all__ = [
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
