"""Fidelity and bookkeeping tests of aggregated (agg) workers in the simulator."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo_planner.sim.engine import SimConfig, Simulation
from dynamo_planner.sim.engine_model import EngineModel
from dynamo_planner.traces import RequestTrace
from dynamo_planner.values import PerfProfile


def trace_of(
    arrival_s: Sequence[float], isl: Sequence[float], osl: Sequence[float]
) -> RequestTrace:
    return RequestTrace(
        arrival_s=np.asarray(arrival_s, dtype=float),
        isl_tokens=np.asarray(isl, dtype=float),
        osl_tokens=np.asarray(osl, dtype=float),
        source="test",
    )


def agg(**settings: object) -> SimConfig:
    return SimConfig(mode="agg", **settings)  # type: ignore[arg-type]


class TestConfig:
    """An agg deployment has aggregated workers only."""

    def test_no_prefill_workers_by_default(self) -> None:
        """``mode="agg"`` starts with no prefill worker."""
        assert agg().initial_prefill == 0
        assert SimConfig().initial_prefill == 1

    def test_prefill_workers_rejected(self) -> None:
        """Asking an agg deployment for prefill workers is an error."""
        with pytest.raises(ValueError, match="initial_prefill must be 0"):
            agg(initial_prefill=1)

    def test_scaling_prefill_rejected(self, model: EngineModel) -> None:
        """scale_to with prefill workers fails on an agg deployment; 0 or None is fine."""
        sim = Simulation(trace_of([0.0], [100], [10]), model, agg())
        sim.scale_to(0, 2)
        sim.scale_to(None, 2)
        with pytest.raises(ValueError, match="no prefill workers"):
            sim.scale_to(1, 2)

    def test_counted_as_decode_workers(self, model: EngineModel) -> None:
        """Agg workers count as decode workers, with the decode GPUs per engine."""
        sim = Simulation(
            trace_of([0.0], [100], [10]),
            model,
            agg(initial_decode=2, decode_gpus_per_engine=4, prefill_gpus_per_engine=2),
        )
        counts = sim.counts()
        assert (counts.prefill_ready, counts.decode_ready) == (0, 2)
        assert sim.gpus_in_use() == 8
        sim.run_to_completion()
        spans = sim.result(end_s=10.0).workers
        assert [(w.worker_id, w.component, w.gpus) for w in spans] == [
            ("agg-0", "decode", 4),
            ("agg-1", "decode", 4),
        ]


class TestSingleRequest:
    """One request alone on an idle agg worker sees exactly the profile."""

    def test_prefill_time_then_profiled_itl(
        self, profile: PerfProfile, model: EngineModel
    ) -> None:
        """TTFT is the profiled prefill time, then the profiled ITL at concurrency 1."""
        osl = 500.0
        ctx = float(profile.decode.context_length_tokens[0])
        isl = ctx - osl / 2
        assert profile.decode.concurrency[0] == pytest.approx(1.0)
        sim = Simulation(trace_of([3.0], [isl], [osl]), model, agg())
        sim.run_to_completion()
        result = sim.result()
        assert result.ttft_ms[0] == pytest.approx(model.prefill_ms(isl), rel=1e-12)
        assert result.itl_ms[0] == pytest.approx(
            float(profile.decode.itl_ms[0]), rel=1e-9
        )
        assert result.prefill_start_s[0] == 3.0
        assert result.prefill_end_s[0] == result.first_token_s[0]

    def test_at_a_profiled_isl(self, profile: PerfProfile, model: EngineModel) -> None:
        """At a profiled ISL the TTFT is the measured one."""
        isl = float(profile.prefill.isl_tokens[3])
        sim = Simulation(trace_of([0.0], [isl], [20]), model, agg())
        sim.run_to_completion()
        assert sim.result().ttft_ms[0] == pytest.approx(
            float(profile.prefill.ttft_ms[3]), rel=1e-12
        )

    def test_long_prompt_is_chunked(self, model: EngineModel) -> None:
        """A prompt over the step budget takes one step per chunk, back to back."""
        sim = Simulation(
            trace_of([0.0], [2500], [10]), model, agg(max_num_batched_tokens=1000)
        )
        sim.run_to_completion()
        expected = 2 * model.prefill_ms(1000) + model.prefill_ms(500)
        assert sim.result().ttft_ms[0] == pytest.approx(expected, rel=1e-12)

    def test_one_output_token(self, model: EngineModel) -> None:
        """A request with one output token completes at its first token."""
        sim = Simulation(trace_of([0.0], [300], [1]), model, agg())
        sim.run_to_completion()
        result = sim.result()
        assert result.completion_s[0] == result.first_token_s[0]
        assert math.isnan(result.itl_ms[0])


class TestMixedSteps:
    """Prefill chunks and decodes share steps, back to back."""

    def test_arrival_during_decode_pays_a_mixed_step(self, model: EngineModel) -> None:
        """A prompt arriving while another request decodes takes decode + prefill time."""
        sim = Simulation(trace_of([0.0, 5.0], [1000, 2000], [2000, 10]), model, agg())
        sim.run_to_completion()
        result = sim.result()
        step_ms = model.agg_step_ms(1, 1000 + 2000 / 2, 2000)
        assert result.ttft_ms[1] == pytest.approx(step_ms, rel=1e-9)
        assert step_ms == pytest.approx(
            model.decode_step_ms(1, 2000) + model.prefill_ms(2000), rel=1e-12
        )
        # the first request's decode was slowed by that step
        alone_ms = model.decode_step_ms(1, 2000)
        assert result.itl_ms[0] > alone_ms

    def test_decodes_take_budget(self, model: EngineModel) -> None:
        """Running decodes take one token each of the step budget."""
        sim = Simulation(
            trace_of([0.0, 0.0, 1.0], [100, 100, 1000], [5000, 5000, 10]),
            model,
            agg(max_num_batched_tokens=600),
        )
        sim.run_to_completion()
        result = sim.result()
        # request 2 arrives while 0 and 1 decode: chunks of 598 and 402 tokens
        assert result.prefill_end_s[2] > result.prefill_start_s[2]
        both_ms = model.agg_step_ms(2, 2600, 598) + model.agg_step_ms(2, 2600, 402)
        assert result.ttft_ms[2] == pytest.approx(both_ms, rel=1e-9)


class TestRoutingAndAdmission:
    """Requests go to the least-loaded worker and wait for KV room."""

    def test_least_loaded(self, model: EngineModel) -> None:
        """A second request goes to the idle worker and sees no queueing."""
        sim = Simulation(
            trace_of([0.0, 0.001], [8000, 8000], [10, 10]),
            model,
            agg(initial_decode=2),
        )
        sim.run_to_completion()
        result = sim.result()
        assert result.ttft_ms[1] == pytest.approx(model.prefill_ms(8000), rel=1e-9)

    def test_batch_limit(self, model: EngineModel) -> None:
        """With max_decode_batch 1 the second request waits for the first to finish."""
        sim = Simulation(
            trace_of([0.0, 0.0], [100, 100], [50, 50]),
            model,
            agg(max_decode_batch=1),
        )
        sim.run_to_completion()
        result = sim.result()
        assert result.prefill_start_s[1] == pytest.approx(result.completion_s[0])

    def test_worker_loads_have_all_five_gauges(self, model: EngineModel) -> None:
        """An agg worker reports as ``decode`` with prefill and decode gauges."""
        sim = Simulation(
            trace_of([0.0, 0.0, 0.01], [3000, 3000, 5000], [400, 400, 400]),
            model,
            agg(),
        )
        sim.run_until(0.005)
        (load,) = sim.worker_loads()
        assert load.worker_type == "decode"
        assert load.worker_id == "agg-0"
        # both prompts wait; the first is admitted (its step started at its arrival)
        # and holds its KV reservation
        assert load.active_prefill_tokens == pytest.approx(6000)
        assert load.active_decode_blocks == math.ceil(3400 / 16)
        sim.run_until(1.0)
        (load,) = sim.worker_loads()
        assert load.active_prefill_tokens == 0
        assert load.last_ttft_ms is not None
        assert load.last_ttft_ms > 0
        assert load.last_isl_tokens == 5000
        sim.run_to_completion()
        (load,) = sim.worker_loads()
        assert load.last_itl_ms is not None
        assert load.last_itl_ms > 0
        assert load.active_decode_blocks == 0


requests_strategy = st.lists(
    st.tuples(
        st.floats(0, 60, allow_nan=False),
        st.integers(1, 20000),
        st.integers(1, 600),
    ),
    min_size=1,
    max_size=60,
)
actions_strategy = st.lists(
    st.tuples(st.floats(0, 80, allow_nan=False), st.integers(0, 4)),
    max_size=8,
)


def _gpu_integral(sim: Simulation, actions: Sequence[tuple[float, int]]) -> float:
    """Integrate GPUs in use over time by stepping event to event."""
    total = 0.0
    pending = sorted(actions)
    while True:
        nxt = sim.next_event_s()
        if pending and pending[0][0] <= nxt:
            t, d = pending.pop(0)
            total += sim.gpus_in_use() * (t - sim.now)
            sim.run_until(t)
            sim.scale_to(None, d)
            continue
        if not math.isfinite(nxt):
            return total
        total += sim.gpus_in_use() * (nxt - sim.now)
        sim.run_until(nxt)


class TestProperties:
    """Invariants over random traces and scaling schedules."""

    @settings(max_examples=60, deadline=None)
    @given(
        requests=requests_strategy,
        actions=actions_strategy,
        cold_start_s=st.sampled_from([0.0, 5.0, 30.0]),
        budget=st.sampled_from([512, 8192]),
        max_batch=st.sampled_from([None, 2]),
    )
    def test_every_request_completes_exactly_once(
        self,
        model: EngineModel,
        requests: list[tuple[float, int, int]],
        actions: list[tuple[float, int]],
        cold_start_s: float,
        budget: int,
        max_batch: int | None,
    ) -> None:
        """Across scale-ups and drains every request completes once, none is lost."""
        requests.sort()
        arrival, isl, osl = zip(*requests, strict=True)
        sim = Simulation(
            trace_of(arrival, isl, osl),
            model,
            agg(
                cold_start_s=cold_start_s,
                max_num_batched_tokens=budget,
                max_decode_batch=max_batch,
            ),
        )
        gpu_integral = _gpu_integral(sim, [*actions, (90.0, 1)])
        r = sim.result()
        assert sim.done
        assert sim.completed == len(requests)
        assert len(sim._dn_t) == len(requests)  # one completion record per request
        assert len(sim._ft_t) == len(requests)  # one first token per request
        assert np.all(np.isfinite(r.completion_s))
        assert np.all(r.prefill_start_s >= r.arrival_s)
        assert np.all(r.first_token_s == r.prefill_end_s)
        assert np.all(r.completion_s >= r.first_token_s)
        # a prompt computed in one step (at most 60 decodes take budget) takes at
        # least its own prefill time
        floor_ms = np.array([model.prefill_ms(x) for x in r.isl_tokens])
        one_step = r.isl_tokens <= budget - 60
        assert np.all((r.ttft_ms >= floor_ms - 1e-6) | ~one_step)
        assert r.gpu_seconds == pytest.approx(gpu_integral, rel=1e-9, abs=1e-6)
        assert all(w.released_s <= sim.now + 1e-9 for w in r.workers)
        counts = sim.counts()
        assert counts.prefill_ready == counts.prefill_starting == 0
        assert counts.decode_draining == 0

    @settings(max_examples=20, deadline=None)
    @given(requests=requests_strategy)
    def test_deterministic(
        self, model: EngineModel, requests: list[tuple[float, int, int]]
    ) -> None:
        """The same trace and schedule give the same times."""
        requests.sort()
        arrival, isl, osl = zip(*requests, strict=True)

        def run() -> np.ndarray:
            sim = Simulation(trace_of(arrival, isl, osl), model, agg())
            sim.run_until(10.0)
            sim.scale_to(None, 3)
            sim.run_to_completion()
            return sim.result().completion_s

        np.testing.assert_array_equal(run(), run())
