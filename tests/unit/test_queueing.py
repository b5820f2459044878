"""Queueing models: Erlang C, Allen-Cunneen waits, batching, and replica search."""

from __future__ import annotations

import heapq
import math
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynamo_planner.exceptions import InfeasibleSLAError
from dynamo_planner.interpolators.fitted import FittedInterpolator, PrefillFit
from dynamo_planner.profiles import load_profile
from dynamo_planner.scalers.queueing import (
    MGcQueue,
    PrefillMix,
    erlang_c,
    estimate_prefill,
    exponential_mix,
    servers_for_attainment,
    servers_for_target,
    servers_for_wait_probability,
)


@pytest.fixture(name="prefill", scope="module")
def _prefill() -> PrefillFit:
    from dynamo_planner.data import H200_PROFILE_DIR

    return FittedInterpolator.from_profile(load_profile(H200_PROFILE_DIR)).prefill


def exponential_prefill_mix(prefill: PrefillFit, mean_isl: float) -> PrefillMix:
    """The fitted prefill model over an exponential ISL mix, batched up to 8192 tokens."""
    isl = exponential_mix(mean_isl)
    return PrefillMix(
        work_s=prefill.work_ms_array(isl) / 1000.0,
        overhead_s=prefill.overhead_ms / 1000.0,
        isl_tokens=isl,
        max_num_batched_tokens=8192,
    )


def simulate_fifo(
    arrivals: np.ndarray,
    isl: np.ndarray,
    work_s: np.ndarray,
    *,
    servers: int,
    overhead_s: float,
    budget_tokens: int,
) -> tuple[np.ndarray, np.ndarray]:
    """A discrete-event M/G/c FIFO queue whose free servers batch what is waiting.

    Returns each request's wait (to the start of its batch) and its TTFT.
    """
    n = arrivals.size
    wait = np.empty(n)
    ttft = np.empty(n)
    free = [0.0] * servers
    waiting: deque[int] = deque()
    i = 0
    while i < n or waiting:
        free_at = heapq.heappop(free)
        while i < n and arrivals[i] <= free_at:
            waiting.append(i)
            i += 1
        if waiting:
            start = free_at
        else:
            waiting.append(i)
            start = arrivals[i]
            i += 1
        batch = [waiting.popleft()]
        tokens = isl[batch[0]]
        while (
            waiting and budget_tokens > 0 and tokens + isl[waiting[0]] <= budget_tokens
        ):
            tokens += isl[waiting[0]]
            batch.append(waiting.popleft())
        end = start + overhead_s + float(work_s[batch].sum())
        for r in batch:
            wait[r] = start - arrivals[r]
            ttft[r] = end - arrivals[r]
        heapq.heappush(free, end)
    return wait, ttft


class TestErlangC:
    """Erlang C against known M/M/c numbers."""

    @pytest.mark.parametrize(
        ("servers", "load", "expected"),
        [(1, 0.5, 0.5), (2, 1.0, 1 / 3), (3, 2.0, 4 / 9), (5, 4.0, 0.5541)],
    )
    def test_known_values(self, servers: int, load: float, expected: float) -> None:
        """C(1, rho) = rho; C(2, 1) = 1/3; C(3, 2) = 4/9; C(5, 4) = 0.5541."""
        assert erlang_c(servers, load) == pytest.approx(expected, abs=1e-4)

    def test_unstable_and_idle(self) -> None:
        """An overloaded queue always waits; an idle one never does."""
        assert erlang_c(3, 3.0) == 1.0
        assert erlang_c(3, 0.0) == 0.0

    def test_large_systems_are_finite(self) -> None:
        """Hundreds of servers give a probability strictly between 0 and 1."""
        value = erlang_c(500, 480.0)
        assert 0.0 < value < 1.0

    def test_rejects_no_servers(self) -> None:
        """Zero servers is a programming error."""
        with pytest.raises(ValueError, match="servers"):
            erlang_c(0, 1.0)

    def test_mmc_mean_wait_is_exact(self) -> None:
        """With exponential service and arrivals, Allen-Cunneen is the M/M/c formula."""
        queue = MGcQueue(servers=3, arrival_rate_per_s=2.0, mean_service_s=1.0)
        assert queue.mean_wait_s == pytest.approx((4 / 9) / (3.0 - 2.0))
        assert queue.wait_exceedance(0.0) == pytest.approx(4 / 9)


class TestAgainstSimulation:
    """The approximations agree with a small discrete-event simulation."""

    def test_mmc_wait_probability_and_mean(self) -> None:
        """M/M/4 at rho = 0.8: simulated P(wait) and E[W] match Erlang C and its mean."""
        rng = np.random.default_rng(7)
        n = 60_000
        arrivals = np.cumsum(rng.exponential(1 / 3.2, n))
        service = rng.exponential(1.0, n)
        wait, _ = simulate_fifo(
            arrivals,
            np.ones(n),
            service,
            servers=4,
            overhead_s=0.0,
            budget_tokens=0,
        )
        queue = MGcQueue(servers=4, arrival_rate_per_s=3.2, mean_service_s=1.0)
        assert np.mean(wait[1000:] > 0) == pytest.approx(
            queue.wait_probability, abs=0.03
        )
        assert np.mean(wait[1000:]) == pytest.approx(queue.mean_wait_s, rel=0.15)

    @pytest.mark.parametrize(
        ("rate", "servers", "ttft_s"),
        [(50.0, 2, 0.5), (60.0, 2, 0.2), (30.0, 1, 0.5), (80.0, 2, 0.3)],
    )
    def test_batched_prefill_attainment(
        self, prefill: PrefillFit, rate: float, servers: int, ttft_s: float
    ) -> None:
        """With an 8192-token batch budget, attainment and mean TTFT match the DES."""
        rng = np.random.default_rng(11)
        n = 20_000
        isl = np.clip(rng.exponential(1155.0, n), 10, 14_000)
        work = prefill.work_ms_array(isl) / 1000.0
        overhead = prefill.overhead_ms / 1000.0
        arrivals = np.cumsum(rng.exponential(1 / rate, n))
        _, ttft = simulate_fifo(
            arrivals,
            isl,
            work,
            servers=servers,
            overhead_s=overhead,
            budget_tokens=8192,
        )
        mix = PrefillMix(
            work_s=work[:2000],
            overhead_s=overhead,
            isl_tokens=isl[:2000],
            max_num_batched_tokens=8192,
        )
        estimate = estimate_prefill(
            mix, servers=servers, arrival_rate_per_s=rate, ttft_s=ttft_s
        )
        assert estimate.batch_size > 1.0
        assert estimate.attainment == pytest.approx(np.mean(ttft <= ttft_s), abs=0.03)
        assert estimate.mean_ttft_s == pytest.approx(float(np.mean(ttft)), rel=0.15)


class TestReplicaSearch:
    """The fewest replicas meeting the target, and infeasible targets refused."""

    def test_fewest_replicas(self, prefill: PrefillFit) -> None:
        """The chosen count meets the target and one fewer does not."""
        mix = exponential_prefill_mix(prefill, 3000.0)
        chosen = servers_for_attainment(
            mix, arrival_rate_per_s=80.0, ttft_s=0.5, attainment=0.99
        )
        assert chosen.attainment >= 0.99
        assert chosen.ttft_quantile_s <= 0.5
        fewer = estimate_prefill(
            mix, servers=chosen.servers - 1, arrival_rate_per_s=80.0, ttft_s=0.5
        )
        assert fewer.attainment < 0.99

    def test_min_servers_respected(self, prefill: PrefillFit) -> None:
        """No load still gives at least ``min_servers``."""
        chosen = servers_for_attainment(
            exponential_prefill_mix(prefill, 1000.0),
            arrival_rate_per_s=0.0,
            ttft_s=0.5,
            attainment=0.99,
            min_servers=2,
        )
        assert chosen.servers == 2
        assert chosen.attainment == pytest.approx(1.0)

    def test_infeasible_share_raises(self, prefill: PrefillFit) -> None:
        """When over 1% of requests exceed the target alone, 99% is refused."""
        isl = np.array([1000.0] * 95 + [40_000.0] * 5)
        mix = PrefillMix(
            work_s=prefill.work_ms_array(isl) / 1000.0,
            overhead_s=prefill.overhead_ms / 1000.0,
            isl_tokens=isl,
        )
        with pytest.raises(InfeasibleSLAError, match=r"only 95\.0% of requests"):
            servers_for_attainment(
                mix, arrival_rate_per_s=10.0, ttft_s=0.5, attainment=0.99
            )
        lower = servers_for_attainment(
            mix, arrival_rate_per_s=10.0, ttft_s=0.5, attainment=0.9
        )
        assert lower.attainment >= 0.9

    def test_unstable_estimate(self, prefill: PrefillFit) -> None:
        """Far more load than one worker can serve gives attainment 0, infinite TTFT."""
        estimate = estimate_prefill(
            exponential_prefill_mix(prefill, 8000.0),
            servers=1,
            arrival_rate_per_s=1000.0,
            ttft_s=0.5,
        )
        assert not estimate.stable
        assert estimate.attainment == 0.0
        assert math.isinf(estimate.mean_ttft_s)

    def test_exponential_mix_moments(self) -> None:
        """The stand-in mix has the asked mean and a squared CV near 1."""
        values = exponential_mix(1200.0)
        assert values.mean() == pytest.approx(1200.0)
        assert values.var() / values.mean() ** 2 == pytest.approx(1.0, abs=0.15)


class TestTarget:
    """The attainment target capped where almost nobody waits long: monotone."""

    def test_reachable_matches_attainment_search(self, prefill: PrefillFit) -> None:
        """Below the cap the answer is the fewest replicas reaching the target."""
        mix = exponential_prefill_mix(prefill, 1155.0)
        plain = servers_for_attainment(
            mix, arrival_rate_per_s=60.0, ttft_s=0.5, attainment=0.99
        )
        chosen, reachable = servers_for_target(
            mix, arrival_rate_per_s=60.0, ttft_s=0.5, attainment=0.99
        )
        assert reachable
        assert chosen.servers == plain.servers

    def test_unreachable_sizes_for_the_feasible_share(
        self, prefill: PrefillFit
    ) -> None:
        """When requests miss TTFT alone, 99% of the others are served in time, by the
        fewest replicas that do so, and never more than the cap."""
        mix = exponential_prefill_mix(prefill, 8000.0)
        feasible = mix.feasible_share(0.5)
        assert feasible < 0.99
        chosen, all_feasible = servers_for_target(
            mix, arrival_rate_per_s=30.0, ttft_s=0.5, attainment=0.99
        )
        assert not all_feasible
        cap = servers_for_wait_probability(
            mix,
            arrival_rate_per_s=30.0,
            wait_probability=0.01,
            ttft_s=0.5,
            wait_s=0.05,
        )
        assert chosen.servers <= cap.servers
        if chosen.servers < cap.servers:
            assert chosen.attainment >= 0.99 * feasible
        fewer = estimate_prefill(
            mix, servers=chosen.servers - 1, arrival_rate_per_s=30.0, ttft_s=0.5
        )
        assert not fewer.stable or fewer.attainment < 0.99 * feasible

    @settings(max_examples=80, deadline=None)
    @given(
        mean_isl=st.floats(1000.0, 9000.0),
        rate=st.floats(1.0, 400.0),
        ttft_s=st.floats(0.15, 0.8),
        tighter=st.floats(0.5, 1.0),
    )
    def test_tighter_target_never_fewer_when_requests_are_written_off(
        self,
        prefill: PrefillFit,
        mean_isl: float,
        rate: float,
        ttft_s: float,
        tighter: float,
    ) -> None:
        """Writing off more requests under a tighter target never lowers the count."""
        mix = exponential_prefill_mix(prefill, mean_isl)
        loose, _ = servers_for_target(
            mix, arrival_rate_per_s=rate, ttft_s=ttft_s, attainment=0.99
        )
        tight, _ = servers_for_target(
            mix, arrival_rate_per_s=rate, ttft_s=ttft_s * tighter, attainment=0.99
        )
        assert tight.servers >= loose.servers

    def test_tighter_target_never_fewer(self, prefill: PrefillFit) -> None:
        """A tighter TTFT that makes more requests infeasible still never lowers it."""
        mix = exponential_prefill_mix(prefill, 5913.0)
        loose, _ = servers_for_target(
            mix, arrival_rate_per_s=10071 / 60, ttft_s=0.561, attainment=0.99
        )
        tight, _ = servers_for_target(
            mix, arrival_rate_per_s=10071 / 60, ttft_s=0.526, attainment=0.99
        )
        assert tight.servers >= loose.servers
