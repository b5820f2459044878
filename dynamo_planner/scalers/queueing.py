"""Queueing models for prefill: how long requests wait, and how many meet the TTFT target.

**The queue.** Requests arrive at rate ``λ`` and are routed to ``c`` prefill workers, each
serving its own FIFO queue; routing to the worker with the least outstanding work makes the
system behave like one FIFO queue feeding ``c`` servers (M/G/c). Waiting times use the
Allen-Cunneen two-moment approximation::

    P(wait)         = C(c, a)                       Erlang C, a = λ E[S] (offered load)
    E[W | wait]     = (Ca² + Cs²) / 2 / (c/E[S] - λ)
    P(W > t | wait) = exp(-t / E[W | wait])

with ``Cs²`` the squared coefficient of variation of the service time, computed from the
*mix* of input lengths (not its mean), and ``Ca²`` that of the inter-arrival times (1 for
Poisson arrivals). For M/M/c this is exact.

**Batching.** A prefill engine serves whatever is queued, up to ``max_num_batched_tokens``
prompt tokens, as one batch that costs ``overhead + Σ work(ISL_i)``. A request that finds its
worker idle runs alone; one that waits shares its batch with the others that queued behind
the same batch. The mean batch size of waiting requests is taken as ``1 + (λ/c) E[W | wait]``
(the arrivals at one worker during a wait), capped by the token budget; the overhead is then
shared, so the effective service time is ``work + overhead / k``. Because the batch size
depends on the wait and the wait on the batch size, ``k`` is solved as a fixed point (the
implied batch size falls as the assumed one grows, so the root is unique and found by
bisection). This is a mean-value approximation: it is exact with no batching (``k = 1``) and
it credits batching only where queues actually form.

**TTFT.** A request that does not wait is done after its own prefill, ``overhead +
work(ISL)``. One that waits is done after the wait plus its batch: ``overhead + work(ISL) +
(k - 1) E[work]``. The share meeting the target ``T`` is averaged over the mix::

    attainment = mean_i [ (1 - C) 1{alone_i <= T} + C (1 - exp(-(T - batched_i) / E[W|wait])) ]

A request whose prefill alone exceeds ``T`` never meets it, whatever the replicas; if more
than ``1 - target`` of the mix is like that, no replica count reaches the target and
:func:`servers_for_attainment` raises :class:`~dynamo_planner.exceptions.InfeasibleSLAError`.
:func:`servers_for_target`, which the SLA scaler uses, sizes for the target share of the
requests that *can* meet ``T`` instead.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import attrs
import numpy as np
import numpy.typing as npt

from dynamo_planner.exceptions import InfeasibleSLAError

__all__ = [
    "CAP_WAIT_SHARE",
    "MGcQueue",
    "PrefillMix",
    "PrefillQueueEstimate",
    "as_array",
    "erlang_c",
    "estimate_prefill",
    "exponential_mix",
    "servers_for_attainment",
    "servers_for_target",
    "servers_for_wait_probability",
]

FloatArray = npt.NDArray[np.float64]

MAX_SERVERS = 100_000
"""Largest replica count :func:`servers_for_attainment` will consider."""
CAP_WAIT_SHARE = 0.1
""":func:`servers_for_target` caps where at most ``1 - target`` of requests wait longer
than this share of the TTFT target."""


def _float_array(values: npt.ArrayLike) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def erlang_c(servers: int, offered_load: float) -> float:
    """Probability that an arrival waits in an M/M/c queue (Erlang C).

    Args:
        servers: ``c``, the number of servers (at least 1).
        offered_load: ``a = λ E[S]`` in Erlangs.

    Returns:
        ``C(c, a)``; 1 when the queue is unstable (``a >= c``), 0 when ``a <= 0``.
    """
    if servers < 1:
        msg = f"servers must be >= 1, got {servers}"
        raise ValueError(msg)
    a = float(offered_load)
    if not a > 0:
        return 0.0
    if a >= servers:
        return 1.0
    blocking = 1.0  # Erlang B by the stable recursion B(k) = a B(k-1) / (k + a B(k-1))
    for k in range(1, servers + 1):
        blocking = a * blocking / (k + a * blocking)
    rho = a / servers
    return blocking / (1.0 - rho * (1.0 - blocking))


@attrs.frozen(kw_only=True)
class MGcQueue:
    """An M/G/c FIFO queue under the Allen-Cunneen approximation.

    Attributes:
        servers: ``c``.
        arrival_rate_per_s: ``λ``.
        mean_service_s: ``E[S]``.
        service_cv2: ``Cs²``, the squared coefficient of variation of service times.
        arrival_cv2: ``Ca²`` of inter-arrival times (1 for Poisson).
    """

    servers: int
    arrival_rate_per_s: float
    mean_service_s: float
    service_cv2: float = 1.0
    arrival_cv2: float = 1.0

    @property
    def offered_load(self) -> float:
        """``a = λ E[S]`` in Erlangs."""
        return self.arrival_rate_per_s * self.mean_service_s

    @property
    def utilisation(self) -> float:
        """``rho = a / c``."""
        return self.offered_load / self.servers

    @property
    def stable(self) -> bool:
        """True when ``rho < 1``."""
        return self.utilisation < 1.0

    @property
    def wait_probability(self) -> float:
        """``P(W > 0)``: Erlang C."""
        return erlang_c(self.servers, self.offered_load)

    @property
    def conditional_mean_wait_s(self) -> float:
        """``E[W | W > 0]``; infinite when unstable."""
        if not self.stable:
            return math.inf
        if self.mean_service_s <= 0:
            return 0.0
        drain_per_s = self.servers / self.mean_service_s - self.arrival_rate_per_s
        return (self.arrival_cv2 + self.service_cv2) / 2.0 / drain_per_s

    @property
    def mean_wait_s(self) -> float:
        """``E[W]``: the Allen-Cunneen mean waiting time."""
        if not self.stable:
            return math.inf
        return self.wait_probability * self.conditional_mean_wait_s

    def wait_exceedance(self, wait_s: float) -> float:
        """``P(W > wait_s)``: Erlang C times an exponential tail."""
        if wait_s < 0:
            return 1.0
        if not self.stable:
            return 1.0
        mean = self.conditional_mean_wait_s
        if mean <= 0:
            return 0.0
        return self.wait_probability * math.exp(-wait_s / mean)


@attrs.frozen(kw_only=True, eq=False)
class PrefillMix:
    """The prefill work of a request mix, in seconds, and the batching limits.

    Attributes:
        work_s: Each request's prefill work (TTFT alone minus the batch overhead).
        overhead_s: The fixed cost of one batch.
        isl_tokens: Each request's input length (for the token budget).
        max_num_batched_tokens: Token budget of one batch (0 or less: no batching).
    """

    work_s: FloatArray = attrs.field(converter=_float_array)
    overhead_s: float
    isl_tokens: FloatArray = attrs.field(converter=_float_array)
    max_num_batched_tokens: int = 0

    @property
    def alone_s(self) -> FloatArray:
        """Each request's TTFT alone: overhead plus work."""
        return np.asarray(self.overhead_s + self.work_s, dtype=np.float64)

    @property
    def max_batch(self) -> float:
        """The largest mean batch the token budget allows (1 without batching)."""
        if self.max_num_batched_tokens <= 0 or self.isl_tokens.size == 0:
            return 1.0
        mean_isl = float(np.mean(self.isl_tokens))
        if mean_isl <= 0:
            return 1.0
        return max(1.0, self.max_num_batched_tokens / mean_isl)

    def feasible_share(self, ttft_s: float) -> float:
        """Share of the mix whose TTFT alone is within ``ttft_s``."""
        if self.work_s.size == 0:
            return 1.0
        return float(np.mean(self.alone_s <= ttft_s))


@attrs.frozen(kw_only=True)
class PrefillQueueEstimate:
    """What the queueing model predicts for one prefill replica count.

    Attributes:
        servers: Prefill replicas.
        arrival_rate_per_s: Requests per second.
        batch_size: Mean batch size of requests that wait (1 without batching).
        utilisation: ``λ E[S_eff] / c`` with the batch overhead shared.
        wait_probability: ``P(W > 0)``.
        conditional_mean_wait_s: ``E[W | W > 0]``.
        attainment: Share of requests whose TTFT meets the target.
        mean_ttft_s: Mean TTFT (wait plus batch).
        ttft_quantile_s: TTFT at the quantile asked for (``inf`` if unreachable, NaN
            if none was asked for).
        quantile: The level of :attr:`ttft_quantile_s`.
    """

    servers: int
    arrival_rate_per_s: float
    batch_size: float
    utilisation: float
    wait_probability: float
    conditional_mean_wait_s: float
    attainment: float
    mean_ttft_s: float
    ttft_quantile_s: float
    quantile: float

    @property
    def stable(self) -> bool:
        """True when the queue does not grow without bound."""
        return self.utilisation < 1.0


def _queue(
    mix: PrefillMix,
    servers: int,
    rate: float,
    batch: float,
    arrival_cv2: float,
) -> MGcQueue:
    service = mix.work_s + mix.overhead_s / batch
    mean = float(np.mean(service)) if service.size else 0.0
    cv2 = float(np.var(service)) / mean**2 if mean > 0 else 0.0
    return MGcQueue(
        servers=servers,
        arrival_rate_per_s=rate,
        mean_service_s=mean,
        service_cv2=cv2,
        arrival_cv2=arrival_cv2,
    )


def _implied_batch(
    mix: PrefillMix, servers: int, rate: float, batch: float, arrival_cv2: float
) -> float:
    """The waiting requests' batch size implied by assuming ``batch``."""
    queue = _queue(mix, servers, rate, batch, arrival_cv2)
    if not queue.stable:
        return mix.max_batch
    implied = 1.0 + rate / servers * queue.conditional_mean_wait_s
    return min(mix.max_batch, implied)


def _batch_size(
    mix: PrefillMix, servers: int, rate: float, arrival_cv2: float
) -> float:
    """The fixed point ``k = implied(k)`` on ``[1, max_batch]`` (bisection)."""
    high = mix.max_batch
    if high <= 1.0 or _implied_batch(mix, servers, rate, 1.0, arrival_cv2) <= 1.0:
        return 1.0
    if _implied_batch(mix, servers, rate, high, arrival_cv2) >= high:
        return high
    low = 1.0
    for _ in range(60):
        mid = 0.5 * (low + high)
        if _implied_batch(mix, servers, rate, mid, arrival_cv2) > mid:
            low = mid
        else:
            high = mid
        if high - low < 1e-6:
            break
    return high


def _exceedance(
    mix: PrefillMix, wait_p: float, wait_mean: float, batch: float, ttft_s: float
) -> float:
    """Share of the mix whose TTFT exceeds ``ttft_s``."""
    if mix.work_s.size == 0:
        return 0.0
    alone = mix.alone_s
    batched = alone + (batch - 1.0) * float(np.mean(mix.work_s))
    late_alone = alone > ttft_s
    slack = ttft_s - batched
    if wait_mean <= 0:
        late_waiting = (slack < 0).astype(np.float64)
    else:
        with np.errstate(over="ignore"):
            late_waiting = np.where(
                slack < 0, 1.0, np.exp(-np.maximum(slack, 0.0) / wait_mean)
            )
    share = (1.0 - wait_p) * late_alone + wait_p * late_waiting
    return float(np.mean(share))


def estimate_prefill(
    mix: PrefillMix,
    *,
    servers: int,
    arrival_rate_per_s: float,
    ttft_s: float,
    quantile: float | None = 0.99,
    arrival_cv2: float = 1.0,
) -> PrefillQueueEstimate:
    """Predict waiting, TTFT and attainment for ``servers`` prefill replicas.

    Args:
        mix: The requests' prefill work and the batching limits.
        servers: Prefill replicas (at least 1).
        arrival_rate_per_s: Requests per second.
        ttft_s: The TTFT target.
        quantile: The TTFT quantile to report (``None``: do not compute it).
        arrival_cv2: ``Ca²`` of inter-arrival times.

    Returns:
        The estimate. An unstable queue has attainment 0 and infinite TTFT.
    """
    rate = max(0.0, float(arrival_rate_per_s))
    batch = _batch_size(mix, servers, rate, arrival_cv2)
    queue = _queue(mix, servers, rate, batch, arrival_cv2)
    if not queue.stable:
        return PrefillQueueEstimate(
            servers=servers,
            arrival_rate_per_s=rate,
            batch_size=batch,
            utilisation=queue.utilisation,
            wait_probability=1.0,
            conditional_mean_wait_s=math.inf,
            attainment=0.0,
            mean_ttft_s=math.inf,
            ttft_quantile_s=math.inf,
            quantile=math.nan if quantile is None else quantile,
        )
    wait_p = queue.wait_probability
    wait_mean = queue.conditional_mean_wait_s
    mean_work = float(np.mean(mix.work_s)) if mix.work_s.size else 0.0
    alone = mix.alone_s
    mean_alone = float(np.mean(alone)) if alone.size else 0.0
    mean_ttft = mean_alone + wait_p * ((batch - 1.0) * mean_work + wait_mean)
    attainment = 1.0 - _exceedance(mix, wait_p, wait_mean, batch, ttft_s)
    return PrefillQueueEstimate(
        servers=servers,
        arrival_rate_per_s=rate,
        batch_size=batch,
        utilisation=queue.utilisation,
        wait_probability=wait_p,
        conditional_mean_wait_s=wait_mean,
        attainment=attainment,
        mean_ttft_s=mean_ttft,
        ttft_quantile_s=math.nan
        if quantile is None
        else _quantile(mix, wait_p, wait_mean, batch, quantile),
        quantile=math.nan if quantile is None else quantile,
    )


def _quantile(
    mix: PrefillMix, wait_p: float, wait_mean: float, batch: float, quantile: float
) -> float:
    """The TTFT ``t`` with ``P(TTFT > t) = 1 - quantile`` over the mix (bisection)."""
    if mix.work_s.size == 0:
        return 0.0
    tail = 1.0 - quantile
    low = 0.0
    high = float(np.max(mix.alone_s)) + (batch - 1.0) * float(np.mean(mix.work_s))
    high = max(high, 1e-6)
    while _exceedance(mix, wait_p, wait_mean, batch, high) > tail:
        high *= 2.0
        if high > 1e9:
            return math.inf
    for _ in range(80):
        mid = 0.5 * (low + high)
        if _exceedance(mix, wait_p, wait_mean, batch, mid) > tail:
            low = mid
        else:
            high = mid
        if high - low < 1e-7 * max(1.0, high):
            break
    return high


def servers_for_attainment(
    mix: PrefillMix,
    *,
    arrival_rate_per_s: float,
    ttft_s: float,
    attainment: float,
    arrival_cv2: float = 1.0,
    min_servers: int = 1,
) -> PrefillQueueEstimate:
    """The fewest prefill replicas whose predicted attainment reaches the target.

    Args:
        mix: The requests' prefill work and the batching limits.
        arrival_rate_per_s: Requests per second.
        ttft_s: The TTFT target.
        attainment: The share of requests that must meet it (0 < attainment < 1).
        arrival_cv2: ``Ca²`` of inter-arrival times.
        min_servers: Fewest replicas to consider.

    Returns:
        The estimate at the chosen replica count (its ``ttft_quantile_s`` is at the
        ``attainment`` level, so it is within ``ttft_s``).

    Raises:
        InfeasibleSLAError: Too much of the mix exceeds ``ttft_s`` even alone.
    """
    feasible = mix.feasible_share(ttft_s)
    if feasible < attainment:
        alone_ms = np.sort(mix.alone_s) * 1000.0
        worst = float(alone_ms[-1]) if alone_ms.size else 0.0
        raise InfeasibleSLAError(
            f"only {feasible:.1%} of requests can meet TTFT {ttft_s * 1000:g} ms even "
            f"alone on an idle prefill worker (the slowest takes {worst:,.0f} ms); "
            f"the target share {attainment:.1%} cannot be reached with any number of "
            "replicas"
        )
    rate = max(0.0, float(arrival_rate_per_s))

    def accept(servers: int) -> PrefillQueueEstimate | None:
        estimate = estimate_prefill(
            mix,
            servers=servers,
            arrival_rate_per_s=rate,
            ttft_s=ttft_s,
            quantile=None,
            arrival_cv2=arrival_cv2,
        )
        ok = estimate.stable and estimate.attainment >= attainment
        return estimate if ok else None

    start = max(1, int(min_servers), _fewest_stable_servers(mix, rate))
    chosen = _fewest_servers(start, accept)
    if chosen is None:
        raise InfeasibleSLAError(
            f"no prefill replica count up to {MAX_SERVERS} reaches {attainment:.1%} "
            f"within TTFT {ttft_s * 1000:g} ms at {rate:g} requests/s"
        )
    return estimate_prefill(
        mix,
        servers=chosen.servers,
        arrival_rate_per_s=rate,
        ttft_s=ttft_s,
        quantile=attainment,
        arrival_cv2=arrival_cv2,
    )


def _fewest_servers(
    start: int, accept: Callable[[int], PrefillQueueEstimate | None]
) -> PrefillQueueEstimate | None:
    """The fewest replicas from ``start`` that ``accept`` takes (more never hurt).

    Steps of one up to 256 replicas, then doubling steps (at most 64), then back down one
    at a time past the big steps. ``None`` when nothing up to :data:`MAX_SERVERS` is taken.
    """
    servers = start
    step = 1
    found = None
    while servers <= MAX_SERVERS:
        found = accept(servers)
        if found is not None:
            break
        servers += step
        step = min(step * 2, 64) if servers > 256 else 1
    if found is None:
        return None
    while found.servers > start:
        lower = accept(found.servers - 1)
        if lower is None:
            break
        found = lower
    return found


def servers_for_wait_probability(
    mix: PrefillMix,
    *,
    arrival_rate_per_s: float,
    wait_probability: float,
    ttft_s: float,
    wait_s: float = 0.0,
    arrival_cv2: float = 1.0,
    min_servers: int = 1,
) -> PrefillQueueEstimate:
    """The fewest replicas at which at most ``wait_probability`` wait longer than ``wait_s``.

    With that few requests waiting longer, nearly every request takes about its prefill
    time alone: more replicas can only shorten waits that are already rare or short.

    Args:
        mix: The requests' prefill work and the batching limits.
        arrival_rate_per_s: Requests per second.
        wait_probability: The largest share of requests allowed to wait longer than
            ``wait_s`` (0 < p < 1).
        ttft_s: The TTFT target (for the attainment reported).
        wait_s: The wait that counts (0: any wait).
        arrival_cv2: ``Ca²`` of inter-arrival times.
        min_servers: Fewest replicas to consider.

    Returns:
        The estimate at the chosen replica count.
    """
    rate = max(0.0, float(arrival_rate_per_s))

    def accept(servers: int) -> PrefillQueueEstimate | None:
        estimate = estimate_prefill(
            mix,
            servers=servers,
            arrival_rate_per_s=rate,
            ttft_s=ttft_s,
            quantile=None,
            arrival_cv2=arrival_cv2,
        )
        if not estimate.stable:
            return None
        longer = estimate.wait_probability * (
            math.exp(-wait_s / estimate.conditional_mean_wait_s)
            if estimate.conditional_mean_wait_s > 0
            else 0.0
        )
        return estimate if longer <= wait_probability else None

    found = _fewest_servers(max(1, int(min_servers)), accept)
    if found is not None:
        return found
    raise InfeasibleSLAError(
        f"no prefill replica count up to {MAX_SERVERS} keeps the share of waiting "
        f"requests within {wait_probability:.1%} at {rate:g} requests/s"
    )


def _fewest_stable_servers(mix: PrefillMix, rate_per_s: float) -> int:
    """The fewest replicas whose queue can be stable at ``rate_per_s``.

    Below that count even the largest batches cannot keep up with the arrivals.
    """
    if rate_per_s <= 0:
        return 1
    full_batch_s = float(np.mean(mix.work_s)) + mix.overhead_s / mix.max_batch
    return math.floor(rate_per_s * full_batch_s) + 1


def servers_for_target(
    mix: PrefillMix,
    *,
    arrival_rate_per_s: float,
    ttft_s: float,
    attainment: float,
    arrival_cv2: float = 1.0,
    min_servers: int = 1,
) -> tuple[PrefillQueueEstimate, bool]:
    """Replicas so that ``attainment`` of the requests that *can* meet ``ttft_s`` do.

    A request whose prefill alone exceeds ``ttft_s`` misses it whatever the replicas, so
    the goal is ``attainment x feasible share`` of the mix (all of it when every request
    can meet the target). Writing requests off that way could let a tighter target need
    fewer replicas (it writes off the requests that were hardest to serve in time); to
    keep the answer monotone, it is the most any looser target would need: the goal is
    checked at ``ttft_s`` and at every larger prefill time of the mix (where the
    feasible share changes; between those points a looser target needs no more). The
    answer is capped at the replicas where at most ``1 - attainment`` of requests wait
    longer than a tenth of ``ttft_s`` (:data:`CAP_WAIT_SHARE`; beyond that, more
    replicas only shorten waits that are already rare or short). Both parts grow with
    the load, the target share and a tighter ``ttft_s``, so the result never falls when
    any of them rises.

    Returns:
        The estimate at the chosen count (its ``ttft_quantile_s`` at the ``attainment``
        level), and whether every request of the mix can meet ``ttft_s`` alone.
    """
    cap = servers_for_wait_probability(
        mix,
        arrival_rate_per_s=arrival_rate_per_s,
        wait_probability=1.0 - attainment,
        ttft_s=ttft_s,
        wait_s=CAP_WAIT_SHARE * ttft_s,
        arrival_cv2=arrival_cv2,
        min_servers=min_servers,
    )
    rate = max(0.0, float(arrival_rate_per_s))
    alone = mix.alone_s
    targets = np.concatenate(([ttft_s], np.unique(alone[alone > ttft_s])))
    low = max(1, int(min_servers), _fewest_stable_servers(mix, rate))
    servers = min(low, cap.servers)
    while servers < cap.servers and not _meets_goals(
        mix, servers, rate, targets, attainment, arrival_cv2
    ):
        servers += 1
    final = estimate_prefill(
        mix,
        servers=servers,
        arrival_rate_per_s=arrival_rate_per_s,
        ttft_s=ttft_s,
        quantile=attainment,
        arrival_cv2=arrival_cv2,
    )
    return final, mix.feasible_share(ttft_s) >= 1.0


def _meets_goals(
    mix: PrefillMix,
    servers: int,
    rate: float,
    targets_s: FloatArray,
    attainment: float,
    arrival_cv2: float,
) -> bool:
    """Whether ``servers`` reach ``attainment x feasible share`` at every target."""
    if mix.work_s.size == 0:
        return True
    batch = _batch_size(mix, servers, rate, arrival_cv2)
    queue = _queue(mix, servers, rate, batch, arrival_cv2)
    if not queue.stable:
        return False
    wait_p = queue.wait_probability
    wait_mean = queue.conditional_mean_wait_s
    alone = mix.alone_s
    batched = alone + (batch - 1.0) * float(np.mean(mix.work_s))
    target = targets_s[:, None]
    in_time_alone = alone[None, :] <= target
    slack = target - batched[None, :]
    if wait_mean <= 0:
        in_time_waiting = (slack >= 0).astype(np.float64)
    else:
        with np.errstate(over="ignore"):
            in_time_waiting = np.where(
                slack < 0, 0.0, 1.0 - np.exp(-np.maximum(slack, 0.0) / wait_mean)
            )
    reached = np.mean((1.0 - wait_p) * in_time_alone + wait_p * in_time_waiting, axis=1)
    goals = attainment * np.mean(in_time_alone, axis=1)
    return bool(np.all(reached >= goals - 1e-12))


def exponential_mix(mean: float, points: int = 64) -> FloatArray:
    """Quantiles of an exponential distribution with ``mean`` (a stand-in mix).

    Used when only a mean length is known: ``points`` equally likely values whose mean is
    ``mean`` and whose squared coefficient of variation is close to 1.
    """
    u = (np.arange(points) + 0.5) / points
    values = -np.log1p(-u)
    return np.asarray(values / values.mean() * mean, dtype=np.float64)


def as_array(values: Sequence[float] | FloatArray) -> FloatArray:
    """Finite, non-negative float array of ``values``."""
    array = np.asarray(values, dtype=np.float64)
    return np.asarray(array[np.isfinite(array) & (array >= 0)], dtype=np.float64)
