"""DemandHistory: the recent counts and the request count and lengths they size for."""

from __future__ import annotations

from typing import Any

import pytest

from dynamo_planner.scalers.demand_history import MIN_SPREAD_POINTS, DemandHistory
from dynamo_planner.values import Demand, Forecast, Observation

INTERVAL_S = 60.0


def history(**options: Any) -> DemandHistory:
    options.setdefault("intervals", 5)
    options.setdefault("prior_spread", 0.1)
    options.setdefault("remove_own_noise", False)
    options.setdefault("cold_start_s", 60.0)
    return DemandHistory(**options)


def demand(
    num_req: float,
    *,
    upper: float | None = None,
    isl: float = 1000.0,
    osl: float = 200.0,
    peak: float | None = None,
) -> Demand:
    return Demand(
        interval_s=INTERVAL_S,
        num_req=Forecast(num_req, num_req if upper is None else upper, 0.9),
        isl_tokens=Forecast.point(isl),
        osl_tokens=Forecast.point(osl),
        peak_num_req=peak,
    )


def seen(
    num_req: float | None, *, isl: float | None = 1000.0, osl: float | None = 200.0
) -> Observation:
    return Observation(
        interval_s=INTERVAL_S, num_req=num_req, isl_tokens=isl, osl_tokens=osl
    )


def test_unknown_counts_are_not_recorded_as_zero() -> None:
    """An interval without a request count leaves the series as it was."""
    h = history()
    for count in (100.0, None, 200.0):
        h.record(seen(count))
    assert h.counts == [100.0, 200.0]


def test_only_the_last_intervals_are_kept() -> None:
    """The series keeps ``intervals + 1`` counts, the newest."""
    h = history(intervals=2)
    for count in (1.0, 2.0, 3.0, 4.0):
        h.record(seen(count))
    assert h.counts == [2.0, 3.0, 4.0]


def test_short_history_uses_the_prior_spread() -> None:
    """Without a band and with too few counts, the prior adds its share of the forecast."""
    h = history(prior_spread=0.1, cold_start_s=0.0)
    details: dict[str, Any] = {}
    count, words = h.sized_num_req(demand(1000.0), 1.0, details)
    assert count == pytest.approx(1100.0)
    assert details["upper_num_req"] == pytest.approx(1100.0)
    assert "prior 10%" in words[0]


def test_enough_history_uses_the_measured_changes() -> None:
    """With enough counts the band comes from their changes, not the prior."""
    h = history(prior_spread=10.0, cold_start_s=0.0)
    for count in (1000.0, 1040.0, 1000.0, 1040.0):
        h.record(seen(count))
    assert len(h.counts) >= MIN_SPREAD_POINTS
    count, words = h.sized_num_req(demand(1000.0), 1.0, {})
    assert 1000.0 < count < 2000.0
    assert "interval-to-interval changes" in words[0]


def test_a_ramp_is_extrapolated_over_the_cold_start() -> None:
    """A steady rise adds its slope for each interval the lookahead reaches past."""
    flat, ramp = history(cold_start_s=120.0), history(cold_start_s=120.0)
    for step in range(6):
        flat.record(seen(1000.0))
        ramp.record(seen(1000.0 + 100.0 * step))
    banded = demand(1500.0, upper=1600.0)
    flat_count, _ = flat.sized_num_req(banded, 1.0, {})
    ramp_count, words = ramp.sized_num_req(banded, 1.0, {})
    assert flat_count == pytest.approx(1600.0)
    assert ramp_count - flat_count == pytest.approx(100.0 * 2.5)
    assert "trend +100.0 requests/interval" in words[0]


def test_a_turn_stops_the_lookahead() -> None:
    """A fall beyond the counts' own noise ends the ramp: no trend, not rising."""
    h = history()
    for count in (1000.0, 2000.0, 3000.0, 4000.0, 5000.0, 4000.0):
        h.record(seen(count))
    assert h.turned(1.0)
    assert h.slope_rising()
    assert not h.rising(2.0, 1.0)
    count, words = h.sized_num_req(demand(4000.0), 1.0, {})
    assert count < 4000.0 * 1.5
    assert "demand has turned" in words[0]


def test_the_planner_peak_replaces_the_trend() -> None:
    """A planner that looked ahead gives the peak; the scaler sizes for it."""
    h = history()
    count, words = h.sized_num_req(demand(1000.0, peak=3000.0), 1.0, {})
    assert count == 3000.0
    assert "the planner's peak 3,000" in words[0]


def test_forecast_dips_name_what_fell() -> None:
    """The words name each forecast value below the last interval's."""
    h = history()
    assert h.forecast_dips(demand(500.0)) == ""
    h.record(seen(1000.0, isl=2000.0, osl=100.0))
    words = h.forecast_dips(demand(500.0, isl=1000.0, osl=200.0))
    assert words == "requests (500 < 1,000), mean ISL (1,000 < 2,000)"


def test_rising_lengths_raise_the_sized_lengths() -> None:
    """Mean lengths that rise are extrapolated like the count."""
    h = history(cold_start_s=60.0)
    for step in range(4):
        h.record(seen(1000.0, isl=1000.0 + 50.0 * step, osl=200.0))
    details: dict[str, Any] = {}
    isl, osl = h.sized_lengths(demand(1000.0), details)
    assert isl == pytest.approx(1000.0 + 50.0 * 1.5)
    assert osl == pytest.approx(200.0)
    assert details["peak_isl_tokens"] == isl
