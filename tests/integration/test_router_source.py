"""The router source scraping a live frontend exporter over HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from dynamo_planner.exceptions import MetricSourceError
from dynamo_planner.sources.exporter import FrontendMetricsExporter
from dynamo_planner.sources.router import RouterMetricSource
from dynamo_planner.testing.servers import free_port
from dynamo_planner.values import Status, WorkerLoad

pytestmark = pytest.mark.integration


@pytest.fixture(name="exporter")
def _exporter() -> Iterator[FrontendMetricsExporter]:
    exporter = FrontendMetricsExporter(model_name="MyModel", namespace="ns")
    exporter.serve()
    yield exporter
    exporter.close()


def _record(exporter: FrontendMetricsExporter, n: int) -> None:
    """``n`` finished requests of 1,000 prompt tokens, TTFT 200 ms."""
    for _ in range(n):
        exporter.record_request(
            isl_tokens=1000, osl_tokens=100, ttft_s=0.2, itl_s=0.01, duration_s=1.2
        )


class TestRouterSource:
    async def test_samples_fill_the_buffer(
        self, exporter: FrontendMetricsExporter
    ) -> None:
        """Background sampling keeps the last num_samples scrapes of every worker."""
        exporter.set_workers(
            [
                WorkerLoad(
                    worker_id="p1", worker_type="prefill", active_prefill_tokens=100
                ),
                WorkerLoad(
                    worker_id="d1", worker_type="decode", active_decode_blocks=7
                ),
            ]
        )
        source = RouterMetricSource(
            url=f"http://127.0.0.1:{exporter.port}/metrics",
            interval_s=0.5,
            num_samples=5,
            model_name="mymodel",
            namespace="ns",
        )
        try:
            source.start()
            for _ in range(50):
                if len(source.buffer) == 5:
                    break
                await asyncio.sleep(0.1)
            views = source.views("prefill")
            assert views is not None
            assert [w.worker_id for w in views.recent] == ["p1"]
            assert views.cluster.active_prefill_tokens == 100
            decode = source.views("decode")
            assert decode is not None
            assert decode.per_worker[0].active_decode_blocks == 7
        finally:
            await source.aclose()
        assert not source.sampling

    async def test_fetch_reports_traffic_between_fetches(
        self, exporter: FrontendMetricsExporter
    ) -> None:
        """The first fetch is a baseline; the next reports that interval's requests."""
        source = RouterMetricSource(url=f"http://127.0.0.1:{exporter.port}/metrics")
        try:
            first = await source.fetch(5)
            assert first.num_req.status is Status.UNKNOWN
            _record(exporter, 4)
            second = await source.fetch(5)
        finally:
            await source.aclose()
        assert second.num_req.value == 4
        assert second.ttft_ms.value == pytest.approx(200)
        assert second.isl_tokens.value == pytest.approx(1000)

    async def test_background_scrapes_give_the_arrivals_dispersion(
        self, exporter: FrontendMetricsExporter
    ) -> None:
        """Scraped every 0.2 s while 20 requests arrive at once every 2 s, the counter
        reads as bursty; a fetch right after another has too few scrapes: unknown."""
        source = RouterMetricSource(
            url=f"http://127.0.0.1:{exporter.port}/metrics",
            interval_s=1.0,
            num_samples=5,
        )
        try:
            await source.fetch(6)  # the baseline
            for _ in range(3):
                _record(exporter, 20)
                await asyncio.sleep(2.0)
            bursty = await source.fetch(6)
            at_once = await source.fetch(6)  # too few scrapes since the last fetch
        finally:
            await source.aclose()
        assert bursty.num_req.value == 60
        assert bursty.arrival_dispersion.value > 5.0
        assert at_once.arrival_dispersion.status is Status.UNKNOWN

    async def test_unreachable_router(self) -> None:
        """A router that does not answer makes fetch raise; sampling only counts it."""
        source = RouterMetricSource(url=f"http://127.0.0.1:{free_port()}/metrics")
        try:
            with pytest.raises(MetricSourceError):
                await source.fetch(5)
            assert await source.sample_once() is False
            assert source.scrape_errors_total >= 1
        finally:
            await source.aclose()
