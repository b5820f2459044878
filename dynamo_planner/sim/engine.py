"""The request-level simulator: prefill and decode workers serving a trace on simulated time.

How a request travels (all times simulated, in seconds):

1. **Arrival.** The frontend routes it to the ready prefill worker with the fewest
   outstanding prefill tokens (queued plus running: "least loaded"). With no ready prefill
   worker it waits at the frontend until one is ready.
2. **Prefill.** Each prefill worker serves its own FIFO queue in batches: from the head of
   the queue it takes requests while their total prompt tokens stay within
   ``max_num_batched_tokens`` (a request longer than that runs alone). A batch takes
   :meth:`EngineModel.prefill_ms` of its total tokens.
3. **KV transfer.** After ``kv_transfer_ms`` the request is ready for decode.
4. **Decode admission.** Requests ready for decode wait in one FIFO queue. The head is
   admitted to the ready decode worker with the fewest reserved KV tokens among those with
   room for it: a request reserves ``ISL + OSL`` tokens (what it will hold when done), so
   nothing is ever preempted. An empty worker admits any request. The **first token** is
   delivered at admission: TTFT = queueing + prefill + transfer + waiting for KV room.
5. **Decode.** A decode worker batches continuously: every running request gains one token
   per step, and a step takes :meth:`EngineModel.decode_step_ms` at the worker's
   concurrency and mean context. A running request's context is counted as
   ``ISL + OSL/2``, the profiler's own label for a point (the mean context over a request's
   life), so the step time is constant while the batch does not change, and the time to the
   next completion is computed, not stepped through token by token. A request completes
   after ``OSL - 1`` decode tokens (its first token came with admission).

**Aggregated workers** (``SimConfig(mode="agg")``). Each worker serves both phases, as a
vLLM engine with chunked prefill does:

1. **Arrival.** The request goes to the ready worker with the least work: prompt tokens
   still to compute plus KV tokens reserved (a stand-in for Dynamo's KV router cost,
   prefill blocks plus decode blocks, without prefix reuse). It waits in that worker's
   FIFO queue.
2. **Admission.** From the head of the queue, requests are admitted while their KV
   reservation (``ISL + OSL`` tokens) fits the decode profile's KV capacity (an empty
   worker admits any request) and ``max_decode_batch`` allows.
3. **Steps.** Each step decodes one token for every decoding request and computes a chunk
   of admitted prompts, FIFO, up to ``max_num_batched_tokens`` less one token per decoding
   request (a long prompt spans several steps). The step takes
   :meth:`EngineModel.agg_step_ms <dynamo_planner.sim.engine_model.EngineModel.agg_step_ms>`:
   the decode step time plus the chunk's prefill time, back to back. A request's first
   token comes at the end of the step that computes the last of its prompt; it then
   completes after ``OSL - 1`` more steps. While no prompt waits, steps are alike and the
   time to the next completion is computed as for decode workers; a new arrival starts a
   step at once.

So one request alone on an idle agg worker gets exactly its profiled prefill time, then
the profiled ITL. Agg workers use ``decode_gpus_per_engine`` GPUs and count as decode
workers everywhere (counts, GPU spans, ``ReplicaState.decode``).

Scaling (:meth:`Simulation.scale_to`): a new worker counts GPUs from the moment it is
requested and serves after ``cold_start_s``. Removing workers first cancels workers still
starting (newest first), then drains the least-loaded ready ones: a draining worker gets no
new requests, finishes what it holds, and is released when empty; no request is lost.

Per-worker loads (:meth:`Simulation.worker_loads`) are what the router reports: with a
``metric_delay_s`` they are those of a scrape that old (scrapes every ``load_scrape_s``).
What the frontend reports (:meth:`Simulation.observe`) is built with
:mod:`~dynamo_planner.sim.frontend_view`, and a run's outcome
(:meth:`Simulation.result`) is a :class:`~dynamo_planner.sim.results.SimResult`.

The simulator is deterministic: it draws no random numbers, and ties are broken by the
order events were created.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from itertools import compress
from operator import mul
from typing import Any, TypeVar

import attrs
import numpy as np
import numpy.typing as npt

from dynamo_planner.sim.engine_model import EngineModel
from dynamo_planner.sim.frontend_view import (
    arrival_dispersion,
    histogram_buckets,
    scraped_dispersion,
)
from dynamo_planner.sim.results import SimResult, WorkerCounts, WorkerSpan
from dynamo_planner.traces import RequestTrace
from dynamo_planner.values import Observation, Sample, WorkerLoad

__all__ = ["SimConfig", "SimResult", "Simulation", "WorkerCounts", "WorkerSpan"]

FloatArray = npt.NDArray[np.float64]

_INF = math.inf
FRONTEND_METRICS = ("samples", "histograms")
"""What an observation may carry beside counts and means (``SimConfig.frontend_metrics``)."""

# worker states
STARTING = 0
READY = 1
DRAINING = 2
STOPPED = 3
_STATE_NAMES = ("starting", "ready", "draining", "stopped")

# event kinds
_PREFILL_DONE = 0
_DECODE_ARRIVE = 1
_DECODE_NEXT = 2
_WORKER_READY = 3
_AGG_STEP = 4

_FINISH_TOLERANCE = 1e-6  # tokens


def _non_negative(_inst: Any, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (value >= 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be finite and >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class SimConfig:
    """How the simulated deployment behaves.

    Attributes:
        mode: ``"disagg"`` (prefill and decode workers) or ``"agg"`` (aggregated
            workers serving both phases, counted as decode workers; see the module
            docstring).
        max_num_batched_tokens: Token budget of one prefill batch (vLLM's
            ``--max-num-batched-tokens``); a longer request runs alone. In agg mode,
            the token budget of one engine step (running decodes take one token each,
            prefill chunks the rest).
        kv_transfer_ms: Delay between the end of a request's prefill and its readiness
            for decode.
        cold_start_s: Time from requesting a worker to it serving.
        prefill_gpus_per_engine: GPUs of one prefill worker.
        decode_gpus_per_engine: GPUs of one decode worker.
        initial_prefill: Prefill workers ready at time 0 (default 1; 0 and only 0 in
            agg mode).
        initial_decode: Decode (agg: aggregated) workers ready at time 0.
        kv_block_size_tokens: Tokens per KV block, to report ``active_decode_blocks``.
        max_decode_batch: Most requests one decode worker runs at once (``None``: bounded
            by KV capacity only).
        metric_delay_s: How late the frontend's metrics are: an observation at time
            ``t`` covers the interval ending at ``t - metric_delay_s``, and the
            per-worker loads are those of the last scrape at or before
            ``t - metric_delay_s``.
        load_scrape_s: How often the per-worker loads are scraped (the resolution of
            the delayed per-worker loads and of the router's sampling buffer).
        frontend_metrics: What an observation carries beside counts and means:
            ``"samples"`` (every request's ISL, OSL, TTFT and ITL, and the arrivals'
            per-second dispersion: more than a Dynamo frontend gives) or
            ``"histograms"`` (what Prometheus reads from a Dynamo frontend: cumulative
            bucket counts of TTFT, ITL per token, ISL and OSL, with the bounds of
            :class:`~dynamo_planner.sources.exporter.FrontendMetricsExporter`).
        frontend_scrape_s: With ``"histograms"``, how often Prometheus scrapes the
            frontend's request counter: the observation then carries the arrivals'
            index of dispersion that the Prometheus source measures from the scrapes
            in the window (:func:`~dynamo_planner.sources.dispersion.index_of_dispersion`;
            scrapes at whole multiples of this period, the counter counting arrivals).
            ``None`` (the default): unknown, as with a frontend scraped too rarely.
    """

    mode: str = attrs.field(
        default="disagg", validator=attrs.validators.in_(("disagg", "agg"))
    )
    max_num_batched_tokens: int = attrs.field(
        default=8192, validator=attrs.validators.gt(0)
    )
    kv_transfer_ms: float = attrs.field(default=0.0, validator=_non_negative)
    cold_start_s: float = attrs.field(default=60.0, validator=_non_negative)
    prefill_gpus_per_engine: int = attrs.field(
        default=1, validator=attrs.validators.ge(1)
    )
    decode_gpus_per_engine: int = attrs.field(
        default=1, validator=attrs.validators.ge(1)
    )
    initial_prefill: int = attrs.field(validator=attrs.validators.ge(0))
    initial_decode: int = attrs.field(default=1, validator=attrs.validators.ge(0))
    kv_block_size_tokens: int = attrs.field(
        default=16, validator=attrs.validators.gt(0)
    )
    max_decode_batch: int | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.gt(0)),
    )
    metric_delay_s: float = attrs.field(default=0.0, validator=_non_negative)
    load_scrape_s: float = attrs.field(default=0.5, validator=attrs.validators.gt(0))
    frontend_metrics: str = attrs.field(
        default="samples", validator=attrs.validators.in_(FRONTEND_METRICS)
    )
    frontend_scrape_s: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.gt(0))
    )

    @initial_prefill.default
    def _initial_prefill(self) -> int:
        return 0 if self.mode == "agg" else 1

    def __attrs_post_init__(self) -> None:
        if self.frontend_scrape_s is not None and self.frontend_metrics != "histograms":
            msg = (
                "frontend_scrape_s applies to frontend_metrics='histograms' (the "
                "samples view counts arrivals per second), got frontend_metrics="
                f"{self.frontend_metrics!r}"
            )
            raise ValueError(msg)
        if self.mode == "agg" and self.initial_prefill:
            msg = (
                "an agg deployment has no prefill workers: initial_prefill must be 0, "
                f"got {self.initial_prefill}"
            )
            raise ValueError(msg)


class _Lifecycle:
    """What every worker has: its index and its start, ready and end times."""

    __slots__ = ("end_s", "index", "ready_s", "start_s", "state")

    def __init__(self, index: int, start_s: float) -> None:
        self.index = index
        self.state = STARTING
        self.start_s = start_s
        self.ready_s = _INF
        self.end_s = _INF


class _PrefillWorker(_Lifecycle):
    __slots__ = (
        "busy",
        "last_isl",
        "last_ttft_ms",
        "outstanding",
        "queue",
    )

    def __init__(self, index: int, start_s: float) -> None:
        super().__init__(index, start_s)
        self.queue: deque[int] = deque()
        self.outstanding = 0.0
        self.busy = False
        self.last_ttft_ms: float | None = None
        self.last_isl: float | None = None


class _DecodeWorker(_Lifecycle):
    __slots__ = (
        "gen",
        "gen_t",
        "heap",
        "label",
        "last_itl_ms",
        "n",
        "reserved",
        "step_s",
        "version",
    )

    def __init__(self, index: int, start_s: float) -> None:
        super().__init__(index, start_s)
        self.heap: list[tuple[float, int]] = []
        self.n = 0
        self.label = 0.0
        self.reserved = 0.0
        self.gen = 0.0
        self.gen_t = 0.0
        self.step_s = 0.0
        self.version = 0
        self.last_itl_ms: float | None = None


class _AggWorker(_Lifecycle):
    __slots__ = (
        "chunk",
        "gen",
        "gen_t",
        "heap",
        "label",
        "last_isl",
        "last_itl_ms",
        "last_ttft_ms",
        "left",
        "n",
        "outstanding",
        "prefilling",
        "queue",
        "reserved",
        "step_s",
        "stepping",
        "version",
    )

    def __init__(self, index: int, start_s: float) -> None:
        super().__init__(index, start_s)
        self.queue: deque[int] = deque()  # routed here, not yet admitted
        self.prefilling: list[int] = []  # admitted, prompt not fully computed
        self.left: dict[int, float] = {}  # prompt tokens still to compute
        self.outstanding = 0.0  # prompt tokens still to compute, queued or admitted
        self.chunk: list[tuple[int, float]] = []  # the step in flight's prefill
        self.stepping = False  # a step with prefill work is in flight
        self.heap: list[tuple[float, int]] = []  # decoding requests
        self.n = 0  # decoding requests
        self.label = 0.0
        self.reserved = 0.0  # KV tokens reserved by admitted requests
        self.gen = 0.0
        self.gen_t = 0.0
        self.step_s = 0.0
        self.version = 0
        self.last_ttft_ms: float | None = None
        self.last_isl: float | None = None
        self.last_itl_ms: float | None = None

    @property
    def load(self) -> float:
        """Tokens the worker still has to prefill plus the KV tokens it holds."""
        return self.outstanding + self.reserved

    @property
    def empty(self) -> bool:
        return not self.queue and not self.prefilling and self.n == 0


_Worker = _PrefillWorker | _DecodeWorker | _AggWorker
_W = TypeVar("_W", _PrefillWorker, _DecodeWorker, _AggWorker)


class Simulation:
    """A deployment serving a request trace on simulated time.

    Drive it with :meth:`run_until` (or :meth:`run_to_completion`), change it with
    :meth:`scale_to`, read it with :meth:`counts`, :meth:`observe`,
    :meth:`worker_loads` and :meth:`result`. With ``config.mode == "agg"`` its workers
    are aggregated ones, reported and counted as decode workers.

    Args:
        trace: The requests (arrival times in seconds from 0).
        model: The engine model.
        config: Deployment behaviour.
    """

    def __init__(
        self, trace: RequestTrace, model: EngineModel, config: SimConfig | None = None
    ) -> None:
        self.trace = trace
        self.model = model
        self.config = config or SimConfig()
        cfg = self.config
        self._arr: list[float] = trace.arrival_s.tolist()
        self._isl: list[float] = trace.isl_tokens.tolist()
        self._osl: list[float] = [max(1.0, o) for o in trace.osl_tokens.tolist()]
        self._isl_array = np.asarray(trace.isl_tokens, dtype=np.float64)
        count = len(self._arr)
        self._count = count
        self._next = 0
        self._completed = 0
        self._now = 0.0
        self._seq = 0
        self._events: list[tuple[float, int, int, Any, Any]] = []
        self._pstart = [_INF] * count
        self._pend = [_INF] * count
        self._first = [_INF] * count
        self._done = [_INF] * count
        # time-ordered logs for the frontend metrics
        self._ft_t: list[float] = []
        self._ft_ttft_ms: list[float] = []
        self._dn_t: list[float] = []
        self._dn_itl_ms: list[float] = []
        self._dn_dur_s: list[float] = []
        self._dn_osl: list[float] = []
        self._dn_has_itl: list[bool] = []
        self._prefill: list[_PrefillWorker] = []
        self._decode: list[_DecodeWorker] = []
        self._pready: list[_PrefillWorker] = []
        self._dready: list[_DecodeWorker] = []
        self._aggs: list[_AggWorker] = []
        self._aready: list[_AggWorker] = []
        self._fpending: deque[int] = deque()
        self._dpending: deque[int] = deque()
        self._budget = float(cfg.max_num_batched_tokens)
        self._transfer_s = cfg.kv_transfer_ms / 1000.0
        self._max_kv = float(model.max_kv_tokens)
        self._max_batch = cfg.max_decode_batch or (1 << 62)
        self._prefill_ms = model.prefill_ms
        self._step_ms = model.decode_step_ms_whole
        self._agg_step_ms = model.agg_step_ms
        self._agg = cfg.mode == "agg"
        self._route = self._route_agg if self._agg else self._route_prefill
        # per-worker load history (scrapes on a grid of load_scrape_s)
        self._scrape_s = cfg.load_scrape_s
        self._hist_t: list[float] = []
        self._hist_loads: list[tuple[WorkerLoad, ...]] = []
        self._hist_k = 0  # next grid point to record: _hist_k * load_scrape_s
        self._hist_next = _INF  # its time; inf while not recording
        self._hist_keep_s = 0.0
        if cfg.metric_delay_s > 0:
            self.keep_load_history(0.0)
        for _ in range(cfg.initial_prefill):
            self._make_ready(self._new_prefill(0.0), 0.0)
        for _ in range(cfg.initial_decode):
            self._make_ready(self._new_decode_or_agg(0.0), 0.0)

    # ------------------------------------------------------------------ state
    @property
    def now(self) -> float:
        """The simulated time, in seconds."""
        return self._now

    @property
    def num_requests(self) -> int:
        """Requests in the trace."""
        return self._count

    @property
    def arrived(self) -> int:
        """Requests that have arrived so far."""
        return self._next

    @property
    def completed(self) -> int:
        """Requests completed so far."""
        return self._completed

    @property
    def done(self) -> bool:
        """True when every request of the trace has completed."""
        return self._completed == self._count

    @property
    def last_completion_s(self) -> float:
        """Time of the latest completion so far (0 before any)."""
        return self._dn_t[-1] if self._dn_t else 0.0

    @property
    def trace_end_s(self) -> float:
        """Arrival time of the last request (0 for an empty trace)."""
        return self._arr[-1] if self._arr else 0.0

    def counts(self) -> WorkerCounts:
        """Workers by component and state, now."""
        p = [w.state for w in self._prefill]
        d = [w.state for w in self._decode] + [w.state for w in self._aggs]
        return WorkerCounts(
            prefill_ready=p.count(READY),
            prefill_starting=p.count(STARTING),
            prefill_draining=p.count(DRAINING),
            decode_ready=d.count(READY),
            decode_starting=d.count(STARTING),
            decode_draining=d.count(DRAINING),
        )

    def gpus_in_use(self) -> int:
        """GPUs held now (starting, serving and draining workers)."""
        cfg = self.config
        p = sum(1 for w in self._prefill if w.state != STOPPED)
        d = sum(1 for w in self._decode if w.state != STOPPED)
        d += sum(1 for w in self._aggs if w.state != STOPPED)
        return p * cfg.prefill_gpus_per_engine + d * cfg.decode_gpus_per_engine

    def queued_prefill_requests(self) -> int:
        """Requests waiting for prefill (at the frontend or in a worker's queue)."""
        if self._agg:
            return len(self._fpending) + sum(
                len(w.queue) + len(w.prefilling) for w in self._aggs
            )
        return len(self._fpending) + sum(len(w.queue) for w in self._prefill)

    def waiting_decode_requests(self) -> int:
        """Requests done with prefill and waiting for KV room on a decode worker."""
        return len(self._dpending)

    # ------------------------------------------------------------------ scaling
    def scale_to(self, prefill: int | None, decode: int | None) -> None:
        """Ask for ``prefill`` and ``decode`` workers (``None`` leaves one unchanged).

        Counts are of workers requested and not being removed (starting plus ready).
        Extra workers are started; surplus ones are cancelled if still starting (newest
        first), else drained, least loaded first. In agg mode ``decode`` counts the
        aggregated workers and ``prefill`` must be ``None`` or 0.

        Raises:
            ValueError: Prefill workers asked of an agg deployment.
        """
        t = self._now
        if self._agg and prefill:
            msg = f"an agg deployment has no prefill workers; asked for {prefill}"
            raise ValueError(msg)
        if prefill is not None:
            self._scale_prefill(max(0, int(prefill)), t)
        if decode is not None:
            self._scale_decode(max(0, int(decode)), t)

    def _scale_prefill(self, target: int, t: float) -> None:
        self._scale_pool(
            self._prefill,
            self._pready,
            target,
            t,
            new=self._new_prefill,
            load=lambda w: w.outstanding,
            idle=lambda w: not w.busy and not w.queue,
        )

    def _scale_decode(self, target: int, t: float) -> None:
        if self._agg:
            self._scale_pool(
                self._aggs,
                self._aready,
                target,
                t,
                new=self._new_agg,
                load=lambda w: w.load,
                idle=lambda w: w.empty,
            )
            return
        self._scale_pool(
            self._decode,
            self._dready,
            target,
            t,
            new=self._new_decode,
            load=lambda w: w.reserved,
            idle=lambda w: w.n == 0,
        )

    def _scale_pool(
        self,
        pool: list[_W],
        ready: list[_W],
        target: int,
        t: float,
        *,
        new: Callable[[float], _W],
        load: Callable[[_W], float],
        idle: Callable[[_W], bool],
    ) -> None:
        """Start workers up to ``target``, or retire the surplus.

        Surplus workers still starting are stopped first (newest first); then the least
        loaded ready workers stop taking work and drain, and those already idle stop now.
        """
        live = [w for w in pool if w.state in (STARTING, READY)]
        if target > len(live):
            for _ in range(target - len(live)):
                self._start_worker(new(t), t)
            return
        surplus = len(live) - target
        for w in reversed([w for w in live if w.state == STARTING]):
            if surplus == 0:
                return
            self._stop(w, t)
            surplus -= 1
        for w in sorted(ready, key=lambda w: (load(w), -w.index))[:surplus]:
            ready.remove(w)
            w.state = DRAINING
            if idle(w):
                self._stop(w, t)

    def _new_prefill(self, t: float) -> _PrefillWorker:
        w = _PrefillWorker(len(self._prefill), t)
        self._prefill.append(w)
        return w

    def _new_decode(self, t: float) -> _DecodeWorker:
        w = _DecodeWorker(len(self._decode), t)
        self._decode.append(w)
        return w

    def _new_agg(self, t: float) -> _AggWorker:
        w = _AggWorker(len(self._aggs), t)
        self._aggs.append(w)
        return w

    def _new_decode_or_agg(self, t: float) -> _DecodeWorker | _AggWorker:
        return self._new_agg(t) if self._agg else self._new_decode(t)

    def _start_worker(self, w: _Worker, t: float) -> None:
        delay = self.config.cold_start_s
        if delay <= 0:
            self._make_ready(w, t)
            return
        self._seq += 1
        heapq.heappush(self._events, (t + delay, self._seq, _WORKER_READY, w, None))

    def _make_ready(self, w: _Worker, t: float) -> None:
        if w.state != STARTING:
            return  # cancelled while starting
        w.state = READY
        w.ready_s = t
        if isinstance(w, _PrefillWorker):
            self._pready.append(w)
            pending = self._fpending
            while pending:
                self._route_prefill(pending.popleft(), t, start=False)
            for other in self._pready:
                if other.queue and not other.busy:
                    self._start_batch(other, t)
        elif isinstance(w, _AggWorker):
            self._aready.append(w)
            pending = self._fpending
            while pending:
                self._route_agg(pending.popleft(), t, start=False)
            for agg in self._aready:
                if agg.queue and not agg.stepping:
                    self._agg_kick(agg, t)
        else:
            self._dready.append(w)
            self._dispatch_decode(t)

    def _stop(self, w: _Worker, t: float) -> None:
        w.state = STOPPED
        w.end_s = t

    # ------------------------------------------------------------------ event loop
    def run_until(self, t_end: float) -> None:
        """Process every arrival and event up to and including time ``t_end``."""
        events = self._events
        arr = self._arr
        count = self._count
        pop = heapq.heappop
        route = self._route
        i = self._next
        scrape = self._hist_next  # next per-worker load scrape (inf: none)
        while True:
            ta = arr[i] if i < count else _INF
            if events and events[0][0] <= ta:
                te = events[0][0]
                if te > t_end:
                    break
                if te > scrape:
                    scrape = self._scrape_before(te)
                _, _, kind, obj, data = pop(events)
                self._now = te
                if kind == _DECODE_NEXT:
                    if data == obj.version:
                        self._decode_next(obj, te)
                elif kind == _AGG_STEP:
                    if data == obj.version:
                        self._agg_step(obj, te)
                elif kind == _PREFILL_DONE:
                    self._prefill_done(obj, data, te)
                elif kind == _DECODE_ARRIVE:
                    self._dpending.extend(data)
                    self._dispatch_decode(te)
                else:
                    self._make_ready(obj, te)
            else:
                if ta > t_end or i >= count:
                    break
                if ta > scrape:
                    scrape = self._scrape_before(ta)
                self._now = ta
                self._next = i + 1
                route(i, ta)
                i += 1
        self._next = i
        if t_end > self._now and math.isfinite(t_end):
            self._now = t_end
        if scrape <= t_end and math.isfinite(t_end):
            # nothing else happens up to t_end: the scrapes up to it see this state
            self._scrape_before(math.nextafter(t_end, _INF))

    def run_to_completion(self, *, limit_s: float = _INF) -> None:
        """Run until nothing is left to happen (or until time ``limit_s``).

        Stops early, with requests unfinished, if no worker is left to serve them.
        """
        self.run_until(limit_s)

    def next_event_s(self) -> float:
        """Time of the next arrival or event (``inf`` when nothing is left to happen)."""
        ta = self._arr[self._next] if self._next < self._count else _INF
        te = self._events[0][0] if self._events else _INF
        return min(ta, te)

    # ------------------------------------------------------------------ prefill
    def _route_prefill(self, rid: int, t: float, *, start: bool = True) -> None:
        ready = self._pready
        if not ready:
            self._fpending.append(rid)
            return
        w = ready[0]
        if len(ready) > 1:
            best = w.outstanding
            for other in ready:
                if other.outstanding < best:
                    w = other
                    best = other.outstanding
        w.queue.append(rid)
        w.outstanding += self._isl[rid]
        if start and not w.busy:
            self._start_batch(w, t)

    def _start_batch(self, w: _PrefillWorker, t: float) -> None:
        queue = w.queue
        isl = self._isl
        pstart = self._pstart
        rid = queue.popleft()
        pstart[rid] = t
        total = isl[rid]
        batch = [rid]
        budget = self._budget
        while queue and total + isl[queue[0]] <= budget:
            rid = queue.popleft()
            pstart[rid] = t
            total += isl[rid]
            batch.append(rid)
        w.busy = True
        self._seq += 1
        heapq.heappush(
            self._events,
            (
                t + self._prefill_ms(total) / 1000.0,
                self._seq,
                _PREFILL_DONE,
                w,
                (batch, total),
            ),
        )

    def _prefill_done(
        self, w: _PrefillWorker, data: tuple[list[int], float], t: float
    ) -> None:
        batch, total = data
        w.busy = False
        w.outstanding -= total
        pend = self._pend
        for rid in batch:
            pend[rid] = t
        last = batch[-1]
        w.last_isl = self._isl[last]
        w.last_ttft_ms = (t + self._transfer_s - self._arr[last]) * 1000.0
        if self._transfer_s > 0:
            self._seq += 1
            heapq.heappush(
                self._events,
                (t + self._transfer_s, self._seq, _DECODE_ARRIVE, None, batch),
            )
        else:
            self._dpending.extend(batch)
            self._dispatch_decode(t)
        if w.queue:
            self._start_batch(w, t)
        elif w.state == DRAINING:
            self._stop(w, t)

    # ------------------------------------------------------------------ decode
    def _dispatch_decode(self, t: float, changed: _DecodeWorker | None = None) -> None:
        """Admit waiting requests in FIFO order; reschedule every worker that changed."""
        pending = self._dpending
        ready = self._dready
        touched: list[_DecodeWorker] = [] if changed is None else [changed]
        if not pending or not ready:
            for w in touched:
                self._reschedule(w, t)
            return
        isl = self._isl
        osl = self._osl
        max_kv = self._max_kv
        max_batch = self._max_batch
        while pending:
            rid = pending[0]
            need = isl[rid] + osl[rid]
            best: _DecodeWorker | None = None
            best_reserved = _INF
            for w in ready:
                if w.reserved < best_reserved and (
                    w.n == 0 or (w.reserved + need <= max_kv and w.n < max_batch)
                ):
                    best = w
                    best_reserved = w.reserved
            if best is None:
                break
            pending.popleft()
            if self._admit(best, rid, t) and best not in touched:
                touched.append(best)
        for w in touched:
            self._reschedule(w, t)

    def _admit(self, w: _DecodeWorker, rid: int, t: float) -> bool:
        """Start decoding ``rid`` on ``w``; False if it completed at once (OSL 1)."""
        self._first[rid] = t
        ttft_ms = (t - self._arr[rid]) * 1000.0
        self._ft_t.append(t)
        self._ft_ttft_ms.append(ttft_ms)
        o = self._osl[rid]
        if o <= 1.0:
            self._finish(rid, t, None)
            return False
        if w.n and t != w.gen_t:
            w.gen += (t - w.gen_t) / w.step_s
        w.gen_t = t
        heapq.heappush(w.heap, (w.gen + (o - 1.0), rid))
        i = self._isl[rid]
        w.n += 1
        w.label += i + 0.5 * o
        w.reserved += i + o
        return True

    def _reschedule(self, w: _DecodeWorker, t: float) -> None:
        w.version += 1
        if w.n == 0:
            w.label = 0.0
            w.reserved = 0.0
            if w.state == DRAINING:
                self._stop(w, t)
            return
        w.step_s = self._step_ms(w.n, w.label / w.n) / 1000.0
        self._seq += 1
        heapq.heappush(
            self._events,
            (
                t + (w.heap[0][0] - w.gen) * w.step_s,
                self._seq,
                _DECODE_NEXT,
                w,
                w.version,
            ),
        )

    def _complete_due(self, w: _DecodeWorker | _AggWorker, t: float) -> None:
        """Finish every request of ``w`` whose last token is generated by time ``t``."""
        heap = w.heap
        limit = w.gen + _FINISH_TOLERANCE
        isl = self._isl
        osl = self._osl
        first = self._first
        while heap and heap[0][0] <= limit:
            _, rid = heapq.heappop(heap)
            o = osl[rid]
            i = isl[rid]
            w.n -= 1
            w.label -= i + 0.5 * o
            w.reserved -= i + o
            itl_ms = (t - first[rid]) * 1000.0 / (o - 1.0)
            w.last_itl_ms = itl_ms
            self._finish(rid, t, itl_ms)

    def _decode_next(self, w: _DecodeWorker, t: float) -> None:
        w.gen += (t - w.gen_t) / w.step_s
        w.gen_t = t
        self._complete_due(w, t)
        if w.state == READY:
            self._dispatch_decode(t, w)
        else:
            self._reschedule(w, t)

    def _finish(self, rid: int, t: float, itl_ms: float | None) -> None:
        self._done[rid] = t
        self._completed += 1
        self._dn_t.append(t)
        self._dn_itl_ms.append(itl_ms if itl_ms is not None else 0.0)
        self._dn_has_itl.append(itl_ms is not None)
        self._dn_dur_s.append(t - self._arr[rid])
        self._dn_osl.append(self._osl[rid])

    # ------------------------------------------------------------------ agg
    def _route_agg(self, rid: int, t: float, *, start: bool = True) -> None:
        """Route to the ready agg worker with the least prefill work plus KV held."""
        ready = self._aready
        if not ready:
            self._fpending.append(rid)
            return
        w = ready[0]
        if len(ready) > 1:
            best = w.load
            for other in ready:
                load = other.load
                if load < best:
                    w = other
                    best = load
        w.queue.append(rid)
        w.outstanding += self._isl[rid]
        if start and not w.stepping:
            self._agg_kick(w, t)

    def _agg_kick(self, w: _AggWorker, t: float) -> None:
        """Prefill work for a worker decoding only (or idle): start a step now."""
        if w.n:
            w.gen += (t - w.gen_t) / w.step_s
        w.gen_t = t
        self._agg_schedule(w, t)

    def _agg_schedule(self, w: _AggWorker, t: float) -> None:
        """Admit queued requests and start the next step (no step is in flight)."""
        isl = self._isl
        osl = self._osl
        queue = w.queue
        prefilling = w.prefilling
        while queue:
            rid = queue[0]
            need = isl[rid] + osl[rid]
            admitted = w.n + len(prefilling)
            if admitted and (
                w.reserved + need > self._max_kv or admitted >= self._max_batch
            ):
                break
            queue.popleft()
            prefilling.append(rid)
            w.left[rid] = isl[rid]
            w.reserved += need
        w.version += 1
        room = self._budget - w.n  # running decodes take one token of the budget
        if prefilling and room > 0:
            chunk: list[tuple[int, float]] = []
            total = 0.0
            pstart = self._pstart
            for rid in prefilling:
                take = min(w.left[rid], room - total)
                if take < 0:
                    break
                if pstart[rid] == _INF:
                    pstart[rid] = t
                chunk.append((rid, take))
                total += take
                if total >= room:
                    break
            w.chunk = chunk
            w.stepping = True
            context = w.label / w.n if w.n else 0.0
            w.step_s = self._agg_step_ms(w.n, context, total) / 1000.0
            self._seq += 1
            heapq.heappush(
                self._events, (t + w.step_s, self._seq, _AGG_STEP, w, w.version)
            )
            return
        if w.n == 0:
            w.label = 0.0
            if not prefilling:
                w.reserved = 0.0
                if w.state == DRAINING and not queue:
                    self._stop(w, t)
            return
        # decode only: every step is alike until the next completion
        w.step_s = self._agg_step_ms(w.n, w.label / w.n, 0.0) / 1000.0
        self._seq += 1
        heapq.heappush(
            self._events,
            (
                t + max(0.0, w.heap[0][0] - w.gen) * w.step_s,
                self._seq,
                _AGG_STEP,
                w,
                w.version,
            ),
        )

    def _agg_step(self, w: _AggWorker, t: float) -> None:
        """The end of a step (with prefill) or the next completion (decode only)."""
        if w.n:
            w.gen += (t - w.gen_t) / w.step_s
        w.gen_t = t
        self._complete_due(w, t)
        if w.stepping:
            w.stepping = False
            left = w.left
            for rid, take in w.chunk:
                rest = left[rid] - take
                w.outstanding -= take
                if rest > _FINISH_TOLERANCE:
                    left[rid] = rest
                    continue
                del left[rid]
                w.prefilling.remove(rid)
                self._pend[rid] = t
                self._agg_first_token(w, rid, t)
            w.chunk = []
        self._agg_schedule(w, t)

    def _agg_first_token(self, w: _AggWorker, rid: int, t: float) -> None:
        """The prompt is computed: the first token is out, decoding starts."""
        self._first[rid] = t
        ttft_ms = (t - self._arr[rid]) * 1000.0
        self._ft_t.append(t)
        self._ft_ttft_ms.append(ttft_ms)
        i = self._isl[rid]
        o = self._osl[rid]
        w.last_ttft_ms = ttft_ms
        w.last_isl = i
        if o <= 1.0:
            w.reserved -= i + o
            self._finish(rid, t, None)
            return
        heapq.heappush(w.heap, (w.gen + (o - 1.0), rid))
        w.n += 1
        w.label += i + 0.5 * o

    # ------------------------------------------------------------------ metrics
    def observe(self, interval_s: float) -> Observation:
        """What a Dynamo frontend reports for the last ``interval_s`` seconds.

        The window ends at ``now - metric_delay_s``. Request count, mean ISL and the ISL
        samples are over requests that arrived in the window; mean TTFT over first tokens
        delivered in it; mean ITL, mean OSL, OSL samples and mean duration over requests
        completed in it (the frontend learns a request's output length when it ends). A
        window with no arrival reports a request count of zero and everything else
        unknown. ``workers`` is :meth:`worker_loads` (as of the metric delay).
        """
        end = self._now - self.config.metric_delay_s
        return self.window(end - interval_s, end, interval_s=interval_s)

    def window(
        self, start_s: float, end_s: float, *, interval_s: float | None = None
    ) -> Observation:
        """The frontend's view of the window ``[start_s, end_s)`` (see :meth:`observe`)."""
        width = interval_s if interval_s is not None else end_s - start_s
        i0 = bisect_left(self._arr, start_s, 0, self._next)
        i1 = bisect_left(self._arr, end_s, 0, self._next)
        workers = self.worker_loads()
        num = i1 - i0
        if num <= 0:
            return Observation(
                timestamp_s=end_s, interval_s=width, num_req=0.0, workers=workers
            )
        isl = self._isl_array[i0:i1]
        f0 = bisect_left(self._ft_t, start_s)
        f1 = bisect_left(self._ft_t, end_s)
        ttft_samples = self._ft_ttft_ms[f0:f1]
        ttft = math.fsum(ttft_samples) / (f1 - f0) if f1 > f0 else None
        d0 = bisect_left(self._dn_t, start_s)
        d1 = bisect_left(self._dn_t, end_s)
        osl_samples: Sequence[float] = self._dn_osl[d0:d1]
        itl: float | None = None
        osl: float | None = None
        duration: float | None = None
        itl_samples: list[float] = []
        itl_tokens: list[float] = []  # tokens after the first, per ITL sample
        if d1 > d0:
            osl = math.fsum(osl_samples) / (d1 - d0)
            duration = math.fsum(self._dn_dur_s[d0:d1]) / (d1 - d0)
            has = self._dn_has_itl[d0:d1]
            itl_samples = list(compress(self._dn_itl_ms[d0:d1], has))
            itl_tokens = [o - 1.0 for o in compress(osl_samples, has)]
            if itl_samples:
                itl = math.fsum(itl_samples) / len(itl_samples)
        extra: dict[str, Any]
        if self.config.frontend_metrics == "histograms":
            weight = math.fsum(itl_tokens)
            if weight > 0:  # a frontend's mean ITL is per token, as its buckets are
                itl = math.fsum(map(mul, itl_samples, itl_tokens)) / weight
            extra = {
                "ttft_histogram_ms": histogram_buckets(
                    ttft_samples, "ttft_ms", scale=1000.0
                ),
                # a frontend observes one ITL per token after the first
                "itl_histogram_ms": histogram_buckets(
                    itl_samples, "itl_ms", scale=1000.0, weights=itl_tokens
                ),
                "isl_histogram_tokens": histogram_buckets(isl, "isl_tokens"),
                "osl_histogram_tokens": histogram_buckets(osl_samples, "osl_tokens"),
            }
            scrape_s = self.config.frontend_scrape_s
            if scrape_s is not None:
                extra["arrival_dispersion"] = scraped_dispersion(
                    self._arr[i0:i1], start_s, end_s, scrape_s
                )
        else:
            extra = {
                "arrival_dispersion": arrival_dispersion(
                    self._arr[i0:i1], start_s, end_s
                ),
                "isl_samples_tokens": isl.tolist(),
                "osl_samples_tokens": osl_samples,
                "ttft_samples_ms": ttft_samples,
                "itl_samples_ms": itl_samples,
            }
        return Observation(
            timestamp_s=end_s,
            interval_s=width,
            num_req=float(num),
            isl_tokens=float(isl.mean()),
            osl_tokens=_sample_or_unknown(osl),
            ttft_ms=_sample_or_unknown(ttft),
            itl_ms=_sample_or_unknown(itl),
            request_duration_s=_sample_or_unknown(duration),
            workers=workers,
            **extra,
        )

    def worker_loads(self) -> tuple[WorkerLoad, ...]:
        """Per-worker load as the router reports it now, for serving and draining workers.

        With a ``metric_delay_s``, the loads of the last scrape (every
        ``load_scrape_s``) at or before ``now - metric_delay_s``: a worker started since
        is not listed yet, one released since still is. Agg workers are listed as
        ``worker_type="decode"`` with all five gauges.
        """
        delay = self.config.metric_delay_s
        if delay > 0:
            return self.worker_loads_at(self._now - delay)
        return self._current_loads()

    def worker_loads_at(self, time_s: float) -> tuple[WorkerLoad, ...]:
        """The per-worker loads of the last scrape at or before ``time_s``.

        Scrapes are kept for the span asked with :meth:`keep_load_history` (and the
        metric delay). Before the first scrape kept, the earliest one; at or after now,
        the loads now.
        """
        if time_s >= self._now or not self._hist_t:
            return self._current_loads()
        index = bisect_right(self._hist_t, time_s + 1e-9) - 1
        return self._hist_loads[max(index, 0)]

    def keep_load_history(self, span_s: float) -> None:
        """Scrape the per-worker loads every ``load_scrape_s`` and keep ``span_s`` of them.

        The metric delay and one scrape period are kept on top. Scraping starts now (a
        simulation with a metric delay scrapes from time 0).
        """
        keep = span_s + self.config.metric_delay_s + self._scrape_s
        self._hist_keep_s = max(self._hist_keep_s, keep)
        if math.isinf(self._hist_next):
            self._hist_k = math.ceil(self._now / self._scrape_s - 1e-9)
            self._hist_next = self._hist_k * self._scrape_s

    def _scrape_before(self, t: float) -> float:
        """Record the state as the scrapes due before ``t`` see it; the next scrape time.

        Nothing changes between the last event and ``t``, so every scrape due in
        ``[next scrape, t)`` sees the same loads: one record stands for them.
        """
        self._hist_t.append(self._hist_next)
        self._hist_loads.append(self._current_loads())
        every = self._scrape_s
        self._hist_k = max(self._hist_k + 1, math.ceil(t / every - 1e-12))
        self._hist_next = self._hist_k * every
        if self._hist_next < t:
            self._hist_k += 1
            self._hist_next = self._hist_k * every
        cut = bisect_right(self._hist_t, t - self._hist_keep_s) - 1
        if cut > 256:
            del self._hist_t[:cut]
            del self._hist_loads[:cut]
        return self._hist_next

    def _current_loads(self) -> tuple[WorkerLoad, ...]:
        block = float(self.config.kv_block_size_tokens)
        loads: list[WorkerLoad] = [
            WorkerLoad(
                worker_id=f"prefill-{w.index}",
                worker_type="prefill",
                active_prefill_tokens=w.outstanding,
                last_ttft_ms=w.last_ttft_ms,
                last_isl_tokens=w.last_isl,
            )
            for w in self._prefill
            if w.state in (READY, DRAINING)
        ]
        loads.extend(
            WorkerLoad(
                worker_id=f"decode-{w.index}",
                worker_type="decode",
                active_decode_blocks=math.ceil(w.reserved / block),
                last_itl_ms=w.last_itl_ms,
            )
            for w in self._decode
            if w.state in (READY, DRAINING)
        )
        loads.extend(
            WorkerLoad(
                worker_id=f"agg-{w.index}",
                worker_type="decode",
                active_prefill_tokens=max(0.0, w.outstanding),
                active_decode_blocks=math.ceil(max(0.0, w.reserved) / block),
                last_ttft_ms=w.last_ttft_ms,
                last_itl_ms=w.last_itl_ms,
                last_isl_tokens=w.last_isl,
            )
            for w in self._aggs
            if w.state in (READY, DRAINING)
        )
        return tuple(loads)

    # ------------------------------------------------------------------ results
    def result(self, end_s: float | None = None) -> SimResult:
        """Per-request times and worker lives; running workers count until ``end_s``.

        ``end_s`` defaults to the current simulated time.
        """
        end = self._now if end_s is None else float(end_s)
        cfg = self.config
        spans = [
            _span(w, "prefill", end, cfg.prefill_gpus_per_engine) for w in self._prefill
        ]
        spans.extend(
            _span(w, "decode", end, cfg.decode_gpus_per_engine) for w in self._decode
        )
        spans.extend(
            _span(w, "decode", end, cfg.decode_gpus_per_engine, name="agg")
            for w in self._aggs
        )
        return SimResult(
            arrival_s=np.asarray(self._arr, dtype=np.float64),
            isl_tokens=np.asarray(self._isl, dtype=np.float64),
            osl_tokens=np.asarray(self._osl, dtype=np.float64),
            prefill_start_s=np.asarray(self._pstart, dtype=np.float64),
            prefill_end_s=np.asarray(self._pend, dtype=np.float64),
            first_token_s=np.asarray(self._first, dtype=np.float64),
            completion_s=np.asarray(self._done, dtype=np.float64),
            workers=tuple(spans),
            end_s=end,
        )


def _sample_or_unknown(value: float | None) -> Sample:
    return Sample.of(value) if value is not None else Sample.unknown()


def _span(
    w: _Worker, component: str, end: float, gpus: int, *, name: str | None = None
) -> WorkerSpan:
    released = min(w.end_s, end) if math.isfinite(w.end_s) else end
    return WorkerSpan(
        worker_id=f"{name or component}-{w.index}",
        component=component,
        requested_s=w.start_s,
        ready_s=w.ready_s,
        released_s=max(released, w.start_s),
        gpus=gpus,
    )
