"""An HTTP server implementing the DynamoGraphDeployment endpoints the connector uses.

No Kubernetes API server can run on the project's machines, so the Kubernetes connector is
tested with the official ``kubernetes`` client against this server. It implements:

* ``GET`` and JSON merge-patch (``PATCH``, ``application/merge-patch+json``) of
  ``/apis/nvidia.com/v1alpha1/namespaces/{ns}/dynamographdeployments/{name}``;
* ``GET`` and ``PATCH`` of the scale subresource
  ``…/dynamographdeploymentscalingadapters/{dgd}-{service}/scale``, which (like the
  adapter's controller) sets ``spec.services.<service>.replicas`` of the DGD;
* injectable answers (404, 409, 500, ...) for the next matching requests, optionally after
  applying the change anyway (a lost answer).

Every request is recorded in :attr:`FakeKubeServer.requests`, and every change of a
service's replicas in :attr:`FakeKubeServer.changes`.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

__all__ = ["FakeKubeServer", "Fault", "merge_patch"]

_DGD = re.compile(
    r"^/apis/nvidia\.com/v1alpha1/namespaces/(?P<ns>[^/]+)/dynamographdeployments/"
    r"(?P<name>[^/?]+)$"
)
_SCALE = re.compile(
    r"^/apis/nvidia\.com/v1alpha1/namespaces/(?P<ns>[^/]+)/"
    r"dynamographdeploymentscalingadapters/(?P<name>[^/?]+)/scale$"
)


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch (``null`` deletes a key)."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


@attrs.define
class Fault:
    """An injected answer.

    Attributes:
        method: The HTTP method it applies to.
        path_contains: A substring of the request path it applies to.
        status: The HTTP status to answer.
        apply_anyway: Make the change before answering the error (the answer is lost).
    """

    method: str
    path_contains: str
    status: int
    apply_anyway: bool = False


@attrs.define(kw_only=True)
class Request:
    """One request received.

    Attributes:
        method: The HTTP method.
        path: The path.
        content_type: The ``Content-Type`` header.
        body: The decoded JSON body, if any.
        status: The status answered.
    """

    method: str
    path: str
    content_type: str | None
    body: Any
    status: int


class FakeKubeServer:
    """A tiny API server holding DGDs, served on ``127.0.0.1`` in a daemon thread.

    Args:
        scale_adapters: Serve the scaling adapters' scale subresource; without them the
            adapter paths answer 404 (an older operator).
    """

    def __init__(self, *, scale_adapters: bool = True) -> None:
        self.scale_adapters = scale_adapters
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.faults: list[Fault] = []
        self.requests: list[Request] = []
        self.changes: list[tuple[str, int]] = []
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeKubeServer:
        """Start serving."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def put_dgd(self, namespace: str, dgd: Mapping[str, Any]) -> None:
        """Store (or replace) a DGD."""
        with self.lock:
            name = dgd["metadata"]["name"]
            self.objects[namespace, name] = copy.deepcopy(dict(dgd))

    def dgd(self, namespace: str, name: str) -> dict[str, Any]:
        """A copy of a stored DGD."""
        with self.lock:
            return copy.deepcopy(self.objects[namespace, name])

    def inject(self, *faults: Fault) -> None:
        """Answer the next matching requests with these faults (each used once)."""
        with self.lock:
            self.faults.extend(faults)

    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method == method and fault.path_contains in path:
                    self.faults.remove(fault)
                    return fault
        return None

    def _set_replicas(self, dgd: dict[str, Any], service: str, replicas: int) -> None:
        spec = (
            dgd.setdefault("spec", {})
            .setdefault("services", {})
            .setdefault(service, {})
        )
        if spec.get("replicas") != replicas:
            self.changes.append((service, replicas))
        spec["replicas"] = replicas

    def _adapter(self, namespace: str, name: str) -> tuple[dict[str, Any], str] | None:
        for (ns, dgd_name), dgd in self.objects.items():
            if ns != namespace:
                continue
            for service in (dgd.get("spec") or {}).get("services") or {}:
                if f"{dgd_name}-{service.lower()}" == name:
                    return dgd, service
        return None

    def handle(
        self, method: str, path: str, content_type: str | None, body: Any
    ) -> tuple[int, Any]:
        """Answer one request (status, JSON body)."""
        fault = self._fault_for(method, path)
        if fault is not None and not fault.apply_anyway:
            return fault.status, _status(fault.status, "injected")
        status, answer = self._route(method, path, content_type, body)
        if fault is not None:
            return fault.status, _status(fault.status, "injected after applying")
        return status, answer

    def _route(
        self, method: str, path: str, content_type: str | None, body: Any
    ) -> tuple[int, Any]:
        with self.lock:
            match = _DGD.match(path)
            if match:
                key = (match["ns"], match["name"])
                if key not in self.objects:
                    return 404, _status(
                        404, f"dynamographdeployments {key[1]} not found"
                    )
                dgd = self.objects[key]
                if method == "GET":
                    return 200, copy.deepcopy(dgd)
                if method == "PATCH":
                    if content_type != "application/merge-patch+json":
                        return 415, _status(
                            415, f"unsupported patch type {content_type}"
                        )
                    before = copy.deepcopy(dgd)
                    patched = merge_patch(dgd, body)
                    services = (patched.get("spec") or {}).get("services") or {}
                    old = (before.get("spec") or {}).get("services") or {}
                    for service, spec in services.items():
                        new = (spec or {}).get("replicas")
                        if (
                            new is not None
                            and (old.get(service) or {}).get("replicas") != new
                        ):
                            self.changes.append((service, int(new)))
                    self.objects[key] = patched
                    return 200, copy.deepcopy(patched)
                return 405, _status(405, "method not allowed")
            match = _SCALE.match(path)
            if match:
                found = (
                    self._adapter(match["ns"], match["name"])
                    if self.scale_adapters
                    else None
                )
                if found is None:
                    return 404, _status(
                        404, f"scaling adapter {match['name']} not found"
                    )
                dgd, service = found
                if method == "PATCH":
                    replicas = ((body or {}).get("spec") or {}).get("replicas")
                    if not isinstance(replicas, int):
                        return 422, _status(422, "spec.replicas must be an integer")
                    self._set_replicas(dgd, service, replicas)
                elif method != "GET":
                    return 405, _status(405, "method not allowed")
                replicas = dgd["spec"]["services"][service].get("replicas", 0)
                return 200, {
                    "apiVersion": "autoscaling/v1",
                    "kind": "Scale",
                    "metadata": {"name": match["name"], "namespace": match["ns"]},
                    "spec": {"replicas": replicas},
                    "status": {"replicas": replicas},
                }
            return 404, _status(404, f"no route for {path}")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                path = self.path.split("?", 1)[0]
                content_type = self.headers.get("Content-Type")
                status, answer = server.handle(self.command, path, content_type, body)
                with server.lock:
                    server.requests.append(
                        Request(
                            method=self.command,
                            path=path,
                            content_type=content_type,
                            body=body,
                            status=status,
                        )
                    )
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _serve
            do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        return Handler


def _status(code: int, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "code": code,
    }
