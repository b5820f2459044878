"""Protocol contract suites: mix one into a pytest class to check an implementation.

Like keyring's backend tests and fsspec's abstract tests, each suite is a class of test
methods that asks the including test class for the object under test through a fixture. A
third-party plugin checks itself with::

    import pytest
    from dynamo_planner.testing.contracts import PredictorContract


    class TestMyPredictor(PredictorContract):
        @pytest.fixture
        def make_predictor(self):
            return lambda: MyPredictor(window=10)

The suites import pytest; they are for tests only.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import ClassVar

import pytest

from dynamo_planner.protocols import Predictor
from dynamo_planner.values import Forecast

__all__ = ["PredictorContract"]


def _check_forecast(forecast: Forecast, where: str) -> None:
    assert isinstance(forecast, Forecast), f"{where}: predict() returned {forecast!r}"
    assert math.isfinite(forecast.value), (
        f"{where}: forecast {forecast.value} is not finite"
    )
    assert forecast.value >= 0, f"{where}: forecast {forecast.value} is negative"
    assert math.isfinite(forecast.upper), (
        f"{where}: upper {forecast.upper} is not finite"
    )
    assert forecast.upper >= forecast.value, (
        f"{where}: upper {forecast.upper} is below the forecast {forecast.value}"
    )
    assert 0 < forecast.quantile < 1, (
        f"{where}: quantile {forecast.quantile} not in (0, 1)"
    )


class PredictorContract:
    """The :class:`~dynamo_planner.protocols.Predictor` contract.

    The including class provides a ``make_predictor`` fixture: a zero-argument callable
    returning a fresh predictor. It may override :attr:`series` (the values fed), and
    :attr:`predict_every` (forecast after every value, or only at the end, for slow
    predictors).

    What it checks:

    * the object satisfies the Protocol;
    * before any value, and after every value, the forecast is finite and not negative,
      with ``upper >= value`` and a quantile level in (0, 1), including on a series that
      falls steeply towards zero and one with idle zeros and spikes;
    * ``predict()`` has no side effects: asking twice gives the same forecast, and a
      predictor asked after every value forecasts exactly like one asked only at the end.
    """

    series: ClassVar[Sequence[float]] = (
        0.0, 0.0, 120.0, 135.0, 128.0, 160.0, 90.0, 0.0, 40.0, 300.0, 280.0, 150.0,
        60.0, 20.0, 5.0, 1.0, 0.0,
    )  # fmt: skip
    """A series with leading zeros, a spike, an idle interval and a steep fall to zero."""

    predict_every: ClassVar[bool] = True
    """Forecast after every value (set False for predictors that are slow to fit)."""

    @pytest.fixture
    def make_predictor(self) -> Callable[[], Predictor]:
        """Override: a zero-argument callable returning a fresh predictor."""
        raise NotImplementedError("provide a make_predictor fixture")

    def test_satisfies_protocol(self, make_predictor: Callable[[], Predictor]) -> None:
        """The object has the Protocol's observe and predict."""
        assert isinstance(make_predictor(), Predictor)

    def test_forecast_before_any_value(
        self, make_predictor: Callable[[], Predictor]
    ) -> None:
        """With nothing observed, the forecast is a valid non-negative number."""
        _check_forecast(make_predictor().predict(), "before any value")

    def test_never_nan_or_negative(
        self, make_predictor: Callable[[], Predictor]
    ) -> None:
        """Every forecast along the series (and its upper quantile) is finite and >= 0."""
        predictor = make_predictor()
        for index, value in enumerate(self.series):
            predictor.observe(value)
            if self.predict_every or index == len(self.series) - 1:
                _check_forecast(predictor.predict(), f"after value #{index} ({value})")

    def test_predict_twice_gives_the_same(
        self, make_predictor: Callable[[], Predictor]
    ) -> None:
        """Two predict() calls without a new value return equal forecasts."""
        predictor = make_predictor()
        for value in self.series[:9]:
            predictor.observe(value)
        first = predictor.predict()
        assert predictor.predict() == first

    def test_predict_has_no_side_effects(
        self, make_predictor: Callable[[], Predictor]
    ) -> None:
        """Asking for forecasts along the way does not change later forecasts."""
        asked, quiet = make_predictor(), make_predictor()
        stop = len(self.series) if self.predict_every else 9
        for value in self.series[:stop]:
            asked.observe(value)
            asked.predict()
            asked.predict()
            quiet.observe(value)
        assert asked.predict() == quiet.predict()
