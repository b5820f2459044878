"""Router /metrics parsing, the sampling buffer and delta traffic (spec §4.1-4.2, §11.6)."""

from __future__ import annotations

import pytest

from dynamo_planner.exceptions import MalformedMetricsError
from dynamo_planner.sources.router import (
    RouterSample,
    SampleBuffer,
    parse_router_metrics,
    traffic_between,
)
from dynamo_planner.values import Status, WorkerLoad

W1 = """\
# TYPE dynamo_frontend_worker_active_prefill_tokens gauge
dynamo_frontend_worker_active_prefill_tokens{worker_id="w1",worker_type="prefill",model="MyModel",dynamo_namespace="ns"} 1234
# TYPE dynamo_frontend_worker_active_decode_blocks gauge
dynamo_frontend_worker_active_decode_blocks{worker_id="w1",worker_type="prefill",model="MyModel",dynamo_namespace="ns"} 56
# TYPE dynamo_frontend_worker_last_time_to_first_token_seconds gauge
dynamo_frontend_worker_last_time_to_first_token_seconds{worker_id="w1",worker_type="prefill",model="MyModel",dynamo_namespace="ns"} 0.25
# TYPE dynamo_frontend_worker_last_input_sequence_tokens gauge
dynamo_frontend_worker_last_input_sequence_tokens{worker_id="w1",worker_type="prefill",model="MyModel",dynamo_namespace="ns"} 3000
# TYPE dynamo_frontend_worker_last_inter_token_latency_seconds gauge
dynamo_frontend_worker_last_inter_token_latency_seconds{worker_id="w1",worker_type="prefill",model="MyModel",dynamo_namespace="ns"} 0.04
"""


def _load(worker_id: str, worker_type: str = "decode", **fields: float) -> WorkerLoad:
    return WorkerLoad(worker_id=worker_id, worker_type=worker_type, **fields)


class TestParse:
    def test_five_gauges_of_one_worker(self) -> None:
        """The five gauges of w1 parse into the five fields (seconds become ms)."""
        sample = parse_router_metrics(W1)
        assert sample.workers == (
            WorkerLoad(
                worker_id="w1",
                worker_type="prefill",
                active_prefill_tokens=1234,
                active_decode_blocks=56,
                last_ttft_ms=250.0,
                last_isl_tokens=3000,
                last_itl_ms=40.0,
            ),
        )

    def test_namespace_filter_and_case_insensitive_model(self) -> None:
        """Another dynamo_namespace is excluded; the model matches whatever its case."""
        other = W1.replace('dynamo_namespace="ns"', 'dynamo_namespace="other"').replace(
            '"w1"', '"w2"'
        )
        text = W1 + "\n".join(
            line for line in other.splitlines() if not line.startswith("#")
        )
        sample = parse_router_metrics(text + "\n", model_name="mymodel", namespace="ns")
        assert [w.worker_id for w in sample.workers] == ["w1"]
        unfiltered = parse_router_metrics(text + "\n")
        assert [w.worker_id for w in unfiltered.workers] == ["w1", "w2"]

    def test_grouping_by_worker_type(self) -> None:
        """A Rust-router sample groups worker 123 under prefill and 456 under decode."""
        text = (
            'dynamo_frontend_worker_active_prefill_tokens{worker_id="123",worker_type="prefill"} 500\n'
            'dynamo_frontend_worker_active_decode_blocks{worker_id="123",worker_type="prefill"} 0\n'
            'dynamo_frontend_worker_active_decode_blocks{worker_id="456",worker_type="decode"} 80\n'
        )
        buffer = SampleBuffer(10)
        buffer.append(parse_router_metrics(text).workers)
        prefill = buffer.views("prefill")
        decode = buffer.views("decode")
        assert prefill is not None
        assert decode is not None
        assert [(w.worker_id, w.active_decode_blocks) for w in prefill.recent] == [
            ("123", 0)
        ]
        assert [w.worker_id for w in decode.recent] == ["456"]

    def test_missing_labels_read_unknown(self) -> None:
        """A gauge without worker labels is grouped under worker 'unknown'."""
        sample = parse_router_metrics("dynamo_frontend_worker_active_decode_blocks 3\n")
        assert sample.workers[0].worker_id == "unknown"
        assert sample.workers[0].worker_type == "unknown"

    def test_malformed_text_raises(self) -> None:
        """Text that is not Prometheus exposition format raises a clear error."""
        with pytest.raises(MalformedMetricsError, match="cannot parse"):
            parse_router_metrics("dynamo_frontend_worker_active_decode_blocks{ 3 x\n")


class TestBuffer:
    def test_empty_buffer(self) -> None:
        """An empty buffer has no views."""
        assert SampleBuffer(3).views("decode") is None
        assert SampleBuffer(3).averaged() is None

    def test_three_samples_of_one_worker(self) -> None:
        """Samples 100/200/300: averaged 200, recent 300, cluster 200."""
        buffer = SampleBuffer(10)
        for value in (100.0, 200.0, 300.0):
            buffer.append([_load("w1", active_decode_blocks=value)])
        views = buffer.views("decode")
        assert views is not None
        assert views.recent[0].active_decode_blocks == 300
        assert views.per_worker[0].active_decode_blocks == 200
        assert views.cluster.active_decode_blocks == 200
        averaged = buffer.averaged()
        assert averaged is not None
        assert averaged[0].active_decode_blocks == 200

    def test_cluster_average_is_over_all_values(self) -> None:
        """The cluster view divides the sum of all values by their count."""
        buffer = SampleBuffer(10)
        buffer.append(
            [_load("a", active_decode_blocks=10), _load("b", active_decode_blocks=20)]
        )
        buffer.append([_load("a", active_decode_blocks=30)])
        views = buffer.views("decode")
        assert views is not None
        assert views.cluster.active_decode_blocks == pytest.approx(20.0)
        assert {w.worker_id: w.active_decode_blocks for w in views.per_worker} == {
            "a": 20.0,
            "b": 20.0,
        }

    def test_metric_averaged_over_samples_it_appears_in(self) -> None:
        """A metric missing from some samples averages over the others only."""
        buffer = SampleBuffer(10)
        buffer.append([_load("a", last_ttft_ms=100)])
        buffer.append([_load("a")])
        views = buffer.views("decode")
        assert views is not None
        assert views.per_worker[0].last_ttft_ms == 100

    def test_keeps_last_samples_only(self) -> None:
        """The buffer keeps the last maxlen scrapes."""
        buffer = SampleBuffer(2)
        for value in (1.0, 2.0, 3.0):
            buffer.append([_load("a", active_decode_blocks=value)])
        views = buffer.views("decode")
        assert views is not None
        assert views.per_worker[0].active_decode_blocks == 2.5


class TestTrafficBetween:
    def test_reference_delta_case(self) -> None:
        """Δttft 3.0/3 → 1000 ms, Δitl 0.5/5 → 100 ms, ISL 9000/3, OSL 450/3, 12 requests."""
        before = RouterSample(totals={
            "ttft_ms_sum": 1.0, "ttft_ms_count": 1, "itl_ms_sum": 0.1, "itl_ms_count": 1,
            "isl_tokens_sum": 100, "isl_tokens_count": 1, "osl_tokens_sum": 10,
            "osl_tokens_count": 1, "request_duration_s_sum": 2, "request_duration_s_count": 1,
            "num_req": 8,
        })  # fmt: skip
        after = RouterSample(timestamp_s=5, totals={
            "ttft_ms_sum": 4.0, "ttft_ms_count": 4, "itl_ms_sum": 0.6, "itl_ms_count": 6,
            "isl_tokens_sum": 9100, "isl_tokens_count": 4, "osl_tokens_sum": 460,
            "osl_tokens_count": 4, "request_duration_s_sum": 8, "request_duration_s_count": 4,
            "num_req": 20,
        })  # fmt: skip
        obs = traffic_between(before, after, 5.0)
        assert obs.ttft_ms.value == pytest.approx(1000)
        assert obs.itl_ms.value == pytest.approx(100)
        assert obs.isl_tokens.value == pytest.approx(3000)
        assert obs.osl_tokens.value == pytest.approx(150)
        assert obs.request_duration_s.value == pytest.approx(2)
        assert obs.num_req.value == 12

    def test_no_new_requests(self) -> None:
        """No new request: count zero, averages unknown."""
        totals = {"ttft_ms_sum": 1.0, "ttft_ms_count": 1, "num_req": 3}
        obs = traffic_between(
            RouterSample(totals=totals), RouterSample(totals=totals), 5
        )
        assert obs.num_req.status is Status.ZERO
        assert obs.ttft_ms.status is Status.UNKNOWN

    def test_missing_counter_is_unknown(self) -> None:
        """Without a requests counter the count is unknown, not zero."""
        obs = traffic_between(RouterSample(), RouterSample(), 5)
        assert obs.num_req.status is Status.UNKNOWN

    def test_counter_reset(self) -> None:
        """A counter that went down was reset: the new value is the increase."""
        obs = traffic_between(
            RouterSample(totals={"num_req": 50}), RouterSample(totals={"num_req": 4}), 5
        )
        assert obs.num_req.value == 4
