"""Tests of the forecast backtest (library and ``dynamo-planner backtest``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from dynamo_planner.backtest import backtest, plot_backtest
from dynamo_planner.cli import main
from dynamo_planner.data import AZURE_CONV_TRACE
from dynamo_planner.exceptions import PluginNotFoundError
from dynamo_planner.predictors.constant import ConstantPredictor
from dynamo_planner.traces import IntervalSeries, load_intervals
from dynamo_planner.values import Forecast


def _series(num_req: list[float], isl: list[float] | None = None) -> IntervalSeries:
    n = len(num_req)
    lengths = isl if isl is not None else [100.0] * n
    return IntervalSeries(
        start_s=np.arange(n) * 60.0,
        num_req=num_req,
        isl_mean=lengths,
        osl_mean=lengths,
        interval_s=60.0,
        source="test",
    )


class _Fixed:
    """A predictor that always forecasts the same value."""

    def __init__(self, value: float) -> None:
        self.value = value

    def observe(self, value: float) -> None:
        pass

    def predict(self) -> Forecast:
        return Forecast.point(self.value)


class TestScoring:
    """The scoring rule of issue 3: from the 6th interval, sMAPE/MAE/under."""

    def test_constant_scores_by_hand(self) -> None:
        """sMAPE, MAE and the under-forecast share match a hand computation."""
        values = [10.0, 20, 30, 40, 50, 60, 30, 30]
        result = backtest(
            _series(values), {"last": ConstantPredictor}, keys=["num_req"]
        )
        score = result.scores["last"]["num_req"]
        f = np.array([50.0, 60, 30])
        a = np.array([60.0, 30, 30])
        assert score.smape == pytest.approx(np.mean(2 * abs(f - a) / (f + a)))
        assert score.mae == pytest.approx(np.mean(abs(f - a)))
        assert score.under == pytest.approx(1 / 3)
        assert score.scored == 3
        assert math.isnan(result.forecasts["last"]["num_req"][4])
        assert result.forecasts["last"]["num_req"][5] == 50.0

    def test_zero_against_zero_counts_zero(self) -> None:
        """An interval forecast 0 whose actual is 0 scores 0, not NaN."""
        values = [5.0, 5, 5, 5, 5, 0, 0, 0]
        result = backtest(
            _series(values), {"zero": lambda: _Fixed(0.0)}, keys=["num_req"]
        )
        score = result.scores["zero"]["num_req"]
        assert score.smape == 0.0
        assert score.under == 0.0

    def test_unknown_lengths_are_not_scored(self) -> None:
        """ISL of empty intervals (and NaN means) are neither fed nor scored."""
        counts = [3.0, 3, 3, 3, 3, 0, 3, 3]
        isl = [100.0, 100, 100, 100, 100, 5.0, 100, np.nan]
        result = backtest(
            _series(counts, isl), {"last": ConstantPredictor}, keys=["isl"]
        )
        score = result.scores["last"]["isl"]
        assert score.scored == 1
        assert score.smape == 0.0

    def test_start_index_and_progress(self) -> None:
        """start_index moves the first scored interval; progress reaches the total."""
        calls: list[tuple[str, str, int, int]] = []
        result = backtest(
            _series([1.0, 2, 3, 4, 5, 6]),
            {"last": ConstantPredictor},
            start_index=2,
            keys=["num_req"],
            progress=lambda *args: calls.append(args),
        )
        assert result.scores["last"]["num_req"].scored == 4
        assert calls[-1] == ("last", "num_req", 6, 6)

    def test_bad_arguments(self) -> None:
        """A negative start, an unknown series or predictor name are errors."""
        series = _series([1.0, 2, 3])
        with pytest.raises(ValueError, match="start_index"):
            backtest(series, {"last": ConstantPredictor}, start_index=-1)
        with pytest.raises(ValueError, match="ttft"):
            backtest(series, {"last": ConstantPredictor}, keys=["ttft"])
        with pytest.raises(PluginNotFoundError, match="nope"):
            backtest(series, ["nope"])


class TestReferenceFigures:
    """The constant predictor reproduces the reference's figures on the shared traces."""

    @pytest.mark.parametrize(
        ("trace", "interval_s", "expected"),
        [
            ("azure", 60, 0.079),
            ("azure", 180, 0.098),
            ("traces/mooncake/conversation_trace.jsonl", 60, 0.114),
            ("traces/mooncake/conversation_trace.jsonl", 180, 0.050),
            ("traces/servegen/language/m-large", 600, 0.105),
        ],
    )
    def test_constant_smape(
        self, repo_data: Path, trace: str, interval_s: int, expected: float
    ) -> None:
        """sMAPE of the request count matches the issue's table to three decimals."""
        path = AZURE_CONV_TRACE if trace == "azure" else repo_data / trace
        series = load_intervals(path, interval_s)
        result = backtest(series, ["constant"], keys=["num_req"])
        assert result.scores["constant"]["num_req"].smape == pytest.approx(
            expected, abs=5e-4
        )


class TestCommand:
    """``dynamo-planner backtest``."""

    def _trace(self, tmp_path: Path) -> Path:
        rng = np.random.default_rng(1)
        lines = []
        for second in np.sort(rng.uniform(0, 1200, 400)):
            record = {
                "timestamp": int(second * 1000),
                "input_length": 100,
                "output_length": 10,
            }
            lines.append(json.dumps(record))
        path = tmp_path / "trace.jsonl"
        path.write_text("\n".join(lines) + "\n")
        return path

    def test_json_shape(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--format json prints {predictor: {series: {smape, mae, under, step_ms_*}}}."""
        trace = self._trace(tmp_path)
        status = main(
            ["backtest", "--trace", str(trace), "--interval", "60",
             "--predictors", "kalman,auto", "--format", "json", "--quiet"]
        )  # fmt: skip
        assert status == 0
        data = json.loads(capsys.readouterr().out)
        assert set(data) == {"constant", "kalman", "auto"}
        for by_series in data.values():
            assert set(by_series) == {"num_req", "isl", "osl"}
            for score in by_series.values():
                assert set(score) == {
                    "smape",
                    "mae",
                    "under",
                    "step_ms_median",
                    "step_ms_p99",
                }
        assert data["constant"]["isl"]["smape"] == 0.0

    def test_text_table_and_plot(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The text output names the baseline; --plot writes an image."""
        trace = self._trace(tmp_path)
        plot = tmp_path / "bt.png"
        status = main(
            ["backtest", "--trace", str(trace), "--interval", "60", "--predictors", "auto",
             "--series", "num_req", "--plot", str(plot), "--quiet"]
        )  # fmt: skip
        assert status == 0
        out = capsys.readouterr().out
        assert "constant (baseline)" in out
        assert "auto" in out
        assert plot.stat().st_size > 1000

    def test_unknown_predictor(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An unknown predictor name exits 2 naming what is available."""
        trace = self._trace(tmp_path)
        status = main(
            [
                "backtest",
                "--trace",
                str(trace),
                "--interval",
                "60",
                "--predictors",
                "oracle",
            ]
        )
        assert status == 2
        assert "available" in capsys.readouterr().err

    def test_plot_function(self, tmp_path: Path) -> None:
        """plot_backtest draws all three series into an SVG."""
        series = _series([10.0, 12, 11, 13, 12, 14, 13, 15])
        result = backtest(series, {"last": ConstantPredictor})
        plot_backtest(result, tmp_path / "plot.svg")
        assert "<svg" in (tmp_path / "plot.svg").read_text()[:500]
