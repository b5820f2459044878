"""Tests of the Prophet predictor (spec §3.5, §11.7, issue #7211)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from dynamo_planner.config import PlannerConfig
from dynamo_planner.predictors.prophet import ProphetPredictor


def _fed(values: list[float], **kwargs: Any) -> ProphetPredictor:
    predictor = ProphetPredictor(**kwargs)
    for value in values:
        predictor.observe(value)
    return predictor


class TestProphetSpec:
    """The Prophet cases of spec §11.7 that need no fit."""

    def test_few_points_is_last_value(self) -> None:
        """[10, 20, 30] forecasts 30; nothing observed forecasts 0."""
        assert _fed([10, 20, 30]).predict().value == 30.0
        assert ProphetPredictor().predict().value == 0.0

    def test_step_counts_accepted_values(self) -> None:
        """The step is 0 after [0, 0] (idle-skip), 1 after 5.0 and 2 after 6.0."""
        predictor = _fed([0, 0])
        assert predictor.num_observed == 0
        predictor.observe(5.0)
        assert predictor.num_observed == 1
        predictor.observe(6.0)
        assert predictor.num_observed == 2

    def test_window_is_bounded(self) -> None:
        """With window_size 5, 19 values keep at most 5."""
        predictor = _fed([float(v) for v in range(1, 20)], window_size=5)
        assert len(predictor.window) <= 5
        assert predictor.window[-1] == 19.0

    def test_log1p_storage(self) -> None:
        """log1p mode stores log1p(99) and reports 99 as the last value."""
        predictor = _fed([99.0], log1p=True)
        assert predictor.window == (math.log1p(99.0),)
        assert predictor.last_value == pytest.approx(99.0, abs=1e-6)

    @pytest.mark.parametrize("step_s", [30, 60, 120, 180, 300])
    def test_next_timestamp_is_one_step_on(self, step_s: int) -> None:
        """The forecast timestamp is the last training ds plus step_s (the #7211 fix)."""
        predictor = _fed(
            [float(v) for v in range(10, 18)], step_s=step_s, window_size=5
        )
        stamps = predictor.timestamps()
        assert len(stamps) == 5
        assert predictor.next_timestamp() == stamps[-1] + pd.Timedelta(seconds=step_s)
        assert stamps[0] == pd.Timestamp("2024-01-01") + pd.Timedelta(
            seconds=3 * step_s
        )


@pytest.mark.slow
class TestProphetFits:
    """Cases that fit Prophet (about 0.1-0.3 s each)."""

    def test_fit_uses_next_timestamp(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The frame given to Prophet.predict holds exactly the next interval's ds."""
        from prophet import Prophet

        seen: list[Any] = []
        original = Prophet.predict

        def spy(self: Prophet, df: pd.DataFrame | None = None, **kwargs: Any) -> Any:
            seen.append(df)
            return original(self, df, **kwargs)

        monkeypatch.setattr(Prophet, "predict", spy)
        predictor = _fed([100, 110, 120, 130, 140, 150], step_s=60)
        forecast = predictor.predict()
        assert list(seen[0]["ds"]) == [predictor.next_timestamp()]
        assert forecast.value == pytest.approx(160, rel=0.05)

    @pytest.mark.parametrize("log1p", [False, True])
    def test_non_negative_and_reproducible(self, log1p: bool) -> None:
        """On a steep decline the forecast is >= 0, and two fits agree exactly."""
        values = [900, 700, 500, 300, 150, 50, 10]
        first = _fed(values, log1p=log1p).predict()
        second = _fed(values, log1p=log1p).predict()
        assert first.value >= 0
        assert first.upper >= first.value
        assert first == second


class TestProphetConfig:
    """Construction from the planner configuration."""

    def test_from_config(self) -> None:
        """Window, step (the adjustment interval), log1p and quantile come from config."""
        config = PlannerConfig(
            prophet_window_size=30,
            adjustment_interval_s=60,
            load_predictor_log1p=True,
            forecast_quantile=0.8,
        )
        predictor = ProphetPredictor.from_config(config)
        assert predictor.window_size == 30
        assert predictor.step_s == 60.0
        assert predictor.log1p is True
        assert predictor.forecast_quantile == 0.8
