"""Tests of the auto predictor: the member with the lowest recent error is chosen."""

from __future__ import annotations

import numpy as np
import pytest

from dynamo_planner.predictors.auto import AutoPredictor


def _fed(values: object, **kwargs: object) -> AutoPredictor:
    predictor = AutoPredictor(**kwargs)  # type: ignore[arg-type]
    for value in values:  # type: ignore[attr-defined]
        predictor.observe(float(value))
    return predictor


class TestAutoChoice:
    """Which member is chosen, and what it forecasts."""

    def test_empty_and_first_value(self) -> None:
        """Nothing observed forecasts 0; one value forecasts that value."""
        predictor = AutoPredictor()
        assert predictor.predict().value == 0.0
        predictor.observe(42)
        assert predictor.predict().value == 42.0
        assert predictor.chosen == "constant"

    def test_random_walk_keeps_last_value(self) -> None:
        """On a random walk the last value is (and stays) the best member."""
        rng = np.random.default_rng(11)
        predictor = _fed(10_000 + np.cumsum(rng.normal(0, 100, 300)))
        assert predictor.chosen == "constant"

    def test_noisy_level_is_smoothed(self) -> None:
        """On noise around a fixed level a slow smoother or the mean wins."""
        rng = np.random.default_rng(12)
        predictor = _fed(500 + rng.normal(0, 50, 300))
        assert predictor.chosen in {"smoothing(0.2)", "smoothing(0.4)", "mean(3)"}
        scores = predictor.scores()
        assert scores[predictor.chosen] < scores["constant"]

    def test_trend_is_followed(self) -> None:
        """On a clean linear ramp the Holt member wins and forecasts the next step."""
        predictor = _fed(np.arange(100, 400, 3.0))
        assert predictor.chosen.startswith("holt")
        assert predictor.predict().value == pytest.approx(400, rel=0.01)

    def test_idle_skip_and_rearm(self) -> None:
        """Leading zeros are skipped; re-arming skips them again."""
        predictor = _fed([0, 0, 10])
        assert predictor.num_observed == 1
        predictor.rearm_idle_skip()
        predictor.observe(0)
        assert predictor.num_observed == 1


class TestAutoOptions:
    """Validation of the pool's options."""

    @pytest.mark.parametrize(
        ("field", "value"),
        [("smoothing_rates", (0.5, 1.5)), ("smoothing_rates", ()), ("mean_window", 1)],
    )
    def test_rejects_bad_options(self, field: str, value: object) -> None:
        """Invalid pool options raise ValueError naming the field."""
        with pytest.raises(ValueError, match=field):
            AutoPredictor(**{field: value})  # type: ignore[arg-type]

    def test_without_trend_member(self) -> None:
        """trend_rates=None leaves Holt out of the pool."""
        predictor = AutoPredictor(trend_rates=None)
        assert not any(name.startswith("holt") for name in predictor.member_names)
