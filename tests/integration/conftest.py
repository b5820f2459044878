"""Fixtures that start real Prometheus and etcd servers on free loopback ports."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from dynamo_planner.testing.servers import (
    ETCD_BIN,
    PROMETHEUS_BIN,
    EtcdServer,
    PrometheusServer,
    find_binary,
)


def require_binary(path: str, package: str) -> str:
    """The binary's path; skip the test when it is missing (fail when env CI is set)."""
    found = find_binary(path)
    if found:
        return found
    reason = (
        f"{path} is not installed (Debian package {package!r}; .ci/run installs it)"
    )
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(name="etcd_server")
def _etcd_server(tmp_path: Path) -> Iterator[EtcdServer]:
    """A running etcd in a temporary directory, stopped after the test."""
    binary = require_binary(ETCD_BIN, "etcd-server")
    workdir = tmp_path / "etcd"
    workdir.mkdir()
    server = EtcdServer(workdir, binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(name="start_prometheus")
def _start_prometheus(
    tmp_path: Path,
) -> Iterator[Callable[[Sequence[str]], PrometheusServer]]:
    """A factory starting Prometheus scraping the given targets every second."""
    binary = require_binary(PROMETHEUS_BIN, "prometheus")
    servers: list[PrometheusServer] = []

    def start(targets: Sequence[str]) -> PrometheusServer:
        workdir = tmp_path / f"prometheus{len(servers)}"
        workdir.mkdir()
        server = PrometheusServer(workdir, binary, targets, scrape_interval_s=1.0)
        servers.append(server)
        server.start()
        return server

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
