"""A small async key-value layer over etcd's v3 HTTP/JSON gateway (``etcd3gw``).

Only what the virtual connector needs: read a prefix with its revision, put, a compare-and-
put transaction, and wait for a change under a prefix. Blocking calls run in a worker thread;
a connection failure tries the next endpoint, then raises
:class:`~dynamo_planner.exceptions.ConnectorError`.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import requests
from etcd3gw.client import Etcd3Client
from etcd3gw.exceptions import Etcd3Exception

from dynamo_planner.exceptions import ConnectorError

__all__ = ["Compare", "EtcdKV", "parse_endpoints"]

logger = logging.getLogger(__name__)


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode("ascii")


def _unb64(data: str) -> bytes:
    return base64.b64decode(data.encode("ascii"))


def _prefix_end(prefix: str) -> str:
    raw = bytearray(prefix.encode())
    raw[-1] += 1
    return bytes(raw).decode()


def parse_endpoints(endpoints: str | Sequence[str]) -> tuple[str, ...]:
    """Split a comma-separated list of etcd URLs (``ETCD_ENDPOINTS``).

    Raises:
        ValueError: No endpoint, or one that is not ``http(s)://host:port``.
    """
    items = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
    urls = tuple(item.strip() for item in items if item.strip())
    if not urls:
        msg = "no etcd endpoint given"
        raise ValueError(msg)
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            msg = f"etcd endpoint {url!r} is not an http(s)://host:port URL"
            raise ValueError(msg)
    return urls


@attrs.frozen
class Compare:
    """A transaction guard on one key.

    Attributes:
        key: The key.
        value: The value it must hold, or ``None`` for "the key must not exist".
    """

    key: str
    value: str | None

    def to_json(self) -> dict[str, Any]:
        """The gateway's JSON form."""
        if self.value is None:
            return {
                "key": _b64(self.key),
                "result": "EQUAL",
                "target": "CREATE",
                "create_revision": "0",
            }
        return {
            "key": _b64(self.key),
            "result": "EQUAL",
            "target": "VALUE",
            "value": _b64(self.value),
        }


_FAILURES = (Etcd3Exception, requests.exceptions.RequestException, OSError, ValueError)


def deadline_left(deadline: float | None) -> float:
    """Seconds until ``deadline`` (monotonic), or an hour when there is none."""
    return 3600.0 if deadline is None else deadline - time.monotonic()


class EtcdKV:
    """Async access to an etcd cluster through its HTTP/JSON gateway.

    Args:
        endpoints: etcd client URLs, comma-separated or a sequence.
        timeout_s: Timeout of one request.
    """

    def __init__(
        self, endpoints: str | Sequence[str], *, timeout_s: float = 5.0
    ) -> None:
        self.endpoints = parse_endpoints(endpoints)
        self.timeout_s = timeout_s
        self._index = 0
        self._clients = [self._client(url) for url in self.endpoints]

    def _client(self, url: str) -> Etcd3Client:
        parts = urllib.parse.urlsplit(url)
        port = parts.port or 2379
        return Etcd3Client(
            host=parts.hostname or "127.0.0.1",
            port=port,
            protocol=parts.scheme,
            timeout=self.timeout_s,
            api_path="/v3/",
        )

    def _call(self, path: str, payload: Mapping[str, Any]) -> Any:
        """POST to the first endpoint that answers (blocking)."""
        errors = []
        for offset in range(len(self._clients)):
            index = (self._index + offset) % len(self._clients)
            client = self._clients[index]
            try:
                answer = client.post(client.get_url(path), json=dict(payload))
            except _FAILURES as exc:
                errors.append(f"{self.endpoints[index]}: {type(exc).__name__}: {exc}")
                continue
            self._index = index
            return answer
        raise ConnectorError(
            f"etcd request {path} failed: {'; '.join(errors)}", connector="etcd"
        )

    async def _acall(self, path: str, payload: Mapping[str, Any]) -> Any:
        return await asyncio.to_thread(self._call, path, payload)

    async def get_prefix(self, prefix: str) -> tuple[dict[str, str], int]:
        """Every key under ``prefix`` with its value, and the store's revision.

        Raises:
            ConnectorError: etcd could not be reached.
        """
        answer = await self._acall(
            "/kv/range", {"key": _b64(prefix), "range_end": _b64(_prefix_end(prefix))}
        )
        values = {}
        for kv in answer.get("kvs", []):
            key = _unb64(kv["key"]).decode(errors="replace")
            values[key] = _unb64(kv.get("value", "")).decode(errors="replace")
        return values, int(answer.get("header", {}).get("revision", 0))

    async def put(self, key: str, value: str) -> int:
        """Write one key; returns the new revision.

        Raises:
            ConnectorError: etcd could not be reached.
        """
        answer = await self._acall("/kv/put", {"key": _b64(key), "value": _b64(value)})
        return int(answer.get("header", {}).get("revision", 0))

    async def put_if(
        self, puts: Mapping[str, str], compares: Sequence[Compare] = ()
    ) -> tuple[bool, int]:
        """Write several keys in one transaction, if every guard holds.

        Returns:
            Whether the guards held (and the keys were written), and the revision.

        Raises:
            ConnectorError: etcd could not be reached.
        """
        payload = {
            "compare": [c.to_json() for c in compares],
            "success": [
                {"request_put": {"key": _b64(k), "value": _b64(v)}}
                for k, v in puts.items()
            ],
            "failure": [],
        }
        answer = await self._acall("/kv/txn", payload)
        revision = int(answer.get("header", {}).get("revision", 0))
        return bool(answer.get("succeeded", False)), revision

    async def _watch_once(
        self,
        prefix: str,
        start_revision: int,
        timeout_s: float,
        ignore_keys: frozenset[str],
    ) -> int | None:
        """The revision of the first relevant event from ``start_revision``, or None.

        Streams the gateway's ``/v3/watch`` (etcd3gw's threaded watch does not deliver
        events with current urllib3, so this one is async over httpx).
        """
        import httpx

        url = self.endpoints[self._index].rstrip("/") + "/v3/watch"
        body = {
            "create_request": {
                "key": _b64(prefix),
                "range_end": _b64(_prefix_end(prefix)),
                "start_revision": str(start_revision),
            }
        }
        timeout = httpx.Timeout(self.timeout_s, read=None)
        try:
            async with (
                asyncio.timeout(timeout_s),
                httpx.AsyncClient(timeout=timeout) as client,
                client.stream("POST", url, json=body) as response,
            ):
                if response.status_code != 200:
                    raise ConnectorError(
                        f"etcd watch answered HTTP {response.status_code}",
                        connector="etcd",
                    )
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    result = json.loads(line).get("result", {})
                    if result.get("canceled"):
                        # E.g. the start revision was compacted: report a change so the
                        # caller reads the current state instead of missing one.
                        reason = result.get("cancel_reason", "")
                        logger.info("etcd watch canceled (%s)", reason)
                        return int(result.get("compact_revision") or start_revision)
                    for event in result.get("events", []):
                        kv = event.get("kv", {})
                        key = _unb64(kv.get("key", "")).decode(errors="replace")
                        revision = int(kv.get("mod_revision", start_revision))
                        if key not in ignore_keys:
                            return revision
        except TimeoutError:
            return None
        except httpx.HTTPError as exc:
            raise ConnectorError(
                f"etcd watch failed: {type(exc).__name__}: {exc}", connector="etcd"
            ) from exc
        return None

    async def wait_prefix(
        self,
        prefix: str,
        after_revision: int,
        *,
        timeout_s: float | None = None,
        ignore_keys: frozenset[str] = frozenset(),
        retry_s: float = 0.5,
    ) -> int | None:
        """Wait for a change under ``prefix`` made after ``after_revision``.

        Changes that happened between ``after_revision`` and the call are seen too (the
        watch starts at ``after_revision + 1``). Changes to ``ignore_keys`` do not count.
        While etcd is unreachable the wait keeps trying (every ``retry_s``) until the
        timeout.

        Returns:
            The revision of the change, or ``None`` on timeout.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            left = deadline_left(deadline)
            if left <= 0:
                return None
            try:
                revision = await self._watch_once(
                    prefix, after_revision + 1, left, ignore_keys
                )
            except (ConnectorError, ValueError) as exc:
                logger.debug("etcd watch on %s failed: %s", prefix, exc)
                self._index = (self._index + 1) % len(self.endpoints)
                await asyncio.sleep(min(retry_s, max(left, 0)))
                continue
            if revision is not None:
                return revision
            if deadline is not None and time.monotonic() >= deadline:
                return None
            # The stream ended early (etcd restarting): watch again from the same point.
            await asyncio.sleep(min(retry_s, max(deadline_left(deadline), 0)))

    async def aclose(self) -> None:
        """Close the HTTP sessions."""
        for client in self._clients:
            client.session.close()
