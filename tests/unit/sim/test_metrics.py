"""Tests of attainment, percentiles, GPU-hours and per-interval figures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dynamo_planner.sim.engine import SimResult, WorkerSpan
from dynamo_planner.sim.metrics import (
    first_interval_start,
    gpu_seconds_between,
    interval_table,
    planner_intervals,
    summarize,
    workers_over_time,
)
from dynamo_planner.values import Demand, ReplicaPlan

INF = math.inf


def result_of(
    arrival: list[float],
    first: list[float],
    done: list[float],
    osl: list[float],
    workers: tuple[WorkerSpan, ...] = (),
    end_s: float = 100.0,
) -> SimResult:
    a = np.asarray(arrival, dtype=float)
    return SimResult(
        arrival_s=a,
        isl_tokens=np.full(a.shape, 100.0),
        osl_tokens=np.asarray(osl, dtype=float),
        prefill_start_s=a,
        prefill_end_s=a,
        first_token_s=np.asarray(first, dtype=float),
        completion_s=np.asarray(done, dtype=float),
        workers=workers,
        end_s=end_s,
    )


def span(
    component: str, start: float, ready: float, end: float, gpus: int = 1
) -> WorkerSpan:
    return WorkerSpan(
        worker_id=f"{component}-x",
        component=component,
        requested_s=start,
        ready_s=ready,
        released_s=end,
        gpus=gpus,
    )


class TestSummarize:
    """Attainment and percentiles."""

    def test_attainment_definitions(self) -> None:
        """TTFT, ITL and both are counted per request; incomplete requests miss both."""
        result = result_of(
            arrival=[0, 0, 0, 0, 0],
            # TTFT (ms): 100, 600, 100, 100, inf
            first=[0.1, 0.6, 0.1, 0.1, INF],
            # ITL (ms) over 10 gaps: 10, 10, 100, -, inf
            done=[0.2, 0.7, 1.1, 0.1, INF],
            osl=[11, 11, 11, 1, 11],
        )
        s = summarize(result, name="x", ttft_ms=500, itl_ms=50)
        assert s.requests == 5
        assert s.completed == 4
        assert s.attainment_ttft == pytest.approx(3 / 5)
        assert s.attainment_itl == pytest.approx(3 / 5)  # OSL 1 meets ITL
        assert s.attainment == pytest.approx(2 / 5)
        assert s.ttft_ms[0] == pytest.approx(100)
        assert s.ttft_ms[2] == INF

    def test_warmup_excludes_early_requests_and_gpu_time(self) -> None:
        """Requests before the warm-up and GPU time before it are not counted."""
        result = result_of(
            arrival=[1, 20],
            first=[60, 20.1],
            done=[61, 20.13],
            osl=[2, 2],
            workers=(span("prefill", 0, 0, 100, gpus=2),),
        )
        s = summarize(result, name="x", ttft_ms=500, itl_ms=50, warmup_s=10)
        assert s.requests == 1
        assert s.attainment == 1.0
        assert s.gpu_hours == pytest.approx(90 * 2 / 3600)

    def test_to_dict_has_no_nan(self) -> None:
        """NaN percentiles become None in the dict."""
        result = result_of(arrival=[0], first=[0.1], done=[0.1], osl=[1])
        d = summarize(result, name="x", ttft_ms=500, itl_ms=50).to_dict()
        assert d["itl_ms"] == {"p50": None, "p90": None, "p99": None}


class TestWorkers:
    """Worker accounting over time."""

    def test_gpu_seconds_between(self) -> None:
        """Overlap of each life with the window, times GPUs."""
        workers = (span("prefill", 0, 10, 50, gpus=2), span("decode", 40, 60, 200))
        assert gpu_seconds_between(workers, 0, 100) == pytest.approx(50 * 2 + 60)
        assert gpu_seconds_between(workers, 45, 55) == pytest.approx(5 * 2 + 10)

    def test_workers_over_time(self) -> None:
        """Held counts from request to release; ready from ready to release."""
        workers = (span("prefill", 0, 10, 50), span("prefill", 20, 30, 40))
        ready, held = workers_over_time(workers, [5, 25, 35, 45, 60], "prefill")
        np.testing.assert_array_equal(held, [1, 2, 2, 1, 0])
        np.testing.assert_array_equal(ready, [0, 1, 2, 1, 0])


class TestIntervalTable:
    """Per-interval rows."""

    def test_rows(self) -> None:
        """Each interval has its arrivals, latencies, the plan made at its start."""
        result = result_of(
            arrival=[1, 2, 70],
            first=[1.1, 2.1, 70.1],
            done=[1.2, 2.2, 71],
            osl=[2, 2, 2],
            workers=(span("prefill", 0, 0, 100), span("decode", 0, 0, 100)),
            end_s=100,
        )
        plan = ReplicaPlan(
            prefill=2,
            decode=3,
            demand=Demand.of(num_req=5, isl_tokens=100, osl_tokens=2, interval_s=60),
        )
        rows = interval_table(
            result, interval_s=60, ttft_ms=500, itl_ms=500, plans={1: plan}
        )
        assert [r.num_req for r in rows] == [2, 1]
        assert rows[0].planned_prefill is None
        assert rows[1].planned_decode == 3
        assert rows[1].forecast_num_req == 5
        assert rows[1].end_s == 100
        assert rows[0].gpu_seconds == pytest.approx(120)
        assert rows[1].ttft_ms[0] == pytest.approx(100)
        assert rows[1].attainment == 0.0  # ITL 900 ms > 500 ms
        assert len(rows[0].as_row()) == len(rows[0].FIELDS)


class TestPlannerIntervals:
    """The per-interval yardsticks use the planner's intervals."""

    def test_intervals_start_where_the_planner_decides(self) -> None:
        """With a warm-up inside a planner interval, interval 0 is that one, counted
        from the warm-up; the last ends at the last arrival."""
        assert first_interval_start(600.0, 180.0) == 540.0
        assert first_interval_start(600.0, 60.0) == 600.0
        assert first_interval_start(0.0, 180.0) == 0.0
        arrival = np.array([600.0, 700.0, 720.0, 1000.0])
        index, lengths = planner_intervals(arrival, 600.0, 180.0)
        assert index.tolist() == [0, 0, 1, 2]
        assert lengths.tolist() == pytest.approx([120.0, 180.0, 100.0])
        assert lengths.sum() == pytest.approx(arrival.max() - 600.0)

    def test_one_interval_spans_warmup_to_last_arrival(self) -> None:
        """All arrivals in the warm-up's interval: one interval, warm-up to last."""
        index, lengths = planner_intervals(np.array([610.0, 650.0]), 600.0, 180.0)
        assert index.tolist() == [0, 0]
        assert lengths.tolist() == pytest.approx([50.0])
