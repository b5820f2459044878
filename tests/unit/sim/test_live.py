"""Tests of the live simulator: phased traces, wall-clock advance, publishing, scaling."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from dynamo_planner.sim.engine import SimConfig, Simulation
from dynamo_planner.sim.engine_model import EngineModel
from dynamo_planner.sim.live import LiveSimulation, main, phased_trace, run_live
from dynamo_planner.sources.exporter import FrontendMetricsExporter
from dynamo_planner.traces import RequestTrace

P = "dynamo_frontend"


def uniform_trace(count: int, gap_s: float = 1.0, osl: float = 20.0) -> RequestTrace:
    """``count`` requests, one every ``gap_s`` from 0, ISL 500."""
    return RequestTrace(
        arrival_s=np.arange(count) * gap_s,
        isl_tokens=np.full(count, 500.0),
        osl_tokens=np.full(count, osl),
        source="uniform",
    )


class FakeClock:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def exported(exporter: FrontendMetricsExporter) -> dict[tuple[str, str], float]:
    """Samples by (name, worker_id); traffic series have worker_id ``""``."""
    text = exporter.render().decode()
    return {
        (sample.name, sample.labels.get("worker_id", "")): float(sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith(("_bucket", "_created"))
    }


def live_of(
    trace: RequestTrace,
    model: EngineModel,
    *,
    count_at: str = "arrival",
    speed: float = 1.0,
    **sim: float,
) -> tuple[LiveSimulation, FakeClock]:
    clock = FakeClock()
    live = LiveSimulation(
        sim=Simulation(trace, model, SimConfig(**sim)),  # type: ignore[arg-type]
        exporter=FrontendMetricsExporter(model_name="Llama", namespace="ns"),
        speed=speed,
        count_at=count_at,
        clock=clock,
    )
    return live, clock


class TestPhasedTrace:
    """Consecutive slices of a trace, each compressed by its own rate scale."""

    def test_phases_have_their_rates(self) -> None:
        """At scales (1, 3) with 10 s phases: 10 requests, then 30, each phase 10 s."""
        out = phased_trace(uniform_trace(100), (1, 3), phase_s=10)
        counts, _ = np.histogram(out.arrival_s, bins=[0, 10, 20])
        assert counts.tolist() == [10, 30]
        assert float(out.arrival_s[-1]) < 20
        assert "rate x1,3 per 10s phase" in out.source

    def test_one_scale_compresses_the_rest_of_the_trace(self) -> None:
        """Without a phase length, the trace from ``start_s`` on is compressed."""
        out = phased_trace(uniform_trace(100), (4,), start_s=20)
        assert len(out) == 80
        assert out.arrival_s[1] == pytest.approx(0.25)

    def test_lengths_travel_with_their_requests(self) -> None:
        """Each phase keeps the ISL and OSL of the slice it replays."""
        base = uniform_trace(40)
        trace = RequestTrace(
            arrival_s=base.arrival_s,
            isl_tokens=np.arange(40.0),
            osl_tokens=np.arange(40.0) + 1,
        )
        out = phased_trace(trace, (1, 2), phase_s=5, start_s=10)
        assert out.isl_tokens.tolist() == list(range(10, 25))
        assert (out.osl_tokens - out.isl_tokens == 1).all()

    @pytest.mark.parametrize(
        ("scales", "phase_s", "match"),
        [
            ((), 10.0, "at least one"),
            ((1, 0), 10.0, "finite numbers > 0"),
            ((1, float("nan")), 10.0, "finite numbers > 0"),
            ((1, 2), None, "need a phase length"),
            ((1, 2), -1.0, "phase_s"),
            ((5, 5), 10.0, "ends at 99"),
        ],
    )
    def test_bad_phases_are_refused(
        self, scales: tuple[float, ...], phase_s: float | None, match: str
    ) -> None:
        """Missing, non-positive or too-long phases raise a clear ValueError."""
        with pytest.raises(ValueError, match=match):
            phased_trace(uniform_trace(100), scales, phase_s=phase_s)

    @settings(max_examples=40, deadline=None)
    @given(
        scales=st.lists(st.floats(0.5, 3.0), min_size=1, max_size=4),
        phase_s=st.floats(1.0, 10.0),
    )
    def test_every_request_of_the_replayed_span_appears_once(
        self, scales: list[float], phase_s: float
    ) -> None:
        """The phases replay exactly the trace's requests in the span they consume."""
        base = uniform_trace(400, gap_s=0.37)
        trace = RequestTrace(
            arrival_s=base.arrival_s,
            isl_tokens=np.arange(400.0),  # the request's index
            osl_tokens=base.osl_tokens,
        )
        out = phased_trace(trace, scales, phase_s=phase_s)
        count = len(out)
        assert out.isl_tokens.tolist() == list(range(count))  # in order, each once
        in_span = int(np.count_nonzero(trace.arrival_s < phase_s * sum(scales)))
        assert abs(count - in_span) <= 1  # rounding at the span's end
        assert (np.diff(out.arrival_s) >= 0).all()
        assert float(out.arrival_s[-1]) < phase_s * len(scales)


class TestLiveSimulation:
    """The simulation follows the wall clock and publishes what a frontend would."""

    def test_advance_follows_the_clock_times_speed(self, model: EngineModel) -> None:
        """Two wall seconds at speed 3 are six simulated seconds."""
        live, clock = live_of(uniform_trace(20), model, speed=3.0)
        with pytest.raises(RuntimeError, match="start"):
            live.advance()
        live.start()
        clock.now_s += 2.0
        live.advance()
        assert live.sim.now == pytest.approx(6.0)
        assert live.sim.arrived == 7  # requests at 0, 1, ..., 6

    def test_arrival_mode_counts_arrivals(self, model: EngineModel) -> None:
        """Requests and ISL by arrival, TTFT by first token, OSL by completion."""
        live, clock = live_of(uniform_trace(20, osl=400), model)
        live.start()
        clock.now_s += 5.5
        live.advance()
        got = exported(live.exporter)
        result = live.sim.result()
        assert got[(f"{P}_requests_total", "")] == live.sim.arrived == 6
        assert got[(f"{P}_input_sequence_tokens_sum", "")] == 6 * 500
        first = int(np.isfinite(result.first_token_s).sum())
        assert got[(f"{P}_time_to_first_token_seconds_count", "")] == first
        assert got[(f"{P}_output_sequence_tokens_count", "")] == live.sim.completed
        assert live.sim.completed < live.sim.arrived  # OSL 400 takes a while

    def test_completion_mode_counts_completions(self, model: EngineModel) -> None:
        """Everything is recorded when a request completes, with its own values."""
        live, clock = live_of(uniform_trace(20), model, count_at="completion")
        live.start()
        clock.now_s += 8.5
        recorded = live.advance()
        got = exported(live.exporter)
        result = live.sim.result()
        done = np.isfinite(result.completion_s)
        assert recorded == live.published == live.sim.completed > 0
        assert got[(f"{P}_requests_total", "")] == live.sim.completed
        ttft_s = result.first_token_s[done] - result.arrival_s[done]
        assert got[(f"{P}_time_to_first_token_seconds_sum", "")] == pytest.approx(
            float(ttft_s.sum())
        )
        itl_s = (result.completion_s[done] - result.first_token_s[done]) / 19.0
        assert got[(f"{P}_inter_token_latency_seconds_sum", "")] == pytest.approx(
            float(itl_s.sum())
        )
        assert live.advance() == 0  # nothing recorded twice

    def test_workers_publish_their_gauges(self, model: EngineModel) -> None:
        """Each serving worker has its gauges; scaling adds and removes series."""
        live, clock = live_of(uniform_trace(1), model, cold_start_s=0.0)
        live.start()
        got = exported(live.exporter)
        assert (f"{P}_worker_active_prefill_tokens", "prefill-0") in got
        assert (f"{P}_worker_active_decode_blocks", "decode-0") in got
        clock.now_s += 1.0
        applied = live.apply(3, -1, decision_id=4)
        assert (applied.decision_id, applied.prefill, applied.decode) == (4, 3, None)
        assert applied.sim_s == pytest.approx(1.0)
        counts = live.sim.counts()
        assert (counts.prefill_ready, counts.decode_ready) == (3, 1)
        got = exported(live.exporter)
        prefill = {w for (name, w) in got if name.endswith("active_prefill_tokens")}
        assert prefill == {"prefill-0", "prefill-1", "prefill-2"}
        live.apply(None, 0)
        got = exported(live.exporter)
        assert not [w for (name, w) in got if name.endswith("active_decode_blocks")]
        assert [d.decision_id for d in live.decisions] == [4, -1]

    def test_status_is_plain_json(self, model: EngineModel) -> None:
        """The status line serialises and names the counts."""
        live, _ = live_of(uniform_trace(3), model, initial_prefill=2)
        status = json.loads(json.dumps(live.status()))
        assert status["prefill_ready"] == 2
        assert status["decode_ready"] == 1
        assert status["sim_s"] == 0


class TestRunLive:
    """The run loop advances, records and stops by itself."""

    async def test_stops_after_and_records(self, model: EngineModel) -> None:
        """At speed 50, 3 simulated seconds pass quickly; the record has every event."""
        live = LiveSimulation(
            sim=Simulation(uniform_trace(10, gap_s=0.5), model),
            exporter=FrontendMetricsExporter(model_name="m"),
            speed=50.0,
        )
        record = io.StringIO()
        stop = asyncio.Event()
        await asyncio.wait_for(
            run_live(live, stop, tick_s=0.002, stop_after_s=3.0, record=record),
            timeout=30,
        )
        assert stop.is_set()
        lines = [json.loads(line) for line in record.getvalue().splitlines()]
        events = [line["event"] for line in lines]
        assert events[0] == "start"
        assert events[-1] == "end"
        assert "tick" in events
        assert lines[0]["requests"] == 10
        end_s = lines[-1]["sim_s"]
        assert end_s >= 3.0
        assert lines[-1]["arrived"] == int(
            np.count_nonzero(np.arange(10) * 0.5 <= end_s)
        )


class TestCommandLine:
    """``python -m dynamo_planner.sim.live`` refuses bad arguments clearly."""

    def test_bad_rate_scale(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A rate scale that is not a number ends with a message naming the flag."""
        with pytest.raises(SystemExit, match="--rate-scale"):
            main(["--rate-scale", "fast"])

    def test_bad_count_at(self, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown ``--count-at`` is an argparse error."""
        with pytest.raises(SystemExit):
            main(["--count-at", "never"])
        assert "--count-at" in capsys.readouterr().err
