"""Tests of hindsight schedules replayed (and refined) in the simulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dynamo_planner.sim.baselines import run_static
from dynamo_planner.sim.engine import SimConfig
from dynamo_planner.sim.engine_model import EngineModel
from dynamo_planner.sim.oracle import interval_oracle
from dynamo_planner.sim.schedule import (
    RefinedSchedule,
    ScheduleRun,
    refine_schedule,
    replay_schedule,
)
from dynamo_planner.traces import RequestTrace

TARGETS = {"ttft_ms": 300.0, "itl_ms": 12.0}


Phased = Callable[..., RequestTrace]
BUSY_THEN_QUIET = (24.0, 6.0)
"""300 s at 24 requests/s, then 300 s at a quarter of that (the ``phased`` fixture)."""


def refine(
    trace: RequestTrace,
    model: EngineModel,
    deployment: tuple[int, int],
    target: float,
    **options: Any,
) -> RefinedSchedule:
    """Refine ten 60 s intervals of ``deployment``, started warm, 30 s cold starts;
    ``options`` override any of those settings or the targets."""
    p, d = deployment
    settings: dict[str, Any] = {
        "prefill": [p] * 10,
        "decode": [d] * 10,
        "interval_s": 60.0,
        "cold_start_s": 30.0,
        **TARGETS,
        **options,
    }
    return refine_schedule(
        trace, model, start(p, d), attainment_target=target, **settings
    )


def replay_best(
    trace: RequestTrace,
    model: EngineModel,
    deployment: tuple[int, int],
    found: RefinedSchedule,
    **options: Any,
) -> ScheduleRun:
    """Replay the best schedule ``refine`` found, with the same settings."""
    return replay_schedule(
        trace,
        model,
        start(*deployment),
        prefill=found.best.prefill,
        decode=found.best.decode,
        interval_s=60.0,
        cold_start_s=30.0,
        **TARGETS,
        **options,
    )


def start(prefill: int, decode: int) -> SimConfig:
    return SimConfig(initial_prefill=prefill, initial_decode=decode)


class TestReplaySchedule:
    """A schedule runs as a planner knowing the future would run it."""

    def test_a_constant_schedule_is_the_static_deployment(
        self, phased: Phased, model: EngineModel
    ) -> None:
        """Holding the initial deployment throughout scales nothing: the run is the
        static run, request for request and GPU-second for GPU-second."""
        trace = phased(BUSY_THEN_QUIET)
        run = replay_schedule(
            trace,
            model,
            start(3, 2),
            prefill=[3] * 5,
            decode=[2] * 5,
            interval_s=60.0,
            cold_start_s=60.0,
            warmup_s=120.0,
            **TARGETS,
        )
        static = run_static(
            trace, model, SimConfig(), prefill=3, decode=2, warmup_s=120.0, **TARGETS
        )
        assert run.attainment == static.attainment
        assert run.gpu_hours == pytest.approx(static.gpu_hours)
        assert run.prefill == (3,) * 5
        assert run.decode == (2,) * 5

    def test_workers_are_asked_for_one_cold_start_early(
        self, phased: Phased, model: EngineModel
    ) -> None:
        """A worker the second interval needs is requested a cold start before that
        interval and serves from its first moment; one it no longer needs is released
        at its start (after draining). The intervals are the planner's: from a 150 s
        warm-up at 60 s, the first is [120 s, 180 s) and the second [180 s, 240 s)."""
        trace = phased(BUSY_THEN_QUIET)
        run = replay_schedule(
            trace,
            model,
            start(1, 1),
            prefill=[1, 3, 1],
            decode=[1, 1, 1],
            interval_s=60.0,
            cold_start_s=45.0,
            warmup_s=150.0,
            **TARGETS,
        )
        added = [
            w for w in run.workers if w.component == "prefill" and w.requested_s > 0
        ]
        assert len(added) == 2
        for w in added:
            assert w.requested_s == pytest.approx(180.0 - 45.0)
            assert w.ready_s == pytest.approx(180.0)
            assert w.released_s >= 240.0

    def test_bad_schedules_are_refused(
        self, phased: Phased, model: EngineModel
    ) -> None:
        """Mismatched lengths, empty schedules, zero workers and agg are named."""
        trace = phased(BUSY_THEN_QUIET)
        kwargs = {"interval_s": 60.0, "cold_start_s": 0.0, **TARGETS}
        with pytest.raises(ValueError, match="same non-zero length"):
            replay_schedule(
                trace, model, start(1, 1), prefill=[1, 2], decode=[1], **kwargs
            )
        with pytest.raises(ValueError, match="same non-zero length"):
            replay_schedule(trace, model, start(1, 1), prefill=[], decode=[], **kwargs)
        with pytest.raises(ValueError, match="at least 1 worker"):
            replay_schedule(
                trace, model, start(1, 1), prefill=[0], decode=[1], **kwargs
            )
        with pytest.raises(ValueError, match="interval_s"):
            replay_schedule(
                trace,
                model,
                start(1, 1),
                prefill=[1],
                decode=[1],
                interval_s=0.0,
                cold_start_s=0.0,
                **TARGETS,
            )
        with pytest.raises(ValueError, match="disaggregated"):
            replay_schedule(
                trace,
                model,
                SimConfig(mode="agg", initial_decode=1),
                prefill=[1],
                decode=[1],
                **kwargs,
            )


class TestRefineSchedule:
    """Refining removes workers while the replayed attainment holds."""

    def test_removes_workers_where_the_load_falls(
        self, phased: Phased, model: EngineModel
    ) -> None:
        """From a static-sized schedule, the refined one meets the target at fewer
        GPU-hours, and the workers it removed are in the quiet half."""
        trace = phased(BUSY_THEN_QUIET, seed=1)
        static = run_static(
            trace, model, SimConfig(), prefill=4, decode=2, warmup_s=0.0, **TARGETS
        )
        target = min(0.99, static.attainment - 1e-6)
        found = refine(trace, model, (4, 2), target)
        assert found.exhausted
        assert found.initial.gpu_hours == pytest.approx(static.gpu_hours)
        assert found.best.attainment >= target
        assert found.best.gpu_hours < found.initial.gpu_hours
        assert found.removals
        assert found.replays >= len(found.removals) + 1
        busy = sum(found.best.prefill[:5]) + sum(found.best.decode[:5])
        quiet = sum(found.best.prefill[5:]) + sum(found.best.decode[5:])
        assert quiet < busy
        # what it reports is what a replay of its schedule gives
        again = replay_best(trace, model, (4, 2), found)
        assert again.attainment == found.best.attainment
        assert again.gpu_hours == pytest.approx(found.best.gpu_hours)

    def test_improves_on_the_oracle(self, phased: Phased, model: EngineModel) -> None:
        """The oracle's schedule meets the target when replayed; refined, it still
        does, with workers removed in the quiet half, below the oracle's estimate."""
        trace = phased(BUSY_THEN_QUIET, seed=2)
        oracle = interval_oracle(
            trace,
            model,
            SimConfig(),
            interval_s=60.0,
            prefill_options=[1, 2, 3, 4],
            decode_options=[1, 2],
            attainment_target=0.95,
            cold_start_s=30.0,
            **TARGETS,
        )
        found = refine(
            trace,
            model,
            (oracle.prefill[0], oracle.decode[0]),
            0.95,
            prefill=oracle.prefill,
            decode=oracle.decode,
        )
        assert found.initial.attainment >= 0.95
        assert found.best.attainment >= 0.95
        assert found.removals
        assert all(k >= 5 for _, k in found.removals)
        assert found.best.gpu_hours < min(found.initial.gpu_hours, oracle.gpu_hours)

    def test_a_schedule_missing_the_target_is_repaired(
        self, phased: Phased, model: EngineModel
    ) -> None:
        """One worker of each kind misses a 95% target in the busy half: workers are
        added there until the replay meets it, and the repaired schedule is what a
        replay of it gives. (The first minute is not counted, so that the first
        interval's workers can be asked for a cold start before it.)"""
        trace = phased(BUSY_THEN_QUIET)
        found = refine(trace, model, (1, 1), 0.95, warmup_s=60.0)
        assert found.initial.attainment < 0.95
        assert found.initial.prefill_misses[0] > 0
        assert found.additions
        assert all(k < 5 for _, k in found.additions)
        assert found.best.attainment >= 0.95
        assert found.best.gpu_hours > found.initial.gpu_hours
        assert found.exhausted
        assert found.replays >= len(found.additions) + 1
        again = replay_best(trace, model, (1, 1), found, warmup_s=60.0)
        assert again.attainment == found.best.attainment
        assert found.to_dict()["workers_added"] == len(found.additions)

    def test_misses_no_worker_can_help_are_left(
        self, phased: Phased, model: EngineModel
    ) -> None:
        """With a TTFT target below every prompt's prefill alone, no request can meet
        it: no miss is put down to waiting, nothing is added, and the schedule is
        returned as it was."""
        found = refine(
            phased(BUSY_THEN_QUIET),
            model,
            (4, 2),
            0.5,
            ttft_ms=model.prefill_ms(3000.0) / 2,
        )
        assert found.initial.attainment == 0.0
        assert sum(found.initial.prefill_misses) == 0
        assert found.best is found.initial
        assert found.additions == found.removals == ()
        assert found.replays == 1
        assert found.exhausted

    def test_max_replays_stops_the_search(
        self, phased: Phased, model: EngineModel
    ) -> None:
        """With one replay allowed, the initial schedule is the answer, and the search
        says it stopped early."""
        progress: list[int] = []
        found = refine(
            phased(BUSY_THEN_QUIET),
            model,
            (4, 2),
            0.5,
            max_replays=1,
            progress=lambda n, _run: progress.append(n),
        )
        assert not found.exhausted
        assert found.best is found.initial
        assert progress == [1]
        with pytest.raises(ValueError, match="max_replays"):
            refine(phased(BUSY_THEN_QUIET), model, (1, 1), 0.5, max_replays=0)
