"""Tests of the trace readers, interval bucketing and warm start."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_planner.data import AZURE_CONV_TRACE
from dynamo_planner.exceptions import TraceError
from dynamo_planner.traces import (
    IntervalSeries,
    RequestTrace,
    bucket,
    detect_format,
    load_intervals,
    load_requests,
    load_servegen,
    warm_start,
)
from dynamo_planner.values import Forecast


def _write_mooncake(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _write_servegen(folder: Path, clients: dict[str, list[str]]) -> Path:
    folder.mkdir(exist_ok=True)
    for client, rows in clients.items():
        (folder / f"chunk-{client}-trace.csv").write_text("\n".join(rows) + "\n")
    return folder


SPEC_RECORDS: list[dict[str, object]] = [
    {"timestamp": 0, "input_length": 100, "output_length": 10, "hash_ids": [1]},
    {"timestamp": 1000, "input_length": 300, "output_length": 30, "hash_ids": [2]},
    {"timestamp": 200000, "input_length": 50, "output_length": 5, "hash_ids": [3]},
]


class TestLoadRequestsMooncake:
    """Reading mooncake JSONL traces."""

    def test_reads_fields_and_converts_ms(self, tmp_path: Path) -> None:
        """Timestamps in milliseconds become seconds; lengths are read as given."""
        trace = load_requests(_write_mooncake(tmp_path / "t.jsonl", SPEC_RECORDS))
        assert len(trace) == 3
        assert trace.arrival_s.tolist() == [0.0, 1.0, 200.0]
        assert trace.isl_tokens.tolist() == [100, 300, 50]
        assert trace.osl_tokens.tolist() == [10, 30, 5]
        assert trace.duration_s == 200.0

    def test_gzip_and_blank_lines(self, tmp_path: Path) -> None:
        """A gzipped file with blank lines reads like the plain one."""
        text = (
            "\n"
            + json.dumps(SPEC_RECORDS[0])
            + "\n\n"
            + json.dumps(SPEC_RECORDS[1])
            + "\n"
        )
        path = tmp_path / "t.jsonl.gz"
        with gzip.open(path, "wt") as stream:
            stream.write(text)
        trace = load_requests(path)
        assert trace.arrival_s.tolist() == [0.0, 1.0]

    def test_unsorted_records_are_sorted(self, tmp_path: Path) -> None:
        """Records out of order are sorted by arrival, lengths following their request."""
        trace = load_requests(_write_mooncake(tmp_path / "t.jsonl", SPEC_RECORDS[::-1]))
        assert trace.arrival_s.tolist() == [0.0, 1.0, 200.0]
        assert trace.isl_tokens.tolist() == [100, 300, 50]

    def test_bad_json_names_file_and_line(self, tmp_path: Path) -> None:
        """Invalid JSON raises TraceError with the path and the 1-based line number."""
        path = tmp_path / "t.jsonl"
        path.write_text(json.dumps(SPEC_RECORDS[0]) + "\n\n{not json\n")
        with pytest.raises(TraceError) as info:
            load_requests(path)
        assert info.value.line == 3
        assert info.value.path == str(path)
        assert f"{path}:3" in str(info.value)

    def test_missing_field_is_named(self, tmp_path: Path) -> None:
        """A record without output_length names the field and its line."""
        path = _write_mooncake(
            tmp_path / "t.jsonl", [SPEC_RECORDS[0], {"timestamp": 5, "input_length": 3}]
        )
        with pytest.raises(TraceError, match="output_length") as info:
            load_requests(path)
        assert info.value.line == 2

    @pytest.mark.parametrize("bad", [-1, "12", None, float("nan"), True])
    def test_bad_length_is_rejected(self, tmp_path: Path, bad: object) -> None:
        """A negative, non-numeric or non-finite length is an error naming the field."""
        record = dict(SPEC_RECORDS[0], input_length=bad)
        path = tmp_path / "t.jsonl"
        path.write_text(json.dumps(record) + "\n")
        with pytest.raises(TraceError, match="input_length"):
            load_requests(path)

    def test_empty_file_is_an_error(self, tmp_path: Path) -> None:
        """A trace without requests is an error, not an empty series."""
        path = tmp_path / "t.jsonl"
        path.write_text("\n\n")
        with pytest.raises(TraceError, match="no requests"):
            load_requests(path, format="mooncake")

    def test_repo_conversation_trace(self, repo_data: Path) -> None:
        """The mooncake conversation trace has 12,031 requests over 3,537 s."""
        trace = load_requests(repo_data / "traces/mooncake/conversation_trace.jsonl")
        assert len(trace) == 12031
        assert trace.arrival_s[0] == 0.0
        assert trace.duration_s == pytest.approx(3536.999)


class TestLoadRequestsAzure:
    """Reading the Azure LLM inference CSV."""

    def test_reads_seven_fraction_digits_relative_to_first(
        self, tmp_path: Path
    ) -> None:
        """Arrivals are seconds since the first request, keeping 100 ns digits."""
        path = tmp_path / "a.csv"
        path.write_text(
            "TIMESTAMP,ContextTokens,GeneratedTokens\n"
            "2023-11-16 18:15:46.6805900,374,44\n"
            "2023-11-16 18:15:50.9951697,396,109\n"
            "2023-11-16 18:16:00,10,1\n"
        )
        trace = load_requests(path)
        assert trace.arrival_s[0] == 0.0
        assert trace.arrival_s[1] == pytest.approx(4.3145797, abs=1e-6)
        assert trace.arrival_s[2] == pytest.approx(13.31941, abs=1e-6)
        assert trace.isl_tokens.tolist() == [374, 396, 10]
        assert trace.osl_tokens.tolist() == [44, 109, 1]

    def test_bad_timestamp_names_line_and_field(self, tmp_path: Path) -> None:
        """An unparsable TIMESTAMP names the CSV line and the column."""
        path = tmp_path / "a.csv"
        path.write_text(
            "TIMESTAMP,ContextTokens,GeneratedTokens\n"
            "2023-11-16 18:15:46.6805900,374,44\n"
            "yesterday,1,1\n"
        )
        with pytest.raises(TraceError, match="TIMESTAMP") as info:
            load_requests(path)
        assert info.value.line == 3

    def test_bad_count_names_field(self, tmp_path: Path) -> None:
        """A non-numeric token count names its column."""
        path = tmp_path / "a.csv"
        path.write_text(
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,lots\n"
        )
        with pytest.raises(TraceError, match="GeneratedTokens") as info:
            load_requests(path)
        assert info.value.line == 2

    def test_missing_column(self, tmp_path: Path) -> None:
        """A header without a needed column names the column."""
        path = tmp_path / "a.csv"
        path.write_text("TIMESTAMP,ContextTokens\n2023-11-16 18:15:46.68,374\n")
        with pytest.raises(TraceError, match="GeneratedTokens"):
            load_requests(path)

    def test_bundled_conversation_trace(self) -> None:
        """The bundled Azure conversation trace has 19,366 requests, first at 0 s."""
        trace = load_requests(AZURE_CONV_TRACE)
        assert len(trace) == 19366
        assert trace.arrival_s[0] == 0.0
        assert trace.duration_s == pytest.approx(3501.721937, abs=1e-7)
        assert trace.source == str(AZURE_CONV_TRACE)


class TestDetectFormat:
    """Guessing a trace's layout."""

    def test_by_suffix_and_content(self, tmp_path: Path) -> None:
        """JSONL by suffix, CSV by its header, a folder of chunks as ServeGen."""
        assert (
            detect_format(_write_mooncake(tmp_path / "x.jsonl", SPEC_RECORDS))
            == "mooncake"
        )
        odd = _write_mooncake(tmp_path / "x.log", SPEC_RECORDS)
        assert detect_format(odd) == "mooncake"
        assert detect_format(AZURE_CONV_TRACE) == "azure"
        folder = _write_servegen(tmp_path / "sg", {"0": ["0,1,1,Gamma,1,1"]})
        assert detect_format(folder) == "servegen"

    def test_unknown_layout(self, tmp_path: Path) -> None:
        """A file that is neither layout is an error naming it."""
        path = tmp_path / "x.txt"
        path.write_text("hello,world\n")
        with pytest.raises(TraceError, match="unrecognised"):
            detect_format(path)

    def test_missing_path(self, tmp_path: Path) -> None:
        """A missing file is a TraceError naming the path."""
        with pytest.raises(TraceError, match="no such"):
            load_requests(tmp_path / "missing.jsonl")

    def test_servegen_is_not_a_request_trace(self, repo_data: Path) -> None:
        """load_requests refuses a ServeGen folder and points to load_intervals."""
        with pytest.raises(TraceError, match="load_intervals"):
            load_requests(repo_data / "traces/servegen/language/m-large")


class TestLoadServeGen:
    """Reading ServeGen per-client windows."""

    def test_small_folder(self, tmp_path: Path) -> None:
        """Two clients' windows give per-client arrays and the summed rate."""
        folder = _write_servegen(
            tmp_path / "sg",
            {
                "10": ["0,1.5,2.0,Gamma,0.25,3.0", "600,0,0,,0,0"],
                "2": ["0,0.5,1.0,Weibull,0.4,0.5", "600,2,1.1,Gamma,1,2"],
            },
        )
        windows = load_servegen(folder)
        assert windows.client_ids == ("2", "10")
        assert windows.window_s == 600.0
        assert windows.start_s.tolist() == [0.0, 600.0]
        assert windows.total_rate_per_s.tolist() == [2.0, 2.0]
        assert windows.requests_per_window.tolist() == [1200.0, 1200.0]
        assert windows.pattern.tolist() == [["Weibull", "Gamma"], ["Gamma", ""]]
        assert windows.arg1[1].tolist() == [0.25, 0.0]

    def test_bad_pattern_names_file_line_field(self, tmp_path: Path) -> None:
        """An unknown distribution name is an error naming the file, line and field."""
        folder = _write_servegen(
            tmp_path / "sg", {"0": ["0,1,1,Gamma,1,1", "600,1,1,Normal,1,1"]}
        )
        with pytest.raises(TraceError, match="pattern") as info:
            load_servegen(folder)
        assert info.value.line == 2
        assert info.value.path.endswith("chunk-0-trace.csv")

    def test_bad_rate(self, tmp_path: Path) -> None:
        """A negative rate is rejected with the field named."""
        folder = _write_servegen(tmp_path / "sg", {"0": ["0,-1,1,Gamma,1,1"]})
        with pytest.raises(TraceError, match="'rate'"):
            load_servegen(folder)

    def test_clients_must_agree_on_windows(self, tmp_path: Path) -> None:
        """Clients listing different windows are an error."""
        folder = _write_servegen(
            tmp_path / "sg", {"0": ["0,1,1,Gamma,1,1"], "1": ["600,1,1,Gamma,1,1"]}
        )
        with pytest.raises(TraceError, match="differ"):
            load_servegen(folder)

    def test_repo_m_large(self, repo_data: Path) -> None:
        """m-large has 162 clients over 2,016 windows of 600 s, about 196 req/s overall."""
        windows = load_servegen(repo_data / "traces/servegen/language/m-large")
        assert windows.rate_per_s.shape == (162, 2016)
        assert windows.window_s == 600.0
        assert float(windows.total_rate_per_s.mean()) == pytest.approx(196, rel=0.01)


class TestBucket:
    """Cutting request traces into intervals (spec §11.8, with empty intervals kept)."""

    def test_spec_case(self, tmp_path: Path) -> None:
        """The §11.8 records give counts 2 and 1, means 200/20 and 50/5, at I=180."""
        trace = load_requests(_write_mooncake(tmp_path / "t.jsonl", SPEC_RECORDS))
        series = bucket(trace, 180)
        assert series.start_s.tolist() == [0.0, 180.0]
        assert series.num_req.tolist() == [2.0, 1.0]
        assert series.isl_mean.tolist() == [200.0, 50.0]
        assert series.osl_mean.tolist() == [20.0, 5.0]

    def test_empty_intervals_are_kept_as_zero(self, tmp_path: Path) -> None:
        """Our delta: an empty interval is a zero-count interval with unknown lengths."""
        trace = load_requests(_write_mooncake(tmp_path / "t.jsonl", SPEC_RECORDS))
        series = bucket(trace, 60)
        assert series.start_s.tolist() == [0.0, 60.0, 120.0, 180.0]
        assert series.num_req.tolist() == [2.0, 0.0, 0.0, 1.0]
        assert math.isnan(series.isl_mean[1])
        assert math.isnan(series.osl_mean[2])
        assert series.isl_mean[3] == 50.0

    def test_complete_only_drops_last_interval(self, tmp_path: Path) -> None:
        """complete_only drops the interval the trace covers only in part."""
        trace = load_requests(_write_mooncake(tmp_path / "t.jsonl", SPEC_RECORDS))
        assert bucket(trace, 180, complete_only=True).num_req.tolist() == [2.0]

    def test_offset_trace_starts_at_first_interval(self) -> None:
        """A trace whose first request is late starts at that request's interval."""
        trace = RequestTrace(
            arrival_s=[125.0, 130.0, 250.0], isl_tokens=[1, 2, 3], osl_tokens=[1, 1, 1]
        )
        series = bucket(trace, 60)
        assert series.start_s.tolist() == [120.0, 180.0, 240.0]
        assert series.num_req.tolist() == [2.0, 0.0, 1.0]

    def test_rejects_bad_interval(self) -> None:
        """A zero or negative interval is a ValueError."""
        trace = RequestTrace(arrival_s=[0.0], isl_tokens=[1], osl_tokens=[1])
        with pytest.raises(ValueError, match="interval_s"):
            bucket(trace, 0)

    @given(
        st.lists(
            st.tuples(
                st.floats(0, 5000, allow_nan=False),
                st.integers(0, 10_000),
                st.integers(0, 2_000),
            ),
            min_size=1,
            max_size=60,
        ),
        st.sampled_from([1.0, 7.5, 60.0, 180.0]),
    )
    def test_conserves_requests_and_tokens(
        self, rows: list[tuple[float, int, int]], interval_s: float
    ) -> None:
        """Counts sum to the number of requests and count x mean to the token total."""
        rows.sort()
        trace = RequestTrace(
            arrival_s=[r[0] for r in rows],
            isl_tokens=[r[1] for r in rows],
            osl_tokens=[r[2] for r in rows],
        )
        series = bucket(trace, interval_s)
        assert series.num_req.sum() == len(rows)
        assert series.num_req[0] > 0
        assert series.num_req[-1] > 0
        isl_total = np.nansum(series.num_req * series.isl_mean)
        assert isl_total == pytest.approx(sum(r[1] for r in rows), rel=1e-9, abs=1e-6)
        assert np.all(np.diff(series.start_s) == pytest.approx(interval_s))


class TestLoadIntervals:
    """Reading any trace straight into an interval series."""

    def test_reference_series_lengths(self, repo_data: Path) -> None:
        """The shared traces give complete-interval series of the expected lengths."""
        mooncake = repo_data / "traces/mooncake/conversation_trace.jsonl"
        assert len(load_intervals(AZURE_CONV_TRACE, 60)) == 58
        assert len(load_intervals(AZURE_CONV_TRACE, 180)) == 19
        assert len(load_intervals(mooncake, 60)) == 58
        assert len(load_intervals(mooncake, 60, complete_only=False)) == 59

    def test_servegen_windows_and_multiples(self, tmp_path: Path) -> None:
        """ServeGen counts are rate x 600 s; a multiple interval sums whole groups."""
        folder = _write_servegen(
            tmp_path / "sg",
            {
                "0": ["0,1,1,Gamma,1,1", "600,2,1,Gamma,1,1", "1200,3,1,Gamma,1,1"],
                "1": ["0,1,1,Gamma,1,1", "600,0,0,,0,0", "1200,1,1,Gamma,1,1"],
            },
        )
        series = load_intervals(folder, 600)
        assert series.num_req.tolist() == [1200.0, 1200.0, 2400.0]
        assert bool(np.all(np.isnan(series.isl_mean)))
        doubled = load_intervals(folder, 1200)
        assert doubled.num_req.tolist() == [2400.0]
        assert doubled.start_s.tolist() == [0.0]
        partial = load_intervals(folder, 1200, complete_only=False)
        assert partial.num_req.tolist() == [2400.0, 2400.0]

    def test_servegen_interval_must_be_a_multiple(self, tmp_path: Path) -> None:
        """An interval that does not divide into windows is an error naming the window."""
        folder = _write_servegen(tmp_path / "sg", {"0": ["0,1,1,Gamma,1,1"]})
        with pytest.raises(TraceError, match="600 s"):
            load_intervals(folder, 900)


class _Recorder:
    """A predictor that records what it observed and whether it was re-armed."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.rearmed = False

    def observe(self, value: float) -> None:
        self.values.append(value)

    def predict(self) -> Forecast:
        return Forecast.point(self.values[-1] if self.values else 0.0)

    def rearm_idle_skip(self) -> None:
        self.rearmed = True


class TestWarmStart:
    """Feeding a past series into predictors (``--load-predictor-warmup-trace``)."""

    def test_feeds_in_order_and_skips_unknown_lengths(self) -> None:
        """num_req sees zeros; ISL/OSL skip empty intervals; everyone is re-armed."""
        series = IntervalSeries(
            start_s=[0, 60, 120],
            num_req=[2, 0, 1],
            isl_mean=[200, np.nan, 50],
            osl_mean=[20, np.nan, 5],
            interval_s=60,
        )
        recorders = {k: _Recorder() for k in ("num_req", "isl", "osl")}
        warm_start(recorders, series)
        assert recorders["num_req"].values == [2.0, 0.0, 1.0]
        assert recorders["isl"].values == [200.0, 50.0]
        assert recorders["osl"].values == [20.0, 5.0]
        assert all(r.rearmed for r in recorders.values())

    def test_servegen_lengths_are_skipped(self, tmp_path: Path) -> None:
        """A series without lengths feeds only the request count."""
        folder = _write_servegen(
            tmp_path / "sg", {"0": ["0,1,1,Gamma,1,1", "600,2,1,Gamma,1,1"]}
        )
        recorders = {k: _Recorder() for k in ("num_req", "isl")}
        warm_start(recorders, load_intervals(folder, 600))
        assert recorders["num_req"].values == [600.0, 1200.0]
        assert recorders["isl"].values == []

    def test_unknown_key(self) -> None:
        """A key other than num_req/isl/osl is a KeyError naming it."""
        series = IntervalSeries(
            start_s=[0], num_req=[1], isl_mean=[1], osl_mean=[1], interval_s=60
        )
        with pytest.raises(KeyError, match="ttft"):
            warm_start({"ttft": _Recorder()}, series)
