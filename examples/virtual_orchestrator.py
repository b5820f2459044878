"""An orchestrator that carries out the planner's decisions through the virtual connector.

Run the planner with ``--environment virtual`` against the same etcd; this loop reads each
new decision, "scales" (here: records the counts; put your own scaling call in
``scale_to``), acknowledges it, and waits for the next one::

    python examples/virtual_orchestrator.py --etcd http://127.0.0.1:2379 --namespace dynamo
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable

from dynamo_planner.connectors.virtual import PlannerDecision, VirtualConnectorClient

ScaleTo = Callable[[int, int], Awaitable[None]]


async def print_scale(prefill: int, decode: int) -> None:
    """Stand-in for a real scaling call: start or stop workers here."""
    print(f"scaling to prefill={prefill} decode={decode}", flush=True)


async def orchestrate(
    client: VirtualConnectorClient,
    scale_to: ScaleTo = print_scale,
    *,
    max_decisions: int | None = None,
    idle_timeout_s: float | None = None,
) -> list[PlannerDecision]:
    """Carry out decisions until ``max_decisions`` or ``idle_timeout_s`` without one.

    Returns:
        The decisions carried out, in order.
    """
    done: list[PlannerDecision] = []
    last_id = -1
    while max_decisions is None or len(done) < max_decisions:
        decision = await client.get()
        if decision.decision_id > last_id:
            # -1 means "keep what you run" for a component the planner does not plan.
            await scale_to(
                max(decision.num_prefill_workers, 0),
                max(decision.num_decode_workers, 0),
            )
            await client.complete(decision)
            done.append(decision)
            last_id = decision.decision_id
            continue
        if not await client.wait(timeout_s=idle_timeout_s):
            break
    return done


async def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run the loop."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--etcd", default="http://127.0.0.1:2379", help="etcd URL(s)")
    parser.add_argument("--namespace", default="dynamo", help="Dynamo namespace")
    parser.add_argument("--max-decisions", type=int, default=None)
    parser.add_argument("--idle-timeout", type=float, default=None, metavar="SECONDS")
    args = parser.parse_args(argv)
    async with VirtualConnectorClient(args.etcd, args.namespace) as client:
        done = await orchestrate(
            client, max_decisions=args.max_decisions, idle_timeout_s=args.idle_timeout
        )
    print(f"carried out {len(done)} decision(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
