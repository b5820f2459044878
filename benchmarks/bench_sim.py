"""Simulator speed: simulated requests per wall-clock second, planner in the loop.

Run: ``python benchmarks/bench_sim.py``. On the bundled Azure 2023 conversation trace (x1,
and x10 by superposing time-shifted copies) and the bundled H200 profile, it times

* a static deployment (the simulator alone), and
* the reference planner in the loop (constant predictor, 60 s interval, ITL 20 ms, 60 s
  cold start, no GPU budget: it scales every few intervals), building the planner outside
  the timing,

best of three runs each, and prints requests per second, the ratio of the planner run to
the static run measured in the same run (the planner's overhead) and to the 50,000
requests/s target.
"""

from __future__ import annotations

import time

from dynamo_planner.config import PlannerConfig
from dynamo_planner.data import AZURE_CONV_TRACE, H200_PROFILE_DIR
from dynamo_planner.planner import Planner
from dynamo_planner.profiles import load_profile
from dynamo_planner.sim.engine import SimConfig, Simulation
from dynamo_planner.sim.engine_model import EngineModel
from dynamo_planner.sim.replay import run_planner
from dynamo_planner.sim.workload import load_scale
from dynamo_planner.traces import RequestTrace, load_requests

TARGET_REQ_PER_S = 50_000
REPEATS = 3


def _static(trace: RequestTrace, model: EngineModel) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        sim = Simulation(trace, model, SimConfig(initial_prefill=2, initial_decode=2))
        sim.run_to_completion()
        best = min(best, time.perf_counter() - start)
    return len(trace) / best


def _planner(
    trace: RequestTrace, model: EngineModel, config: PlannerConfig, profile: object
) -> tuple[float, int]:
    best = float("inf")
    actions = 0
    for _ in range(REPEATS):
        planner = Planner.from_config(config, profile=profile)  # type: ignore[arg-type]
        start = time.perf_counter()
        run = run_planner(
            trace,
            model,
            planner,
            sim_config=SimConfig(cold_start_s=60.0),
            ttft_ms=config.ttft_ms,
            itl_ms=config.itl_ms,
        )
        best = min(best, time.perf_counter() - start)
        actions = run.summary.scaling_actions
    return len(trace) / best, actions


def main() -> None:
    profile = load_profile(H200_PROFILE_DIR)
    model = EngineModel.from_profile(profile)
    azure = load_requests(AZURE_CONV_TRACE)
    config = PlannerConfig(
        scaler="reference",
        load_predictor="constant",
        adjustment_interval_s=60.0,
        itl_ms=20.0,
        max_gpu_budget=-1,
    )
    print(
        f"{'trace':<18} {'requests':>9} {'static req/s':>13} {'planner req/s':>14} "
        f"{'actions':>8} {'planner/static':>15} {'vs target':>10}"
    )
    for label, trace in (
        ("azure conv x1", azure),
        ("azure conv x10", load_scale(azure, 10)),
    ):
        static = _static(trace, model)
        planned, actions = _planner(trace, model, config, profile)
        print(
            f"{label:<18} {len(trace):>9,} {static:>13,.0f} {planned:>14,.0f} "
            f"{actions:>8} {planned / static:>15.2f} "
            f"{planned / TARGET_REQ_PER_S:>9.2f}x"
        )
    print(
        f"target: {TARGET_REQ_PER_S:,} simulated requests per second, planner in loop"
    )


if __name__ == "__main__":
    main()
