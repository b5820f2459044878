"""The virtual connector's decision handshake over a real etcd (spec §6.1, §11.9)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence

import pytest
from etcd3gw.client import Etcd3Client

from dynamo_planner.connectors._etcd import Compare, EtcdKV
from dynamo_planner.connectors.virtual import (
    PlannerDecision,
    ScalingDeferredError,
    VirtualConnector,
    VirtualConnectorClient,
)
from dynamo_planner.exceptions import ConfigError, ConnectorError
from dynamo_planner.testing.fakes import ManualClock
from dynamo_planner.testing.servers import EtcdServer
from dynamo_planner.values import ReplicaPlan, ReplicaState

pytestmark = pytest.mark.integration

NS = "test-ns"


def _plan(prefill: int | None, decode: int | None) -> ReplicaPlan:
    return ReplicaPlan(prefill=prefill, decode=decode)


@pytest.fixture(name="clock")
def _clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(name="connector")
async def _connector(
    etcd_server: EtcdServer, clock: ManualClock
) -> AsyncIterator[VirtualConnector]:
    connector = VirtualConnector(
        kv=EtcdKV(etcd_server.url), namespace=NS, model_name="MyModel", clock=clock
    )
    yield connector
    await connector.aclose()


@pytest.fixture(name="client")
async def _client(etcd_server: EtcdServer) -> AsyncIterator[VirtualConnectorClient]:
    client = VirtualConnectorClient(etcd_server.url, NS)
    yield client
    await client.aclose()


class TestHandshake:
    async def test_reference_sequence(
        self, connector: VirtualConnector, client: VirtualConnectorClient
    ) -> None:
        """(1,2) is decision 0; (5,8) unblocks wait() as decision 1; (0,0) is legal."""
        await connector.apply(_plan(1, 2))
        first = await client.get()
        assert first == PlannerDecision(
            num_prefill_workers=1, num_decode_workers=2, decision_id=0
        )
        await client.complete(first)

        waiter = asyncio.create_task(client.wait(timeout_s=10))
        await asyncio.sleep(0.3)
        assert not waiter.done()
        await connector.apply(_plan(5, 8))
        assert await waiter is True
        second = await client.get()
        assert second == PlannerDecision(
            num_prefill_workers=5, num_decode_workers=8, decision_id=1
        )
        await client.complete(second)

        await connector.apply(_plan(0, 0))
        third = await client.get()
        assert (third.num_prefill_workers, third.num_decode_workers) == (0, 0)
        assert third.decision_id == 2

    async def test_identical_counts_issue_no_new_id(
        self, connector: VirtualConnector, client: VirtualConnectorClient
    ) -> None:
        """Setting the counts already decided writes nothing."""
        await connector.apply(_plan(2, 3))
        await client.complete(await client.get())
        assert await connector.update_scaling_decision(2, 3) is None
        assert await connector.update_scaling_decision(None, 3) is None
        assert (await client.get()).decision_id == 0

    async def test_absent_component_keeps_its_value(
        self, connector: VirtualConnector, client: VirtualConnectorClient
    ) -> None:
        """A plan that leaves decode as it is changes prefill only."""
        await connector.apply(_plan(2, 3))
        await client.complete(await client.get())
        await connector.apply(_plan(4, None))
        decision = await client.get()
        assert (decision.num_prefill_workers, decision.num_decode_workers) == (4, 3)
        assert decision.decision_id == 1
        assert await connector.current() == ReplicaState(prefill=4, decode=3)

    async def test_decision_written_in_one_transaction(
        self, connector: VirtualConnector, etcd_server: EtcdServer
    ) -> None:
        """The counts and the id of a decision share one etcd revision."""
        await connector.apply(_plan(1, 2))
        raw = Etcd3Client(host="127.0.0.1", port=etcd_server.port, api_path="/v3/")
        try:
            items = raw.get_prefix(f"v1/{NS}/planner/")
        finally:
            raw.session.close()
        revisions = {meta["mod_revision"] for _, meta in items}
        assert len(items) == 3
        assert len(revisions) == 1

    async def test_model_name_required(self, etcd_server: EtcdServer) -> None:
        """Construction without a model name fails, naming the field."""
        kv = EtcdKV(etcd_server.url)
        with pytest.raises(ConfigError, match="model_name"):
            VirtualConnector(kv=kv, namespace=NS, model_name="")
        await kv.aclose()


class TestReadinessGate:
    async def test_unacknowledged_decision_holds_back_the_next(
        self,
        connector: VirtualConnector,
        client: VirtualConnectorClient,
        clock: ManualClock,
    ) -> None:
        """Until 1800 s after the first skip, new decisions are dropped; then they pass."""
        await connector.apply(_plan(1, 1))
        with pytest.raises(ScalingDeferredError):
            await connector.apply(_plan(2, 2))
        clock.advance(1799)
        with pytest.raises(ScalingDeferredError):
            await connector.apply(_plan(3, 3))
        assert (await client.get()).decision_id == 0
        clock.advance(1)
        await connector.apply(_plan(4, 4))
        decision = await client.get()
        assert decision == PlannerDecision(
            num_prefill_workers=4, num_decode_workers=4, decision_id=1
        )

    async def test_acknowledgement_opens_the_gate(
        self, connector: VirtualConnector, client: VirtualConnectorClient
    ) -> None:
        """Once the orchestrator completes, the next decision goes through at once."""
        await connector.apply(_plan(1, 1))
        with pytest.raises(ScalingDeferredError):
            await connector.apply(_plan(2, 2))
        await client.complete(await client.get())
        await connector.apply(_plan(2, 2))
        assert (await client.get()).decision_id == 1


class TestBlockingWait:
    async def test_sleeps_on_every_retry_when_ack_is_stale(
        self,
        connector: VirtualConnector,
        client: VirtualConnectorClient,
        clock: ManualClock,
    ) -> None:
        """A stale scaled_decision_id does not make the wait busy-poll and give up early."""
        connector.max_wait_s = 50
        connector.check_interval_s = 10
        await connector.apply(_plan(1, 1))
        await client.complete(await client.get())
        await connector.apply(_plan(2, 2))  # decision 1; scaled_decision_id stays 0
        assert await connector.wait_for_scaling_completion() is False
        assert clock.sleeps == [10, 10, 10, 10, 10]

    async def test_returns_when_acknowledged(
        self,
        connector: VirtualConnector,
        client: VirtualConnectorClient,
        clock: ManualClock,
    ) -> None:
        """A blocking apply returns once the orchestrator acknowledges."""
        await connector.apply(_plan(1, 1))
        await client.complete(await client.get())
        assert await connector.wait_for_scaling_completion() is True
        assert clock.sleeps == []


class TestRestart:
    async def test_new_connector_resumes_ids_from_etcd(
        self, etcd_server: EtcdServer, client: VirtualConnectorClient
    ) -> None:
        """A restarted planner carries on from the decision ids stored in etcd."""
        first = VirtualConnector(
            kv=EtcdKV(etcd_server.url), namespace=NS, model_name="m"
        )
        await first.apply(_plan(1, 2))
        await client.complete(await client.get())
        await first.aclose()
        second = VirtualConnector(
            kv=EtcdKV(etcd_server.url), namespace=NS, model_name="m"
        )
        try:
            assert await second.current() == ReplicaState(prefill=1, decode=2)
            await second.apply(_plan(1, 2))
            assert (await client.get()).decision_id == 0
            await second.apply(_plan(3, 2))
            assert (await client.get()).decision_id == 1
        finally:
            await second.aclose()


class _LosingKV(EtcdKV):
    """Commits the first transaction, then loses its answer (raises)."""

    lost = False

    async def put_if(
        self, puts: Mapping[str, str], compares: Sequence[Compare] = ()
    ) -> tuple[bool, int]:
        result = await super().put_if(puts, compares)
        if not self.lost:
            self.lost = True
            raise ConnectorError("answer lost", connector="etcd")
        return result


class TestNoDuplicateDecision:
    async def test_retry_after_lost_answer_writes_nothing_twice(
        self, etcd_server: EtcdServer, client: VirtualConnectorClient
    ) -> None:
        """When a write's answer is lost, the retry sees the decision and adds no id."""
        connector = VirtualConnector(
            kv=_LosingKV(etcd_server.url), namespace=NS, model_name="m"
        )
        try:
            with pytest.raises(ConnectorError):
                await connector.apply(_plan(1, 2))
            await connector.apply(_plan(1, 2))
        finally:
            await connector.aclose()
        assert (await client.get()).decision_id == 0

    async def test_guard_rejects_stale_state(self, etcd_server: EtcdServer) -> None:
        """A transaction guarded on an old decision_id writes nothing."""
        kv = EtcdKV(etcd_server.url)
        try:
            ok, _ = await kv.put_if({"k": "1"}, [Compare("k", None)])
            assert ok
            ok, _ = await kv.put_if({"k": "2"}, [Compare("k", None)])
            assert not ok
            ok, _ = await kv.put_if({"k": "2"}, [Compare("k", "1")])
            assert ok
            values, _ = await kv.get_prefix("k")
            assert values == {"k": "2"}
        finally:
            await kv.aclose()


class TestClientWait:
    async def test_times_out_without_change(
        self, client: VirtualConnectorClient
    ) -> None:
        """wait() returns False when nothing changes before the timeout."""
        await client.get()
        assert await client.wait(timeout_s=0.5) is False

    async def test_change_before_wait_is_not_missed(
        self, connector: VirtualConnector, client: VirtualConnectorClient
    ) -> None:
        """A decision written between get() and wait() makes wait() return at once."""
        await client.get()
        await connector.apply(_plan(1, 1))
        assert await client.wait(timeout_s=5) is True

    async def test_own_acknowledgement_is_not_a_change(
        self, connector: VirtualConnector, client: VirtualConnectorClient
    ) -> None:
        """complete() does not wake the orchestrator's own wait()."""
        await connector.apply(_plan(1, 1))
        await client.complete(await client.get())
        assert await client.wait(timeout_s=0.5) is False
