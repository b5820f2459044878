"""The log connector: records and logs plans, changes nothing (advisory mode).

Use it to watch what the planner would do next to a deployment it must not touch. Each plan
is logged as one JSON line at INFO level and kept in :attr:`LogConnector.plans`.
:meth:`LogConnector.current` reports the last target as if it had been applied, so the
planner's own bookkeeping (decode correction, GPU-hours) follows its advice.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import attrs

from dynamo_planner.values import ReplicaPlan, ReplicaState

if TYPE_CHECKING:
    from dynamo_planner.config import PlannerConfig

__all__ = ["LogConnector"]

logger = logging.getLogger(__name__)


@attrs.define(kw_only=True)
class LogConnector:
    """Records plans and applies nothing.

    Args:
        initial: The replicas reported before any plan.
        max_records: Plans kept in :attr:`plans` (the oldest are dropped).

    .. versionadded:: 0.1.0
    """

    initial: ReplicaState = attrs.field(factory=ReplicaState)
    max_records: int = attrs.field(default=10_000, validator=attrs.validators.ge(1))
    plans: list[ReplicaPlan] = attrs.field(init=False, factory=list)
    _state: ReplicaState | None = attrs.field(init=False, default=None)

    @classmethod
    def from_config(cls, config: PlannerConfig, **kwargs: Any) -> LogConnector:  # noqa: ARG003
        """Build one; the configuration holds nothing it needs."""
        return cls(**kwargs)

    async def current(self) -> ReplicaState:
        """The last advised target, or ``initial``."""
        return self.initial if self._state is None else self._state

    async def apply(self, plan: ReplicaPlan, *, blocking: bool = False) -> None:
        """Record and log the plan; nothing is changed."""
        target = plan.target(await self.current())
        self._state = target
        self.plans.append(plan)
        del self.plans[: -self.max_records]
        logger.info(
            "advice (not applied): %s",
            json.dumps(
                {
                    "prefill_replicas": target.prefill,
                    "decode_replicas": target.decode,
                    "clamps": list(plan.clamps),
                    "reasons": list(plan.reasons),
                }
            ),
        )

    async def aclose(self) -> None:
        """Nothing to release."""
