"""Properties of load-based scaling: the regression inverts, decisions stay bounded."""

from __future__ import annotations

import math

from hypothesis import assume, given
from hypothesis import strategies as st

from dynamo_planner.scalers.load import LoadRequest, LoadScaler, LoadSnapshot
from dynamo_planner.scalers.load_regression import LinearFit
from dynamo_planner.values import ReplicaState, WorkerLoad

finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)
loads = st.floats(min_value=0, max_value=1e5, allow_nan=False)


@st.composite
def rising_fits(draw: st.DrawFn) -> LinearFit:
    """Least-squares fits with a clearly positive slope."""
    xs = draw(st.lists(loads, min_size=2, max_size=30))
    noise = draw(st.lists(finite, min_size=len(xs), max_size=len(xs)))
    slope = draw(st.floats(min_value=1e-3, max_value=1e3))
    intercept = draw(finite)
    scale = draw(st.floats(min_value=0, max_value=0.1))
    ys = [slope * x + intercept + scale * e for x, e in zip(xs, noise, strict=True)]
    fit = LinearFit.of(xs, ys)
    assume(fit.slope > 1e-6)
    return fit


def _close(a: float, b: float, *magnitudes: float) -> bool:
    return math.isclose(
        a, b, rel_tol=1e-7, abs_tol=1e-7 * max(1.0, *map(abs, magnitudes))
    )


class TestRegressionInverse:
    """The reverse solve inverts the forward prediction."""

    @given(fit=rising_fits(), target=finite)
    def test_predict_of_solve(self, fit: LinearFit, target: float) -> None:
        """Predicting at the solved load gives the target back (unless clamped at 0)."""
        solution = fit.solve(target)
        assert solution.load >= 0
        if solution.clamped:
            assert fit.predict(0.0) >= target - 1e-9 * max(1.0, abs(target))
        else:
            predicted = fit.predict(solution.load)
            assert _close(predicted, target, target, fit.intercept)

    @given(fit=rising_fits(), load=loads)
    def test_solve_of_predict(self, fit: LinearFit, load: float) -> None:
        """Solving for the latency predicted at a load gives that load back."""
        latency = fit.predict(load)
        solved = fit.solve(latency).load
        tolerance = 1e-7 * max(1.0, load, abs(fit.intercept / fit.slope))
        assert abs(solved - load) <= tolerance

    @given(
        xs=st.lists(loads, min_size=1, max_size=20),
        ys=st.lists(finite, min_size=20, max_size=20),
        target=finite,
    )
    def test_solve_never_negative(
        self, xs: list[float], ys: list[float], target: float
    ) -> None:
        """Whatever the data, the solved load is finite and not negative."""
        fit = LinearFit.of(xs, ys[: len(xs)])
        load = fit.solve(target).load
        assert math.isfinite(load)
        assert load >= 0


def _prefill(i: int, active: float) -> WorkerLoad:
    return WorkerLoad(
        worker_id=f"p{i}",
        worker_type="prefill",
        active_prefill_tokens=active,
        last_isl_tokens=1000.0,
        last_ttft_ms=100.0,
    )


def _decode(i: int, blocks: float) -> WorkerLoad:
    return WorkerLoad(
        worker_id=f"d{i}",
        worker_type="decode",
        active_decode_blocks=blocks,
        active_prefill_tokens=blocks * 10,
        last_isl_tokens=1000.0,
        last_ttft_ms=100.0,
        last_itl_ms=10.0,
    )


@st.composite
def ticks(
    draw: st.DrawFn, *, floor: bool | None = None, budget: bool = True
) -> tuple[LoadScaler, LoadRequest]:
    """A scaler configuration and one tick's request.

    ``floor``: always (True), never (False) or sometimes (None) a throughput floor.
    ``budget``: whether a GPU budget may be drawn.
    """
    mode = draw(st.sampled_from(["disagg", "prefill", "decode", "agg"]))
    np_ = draw(st.integers(1, 4))
    nd = draw(st.integers(1, 4))
    scaler = LoadScaler(
        mode=mode,
        ttft_ms=draw(st.floats(200, 5000)),
        itl_ms=draw(st.floats(12, 200)),
        scaling_down_sensitivity=draw(st.integers(0, 100)),
        min_endpoint=draw(st.integers(0, 3)),
        max_gpu_budget=draw(st.one_of(st.just(-1), st.integers(1, 64)))
        if budget
        else -1,
        prefill_gpus_per_engine=np_,
        decode_gpus_per_engine=nd,
    )
    current = ReplicaState(
        prefill=draw(st.integers(0, 12)), decode=draw(st.integers(0, 12))
    )
    # Usually the router sees every worker; sometimes one more or fewer (mismatch).
    mismatch = st.sampled_from([0] * 8 + [-1, 1])
    seen_p = max(0, current.prefill + draw(mismatch))
    seen_d = max(0, current.decode + draw(mismatch))
    # Loads mostly all above or all below any target, so the rules fire often.
    regime = draw(st.sampled_from(["high", "low", "any"]))
    span_p = {"high": (60000, 1e5), "low": (0, 5), "any": (0, 1e5)}[regime]
    span_d = {"high": (500, 1000), "low": (0, 1), "any": (0, 1000)}[regime]
    workers = [_prefill(i, draw(st.floats(*span_p))) for i in range(seen_p)]
    workers += [_decode(i, draw(st.floats(*span_d))) for i in range(seen_d)]
    # Mostly the lines of spec §11.4; sometimes arbitrary data (any slope); or none.
    kind = draw(st.sampled_from(["line", "line", "line", "data", "none"]))
    fit_p = fit_d = None
    if kind == "line":
        fit_p = LinearFit.of([2000.0, 4000.0], [300.0, 500.0])
        fit_d = LinearFit.of([20.0, 100.0], [20.0, 60.0])
    elif kind == "data":
        xs = draw(st.lists(st.floats(0, 1e5), min_size=2, max_size=5))
        ys = draw(st.lists(st.floats(1, 5000), min_size=len(xs), max_size=len(xs)))
        fit_p = LinearFit.of(xs, ys)
        fit_d = LinearFit.of(
            [10.0, 100.0], [draw(st.floats(1, 50)), draw(st.floats(1, 300))]
        )
    with_floor = draw(st.booleans()) if floor is None else floor
    floor_state = (
        ReplicaState(prefill=draw(st.integers(0, 12)), decode=draw(st.integers(0, 12)))
        if with_floor
        else None
    )
    return scaler, LoadRequest(
        current=current,
        snapshot=LoadSnapshot.of_workers(workers),
        prefill_fit=fit_p,
        decode_fit=fit_d,
        floor=floor_state,
    )


def _gpus(scaler: LoadScaler, state: ReplicaState) -> int:
    planned = scaler.components
    gpus = 0
    if "prefill" in planned:
        gpus += state.prefill * scaler.prefill_gpus_per_engine
    if "decode" in planned:
        gpus += state.decode * scaler.decode_gpus_per_engine
    return gpus


def _min_gpus(scaler: LoadScaler) -> int:
    m = scaler.min_endpoint
    planned = scaler.components
    return m * (
        (scaler.prefill_gpus_per_engine if "prefill" in planned else 0)
        + (scaler.decode_gpus_per_engine if "decode" in planned else 0)
    )


class TestDecisionBounds:
    """Every load tick stays within one replica, min_endpoint and the budget."""

    @given(tick=ticks())
    def test_never_over_budget(self, tick: tuple[LoadScaler, LoadRequest]) -> None:
        """The planned components never use more GPUs than the budget."""
        scaler, request = tick
        target = scaler.decide(request).target(request.current)
        if scaler.max_gpu_budget >= 0:
            assert _gpus(scaler, target) <= scaler.max_gpu_budget

    @given(tick=ticks())
    def test_never_below_min_endpoint(
        self, tick: tuple[LoadScaler, LoadRequest]
    ) -> None:
        """Planned components hold at least min_endpoint, unless the budget cannot."""
        scaler, request = tick
        target = scaler.decide(request).target(request.current)
        budget_hosts_min = (
            scaler.max_gpu_budget < 0 or scaler.max_gpu_budget >= _min_gpus(scaler)
        )
        if budget_hosts_min:
            for component in scaler.components:
                assert getattr(target, component) >= scaler.min_endpoint

    @given(tick=ticks(floor=False))
    def test_moves_at_most_one(self, tick: tuple[LoadScaler, LoadRequest]) -> None:
        """Without a floor, from a valid state, each component moves by at most one."""
        scaler, request = tick
        current = request.current
        for component in scaler.components:
            assume(getattr(current, component) >= scaler.min_endpoint)
        assume(
            scaler.max_gpu_budget < 0 or _gpus(scaler, current) <= scaler.max_gpu_budget
        )
        plan = scaler.decide(request)
        target = plan.target(current)
        for component in scaler.components:
            assert abs(getattr(target, component) - getattr(current, component)) <= 1
        if "prefill" not in scaler.components:
            assert plan.prefill is None

    @given(tick=ticks(floor=True, budget=False))
    def test_floor_always_met_without_budget(
        self, tick: tuple[LoadScaler, LoadRequest]
    ) -> None:
        """With no budget, every planned component is at least its floor."""
        scaler, request = tick
        assert request.floor is not None
        target = scaler.decide(request).target(request.current)
        for component in scaler.components:
            assert getattr(target, component) >= getattr(request.floor, component)
