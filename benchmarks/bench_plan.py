"""Cost of one ``Planner.plan()`` call with the reference scaler and constant predictors.

Run: ``python benchmarks/bench_plan.py``. Prints the median and p99 of many calls on the
bundled H200 profile, and the ratio of ``plan()`` to the scaler's own ``decide()`` measured
in the same run (the facade's overhead). Target: p99 under 1 ms.
"""

from __future__ import annotations

import time

import numpy as np

from dynamo_planner.config import PlannerConfig
from dynamo_planner.data import H200_PROFILE_DIR
from dynamo_planner.planner import Planner
from dynamo_planner.protocols import ScalingRequest
from dynamo_planner.values import Demand, Observation, ReplicaState

CALLS = 5_000
TARGET_P99_MS = 1.0


def _observations(rng: np.random.Generator) -> list[Observation]:
    return [
        Observation(
            interval_s=180.0,
            num_req=float(rng.integers(500, 30_000)),
            isl_tokens=float(rng.integers(200, 12_000)),
            osl_tokens=float(rng.integers(50, 1_000)),
            ttft_ms=float(rng.uniform(20, 400)),
            itl_ms=float(rng.uniform(5, 40)),
            request_duration_s=float(rng.uniform(1, 30)),
        )
        for _ in range(CALLS)
    ]


def _percentiles_ms(samples_s: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples_s) * 1e3
    return float(np.median(arr)), float(np.percentile(arr, 99))


def main() -> None:
    config = PlannerConfig(
        scaler="reference",
        profile_results_dir=str(H200_PROFILE_DIR),
        load_predictor="constant",
        max_gpu_budget=16,
    )
    planner = Planner.from_config(config)
    observations = _observations(np.random.default_rng(0))
    current = ReplicaState(prefill=2, decode=2)

    plan_s: list[float] = []
    for obs in observations:
        start = time.perf_counter()
        planner.plan(obs, current)
        plan_s.append(time.perf_counter() - start)

    decide_s: list[float] = []
    for obs in observations:
        demand = Demand.of(
            num_req=obs.num_req.value,
            isl_tokens=obs.isl_tokens.value,
            osl_tokens=obs.osl_tokens.value,
            interval_s=180.0,
        )
        request = ScalingRequest(demand=demand, current=current)
        start = time.perf_counter()
        planner.scaler.decide(request)
        decide_s.append(time.perf_counter() - start)

    plan_median, plan_p99 = _percentiles_ms(plan_s)
    decide_median, decide_p99 = _percentiles_ms(decide_s)
    print(
        f"plan() over {CALLS} calls: median {plan_median:.3f} ms, p99 {plan_p99:.3f} ms"
    )
    print(
        f"scaler.decide() alone:      median {decide_median:.3f} ms, p99 {decide_p99:.3f} ms"
    )
    print(
        f"facade overhead (plan / decide, median): {plan_median / decide_median:.2f}x"
    )
    verdict = "meets" if plan_p99 < TARGET_P99_MS else "MISSES"
    print(
        f"p99 / target ({TARGET_P99_MS} ms): {plan_p99 / TARGET_P99_MS:.2f} -> {verdict}"
    )


if __name__ == "__main__":
    main()
