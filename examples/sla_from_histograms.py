"""Size with the sla scaler from what Prometheus reads off a Dynamo frontend.

Run: ``python examples/sla_from_histograms.py``. A frontend exports histograms, not
per-request logs: the Prometheus source turns their buckets into
``Observation.isl_histogram_tokens`` (and OSL, TTFT, ITL likewise), and the ``sla``
scaler draws its request mix from them. Two intervals with the same request count and
the same mean prompt (1,536 tokens) are planned here: one whose prompts are all about
that long, one where 5% are 16k to 32k tokens long and the rest short. The long prompts
hold a prefill worker for half a second each and queue the short ones behind them, so
the second needs more prefill workers. Prints each plan and where its mix came from.
"""

from __future__ import annotations

import math

from dynamo_planner import Observation
from dynamo_planner.config import PlannerConfig
from dynamo_planner.data import H200_PROFILE_DIR
from dynamo_planner.planner import Planner
from dynamo_planner.values import ReplicaPlan, ReplicaState

INF = math.inf
REQUESTS = 1_200
"""Requests in the 60 s interval (20 per second)."""
SHAPES = {
    # cumulative (upper bound in tokens, requests) buckets, as Prometheus sums them
    "even prompts": ((1024.0, 0.0), (2048.0, 1200.0), (INF, 1200.0)),
    "5% long prompts": (
        (256.0, 0.0),
        (512.0, 1140.0),
        (16384.0, 1140.0),
        (32768.0, 1200.0),
        (INF, 1200.0),
    ),
}
MEAN_ISL_TOKENS = 1536.0
OUTPUTS = ((128.0, 600.0), (256.0, 1200.0), (INF, 1200.0))


def interval(isl_buckets: tuple[tuple[float, float], ...]) -> Observation:
    """One 60 s interval as the Prometheus source reports it: counts, means, buckets."""
    return Observation(
        interval_s=60.0,
        num_req=float(REQUESTS),
        isl_tokens=MEAN_ISL_TOKENS,
        osl_tokens=160.0,
        ttft_ms=120.0,
        itl_ms=9.0,
        request_duration_s=1.6,
        isl_histogram_tokens=isl_buckets,
        osl_histogram_tokens=OUTPUTS,
    )


RUNNING = ReplicaState(prefill=1, decode=1)
CONFIG = PlannerConfig(
    scaler="sla",
    profile_results_dir=str(H200_PROFILE_DIR),
    load_predictor="constant",
    adjustment_interval_s=60.0,
    ttft_ms=500.0,
    itl_ms=20.0,
    max_gpu_budget=-1,
)


def main() -> dict[str, ReplicaPlan]:
    """Plan both shapes with fresh planners; print each plan and where its mix came from."""
    plans = {
        name: Planner.from_config(CONFIG).plan(interval(buckets), RUNNING)
        for name, buckets in SHAPES.items()
    }
    for name, plan in plans.items():
        target = plan.target(RUNNING)
        mix = next(r for r in plan.reasons if r.startswith("mix:"))
        print(f"{name}: prefill {target.prefill}, decode {target.decode}")
        print(f"  {mix}")
    return plans


if __name__ == "__main__":
    main()
