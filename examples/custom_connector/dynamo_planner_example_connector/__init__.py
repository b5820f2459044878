"""An example third-party connector for dynamo_planner.

:class:`MemoryConnector` keeps replica counts in memory and records every plan applied
to it: useful to drive a :class:`~dynamo_planner.planner.Planner` in a notebook or a test
without a cluster, and a template for a real connector. It is registered as
``example_memory`` in the ``dynamo_planner.connectors`` entry-point group by this
package's ``pyproject.toml``.

It satisfies :class:`dynamo_planner.protocols.Connector` structurally (no base class):
async ``current``, ``apply`` and ``aclose``, plus the classmethod ``from_config`` every
connector provides.
"""

from __future__ import annotations

import attrs

from dynamo_planner.config import PlannerConfig
from dynamo_planner.exceptions import ConnectorError
from dynamo_planner.values import ReplicaPlan, ReplicaState

__all__ = ["MemoryConnector"]

NAME = "example_memory"


@attrs.define(kw_only=True)
class MemoryConnector:
    """A deployment that lives in memory; it records the plans applied to it.

    Attributes:
        state: The replicas the deployment runs now.
        applied: Every plan applied, oldest first.
        closed: Whether :meth:`aclose` was called.
    """

    state: ReplicaState = attrs.field(factory=lambda: ReplicaState(prefill=1, decode=1))
    applied: list[ReplicaPlan] = attrs.field(factory=list)
    closed: bool = False

    @classmethod
    def from_config(
        cls,
        config: PlannerConfig,
        *,
        initial: ReplicaState | None = None,
        **kwargs: object,  # noqa: ARG003 - part of the construction convention
    ) -> MemoryConnector:
        """A connector whose deployment starts at ``initial`` (default: ``min_endpoint``).

        Args:
            config: The planner's configuration.
            initial: The replicas to start with.
            **kwargs: Accepted and ignored, as the construction convention asks.
        """
        if initial is None:
            initial = ReplicaState(
                prefill=config.min_endpoint, decode=config.min_endpoint
            )
        return cls(state=initial)

    async def current(self) -> ReplicaState:
        """The replicas the deployment runs now."""
        self._check_open()
        return self.state

    async def apply(self, plan: ReplicaPlan, *, blocking: bool = False) -> None:
        """Record ``plan`` and apply it at once (so ``blocking`` has nothing to wait for).

        Components the plan leaves as ``None`` keep their replicas.
        """
        self._check_open()
        self.applied.append(plan)
        self.state = plan.target(self.state)

    async def aclose(self) -> None:
        """Close the connector; later calls fail."""
        self.closed = True

    def _check_open(self) -> None:
        if self.closed:
            raise ConnectorError("the connector is closed", connector=NAME)
