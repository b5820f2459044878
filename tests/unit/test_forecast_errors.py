"""The forecast's recent errors and the expected misses over them."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_planner.scalers.forecast_errors import (
    ERROR_HISTORY_S,
    MIN_ERRORS,
    ForecastErrors,
    expected_miss_share,
)


def recorded(counts: list[float], interval_s: float = 60.0) -> ForecastErrors:
    """Errors of a constant forecast (each count forecasts the next) over ``counts``."""
    errors = ForecastErrors()
    for i, count in enumerate(counts):
        errors.record(count if i else None, count, interval_s)
    return errors


class TestRecord:
    def test_error_is_observed_over_the_previous_forecast(self) -> None:
        errors = ForecastErrors()
        errors.record(None, 200.0, 60.0)
        errors.record(250.0, 250.0, 60.0)
        errors.record(200.0, 100.0, 60.0)
        assert errors.errors == pytest.approx((0.25, -0.2))
        assert errors.largest == pytest.approx(0.25)

    def test_unknown_count_records_nothing_and_keeps_the_new_forecast(self) -> None:
        """An interval with no count breaks the chain: the forecast made then is the
        next one compared, not the one before it."""
        errors = ForecastErrors()
        errors.record(None, 100.0, 60.0)
        errors.record(None, 200.0, 60.0)
        errors.record(220.0, 220.0, 60.0)
        assert errors.errors == pytest.approx((0.1,))

    def test_a_zero_or_non_finite_forecast_is_not_compared(self) -> None:
        errors = ForecastErrors()
        errors.record(None, 0.0, 60.0)
        errors.record(50.0, float("nan"), 60.0)
        errors.record(50.0, 50.0, 60.0)
        errors.record(60.0, 60.0, 60.0)
        assert errors.errors == pytest.approx((0.2,))

    @pytest.mark.parametrize(("interval_s", "kept"), [(60.0, 60), (180.0, 20)])
    def test_keeps_the_last_hour(self, interval_s: float, kept: int) -> None:
        """The oldest errors fall out once the intervals span more than an hour."""
        counts = [100.0 + (i % 7) for i in range(200)]
        errors = recorded(counts, interval_s)
        assert len(errors.errors) == kept == round(ERROR_HISTORY_S / interval_s)
        assert errors.errors[-1] == pytest.approx(counts[-1] / counts[-2] - 1.0)

    def test_an_interval_longer_than_the_history_keeps_its_error(self) -> None:
        errors = recorded([100.0, 150.0], interval_s=2 * ERROR_HISTORY_S)
        assert errors.errors == pytest.approx((0.5,))


class TestScenarios:
    def test_too_few_errors_give_none(self) -> None:
        errors = recorded([100.0] * MIN_ERRORS)
        assert len(errors.errors) == MIN_ERRORS - 1
        assert errors.scenarios(10.0) is None

    def test_the_forecast_times_each_error(self) -> None:
        errors = recorded([100.0, 100.0, 130.0, 65.0])
        rates = errors.scenarios(20.0)
        assert rates is not None
        np.testing.assert_allclose(rates, [20.0, 26.0, 10.0])

    def test_kept_share_of_each_error(self) -> None:
        """Only the part of each error that is not the next interval's own draw."""
        errors = recorded([100.0, 100.0, 130.0, 65.0])
        rates = errors.scenarios(20.0, kept=0.5)
        assert rates is not None
        np.testing.assert_allclose(rates, [20.0, 23.0, 15.0])

    def test_never_negative(self) -> None:
        errors = ForecastErrors()
        errors.record(None, 100.0, 60.0)
        for observed in (0.0, 100.0, 100.0):
            errors.record(observed, 100.0, 60.0)
        rates = errors.scenarios(10.0)
        assert rates is not None
        assert rates.min() == 0.0


class TestExpectedMissShare:
    def test_weighs_each_scenario_by_its_requests(self) -> None:
        """Half the requests of a scenario at 30/s miss, none at 10/s: 15 of 40."""
        share = expected_miss_share(
            np.array([10.0, 30.0]), lambda rate: 0.5 if rate > 20.0 else 0.0
        )
        assert share == pytest.approx(15.0 / 40.0)

    def test_no_requests_no_misses(self) -> None:
        assert expected_miss_share(np.zeros(3), lambda rate: 1.0) == 0.0

    @given(
        changes=st.lists(
            st.floats(min_value=-0.9, max_value=2.0), min_size=MIN_ERRORS, max_size=40
        ),
        rate=st.floats(min_value=0.1, max_value=1000.0),
        more=st.floats(min_value=0.0, max_value=1000.0),
    )
    def test_more_demand_never_misses_less(
        self, changes: list[float], rate: float, more: float
    ) -> None:
        """With a miss share that grows with the rate, so does the expected share."""
        errors = ForecastErrors()
        errors.record(None, 100.0, 60.0)
        for change in changes:
            errors.record(100.0 * (1.0 + change), 100.0, 60.0)

        def miss(r: float) -> float:
            return min(1.0, r / 2000.0)

        low, high = errors.scenarios(rate), errors.scenarios(rate + more)
        assert low is not None
        assert high is not None
        assert expected_miss_share(high, miss) >= expected_miss_share(low, miss) - 1e-12
