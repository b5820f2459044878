"""The reference interpolator reproduces Dynamo's prefill curves and decode grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.interpolate import griddata, interp1d

from dynamo_planner._compat import metadata
from dynamo_planner.interpolators._grid import snap_index
from dynamo_planner.interpolators.reference import ReferenceInterpolator
from dynamo_planner.profiles import load_profile, profile_from_arrays
from dynamo_planner.protocols import Interpolator
from dynamo_planner.values import PerfProfile


@pytest.fixture(name="h200", scope="module")
def _h200() -> PerfProfile:
    from dynamo_planner.data import H200_PROFILE_DIR

    return load_profile(H200_PROFILE_DIR)


@pytest.fixture(name="interp", scope="module")
def _interp(h200: PerfProfile) -> ReferenceInterpolator:
    return ReferenceInterpolator.from_profile(h200)


def dynamo_grids(profile: PerfProfile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dynamo's decode surfaces, computed here independently (spec §2.3)."""
    d = profile.decode
    xi = np.linspace(0, 1, 100)
    yi = np.linspace(0, max(d.context_length_tokens), 100)
    x_mesh, y_mesh = np.meshgrid(xi, yi)
    grids = []
    for z in (d.itl_ms, d.throughput_per_gpu):
        points = (d.kv_usage, d.context_length_tokens)
        grid = griddata(points, z, (x_mesh, y_mesh), method="cubic")
        nan = np.isnan(grid)
        grid[nan] = griddata(points, z, (x_mesh, y_mesh), method="nearest")[nan]
        grids.append(grid)
    return xi, grids[0], grids[1]


@pytest.fixture(name="dynamo", scope="module")
def _dynamo(h200: PerfProfile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return dynamo_grids(h200)


def small_profile(prefill_points: int) -> PerfProfile:
    isl = np.array([100.0, 1100.0, 2100.0, 3100.0, 4100.0])[:prefill_points]
    return profile_from_arrays(
        {
            "prefill_isl": isl,
            "prefill_ttft": isl / 50.0 + 10.0,
            "prefill_thpt_per_gpu": isl * 10.0,
        },
        {
            "x_kv_usage": [0.1, 0.5, 0.9],
            "y_context_length": [500.0, 500.0, 500.0],
            "z_itl": [5.0, 10.0, 20.0],
            "z_thpt_per_gpu": [100.0, 400.0, 600.0],
            "max_kv_tokens": [10_000],
        },
    )


class TestPrefill:
    """ISL → TTFT and throughput: cubic, clamped to the profiled range."""

    def test_h200_at_isl_3000(self, interp: ReferenceInterpolator) -> None:
        """The issue's figures: 49,481 tokens/s per GPU and 60.46 ms at ISL 3000."""
        assert interp.prefill_throughput_per_gpu(3000) == pytest.approx(
            49_481, rel=0.005
        )
        assert interp.prefill_ttft_ms(3000) == pytest.approx(60.46, rel=0.005)

    def test_equals_scipy_cubic_interp1d(
        self, h200: PerfProfile, interp: ReferenceInterpolator
    ) -> None:
        """Values equal Dynamo's interp1d(kind='cubic') at many ISLs."""
        ttft = interp1d(h200.prefill.isl_tokens, h200.prefill.ttft_ms, kind="cubic")
        thpt = interp1d(
            h200.prefill.isl_tokens, h200.prefill.throughput_per_gpu, kind="cubic"
        )
        for isl in np.linspace(100, 16372, 57):
            assert interp.prefill_ttft_ms(isl) == float(ttft(isl))
            assert interp.prefill_throughput_per_gpu(isl) == float(thpt(isl))

    def test_passes_through_the_measured_points(
        self, h200: PerfProfile, interp: ReferenceInterpolator
    ) -> None:
        """At a profiled ISL the measured TTFT comes back."""
        for isl, ttft in zip(
            h200.prefill.isl_tokens, h200.prefill.ttft_ms, strict=True
        ):
            assert interp.prefill_ttft_ms(isl) == pytest.approx(ttft, rel=1e-9)

    @pytest.mark.parametrize(
        ("query", "clamped"), [(10.0, 100.0), (-5.0, 100.0), (1e9, 16372.0)]
    )
    def test_clamps_to_the_profiled_range(
        self, interp: ReferenceInterpolator, query: float, clamped: float
    ) -> None:
        """ISLs outside the profile use the nearest end, never extrapolate."""
        assert interp.prefill_ttft_ms(query) == interp.prefill_ttft_ms(clamped)
        assert interp.prefill_throughput_per_gpu(query) == (
            interp.prefill_throughput_per_gpu(clamped)
        )

    def test_three_points_fall_back_to_linear(self) -> None:
        """With 3 points (Dynamo fails) the curves are linear."""
        interp = ReferenceInterpolator.from_profile(small_profile(3))
        assert interp.prefill_ttft_ms(600.0) == pytest.approx((12.0 + 32.0) / 2)
        assert interp.prefill_throughput_per_gpu(1600.0) == pytest.approx(16_000.0)

    def test_four_points_are_cubic(self) -> None:
        """From 4 points on, the cubic fit is used (exact on a linear curve)."""
        interp = ReferenceInterpolator.from_profile(small_profile(4))
        assert interp.prefill_ttft_ms(600.0) == pytest.approx(22.0)


class TestDecode:
    """The 100 x 100 decode grid, its lookups and Dynamo's best-point scan."""

    def test_h200_best_point_at_itl_20(self, interp: ReferenceInterpolator) -> None:
        """The issue's figures: 6,181 tokens/s per GPU at ITL 19.67 ms, KV usage 0.404."""
        point = interp.best_decode_point(20.0, 3075.0)
        assert point.throughput_per_gpu == pytest.approx(6_181, rel=0.005)
        assert point.itl_ms == pytest.approx(19.67, rel=0.005)
        assert point.kv_usage == pytest.approx(0.404, rel=0.005)

    def test_grid_equals_dynamo_griddata(
        self,
        dynamo: tuple[np.ndarray, np.ndarray, np.ndarray],
        interp: ReferenceInterpolator,
    ) -> None:
        """Both surfaces equal cubic griddata with nearest fill, cell for cell."""
        _, itl, thpt = dynamo
        np.testing.assert_array_equal(interp.decode.itl_ms, itl)
        np.testing.assert_array_equal(interp.decode.throughput_per_gpu, thpt)
        assert np.isfinite(interp.decode.itl_ms).all()

    @pytest.mark.parametrize("itl_ms", [5.0, 10.0, 20.0, 35.0, 50.0])
    @pytest.mark.parametrize("context", [350.0, 3075.0, 8000.0, 13585.0])
    def test_best_point_is_the_highest_usage_cell_meeting_the_target(
        self,
        h200: PerfProfile,
        interp: ReferenceInterpolator,
        itl_ms: float,
        context: float,
    ) -> None:
        """Scanning from full KV usage down, the first cell within the ITL wins."""
        xi, itl, thpt = dynamo_grids(h200)
        iy = int(np.clip(np.round(context / (13585.0 / 99)), 0, 99))
        expected = (thpt[iy, 0], itl[iy, 0], xi[0])
        for ix in range(99, -1, -1):
            if itl[iy, ix] <= itl_ms:
                expected = (thpt[iy, ix], itl[iy, ix], xi[ix])
                break
        point = interp.best_decode_point(itl_ms, context)
        assert (point.throughput_per_gpu, point.itl_ms, point.kv_usage) == expected

    def test_unreachable_itl_returns_the_zero_usage_cell(
        self, interp: ReferenceInterpolator
    ) -> None:
        """A target below every cell gives KV usage 0 with its (too high) ITL."""
        point = interp.best_decode_point(0.1, 3075.0)
        assert point.kv_usage == 0.0
        assert point.itl_ms > 0.1

    def test_itl_lookup_uses_the_rounded_cell(
        self,
        dynamo: tuple[np.ndarray, np.ndarray, np.ndarray],
        interp: ReferenceInterpolator,
    ) -> None:
        """decode_itl_ms reads the cell at round(kv/Δx), round(ctx/Δy)."""
        _, itl, thpt = dynamo
        concurrency, context = 100.0, 3075.0
        ix = round(concurrency * context / 945_029 * 99)
        iy = round(context / (13585.0 / 99))
        assert interp.decode_itl_ms(concurrency, context) == itl[iy, ix]
        assert interp.decode_throughput_per_gpu(concurrency, context) == thpt[iy, ix]

    def test_load_beyond_the_cache_uses_the_last_cell(
        self, interp: ReferenceInterpolator
    ) -> None:
        """Concurrency past full KV usage is clipped to the last column."""
        assert interp.decode_itl_ms(1e6, 3075.0) == interp.decode_itl_ms(10_000, 3075.0)

    def test_profile_at_one_context_length_still_builds(self) -> None:
        """Samples on one line cannot be triangulated; the nearest surface is used."""
        interp = ReferenceInterpolator.from_profile(small_profile(4))
        assert interp.best_decode_point(10.0, 500.0).throughput_per_gpu == 400.0
        assert np.isfinite(interp.decode.itl_ms).all()

    def test_h100_tp4_profile_interpolates(self, repo_data: Path) -> None:
        """A pre-swept row gives a finite model with its own KV capacity."""
        profile = load_profile(
            repo_data / "profiles/h100_sxm-vllm-Llama-3.3-70B-Instruct-FP8",
            select="TP4",
        )
        interp = ReferenceInterpolator.from_profile(profile)
        assert interp.max_kv_tokens() == 224_133
        point = interp.best_decode_point(30.0, 3075.0)
        assert point.itl_ms <= 30.0
        assert point.throughput_per_gpu > 0


class TestGridResolution:
    """The grid size is configurable but needs two cells per axis."""

    def test_resolution_below_two_is_refused(self, h200: PerfProfile) -> None:
        """A one-cell grid has no spacing and is refused."""
        with pytest.raises(ValueError, match="resolution"):
            ReferenceInterpolator.from_profile(h200, resolution=1)

    def test_finer_grid_changes_the_cell_size(self, h200: PerfProfile) -> None:
        """A 200-cell grid has 200 KV-usage cells."""
        interp = ReferenceInterpolator.from_profile(h200, resolution=200)
        assert interp.decode.itl_ms.shape == (200, 200)


class TestSnapIndex:
    """Nearest-cell lookup with Dynamo's rounding and clamping."""

    @pytest.mark.parametrize(
        ("value", "index"),
        [
            (0.0, 0),
            (0.5, 0),  # round half to even, as numpy does
            (1.5, 2),
            (2.49, 2),
            (98.7, 99),
            (1e300, 99),
            (-3.0, 0),
            (float("nan"), 0),
            (float("inf"), 99),
            (float("-inf"), 0),
        ],
    )
    def test_snap(self, value: float, index: int) -> None:
        """Values map to the expected cell of a 100-cell unit-step axis."""
        assert snap_index(value, 1.0, 100) == index


class TestContract:
    """The reference interpolator is an Interpolator plugin."""

    def test_satisfies_the_protocol(self, interp: ReferenceInterpolator) -> None:
        """isinstance against the runtime-checkable Protocol holds."""
        assert isinstance(interp, Interpolator)
        assert interp.max_kv_tokens() == 945_029

    def test_registered_as_entry_point(self) -> None:
        """The 'reference' entry point loads this class."""
        (entry,) = metadata.entry_points(
            group="dynamo_planner.interpolators", name="reference"
        )
        assert entry.load() is ReferenceInterpolator
