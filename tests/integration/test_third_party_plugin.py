"""A third-party package adds a connector with nothing but an entry point.

The example package ``examples/custom_connector`` must be installed in the test
environment (the ``tests`` nox session installs it):

    python -m pip install --no-deps ./examples/custom_connector

The tests skip when it is not installed, and fail instead when the ``CI`` environment
variable is set, so CI cannot silently skip them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from dynamo_planner._compat import metadata
from dynamo_planner.config import PlannerConfig
from dynamo_planner.exceptions import ConnectorError
from dynamo_planner.plugins import PluginGroup, Registry
from dynamo_planner.protocols import Connector
from dynamo_planner.values import ReplicaPlan, ReplicaState

DISTRIBUTION = "dynamo-planner-example-connector"
NAME = "example_memory"
TARGET = "dynamo_planner_example_connector:MemoryConnector"
EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "custom_connector"
INSTALL = f"python -m pip install --no-deps {EXAMPLE_DIR}"


@pytest.fixture(name="example_dist", scope="module")
def _example_dist() -> metadata.Distribution:
    """The installed example distribution (skip, or fail on CI, when it is missing)."""
    try:
        return metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        reason = f"{DISTRIBUTION} is not installed; install it with: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(name="connector_class")
def _connector_class(example_dist: metadata.Distribution) -> Any:
    """The example connector class, loaded through a fresh registry's entry points."""
    return Registry().load(PluginGroup.CONNECTORS, NAME)


class TestThirdPartyEntryPoint:
    """The installed example is found and loaded through real entry points."""

    def test_distribution_declares_entry_point(
        self, example_dist: metadata.Distribution
    ) -> None:
        """The installed metadata carries the connector entry point."""
        entries = [
            e for e in example_dist.entry_points if e.group == PluginGroup.CONNECTORS
        ]
        assert [(NAME, TARGET)] == [(e.name, e.value) for e in entries]

    def test_listed_with_builtins(self, example_dist: metadata.Distribution) -> None:
        """The registry lists it beside the built-in connectors."""
        names = Registry().available(PluginGroup.CONNECTORS)
        assert {NAME, "kubernetes", "log", "virtual"} <= set(names)

    def test_loads_the_class(self, connector_class: Any) -> None:
        """Loading by name returns the package's class."""
        assert "MemoryConnector" == connector_class.__name__
        assert "dynamo_planner_example_connector" == connector_class.__module__

    def test_selected_by_config(self, example_dist: metadata.Distribution) -> None:
        """connector = "example_memory" in a config selects it."""
        config = PlannerConfig.from_mapping({"connector": NAME})
        cls = Registry().load(PluginGroup.CONNECTORS, config.connector_name)
        assert isinstance(cls.from_config(config), Connector)

    def test_listing_does_not_import(self, example_dist: metadata.Distribution) -> None:
        """Listing connectors in a fresh interpreter does not import the package."""
        code = textwrap.dedent(
            f"""
            import sys
            from dynamo_planner.plugins import default_registry
            assert {NAME!r} in default_registry().available("connectors")
            print("dynamo_planner_example_connector" in sys.modules)
            """
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert "False" == result.stdout.strip()


class TestExampleConnector:
    """The example connector keeps replicas in memory and records plans."""

    async def test_starts_at_min_endpoint(self, connector_class: Any) -> None:
        """Built from a config, it starts at min_endpoint replicas."""
        connector = connector_class.from_config(PlannerConfig(min_endpoint=2))
        assert ReplicaState(prefill=2, decode=2) == await connector.current()

    async def test_apply_records_and_changes_state(self, connector_class: Any) -> None:
        """Applied plans are recorded, and components left as None keep their count."""
        connector = connector_class.from_config(
            PlannerConfig(), initial=ReplicaState(prefill=1, decode=3)
        )
        first = ReplicaPlan(prefill=4, decode=2, reasons=("scale",))
        second = ReplicaPlan(prefill=None, decode=5)
        await connector.apply(first)
        await connector.apply(second, blocking=True)
        assert [first, second] == connector.applied
        assert ReplicaState(prefill=4, decode=5) == await connector.current()

    async def test_closed_connector_refuses(self, connector_class: Any) -> None:
        """After aclose, the connector raises ConnectorError naming itself."""
        connector = connector_class.from_config(PlannerConfig())
        await connector.aclose()
        with pytest.raises(ConnectorError, match=NAME):
            await connector.current()
        with pytest.raises(ConnectorError):
            await connector.apply(ReplicaPlan(prefill=1, decode=1))
