"""Tests of the ARIMA predictor (spec §3.3, §11.7, and our bounded re-selection)."""

from __future__ import annotations

import numpy as np
import pytest

from dynamo_planner.config import PlannerConfig
from dynamo_planner.predictors.arima import ARIMAPredictor, _css_fit


def _fed(values: object, **kwargs: object) -> ARIMAPredictor:
    predictor = ARIMAPredictor(**kwargs)  # type: ignore[arg-type]
    for value in values:  # type: ignore[attr-defined]
        predictor.observe(float(value))
    return predictor


class TestArimaSpec:
    """The behavioural ARIMA cases of spec §11.7."""

    def test_fewer_than_five_is_last_value(self) -> None:
        """With fewer than 5 values the forecast is the last value and nothing is fitted."""
        predictor = _fed([10, 30, 20, 40])
        assert predictor.predict().value == 40.0
        assert predictor.order is None

    def test_constant_series_without_fitting(self) -> None:
        """[7] * 6 forecasts 7 and fits no model (pmdarima issue #572)."""
        predictor = _fed([7] * 6)
        assert predictor.predict().value == 7.0
        assert predictor.selections == 0

    def test_output_non_negative(self) -> None:
        """A series falling towards zero never gives a negative forecast or upper bound."""
        predictor = ARIMAPredictor()
        for value in (500, 420, 300, 210, 120, 60, 20, 5, 1, 0, 0):
            predictor.observe(value)
            forecast = predictor.predict()
            assert forecast.value >= 0
            assert forecast.upper >= forecast.value

    def test_collapse_switches_to_log1p(self) -> None:
        """Reference policy: a raw (0, d, 0) fit moves the model to log1p space for good."""
        predictor = _fed([10, 12, 11, 13, 12, 14], collapse_fallback="reference")
        assert predictor.order is not None
        assert predictor.order[0] == predictor.order[2] == 0
        assert predictor.mode == "log1p"

    def test_no_switch_when_log1p_requested(self) -> None:
        """With log1p requested the model is in log space from the start."""
        predictor = _fed([10, 12, 11, 13, 12, 14], log1p=True)
        assert predictor.mode == "log1p"


class TestArimaCollapseCompare:
    """Our default fallback keeps the log model only when it fits better."""

    def test_additive_noise_stays_raw(self) -> None:
        """A level with small additive noise collapses but the raw model is kept."""
        predictor = _fed([10, 12, 11, 13, 12, 14])
        assert predictor.mode == "raw"
        assert predictor.predict().value == pytest.approx(12.0, abs=1.0)

    def test_multiplicative_noise_goes_log(self) -> None:
        """Log-normal values around a level are better fitted in log1p space."""
        predictor = _fed([29, 27, 21, 35, 10, 17, 12, 37])
        assert predictor.mode == "log1p"
        assert predictor.order == (0, 0, 0)

    def test_off_never_falls_back(self) -> None:
        """collapse_fallback='off' keeps the raw collapsed model."""
        predictor = _fed([29, 27, 21, 35, 10, 17, 12, 37], collapse_fallback="off")
        assert predictor.mode == "raw"


class TestArimaReselection:
    """The order is re-selected on a bounded window, one bounded step at a time."""

    def test_ar1_is_found_and_forecast(self) -> None:
        """On a long AR(1) series the forecast is close to the AR(1) one-step mean."""
        rng = np.random.default_rng(3)
        values = [100.0]
        for _ in range(299):
            values.append(100 + 0.8 * (values[-1] - 100) + rng.normal(0, 5))
        predictor = _fed(values)
        expected = 100 + 0.8 * (values[-1] - 100)
        assert predictor.predict().value == pytest.approx(expected, abs=3.0)
        assert predictor.order is not None
        assert predictor.order[0] >= 1

    def test_reselects_periodically(self) -> None:
        """Searches keep completing on a long series; reselect_every=None stops after one."""
        rng = np.random.default_rng(4)
        values = 1000 + np.cumsum(rng.normal(0, 10, 300))
        reselecting = _fed(values, reselect_every=50)
        frozen = _fed(values, reselect_every=None)
        assert reselecting.selections >= 10
        assert frozen.selections == 1
        assert frozen.predict().value > 0

    def test_window_bounds_the_state(self) -> None:
        """Only the last `window` values are kept, whatever the history."""
        predictor = _fed(np.arange(1, 400, dtype=float), window=50)
        assert len(predictor._raw) == 50

    def test_upper_quantile_is_the_model_spread(self) -> None:
        """The upper bound is mean + z * sigma of the fitted model."""
        rng = np.random.default_rng(5)
        predictor = _fed(500 + rng.normal(0, 10, 120))
        forecast = predictor.predict()
        assert 5 < forecast.upper - forecast.value < 30

    def test_mle_method_refits(self) -> None:
        """method='mle' refits the winner with pmdarima and still forecasts sensibly."""
        rng = np.random.default_rng(6)
        values = 300 + rng.normal(0, 10, 45)
        predictor = _fed(values, method="mle", reselect_every=None)
        assert 250 < predictor.predict().value < 350


class TestCssFit:
    """The conditional-sum-of-squares estimator behind the search."""

    def test_recovers_ar_and_ma(self) -> None:
        """ARMA(1, 1) coefficients are recovered from a long simulated series."""
        rng = np.random.default_rng(8)
        e = rng.normal(0, 1, 3000)
        w = np.zeros(3000)
        for t in range(1, 3000):
            w[t] = 2.0 + 0.6 * w[t - 1] + e[t] + 0.3 * e[t - 1]
        params, sigma2, aic = _css_fit(w, 1, 1, True, 1)
        assert params == pytest.approx([2.0, 0.6, 0.3], abs=0.08)
        assert sigma2 == pytest.approx(1.0, rel=0.1)
        assert np.isfinite(aic)

    def test_non_invertible_is_ruled_out(self) -> None:
        """Too few values for the parameters gives an infinite AIC."""
        _, _, aic = _css_fit(np.array([1.0, 2.0, 3.0]), 2, 2, True, 2)
        assert aic == np.inf


class TestArimaConfig:
    """Construction and validation."""

    def test_from_config(self) -> None:
        """from_config reads log1p and the quantile level."""
        predictor = ARIMAPredictor.from_config(
            PlannerConfig(load_predictor_log1p=True, forecast_quantile=0.95)
        )
        assert predictor.log1p is True
        assert predictor.forecast_quantile == 0.95

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("window", 5),
            ("reselect_every", 0),
            ("method", "bayes"),
            ("collapse_fallback", "x"),
        ],
    )
    def test_rejects_bad_options(self, field: str, value: object) -> None:
        """Out-of-range options raise ValueError naming the field."""
        with pytest.raises(ValueError, match=field):
            ARIMAPredictor(**{field: value})  # type: ignore[arg-type]

    def test_rejects_nan(self) -> None:
        """NaN is refused with ValueError."""
        with pytest.raises(ValueError, match="finite"):
            ARIMAPredictor().observe(float("nan"))
