"""Size prefill for the arrivals' burstiness, read from a scraped request counter.

Run: ``python examples/bursty_arrivals.py``. Prometheus scrapes a frontend's request
counter every second; the Prometheus source reads the counter's samples over the
interval (``dynamo_frontend_requests_total[60s]``) and turns their rises into the
arrivals' index of dispersion (:func:`dynamo_planner.sources.dispersion.index_of_dispersion`),
which the ``sla`` scaler's prefill queue takes as ``Ca²``. Two intervals with the same
1,800 requests and the same prompts are planned here: one whose requests arrive evenly,
one where each ten seconds' requests arrive within one second. The bursts queue behind
each other, so the second needs more prefill workers. Prints each index and plan.
"""

from __future__ import annotations

from dynamo_planner import Observation
from dynamo_planner.config import PlannerConfig
from dynamo_planner.data import H200_PROFILE_DIR
from dynamo_planner.planner import Planner
from dynamo_planner.sources.dispersion import index_of_dispersion
from dynamo_planner.values import ReplicaPlan, ReplicaState

INTERVAL_S = 60
REQUESTS = 1_800
"""Requests in the interval (30 per second)."""
RUNNING = ReplicaState(prefill=1, decode=1)
CONFIG = PlannerConfig(
    scaler="sla",
    profile_results_dir=str(H200_PROFILE_DIR),
    load_predictor="constant",
    adjustment_interval_s=float(INTERVAL_S),
    ttft_ms=500.0,
    itl_ms=20.0,
    max_gpu_budget=-1,
)


def counter(per_second: list[int]) -> list[tuple[float, float]]:
    """The request counter's samples, scraped every second: ``(time_s, value)``."""
    samples, total = [(0.0, 0.0)], 0
    for second, count in enumerate(per_second, start=1):
        total += count
        samples.append((float(second), float(total)))
    return samples


ARRIVALS = {
    "even arrivals": [REQUESTS // INTERVAL_S] * INTERVAL_S,
    "bursts every 10 s": ([300] + [0] * 9) * (INTERVAL_S // 10),
}


def interval(dispersion: float | None) -> Observation:
    """One 60 s interval as the Prometheus source reports it, with the dispersion."""
    return Observation(
        interval_s=float(INTERVAL_S),
        num_req=float(REQUESTS),
        isl_tokens=3000.0,
        osl_tokens=160.0,
        ttft_ms=150.0,
        itl_ms=9.0,
        request_duration_s=1.6,
        arrival_dispersion=dispersion,
    )


def main() -> dict[str, ReplicaPlan]:
    """Plan both arrival patterns with fresh planners; print each index and plan."""
    plans = {}
    for name, per_second in ARRIVALS.items():
        dispersion = index_of_dispersion([counter(per_second)])
        plan = Planner.from_config(CONFIG).plan(interval(dispersion), RUNNING)
        plans[name] = plan
        target = plan.target(RUNNING)
        arrivals = next(r for r in plan.reasons if r.startswith("arrivals:"))
        print(f"{name}: prefill {target.prefill}, decode {target.decode}")
        print(f"  {arrivals}")
    return plans


if __name__ == "__main__":
    main()
