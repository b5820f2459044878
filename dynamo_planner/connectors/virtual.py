"""The virtual connector: hand replica decisions to any orchestrator through etcd (spec §6.1).

The planner writes a decision under ``v1/{namespace}/planner/``; an orchestrator reads it,
scales its workers, and acknowledges. The keys and the decision-id handshake are Dynamo's, so
an orchestrator written against Dynamo's ``VirtualConnectorClient`` works unchanged:

======================== ================= ===============================================
key                      written by        value (decimal string)
======================== ================= ===============================================
``num_prefill_workers``  planner           prefill workers to run
``num_decode_workers``   planner           decode workers to run
``decision_id``          planner           0 for the first decision, then 1, 2, ...
``scaled_decision_id``   orchestrator      the last ``decision_id`` it has carried out
======================== ================= ===============================================

Rules (the reference's, with its known bug fixed):

* identical counts issue no new decision;
* a new decision waits until the previous one is acknowledged (``scaled_decision_id >=
  decision_id``), but not for longer than ``max_wait_s`` (1800 s) after the first decision
  it held back; then it goes through anyway;
* a decision is written in one etcd transaction, guarded on the ``decision_id`` read just
  before, so it is never written twice (not even when an answer is lost and the write
  retried); the in-memory state follows only a successful write;
* the state lives in etcd: a restarted planner carries on from the ids it finds there;
* waiting for an acknowledgement sleeps ``check_interval_s`` on every retry (the reference
  busy-polls when the acknowledgement is stale, and so gives up almost at once).

:class:`VirtualConnectorClient` is the orchestrator's side for Python orchestrators:
:meth:`~VirtualConnectorClient.wait`, :meth:`~VirtualConnectorClient.get`,
:meth:`~VirtualConnectorClient.complete`.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import attrs

from dynamo_planner.connectors._etcd import Compare, EtcdKV
from dynamo_planner.exceptions import ConfigError, ConnectorError, ScalingDeferredError
from dynamo_planner.values import ReplicaPlan, ReplicaState

if TYPE_CHECKING:
    from dynamo_planner.config import PlannerConfig
    from dynamo_planner.protocols import Clock

__all__ = [
    "DECISION_KEYS",
    "PlannerDecision",
    "ScalingDeferredError",
    "VirtualConnector",
    "VirtualConnectorClient",
    "is_ready",
    "planner_prefix",
]

logger = logging.getLogger(__name__)

UNSET = -1
"""The value of a decision field that was never written."""

NUM_PREFILL = "num_prefill_workers"
NUM_DECODE = "num_decode_workers"
DECISION_ID = "decision_id"
SCALED_DECISION_ID = "scaled_decision_id"
DECISION_KEYS = (NUM_PREFILL, NUM_DECODE, DECISION_ID, SCALED_DECISION_ID)
"""The key names under :func:`planner_prefix`."""


def planner_prefix(namespace: str) -> str:
    """The etcd prefix of a Dynamo namespace's decisions: ``v1/{namespace}/planner/``."""
    return f"v1/{namespace}/planner/"


def is_ready(decision_id: int, scaled_decision_id: int | None) -> bool:
    """Whether the orchestrator has carried out the latest decision.

    Args:
        decision_id: The latest decision's id (:data:`UNSET`: none yet).
        scaled_decision_id: The id the orchestrator acknowledged, ``None`` if never.

    Returns:
        True when there is no decision yet, or the acknowledged id has caught up.
    """
    if decision_id < 0:
        return True
    return scaled_decision_id is not None and scaled_decision_id >= decision_id


@attrs.frozen(kw_only=True)
class PlannerDecision:
    """A decision as the orchestrator reads it; :data:`UNSET` (-1) for missing keys.

    Attributes:
        num_prefill_workers: Prefill workers to run.
        num_decode_workers: Decode workers to run.
        decision_id: The decision's id (0, 1, 2, ...).
    """

    num_prefill_workers: int = UNSET
    num_decode_workers: int = UNSET
    decision_id: int = UNSET


def _parse_count(raw: str | None, key: str) -> int:
    if raw is None:
        return UNSET
    try:
        return int(raw)
    except ValueError:
        logger.warning("etcd key %s holds %r, not an integer; reading 0", key, raw)
        return 0


def _parse_id(raw: str | None, key: str) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        logger.warning("etcd key %s holds %r, not an integer; reading unset", key, raw)
        return None


@attrs.frozen(kw_only=True)
class _State:
    prefill: int = UNSET
    decode: int = UNSET
    decision_id: int = UNSET
    raw_decision_id: str | None = None
    scaled_decision_id: int | None = None
    revision: int = 0

    @classmethod
    def of(cls, values: dict[str, str], prefix: str, revision: int) -> _State:
        raw_id = values.get(prefix + DECISION_ID)
        decision_id = _parse_id(raw_id, prefix + DECISION_ID)
        return cls(
            prefill=_parse_count(
                values.get(prefix + NUM_PREFILL), prefix + NUM_PREFILL
            ),
            decode=_parse_count(values.get(prefix + NUM_DECODE), prefix + NUM_DECODE),
            decision_id=UNSET if decision_id is None else decision_id,
            raw_decision_id=raw_id,
            scaled_decision_id=_parse_id(
                values.get(prefix + SCALED_DECISION_ID), prefix + SCALED_DECISION_ID
            ),
            revision=revision,
        )

    @property
    def decision(self) -> PlannerDecision:
        return PlannerDecision(
            num_prefill_workers=self.prefill,
            num_decode_workers=self.decode,
            decision_id=self.decision_id,
        )

    @property
    def ready(self) -> bool:
        return is_ready(self.decision_id, self.scaled_decision_id)


def _real_clock() -> Clock:
    from dynamo_planner.planner import SystemClock

    return SystemClock()


def _lower(value: str) -> str:
    return value.lower()


@attrs.define(kw_only=True)
class VirtualConnector:
    """Writes replica decisions to etcd for an external orchestrator (spec §6.1).

    Args:
        kv: The etcd access.
        namespace: The Dynamo namespace (the key prefix).
        model_name: The served model (lower-cased); required, as in the reference.
        check_interval_s: Sleep between acknowledgement checks (``SCALING_CHECK_INTERVAL``).
        max_wait_s: Longest wait for an acknowledgement (``SCALING_MAX_WAIT_TIME``).
        clock: Time for the waits (the real clock by default).

    .. versionadded:: 0.1.0
    """

    kv: EtcdKV
    namespace: str = "dynamo"
    model_name: str = attrs.field(converter=_lower)
    check_interval_s: float = attrs.field(
        default=10.0, validator=attrs.validators.gt(0)
    )
    max_wait_s: float = attrs.field(default=1800.0, validator=attrs.validators.ge(0))
    clock: Clock = attrs.field(factory=_real_clock)
    _state: _State | None = attrs.field(init=False, default=None)
    _first_skip_s: float | None = attrs.field(init=False, default=None)
    _deferred: bool = attrs.field(init=False, default=False)

    @model_name.validator
    def _check_model_name(self, _attribute: attrs.Attribute[str], value: str) -> None:
        if not value:
            raise ConfigError(
                "the virtual connector needs the served model name", field="model_name"
            )

    @classmethod
    def from_config(cls, config: PlannerConfig, **kwargs: Any) -> VirtualConnector:
        """Build from the planner configuration; keyword arguments override it.

        Raises:
            ConfigError: No model name, or an invalid etcd endpoint.
        """
        options: dict[str, Any] = {
            "namespace": config.namespace,
            "model_name": config.model_name or "",
            "check_interval_s": config.scaling_check_interval_s,
            "max_wait_s": config.scaling_max_wait_s,
        }
        options.update(kwargs)
        if "kv" not in options:
            try:
                options["kv"] = EtcdKV(config.etcd_endpoints)
            except ValueError as exc:
                raise ConfigError(
                    str(exc), field="etcd_endpoints", value=config.etcd_endpoints
                ) from exc
        return cls(**options)

    @property
    def prefix(self) -> str:
        """The etcd prefix of this namespace's decisions."""
        return planner_prefix(self.namespace)

    @property
    def max_retries(self) -> int:
        """Acknowledgement checks of a blocking wait: ``max_wait_s // check_interval_s``."""
        return max(1, int(self.max_wait_s // self.check_interval_s))

    def get_model_name(self) -> str:
        """The configured model name (lower-cased)."""
        return self.model_name

    async def validate_deployment(self) -> None:
        """Nothing to validate: the orchestrator owns the deployment."""

    async def _load(self) -> _State:
        values, revision = await self.kv.get_prefix(self.prefix)
        self._state = _State.of(values, self.prefix, revision)
        return self._state

    async def decision(self) -> PlannerDecision:
        """The latest decision as stored in etcd."""
        return (await self._load()).decision

    async def current(self) -> ReplicaState:
        """The counts of the latest decision (0 where none was made).

        The orchestrator owns the workers; the planner sees what it asked for.
        """
        state = await self._load()
        return ReplicaState(prefill=max(state.prefill, 0), decode=max(state.decode, 0))

    async def apply(self, plan: ReplicaPlan, *, blocking: bool = False) -> None:
        """Write the plan as a decision; with ``blocking`` wait for its acknowledgement.

        Raises:
            ScalingDeferredError: The previous decision is not acknowledged yet (and the
                wait limit has not passed); nothing was written.
            ConnectorError: etcd could not be reached.
        """
        decision = await self.update_scaling_decision(
            num_prefill=plan.prefill, num_decode=plan.decode
        )
        if decision is None and self._deferred:
            raise ScalingDeferredError(
                "previous decision not acknowledged yet; this one is held back",
                connector="virtual",
            )
        if blocking:
            await self.wait_for_scaling_completion()

    async def update_scaling_decision(
        self, num_prefill: int | None = None, num_decode: int | None = None
    ) -> PlannerDecision | None:
        """Write a new decision if it changes anything and the last one is done.

        Args:
            num_prefill: Prefill workers, or ``None`` to keep the current value.
            num_decode: Decode workers, or ``None`` to keep the current value.

        Returns:
            The decision written, or ``None`` when nothing was written (no change, or
            held back while the previous decision is not acknowledged).

        Raises:
            ConnectorError: etcd could not be reached.
        """
        self._deferred = False
        for attempt in range(3):
            state = await self._load()
            prefill = state.prefill if num_prefill is None else int(num_prefill)
            decode = state.decode if num_decode is None else int(num_decode)
            if prefill < UNSET or decode < UNSET:
                msg = f"replica counts must not be negative, got ({prefill}, {decode})"
                raise ValueError(msg)
            if prefill == state.prefill and decode == state.decode:
                logger.info(
                    "No scaling needed (prefill=%d, decode=%d)", prefill, decode
                )
                return None
            if not state.ready:
                now_s = self.clock.now()
                if self._first_skip_s is None:
                    self._first_skip_s = now_s
                waited_s = now_s - self._first_skip_s
                if waited_s < self.max_wait_s:
                    logger.warning(
                        "decision %d not acknowledged (scaled_decision_id=%s); holding "
                        "back prefill=%d decode=%d (%.0f s of %.0f s)",
                        state.decision_id,
                        state.scaled_decision_id,
                        prefill,
                        decode,
                        waited_s,
                        self.max_wait_s,
                    )
                    self._deferred = True
                    return None
                logger.warning(
                    "decision %d still not acknowledged after %.0f s; going ahead",
                    state.decision_id,
                    waited_s,
                )
            written = await self._write(state, prefill, decode, num_prefill, num_decode)
            if written is not None:
                self._first_skip_s = None
                return written
            logger.info(
                "decision state changed in etcd meanwhile; re-reading (%d)", attempt
            )
        raise ConnectorError(
            "decision_id kept changing under the planner; is a second planner writing "
            f"to {self.prefix}?",
            connector="virtual",
        )

    async def _write(
        self,
        state: _State,
        prefill: int,
        decode: int,
        num_prefill: int | None,
        num_decode: int | None,
    ) -> PlannerDecision | None:
        decision_id = state.decision_id + 1
        puts = {self.prefix + DECISION_ID: str(decision_id)}
        if num_prefill is not None:
            puts[self.prefix + NUM_PREFILL] = str(prefill)
        if num_decode is not None:
            puts[self.prefix + NUM_DECODE] = str(decode)
        guard = Compare(self.prefix + DECISION_ID, state.raw_decision_id)
        ok, revision = await self.kv.put_if(puts, [guard])
        if not ok:
            return None
        self._state = attrs.evolve(
            state,
            prefill=prefill,
            decode=decode,
            decision_id=decision_id,
            raw_decision_id=str(decision_id),
            revision=revision,
        )
        logger.info("decision %d: prefill=%d decode=%d", decision_id, prefill, decode)
        return self._state.decision

    async def wait_for_scaling_completion(self) -> bool:
        """Wait until the orchestrator acknowledges the latest decision.

        Checks up to :attr:`max_retries` times, sleeping ``check_interval_s`` after every
        check that is not yet acknowledged. Never raises for a timeout.

        Returns:
            True when acknowledged (or there is no decision), False after the wait limit.
        """
        for _ in range(self.max_retries):
            try:
                state = await self._load()
            except ConnectorError as exc:
                logger.warning("cannot read the acknowledgement: %s", exc)
            else:
                if state.ready:
                    return True
            await self.clock.sleep(self.check_interval_s)
        logger.warning(
            "decision not acknowledged after %.0f s; continuing", self.max_wait_s
        )
        return False

    async def add_component(self, kind: str) -> PlannerDecision | None:
        """One more worker of ``kind`` (``"prefill"`` or ``"decode"``)."""
        state = await self._load()
        if kind == "prefill":
            return await self.update_scaling_decision(
                num_prefill=max(state.prefill, 0) + 1
            )
        return await self.update_scaling_decision(num_decode=max(state.decode, 0) + 1)

    async def remove_component(self, kind: str) -> PlannerDecision | None:
        """One fewer worker of ``kind``, never below 0."""
        state = await self._load()
        if kind == "prefill":
            return await self.update_scaling_decision(
                num_prefill=max(state.prefill - 1, 0)
            )
        return await self.update_scaling_decision(num_decode=max(state.decode - 1, 0))

    async def aclose(self) -> None:
        """Close the etcd connections."""
        await self.kv.aclose()


class VirtualConnectorClient:
    """The orchestrator's side of the virtual connector, for Python orchestrators.

    A complete loop::

        async with VirtualConnectorClient("http://127.0.0.1:2379", "dynamo") as client:
            while True:
                decision = await client.get()
                if decision.decision_id >= 0:
                    await scale_to(decision.num_prefill_workers,
                                   decision.num_decode_workers)
                    await client.complete(decision)
                await client.wait()

    Args:
        endpoints: etcd client URLs (comma-separated or a sequence).
        namespace: The Dynamo namespace the planner runs in.
        kv: An existing etcd access to use instead of ``endpoints``.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        endpoints: str | list[str] | None = None,
        namespace: str = "dynamo",
        *,
        kv: EtcdKV | None = None,
    ) -> None:
        if kv is None:
            if endpoints is None:
                msg = "give the etcd endpoints or an EtcdKV"
                raise ValueError(msg)
            kv = EtcdKV(endpoints)
        self.kv = kv
        self.namespace = namespace
        self.prefix = planner_prefix(namespace)
        self._revision: int | None = None

    async def get(self) -> PlannerDecision:
        """The latest decision (-1 for missing keys)."""
        values, revision = await self.kv.get_prefix(self.prefix)
        self._revision = revision
        return _State.of(values, self.prefix, revision).decision

    async def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the planner changes its decision after the last :meth:`get`.

        A change made between :meth:`get` and this call is not missed. Without a prior
        :meth:`get` the wait starts now. Acknowledgements (``scaled_decision_id``) do not
        count as changes.

        Args:
            timeout_s: Give up after this long; ``None`` waits for ever.

        Returns:
            True when the decision changed, False on timeout.
        """
        if self._revision is None:
            _, self._revision = await self.kv.get_prefix(self.prefix)
        revision = await self.kv.wait_prefix(
            self.prefix,
            self._revision,
            timeout_s=timeout_s,
            ignore_keys=frozenset({self.prefix + SCALED_DECISION_ID}),
        )
        return revision is not None

    async def complete(self, decision: PlannerDecision) -> None:
        """Acknowledge a decision: write ``scaled_decision_id = decision.decision_id``."""
        await self.kv.put(self.prefix + SCALED_DECISION_ID, str(decision.decision_id))

    async def aclose(self) -> None:
        """Close the etcd connections."""
        await self.kv.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
