"""Tests of the constant predictor and the shared helpers (spec §3.1, §3.2, §11.7)."""

from __future__ import annotations

import math

import pytest

from dynamo_planner.config import PlannerConfig
from dynamo_planner.predictors._base import IdleSkip, ResidualBand, check_value
from dynamo_planner.predictors.constant import ConstantPredictor


def _fed(values: list[float], **kwargs: float) -> ConstantPredictor:
    predictor = ConstantPredictor(**kwargs)  # type: ignore[arg-type]
    for value in values:
        predictor.observe(value)
    return predictor


class TestConstantSpec:
    """The constant cases of spec §11.7."""

    def test_empty_is_zero(self) -> None:
        """Nothing observed forecasts 0."""
        assert ConstantPredictor().predict().value == 0.0

    def test_last_value(self) -> None:
        """[10, 20, 30] forecasts 30."""
        assert _fed([10, 20, 30]).predict().value == 30.0

    def test_leading_zeros_are_skipped(self) -> None:
        """[0, 0] forecasts 0 with nothing kept (idle-skip)."""
        predictor = _fed([0, 0])
        assert predictor.predict().value == 0.0
        assert predictor.num_observed == 0

    def test_zeros_after_traffic_are_kept(self) -> None:
        """[5, 0] forecasts 0 with both values kept."""
        predictor = _fed([5, 0])
        assert predictor.predict().value == 0.0
        assert predictor.num_observed == 2

    def test_nan_is_refused_not_zeroed(self) -> None:
        """Our delta: NaN raises instead of becoming 0; the forecast stays the last value."""
        predictor = _fed([10])
        with pytest.raises(ValueError, match="finite"):
            predictor.observe(math.nan)
        assert predictor.predict().value == 10.0


class TestConstantExtras:
    """Quantiles, re-arming and configuration."""

    def test_upper_from_recent_changes(self) -> None:
        """The upper quantile is above the value once changes have been seen."""
        forecast = _fed([100, 120, 90, 130, 100, 110]).predict()
        assert forecast.value == 110.0
        assert forecast.upper > forecast.value
        assert forecast.quantile == 0.75  # the default level

    def test_rearm_skips_zeros_again(self) -> None:
        """After rearm_idle_skip, zeros are dropped until traffic returns."""
        predictor = _fed([5])
        predictor.rearm_idle_skip()
        predictor.observe(0)
        assert predictor.num_observed == 1
        assert predictor.predict().value == 5.0

    def test_from_config_reads_quantile(self) -> None:
        """from_config takes forecast_quantile from the planner configuration."""
        predictor = ConstantPredictor.from_config(PlannerConfig(forecast_quantile=0.95))
        assert predictor.forecast_quantile == 0.95

    @pytest.mark.parametrize("level", [0.0, 1.0, 1.5])
    def test_rejects_bad_quantile(self, level: float) -> None:
        """A quantile level outside (0, 1) is a ValueError naming the field."""
        with pytest.raises(ValueError, match="forecast_quantile"):
            ConstantPredictor(forecast_quantile=level)


class TestHelpers:
    """The pieces every predictor composes."""

    @pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1.0])
    def test_check_value_refuses(self, bad: float) -> None:
        """NaN, infinities and negatives are refused."""
        with pytest.raises(ValueError, match="finite and >= 0"):
            check_value(bad)

    def test_idle_skip(self) -> None:
        """Zeros are dropped until a non-zero value, then kept, until re-armed."""
        idle = IdleSkip()
        assert [idle.accept(v) for v in (0, 0, 3, 0)] == [False, False, True, True]
        idle.rearm()
        assert idle.accept(0) is False

    def test_residual_band_scales_with_level(self) -> None:
        """Errors kept in log space give a band proportional to the level."""
        band = ResidualBand(10)
        for forecast, actual in [(100, 110), (100, 90), (100, 120), (100, 100)]:
            band.record(forecast, actual)
        low, high = band.upper(10.0, 0.9), band.upper(1000.0, 0.9)
        assert low > 10.0
        assert high / 1000.0 == pytest.approx((low + 1) / 11.0, rel=0.05)

    def test_residual_band_needs_two_errors(self) -> None:
        """With fewer than two errors the upper quantile is the value itself."""
        band = ResidualBand(10)
        band.record(10, 20)
        assert band.upper(10.0, 0.9) == 10.0
