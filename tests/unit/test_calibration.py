"""Online calibration: blending factors, solving for one, and spreads from buckets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_planner.scalers.calibration import (
    CALIBRATION_BOUNDS,
    MIN_SPREAD_SAMPLES,
    SPREAD_BOUNDS,
    ModelCalibration,
    blend,
    observed_spread,
    solve_factor,
    spread_from_histogram,
)
from dynamo_planner.sources._names import BUCKETS
from dynamo_planner.values import Observation

ITL_BOUNDS_MS = tuple(b * 1000.0 for b in BUCKETS["itl_ms"])


def bucketed(
    values: np.ndarray, bounds: tuple[float, ...]
) -> tuple[tuple[float, float], ...]:
    """``values`` as a cumulative histogram with these bounds and ``+Inf``."""
    edges = (*bounds, math.inf)
    return tuple((b, float(np.count_nonzero(values <= b))) for b in edges)


class TestBlend:
    def test_geometric_and_bounded(self) -> None:
        assert blend(1.0, 4.0, 0.5) == pytest.approx(2.0)
        assert blend(1.0, 100.0, 1.0) == CALIBRATION_BOUNDS[1]
        assert blend(1.0, 0.01, 1.0) == CALIBRATION_BOUNDS[0]


class TestSolveFactor:
    def test_inverts_an_increasing_model(self) -> None:
        found = solve_factor(lambda f: 3.0 + 10.0 * f, 15.0, 0.5, 2.0)
        assert found == pytest.approx(1.2, rel=0.01)

    def test_outside_the_range_is_a_transient(self) -> None:
        assert solve_factor(lambda f: 10.0 * f, 1.0, 0.5, 2.0) is None
        assert solve_factor(lambda f: 10.0 * f, math.nan, 0.5, 2.0) is None


class TestSpreadFromHistogram:
    @given(
        mean=st.floats(6.0, 30.0),
        sd_share=st.floats(0.05, 0.3),
        seed=st.integers(0, 2**32 - 1),
    )
    def test_recovers_a_normals_spread(
        self, mean: float, sd_share: float, seed: int
    ) -> None:
        """200,000 normal ITLs in the exporter's buckets give their sd within 10%, or
        nothing when no bound lies between half and three sd from the mean (its tail
        may be empty, or its share says little). A bound right at half an sd may fall
        on either side of the cut by the sample's own noise, so the check keeps 0.05 sd
        clear of it."""
        sd = mean * sd_share
        values = np.random.default_rng(seed).normal(mean, sd, 200_000)
        found = spread_from_histogram(
            bucketed(values, ITL_BOUNDS_MS), float(values.mean())
        )
        if found is None:
            assert not any(0.55 * sd < abs(b - mean) < 3.0 * sd for b in ITL_BOUNDS_MS)
        else:
            assert found.sd == pytest.approx(sd, rel=0.1)

    def test_prefers_the_tail_above_the_mean(self) -> None:
        """Bounds on both sides qualify; the one above the mean with the least above it
        is used."""
        values = np.random.default_rng(0).normal(13.0, 2.5, 100_000)
        found = spread_from_histogram(bucketed(values, ITL_BOUNDS_MS), 13.0)
        assert found is not None
        assert found.bound == 20.0
        assert found.share_above == pytest.approx(np.mean(values > 20.0))

    def test_below_the_mean_when_the_tail_is_empty(self) -> None:
        """With nothing above 20 ms the 10 ms bound, below the mean, gives the spread."""
        hist = ((10.0, 168.0), (20.0, 1000.0), (math.inf, 1000.0))
        found = spread_from_histogram(hist, 11.13)
        assert found is not None
        assert found.bound == 10.0
        assert found.sd == pytest.approx(1.17, abs=0.01)

    @pytest.mark.parametrize(
        ("hist", "mean"),
        [
            (((10.0, 0.0), (20.0, 1000.0), (math.inf, 1000.0)), 15.0),  # one bucket
            (((10.0, 5.0), (20.0, 995.0), (math.inf, 1000.0)), 15.0),  # 5 each side
            (((10.0, 480.0), (20.0, 1000.0), (math.inf, 1000.0)), 10.1),  # at the mean
            (((10.0, 100.0), (20.0, 1000.0), (math.inf, 1000.0)), math.nan),
            ((), 15.0),
        ],
    )
    def test_none_without_a_usable_bound(
        self, hist: tuple[tuple[float, float], ...], mean: float
    ) -> None:
        assert spread_from_histogram(hist, mean) is None

    def test_a_mean_past_a_bound_on_the_wrong_side_is_not_a_spread(self) -> None:
        """A share below a bound that contradicts the mean (more than half below a bound
        under the mean) gives no negative spread."""
        hist = ((10.0, 900.0), (math.inf, 1000.0))
        assert spread_from_histogram(hist, 15.0) is None


def itl_observation(
    samples: tuple[float, ...] = (),
    histogram: tuple[tuple[float, float], ...] = (),
    mean_ms: float | None = None,
) -> Observation:
    return Observation(
        interval_s=60.0,
        num_req=float(len(samples) or 100),
        itl_ms=mean_ms if mean_ms is not None else None,
        itl_samples_ms=samples,
        itl_histogram_ms=histogram,
    )


class TestModelCalibration:
    def test_an_explained_interval_moves_its_factor_only(self) -> None:
        calibration = ModelCalibration(attainment=0.99)
        details: dict[str, object] = {}
        words, explained = calibration.update_factor(
            "prefill", "TTFT", 150.0, lambda f: 100.0 * f, 2, details
        )
        assert explained
        # half-way (geometrically) from 1 to the 1.5 that explains 150 ms
        assert calibration.prefill == pytest.approx(math.sqrt(1.5), rel=0.01)
        assert calibration.decode == 1.0
        assert details["prefill_calibration_observed_ms"] == 150.0
        assert details["prefill_calibration_modelled_ms"] == 100.0
        assert "prefill factor now 1.22" in words

    def test_an_unexplained_interval_is_a_transient(self) -> None:
        calibration = ModelCalibration(attainment=0.99, decode=1.3)
        words, explained = calibration.update_factor(
            "decode", "ITL", 900.0, lambda f: 10.0 * f, 4, {}
        )
        assert not explained
        assert calibration.decode == 1.3
        assert "transient" in words

    def test_the_weight_sets_how_far_one_interval_moves(self) -> None:
        calibration = ModelCalibration(attainment=0.99, weight=1.0)
        calibration.update_factor("decode", "ITL", 12.0, lambda f: 10.0 * f, 4, {})
        assert calibration.decode == pytest.approx(1.2, rel=0.01)

    def test_spread_applies_to_several_workers_only(self) -> None:
        calibration = ModelCalibration(attainment=0.99, spread=0.4)
        assert calibration.spread_on(1) == 1.0
        assert calibration.spread_on(2) == 0.4

    def test_spread_moves_toward_the_observed_ratio_within_bounds(self) -> None:
        rng = np.random.default_rng(0)
        samples = tuple(10.0 + rng.normal(0.0, 1.0, 2_000))
        calibration = ModelCalibration(attainment=0.99, weight=1.0)
        details: dict[str, object] = {}
        # the model's spread is ten times the observed one: the ratio hits the floor
        words = calibration.update_spread(
            itl_observation(samples), lambda z: 10.0 * z, 4, details
        )
        assert calibration.spread == SPREAD_BOUNDS[0]
        assert "spread factor now 0.25" in words
        assert details["decode_spread_observed_ms"] == pytest.approx(2.33, abs=0.15)

    @pytest.mark.parametrize(
        ("replicas", "transient", "said"),
        [(1, False, "one decode worker"), (4, True, "in a transient")],
    )
    def test_spread_is_not_measured_on_one_worker_or_in_a_transient(
        self, replicas: int, transient: bool, said: str
    ) -> None:
        samples = tuple(np.linspace(5.0, 15.0, 500))
        calibration = ModelCalibration(attainment=0.99, weight=1.0)
        words = calibration.update_spread(
            itl_observation(samples),
            lambda z: 1.0,
            replicas,
            {},
            transient=transient,
        )
        assert calibration.spread == 1.0
        assert said in words


class TestObservedSpread:
    def test_from_samples_at_a_lower_quantile_when_the_tail_is_thin(self) -> None:
        samples = tuple(float(v) for v in range(MIN_SPREAD_SAMPLES))
        quantile, mean, _, source = observed_spread(itl_observation(samples), 0.99)
        # fewer than ten of 50 samples lie above the 99th percentile: measured at 0.8
        assert quantile == pytest.approx(0.8)
        assert mean == pytest.approx(24.5)
        assert source == f"{MIN_SPREAD_SAMPLES} per-request ITLs"

    def test_too_few_samples_and_no_buckets_say_so(self) -> None:
        found = observed_spread(itl_observation((10.0, 11.0)), 0.99)
        assert found == f"2 per-request ITLs, {MIN_SPREAD_SAMPLES} needed"

    def test_from_buckets_with_a_mean(self) -> None:
        values = np.random.default_rng(1).normal(13.0, 2.0, 5_000)
        hist = bucketed(values, ITL_BOUNDS_MS)
        found = observed_spread(
            itl_observation(histogram=hist, mean_ms=float(np.mean(values))), 0.99
        )
        assert not isinstance(found, str)
        quantile, _, observed, source = found
        assert quantile == 0.99
        assert observed == pytest.approx(2.326 * 2.0, rel=0.25)
        assert source.startswith("ITL buckets")

    def test_buckets_without_a_mean_are_not_read(self) -> None:
        hist = ((10.0, 100.0), (20.0, 900.0), (math.inf, 1000.0))
        assert observed_spread(itl_observation(histogram=hist), 0.99) == (
            "ITL buckets without a mean ITL"
        )
