"""The built-in sources and connectors load through their entry points and fit the Protocols."""

from __future__ import annotations

import pytest

from dynamo_planner.connectors._etcd import EtcdKV
from dynamo_planner.plugins import default_registry
from dynamo_planner.protocols import Connector, MetricSource


class TestEntryPoints:
    @pytest.mark.parametrize(
        ("name", "options"),
        [
            ("prometheus", {"endpoint": "http://127.0.0.1:9", "model_name": "m"}),
            ("router", {"url": "http://127.0.0.1:9/metrics"}),
        ],
    )
    def test_sources(self, name: str, options: dict[str, object]) -> None:
        """Each metric source loads by name and is a MetricSource."""
        cls = default_registry().load("dynamo_planner.metric_sources", name)
        assert isinstance(cls(**options), MetricSource)

    @pytest.mark.parametrize("name", ["virtual", "kubernetes", "log"])
    def test_connectors(self, name: str) -> None:
        """Each connector loads by name and is a Connector."""
        cls = default_registry().load("dynamo_planner.connectors", name)
        options: dict[str, object] = {}
        if name == "virtual":
            options = {"kv": EtcdKV("http://127.0.0.1:9"), "model_name": "m"}
        elif name == "kubernetes":
            options = {"api": object(), "dgd_name": "d"}
        assert isinstance(cls(**options), Connector)
