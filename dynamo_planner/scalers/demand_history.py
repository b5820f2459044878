"""The recent request counts and mean lengths, and the demand they say to size for.

The ``sla`` scaler sizes for more than the forecast: its upper quantile, narrowed by the
next interval's own draw, then raised to the largest demand expected before a worker asked
for now would serve (the module doc of :mod:`~dynamo_planner.scalers.sla`, "Demand").
:class:`DemandHistory` keeps what that needs from the last few intervals (the observed
request counts, the mean ISL and OSL, and their sampling noise) and answers the scaler's
questions of them:

* :meth:`DemandHistory.sized_num_req` and :meth:`DemandHistory.sized_lengths`: the request
  count and the mean lengths to size for, and the words saying how they were reached;
* :meth:`DemandHistory.rising`, :meth:`DemandHistory.turned` and
  :meth:`DemandHistory.falling`: the ramp tests that gate the feedback's relaxation, the
  confirmation of rises and the scale-down hold
  (:mod:`~dynamo_planner.scalers.trend`);
* :meth:`DemandHistory.forecast_dips`: what the forecast puts below the last interval,
  which keeps a one-interval scale-down hold at two.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import collections
import math
from typing import Any

import attrs

from dynamo_planner.scalers import _checks
from dynamo_planner.scalers.request_mix import observed_lengths
from dynamo_planner.scalers.sampling_noise import SamplingNoise
from dynamo_planner.scalers.trend import (
    falling,
    increase_spread,
    rising,
    trend,
    turned,
)
from dynamo_planner.values import Demand, Observation

__all__ = ["MIN_SPREAD_POINTS", "TURN_Z", "DemandHistory"]

MIN_SPREAD_POINTS = 3
"""Observed intervals needed to measure the spread of a forecast that has none."""
TURN_Z = 1.0
"""Standard deviations of two intervals' draws the last count must fall by for demand
to count as turned (:func:`~dynamo_planner.scalers.trend.turned`).

At Azure x10's peak the count fell from 13,387 to 13,078 requests in 180 s, 1.8
standard deviations at Ca² 1.13; the slope over the last six intervals still rose by
more than two standard errors. Flat traffic passes one standard deviation by chance in
about one interval of six, where it changes little: there the trend is mostly zero and
the ramp test rarely fires."""


@attrs.define(kw_only=True)
class DemandHistory:
    """The last intervals' request counts and mean lengths (see the module doc).

    Attributes:
        intervals: Recent intervals used for the trend and the spread (one more count is
            kept, for the changes).
        prior_spread: Relative headroom on the request count while the forecast has no
            spread and the history is too short to measure one.
        remove_own_noise: Narrow the forecast bands by the next interval's own draw
            (:mod:`~dynamo_planner.scalers.sampling_noise`).
        cold_start_s: Time from requesting a worker to it serving (the lookahead).

    Example:
        >>> history = DemandHistory(
        ...     intervals=5, prior_spread=0.1, remove_own_noise=True, cold_start_s=60.0
        ... )
        >>> history.intervals_ahead(60.0)
        1.5
        >>> history.rising(2.0, dispersion=1.0)
        False
    """

    intervals: int = attrs.field(validator=_checks.at_least(2))
    prior_spread: float = attrs.field(validator=_checks.non_negative)
    remove_own_noise: bool
    cold_start_s: float = attrs.field(validator=_checks.non_negative)
    _counts: collections.deque[float] = attrs.field(init=False)
    _lengths: collections.deque[tuple[float, float]] = attrs.field(init=False)
    _noise: SamplingNoise = attrs.field(init=False, factory=SamplingNoise)

    def __attrs_post_init__(self) -> None:
        self._counts = collections.deque(maxlen=self.intervals + 1)
        self._lengths = collections.deque(maxlen=self.intervals + 1)

    @property
    def counts(self) -> list[float]:
        """The recorded request counts, oldest first."""
        return list(self._counts)

    def record(self, observation: Observation) -> None:
        """Keep an interval's request count, mean lengths and their samples' noise.

        An interval whose request count is unknown is not kept: unknown is not zero.
        """
        if not observation.num_req.known:
            return
        self._counts.append(observation.num_req.value)
        if observation.isl_tokens.known and observation.osl_tokens.known:
            self._lengths.append(
                (observation.isl_tokens.value, observation.osl_tokens.value)
            )
        self._noise.record(
            observation.num_req.value,
            observation.isl_tokens.value if observation.isl_tokens.known else None,
            observation.osl_tokens.value if observation.osl_tokens.known else None,
            *observed_lengths(observation),
        )

    # ------------------------------------------------------------------ sizing
    def kept_count(self, dispersion: float) -> float:
        """The share of the request count's band that is not its own draw (1 if off)."""
        return self._noise.kept_count(dispersion) if self.remove_own_noise else 1.0

    def intervals_ahead(self, interval_s: float) -> float:
        """How far past the forecast (centred mid-interval) the lookahead reaches.

        Workers asked for at the next decision serve from ``interval + cold start`` on;
        until then the replicas chosen now must carry the load.
        """
        return (self.cold_start_s + interval_s / 2.0) / interval_s

    def sized_num_req(
        self, demand: Demand, dispersion: float, details: dict[str, Any]
    ) -> tuple[float, list[str]]:
        """The request count to size for: upper band, own draw removed, lookahead.

        Args:
            demand: This decision's forecast.
            dispersion: The arrivals' ``Ca²`` (the draw's variance per request).
            details: The plan's details; the steps' values are added.

        Returns:
            The count, and the words saying how it was reached.
        """
        forecast = demand.num_req
        quantile = forecast.quantile
        counts = self.counts
        upper = forecast.upper
        if upper > forecast.value:
            spread_words = (
                f"upper quantile q{quantile:.2f} of the forecast: {upper:,.0f}"
            )
        else:
            if len(counts) >= MIN_SPREAD_POINTS:
                spread = increase_spread(counts, quantile)
                spread_words = (
                    f"the forecast has no spread; q{quantile:.2f} of the last "
                    f"{len(counts) - 1} interval-to-interval changes adds "
                    f"{spread:,.0f}"
                )
            else:
                spread = self.prior_spread * forecast.value
                spread_words = (
                    f"the forecast has no spread and {len(counts)} intervals of history "
                    f"are too few to measure one; the prior {self.prior_spread:.0%} "
                    f"adds {spread:,.0f}"
                )
            upper = forecast.value + spread
            spread_words += f": {upper:,.0f}"
        kept = self.kept_count(dispersion)
        if kept < 1.0 and upper > forecast.value:
            upper = forecast.value + kept * (upper - forecast.value)
            spread_words += (
                f", narrowed to {upper:,.0f} (keeping {kept:.0%} of the band: the rest "
                f"is the next interval's own Poisson draw at Ca² {dispersion:.2f}, "
                "which the queue already carries)"
            )
        lookahead_s = self.cold_start_s
        intervals_ahead = self.intervals_ahead(demand.interval_s)
        if demand.peak_num_req is not None and math.isfinite(demand.peak_num_req):
            peak = max(upper, float(demand.peak_num_req))
            peak_words = (
                f"lookahead over the {lookahead_s:g} s cold start: the planner's peak "
                f"{demand.peak_num_req:,.0f}"
            )
        elif self.turned(dispersion):
            peak = upper
            peak_words = (
                f"lookahead over the {lookahead_s:g} s cold start: none, as demand "
                f"has turned (the last count fell from {counts[-2]:,.0f} to "
                f"{counts[-1]:,.0f}, more than one standard deviation of two "
                f"intervals' draws at Ca² {dispersion:.2f})"
            )
        else:
            slope = trend(counts)
            peak = upper + max(0.0, slope) * intervals_ahead
            peak_words = (
                f"lookahead over the {lookahead_s:g} s cold start: trend "
                f"{slope:+,.1f} requests/interval over the last "
                f"{len(counts)} intervals, {intervals_ahead:.2f} intervals past the "
                f"forecast, gives {peak:,.0f}"
            )
        details.update(
            {
                "forecast_num_req": forecast.value,
                "forecast_quantile": quantile,
                "upper_num_req": upper,
                "num_req_band_kept": kept,
                "lookahead_s": lookahead_s,
                "peak_num_req": peak,
            }
        )
        words = [
            (
                f"demand: {forecast.value:,.0f} requests in {demand.interval_s:g} s forecast; "
                f"{spread_words}; {peak_words}; sizing for {peak:,.0f} "
                f"({peak / demand.interval_s:.2f} requests/s)"
            )
        ]
        return peak, words

    def sized_lengths(
        self, demand: Demand, details: dict[str, Any]
    ) -> tuple[float, float]:
        """Mean ISL and OSL to size for: upper forecasts, raised by a rising trend.

        The count and the lengths are each taken at their upper quantile, as if they rose
        together (on the Azure trace longer prompts come with the busy hour); sizing for
        the joint quantile of independent errors instead missed the Azure x10 ramp at
        180 s intervals (attainment 91%).
        """
        isl = demand.isl_tokens.upper
        osl = demand.osl_tokens.upper
        if self.remove_own_noise:
            isl_kept, osl_kept = self._noise.kept_isl(), self._noise.kept_osl()
            isl = demand.isl_tokens.value + isl_kept * (isl - demand.isl_tokens.value)
            osl = demand.osl_tokens.value + osl_kept * (osl - demand.osl_tokens.value)
            details["isl_band_kept"] = isl_kept
            details["osl_band_kept"] = osl_kept
        lengths = list(self._lengths)
        ahead = self.intervals_ahead(demand.interval_s)
        isl_peak = isl + max(0.0, trend([x for x, _ in lengths])) * ahead
        osl_peak = osl + max(0.0, trend([y for _, y in lengths])) * ahead
        details["peak_isl_tokens"] = isl_peak
        details["peak_osl_tokens"] = osl_peak
        return isl_peak, osl_peak

    # ------------------------------------------------------------------ ramp tests
    def turned(self, dispersion: float) -> bool:
        """Whether the last count fell by more than its noise (:data:`TURN_Z`)."""
        return turned(self.counts, dispersion, TURN_Z)

    def slope_rising(self, t: float = 2.0) -> bool:
        """Whether the counts' slope is above ``t`` standard errors, turned or not."""
        return rising(self.counts, t)

    def rising(self, t: float, dispersion: float) -> bool:
        """Whether the slope is above ``t`` standard errors and demand has not turned."""
        return self.slope_rising(t) and not self.turned(dispersion)

    def falling(self) -> bool:
        """Whether the counts' slope is clearly below zero."""
        return falling(self.counts)

    def forecast_dips(self, demand: Demand) -> str:
        """What the forecast puts below the last observed interval, in words ("" if none)."""
        dips = []
        counts, lengths = self._counts, self._lengths
        if counts and demand.num_req.value < counts[-1]:
            dips.append(f"requests ({demand.num_req.value:,.0f} < {counts[-1]:,.0f})")
        if lengths:
            isl, osl = lengths[-1]
            if demand.isl_tokens.value < isl:
                dips.append(f"mean ISL ({demand.isl_tokens.value:,.0f} < {isl:,.0f})")
            if demand.osl_tokens.value < osl:
                dips.append(f"mean OSL ({demand.osl_tokens.value:,.0f} < {osl:,.0f})")
        return ", ".join(dips)
