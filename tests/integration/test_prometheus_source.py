"""The Prometheus source against a real Prometheus scraping frontend exporters (§11.6)."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pytest

from dynamo_planner.exceptions import MetricSourceError
from dynamo_planner.scalers.calibration import spread_from_histogram
from dynamo_planner.scalers.feedback import count_within
from dynamo_planner.scalers.request_mix import observed_mix
from dynamo_planner.sources.exporter import FrontendMetricsExporter
from dynamo_planner.sources.prometheus import PrometheusMetricSource
from dynamo_planner.testing.servers import PrometheusServer, free_port
from dynamo_planner.values import Observation, Status

pytestmark = pytest.mark.integration

WINDOW_S = 30.0
StartPrometheus = Callable[[Sequence[str]], PrometheusServer]


@pytest.fixture(name="exporters")
def _exporters() -> Iterator[Callable[..., FrontendMetricsExporter]]:
    """A factory of served exporters, closed after the test."""
    made: list[FrontendMetricsExporter] = []

    def make(
        model: str = "MyModel", namespace: str = "dynamo"
    ) -> FrontendMetricsExporter:
        exporter = FrontendMetricsExporter(model_name=model, namespace=namespace)
        exporter.serve()
        made.append(exporter)
        return exporter

    yield make
    for exporter in made:
        exporter.close()


def _targets(*exporters: FrontendMetricsExporter) -> list[str]:
    return [f"127.0.0.1:{e.port}" for e in exporters]


def _source(prom: PrometheusServer, **kwargs: object) -> PrometheusMetricSource:
    options: dict[str, object] = {
        "endpoint": prom.url,
        "model_name": "MyModel",
        "namespace": "dynamo",
    }
    options.update(kwargs)
    return PrometheusMetricSource(**options)  # type: ignore[arg-type]


async def _fetch(prom: PrometheusServer) -> Observation:
    """One fetch of the last ``WINDOW_S`` seconds through a fresh source."""
    source = _source(prom)
    try:
        return await source.fetch(WINDOW_S)
    finally:
        await source.aclose()


def _record(
    exporter: FrontendMetricsExporter,
    n: int,
    ttft_s: float,
    *,
    isl_tokens: int = 3000,
    osl_tokens: int = 150,
    itl_s: float = 0.04,
) -> None:
    for _ in range(n):
        exporter.record_request(
            isl_tokens=isl_tokens,
            osl_tokens=osl_tokens,
            ttft_s=ttft_s,
            itl_s=itl_s,
            duration_s=6.0,
        )


def _scraped(prom: PrometheusServer, n_targets: int, promql: str) -> None:
    """Wait until Prometheus has scraped ``n_targets`` series of ``promql``."""
    import time

    deadline = time.monotonic() + 20
    while len(prom.wait_for(promql)) < n_targets:
        if time.monotonic() > deadline:
            msg = f"fewer than {n_targets} series of {promql}"
            raise AssertionError(msg)
        time.sleep(0.2)


class TestPrometheusSource:
    async def test_other_model_and_namespace_only_is_unknown(
        self,
        start_prometheus: StartPrometheus,
        exporters: Callable[..., FrontendMetricsExporter],
    ) -> None:
        """Series of another model or namespace only give unknown, not zero."""
        other_model = exporters(model="othermodel")
        other_ns = exporters(namespace="elsewhere")
        prom = start_prometheus(_targets(other_model, other_ns))
        _scraped(prom, 2, "dynamo_frontend_requests_total")
        obs = await _fetch(prom)
        assert obs.num_req.status is Status.UNKNOWN
        assert obs.ttft_ms.status is Status.UNKNOWN
        assert not obs.traffic_known

    async def test_no_series_at_all_is_unknown(
        self, start_prometheus: StartPrometheus
    ) -> None:
        """An empty answer (nothing scraped yet) is unknown, where the reference says 0."""
        prom = start_prometheus([])
        obs = await _fetch(prom)
        assert obs.unknown_fields() == (
            "num_req", "isl_tokens", "osl_tokens", "ttft_ms", "itl_ms", "request_duration_s",
        )  # fmt: skip

    async def test_idle_frontend_is_zero_requests(
        self,
        start_prometheus: StartPrometheus,
        exporters: Callable[..., FrontendMetricsExporter],
    ) -> None:
        """Existing series with no new request count zero requests; averages are unknown."""
        exporter = exporters(model="mymodel")
        prom = start_prometheus(_targets(exporter))
        _scraped(prom, 1, "dynamo_frontend_requests_total")
        prom.wait_for("count_over_time(dynamo_frontend_requests_total[30s]) >= 2")
        obs = await _fetch(prom)
        assert obs.num_req.status is Status.ZERO
        assert obs.ttft_ms.status is Status.UNKNOWN
        assert obs.traffic_known

    async def test_one_matching_frontend(
        self,
        start_prometheus: StartPrometheus,
        exporters: Callable[..., FrontendMetricsExporter],
    ) -> None:
        """One matching frontend with TTFT 42.7 ms reads 42.7 ms; others are filtered out."""
        mine = exporters(model="MYMODEL")
        other = exporters(namespace="elsewhere")
        prom = start_prometheus(_targets(mine, other))
        _scraped(prom, 2, "dynamo_frontend_requests_total")
        _record(mine, 10, ttft_s=0.0427)
        _record(other, 10, ttft_s=0.9)
        _scraped(prom, 2, "dynamo_frontend_requests_total > 0")
        obs = await _fetch(prom)
        assert obs.ttft_ms.value == pytest.approx(42.7, rel=1e-6)
        assert obs.itl_ms.value == pytest.approx(40.0, rel=1e-6)
        assert obs.isl_tokens.value == pytest.approx(3000, rel=1e-6)
        assert obs.osl_tokens.value == pytest.approx(150, rel=1e-6)
        assert obs.request_duration_s.value == pytest.approx(6.0, rel=1e-6)
        # increase() extrapolates to the window's edges, so the count is at least 10.
        assert 10 <= obs.num_req.value < 20

    async def test_latency_buckets_count_misses(
        self,
        start_prometheus: StartPrometheus,
        exporters: Callable[..., FrontendMetricsExporter],
    ) -> None:
        """The TTFT buckets put half the requests within 500 ms when half took 200
        ms and half 900 ms (increase() extrapolates every bucket of one frontend by
        the same factor, so the share is exact)."""
        mine, other = exporters(), exporters(model="othermodel")
        prom = start_prometheus(_targets(mine, other))
        _scraped(prom, 2, "dynamo_frontend_requests_total")
        _record(mine, 10, ttft_s=0.2)
        _record(mine, 10, ttft_s=0.9)
        _record(other, 50, ttft_s=0.9)
        _scraped(prom, 2, "dynamo_frontend_requests_total > 0")
        obs = await _fetch(prom)
        total, within = count_within(obs.ttft_histogram_ms, 500.0)
        assert total >= 20
        assert within == pytest.approx(total / 2, rel=1e-6)
        assert obs.ttft_histogram_ms[-1][0] == math.inf
        # every ITL (40 ms) is within 40 ms and none within 20 ms
        itl_total, itl_within = count_within(obs.itl_histogram_ms, 40.0)
        assert itl_within == pytest.approx(itl_total)
        assert count_within(obs.itl_histogram_ms, 20.0)[1] == 0.0

    async def test_itl_buckets_give_the_decode_spread(
        self,
        start_prometheus: StartPrometheus,
        exporters: Callable[..., FrontendMetricsExporter],
    ) -> None:
        """The ITL buckets and the mean ITL, as Prometheus gives them, measure the
        spread the recorded ITLs have: 60 at 8 ms, 130 at 14 ms and 10 at 30 ms have a
        mean of 13 ms and 5% above 20 ms, so a normal's sd of 7 / z(0.95) ms."""
        mine = exporters()
        prom = start_prometheus(_targets(mine))
        _scraped(prom, 1, "dynamo_frontend_requests_total")
        for itl_ms, n in ((8.0, 60), (14.0, 130), (30.0, 10)):
            _record(mine, n, ttft_s=0.1, itl_s=itl_ms / 1000.0)
        _scraped(prom, 1, "dynamo_frontend_requests_total > 0")
        obs = await _fetch(prom)
        assert obs.itl_ms.value == pytest.approx(13.0, rel=1e-6)
        found = spread_from_histogram(obs.itl_histogram_ms, obs.itl_ms.value)
        assert found is not None
        assert found.bound == 20.0
        assert found.share_above == pytest.approx(0.05, rel=1e-6)
        assert found.sd == pytest.approx(7.0 / 1.6448536, rel=1e-5)

    async def test_length_buckets_give_the_request_mix(
        self,
        start_prometheus: StartPrometheus,
        exporters: Callable[..., FrontendMetricsExporter],
    ) -> None:
        """The ISL and OSL buckets come back in tokens, and the request mix drawn from
        them keeps the two kinds of request: half the prompts of 100 tokens, half of
        3,000."""
        mine = exporters()
        prom = start_prometheus(_targets(mine))
        _scraped(prom, 1, "dynamo_frontend_requests_total")
        for isl, osl in ((100, 20), (3000, 150)):
            _record(mine, 10, ttft_s=0.1, isl_tokens=isl, osl_tokens=osl, itl_s=0.01)
        _scraped(prom, 1, "dynamo_frontend_requests_total > 0")
        obs = await _fetch(prom)
        total, short = count_within(obs.isl_histogram_tokens, 128.0)
        assert total >= 20
        assert short == pytest.approx(total / 2, rel=1e-6)
        assert obs.isl_histogram_tokens[-1][0] == math.inf
        assert count_within(obs.osl_histogram_tokens, 64.0)[1] == pytest.approx(
            total / 2, rel=1e-6
        )
        mix = observed_mix(obs)
        assert mix is not None
        assert "histograms" in mix.words
        assert float(np.mean(mix.isl <= 128.0)) == pytest.approx(0.5, abs=1e-3)
        assert float(np.max(mix.isl)) <= 4096.0

    async def test_three_frontends_unweighted_mean(
        self,
        start_prometheus: StartPrometheus,
        exporters: Callable[..., FrontendMetricsExporter],
    ) -> None:
        """Three matching frontends average without weights: (42.7+35.5+15.5)/3."""
        made = [exporters() for _ in range(3)]
        prom = start_prometheus(_targets(*made))
        _scraped(prom, 3, "dynamo_frontend_requests_total")
        for exporter, ttft_s, n in zip(
            made, (0.0427, 0.0355, 0.0155), (1, 5, 20), strict=True
        ):
            _record(exporter, n, ttft_s)
        _scraped(prom, 3, "dynamo_frontend_requests_total > 0")
        obs = await _fetch(prom)
        assert obs.ttft_ms.value == pytest.approx((42.7 + 35.5 + 15.5) / 3, rel=1e-6)
        assert obs.num_req.value >= 26

    async def test_the_request_counter_gives_the_arrivals_dispersion(
        self,
        start_prometheus: StartPrometheus,
        exporters: Callable[..., FrontendMetricsExporter],
    ) -> None:
        """Scraped every second for 16 s, a frontend taking 3 requests every half
        second reads as regular (index well below 1, Poisson's) and one taking 30
        every 5 s as bursty (about 24); a 5 s interval holds too few scrapes, and a
        source told not to measure it leaves it unknown."""
        steady_model = "Org/Steady-1.0 (v2)"  # matched by a regex: special characters
        steady, bursty = exporters(model=steady_model), exporters(model="bursty")
        prom = start_prometheus(_targets(steady, bursty))
        _scraped(prom, 2, "dynamo_frontend_requests_total")
        stop = threading.Event()

        def arrive() -> None:
            tick = 0
            while not stop.wait(0.5):
                tick += 1
                _record(steady, 3, ttft_s=0.1)
                if tick % 10 == 0:
                    _record(bursty, 30, ttft_s=0.1)

        worker = threading.Thread(target=arrive)
        worker.start()
        try:
            await asyncio.sleep(17.0)
            found = {}
            for model, interval_s, measure in (
                (steady_model, 15.0, True),
                ("bursty", 15.0, True),
                ("bursty", 5.0, True),
                ("bursty", 14.0, False),
            ):
                source = _source(prom, model_name=model, measure_dispersion=measure)
                try:
                    found[model, interval_s] = (
                        await source.fetch(interval_s)
                    ).arrival_dispersion
                finally:
                    await source.aclose()
            # the counter's samples are asked for the model's series only
            source = _source(prom, model_name=steady_model.upper())
            try:
                query = source.queries(15.0)["arrival_dispersion"]
                labels = [
                    s.labels["model"] for s in await source.query_range_vector(query)
                ]
            finally:
                await source.aclose()
        finally:
            stop.set()
            worker.join()
        assert labels == [steady_model.lower()]
        assert found[steady_model, 15.0].value < 0.7
        assert found["bursty", 15.0].value > 5.0
        assert found["bursty", 5.0].status is Status.UNKNOWN
        assert found["bursty", 14.0].status is Status.UNKNOWN  # not measured

    async def test_unreachable_prometheus_raises_after_retries(self) -> None:
        """A Prometheus that does not answer raises MetricSourceError after the retries."""
        source = PrometheusMetricSource(
            endpoint=f"http://127.0.0.1:{free_port()}",
            model_name="m",
            retries=1,
            backoff_s=0.01,
            timeout_s=1.0,
        )
        try:
            with pytest.raises(MetricSourceError, match="failed 2 time"):
                await source.fetch(WINDOW_S)
        finally:
            await source.aclose()
