"""Online calibration: blending factors, solving for one, and spreads from buckets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_planner.scalers.calibration import (
    CALIBRATION_BOUNDS,
    blend,
    solve_factor,
    spread_from_histogram,
)
from dynamo_planner.sources._names import BUCKETS

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
        may be empty, or its share says little)."""
        sd = mean * sd_share
        values = np.random.default_rng(seed).normal(mean, sd, 200_000)
        found = spread_from_histogram(
            bucketed(values, ITL_BOUNDS_MS), float(values.mean())
        )
        if found is None:
            assert not any(0.5 * sd < abs(b - mean) < 3.0 * sd for b in ITL_BOUNDS_MS)
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
