"""What a simulation produced: every request's times and every worker's life.

:meth:`Simulation.result <dynamo_planner.sim.engine.Simulation.result>` gives a
:class:`SimResult`: per-request arrival, prefill, first-token and completion times (TTFT
and ITL follow from them) and a :class:`WorkerSpan` per worker, whose GPU-seconds add up
to the run's cost. :class:`WorkerCounts` is a deployment's workers by state at one moment
(:attr:`Simulation.counts <dynamo_planner.sim.engine.Simulation.counts>`).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import attrs
import numpy as np
import numpy.typing as npt

__all__ = ["SimResult", "WorkerCounts", "WorkerSpan"]

FloatArray = npt.NDArray[np.float64]


@attrs.frozen
class WorkerCounts:
    """Workers of one deployment by state.

    Attributes:
        prefill_ready: Prefill workers serving.
        prefill_starting: Prefill workers requested, not yet serving.
        prefill_draining: Prefill workers finishing their queue before release.
        decode_ready: Decode workers serving.
        decode_starting: Decode workers requested, not yet serving.
        decode_draining: Decode workers finishing their requests before release.
    """

    prefill_ready: int
    prefill_starting: int
    prefill_draining: int
    decode_ready: int
    decode_starting: int
    decode_draining: int

    @property
    def prefill_target(self) -> int:
        """Prefill workers requested and not being removed (starting + ready)."""
        return self.prefill_ready + self.prefill_starting

    @property
    def decode_target(self) -> int:
        """Decode workers requested and not being removed (starting + ready)."""
        return self.decode_ready + self.decode_starting


@attrs.frozen(kw_only=True)
class WorkerSpan:
    """One worker's life.

    Attributes:
        worker_id: E.g. ``"prefill-3"`` (agg workers: ``"agg-3"``).
        component: ``"prefill"`` or ``"decode"`` (agg workers count as decode).
        requested_s: When it was requested (GPUs count from here).
        ready_s: When it started serving (``inf`` if it never did).
        released_s: When its GPUs were released (the end of the run if still running).
        gpus: GPUs of the worker.
    """

    worker_id: str
    component: str
    requested_s: float
    ready_s: float
    released_s: float
    gpus: int

    @property
    def gpu_seconds(self) -> float:
        """GPU-seconds the worker held: lifetime times GPUs."""
        return (self.released_s - self.requested_s) * self.gpus


@attrs.frozen(kw_only=True, eq=False)
class SimResult:
    """What happened to every request and every worker.

    Request arrays are in trace order; a request that never got its first token (or never
    completed) has ``inf`` there.

    Attributes:
        arrival_s: Arrival time.
        isl_tokens: Input length.
        osl_tokens: Output length.
        prefill_start_s: Start of the prefill batch that served the request.
        prefill_end_s: End of that batch.
        first_token_s: First token delivered (decode admission).
        completion_s: Last token delivered.
        workers: Every worker's life.
        end_s: End of the run (GPU time of running workers counts until here).
    """

    arrival_s: FloatArray
    isl_tokens: FloatArray
    osl_tokens: FloatArray
    prefill_start_s: FloatArray
    prefill_end_s: FloatArray
    first_token_s: FloatArray
    completion_s: FloatArray
    workers: tuple[WorkerSpan, ...]
    end_s: float

    @property
    def ttft_ms(self) -> FloatArray:
        """Time to first token of each request, ms (``inf`` if it never came)."""
        return np.asarray((self.first_token_s - self.arrival_s) * 1000.0)

    @property
    def itl_ms(self) -> FloatArray:
        """Mean inter-token latency of each request, ms.

        NaN for requests of one output token (they have no inter-token gap); ``inf`` for
        requests that did not complete.
        """
        gaps = self.osl_tokens - 1.0
        with np.errstate(invalid="ignore", divide="ignore"):
            itl = (self.completion_s - self.first_token_s) * 1000.0 / gaps
        itl = np.where(gaps > 0, itl, np.nan)
        return np.asarray(
            np.where(np.isfinite(self.completion_s) | (gaps <= 0), itl, np.inf)
        )

    @property
    def completed(self) -> npt.NDArray[np.bool_]:
        """Which requests completed."""
        return np.asarray(np.isfinite(self.completion_s))

    @property
    def gpu_seconds(self) -> float:
        """GPU-seconds of all workers (starting, serving and draining)."""
        return float(sum(span.gpu_seconds for span in self.workers))
