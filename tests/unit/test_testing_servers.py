"""Helpers the integration tests start their servers with."""

from __future__ import annotations

import socket

from dynamo_planner.testing.servers import free_port, free_ports


def test_free_ports_are_distinct_and_free() -> None:
    """Ports chosen together never repeat (a client and a peer listener of one etcd),
    and each can be bound once chosen."""
    for _ in range(50):
        ports = free_ports(3)
        assert len(set(ports)) == 3
    for port in [*free_ports(2), free_port()]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))
