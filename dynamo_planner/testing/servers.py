"""Real Prometheus and etcd servers on loopback ports, for integration tests.

Each server runs in its own directory and can be stopped and started again on the same
ports with the same data (for fault tests). The binaries come from the Debian packages
``prometheus`` and ``etcd-server``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "ETCD_BIN",
    "PROMETHEUS_BIN",
    "EtcdServer",
    "PrometheusServer",
    "Server",
    "find_binary",
    "free_port",
    "free_ports",
]

PROMETHEUS_BIN = "/usr/bin/prometheus"
"""Where Debian's ``prometheus`` package installs the server."""
ETCD_BIN = "/usr/bin/etcd"
"""Where Debian's ``etcd-server`` package installs the server."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now.

    The sockets are held open together while the ports are chosen, so two calls in a row
    cannot hand the same port to a server's client and peer listeners.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(
                socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            )
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def find_binary(path: str) -> str | None:
    """``path`` if it is executable, else the same name on ``PATH``, else ``None``."""
    if os.access(path, os.X_OK):
        return path
    return shutil.which(Path(path).name)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class Server:
    """A child process with a readiness URL."""

    name = "server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{self.name}.log"

    def command(self) -> list[str]:
        """The command line that runs the server."""
        raise NotImplementedError

    @property
    def ready_url(self) -> str:
        """A URL that answers 200 once the server is ready."""
        raise NotImplementedError

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the process and wait until it answers its readiness URL."""
        if self.process is not None:
            return
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(  # noqa: S603 (our own fixed command line)
            self.command(), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                self.process = None
                msg = f"{self.name} exited at start:\n{tail}"
                raise RuntimeError(msg)
            if _http_ok(self.ready_url):
                return
            time.sleep(0.1)
        self.stop()
        msg = f"{self.name} not ready after {timeout_s} s"
        raise RuntimeError(msg)

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and wait for it."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        """Stop and start again on the same ports with the same data."""
        self.stop()
        self.start()


class PrometheusServer(Server):
    """Prometheus scraping the given targets every ``scrape_interval_s``."""

    name = "prometheus"

    def __init__(
        self,
        workdir: Path,
        binary: str,
        targets: Sequence[str] = (),
        scrape_interval_s: float = 1.0,
    ) -> None:
        super().__init__(workdir)
        self.binary = binary
        self.port = free_port()
        self.scrape_interval_s = scrape_interval_s
        self.set_targets(targets)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ready_url(self) -> str:
        """The readiness URL."""
        return f"{self.url}/-/ready"

    def set_targets(self, targets: Sequence[str]) -> None:
        """Write the scrape configuration (takes effect at the next start)."""
        interval = f"{round(self.scrape_interval_s * 1000)}ms"
        quoted = ", ".join(f"'{t}'" for t in targets)
        (self.workdir / "prometheus.yml").write_text(
            "global:\n"
            f"  scrape_interval: {interval}\n"
            f"  evaluation_interval: {interval}\n"
            "scrape_configs:\n"
            "  - job_name: frontend\n"
            f"    scrape_interval: {interval}\n"
            f"    scrape_timeout: {interval}\n"
            f"    static_configs:\n      - targets: [{quoted}]\n"
        )

    def command(self) -> list[str]:
        """The server's command line."""
        return [
            self.binary,
            f"--config.file={self.workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]

    def wait_for(self, promql: str, timeout_s: float = 20.0) -> list[dict[str, object]]:
        """Poll a query until it returns at least one series; return them."""
        import json
        import urllib.parse

        deadline = time.monotonic() + timeout_s
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                    result = json.load(response)["data"]["result"]
                if result:
                    return list(result)
            except (urllib.error.URLError, OSError, KeyError):
                pass
            time.sleep(0.2)
        msg = f"no series for {promql!r} after {timeout_s} s"
        raise AssertionError(msg)


class EtcdServer(Server):
    """A single-member etcd on loopback."""

    name = "etcd"

    def __init__(self, workdir: Path, binary: str) -> None:
        super().__init__(workdir)
        self.binary = binary
        self.port, self.peer_port = free_ports(2)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ready_url(self) -> str:
        """The readiness URL."""
        return f"{self.url}/health"

    def command(self) -> list[str]:
        """The server's command line."""
        peer = f"http://127.0.0.1:{self.peer_port}"
        return [
            self.binary,
            "--name=test",
            f"--data-dir={self.workdir / 'data'}",
            f"--listen-client-urls={self.url}",
            f"--advertise-client-urls={self.url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=test={peer}",
            "--log-level=warn",
            "--logger=zap",
        ]
