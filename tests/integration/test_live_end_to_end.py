"""End to end on one machine: live simulator, real Prometheus and etcd, `dynamo-planner run`.

The live simulator serves a ramp (low, high, low) cut from the bundled Azure conversation
trace in real time behind a Dynamo-frontend ``/metrics`` and carries out the planner's
decisions from etcd; Prometheus scrapes the simulator and the planner's own metrics every
second; ``dynamo-planner run`` (a subprocess, as in production) reads Prometheus and writes
decisions to etcd through the virtual connector.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from dynamo_planner.connectors.virtual import (
    VirtualConnector,
    VirtualConnectorClient,
)
from dynamo_planner.data import H200_PROFILE_DIR
from dynamo_planner.testing.servers import (
    EtcdServer,
    PrometheusServer,
    free_port,
    free_ports,
)
from dynamo_planner.values import ReplicaPlan

pytestmark = pytest.mark.integration

MODEL = "llama"


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A ramp cut from the bundled Azure trace: one rate scale per phase of ``phase_s``."""

    rate_scales: str
    phase_s: float
    run_s: float
    initial: tuple[int, int]

    @property
    def high_start_s(self) -> float:
        """Start of the high phase (the second)."""
        return self.phase_s

    @property
    def high_end_s(self) -> float:
        """End of the high phase."""
        return 2 * self.phase_s


# 25 s at 10x the trace's rate, 25 s at 30x, 25 s at 10x (about 50, 150 and 50 requests
# per second), then the trace at 10x for the last decisions.
THROUGHPUT = Scenario("10,30,10,10", phase_s=25.0, run_s=82.0, initial=(2, 1))
# The same ramp in 20 s phases: load-based scaling reacts within seconds.
LOAD_BASED = Scenario("10,30,10,10", phase_s=20.0, run_s=66.0, initial=(1, 1))


# --------------------------------------------------------------------------- processes
class Processes:
    """Child processes of one test, each logging to a file; all stopped at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` with its output in ``<workdir>/<name>.log``."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with (self.workdir / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                list(argv), stdout=log, stderr=subprocess.STDOUT, env=env
            )
        self.running[name] = process
        return process

    def log(self, name: str, tail_chars: int = 4000) -> str:
        """The end of a process' output."""
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-tail_chars:] if path.exists() else ""

    def logs(self) -> str:
        """The end of every process' output, for failure messages."""
        return "\n".join(f"--- {name}:\n{self.log(name)}" for name in self.running)

    def stop(self, name: str) -> int | None:
        """SIGTERM, then SIGKILL after 10 s; returns the exit status."""
        process = self.running.get(name)
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        return process.returncode

    def stop_all(self) -> None:
        """Stop every process still running."""
        for name in list(self.running):
            self.stop(name)


@pytest.fixture(name="processes")
def _processes(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path)
    try:
        yield processes
    finally:
        processes.stop_all()


def live_sim_argv(
    *,
    port: int,
    etcd: EtcdServer,
    namespace: str,
    record: Path,
    scenario: Scenario = THROUGHPUT,
) -> list[str]:
    """The live simulator's command line."""
    return [
        sys.executable,
        "-m",
        "dynamo_planner.sim.live",
        "--rate-scale",
        scenario.rate_scales,
        "--phase",
        str(scenario.phase_s),
        "--model-name",
        MODEL,
        "--namespace",
        namespace,
        "--port",
        str(port),
        "--etcd-endpoints",
        etcd.url,
        "--initial-prefill",
        str(scenario.initial[0]),
        "--initial-decode",
        str(scenario.initial[1]),
        "--cold-start",
        "3",
        "--stop-after",
        str(scenario.run_s),
        "--record",
        str(record),
    ]


def planner_argv(
    *,
    prom: PrometheusServer,
    etcd: EtcdServer,
    namespace: str,
    metrics_port: int,
    extra: Sequence[str] = (),
) -> list[str]:
    """``dynamo-planner run`` against the servers, as a user would type it."""
    return [
        sys.executable,
        "-m",
        "dynamo_planner",
        "-v",
        "run",
        "--environment",
        "virtual",
        "--model-name",
        MODEL,
        "--namespace",
        namespace,
        "--metric-pulling-prometheus-endpoint",
        prom.url,
        "--etcd-endpoints",
        etcd.url,
        "--profile-results-dir",
        str(H200_PROFILE_DIR),
        "--adjustment-interval",
        "10",
        "--load-predictor",
        "constant",
        "--ttft",
        "300",
        "--itl",
        "30",
        "--prefill-engine-num-gpu",
        "1",
        "--decode-engine-num-gpu",
        "1",
        "--max-gpu-budget",
        "-1",
        "--metric-timeout",
        "2",
        "--metric-reporting-prometheus-port",
        str(metrics_port),
        "--metrics-address",
        "127.0.0.1",
        *extra,
    ]


# --------------------------------------------------------------------------- reading
def read_record(path: Path) -> list[dict[str, Any]]:
    """The live simulator's JSON lines."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    complete = text[: text.rfind("\n") + 1]  # a line being written is not read yet
    return [json.loads(line) for line in complete.splitlines() if line.strip()]


def wait_for_exit(
    process: subprocess.Popen[bytes], timeout_s: float, why: Callable[[], str]
) -> int:
    """Wait for a process to end by itself."""
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {timeout_s:.0f} s\n{why()}")


def wait_for_sim_time(
    record: Path, sim_s: float, timeout_s: float, why: Callable[[], str]
) -> None:
    """Wait until the live simulator's record reaches ``sim_s`` simulated seconds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = read_record(record)
        if lines and lines[-1].get("sim_s", 0) >= sim_s:
            return
        time.sleep(0.5)
    pytest.fail(f"the simulation did not reach {sim_s} s in {timeout_s:.0f} s\n{why()}")


def prom_query(prom: PrometheusServer, promql: str) -> list[dict[str, Any]]:
    """An instant query's series."""
    url = f"{prom.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def prom_values(prom: PrometheusServer, promql: str) -> dict[str, float]:
    """An instant query's values by the series' ``kind`` label (or ``""``)."""
    return {
        series["metric"].get("kind", ""): float(series["value"][1])
        for series in prom_query(prom, promql)
    }


def total(decision: dict[str, Any]) -> int:
    """Workers a decision asked for, both components."""
    return int(decision["prefill"]) + int(decision["decode"])


# --------------------------------------------------------------------------- tests
class TestOrchestrator:
    """The live simulator carries out decisions written by the virtual connector."""

    async def test_decisions_are_applied_and_acknowledged(
        self, etcd_server: EtcdServer, processes: Processes, tmp_path: Path
    ) -> None:
        """Two decisions reach the simulated workers and are acknowledged once they serve."""
        record = tmp_path / "record.jsonl"
        sim = processes.start(
            "live-sim",
            [
                *live_sim_argv(
                    port=free_port(),
                    etcd=etcd_server,
                    namespace="orchestrator",
                    record=record,
                ),
                "--cold-start",
                "1",
            ],
        )
        connector = VirtualConnector.from_config(
            _config(etcd_server, "orchestrator"), check_interval_s=0.1, max_wait_s=20
        )
        client = VirtualConnectorClient(etcd_server.url, "orchestrator")
        try:
            for prefill, decode in ((3, 2), (1, 4)):
                await connector.apply(
                    ReplicaPlan(prefill=prefill, decode=decode), blocking=True
                )
                decision = await client.get()
                assert await connector.wait_for_scaling_completion()
                applied = [
                    line
                    for line in read_record(record)
                    if line["event"] == "decision"
                    and line["decision_id"] == decision.decision_id
                ]
                assert applied, processes.logs()
                assert applied[0]["prefill_ready"] == prefill
                assert applied[0]["decode_ready"] == decode
                # acknowledged after the 1 s cold start of the workers it added
                assert applied[0]["acked_s"] >= applied[0]["sim_s"] + 0.99
        finally:
            await connector.aclose()
            await client.aclose()
        processes.stop("live-sim")
        assert sim.returncode == 0, processes.logs()
        ids = [
            line["decision_id"] for line in read_record(record) if "decision_id" in line
        ]
        assert ids == [0, 1]


def _config(etcd: EtcdServer, namespace: str) -> Any:
    from dynamo_planner.config import PlannerConfig

    return PlannerConfig(
        environment="virtual",
        namespace=namespace,
        model_name=MODEL,
        etcd_endpoints=etcd.url,
    )


@dataclasses.dataclass
class LoopRun:
    """What one run of the live loop left behind."""

    decisions: list[dict[str, Any]]
    planner_metrics: dict[str, dict[str, float]]
    etcd_state: dict[str, int]
    summary: str

    def phase(self, start_s: float, end_s: float = math.inf) -> list[dict[str, Any]]:
        """The decisions carried out in ``[start_s, end_s)`` of simulated time."""
        return [d for d in self.decisions if start_s <= d["sim_s"] < end_s]


PLANNER_METRICS = (
    "dynamo_planner_errors_total",
    "dynamo_planner_decisions_total",
    "dynamo_planner_num_prefill_replicas",
    "dynamo_planner_observed_requests_per_second",
)


async def run_loop(
    *,
    scenario: Scenario,
    namespace: str,
    planner_extra: Sequence[str],
    etcd: EtcdServer,
    start_prometheus: Callable[[Sequence[str]], PrometheusServer],
    processes: Processes,
    tmp_path: Path,
) -> LoopRun:
    """Run the live simulator and ``dynamo-planner run`` until the scenario ends."""
    sim_port, planner_port = free_ports(2)
    record = tmp_path / "record.jsonl"
    prom = start_prometheus([f"127.0.0.1:{p}" for p in (sim_port, planner_port)])
    sim = processes.start(
        "live-sim",
        live_sim_argv(
            port=sim_port,
            etcd=etcd,
            namespace=namespace,
            record=record,
            scenario=scenario,
        ),
    )
    processes.start(
        "planner",
        planner_argv(
            prom=prom,
            etcd=etcd,
            namespace=namespace,
            metrics_port=planner_port,
            extra=[
                arg.format(sim_metrics=f"http://127.0.0.1:{sim_port}/metrics")
                for arg in planner_extra
            ],
        ),
    )
    # Stop the planner a few seconds before the simulator, so that the simulator
    # carries out (and acknowledges) every decision the planner made.
    wait_for_sim_time(record, scenario.run_s - 5, scenario.run_s + 60, processes.logs)
    assert processes.stop("planner") == 0, processes.logs()
    wait_for_exit(sim, 30, processes.logs)
    assert sim.returncode == 0, processes.logs()
    planner_metrics = {
        name: prom_values(prom, f"max_over_time({name}[5m])")
        for name in PLANNER_METRICS
    }
    decisions = [line for line in read_record(record) if line["event"] == "decision"]
    return LoopRun(
        decisions=decisions,
        planner_metrics=planner_metrics,
        etcd_state=await _etcd_state(etcd, namespace),
        summary="\n".join(json.dumps(d) for d in decisions) + "\n" + processes.logs(),
    )


def check_handshake(run: LoopRun) -> None:
    """Decision ids 0, 1, 2, ... each carried out, the last acknowledged in etcd."""
    ids = [d["decision_id"] for d in run.decisions]
    assert len(ids) >= 4, run.summary
    assert ids == list(range(len(ids))), run.summary
    assert run.etcd_state["decision_id"] == ids[-1], run.etcd_state
    assert run.etcd_state["scaled_decision_id"] == ids[-1], run.etcd_state


def check_planner_metrics(run: LoopRun) -> None:
    """Prometheus scraped the planner's own metrics: decisions, replicas, no errors."""
    metrics = run.planner_metrics
    assert metrics["dynamo_planner_decisions_total"][""] >= len(run.decisions) - 1
    assert metrics["dynamo_planner_num_prefill_replicas"][""] >= 2
    errors = metrics["dynamo_planner_errors_total"]
    assert errors["source"] == 0, (errors, run.summary)
    assert errors["connector"] == 0, (errors, run.summary)


@pytest.mark.slow
class TestThroughputLoop:
    """`dynamo-planner run` scales the live simulator with the load it reads from Prometheus."""

    async def test_replicas_follow_the_load(
        self,
        etcd_server: EtcdServer,
        start_prometheus: Callable[[Sequence[str]], PrometheusServer],
        processes: Processes,
        tmp_path: Path,
    ) -> None:
        """Replicas grow in the high phase and shrink after it; every decision is acked."""
        scenario = THROUGHPUT
        run = await run_loop(
            scenario=scenario,
            namespace="throughput",
            planner_extra=(),
            etcd=etcd_server,
            start_prometheus=start_prometheus,
            processes=processes,
            tmp_path=tmp_path,
        )
        check_handshake(run)
        check_planner_metrics(run)
        # decisions lag their interval's traffic by up to one interval (10 s)
        before = [total(d) for d in run.phase(0, scenario.high_start_s)]
        during = [
            total(d) for d in run.phase(scenario.high_start_s, scenario.high_end_s + 10)
        ]
        after = [total(d) for d in run.phase(scenario.high_end_s + 10)]
        assert before, run.summary
        assert during, run.summary
        assert after, run.summary
        assert max(during) > max(before), run.summary
        assert after[-1] < max(during), run.summary
        observed = run.planner_metrics["dynamo_planner_observed_requests_per_second"]
        assert observed[""] > 50, run.summary


@pytest.mark.slow
class TestLoadBasedLoop:
    """`dynamo-planner run --enable-loadbased-scaling` scales from per-worker load."""

    async def test_replicas_react_to_worker_load(
        self,
        etcd_server: EtcdServer,
        start_prometheus: Callable[[Sequence[str]], PrometheusServer],
        processes: Processes,
        tmp_path: Path,
    ) -> None:
        """Prefill workers are added one at a time under load and removed after it."""
        scenario = LOAD_BASED
        run = await run_loop(
            scenario=scenario,
            namespace="loadbased",
            planner_extra=(
                "--enable-loadbased-scaling",
                "--disable-throughput-scaling",
                "--loadbased-router-metrics-url",
                "{sim_metrics}",
                "--loadbased-adjustment-interval",
                "2",
                "--loadbased-metric-samples",
                "4",
            ),
            etcd=etcd_server,
            start_prometheus=start_prometheus,
            processes=processes,
            tmp_path=tmp_path,
        )
        check_handshake(run)
        check_planner_metrics(run)
        prefill = [d["prefill"] for d in run.decisions if d["prefill"] is not None]
        before = [scenario.initial[0]] + [
            d["prefill"]
            for d in run.phase(0, scenario.high_start_s)
            if d["prefill"] is not None
        ]
        during = [
            d["prefill"]
            for d in run.phase(scenario.high_start_s, scenario.high_end_s + 5)
            if d["prefill"] is not None
        ]
        assert during, run.summary
        assert max(during) >= max(before) + 2, run.summary
        assert prefill[-1] < max(during), run.summary
        steps = [b - a for a, b in itertools.pairwise(prefill)]
        assert all(abs(step) <= 1 for step in steps), run.summary  # one per tick
        gaps = [b["sim_s"] - a["sim_s"] for a, b in itertools.pairwise(run.decisions)]
        assert min(gaps) < 10, run.summary  # faster than any throughput interval


async def _etcd_state(etcd: EtcdServer, namespace: str) -> dict[str, int]:
    from dynamo_planner.connectors._etcd import EtcdKV
    from dynamo_planner.connectors.virtual import planner_prefix

    kv = EtcdKV(etcd.url)
    try:
        values, _ = await kv.get_prefix(planner_prefix(namespace))
    finally:
        await kv.aclose()
    prefix = planner_prefix(namespace)
    return {key.removeprefix(prefix): int(value) for key, value in values.items()}
