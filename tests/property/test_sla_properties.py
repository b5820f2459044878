"""Properties of the SLA scaler: monotone in demand and targets, predictions in target."""

from __future__ import annotations

import functools

from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo_planner.interpolators.fitted import FittedInterpolator
from dynamo_planner.profiles import load_profile
from dynamo_planner.protocols import ScalingRequest
from dynamo_planner.scalers.sla import SLAScaler
from dynamo_planner.values import (
    Demand,
    Forecast,
    Observation,
    ReplicaPlan,
    ReplicaState,
)

INTERVAL_S = 60.0


@functools.cache
def fitted() -> FittedInterpolator:
    from dynamo_planner.data import H200_PROFILE_DIR

    return FittedInterpolator.from_profile(load_profile(H200_PROFILE_DIR))


def plan(
    num_req: float,
    isl: float,
    osl: float,
    *,
    ttft_ms: float = 500.0,
    itl_ms: float = 20.0,
    attainment: float = 0.99,
) -> ReplicaPlan:
    """One decision of a fresh scaler (no history, no calibration)."""
    scaler = SLAScaler(
        interpolator=fitted(),
        ttft_ms=ttft_ms,
        itl_ms=itl_ms,
        attainment=attainment,
    )
    demand = Demand.of(
        num_req=num_req, isl_tokens=isl, osl_tokens=osl, interval_s=INTERVAL_S
    )
    return scaler.decide(
        ScalingRequest(demand=demand, current=ReplicaState(prefill=1, decode=1))
    )


def at_least(more: ReplicaPlan, fewer: ReplicaPlan, *components: str) -> None:
    """Assert ``more`` plans at least as many replicas as ``fewer`` for each component."""
    for name in components or ("prefill", "decode"):
        high, low = getattr(more, name), getattr(fewer, name)
        assert high is not None
        assert low is not None
        assert high >= low, f"{name}: {high} < {low}"


requests = st.floats(0.0, 30_000.0, allow_nan=False)
isls = st.floats(50.0, 6000.0, allow_nan=False)
osls = st.floats(1.0, 1000.0, allow_nan=False)


class TestMonotone:
    """More demand, or a tighter target, never gives fewer replicas."""

    @settings(max_examples=60, deadline=None)
    @given(base=requests, extra=requests, isl=isls, osl=osls)
    def test_more_requests_never_fewer_replicas(
        self, base: float, extra: float, isl: float, osl: float
    ) -> None:
        """Adding requests never lowers prefill or decode replicas."""
        at_least(plan(base + extra, isl, osl), plan(base, isl, osl))

    @settings(max_examples=40, deadline=None)
    @given(
        history=st.lists(
            st.floats(100.0, 20_000.0, allow_nan=False), min_size=6, max_size=12
        ),
        base=requests,
        extra=requests,
        band=st.floats(1.0, 1.5, allow_nan=False),
    )
    def test_more_requests_never_fewer_replicas_after_history(
        self, history: list[float], base: float, extra: float, band: float
    ) -> None:
        """With the same observed history (so the same share of the band removed as
        the next interval's own draw), adding requests never lowers the replicas
        required. The plan follows while neither forecast dips below the last interval
        observed: a dip widens the scale-down window (a forecast dip is not yet low
        demand), so a lower forecast may hold the last peak one interval longer."""

        def after_history(num_req: float) -> ReplicaPlan:
            scaler = SLAScaler(interpolator=fitted(), ttft_ms=500.0, itl_ms=20.0)
            last = None
            for count in history:
                seen = Observation(
                    interval_s=INTERVAL_S,
                    num_req=count,
                    isl_tokens=1000.0,
                    osl_tokens=200.0,
                )
                demand = Demand.of(
                    num_req=count,
                    isl_tokens=1000.0,
                    osl_tokens=200.0,
                    interval_s=INTERVAL_S,
                )
                scaler.decide(
                    ScalingRequest(
                        demand=demand,
                        current=ReplicaState(prefill=1, decode=1),
                        observation=seen,
                    )
                )
                last = seen
            demand = Demand(
                interval_s=INTERVAL_S,
                num_req=Forecast(num_req, num_req * band, 0.75),
                isl_tokens=Forecast.point(1000.0),
                osl_tokens=Forecast.point(200.0),
            )
            return scaler.decide(
                ScalingRequest(
                    demand=demand,
                    current=ReplicaState(prefill=1, decode=1),
                    observation=last,
                )
            )

        more, fewer = after_history(base + extra), after_history(base)
        for name in ("prefill", "decode"):
            assert (
                more.details[f"{name}_required"] >= fewer.details[f"{name}_required"]
            ), name
        if base >= history[-1]:
            at_least(more, fewer)

    @settings(max_examples=40, deadline=None)
    @given(
        num_req=requests,
        isl=isls,
        osl=osls,
        longer=st.floats(1.0, 3.0, allow_nan=False),
    )
    def test_longer_requests_never_fewer_replicas(
        self, num_req: float, isl: float, osl: float, longer: float
    ) -> None:
        """Longer inputs and outputs never lower the replicas."""
        at_least(plan(num_req, isl * longer, osl * longer), plan(num_req, isl, osl))

    @settings(max_examples=40, deadline=None)
    @given(
        num_req=requests,
        isl=isls,
        osl=osls,
        ttft=st.floats(150.0, 2000.0, allow_nan=False),
        tighter=st.floats(0.5, 1.0, allow_nan=False),
    )
    def test_tighter_ttft_never_fewer_prefill(
        self, num_req: float, isl: float, osl: float, ttft: float, tighter: float
    ) -> None:
        """A tighter TTFT target never lowers the prefill replicas."""
        loose = plan(num_req, isl, osl, ttft_ms=ttft)
        at_least(plan(num_req, isl, osl, ttft_ms=ttft * tighter), loose, "prefill")

    @settings(max_examples=40, deadline=None)
    @given(
        num_req=requests,
        isl=isls,
        osl=osls,
        itl=st.floats(10.0, 60.0, allow_nan=False),
        tighter=st.floats(0.5, 1.0, allow_nan=False),
    )
    def test_tighter_itl_never_fewer_decode(
        self, num_req: float, isl: float, osl: float, itl: float, tighter: float
    ) -> None:
        """A tighter ITL target never lowers the decode replicas."""
        loose = plan(num_req, isl, osl, itl_ms=itl)
        at_least(plan(num_req, isl, osl, itl_ms=itl * tighter), loose, "decode")

    @settings(max_examples=30, deadline=None)
    @given(
        num_req=requests,
        isl=isls,
        osl=osls,
        share=st.floats(0.5, 0.98, allow_nan=False),
    )
    def test_higher_attainment_never_fewer_replicas(
        self, num_req: float, isl: float, osl: float, share: float
    ) -> None:
        """Asking for a larger share of requests never lowers the replicas."""
        low = plan(num_req, isl, osl, attainment=share)
        at_least(plan(num_req, isl, osl, attainment=0.99), low)


class TestWithinTarget:
    """The model's predictions at the chosen replicas are within the targets."""

    @settings(max_examples=60, deadline=None)
    @given(
        num_req=st.floats(1.0, 30_000.0, allow_nan=False),
        isl=st.floats(50.0, 3000.0, allow_nan=False),
        osl=osls,
        ttft=st.floats(250.0, 2000.0, allow_nan=False),
        itl=st.floats(10.0, 60.0, allow_nan=False),
    )
    def test_predicted_ttft_and_itl_within_target(
        self, num_req: float, isl: float, osl: float, ttft: float, itl: float
    ) -> None:
        """Predicted TTFT and ITL at the attainment quantile meet the targets.

        Prefill: 99% of the requests that can meet TTFT alone are predicted to meet it
        (when all can, the predicted p99 TTFT is within the target), or the count is
        the cap, where at most 1% of requests wait longer than a tenth of the target.
        """
        chosen = plan(num_req, isl, osl, ttft_ms=ttft, itl_ms=itl)
        details = chosen.details
        feasible = details["prefill_feasible_share"]
        met = details["predicted_prefill_attainment"] >= 0.99 * feasible - 1e-9
        assert met or details["prefill_long_wait_share"] <= 0.01
        if met and feasible >= 1.0:
            assert details["predicted_ttft_ms"] <= ttft
        assert details["predicted_itl_ms"] <= itl


ISL_BOUNDS = (128.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0)
bucket_counts = st.lists(
    st.integers(0, 500), min_size=len(ISL_BOUNDS) + 1, max_size=len(ISL_BOUNDS) + 1
).filter(lambda counts: sum(counts) > 0)


def on_histograms(num_req: float, counts: list[int]) -> ReplicaPlan:
    """One decision whose mix comes from an ISL histogram (as from Prometheus)."""
    bounds = (*ISL_BOUNDS, float("inf"))
    cumulative = [float(sum(counts[: i + 1])) for i in range(len(counts))]
    lows = (0.0, *ISL_BOUNDS)
    # the histogram's mean, the open bucket at twice its bound
    highs = (*ISL_BOUNDS, 2 * ISL_BOUNDS[-1])
    mean = sum(
        c * (lo + hi) / 2 for c, lo, hi in zip(counts, lows, highs, strict=True)
    ) / sum(counts)
    seen = Observation(
        interval_s=INTERVAL_S,
        num_req=float(sum(counts)),
        isl_tokens=mean,
        osl_tokens=200.0,
        isl_histogram_tokens=tuple(zip(bounds, cumulative, strict=True)),
        osl_histogram_tokens=((128.0, 40.0), (256.0, 80.0), (float("inf"), 100.0)),
    )
    scaler = SLAScaler(interpolator=fitted(), ttft_ms=500.0, itl_ms=20.0)
    demand = Demand.of(
        num_req=num_req, isl_tokens=mean, osl_tokens=200.0, interval_s=INTERVAL_S
    )
    return scaler.decide(
        ScalingRequest(
            demand=demand, current=ReplicaState(prefill=1, decode=1), observation=seen
        )
    )


class TestOnHistograms:
    """The same properties when the mix is drawn from the frontend's histograms."""

    @settings(max_examples=40, deadline=None)
    @given(counts=bucket_counts, base=requests, extra=requests)
    def test_more_requests_never_fewer_replicas(
        self, counts: list[int], base: float, extra: float
    ) -> None:
        """Adding requests never lowers the replicas."""
        at_least(on_histograms(base + extra, counts), on_histograms(base, counts))

    @settings(max_examples=40, deadline=None)
    @given(counts=bucket_counts, num_req=st.floats(1.0, 30_000.0, allow_nan=False))
    def test_predicted_attainment_within_target(
        self, counts: list[int], num_req: float
    ) -> None:
        """99% of the requests that can meet TTFT alone are predicted to (or the count
        is the cap), and the predicted ITL is within the target."""
        chosen = on_histograms(num_req, counts)
        details = chosen.details
        assert any("ISL and OSL histograms" in r for r in chosen.reasons)
        feasible = details["prefill_feasible_share"]
        met = details["predicted_prefill_attainment"] >= 0.99 * feasible - 1e-9
        assert met or details["prefill_long_wait_share"] <= 0.01
        assert details["predicted_itl_ms"] <= 20.0


intervals = st.lists(
    st.tuples(st.floats(0.0, 5000.0), st.floats(0.0, 1.0)), min_size=1, max_size=30
)


@settings(max_examples=200, deadline=None)
@given(history=intervals, extra=st.lists(st.floats(0.0, 1.0), min_size=30, max_size=30))
def test_more_misses_never_relax_the_sizing(
    history: list[tuple[float, float]], extra: list[float]
) -> None:
    """Attainment feedback: with the same requests and at least as many misses in every
    interval, the share sized for is never lower, and it stays within its bounds."""
    from dynamo_planner.scalers.feedback import MissFeedback

    fewer = MissFeedback(name="TTFT", target=0.99)
    more = MissFeedback(name="TTFT", target=0.99)
    for (requests, share), bump in zip(history, extra, strict=False):
        missed = requests * share * 0.05
        fewer.observe(requests, missed)
        more.observe(requests, missed + bump * (requests - missed))
        assert more.sized >= fewer.sized - 1e-12
        for f in (fewer, more):
            assert 1.0 - f.ceiling - 1e-12 <= f.sized <= f.target + 1e-12
