"""Tests of the hindsight interval oracle."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from dynamo_planner.sim.baselines import run_static
from dynamo_planner.sim.engine import SimConfig
from dynamo_planner.sim.engine_model import EngineModel
from dynamo_planner.sim.oracle import (
    CandidateOutcomes,
    interval_oracle,
    interval_oracles,
    oracle_options,
    simulate_candidates,
)
from dynamo_planner.traces import RequestTrace

Phased = Callable[..., RequestTrace]
TWO_PHASES = (6.0, 24.0)
"""300 s at a low rate, then 300 s at four times that rate (the ``phased`` fixture)."""


TARGETS = {"ttft_ms": 300.0, "itl_ms": 12.0}


def test_options_around_a_count() -> None:
    """From three quarters of the count (at least 1) to one above it."""
    assert oracle_options(4) == [3, 4, 5]
    assert oracle_options(1) == [1, 2]
    assert oracle_options(12, low_share=0.5, above=0) == list(range(6, 13))


class TestIntervalOracle:
    """The oracle picks cheap deployments where the load is low."""

    def test_cheaper_than_the_static_deployment_it_contains(
        self, phased: Phased, model: EngineModel
    ) -> None:
        """With a static deployment among the candidates that meets the target, the
        oracle meets it too at no more GPU-hours, and uses fewer workers in the quiet
        phase than in the busy one."""
        trace = phased(TWO_PHASES)
        big = run_static(
            trace, model, SimConfig(), prefill=4, decode=2, warmup_s=0.0, **TARGETS
        )
        target = min(0.99, big.attainment - 1e-6)
        oracle = interval_oracle(
            trace,
            model,
            SimConfig(),
            interval_s=60.0,
            prefill_options=[1, 2, 3, 4],
            decode_options=[1, 2],
            attainment_target=target,
            **TARGETS,
        )
        assert oracle.feasible
        assert oracle.attainment >= target
        span_h = (trace.arrival_s.max() - trace.arrival_s.min()) / 3600
        assert oracle.gpu_hours <= 6 * span_h + 1e-9
        quiet = np.add(oracle.prefill[:4], oracle.decode[:4])
        busy = np.add(oracle.prefill[5:9], oracle.decode[5:9])
        assert quiet.mean() < busy.mean()
        assert len(oracle.prefill) == len(oracle.decode) == 10
        assert set(zip(oracle.prefill, oracle.decode, strict=True)) <= set(
            oracle.candidates
        )

    def test_a_lower_target_never_costs_more(
        self, phased: Phased, model: EngineModel
    ) -> None:
        """Relaxing the attainment target never raises the oracle's GPU-hours."""
        trace = phased(TWO_PHASES, seed=1)
        kwargs = {
            "interval_s": 60.0,
            "prefill_options": [1, 2, 3],
            "decode_options": [1, 2],
            **TARGETS,
        }
        costs = [
            interval_oracle(
                trace, model, SimConfig(), attainment_target=t, **kwargs
            ).gpu_hours
            for t in (0.5, 0.8, 0.95)
        ]
        assert costs == sorted(costs)

    def test_unreachable_target_is_flagged(
        self, phased: Phased, model: EngineModel
    ) -> None:
        """When no candidate reaches the target, the most-serving choice is reported."""
        trace = phased(TWO_PHASES, seed=2)
        oracle = interval_oracle(
            trace,
            model,
            SimConfig(),
            interval_s=60.0,
            prefill_options=[1],
            decode_options=[1],
            attainment_target=0.999,
            **TARGETS,
        )
        assert not oracle.feasible
        assert oracle.attainment < 0.999
        assert set(oracle.prefill) == {1}

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"interval_s": 0.0}, "interval_s"),
            ({"prefill_options": []}, "prefill_options"),
            ({"decode_options": [0, 1]}, "decode_options"),
            ({"warmup_s": 1e6}, "warmup_s"),
            ({"cold_start_s": -1.0}, "cold_start_s"),
        ],
    )
    def test_bad_arguments(
        self,
        phased: Phased,
        model: EngineModel,
        kwargs: dict[str, object],
        match: str,
    ) -> None:
        """Bad arguments are refused with the argument named."""
        args: dict[str, object] = {
            "interval_s": 60.0,
            "prefill_options": [1],
            "decode_options": [1],
            **TARGETS,
        }
        args.update(kwargs)
        with pytest.raises(ValueError, match=match):
            interval_oracle(phased(TWO_PHASES), model, SimConfig(), **args)  # type: ignore[arg-type]

    def test_agg_is_refused(self, phased: Phased, model: EngineModel) -> None:
        """The oracle covers disaggregated deployments."""
        with pytest.raises(ValueError, match="disaggregated"):
            interval_oracle(
                phased(TWO_PHASES),
                model,
                SimConfig(mode="agg", initial_prefill=0),
                interval_s=60.0,
                prefill_options=[1],
                decode_options=[1],
                **TARGETS,
            )


def test_several_intervals_from_one_set_of_runs(
    phased: Phased, model: EngineModel
) -> None:
    """interval_oracles gives one oracle per interval, each choosing per interval of its
    own length; deciding every 60 s never costs more than every 180 s, since any
    180 s choice is also a 60 s one."""
    fine, coarse = interval_oracles(
        phased(TWO_PHASES, seed=3),
        model,
        SimConfig(),
        intervals_s=(60.0, 180.0),
        prefill_options=[1, 2, 3],
        decode_options=[1, 2],
        attainment_target=0.9,
        **TARGETS,
    )
    assert (fine.interval_s, coarse.interval_s) == (60.0, 180.0)
    assert (len(fine.prefill), len(coarse.prefill)) == (10, 4)  # 600 s of arrivals
    assert fine.feasible
    assert coarse.feasible
    assert min(fine.attainment, coarse.attainment) >= 0.9
    assert fine.gpu_hours <= coarse.gpu_hours


def outcomes(
    in_time: list[list[list[float]]], options: list[tuple[int, int]]
) -> CandidateOutcomes:
    """Hand-made outcomes: per candidate, per 60 s interval, the requests' in-time flags.

    Every interval holds the same number of requests, arriving at its start.
    """
    per_interval = len(in_time[0][0])
    bins = len(in_time[0])
    arrival = np.repeat(np.arange(bins) * 60.0, per_interval)
    arrival[-per_interval:] += 59.0  # the last interval spans 59 s of arrivals
    return CandidateOutcomes(
        options=tuple(options),
        in_time=np.array([np.concatenate(rows) for rows in in_time], dtype=np.float64),
        prefill_gpus=1,
        decode_gpus=1,
        arrival_s=arrival,
        warmup_s=0.0,
    )


class TestColdStart:
    """An oracle that pays cold starts weighs a step up against staying up."""

    # One prefill worker serves all requests except in interval 2, a short spike
    # where it serves half; two serve every request.
    SPIKE = outcomes(
        [
            [[1, 1], [1, 1], [1, 0], [1, 1], [1, 1]],
            [[1, 1], [1, 1], [1, 1], [1, 1], [1, 1]],
        ],
        [(1, 1), (2, 1)],
    )

    def test_instant_workers_step_up_for_the_spike_only(self) -> None:
        """Without a cold start the second worker runs in the spike's interval only."""
        oracle = self.SPIKE.oracle(interval_s=60.0, attainment_target=1.0)
        assert oracle.prefill == (1, 1, 2, 1, 1)
        assert oracle.cold_start_gpu_hours == 0.0
        # 2 GPUs, 3 in the spike; the last interval is 59 s long
        assert oracle.gpu_hours == pytest.approx(((4 * 2 + 3) * 60.0 - 2.0) / 3600)

    def test_the_cold_start_is_paid_for_each_step_up(self) -> None:
        """A 30 s cold start adds 30 GPU-seconds for the one step up, none for the
        step down."""
        instant = self.SPIKE.oracle(interval_s=60.0, attainment_target=1.0)
        oracle = self.SPIKE.oracle(
            interval_s=60.0, attainment_target=1.0, cold_start_s=30.0
        )
        assert oracle.prefill == instant.prefill
        assert oracle.cold_start_gpu_hours == pytest.approx(30.0 / 3600)
        assert oracle.gpu_hours == pytest.approx(instant.gpu_hours + 30.0 / 3600)

    def test_a_long_cold_start_makes_the_step_up_pointless_where_a_miss_is_allowed(
        self,
    ) -> None:
        """With one miss allowed, a cold start longer than the interval makes serving
        the spike worse cheaper than stepping up; without it, stepping up is cheapest
        at any cold start."""
        allowed = self.SPIKE.oracle(
            interval_s=60.0, attainment_target=0.9, cold_start_s=120.0
        )
        assert allowed.prefill == (1, 1, 1, 1, 1)
        assert allowed.attainment == pytest.approx(0.9)
        required = self.SPIKE.oracle(
            interval_s=60.0, attainment_target=1.0, cold_start_s=120.0
        )
        assert required.prefill == (1, 1, 2, 1, 1)
        assert required.cold_start_gpu_hours == pytest.approx(120.0 / 3600)

    def test_two_spikes_close_together_are_bridged(self) -> None:
        """Between two spikes one interval apart, staying up costs 60 GPU-seconds and
        stepping up again costs the cold start: with 120 s the oracle stays up. (The
        first interval may start at any size: the deployment is already running.)"""
        twin = outcomes(
            [
                [[1, 1], [1, 1], [1, 1], [1, 0], [1, 1], [1, 0], [1, 1]],
                [[1, 1], [1, 1], [1, 1], [1, 1], [1, 1], [1, 1], [1, 1]],
            ],
            [(1, 1), (2, 1)],
        )
        quick = twin.oracle(interval_s=60.0, attainment_target=1.0, cold_start_s=10.0)
        assert quick.prefill == (1, 1, 1, 2, 1, 2, 1)
        assert quick.cold_start_gpu_hours == pytest.approx(2 * 10.0 / 3600)
        slow = twin.oracle(interval_s=60.0, attainment_target=1.0, cold_start_s=120.0)
        assert slow.prefill == (1, 1, 1, 2, 2, 2, 1)
        assert slow.cold_start_gpu_hours == pytest.approx(120.0 / 3600)

    def test_a_longer_cold_start_never_costs_less(
        self, phased: Phased, model: EngineModel
    ) -> None:
        """On simulated runs: GPU-hours grow with the cold start, the target still holds,
        and the cold start's share is what the steps up cost."""
        found = simulate_candidates(
            phased(TWO_PHASES, seed=4),
            model,
            SimConfig(),
            prefill_options=[1, 2, 3],
            decode_options=[1, 2],
            **TARGETS,
        )
        oracles = [
            found.oracle(interval_s=60.0, attainment_target=0.9, cold_start_s=c)
            for c in (0.0, 60.0, 180.0, 600.0)
        ]
        costs = [o.gpu_hours for o in oracles]
        assert costs == sorted(costs)
        for o in oracles:
            assert o.feasible
            assert o.attainment >= 0.9
            steps = np.diff(np.add(o.prefill, o.decode))
            assert o.cold_start_gpu_hours == pytest.approx(
                o.cold_start_s * float(np.maximum(steps, 0).sum()) / 3600
            )


@pytest.mark.parametrize("seed", range(20))
def test_the_path_search_finds_the_best_path(seed: int) -> None:
    """The dynamic programme's path scores as well as the best of every path, on small
    random problems."""
    import itertools

    from dynamo_planner.sim.oracle import _best_path

    rng = np.random.default_rng(seed)
    score = rng.normal(size=(3, 5))
    switch = rng.uniform(0, 1, size=(3, 3)) * (rng.uniform() < 0.8)

    def value(path: tuple[int, ...]) -> float:
        inside = sum(score[k, b] for b, k in enumerate(path))
        between = sum(switch[a, b] for a, b in itertools.pairwise(path))
        return float(inside - between)

    best = max(value(p) for p in itertools.product(range(3), repeat=5))
    found = tuple(int(k) for k in _best_path(score, switch))
    assert value(found) == pytest.approx(best)


def test_intervals_are_the_planners(phased: Phased, model: EngineModel) -> None:
    """With a warm-up inside a planner interval, the oracle's first interval is that
    one, counted from the warm-up: 600 s of trace at 180 s intervals from a 100 s
    warm-up are four intervals, and one deployment held throughout costs its GPUs from
    the warm-up to the last arrival."""
    trace = phased(TWO_PHASES)
    oracle = interval_oracle(
        trace,
        model,
        SimConfig(),
        interval_s=180.0,
        prefill_options=[3],
        decode_options=[2],
        attainment_target=0.0,
        warmup_s=100.0,
        **TARGETS,
    )
    assert len(oracle.prefill) == 4
    span_h = (float(np.max(trace.arrival_s)) - 100.0) / 3600.0
    assert oracle.gpu_hours == pytest.approx(5 * span_h)
