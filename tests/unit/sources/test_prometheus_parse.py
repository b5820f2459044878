"""Parsing and reducing Prometheus answers (spec §11.6, on canned JSON)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from dynamo_planner.exceptions import MalformedMetricsError, MetricSourceError
from dynamo_planner.sources.prometheus import (
    PrometheusMetricSource,
    PromSeries,
    buckets_of_series,
    filter_series,
    mean_of_series,
    parse_matrix,
    parse_vector,
    sum_of_series,
)


def _answer(result: Any) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def _item(value: str, model: str = "mymodel", ns: str = "dynamo") -> dict[str, Any]:
    return {
        "metric": {"model": model, "dynamo_namespace": ns, "job": "frontend"},
        "value": [1700000000.5, value],
    }


def _reduce(answer: Any, *, count: bool = False) -> float | None:
    series, _ = parse_vector(answer)
    matching = filter_series(series, model_name="MyModel", namespace="dynamo")
    return sum_of_series(matching) if count else mean_of_series(matching)


class TestParseVector:
    def test_null_result_is_empty(self) -> None:
        """A null result parses to no series, which reduces to unknown (not 0)."""
        assert parse_vector(_answer(None)) == ([], 0)
        assert _reduce(_answer(None)) is None

    def test_empty_result_is_unknown(self) -> None:
        """An empty result reduces to unknown, where the reference reports 0."""
        assert _reduce(_answer([])) is None
        assert _reduce(_answer([]), count=True) is None

    def test_other_namespace_or_model_only_is_unknown(self) -> None:
        """Series of another namespace or model only reduce to unknown."""
        answer = _answer([_item("5", ns="other"), _item("7", model="othermodel")])
        assert _reduce(answer) is None

    def test_one_matching_series(self) -> None:
        """One matching series with value 42.7 gives 42.7."""
        assert _reduce(_answer([_item("42.7")])) == pytest.approx(42.7)

    def test_malformed_series_is_skipped(self) -> None:
        """A malformed series next to a valid one is skipped and counted."""
        answer = _answer(
            [_item("25.5"), {"metric": {"model": "mymodel"}, "value": "x"}]
        )
        series, skipped = parse_vector(answer)
        assert [s.value for s in series] == [25.5]
        assert skipped == 1
        assert _reduce(answer) == pytest.approx(25.5)

    def test_three_series_unweighted_mean(self) -> None:
        """Three matching series average without weights."""
        answer = _answer([_item("42.7"), _item("35.5"), _item("15.5")])
        assert _reduce(answer) == pytest.approx(31.233333333)

    def test_nan_string_parses_to_nan(self) -> None:
        """The string "NaN" parses to float NaN."""
        series, _ = parse_vector(_answer([_item("NaN")]))
        assert math.isnan(series[0].value)

    def test_all_nan_average_is_unknown(self) -> None:
        """An average whose every series is NaN (0/0, no requests) is unknown."""
        assert _reduce(_answer([_item("NaN"), _item("NaN")])) is None

    def test_nan_series_left_out_of_mean(self) -> None:
        """A NaN series next to finite ones does not poison the mean."""
        assert _reduce(_answer([_item("NaN"), _item("10")])) == pytest.approx(10)

    def test_zero_count_is_zero(self) -> None:
        """A request count of 0 over existing series is 0, not unknown."""
        assert _reduce(_answer([_item("0"), _item("0")]), count=True) == 0.0

    def test_count_is_sum(self) -> None:
        """The request count sums the matching series."""
        answer = _answer([_item("3"), _item("4.5"), _item("100", ns="other")])
        assert _reduce(answer, count=True) == pytest.approx(7.5)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            (b"<html>not json</html>", "not JSON"),
            (json.dumps([1, 2]), "not a JSON object"),
            (json.dumps({"status": "error", "error": "parse error"}), "parse error"),
            (json.dumps({"status": "success"}), "no 'data'"),
            (
                json.dumps({"status": "success", "data": {"resultType": "matrix"}}),
                "resultType",
            ),
            (
                json.dumps(
                    {"status": "success", "data": {"resultType": "vector", "result": 3}}
                ),
                "not a list",
            ),
        ],
    )
    def test_malformed_answer_raises(self, text: Any, message: str) -> None:
        """An answer that is not a Prometheus vector raises a clear error."""
        with pytest.raises(MalformedMetricsError, match=message) as info:
            parse_vector(text, query="up")
        assert "'up'" in str(info.value)
        assert isinstance(info.value, MetricSourceError)


def _matrix(result: Any) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


def _range(values: list[Any], model: str = "mymodel") -> dict[str, Any]:
    return {"metric": {"model": model, "dynamo_namespace": "dynamo"}, "values": values}


class TestParseMatrix:
    def test_samples_in_order(self) -> None:
        """A range vector's series keep their raw samples as (time, value) pairs."""
        answer = _matrix([_range([[100, "3"], [101.5, "7"]])])
        series, skipped = parse_matrix(json.dumps(answer))
        assert skipped == 0
        assert series[0].samples == ((100.0, 3.0), (101.5, 7.0))
        assert filter_series(series, model_name="MyModel", namespace="dynamo") == series

    def test_a_series_with_a_malformed_sample_is_skipped_whole(self) -> None:
        answer = _matrix([_range([[100, "3"], [101, "x"]]), _range([[100, "1"]])])
        series, skipped = parse_matrix(answer)
        assert skipped == 1
        assert [s.samples for s in series] == [((100.0, 1.0),)]

    @pytest.mark.parametrize(
        "answer",
        [
            _answer([]),  # an instant vector
            {"status": "success", "data": {"resultType": "matrix", "result": {}}},
        ],
    )
    def test_not_a_range_vector_raises(self, answer: Any) -> None:
        with pytest.raises(MalformedMetricsError, match="'c\\[60s\\]'"):
            parse_matrix(answer, query="c[60s]")

    def test_null_result_is_empty(self) -> None:
        assert parse_matrix(_matrix(None)) == ([], 0)


class TestFilterSeries:
    def _series(self, **labels: str) -> PromSeries:
        return PromSeries(labels, 1.0)

    def test_model_match_ignores_case(self) -> None:
        """The model label matches whatever its case."""
        s = self._series(model="MYMODEL", dynamo_namespace="ns")
        assert filter_series([s], model_name="MyModel", namespace="ns") == [s]

    def test_missing_namespace_label_tolerated_by_default(self) -> None:
        """A series without a dynamo_namespace label is kept unless required."""
        s = self._series(model="m")
        assert filter_series([s], model_name="m", namespace="ns") == [s]
        assert (
            filter_series(
                [s], model_name="m", namespace="ns", require_namespace_label=True
            )
            == []
        )

    def test_other_namespace_dropped(self) -> None:
        """A series that names another namespace is always dropped."""
        s = self._series(model="m", dynamo_namespace="other")
        assert filter_series([s], model_name="m", namespace="ns") == []


class TestBuckets:
    """Latency buckets summed per bound, in milliseconds."""

    def _bucket(self, le: str, value: float) -> PromSeries:
        return PromSeries({"model": "m", "le": le}, value)

    def test_summed_per_bound_in_ms(self) -> None:
        """Two frontends' buckets add up per ``le``; seconds become ms; NaN is left out."""
        series = [
            self._bucket("0.5", 8.0),
            self._bucket("+Inf", 10.0),
            self._bucket("0.5", 4.0),
            self._bucket("+Inf", 5.0),
            self._bucket("0.25", math.nan),
        ]
        assert buckets_of_series(series) == ((500.0, 12.0), (math.inf, 15.0))

    def test_token_buckets_keep_their_bounds(self) -> None:
        """Length buckets are in tokens: ``scale=1`` keeps the bounds as they are."""
        series = [self._bucket("512", 3.0), self._bucket("+Inf", 4.0)]
        assert buckets_of_series(series, scale=1.0) == ((512.0, 3.0), (math.inf, 4.0))

    @pytest.mark.parametrize("le", ["fast", None])
    def test_bad_le_names_it(self, le: str | None) -> None:
        """A bucket without a numeric ``le`` is a malformed answer naming the label."""
        labels = {"model": "m"} if le is None else {"model": "m", "le": le}
        with pytest.raises(MalformedMetricsError, match=repr(le)):
            buckets_of_series([PromSeries(labels, 1.0)], query="q")

    def test_bucket_queries(self) -> None:
        """TTFT, ITL, ISL and OSL buckets are read with increase() over the interval."""
        queries = PrometheusMetricSource(endpoint="http://x", model_name="m").queries(
            60
        )
        assert queries["ttft_histogram_ms"] == (
            "increase(dynamo_frontend_time_to_first_token_seconds_bucket[60s])"
        )
        assert queries["itl_histogram_ms"] == (
            "increase(dynamo_frontend_inter_token_latency_seconds_bucket[60s])"
        )
        assert queries["isl_histogram_tokens"] == (
            "increase(dynamo_frontend_input_sequence_tokens_bucket[60s])"
        )
        assert queries["osl_histogram_tokens"] == (
            "increase(dynamo_frontend_output_sequence_tokens_bucket[60s])"
        )


class TestQueries:
    def test_queries_use_the_interval_window(self) -> None:
        """The PromQL of §5 uses the interval as the range."""
        source = PrometheusMetricSource(endpoint="http://x", model_name="m")
        queries = source.queries(180)
        assert queries["ttft_ms"] == (
            "increase(dynamo_frontend_time_to_first_token_seconds_sum[180s]) / "
            "increase(dynamo_frontend_time_to_first_token_seconds_count[180s])"
        )
        assert queries["num_req"] == "increase(dynamo_frontend_requests_total[180s])"
        assert "[2500ms]" in source.queries(2.5)["itl_ms"]

    def test_prefix_override(self) -> None:
        """A custom metric prefix (DYN_METRICS_PREFIX) changes every name."""
        source = PrometheusMetricSource(
            endpoint="http://x", model_name="m", metric_prefix="custom"
        )
        assert all("custom_" in q for q in source.queries(60).values())

    def test_counter_samples_of_the_model_only(self) -> None:
        """The range query matches the model in any case, its RE2 specials escaped."""
        source = PrometheusMetricSource(
            endpoint="http://x", model_name='Org/Model-1.5 (v2) "x"'
        )
        assert source.queries(60)["arrival_dispersion"] == (
            "dynamo_frontend_requests_total"
            '{model=~"(?i)Org/Model-1\\\\.5 \\\\(v2\\\\) \\"x\\""}[60s]'
        )

    def test_tls_verified_by_default(self) -> None:
        """TLS certificates are verified unless turned off explicitly."""
        assert PrometheusMetricSource(endpoint="https://x", model_name="m").verify_tls
