"""The live simulator: a :class:`~dynamo_planner.sim.engine.Simulation` served in real time.

It stands in for a whole Dynamo deployment, so ``dynamo-planner run`` can be exercised end
to end on one machine:

* **the frontend:** a ``/metrics`` endpoint
  (:class:`~dynamo_planner.sources.exporter.FrontendMetricsExporter`) with the Dynamo
  frontend's metric names and ``model`` / ``dynamo_namespace`` labels: requests are
  counted with their ISL as they arrive, TTFT is recorded at the first token, OSL, ITL and
  duration at completion (the simulator's frontend model, what replays show the planner;
  ``--count-at completion`` records everything at completion, as Dynamo's frontend counts
  ``requests_total``), and every serving or draining worker has its per-worker gauges
  (active prefill tokens, active decode blocks, last TTFT / ISL / ITL). Prometheus scrapes
  it for the throughput planner; the load-based planner's router source reads it directly;
* **the orchestrator:** a :class:`~dynamo_planner.connectors.virtual.VirtualConnectorClient`
  loop that waits for the planner's decisions in etcd, applies each one with
  :meth:`Simulation.scale_to <dynamo_planner.sim.engine.Simulation.scale_to>` (new workers
  serve after the cold start, removed ones drain) and acknowledges it once the new workers
  serve.

Time is honest and simple: every ``tick_s`` (50 ms) of wall time the simulation runs up to
``speed * (wall seconds since the start)``. Keep ``speed`` at 1 for the planner's sake:
Prometheus and the planner measure rates in wall time, while latencies are simulated
seconds, so at any other speed the planner sees rates ``speed`` times what the simulated
engines serve. To make a long trace short, compress the trace instead
(:func:`phased_trace`, ``--rate-scale``): the requests then arrive faster, and everyone
measures the same clock.

Run it as ``python -m dynamo_planner.sim.live --help``; the docs page *Live demo* shows the
three commands of a complete loop (servers, simulator, planner).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs
import numpy as np
import numpy.typing as npt

from dynamo_planner.sim.engine import SimConfig, Simulation
from dynamo_planner.sim.engine_model import EngineModel
from dynamo_planner.sim.results import SimResult
from dynamo_planner.sim.workload import rate_scale, window
from dynamo_planner.sources.exporter import FrontendMetricsExporter
from dynamo_planner.traces import RequestTrace

if TYPE_CHECKING:
    from dynamo_planner.connectors.virtual import (
        PlannerDecision,
        VirtualConnectorClient,
    )

__all__ = [
    "AppliedDecision",
    "LiveSimulation",
    "main",
    "orchestrate",
    "phased_trace",
    "run_live",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

COUNT_AT = ("arrival", "completion")
"""When the live simulator counts a request (see :meth:`LiveSimulation.publish`)."""


def phased_trace(
    trace: RequestTrace,
    rate_scales: Sequence[float],
    *,
    phase_s: float | None = None,
    start_s: float = 0.0,
) -> RequestTrace:
    """Consecutive slices of a trace, each time-compressed by its own rate scale.

    Phase ``i`` lasts ``phase_s`` seconds and replays the next ``phase_s * k_i`` seconds
    of the trace (from ``start_s`` on) at ``k_i`` times their rate. Rate scales
    ``(10, 30, 10)`` give a low, a high and a low phase: a ramp up and back down, with
    the trace's own burstiness and request lengths in each. With one rate scale and no
    ``phase_s``, the whole trace from ``start_s`` on is compressed by it.

    Args:
        trace: The requests.
        rate_scales: One rate multiplier (> 0) per phase.
        phase_s: Length of each phase after compression, in seconds.
        start_s: Where on the trace's clock the first phase starts.

    Returns:
        The requests, arrival times from 0.

    Raises:
        ValueError: No rate scale, one not positive and finite, several without
            ``phase_s``, or phases that need more trace than there is.
    """
    scales = [float(k) for k in rate_scales]
    if not scales:
        msg = "give at least one rate scale"
        raise ValueError(msg)
    for k in scales:
        if not (math.isfinite(k) and k > 0):
            msg = f"rate scales must be finite numbers > 0, got {k!r}"
            raise ValueError(msg)
    if phase_s is None:
        if len(scales) > 1:
            msg = f"{len(scales)} rate scales need a phase length (phase_s)"
            raise ValueError(msg)
        return rate_scale(window(trace, start_s), scales[0])
    if not (math.isfinite(phase_s) and phase_s > 0):
        msg = f"phase_s must be finite and > 0, got {phase_s!r}"
        raise ValueError(msg)
    needed_s = phase_s * math.fsum(scales)
    end_s = float(trace.arrival_s[-1]) if len(trace) else 0.0
    if start_s + needed_s > end_s:
        msg = (
            f"the phases replay {needed_s:g} s of trace from {start_s:g} s, but the "
            f"trace {trace.source} ends at {end_s:g} s; use fewer, shorter or slower "
            "phases"
        )
        raise ValueError(msg)
    arrival: list[FloatArray] = []
    isl: list[FloatArray] = []
    osl: list[FloatArray] = []
    cursor = start_s
    for i, k in enumerate(scales):
        part = window(trace, cursor, cursor + phase_s * k)
        cursor += phase_s * k
        arrival.append(np.asarray(part.arrival_s) / k + i * phase_s)
        isl.append(np.asarray(part.isl_tokens))
        osl.append(np.asarray(part.osl_tokens))
    described = ",".join(f"{k:g}" for k in scales)
    return RequestTrace(
        arrival_s=np.concatenate(arrival),
        isl_tokens=np.concatenate(isl),
        osl_tokens=np.concatenate(osl),
        source=(
            f"{trace.source} from {start_s:g}s, rate x{described}"
            + (f" per {phase_s:g}s phase" if len(scales) > 1 else "")
        ),
    )


@attrs.frozen(kw_only=True)
class AppliedDecision:
    """A planner decision the live simulator carried out.

    Attributes:
        decision_id: The decision's id in etcd.
        prefill: Prefill workers asked for (``None``: left as they were).
        decode: Decode workers asked for (``None``: left as they were).
        sim_s: Simulated time it was applied at.
    """

    decision_id: int
    prefill: int | None
    decode: int | None
    sim_s: float


def _positive(_inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        msg = f"{attribute.name} must be finite and > 0, got {value!r}"
        raise ValueError(msg)


@attrs.define(kw_only=True, eq=False)
class LiveSimulation:
    """A simulation advanced with the wall clock, publishing what a frontend would.

    Attributes:
        sim: The simulation.
        exporter: Where completed requests and per-worker loads are published.
        speed: Simulated seconds per wall second (see the module docs: keep it at 1).
        count_at: When a request is counted: ``"arrival"`` or ``"completion"`` (see
            :meth:`publish`).
        clock: Wall-clock seconds (monotonic).
        decisions: Every decision applied, in order.
    """

    sim: Simulation
    exporter: FrontendMetricsExporter
    speed: float = attrs.field(default=1.0, validator=_positive)
    count_at: str = attrs.field(
        default="arrival", validator=attrs.validators.in_(COUNT_AT)
    )
    clock: Callable[[], float] = time.monotonic
    decisions: list[AppliedDecision] = attrs.field(factory=list)
    _start: float | None = attrs.field(init=False, default=None)
    _reported: npt.NDArray[np.bool_] = attrs.field(init=False)
    _first_reported: npt.NDArray[np.bool_] = attrs.field(init=False)
    _arrivals: int = attrs.field(init=False, default=0)
    _published: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._reported = np.zeros(self.sim.num_requests, dtype=np.bool_)
        self._first_reported = np.zeros(self.sim.num_requests, dtype=np.bool_)

    @property
    def started(self) -> bool:
        """True once :meth:`start` was called."""
        return self._start is not None

    @property
    def published(self) -> int:
        """Completed requests recorded in the exporter so far."""
        return self._published

    def start(self) -> None:
        """Start the clock (simulated time 0 is now) and publish the initial workers."""
        self._start = self.clock()
        self.publish()

    def target_s(self) -> float:
        """The simulated time the wall clock says it is now."""
        if self._start is None:
            return 0.0
        return max(0.0, (self.clock() - self._start) * self.speed)

    def advance(self) -> int:
        """Run the simulation up to the wall clock and publish; returns requests recorded.

        Raises:
            RuntimeError: :meth:`start` was not called.
        """
        if self._start is None:
            msg = "call start() before advance()"
            raise RuntimeError(msg)
        target = self.target_s()
        if target > self.sim.now:
            self.sim.run_until(target)
        return self.publish()

    def publish(self) -> int:
        """Record what happened since the last call, and every worker's load now.

        With ``count_at="arrival"`` a request is counted (with its ISL) when it arrives,
        its TTFT recorded at its first token, and its OSL, ITL and duration when it
        completes: the simulator's frontend model, so the planner sees what a replay of
        the same trace shows it. With ``count_at="completion"`` everything is recorded
        when the request completes, as Dynamo's frontend counts ``requests_total``.

        Returns:
            The number of completed requests recorded.
        """
        sim = self.sim
        if self.count_at == "arrival":
            isl = sim.trace.isl_tokens
            for rid in range(self._arrivals, sim.arrived):
                self.exporter.record_arrival(isl_tokens=float(isl[rid]))
            self._arrivals = sim.arrived
        recorded = 0
        if sim.arrived > self._published:
            result = sim.result()
            if self.count_at == "arrival":
                first = np.flatnonzero(
                    np.isfinite(result.first_token_s) & ~self._first_reported
                )
                self._first_reported[first] = True
                for rid in first.tolist():
                    self.exporter.record_first_token(
                        ttft_s=float(result.first_token_s[rid] - result.arrival_s[rid])
                    )
            new = np.flatnonzero(np.isfinite(result.completion_s) & ~self._reported)
            self._reported[new] = True
            for rid in new.tolist():
                self._record_completion(result, rid)
            recorded = int(new.size)
            self._published += recorded
        self.exporter.set_workers(list(sim.worker_loads()))
        return recorded

    def _record_completion(self, result: SimResult, rid: int) -> None:
        arrival = float(result.arrival_s[rid])
        first = float(result.first_token_s[rid])
        done = float(result.completion_s[rid])
        osl = float(result.osl_tokens[rid])
        itl_s = (done - first) / (osl - 1.0) if osl > 1 else None
        if self.count_at == "arrival":
            self.exporter.record_completion(
                osl_tokens=osl, itl_s=itl_s, duration_s=done - arrival
            )
            return
        self.exporter.record_request(
            isl_tokens=float(result.isl_tokens[rid]),
            osl_tokens=osl,
            ttft_s=first - arrival,
            itl_s=itl_s,
            duration_s=done - arrival,
        )

    def apply(
        self, prefill: int | None, decode: int | None, *, decision_id: int = -1
    ) -> AppliedDecision:
        """Scale the simulated workers (catching up with the wall clock first).

        Args:
            prefill: Prefill workers to run (``None`` or negative: leave them).
            decode: Decode workers to run (``None`` or negative: leave them).
            decision_id: The planner decision this carries out.
        """
        if self._start is not None:
            self.advance()
        p = None if prefill is None or prefill < 0 else int(prefill)
        d = None if decode is None or decode < 0 else int(decode)
        self.sim.scale_to(p, d)
        applied = AppliedDecision(
            decision_id=decision_id, prefill=p, decode=d, sim_s=self.sim.now
        )
        self.decisions.append(applied)
        self.publish()
        return applied

    @property
    def starting(self) -> bool:
        """True while a worker asked for has not started serving (cold start)."""
        counts = self.sim.counts()
        return counts.prefill_starting + counts.decode_starting > 0

    def status(self) -> dict[str, Any]:
        """The simulation's state now, as plain values (for the ``--record`` log)."""
        counts = self.sim.counts()
        return {
            "sim_s": round(self.sim.now, 3),
            "arrived": self.sim.arrived,
            "completed": self.sim.completed,
            "prefill_ready": counts.prefill_ready,
            "prefill_starting": counts.prefill_starting,
            "prefill_draining": counts.prefill_draining,
            "decode_ready": counts.decode_ready,
            "decode_starting": counts.decode_starting,
            "decode_draining": counts.decode_draining,
            "queued_prefill": self.sim.queued_prefill_requests(),
            "waiting_decode": self.sim.waiting_decode_requests(),
        }


async def orchestrate(
    client: VirtualConnectorClient,
    live: LiveSimulation,
    stop: asyncio.Event,
    *,
    poll_s: float = 1.0,
    ready_poll_s: float = 0.05,
    on_decision: Callable[[AppliedDecision], None] | None = None,
) -> list[AppliedDecision]:
    """Carry out the planner's decisions on the simulation until ``stop`` is set.

    Reads the latest decision; if it is new, scales the simulation to it, waits until
    the new workers serve (no worker is starting), and acknowledges it
    (``scaled_decision_id``); then waits (at most ``poll_s``) for the next change. A
    decision already in etcd at the start is carried out too (a restarted orchestrator
    catches up). etcd failures are logged and retried after ``poll_s``; a decision is
    applied once, and its acknowledgement retried until it is written.

    Returns:
        The decisions carried out, in order.
    """
    from dynamo_planner.exceptions import ConnectorError

    done: list[AppliedDecision] = []
    last_id = -1
    unacknowledged: tuple[PlannerDecision, AppliedDecision] | None = None
    while not stop.is_set():
        try:
            if unacknowledged is not None:
                decision, applied = unacknowledged
                while live.starting and not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=ready_poll_s)
                if stop.is_set():
                    break
                await client.complete(decision)
                unacknowledged = None
                done.append(applied)
                logger.info(
                    "decision %d carried out: prefill=%s decode=%s",
                    applied.decision_id,
                    applied.prefill,
                    applied.decode,
                )
                if on_decision is not None:
                    on_decision(applied)
                continue
            decision = await client.get()
            if decision.decision_id > last_id:
                applied = live.apply(
                    decision.num_prefill_workers,
                    decision.num_decode_workers,
                    decision_id=decision.decision_id,
                )
                last_id = decision.decision_id
                unacknowledged = (decision, applied)
                continue
            await client.wait(timeout_s=poll_s)
        except ConnectorError as exc:
            logger.warning("etcd: %s; retrying in %.1f s", exc, poll_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=poll_s)
    return done


async def run_live(
    live: LiveSimulation,
    stop: asyncio.Event,
    *,
    client: VirtualConnectorClient | None = None,
    tick_s: float = 0.05,
    stop_after_s: float | None = None,
    record: IO[str] | None = None,
    record_every_s: float = 1.0,
) -> None:
    """Advance the simulation with the wall clock, orchestrating through ``client``.

    Args:
        live: The live simulation (started here).
        stop: Set it to stop; set here once simulated time passes ``stop_after_s``.
        client: The virtual connector's orchestrator side; ``None``: fixed workers.
        tick_s: Wall seconds between advances.
        stop_after_s: Stop after this many simulated seconds.
        record: Where to write one JSON line per ``record_every_s`` (the workers and
            requests) and per decision carried out.
        record_every_s: Wall seconds between status lines.
    """

    def write(event: str, **values: Any) -> None:
        if record is not None:
            line = {"event": event, **values}
            record.write(json.dumps(line) + "\n")
            record.flush()

    def on_decision(applied: AppliedDecision) -> None:
        status = live.status()
        status["acked_s"] = status.pop("sim_s")
        write("decision", **status, **attrs.asdict(applied))

    live.start()
    write("start", requests=live.sim.num_requests, **live.status())
    orchestrator = None
    if client is not None:
        orchestrator = asyncio.create_task(
            orchestrate(client, live, stop, on_decision=on_decision),
            name="live-sim-orchestrator",
        )
    next_record = 0.0
    try:
        while not stop.is_set():
            live.advance()
            now = live.sim.now
            if now >= next_record:
                write("tick", **live.status())
                next_record = now + record_every_s * live.speed
            if stop_after_s is not None and now >= stop_after_s:
                stop.set()
                break
            if orchestrator is not None and orchestrator.done():
                orchestrator.result()  # an unexpected failure ends the run loudly
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=tick_s)
    finally:
        if orchestrator is not None:
            stop.set()
            orchestrator.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await orchestrator
        write("end", published=live.published, **live.status())


# --------------------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dynamo_planner.sim.live",
        description=(
            "Serve a trace on simulated prefill/decode workers in real time, behind a "
            "/metrics endpoint with the Dynamo frontend's metric names, and carry out the "
            "planner's decisions from etcd (virtual connector)."
        ),
    )
    parser.add_argument(
        "--trace",
        help="trace file (mooncake JSONL or Azure CSV); default: bundled Azure",
    )
    parser.add_argument("--trace-format", help="trace format (default: detected)")
    parser.add_argument(
        "--start",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="where on the trace's clock to start (default 0)",
    )
    parser.add_argument(
        "--rate-scale",
        default="1",
        metavar="K[,K...]",
        help="compress the trace K times (K times the rate); several values: one per "
        "phase of --phase seconds (e.g. 10,30,10 for a ramp up and down); default 1",
    )
    parser.add_argument(
        "--phase",
        type=float,
        default=None,
        metavar="SECONDS",
        help="length of each phase (required with several --rate-scale values)",
    )
    parser.add_argument(
        "--profile-results-dir",
        help="profile directory the engines are modelled on; default: bundled H200",
    )
    parser.add_argument("--model-name", default="llama", help="the `model` label")
    parser.add_argument(
        "--namespace",
        default="dynamo",
        help="the `dynamo_namespace` label and the etcd key prefix (default dynamo)",
    )
    parser.add_argument(
        "--address", default="127.0.0.1", help="address /metrics listens on"
    )
    parser.add_argument(
        "--port", type=int, default=0, help="port of /metrics (default 0: any free)"
    )
    parser.add_argument(
        "--etcd-endpoints",
        default=None,
        metavar="URLS",
        help="etcd URL(s) to read the planner's decisions from; unset: fixed workers",
    )
    parser.add_argument("--initial-prefill", type=int, default=1, metavar="N")
    parser.add_argument("--initial-decode", type=int, default=1, metavar="N")
    parser.add_argument(
        "--cold-start",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="time from scaling up to a new worker serving (default 5)",
    )
    parser.add_argument("--max-num-batched-tokens", type=int, default=8192, metavar="N")
    parser.add_argument(
        "--count-at",
        choices=COUNT_AT,
        default="arrival",
        help="count a request (and its ISL) when it arrives, as the simulator's "
        "replays do (default), or when it completes, as Dynamo's frontend counts "
        "requests_total",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per wall second (default 1; see the module docs)",
    )
    parser.add_argument(
        "--tick", type=float, default=0.05, metavar="SECONDS", help="default 0.05"
    )
    parser.add_argument(
        "--stop-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit after this many simulated seconds (default: run until SIGTERM)",
    )
    parser.add_argument(
        "--record",
        metavar="FILE.jsonl",
        help="write the workers and requests every second and every decision here",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser


def _rate_scales(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        msg = f"--rate-scale must be numbers separated by commas, got {text!r}"
        raise SystemExit(msg) from exc


def build(args: argparse.Namespace) -> LiveSimulation:
    """The live simulation the command-line arguments describe (not started)."""
    from dynamo_planner.data import AZURE_CONV_TRACE, H200_PROFILE_DIR
    from dynamo_planner.profiles import load_profile
    from dynamo_planner.traces import load_requests

    trace_path = Path(args.trace) if args.trace else AZURE_CONV_TRACE
    trace = load_requests(trace_path, format=args.trace_format)
    trace = phased_trace(
        trace, _rate_scales(args.rate_scale), phase_s=args.phase, start_s=args.start
    )
    profile_dir = (
        Path(args.profile_results_dir) if args.profile_results_dir else H200_PROFILE_DIR
    )
    model = EngineModel.from_profile(load_profile(profile_dir))
    sim = Simulation(
        trace,
        model,
        SimConfig(
            cold_start_s=args.cold_start,
            initial_prefill=args.initial_prefill,
            initial_decode=args.initial_decode,
            max_num_batched_tokens=args.max_num_batched_tokens,
        ),
    )
    exporter = FrontendMetricsExporter(
        model_name=args.model_name, namespace=args.namespace
    )
    return LiveSimulation(
        sim=sim, exporter=exporter, speed=args.speed, count_at=args.count_at
    )


async def _amain(
    args: argparse.Namespace, live: LiveSimulation, record: IO[str] | None
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    client = None
    if args.etcd_endpoints:
        from dynamo_planner.connectors.virtual import VirtualConnectorClient

        client = VirtualConnectorClient(args.etcd_endpoints, args.namespace)
    try:
        await run_live(
            live,
            stop,
            client=client,
            tick_s=args.tick,
            stop_after_s=args.stop_after,
            record=record,
        )
    finally:
        if client is not None:
            await client.aclose()


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the live simulator until SIGTERM (or ``--stop-after``); returns 0."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per etcd watch
    live = build(args)
    port = live.exporter.serve(args.port, addr=args.address)
    trace = live.sim.trace
    _say(
        f"live simulator: {len(trace):,} requests over {trace.duration_s:.0f} s "
        f"({trace.source}); metrics on http://{args.address}:{port}/metrics"
        + (f"; decisions from {args.etcd_endpoints}" if args.etcd_endpoints else "")
    )
    try:
        with contextlib.ExitStack() as stack:
            record = None
            if args.record:
                record = stack.enter_context(
                    Path(args.record).open("a", encoding="utf-8")
                )
            asyncio.run(_amain(args, live, record))
    finally:
        live.exporter.close()
        _say(
            f"live simulator: stopped at {live.sim.now:.1f} s, "
            f"{live.published:,} requests completed, "
            f"{len(live.decisions)} decisions carried out"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
