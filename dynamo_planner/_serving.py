"""Serving a Prometheus registry over HTTP in a daemon thread, and stopping it.

Used by the planner's own metrics (:mod:`dynamo_planner.metrics`) and by the frontend
exporter (:mod:`dynamo_planner.sources.exporter`). ``prometheus_client`` is imported
when serving starts.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["RegistryServer"]


class RegistryServer:
    """``/metrics`` of one registry, served on demand.

    Args:
        registry: The ``prometheus_client.CollectorRegistry`` to expose.
        what: Names the server in the error raised when it is started twice.
    """

    def __init__(self, registry: Any, what: str) -> None:
        self._registry = registry
        self._what = what
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int | None:
        """The port served, or ``None`` when not serving."""
        return None if self._server is None else int(self._server.server_port)

    def start(self, port: int, addr: str) -> int:
        """Serve on ``addr:port`` (0: a free port) in a daemon thread; return the port.

        Raises:
            RuntimeError: It is already serving.
        """
        from prometheus_client import start_http_server

        if self._server is not None:
            msg = f"the {self._what} is already serving"
            raise RuntimeError(msg)
        self._server, self._thread = start_http_server(
            port, addr=addr, registry=self._registry
        )
        return int(self._server.server_port)

    def close(self) -> None:
        """Stop serving (a no-op when not serving)."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None
