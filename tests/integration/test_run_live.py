"""`dynamo-planner run` live: Prometheus in, etcd out, an orchestrator acknowledging."""

from __future__ import annotations

import asyncio
import os
import signal
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from dynamo_planner.cli._run import serve
from dynamo_planner.config import PlannerConfig
from dynamo_planner.connectors.virtual import VirtualConnectorClient
from dynamo_planner.plugins import Registry, default_registry
from dynamo_planner.sources.exporter import FrontendMetricsExporter
from dynamo_planner.testing.servers import EtcdServer, PrometheusServer, free_port
from dynamo_planner.values import Forecast

pytestmark = pytest.mark.integration


class LastValuePredictor:
    """Forecasts the last observed value (a stand-in until the built-ins land)."""

    def __init__(self) -> None:
        self.last = 0.0

    @classmethod
    def from_config(cls, config: Any) -> LastValuePredictor:
        return cls()

    def observe(self, value: float) -> None:
        self.last = value

    def predict(self) -> Forecast:
        return Forecast.point(self.last)


def _registry() -> Registry:
    return default_registry().with_plugin(
        "dynamo_planner.predictors", "last", LastValuePredictor
    )


@pytest.fixture(name="exporter")
def _exporter() -> Iterator[FrontendMetricsExporter]:
    exporter = FrontendMetricsExporter(model_name="Llama", namespace="dynamo")
    exporter.serve()
    yield exporter
    exporter.close()


def _config(
    prom: PrometheusServer, etcd: EtcdServer, profile: Path, **extra: Any
) -> PlannerConfig:
    options: dict[str, Any] = {
        "environment": "virtual",
        "namespace": "dynamo",
        "model_name": "llama",
        "adjustment_interval_s": 3,
        "metric_pulling_prometheus_endpoint": prom.url,
        "etcd_endpoints": etcd.url,
        "prefill_engine_num_gpu": 1,
        "decode_engine_num_gpu": 1,
        "max_gpu_budget": -1,
        "load_predictor": "last",
        "profile_results_dir": str(profile),
        "scaling_check_interval_s": 0.2,
        "metric_timeout_s": 2,
    }
    options.update(extra)
    return PlannerConfig(**options)


async def _traffic(exporter: FrontendMetricsExporter, per_tick: int) -> None:
    while True:
        for _ in range(per_tick):
            exporter.record_request(
                isl_tokens=3000, osl_tokens=300, ttft_s=0.1, itl_s=0.01, duration_s=3.1
            )
        await asyncio.sleep(0.1)


async def _orchestrator(
    client: VirtualConnectorClient, seen: list[tuple[int, int, int]]
) -> None:
    while True:
        decision = await client.get()
        if decision.decision_id >= 0 and (
            not seen or seen[-1][2] != decision.decision_id
        ):
            seen.append(
                (
                    decision.num_prefill_workers,
                    decision.num_decode_workers,
                    decision.decision_id,
                )
            )
            await client.complete(decision)
        await client.wait(timeout_s=1)


def _scrape(port: int) -> str:
    with urllib.request.urlopen(
        f"http://127.0.0.1:{port}/metrics", timeout=2
    ) as response:
        return response.read().decode()


class TestBuildPlanner:
    async def test_no_operation_mode_is_advisory(
        self,
        start_prometheus: Callable[[Sequence[str]], PrometheusServer],
        etcd_server: EtcdServer,
        h200_profile_dir: Path,
    ) -> None:
        """--no-operation builds the log connector, an advisory planner, GPUs default 1."""
        from dynamo_planner.cli._run import build_planner
        from dynamo_planner.connectors.log import LogConnector

        prom = start_prometheus([])
        config = _config(
            prom,
            etcd_server,
            h200_profile_dir,
            no_operation=True,
            prefill_engine_num_gpu=None,
            decode_engine_num_gpu=None,
        )
        planner = await build_planner(config, registry=_registry(), environ={})
        try:
            assert isinstance(planner.connector, LogConnector)
            assert planner.advisory
            assert planner.prefill_gpus_per_engine == 1
            plan = await planner.step()
            assert plan.is_hold
            assert planner.errors == {}
        finally:
            assert planner.source is not None
            await planner.source.aclose()

    async def test_metric_prefix_from_environment(
        self,
        start_prometheus: Callable[[Sequence[str]], PrometheusServer],
        etcd_server: EtcdServer,
        h200_profile_dir: Path,
    ) -> None:
        """DYN_METRICS_PREFIX renames the metrics the source queries."""
        from dynamo_planner.cli._run import build_planner
        from dynamo_planner.sources.prometheus import PrometheusMetricSource

        prom = start_prometheus([])
        config = _config(prom, etcd_server, h200_profile_dir)
        planner = await build_planner(
            config, registry=_registry(), environ={"DYN_METRICS_PREFIX": "custom"}
        )
        try:
            assert isinstance(planner.source, PrometheusMetricSource)
            assert planner.source.metric_prefix == "custom"
        finally:
            await planner.source.aclose()
            assert planner.connector is not None
            await planner.connector.aclose()


class TestRunLive:
    async def test_decisions_reach_the_orchestrator(
        self,
        start_prometheus: Callable[[Sequence[str]], PrometheusServer],
        etcd_server: EtcdServer,
        exporter: FrontendMetricsExporter,
        h200_profile_dir: Path,
    ) -> None:
        """Traffic in Prometheus becomes decisions in etcd, acknowledged by a client."""
        prom = start_prometheus([f"127.0.0.1:{exporter.port}"])
        metrics_port = free_port()
        config = _config(
            prom,
            etcd_server,
            h200_profile_dir,
            metric_reporting_prometheus_port=metrics_port,
        )
        stop = asyncio.Event()
        client = VirtualConnectorClient(etcd_server.url, "dynamo")
        seen: list[tuple[int, int, int]] = []
        tasks = [
            asyncio.create_task(_traffic(exporter, per_tick=20)),
            asyncio.create_task(_orchestrator(client, seen)),
        ]
        runner = asyncio.create_task(
            serve(config, stop=stop, metrics_address="127.0.0.1", registry=_registry())
        )
        try:
            for _ in range(150):
                if seen or runner.done():
                    break
                await asyncio.sleep(0.1)
            assert seen, "no decision reached etcd"
            prefill, decode, decision_id = seen[0]
            assert decision_id == 0
            assert prefill >= 1
            assert decode >= 1
            text = await asyncio.to_thread(_scrape, metrics_port)
            assert "dynamo_planner_predicted_num_decode_replicas" in text
            assert "dynamo_planner_observed_requests_per_second" in text
        finally:
            stop.set()
            status = await asyncio.wait_for(runner, timeout=20)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await client.aclose()
        assert status == 0

    async def test_sigterm_stops_cleanly(
        self,
        start_prometheus: Callable[[Sequence[str]], PrometheusServer],
        etcd_server: EtcdServer,
        h200_profile_dir: Path,
    ) -> None:
        """SIGTERM ends the run with status 0 and closes its connections."""
        prom = start_prometheus([])
        config = _config(prom, etcd_server, h200_profile_dir, adjustment_interval_s=60)
        runner = asyncio.create_task(serve(config, registry=_registry()))
        await asyncio.sleep(1.0)
        assert not runner.done()
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(runner, timeout=20) == 0
