"""examples/virtual_orchestrator.py carries out a planner's decisions over a real etcd."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from dynamo_planner.connectors._etcd import EtcdKV
from dynamo_planner.connectors.virtual import VirtualConnector, VirtualConnectorClient
from dynamo_planner.testing.servers import EtcdServer
from dynamo_planner.values import ReplicaPlan

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "virtual_orchestrator.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("virtual_orchestrator", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class TestVirtualOrchestratorExample:
    async def test_applies_and_acknowledges_every_decision(
        self, etcd_server: EtcdServer
    ) -> None:
        """The example loop scales to each decision in turn and acknowledges it."""
        example = _load()
        scaled: list[tuple[int, int]] = []

        async def scale_to(prefill: int, decode: int) -> None:
            scaled.append((prefill, decode))

        connector = VirtualConnector(
            kv=EtcdKV(etcd_server.url), namespace="dynamo", model_name="m",
            check_interval_s=0.05, max_wait_s=10,
        )  # fmt: skip
        client = VirtualConnectorClient(etcd_server.url, "dynamo")
        loop = asyncio.create_task(
            example.orchestrate(client, scale_to, max_decisions=3, idle_timeout_s=10)
        )
        try:
            for prefill, decode in ((1, 2), (3, 4), (0, 0)):
                await connector.apply(
                    ReplicaPlan(prefill=prefill, decode=decode), blocking=True
                )
            done = await asyncio.wait_for(loop, timeout=20)
        finally:
            await connector.aclose()
            await client.aclose()
        assert scaled == [(1, 2), (3, 4), (0, 0)]
        assert [d.decision_id for d in done] == [0, 1, 2]

    def test_runs_as_a_script(self, etcd_server: EtcdServer) -> None:
        """The script runs from the command line and stops when idle."""

        async def decide() -> None:
            connector = VirtualConnector(
                kv=EtcdKV(etcd_server.url), namespace="dynamo", model_name="m"
            )
            await connector.apply(ReplicaPlan(prefill=2, decode=5))
            await connector.aclose()

        asyncio.run(decide())
        result = subprocess.run(
            [
                sys.executable,
                str(EXAMPLE),
                "--etcd",
                etcd_server.url,
                "--idle-timeout",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert "scaling to prefill=2 decode=5" in result.stdout
        assert "carried out 1 decision(s)" in result.stdout
