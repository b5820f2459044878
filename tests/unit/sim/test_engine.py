"""Fidelity and bookkeeping tests of the request-level simulator."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo_planner.scalers.feedback import count_within
from dynamo_planner.sim.engine import SimConfig, Simulation
from dynamo_planner.sim.engine_model import EngineModel
from dynamo_planner.traces import RequestTrace
from dynamo_planner.values import PerfProfile, Status


def trace_of(
    arrival_s: Sequence[float], isl: Sequence[float], osl: Sequence[float]
) -> RequestTrace:
    return RequestTrace(
        arrival_s=np.asarray(arrival_s, dtype=float),
        isl_tokens=np.asarray(isl, dtype=float),
        osl_tokens=np.asarray(osl, dtype=float),
        source="test",
    )


class TestSingleRequest:
    """One request on an idle deployment sees exactly the profile."""

    @pytest.mark.parametrize("transfer_ms", [0.0, 7.5])
    def test_ttft_is_profiled_prefill_plus_transfer(
        self, profile: PerfProfile, model: EngineModel, transfer_ms: float
    ) -> None:
        """TTFT equals the profiled TTFT at a measured ISL plus the KV-transfer delay."""
        isl = float(profile.prefill.isl_tokens[3])
        sim = Simulation(
            trace_of([5.0], [isl], [200]), model, SimConfig(kv_transfer_ms=transfer_ms)
        )
        sim.run_to_completion()
        result = sim.result()
        expected = float(profile.prefill.ttft_ms[3]) + transfer_ms
        assert result.ttft_ms[0] == pytest.approx(expected, rel=1e-12)

    def test_ttft_between_profile_points_is_linear(
        self, profile: PerfProfile, model: EngineModel
    ) -> None:
        """Between two profiled ISLs the TTFT is the straight line between them."""
        isl = 2500.0
        sim = Simulation(trace_of([0.0], [isl], [10]), model)
        sim.run_to_completion()
        expected = float(
            np.interp(isl, profile.prefill.isl_tokens, profile.prefill.ttft_ms)
        )
        assert sim.result().ttft_ms[0] == pytest.approx(expected, rel=1e-12)

    def test_itl_is_profiled_single_request_itl(
        self, profile: PerfProfile, model: EngineModel
    ) -> None:
        """A lone request whose context is a profiled one gets that context's ITL at 1."""
        osl = 500.0
        ctx = float(profile.decode.context_length_tokens[0])
        isl = ctx - osl / 2
        sim = Simulation(trace_of([0.0], [isl], [osl]), model)
        sim.run_to_completion()
        result = sim.result()
        assert result.itl_ms[0] == pytest.approx(
            float(profile.decode.itl_ms[0]), rel=1e-9
        )
        decode_s = result.completion_s[0] - result.first_token_s[0]
        assert decode_s == pytest.approx(
            (osl - 1) * float(profile.decode.itl_ms[0]) / 1000, rel=1e-9
        )

    def test_one_output_token_completes_at_first_token(
        self, model: EngineModel
    ) -> None:
        """A request with one output token completes when its first token arrives."""
        sim = Simulation(trace_of([0.0], [1000], [1]), model)
        sim.run_to_completion()
        result = sim.result()
        assert result.completion_s[0] == result.first_token_s[0]
        assert math.isnan(result.itl_ms[0])


class TestFixedLoad:
    """At a fixed concurrency and context the simulated ITL equals the profile's."""

    def test_every_profile_point(
        self, profile: PerfProfile, model: EngineModel
    ) -> None:
        """n identical requests decoding together get the ITL measured at (n, context)."""
        osl = 500.0
        for k, (ctx, itl, n) in enumerate(
            zip(
                profile.decode.context_length_tokens,
                profile.decode.itl_ms,
                profile.decode.concurrency,
                strict=True,
            )
        ):
            count = int(n)
            isl = float(ctx) - osl / 2
            sim = Simulation(
                trace_of([0.0] * count, [isl] * count, [osl] * count),
                model,
                SimConfig(
                    max_num_batched_tokens=int(isl * count) + 1,
                    initial_prefill=0,
                    cold_start_s=0.0,
                ),
            )
            sim.run_until(0.0)  # all arrive and wait for a prefill worker
            sim.scale_to(1, None)  # which then prefills them in one batch
            sim.run_to_completion()
            result = sim.result()
            assert np.all(result.first_token_s == result.first_token_s[0]), k
            np.testing.assert_allclose(result.itl_ms, float(itl), rtol=1e-9)

    def test_model_is_exact_at_profile_points(
        self, profile: PerfProfile, model: EngineModel
    ) -> None:
        """The decode step model returns the measured ITL at every measured point."""
        for ctx, itl, n in zip(
            profile.decode.context_length_tokens,
            profile.decode.itl_ms,
            profile.decode.concurrency,
            strict=True,
        ):
            assert model.decode_step_ms(float(n), float(ctx)) == pytest.approx(
                float(itl), rel=1e-12
            )
            assert model.decode_step_ms_whole(int(n), float(ctx)) == pytest.approx(
                float(itl), rel=1e-12
            )

    def test_prefill_model_is_exact_at_profile_points(
        self, profile: PerfProfile, model: EngineModel
    ) -> None:
        """The prefill model returns the measured TTFT at every measured ISL."""
        for isl, ttft in zip(
            profile.prefill.isl_tokens, profile.prefill.ttft_ms, strict=True
        ):
            assert model.prefill_ms(float(isl)) == pytest.approx(float(ttft), rel=1e-12)


class TestPrefillBatching:
    """Prefill batches respect the token budget."""

    def test_requests_fitting_the_budget_share_a_batch(
        self, model: EngineModel
    ) -> None:
        """Queued requests whose total fits the budget run in one batch timed by the total."""
        sim = Simulation(
            trace_of([0.0, 0.0, 0.0, 0.0], [8000, 3000, 3000, 3000], [2, 2, 2, 2]),
            model,
            SimConfig(max_num_batched_tokens=8192),
        )
        sim.run_to_completion()
        r = sim.result()
        first = model.prefill_ms(8000) / 1000
        second = first + model.prefill_ms(6000) / 1000
        third = second + model.prefill_ms(3000) / 1000
        np.testing.assert_allclose(r.prefill_end_s, [first, second, second, third])

    def test_request_longer_than_budget_runs_alone(self, model: EngineModel) -> None:
        """A request above the budget is served alone at its own profiled time."""
        sim = Simulation(
            trace_of([0.0, 0.0], [20000, 100], [2, 2]),
            model,
            SimConfig(max_num_batched_tokens=8192),
        )
        sim.run_to_completion()
        r = sim.result()
        assert r.prefill_end_s[0] == pytest.approx(model.prefill_ms(20000) / 1000)
        assert r.prefill_start_s[1] == r.prefill_end_s[0]

    def test_least_loaded_routing(self, model: EngineModel) -> None:
        """Arrivals go to the prefill worker with the fewest outstanding tokens."""
        sim = Simulation(
            trace_of([0.0, 0.0, 0.0], [10000, 2000, 2000], [2, 2, 2]),
            model,
            SimConfig(initial_prefill=2),
        )
        sim.run_to_completion()
        r = sim.result()
        # request 0 busies worker 0 and request 1 worker 1; request 2 queues behind
        # request 1 (2000 outstanding tokens, not 10000)
        assert r.prefill_start_s[1] == 0.0
        assert r.prefill_start_s[2] == pytest.approx(model.prefill_ms(2000) / 1000)


class TestDecodeAdmission:
    """Decode workers admit while their KV cache has room."""

    def test_requests_wait_for_kv_room(self, model: EngineModel) -> None:
        """A request that does not fit waits until a running one completes."""
        big = model.max_kv_tokens * 0.6
        sim = Simulation(
            trace_of([0.0, 0.0], [big, big], [20, 20]),
            model,
            SimConfig(initial_prefill=2),
        )
        sim.run_to_completion()
        r = sim.result()
        assert r.prefill_end_s[1] == r.prefill_end_s[0]
        assert r.first_token_s[1] == pytest.approx(r.completion_s[0])

    def test_max_decode_batch(self, model: EngineModel) -> None:
        """With a batch cap, requests beyond it wait for a slot."""
        sim = Simulation(
            trace_of([0.0] * 3, [100] * 3, [50] * 3),
            model,
            SimConfig(max_decode_batch=2, max_num_batched_tokens=10**6),
        )
        sim.run_to_completion()
        r = sim.result()
        assert r.first_token_s[2] == pytest.approx(r.completion_s[0])


class TestScaling:
    """Cold start, cancellation and drain."""

    def test_cold_start_delays_serving(self, model: EngineModel) -> None:
        """A worker asked for at t serves from t + cold start; requests wait for it."""
        sim = Simulation(
            trace_of([1.0], [100], [2]),
            model,
            SimConfig(initial_prefill=0, initial_decode=1, cold_start_s=30.0),
        )
        sim.run_until(0.5)
        sim.scale_to(1, None)
        sim.run_to_completion()
        r = sim.result()
        assert r.prefill_start_s[0] == pytest.approx(30.5)
        spans = [w for w in r.workers if w.component == "prefill"]
        assert spans[0].requested_s == 0.5
        assert spans[0].ready_s == 30.5

    def test_gpu_seconds_by_hand(self, model: EngineModel) -> None:
        """Starting, serving and cancelled workers are counted from request to release."""
        sim = Simulation(
            trace_of([100.0], [100], [2]),
            model,
            SimConfig(
                cold_start_s=30.0,
                prefill_gpus_per_engine=2,
                decode_gpus_per_engine=4,
            ),
        )
        sim.run_until(10.0)
        sim.scale_to(3, 2)  # +2 prefill, +1 decode, requested at 10
        sim.run_until(20.0)
        sim.scale_to(1, 1)  # cancels the starting ones at 20
        sim.run_until(200.0)
        r = sim.result()
        expected = 200 * 2 + 2 * 10 * 2 + 200 * 4 + 10 * 4
        assert r.gpu_seconds == pytest.approx(expected)
        assert sim.done

    def test_drain_finishes_requests_before_release(self, model: EngineModel) -> None:
        """A drained decode worker keeps its requests and is released when empty."""
        sim = Simulation(
            trace_of([0.0, 0.0], [1000, 1000], [400, 400]),
            model,
            SimConfig(initial_decode=2, max_num_batched_tokens=10**6),
        )
        sim.run_until(0.5)
        sim.scale_to(None, 1)
        sim.run_to_completion()
        r = sim.result()
        assert np.all(np.isfinite(r.completion_s))
        decode = sorted(
            (w for w in r.workers if w.component == "decode"),
            key=lambda w: w.released_s,
        )
        assert decode[0].released_s == pytest.approx(float(r.completion_s.max()))

    def test_scale_down_prefers_least_loaded(self, model: EngineModel) -> None:
        """The idle prefill worker is released at once; the busy one keeps serving."""
        sim = Simulation(
            trace_of([0.0], [16000], [2]), model, SimConfig(initial_prefill=2)
        )
        sim.run_until(0.01)
        sim.scale_to(1, None)
        counts = sim.counts()
        assert counts.prefill_ready == 1
        assert counts.prefill_draining == 0
        spans = [w for w in sim.result().workers if w.component == "prefill"]
        assert spans[1].released_s == pytest.approx(0.01)


def _gpu_integral(sim: Simulation, actions: Sequence[tuple[float, int, int]]) -> float:
    """Integrate GPUs in use over time by stepping event to event."""
    total = 0.0
    pending = sorted(actions)
    while True:
        nxt = sim.next_event_s()
        if pending and pending[0][0] <= nxt:
            t, p, d = pending.pop(0)
            total += sim.gpus_in_use() * (t - sim.now)
            sim.run_until(t)
            sim.scale_to(p, d)
            continue
        if not math.isfinite(nxt):
            return total
        total += sim.gpus_in_use() * (nxt - sim.now)
        sim.run_until(nxt)


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
    st.tuples(st.floats(0, 80, allow_nan=False), st.integers(0, 4), st.integers(0, 4)),
    max_size=8,
)


class TestProperties:
    """Invariants over random traces and scaling schedules."""

    @settings(max_examples=60)
    @given(
        requests=requests_strategy,
        actions=actions_strategy,
        cold_start_s=st.sampled_from([0.0, 5.0, 30.0]),
        transfer_ms=st.sampled_from([0.0, 3.0]),
    )
    def test_every_request_completes_exactly_once(
        self,
        model: EngineModel,
        requests: list[tuple[float, int, int]],
        actions: list[tuple[float, int, int]],
        cold_start_s: float,
        transfer_ms: float,
    ) -> None:
        """Across scale-ups and scale-downs every request completes once, none is lost."""
        requests.sort()
        arrival, isl, osl = zip(*requests, strict=True)
        sim = Simulation(
            trace_of(arrival, isl, osl),
            model,
            SimConfig(cold_start_s=cold_start_s, kv_transfer_ms=transfer_ms),
        )
        # always end with at least one worker of each kind so the trace can finish
        schedule = [*actions, (90.0, 1, 1)]
        gpu_integral = _gpu_integral(sim, schedule)
        r = sim.result()
        assert sim.done
        assert sim.completed == len(requests)
        assert len(sim._dn_t) == len(requests)  # one completion record per request
        assert np.all(np.isfinite(r.completion_s))
        assert np.all(r.first_token_s >= r.prefill_end_s + transfer_ms / 1000 - 1e-9)
        assert np.all(r.completion_s >= r.first_token_s)
        # TTFT is at least the request's own prefill time and the transfer
        floor_ms = np.array([model.prefill_ms(x) for x in r.isl_tokens])
        assert np.all(r.ttft_ms >= floor_ms + transfer_ms - 1e-6)
        # GPU-seconds are the lifetimes of all workers, counted independently
        assert r.gpu_seconds == pytest.approx(gpu_integral, rel=1e-9, abs=1e-6)

    @settings(max_examples=20)
    @given(requests=requests_strategy)
    def test_deterministic(
        self, model: EngineModel, requests: list[tuple[float, int, int]]
    ) -> None:
        """The same trace and schedule give the same times."""
        requests.sort()
        arrival, isl, osl = zip(*requests, strict=True)

        def run() -> np.ndarray:
            sim = Simulation(trace_of(arrival, isl, osl), model, SimConfig())
            sim.run_until(10.0)
            sim.scale_to(2, 3)
            sim.run_to_completion()
            return sim.result().completion_s

        np.testing.assert_array_equal(run(), run())


class TestObservation:
    """The frontend's per-interval view."""

    def test_interval_metrics(self, model: EngineModel) -> None:
        """Counts and means cover the window; an empty window reports zero requests."""
        sim = Simulation(
            trace_of([1.0, 2.0, 3.0], [100, 200, 300], [10, 20, 30]),
            model,
            SimConfig(),
        )
        sim.run_until(60.0)
        obs = sim.observe(60.0)
        assert obs.num_req.value == 3
        assert obs.isl_tokens.value == pytest.approx(200)
        assert obs.osl_tokens.value == pytest.approx(20)
        assert obs.isl_samples_tokens == (100.0, 200.0, 300.0)
        assert obs.ttft_ms.status is Status.OK
        assert obs.itl_ms.status is Status.OK
        assert {w.worker_type for w in obs.workers} == {"prefill", "decode"}
        sim.run_until(120.0)
        empty = sim.observe(60.0)
        assert empty.num_req.status is Status.ZERO
        assert not empty.ttft_ms.known
        assert not empty.itl_ms.known
        assert empty.traffic_known

    def test_latency_samples(self, model: EngineModel) -> None:
        """Per-request TTFTs and ITLs are those of the result, and average to the means;
        a one-token request has no ITL sample."""
        sim = Simulation(
            trace_of([1.0, 2.0, 3.0], [100, 200, 300], [10, 1, 30]),
            model,
            SimConfig(),
        )
        sim.run_until(60.0)
        obs = sim.observe(60.0)
        result = sim.result()
        assert sorted(obs.ttft_samples_ms) == pytest.approx(sorted(result.ttft_ms))
        itl = result.itl_ms[~np.isnan(result.itl_ms)]
        assert len(obs.itl_samples_ms) == 2
        assert sorted(obs.itl_samples_ms) == pytest.approx(sorted(itl))
        assert obs.ttft_ms.value == pytest.approx(np.mean(obs.ttft_samples_ms))
        assert obs.itl_ms.value == pytest.approx(np.mean(obs.itl_samples_ms))
        sim.run_until(120.0)
        empty = sim.observe(60.0)
        assert empty.ttft_samples_ms == ()
        assert empty.itl_samples_ms == ()

    def test_histograms_as_a_frontend_reports_them(self, model: EngineModel) -> None:
        """With ``frontend_metrics="histograms"`` the window carries bucket counts
        instead of samples: every arrival's ISL, every completion's OSL, every first
        token's TTFT and every token's ITL after the first, with the exporter's
        bounds; the per-second dispersion is unknown, as live."""
        arrival, isl, osl = (
            [1.0, 2.0, 3.0, 4.0],
            [100, 200, 3000, 70000],
            [10, 1, 30, 5],
        )
        frontend = Simulation(
            trace_of(arrival, isl, osl), model, SimConfig(frontend_metrics="histograms")
        )
        full = Simulation(trace_of(arrival, isl, osl), model, SimConfig())
        for sim in (frontend, full):
            sim.run_until(60.0)
        obs, seen = frontend.observe(60.0), full.observe(60.0)
        assert obs.isl_samples_tokens == obs.osl_samples_tokens == ()
        assert obs.ttft_samples_ms == obs.itl_samples_ms == ()
        assert not obs.arrival_dispersion.known
        assert obs.num_req.value == 4
        assert obs.isl_tokens.value == seen.isl_tokens.value
        assert obs.ttft_ms.value == seen.ttft_ms.value
        isl_buckets = dict(obs.isl_histogram_tokens)
        assert isl_buckets[128.0] == 1  # 100
        assert isl_buckets[256.0] == 2  # and 200
        assert isl_buckets[4096.0] == 3  # and 3,000
        assert isl_buckets[math.inf] == 4  # and 70,000
        assert dict(obs.osl_histogram_tokens)[math.inf] == 4
        assert obs.ttft_histogram_ms[-1] == (math.inf, 4.0)
        # 9 + 0 + 29 + 4 tokens after the first, each at its request's mean ITL
        assert obs.itl_histogram_ms[-1] == (math.inf, 42.0)
        # and the mean ITL is per token, as a frontend's sum over its count
        longer = [o for o in seen.osl_samples_tokens if o > 1]  # one token has no ITL
        itl = dict(zip(longer, seen.itl_samples_ms, strict=True))
        assert obs.itl_ms.value == pytest.approx(
            (9 * itl[10] + 29 * itl[30] + 4 * itl[5]) / 42
        )
        assert obs.itl_ms.value != pytest.approx(seen.itl_ms.value)
        ttft_within = count_within(obs.ttft_histogram_ms, 500.0)[1]
        assert ttft_within == sum(t <= 500.0 for t in seen.ttft_samples_ms)

    def test_arrival_dispersion(self, model: EngineModel) -> None:
        """Per-second counts: by hand for a small window, near 1 for Poisson
        arrivals, large for bunched ones, unknown for windows under 10 s."""
        # 10 one-second bins with counts 2,0,0,0,0,0,0,0,0,0: mean 0.2, variance 0.36
        sim = Simulation(trace_of([0.1, 0.2], [100, 100], [2, 2]), model, SimConfig())
        sim.run_until(10.0)
        assert sim.observe(10.0).arrival_dispersion.value == pytest.approx(1.8)
        assert not sim.observe(9.0).arrival_dispersion.known

        rng = np.random.default_rng(0)
        poisson = np.cumsum(rng.exponential(0.2, size=3000))
        poisson = poisson[poisson < 600.0]
        bunched = np.repeat(np.arange(0.0, 600.0, 20.0), 50)
        seen = []
        for arrivals in (poisson, bunched):
            sim = Simulation(
                trace_of(arrivals, [100] * arrivals.size, [2] * arrivals.size),
                model,
                SimConfig(initial_prefill=4, initial_decode=2),
            )
            sim.run_until(600.0)
            seen.append(sim.observe(600.0).arrival_dispersion.value)
        assert seen[0] == pytest.approx(1.0, abs=0.15)
        assert seen[1] > 20.0

    def test_scraped_dispersion_in_histograms(self, model: EngineModel) -> None:
        """With a scrape interval the histogram view carries the dispersion the
        Prometheus source reads from the scraped counter: near 1 for Poisson arrivals,
        large for bunched ones, 0 for evenly spaced ones, unknown with too few scrapes
        or scrapes too far apart."""
        rng = np.random.default_rng(1)
        poisson = np.cumsum(rng.exponential(0.2, size=4000))

        def scraped(arrivals: np.ndarray, scrape_s: float) -> Simulation:
            sim = Simulation(
                trace_of(arrivals, [100] * arrivals.size, [2] * arrivals.size),
                model,
                SimConfig(
                    initial_prefill=4,
                    initial_decode=2,
                    frontend_metrics="histograms",
                    frontend_scrape_s=scrape_s,
                ),
            )
            sim.run_until(600.0)
            return sim

        cases = {
            "poisson": poisson[poisson < 600.0],
            "bunched": np.repeat(np.arange(0.0, 600.0, 20.0), 50),
            "even": np.arange(0.05, 600.0, 0.5),
        }
        seen = {
            name: scraped(arrivals, 2.0).observe(600.0).arrival_dispersion
            for name, arrivals in cases.items()
        }
        assert seen["poisson"].value == pytest.approx(1.0, abs=0.2)
        assert seen["bunched"].value > 20.0
        assert seen["even"].value == pytest.approx(0.0, abs=1e-9)
        # 18 s hold nine scrapes in (582, 600], eight rises: too few
        assert not scraped(cases["even"], 2.0).observe(18.0).arrival_dispersion.known
        # scrapes 5 s apart: too coarse
        assert (
            not scraped(cases["poisson"], 5.0).observe(600.0).arrival_dispersion.known
        )

    def test_metric_delay(self, model: EngineModel) -> None:
        """With a metric delay the window ends that much before now."""
        sim = Simulation(
            trace_of([50.0], [100], [10]), model, SimConfig(metric_delay_s=15.0)
        )
        sim.run_until(60.0)
        assert sim.observe(60.0).num_req.value == 0
        sim.run_until(70.0)
        assert sim.observe(60.0).num_req.value == 1


class TestWorkerLoadDelay:
    """Per-worker loads come from a scrape ``metric_delay_s`` old."""

    def test_no_delay_reports_now(self, model: EngineModel) -> None:
        """Without a delay the loads are the current ones."""
        sim = Simulation(trace_of([10.0], [100], [5000]), model, SimConfig())
        sim.run_until(11.0)
        decode = [w for w in sim.worker_loads() if w.worker_type == "decode"]
        assert decode[0].active_decode_blocks == math.ceil(5100 / 16)

    def test_loads_lag_by_the_delay(self, model: EngineModel) -> None:
        """A request decoding from t=10 shows in the loads only ``delay`` later."""
        sim = Simulation(
            trace_of([10.0], [100], [5000]), model, SimConfig(metric_delay_s=15.0)
        )

        def decode_blocks() -> float | None:
            (load,) = [w for w in sim.worker_loads() if w.worker_type == "decode"]
            return load.active_decode_blocks

        sim.run_until(11.0)
        assert decode_blocks() == 0
        sim.run_until(24.5)
        assert decode_blocks() == 0
        sim.run_until(25.5)
        assert decode_blocks() == math.ceil(5100 / 16)
        # the frontend's observation carries the same delayed loads
        assert sim.observe(5.0).workers == sim.worker_loads()

    def test_new_worker_listed_after_the_delay(self, model: EngineModel) -> None:
        """A worker ready at t=20 is listed from t=20+delay on (scrapes every 0.5 s)."""
        sim = Simulation(
            trace_of([100.0], [100], [10]),
            model,
            SimConfig(metric_delay_s=4.0, cold_start_s=20.0),
        )
        sim.run_until(0.0)
        sim.scale_to(2, None)

        def prefill_workers() -> int:
            return sum(1 for w in sim.worker_loads() if w.worker_type == "prefill")

        sim.run_until(23.9)
        assert prefill_workers() == 1
        sim.run_until(24.0)
        assert prefill_workers() == 2

    def test_loads_at_past_scrapes(self, model: EngineModel) -> None:
        """worker_loads_at reads the kept scrapes; the earliest one before them."""
        sim = Simulation(trace_of([10.0], [100], [5000]), model, SimConfig())
        sim.keep_load_history(30.0)
        sim.run_until(20.0)

        def blocks_at(t: float) -> float | None:
            loads = [w for w in sim.worker_loads_at(t) if w.worker_type == "decode"]
            return loads[0].active_decode_blocks

        assert blocks_at(9.5) == 0
        assert blocks_at(-5.0) == 0
        assert blocks_at(10.5) == math.ceil(5100 / 16)
        assert blocks_at(20.0) == math.ceil(5100 / 16)
