"""GPU-count initialisation (spec §11.10) and the log connector."""

from __future__ import annotations

import logging

import pytest

from dynamo_planner.connectors.gpus import resolve_gpu_counts
from dynamo_planner.connectors.log import LogConnector
from dynamo_planner.exceptions import DeploymentValidationError
from dynamo_planner.values import ReplicaPlan, ReplicaState


class _Discovering:
    def __init__(self, counts: tuple[int | None, int | None] | None) -> None:
        self.counts = counts

    async def gpus_per_engine(self) -> tuple[int | None, int | None]:
        if self.counts is None:
            raise RuntimeError("API down")
        return self.counts


class _Virtual:
    """A connector without GPU discovery."""


class TestResolveGpuCounts:
    async def test_connector_overrides_flags(self) -> None:
        """The connector reporting (2, 4) overwrites the flags."""
        got = await resolve_gpu_counts(
            mode="disagg", prefill_flag=1, decode_flag=1, connector=_Discovering((2, 4))
        )
        assert got == (2, 4)

    async def test_prefill_mode_with_decode_zero(self) -> None:
        """Prefill-only with the connector reporting (2, 0) gives (2, 0)."""
        got = await resolve_gpu_counts(
            mode="prefill",
            prefill_flag=None,
            decode_flag=None,
            connector=_Discovering((2, 0)),
        )
        assert got == (2, 0)

    async def test_virtual_keeps_flags(self) -> None:
        """A connector without GPU discovery keeps the flags (2, 4)."""
        got = await resolve_gpu_counts(
            mode="disagg", prefill_flag=2, decode_flag=4, connector=_Virtual()
        )
        assert got == (2, 4)

    @pytest.mark.parametrize(
        ("prefill", "decode", "needle"),
        [
            (None, 4, "prefill-engine-num-gpu"),
            (2, None, "decode-engine-num-gpu"),
        ],
    )
    async def test_virtual_missing_flag(
        self, prefill: int | None, decode: int | None, needle: str
    ) -> None:
        """A missing flag in the virtual environment names the flag."""
        with pytest.raises(DeploymentValidationError, match=needle):
            await resolve_gpu_counts(
                mode="disagg",
                prefill_flag=prefill,
                decode_flag=decode,
                connector=_Virtual(),
            )

    async def test_both_missing_is_two_errors(self) -> None:
        """Both flags missing report two errors."""
        with pytest.raises(DeploymentValidationError, match="2 error") as info:
            await resolve_gpu_counts(
                mode="disagg", prefill_flag=None, decode_flag=None, connector=_Virtual()
            )
        assert "prefill-engine-num-gpu" in str(info.value)
        assert "decode-engine-num-gpu" in str(info.value)

    async def test_decode_only_needs_no_prefill_flag(self) -> None:
        """Decode-only mode with the prefill flag missing is fine."""
        got = await resolve_gpu_counts(
            mode="decode", prefill_flag=None, decode_flag=4, connector=_Virtual()
        )
        assert got == (None, 4)

    async def test_failing_discovery_falls_back(self) -> None:
        """A Kubernetes connector that raises falls back to the flags (2, 4)."""
        got = await resolve_gpu_counts(
            mode="disagg", prefill_flag=2, decode_flag=4, connector=_Discovering(None)
        )
        assert got == (2, 4)

    async def test_failing_discovery_without_flags(self) -> None:
        """Failing discovery and no flags give two errors; only decode missing names it."""
        with pytest.raises(DeploymentValidationError, match="2 error"):
            await resolve_gpu_counts(
                mode="disagg",
                prefill_flag=None,
                decode_flag=None,
                connector=_Discovering(None),
            )
        with pytest.raises(DeploymentValidationError, match="decode") as info:
            await resolve_gpu_counts(
                mode="disagg",
                prefill_flag=2,
                decode_flag=None,
                connector=_Discovering(None),
            )
        assert "prefill-engine" not in str(info.value)

    async def test_dry_run_defaults_to_one(self) -> None:
        """Dry runs set missing counts to 1 and keep given ones."""
        assert await resolve_gpu_counts(
            mode="disagg", prefill_flag=None, decode_flag=None, dry_run=True
        ) == (1, 1)
        assert await resolve_gpu_counts(
            mode="disagg", prefill_flag=2, decode_flag=None, dry_run=True
        ) == (2, 1)


class TestLogConnector:
    async def test_records_and_follows_advice(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Plans are recorded and logged; current() reports the advised target."""
        connector = LogConnector(initial=ReplicaState(prefill=1, decode=1))
        assert await connector.current() == ReplicaState(prefill=1, decode=1)
        with caplog.at_level(logging.INFO, logger="dynamo_planner.connectors.log"):
            await connector.apply(ReplicaPlan(prefill=3, decode=None, reasons=("why",)))
        assert await connector.current() == ReplicaState(prefill=3, decode=1)
        assert len(connector.plans) == 1
        assert '"prefill_replicas": 3' in caplog.text
        assert "not applied" in caplog.text

    async def test_keeps_bounded_history(self) -> None:
        """Only the last max_records plans are kept."""
        connector = LogConnector(max_records=2)
        for n in range(5):
            await connector.apply(ReplicaPlan(prefill=n, decode=n))
        assert [p.prefill for p in connector.plans] == [3, 4]
