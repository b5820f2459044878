"""Tests of the request-stream transforms and ServeGen arrival synthesis."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_planner.sim.workload import (
    load_scale,
    rate_scale,
    spread_ties,
    synthesize_servegen,
    window,
)
from dynamo_planner.traces import RequestTrace, ServeGenWindows, load_servegen


def make_trace(arrival: list[float]) -> RequestTrace:
    n = len(arrival)
    return RequestTrace(
        arrival_s=np.sort(np.asarray(arrival, dtype=float)),
        isl_tokens=np.arange(n, dtype=float) + 100,
        osl_tokens=np.arange(n, dtype=float) + 10,
        source="t",
    )


arrivals = st.lists(st.floats(0, 1000, allow_nan=False), min_size=2, max_size=80)


class TestWindow:
    """Windowing."""

    def test_keeps_range_and_shifts_to_zero(self) -> None:
        """Requests in [start, end) are kept, moved so the start is 0."""
        trace = make_trace([1, 5, 10, 15, 20])
        out = window(trace, 5, 15)
        np.testing.assert_array_equal(out.arrival_s, [0, 5])
        np.testing.assert_array_equal(out.isl_tokens, [101, 102])

    def test_inverted_window_is_an_error(self) -> None:
        """An end before the start is rejected."""
        with pytest.raises(ValueError, match="after its start"):
            window(make_trace([1, 2]), 5, 5)


class TestRateScale:
    """Time compression."""

    @given(arrival=arrivals, factor=st.floats(0.1, 10))
    def test_divides_times(self, arrival: list[float], factor: float) -> None:
        """Arrivals are divided by the factor; lengths are unchanged."""
        trace = make_trace(arrival)
        out = rate_scale(trace, factor)
        np.testing.assert_allclose(out.arrival_s, trace.arrival_s / factor)
        np.testing.assert_array_equal(out.osl_tokens, trace.osl_tokens)

    def test_rejects_non_positive(self) -> None:
        """A zero factor is rejected."""
        with pytest.raises(ValueError, match="rate scale"):
            rate_scale(make_trace([1, 2]), 0)


class TestLoadScale:
    """Superposed time-shifted copies."""

    @given(arrival=arrivals, copies=st.integers(1, 6))
    def test_k_copies_over_the_same_span(
        self, arrival: list[float], copies: int
    ) -> None:
        """k copies give k times the requests within the original span."""
        trace = make_trace(arrival)
        out = load_scale(trace, copies)
        assert len(out) == copies * len(trace)
        assert out.arrival_s.min() >= trace.arrival_s[0] - 1e-9
        gap = trace.duration_s / (len(trace) - 1)
        assert out.arrival_s.max() <= trace.arrival_s[-1] + gap + 1e-9
        assert sorted(out.isl_tokens.tolist()) == sorted(
            np.tile(trace.isl_tokens, copies).tolist()
        )

    def test_copies_keep_their_bursts(self) -> None:
        """A burst of the original appears in every copy, shifted."""
        trace = make_trace([0, 50, 50.1, 50.2, 100])
        out = load_scale(trace, 2)
        # the copy is shifted by span/2 = 50 s: its burst sits at 100..100.2 (wrapped)
        values = np.round(out.arrival_s, 6).tolist()
        for t in (50.0, 50.1, 50.2):
            assert t in values
        assert len(out) == 10

    def test_zero_shift_duplicates(self) -> None:
        """With shift 0 every request is duplicated at its own time."""
        trace = make_trace([0, 1, 2])
        out = load_scale(trace, 3, shift_s=0.0)
        np.testing.assert_array_equal(out.arrival_s, [0, 0, 0, 1, 1, 1, 2, 2, 2])

    def test_rejects_zero_copies(self) -> None:
        """Fewer than one copy is rejected."""
        with pytest.raises(ValueError, match="load scale"):
            load_scale(make_trace([1, 2]), 0)


class TestSpreadTies:
    """Spreading bucketed timestamps."""

    def test_spreads_only_ties_within_width(self) -> None:
        """Tied requests move into [t, t + width); lone ones keep their time."""
        trace = make_trace([0, 0, 0, 5, 9, 9])
        out = spread_ties(trace, 3.0, seed=1)
        a = out.arrival_s
        assert np.all((a[:3] >= 0) & (a[:3] < 3))
        assert a[3] == 5
        assert np.all((a[4:] >= 9) & (a[4:] < 12))
        # order within a bucket is kept (lengths follow the same permutation)
        np.testing.assert_array_equal(out.isl_tokens, trace.isl_tokens)

    def test_deterministic_for_a_seed(self) -> None:
        """The same seed gives the same spread; another seed a different one."""
        trace = make_trace([0] * 20)
        a = spread_ties(trace, 3.0, seed=7).arrival_s
        np.testing.assert_array_equal(a, spread_ties(trace, 3.0, seed=7).arrival_s)
        assert not np.array_equal(a, spread_ties(trace, 3.0, seed=8).arrival_s)


def one_client(
    pattern: str, arg1: float, rate: float, windows: int = 3
) -> ServeGenWindows:
    return ServeGenWindows(
        start_s=np.arange(windows) * 600.0,
        window_s=600.0,
        client_ids=("0",),
        rate_per_s=np.full((1, windows), rate),
        cv=np.full((1, windows), 1.0),
        pattern=np.full((1, windows), pattern),
        arg1=np.full((1, windows), arg1),
        arg2=np.full((1, windows), 1.0),
        source="synthetic",
    )


class TestServeGen:
    """ServeGen arrival synthesis."""

    @pytest.mark.parametrize(("pattern", "shape"), [("Gamma", 0.25), ("Weibull", 0.6)])
    def test_rate_and_burstiness(self, pattern: str, shape: float) -> None:
        """Each window holds rate x length requests, with the law's inter-arrival CV."""
        windows = one_client(pattern, shape, rate=5.0)
        trace = synthesize_servegen(windows, seed=3)
        assert len(trace) == 3 * 3000
        counts = np.bincount((trace.arrival_s // 600).astype(int))
        np.testing.assert_array_equal(counts, [3000, 3000, 3000])
        gaps = np.diff(trace.arrival_s[trace.arrival_s < 600])
        cv = gaps.std() / gaps.mean()
        if pattern == "Gamma":
            expected = 1 / np.sqrt(shape)  # CV of a Gamma is 1/sqrt(shape)
        else:
            from math import gamma

            expected = np.sqrt(gamma(1 + 2 / shape) / gamma(1 + 1 / shape) ** 2 - 1)
        assert cv == pytest.approx(expected, rel=0.15)

    def test_lengths_from_a_trace(self) -> None:
        """ISL/OSL pairs are drawn from the given trace, together."""
        lengths = make_trace([0, 1, 2])
        trace = synthesize_servegen(one_client("Gamma", 1.0, 1.0), lengths=lengths)
        pairs = set(
            zip(trace.isl_tokens.tolist(), trace.osl_tokens.tolist(), strict=True)
        )
        assert pairs <= {(100.0, 10.0), (101.0, 11.0), (102.0, 12.0)}

    def test_window_and_rate_factor(self) -> None:
        """Start, duration and rate factor select and thin the span."""
        trace = synthesize_servegen(
            one_client("Gamma", 1.0, 2.0),
            start_s=600,
            duration_s=600,
            rate_factor=0.5,
            isl_tokens=7,
            osl_tokens=3,
        )
        assert len(trace) == 600
        assert trace.arrival_s.min() >= 0
        assert trace.arrival_s.max() < 600
        assert set(trace.isl_tokens.tolist()) == {7.0}

    def test_deterministic_for_a_seed(self) -> None:
        """The same seed gives the same arrivals."""
        windows = one_client("Weibull", 0.8, 0.7)
        a = synthesize_servegen(windows, seed=5).arrival_s
        np.testing.assert_array_equal(a, synthesize_servegen(windows, seed=5).arrival_s)

    def test_real_windows(self, repo_data: Path) -> None:
        """One hour of the real m-large clients gives about their summed rate."""
        windows = load_servegen(repo_data / "traces/servegen/language/m-large")
        trace = synthesize_servegen(
            windows, start_s=0, duration_s=3600, rate_factor=0.01, seed=0
        )
        expected = windows.rate_per_s[:, :6].sum() * 600 * 0.01
        assert len(trace) == pytest.approx(expected, rel=0.05)
