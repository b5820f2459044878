"""Drive a Planner with no servers: scripted traffic in, recorded decisions out.

Run: ``python examples/plan_with_fakes.py``. Uses the bundled H200 profile, the reference
scaler and the constant predictor; traffic ramps up, stops, and the metric source then goes
down for a while. Prints one line per interval with the plan and its first reason.
"""

from __future__ import annotations

import asyncio

from dynamo_planner import Observation
from dynamo_planner.config import PlannerConfig
from dynamo_planner.data import H200_PROFILE_DIR
from dynamo_planner.exceptions import MetricSourceError
from dynamo_planner.planner import Planner, StepRecord
from dynamo_planner.testing.fakes import (
    InMemoryMetricSource,
    ManualClock,
    RecordingConnector,
)
from dynamo_planner.values import ReplicaState


def traffic(num_req: float) -> Observation:
    """One 180 s interval of chat-like traffic with ``num_req`` requests."""
    if num_req == 0:
        return Observation(interval_s=180.0, num_req=0.0)
    return Observation(
        interval_s=180.0,
        num_req=num_req,
        isl_tokens=3000.0,
        osl_tokens=150.0,
        ttft_ms=65.0,
        itl_ms=12.0,
        request_duration_s=2.5,
    )


def main() -> list[StepRecord]:
    """Run the scripted scenario and return what each step did."""
    config = PlannerConfig(
        scaler="reference",
        profile_results_dir=str(H200_PROFILE_DIR),
        load_predictor="constant",
        ttft_ms=200.0,
        itl_ms=20.0,
        max_gpu_budget=16,
    )
    script: list[Observation | Exception] = [
        traffic(n) for n in (1_000, 8_000, 20_000, 30_000, 12_000, 0)
    ]
    script += [
        MetricSourceError("connection refused", source="prometheus") for _ in range(3)
    ]
    records: list[StepRecord] = []
    planner = Planner.from_config(
        config,
        source=InMemoryMetricSource(script),
        connector=RecordingConnector(state=ReplicaState(prefill=1, decode=1)),
        clock=ManualClock(),
    )
    planner.listeners.append(records.append)

    async def drive() -> None:
        for _ in range(len(script)):
            await planner.step()

    asyncio.run(drive())
    for i, record in enumerate(records):
        target = record.plan.target(record.current)
        print(
            f"interval {i}: num_req={record.observation.num_req.value:>7.0f} "
            f"-> prefill {target.prefill}, decode {target.decode}  "
            f"({record.plan.reasons[0]})"
        )
    print(f"errors: {dict(planner.errors)}")
    return records


if __name__ == "__main__":
    main()
