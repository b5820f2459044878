"""Faults a live planner survives: servers going away, malformed answers, API errors."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dynamo_planner.config import PlannerConfig
from dynamo_planner.connectors._etcd import EtcdKV
from dynamo_planner.connectors.kubernetes import KubernetesConnector
from dynamo_planner.connectors.log import LogConnector
from dynamo_planner.connectors.virtual import VirtualConnector, VirtualConnectorClient
from dynamo_planner.exceptions import ConnectorError
from dynamo_planner.planner import Planner
from dynamo_planner.plugins import default_registry
from dynamo_planner.sources.exporter import FrontendMetricsExporter
from dynamo_planner.sources.prometheus import PrometheusMetricSource
from dynamo_planner.sources.router import RouterMetricSource
from dynamo_planner.testing.fake_kube import FakeKubeServer, Fault
from dynamo_planner.testing.fakes import ManualClock
from dynamo_planner.testing.servers import EtcdServer, PrometheusServer
from dynamo_planner.values import Forecast, ReplicaPlan, ReplicaState, Status

pytestmark = pytest.mark.integration

INTERVAL_S = 10.0


class LastValuePredictor:
    """Forecasts the last observed value."""

    def __init__(self) -> None:
        self.last = 0.0

    @classmethod
    def from_config(cls, config: Any) -> LastValuePredictor:
        return cls()

    def observe(self, value: float) -> None:
        self.last = value

    def predict(self) -> Forecast:
        return Forecast.point(self.last)


def _planner(profile: Path, source: Any, connector: Any) -> Planner:
    config = PlannerConfig(
        load_predictor="last",
        profile_results_dir=str(profile),
        adjustment_interval_s=INTERVAL_S,
        max_gpu_budget=-1,
        prefill_engine_num_gpu=1,
        decode_engine_num_gpu=1,
        unknown_fallback_intervals=0,
    )
    registry = default_registry().with_plugin(
        "dynamo_planner.predictors", "last", LastValuePredictor
    )
    return Planner.from_config(
        config, source=source, connector=connector, registry=registry
    )


class CannedHTTP:
    """An HTTP server answering every GET with a settable status and body."""

    def __init__(self) -> None:
        self.status = 200
        self.body = b""
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(canned.status)
                self.send_header("Content-Length", str(len(canned.body)))
                self.end_headers()
                try:
                    self.wfile.write(canned.body)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up first (a timeout under test)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(name="canned")
def _canned() -> Iterator[CannedHTTP]:
    server = CannedHTTP()
    yield server
    server.close()


def _vector(value: str, model: str = "llama") -> bytes:
    return json.dumps(
        {
            "status": "success",
            "data": {
                "resultType": "vector",
                "result": [
                    {"metric": {"model": model, "dynamo_namespace": "dynamo"},
                     "value": [1.0, value]}
                ],
            },
        }
    ).encode()  # fmt: skip


def _record(exporter: FrontendMetricsExporter, n: int) -> None:
    for _ in range(n):
        exporter.record_request(
            isl_tokens=2000, osl_tokens=200, ttft_s=0.1, itl_s=0.01, duration_s=2.1
        )


class TestPrometheusOutage:
    async def test_plans_held_errors_counted_then_recovery(
        self,
        start_prometheus: Callable[[Sequence[str]], PrometheusServer],
        h200_profile_dir: Path,
    ) -> None:
        """While Prometheus is down the plan holds and errors count; it recovers after."""
        exporter = FrontendMetricsExporter(model_name="llama", namespace="dynamo")
        exporter.serve()
        prom = start_prometheus([f"127.0.0.1:{exporter.port}"])
        prom.wait_for("dynamo_frontend_requests_total")
        source = PrometheusMetricSource(
            endpoint=prom.url,
            model_name="llama",
            retries=1,
            backoff_s=0.05,
            timeout_s=2,
        )
        connector = LogConnector(initial=ReplicaState(prefill=1, decode=1))
        planner = _planner(h200_profile_dir, source, connector)
        try:
            _record(exporter, 200)
            prom.wait_for("dynamo_frontend_requests_total > 0")
            first = await planner.step()
            assert not first.is_hold
            applied = len(connector.plans)

            prom.stop()
            held = await planner.step()
            assert held.is_hold
            assert "unknown" in " ".join(held.reasons)
            assert planner.errors["source"] == 1
            assert len(connector.plans) == applied

            prom.start()
            _record(exporter, 200)
            prom.wait_for("increase(dynamo_frontend_requests_total[10s]) > 0")
            recovered = await planner.step()
            assert not recovered.is_hold
            assert planner.errors["source"] == 1
        finally:
            await source.aclose()
            exporter.close()


class TestMalformedAnswers:
    async def test_malformed_query_answer_is_logged_and_loop_continues(
        self,
        canned: CannedHTTP,
        h200_profile_dir: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """A non-JSON answer is a clear logged error; the next good answer is used."""
        source = PrometheusMetricSource(
            endpoint=canned.url, model_name="llama", retries=0
        )
        planner = _planner(h200_profile_dir, source, LogConnector())
        try:
            canned.body = b"<html>502 Bad Gateway</html>"
            with caplog.at_level(logging.WARNING):
                plan = await planner.step()
            assert plan.is_hold
            assert planner.errors["source"] == 1
            assert "answer is not JSON" in caplog.text
            canned.body = _vector("5")
            with caplog.at_level(logging.WARNING):
                obs = await source.fetch(INTERVAL_S)
            assert obs.num_req.value == 5
            # the canned series has no `le` label: the buckets alone are dropped
            assert obs.ttft_histogram_ms == ()
            assert "le=None" in caplog.text
            # a vector where the counter's samples (a range vector) were asked for: the
            # dispersion alone is unknown
            assert obs.arrival_dispersion.status is Status.UNKNOWN
            assert "expected resultType 'matrix'" in caplog.text
            assert "arrival_dispersion is left unknown" in caplog.text
            assert (await planner.step()).reasons
        finally:
            await source.aclose()

    async def test_error_status_and_wrong_shape(self, canned: CannedHTTP) -> None:
        """A Prometheus error answer and a non-vector answer raise with the query named."""
        from dynamo_planner.exceptions import MalformedMetricsError

        source = PrometheusMetricSource(
            endpoint=canned.url, model_name="llama", retries=0
        )
        try:
            canned.status = 400
            canned.body = json.dumps(
                {"status": "error", "errorType": "bad_data", "error": "parse error"}
            ).encode()
            with pytest.raises(MalformedMetricsError, match="parse error"):
                await source.fetch(INTERVAL_S)
            canned.status = 200
            canned.body = json.dumps(
                {"status": "success", "data": {"resultType": "matrix", "result": []}}
            ).encode()
            with pytest.raises(MalformedMetricsError, match="increase"):
                await source.fetch(INTERVAL_S)
        finally:
            await source.aclose()

    async def test_malformed_metric_text_from_router(
        self, canned: CannedHTTP, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Unparsable router text is logged and skipped by sampling; fetch raises."""
        from dynamo_planner.exceptions import MalformedMetricsError

        source = RouterMetricSource(url=f"{canned.url}/metrics")
        try:
            canned.body = (
                b"dynamo_frontend_worker_active_decode_blocks{worker_id= 3 x\n"
            )
            with caplog.at_level(logging.WARNING):
                assert await source.sample_once() is False
            assert "cannot parse the metrics text" in caplog.text
            assert source.scrape_errors_total == 1
            with pytest.raises(MalformedMetricsError):
                await source.fetch(5)
            canned.body = (
                b'dynamo_frontend_worker_active_decode_blocks{worker_id="w",'
                b'worker_type="decode"} 3\n'
            )
            assert await source.sample_once() is True
        finally:
            await source.aclose()

    async def test_nan_answer_is_unknown(self, canned: CannedHTTP) -> None:
        """A NaN average (no request in the window) reads unknown, not zero."""
        source = PrometheusMetricSource(
            endpoint=canned.url, model_name="llama", retries=0
        )
        try:
            canned.body = _vector("NaN")
            obs = await source.fetch(INTERVAL_S)
        finally:
            await source.aclose()
        assert obs.ttft_ms.status is Status.UNKNOWN
        assert obs.num_req.status is Status.UNKNOWN


class TestEtcdRestart:
    async def test_decision_state_survives_restart(
        self, etcd_server: EtcdServer
    ) -> None:
        """Writes fail while etcd is down; after restart decision ids carry on."""
        connector = VirtualConnector(
            kv=EtcdKV(etcd_server.url, timeout_s=1), namespace="ns", model_name="m"
        )
        client = VirtualConnectorClient(etcd_server.url, "ns")
        try:
            await connector.apply(ReplicaPlan(prefill=1, decode=2))
            await client.complete(await client.get())

            etcd_server.stop()
            with pytest.raises(ConnectorError, match="etcd"):
                await connector.apply(ReplicaPlan(prefill=3, decode=4))

            etcd_server.start()
            decision = await client.get()
            assert (decision.num_prefill_workers, decision.decision_id) == (1, 0)
            await connector.apply(ReplicaPlan(prefill=3, decode=4))
            decision = await client.get()
            assert (decision.num_prefill_workers, decision.num_decode_workers) == (3, 4)
            assert decision.decision_id == 1
        finally:
            await connector.aclose()
            await client.aclose()

    async def test_client_wait_survives_restart(self, etcd_server: EtcdServer) -> None:
        """An orchestrator waiting through an etcd restart still sees the next decision."""
        import asyncio

        connector = VirtualConnector(
            kv=EtcdKV(etcd_server.url), namespace="ns", model_name="m"
        )
        client = VirtualConnectorClient(etcd_server.url, "ns")
        try:
            await client.get()
            waiter = asyncio.create_task(client.wait(timeout_s=30))
            await asyncio.sleep(0.3)
            await asyncio.to_thread(etcd_server.restart)
            await connector.apply(ReplicaPlan(prefill=2, decode=2))
            assert await asyncio.wait_for(waiter, timeout=30) is True
        finally:
            await connector.aclose()
            await client.aclose()


class TestKubernetesErrorsThroughThePlanner:
    async def test_conflicts_retried_once_applied(self) -> None:
        """409 then 500 on the scale patch: retried, the deployment changes once."""
        from kubernetes import client

        server = FakeKubeServer().start()
        server.put_dgd(
            "ns",
            {
                "metadata": {"name": "dgd"},
                "spec": {
                    "services": {"D": {"subComponentType": "decode", "replicas": 1}}
                },
                "status": {"conditions": [{"type": "Ready", "status": "True"}]},
            },
        )
        configuration = client.Configuration()
        configuration.host = server.url
        connector = KubernetesConnector(
            api=client.CustomObjectsApi(client.ApiClient(configuration)),
            dgd_name="dgd",
            k8s_namespace="ns",
            mode="decode",
            backoff_s=0.01,
            clock=ManualClock(),
        )
        try:
            server.inject(Fault("PATCH", "/scale", 409), Fault("PATCH", "/scale", 500))
            await connector.apply(ReplicaPlan(prefill=None, decode=4))
            await connector.apply(ReplicaPlan(prefill=None, decode=4))
            assert server.changes == [("D", 4)]
        finally:
            await connector.aclose()
            server.close()
