"""Serving a registry's /metrics over HTTP."""

from __future__ import annotations

import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Counter

from dynamo_planner._serving import RegistryServer


def test_serves_stops_and_refuses_a_second_start() -> None:
    """It serves the registry on a free port, refuses to start twice, and stops."""
    registry = CollectorRegistry()
    Counter("widgets", "Widgets made", registry=registry).inc(3)
    server = RegistryServer(registry, "test server")
    assert server.port is None
    port = server.start(0, "127.0.0.1")
    try:
        assert server.port == port > 0
        body = urllib.request.urlopen(
            f"http://127.0.0.1:{port}/metrics", timeout=5
        ).read()
        assert b"widgets_total 3.0" in body
        with pytest.raises(RuntimeError, match="test server is already serving"):
            server.start(0, "127.0.0.1")
    finally:
        server.close()
    assert server.port is None
    server.close()  # stopping twice is harmless
    assert server.start(0, "127.0.0.1") > 0  # and it can serve again
    server.close()
