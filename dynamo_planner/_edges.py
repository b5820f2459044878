"""Calling the edges from a planner loop: failures are logged, counted and survived.

Shared by :class:`~dynamo_planner.planner.Planner` and
:class:`~dynamo_planner.load_planner.LoadPlanner`. An expected failure (one of our
:class:`~dynamo_planner.exceptions.PlannerError`) is logged on one line; anything else also
logs its traceback. Either way the error is counted by kind and the loop goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from dynamo_planner.exceptions import PlannerError, ScalingDeferredError
from dynamo_planner.protocols import Clock, Connector, MetricSource
from dynamo_planner.values import Observation, ReplicaPlan, ReplicaState

__all__ = ["apply_counted", "current_or_last", "fetch_or_unknown", "sleep_or_stop"]

logger = logging.getLogger("dynamo_planner.planner")


def _log_failure(message: str, exc: BaseException, *args: object) -> None:
    if isinstance(exc, PlannerError):
        logger.warning("%s: %s", message % args, exc)
    else:
        logger.warning(message, *args, exc_info=exc)


async def fetch_or_unknown(
    source: MetricSource, interval_s: float, errors: Counter[str]
) -> Observation:
    """The source's observation, or an all-unknown one if it fails."""
    try:
        return await source.fetch(interval_s)
    except Exception as exc:  # noqa: BLE001 - a failing source must never stop the loop
        errors["source"] += 1
        _log_failure("metric source failed; traffic is unknown", exc)
        return Observation(interval_s=interval_s)


async def current_or_last(
    connector: Connector, last: ReplicaState, errors: Counter[str]
) -> ReplicaState:
    """The replicas the connector reports, or ``last`` if it fails."""
    try:
        return await connector.current()
    except Exception as exc:  # noqa: BLE001 - a failing connector must never stop the loop
        errors["connector"] += 1
        _log_failure(
            "connector could not report replicas; using the last known %s", exc, last
        )
        return last


async def apply_counted(
    connector: Connector,
    plan: ReplicaPlan,
    *,
    blocking: bool,
    errors: Counter[str],
    what: object,
) -> bool:
    """Apply ``plan``; True when the connector accepted it.

    A decision the connector defers (the previous one is not done yet) is counted as
    ``"deferred"``, not as a failure; either way it is tried again on the next tick.
    """
    try:
        await connector.apply(plan, blocking=blocking)
    except ScalingDeferredError as exc:
        errors["deferred"] += 1
        logger.info("connector deferred %s (%s); will retry", what, exc)
        return False
    except Exception as exc:  # noqa: BLE001 - a failing connector must never stop the loop
        errors["connector"] += 1
        _log_failure("connector failed to apply %s; will retry", exc, what)
        return False
    return True


async def sleep_or_stop(clock: Clock, seconds: float, stop: asyncio.Event) -> None:
    """Sleep on ``clock`` for ``seconds``, waking early when ``stop`` is set."""
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    stopper = asyncio.ensure_future(stop.wait())
    _, pending = await asyncio.wait(
        (sleeper, stopper), return_when=asyncio.FIRST_COMPLETED
    )
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
