"""Tests of the frontend exporter's recording methods."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from dynamo_planner.sources.exporter import FrontendMetricsExporter


def samples(exporter: FrontendMetricsExporter) -> dict[str, float]:
    """Every sample of the exporter's text, by name (labels dropped: one series each)."""
    text = exporter.render().decode()
    return {
        sample.name: float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_bucket") and not sample.name.endswith("_created")
    }


P = "dynamo_frontend"


class TestRecordRequest:
    """A finished request lands in the counter and every histogram."""

    def test_all_values_recorded(self) -> None:
        """Each histogram counts the request once and sums its value."""
        exporter = FrontendMetricsExporter(model_name="m")
        exporter.record_request(
            isl_tokens=100, osl_tokens=10, ttft_s=0.5, itl_s=0.02, duration_s=0.7
        )
        got = samples(exporter)
        assert got[f"{P}_requests_total"] == 1
        assert got[f"{P}_inter_token_latency_seconds_count"] == 1
        assert got[f"{P}_inter_token_latency_seconds_sum"] == 0.02
        assert got[f"{P}_input_sequence_tokens_sum"] == 100

    def test_single_token_request_has_no_itl(self) -> None:
        """``itl_s=None`` counts the request but observes no inter-token latency."""
        exporter = FrontendMetricsExporter(model_name="m")
        exporter.record_request(
            isl_tokens=100, osl_tokens=1, ttft_s=0.5, itl_s=None, duration_s=0.5
        )
        got = samples(exporter)
        assert got[f"{P}_requests_total"] == 1
        assert got[f"{P}_inter_token_latency_seconds_count"] == 0
        assert got[f"{P}_time_to_first_token_seconds_count"] == 1


class TestRecordByEvent:
    """Arrival, first token and completion each record their own values."""

    def test_arrival_counts_the_request_and_its_isl(self) -> None:
        """An arrival increments the counter and the ISL histogram, nothing else."""
        exporter = FrontendMetricsExporter(model_name="m")
        exporter.record_arrival(isl_tokens=300)
        got = samples(exporter)
        assert got[f"{P}_requests_total"] == 1
        assert got[f"{P}_input_sequence_tokens_sum"] == 300
        assert got[f"{P}_time_to_first_token_seconds_count"] == 0
        assert got[f"{P}_output_sequence_tokens_count"] == 0

    def test_first_token_and_completion(self) -> None:
        """TTFT at the first token; OSL, ITL and duration at completion."""
        exporter = FrontendMetricsExporter(model_name="m")
        exporter.record_first_token(ttft_s=0.25)
        exporter.record_completion(osl_tokens=20, itl_s=0.01, duration_s=0.5)
        exporter.record_completion(osl_tokens=1, itl_s=None, duration_s=0.3)
        got = samples(exporter)
        assert got[f"{P}_requests_total"] == 0
        assert got[f"{P}_time_to_first_token_seconds_sum"] == 0.25
        assert got[f"{P}_output_sequence_tokens_count"] == 2
        assert got[f"{P}_request_duration_seconds_sum"] == 0.8
        assert got[f"{P}_inter_token_latency_seconds_count"] == 1
