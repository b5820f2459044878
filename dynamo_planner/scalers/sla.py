"""The SLA scaler: replicas so that a target share of requests meets TTFT and ITL.

The reference scaler (:mod:`dynamo_planner.scalers.reference`) sizes prefill for 100%
utilisation at the mean ISL and decode at the exact ITL boundary at the mean context, so any
queueing or spread breaks the targets. This scaler sizes for the *share* of requests that
must meet them (``sla_attainment``, 0.99 by default):

**Demand.** The request rate is the forecast's upper quantile (``Forecast.upper``, at the
level the predictors report) or, when the forecast has no spread, the forecast plus that
quantile of the recent one-interval changes (``prior_spread``, 10%, while fewer than three
intervals were seen). Part of that band is the next interval's own random draw (which
requests arrive, and how long they are), which the queueing and decode models below
already carry; the band is narrowed by it
(:mod:`~dynamo_planner.scalers.sampling_noise`, ``remove_own_noise``), the mean ISL and
OSL bands likewise. The rate is then raised to the largest rate expected
before a worker requested now would serve: ``Demand.peak_num_req`` when the planner looked
ahead, otherwise the recent upward trend extrapolated to when workers asked for at the
next decision will serve (``cold_start_s`` plus half an interval past the forecast's
middle). The trend is the least-squares slope less its noise (``sqrt(slope² - SE²)``),
so counts that merely scatter add nothing. Once the last count fell below the one before
by more than one standard deviation of two intervals' draws (``sqrt(Ca² (a + b))``,
:data:`~dynamo_planner.scalers.demand_history.TURN_Z`), demand has turned: no trend is added, and the count is not "rising" for
the ramp tests below, however the slope over the older intervals still leans. The
request mix (ISL and OSL per request) comes from the demand's or observation's samples,
else from the observation's ISL and OSL histograms (the frontend's buckets), scaled to the
upper forecast means (raised the same way by a rising trend); with neither, an
exponential mix around those means stands
in (:mod:`~dynamo_planner.scalers.request_mix`).

**Prefill.** An M/G/c queue with batching (:mod:`dynamo_planner.scalers.queueing`) over the
mix's prefill times: the fewest replicas whose predicted share of requests with TTFT
(waiting included) within the target reaches ``sla_attainment`` of the requests that
*can* meet it (requests whose prefill alone exceeds the target cannot be helped by
replicas and are written off, and the plan says how many), capped at the replicas where
at most ``1 - sla_attainment`` of requests wait longer than a tenth of the target (beyond
that more replicas only shorten waits that are already rare or short). Writing requests
off could let a tighter target need fewer replicas, so the count is the most any looser
target would need (:func:`~dynamo_planner.scalers.queueing.servers_for_target`). Both
parts grow with the load, the share and a tighter target, so the replicas do too. The
count is then raised until at most ``prefill_max_wait`` (80%) of requests wait: near
saturation, where nearly every request waits and batches grow, the model's errors grow
fastest, and a queue one replica short there collapses for several intervals (on Azure
x10 with copies 30 s apart, at 60 s intervals and 180 s cold starts, one worker at a
predicted 90% wait took an interval's attainment from 100% to 18% and the next four to
nearly 0; ``benchmarks/sla_shifts.py``). The wait is taken at the demand expected (the
forecast's point count and mean ISL), not at the upper quantile sized for, which is
headroom already; one worker is judged at the demand sized for, as it has no other
worker to absorb a burst and the model is furthest from the engine there.
If the mean request alone exceeds the target, the plan says so
and sizes on a best-effort basis (``strict=True`` refuses with
:class:`~dynamo_planner.exceptions.InfeasibleSLAError`). A worker whose queued prefill
work (``WorkerLoad.active_prefill_tokens``) alone outlasts the next interval serves no
new request in it, so one replica is added for each such worker.

**Decode** (:mod:`dynamo_planner.scalers.decode_model`). One decode step costs ``a + Σ
(b + c ctx_i)`` over the running requests (the fitted law of
:mod:`dynamo_planner.interpolators.fitted`; for another interpolator the law is fitted to
its ITL). A request stays ``OSL x ITL`` in decode, so by Little's law the
requests in decode form a Poisson population (an infinite-server queue) whose step work
has mean ``λ (ITL/1000) E[OSL (b + c ctx)]`` and variance ``λ (ITL/1000)
E[OSL (b + c ctx)^2]``. Admission to the least-loaded worker splits it over ``D``
workers, so one worker's step is ``a`` plus its share: the mean ITL solves
``ITL = a + mean work / D``. Admission evens out the counts, but not the work of
requests that stay for their whole decode and whose contexts differ by 100x, so one
worker's work fluctuates like a Poisson population of its own, with variance
``(λ/D) (ITL/1000) E[OSL (b + c ctx)^2]`` (an even split of the aggregate's fluctuation,
``sd / D``, predicted ITL p99 15.7 ms on Mooncake x10 at 7 workers where the simulator
gives 20.0 ms; this gives 19.6 ms). A single worker has no router to even out its load,
and its spread is amplified by ``1 / (1 - load)``, as its mean is, and its quantile is
taken in the skewed tail of a population with a few long contexts (Cornish-Fisher;
:mod:`~dynamo_planner.scalers.decode_model`). ``D`` is the fewest workers
whose ITL at the ``sla_attainment`` quantile (mean plus ``z`` standard deviations) is
within the target, and whose reserved KV (``ISL + OSL`` per request, same law) fits the
cache. While a prefill backlog drains, requests enter decode faster than they arrive; the
decode rate is then the rate requests completed in the last interval. Throughput is never
read from a second surface: it is concurrency over ITL.

**The forecast's errors** (:mod:`~dynamo_planner.scalers.forecast_errors`). The quantile
covers the forecast's typical error, not a burst. The relative errors of the request-count
forecasts of the last hour, narrowed by the next interval's own draw as the band is
and applied to this forecast, are scenarios of the next interval;
``D`` is raised until the decode model's ITL misses averaged over them (each scenario
weighted by its requests) are within ``1 - sla_attainment``. On smooth traffic the errors
are small and this adds nothing; traffic that has shown bursts keeps the headroom to
carry one (one decode worker near its limit does not).

**Hysteresis.** A component scales up at once, and down only after its requirement stayed
lower for ``scale_down_intervals`` intervals in a row: the plan is the largest requirement
of the last ``scale_down_intervals`` intervals. By default that is two intervals, or one
when an interval lasts at least :data:`PREFILL_SCALE_DOWN_HOLD_S` (one minute) for
prefill and :data:`DECODE_SCALE_DOWN_HOLD_S` (two minutes) for decode: one decision then
already saw that much traffic. A window of one is widened to two while the forecast
puts the request count, the mean ISL or the mean OSL below the interval just observed: a
forecast dip is not yet demand that has stayed low (a trend or a perfect forecast would
otherwise release a worker on its word alone; the constant forecast never dips), and for
:data:`~dynamo_planner.scalers.hysteresis.REVERSAL_HOLD_DECISIONS` decisions after a
component went down and straight back
up (where one worker more or less sits right at the target, a window of one alternates
between them). At a component's first decision the running replicas stand for the
requirement of the interval before it, with a window of two: a planner started on a
running deployment does not release its workers on the word of a model not yet
calibrated against it. One exception (``release_on_fall``): while the request count clearly falls (a least-squares
slope over the recent intervals below minus two standard errors, the mirror of the ramp
test below) and the last interval's mean TTFT and ITL were within their targets (no
backlog to work off), a lower requirement is applied at once, unless the component's
requirement rose at the previous decision. Noise rarely passes that test, and a
component just raised is never released in the next interval, so this does not thrash;
after a peak it returns a worker one interval sooner. Rises are confirmed
(``confirm_rises``) when the cold start is at least one interval: a worker asked for now
serves only after a cold start, so a component is raised above its running replicas only
as far as every decision over the last cold start (at least the last two, at most the
last :data:`~dynamo_planner.scalers.hysteresis.MAX_CONFIRM_DECISIONS`, three) needed
(:class:`~dynamo_planner.scalers.hysteresis.RiseConfirmation`): a need that has not
lasted a cold start is likely gone before the worker serves. The exceptions: the request count clearly
rises (its slope above :data:`CONFIRM_RISE_T`, three, standard errors, and no turn), the
component's last interval missed its target for more than :data:`SHORT_MISS_MULTIPLE`
times the allowance (the need is already here; for decode, whose misses are observed
only as requests finish, also when the decode model puts that share of ITLs on the
running workers above the target at the load just observed; for prefill, also when the
running workers would have more than ``prefill_max_wait`` of requests wait at the demand
sized for: the queue would collapse before a confirmed worker served), or the previous plan
already asked for the workers (a planned rise is kept and released by the scale-down hold like any other,
even while its workers start). The hold keeps what was
planned; it never raises a component to a need that was held back. A rise of an interval
or two is then not paid for with a cold start that ends after it.

**Calibration.** When replicas were steady over the observed interval, the model's mean TTFT
and ITL at the observed load are compared with the observed means, and the service-time
scale factor that reconciles them is blended into the running factor (half-life of one
interval), bounded to ``[0.5, 2]``. An interval no factor in that range explains, or whose
mean TTFT is above the target (a backlog, e.g. requests queued on a worker during a cold
start), is a transient and is ignored. The factors multiply prefill times and decode step
times in every later sizing, and every plan states them. Where the source gives per-request
ITLs (``Observation.itl_samples_ms``), or else ITL buckets (``itl_histogram_ms``, read as a
normal's spread about the mean ITL by
:func:`~dynamo_planner.scalers.calibration.spread_from_histogram`), the observed spread of
ITL about its mean, at the attainment quantile, is compared with the decode model's in the
same way, and the ratio, bounded to
:data:`~dynamo_planner.scalers.calibration.SPREAD_BOUNDS`, is blended into
:attr:`SLAScaler.spread_factor`, which scales the model's spread in every later sizing. The model gives each worker a Poisson
population of its own; admission to the worker with the fewest reserved KV tokens evens
out work as well as counts, so the observed spread is often narrower.

**Attainment feedback.** The model is conservative where the traffic is smooth: on
Azure x10 it sizes for 99% and 99.99% of the requests meet both targets. The target is a
share over the run, so each component counts its own misses in recent intervals (TTFT
for prefill, ITL for decode, from ``Observation.ttft_samples_ms`` and
``itl_samples_ms``, or from the latency buckets; requests whose prefill alone exceeds
the TTFT target by :data:`WRITE_OFF_MARGIN` are left out, as in the sizing) and sizes
for a lower share while they stay below what the target allows
(:class:`~dynamo_planner.scalers.feedback.AttainmentFeedback` counts them into one
:class:`~dynamo_planner.scalers.feedback.MissFeedback` per component: the last
``feedback_intervals`` pooled; aiming at ``feedback_setpoint``, 30%, of the allowance;
never above the target). Prefill may relax down to ``1 - prefill_max_miss_multiple x
(1 - attainment)`` (90% for a 99% target). Decode does not relax by default
(``decode_max_miss_multiple = 1``): a request's ITL is known only when it finishes, and
an overloaded decode worker slows all its requests at once, so decode misses arrive late
and together, and a decode count one worker short at the peak is noticed only as its
requests finish. The relaxation is not used while the request count rises (a
least-squares slope over the recent intervals above two standard errors, and no turn):
a ramp sized too small queues faster than a cold start can follow, and there a few
percent of misses cost far more than in steady traffic. Sources without per-request latencies or latency
buckets leave the feedback idle; the plan says so. The Prometheus source reads the
frontend's TTFT and ITL buckets; a Dynamo frontend observes one ITL per token, so there
the decode feedback counts tokens rather than requests.

Every plan's reasons and details say why: the quantile used, the lookahead, the mix, the
predicted TTFT and ITL at the chosen replicas, the hysteresis state, the calibration and
the attainment sized for.

This module composes the sizing; its parts live in modules of their own: the queue
(:mod:`~dynamo_planner.scalers.queueing`), the decode law
(:mod:`~dynamo_planner.scalers.decode_model`), the request mix
(:mod:`~dynamo_planner.scalers.request_mix`), the recent counts and the demand they
size for (:mod:`~dynamo_planner.scalers.demand_history`), with their trend and ramp tests
(:mod:`~dynamo_planner.scalers.trend`), the scale-down hold
(:mod:`~dynamo_planner.scalers.hysteresis`), the calibration factors
(:mod:`~dynamo_planner.scalers.calibration`), the miss allowance
(:mod:`~dynamo_planner.scalers.feedback`), the band's own noise
(:mod:`~dynamo_planner.scalers.sampling_noise`) and the forecast's recent errors
(:mod:`~dynamo_planner.scalers.forecast_errors`).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import collections
import math
from statistics import NormalDist
from typing import Any, Literal

import attrs
import numpy as np
import numpy.typing as npt

from dynamo_planner.exceptions import InfeasibleSLAError
from dynamo_planner.protocols import Interpolator, ScalingRequest
from dynamo_planner.scalers import _checks
from dynamo_planner.scalers.calibration import (
    MIN_CALIBRATION_REQUESTS,
    STEADY_INTERVALS,
    ModelCalibration,
)
from dynamo_planner.scalers.decode_model import DecodeEstimate, DecodeLaw
from dynamo_planner.scalers.demand_history import DemandHistory
from dynamo_planner.scalers.feedback import AttainmentFeedback, MissFeedback
from dynamo_planner.scalers.forecast_errors import ForecastErrors, expected_miss_share
from dynamo_planner.scalers.hysteresis import (
    MAX_CONFIRM_DECISIONS,
    RiseConfirmation,
    ScaleDownHold,
)
from dynamo_planner.scalers.queueing import (
    CAP_WAIT_SHARE,
    PrefillMix,
    PrefillQueueEstimate,
    estimate_prefill,
    servers_for_target,
)
from dynamo_planner.scalers.request_mix import (
    RequestMix,
    observed_mix,
    sized_mix,
)
from dynamo_planner.values import Demand, Observation, ReplicaPlan, ReplicaState, Status

__all__ = ["DecodeEstimate", "DecodeLaw", "SLAScaler"]

FloatArray = npt.NDArray[np.float64]
Mode = Literal["disagg", "prefill", "decode"]
_MODES = ("disagg", "prefill", "decode")

MAX_DECODE_REPLICAS = 100_000
"""Most decode replicas the search tries before calling the ITL target unreachable."""
DISPERSION_BOUNDS = (0.5, 20.0)
"""The range an observed index of dispersion is kept in before the queue uses it."""
WRITE_OFF_MARGIN = 1.25
"""The attainment feedback writes a request off only when the model puts its prefill
alone this far past the TTFT target. Past the profile's longest prompt the fitted and
the simulated prefill curves differ by about 20%; with the margin, model error makes the
feedback count too many misses, not too few."""
BEST_EFFORT_SLACK = 1.1
"""With ``strict=False``, an ITL target below one request's ITL is replaced by this
multiple of that ITL (best effort)."""
PREFILL_SCALE_DOWN_HOLD_S = 60.0
"""Interval length from which one lower prefill requirement is enough to scale prefill
down, when ``scale_down_intervals`` is not set (shorter intervals need two in a row).

Each decision sees one interval of traffic. A prefill worker too few shows within the
interval, as queued prompts, and the attainment feedback and the saturation check answer
it at the next decision. On the Azure x10 replays of ``benchmarks/sla_table.py`` at 60 s
intervals a second interval of hold kept a third prefill worker for a minute after the
peak, at 0.850x and 0.854x the best static's GPU-hours (60 s and 180 s cold starts)
against 0.845x and 0.850x with one, every run on target (``--scale-down-intervals 2``
gives the two-interval window for comparison)."""
DECODE_SCALE_DOWN_HOLD_S = 120.0
"""Interval length from which one lower decode requirement is enough to scale decode
down, when ``scale_down_intervals`` is not set (shorter intervals need two in a row).

At 180 s intervals one lower requirement already covers three minutes of traffic;
holding a second interval kept a worker through 180 s that the traffic no longer
needed (0.5 to 2.8% of the GPU-hours on the x10 replays of ``benchmarks/sla_table.py``).
At 60 s, one interval is too little to release decode on: the decode model's reading of
the ITL spread is least certain from a frontend's histograms, and on Mooncake x10 read
that way (60 s intervals, 180 s cold starts) decode released after one interval went
from eight workers to seven, the ITL p99 rose to 21 to 23 ms and four intervals fell to
63 to 65% attainment: 82.54% over the run against the 84.22% target, 84.41% with two
(``benchmarks/sla_table.py --frontend-metrics histograms --traces mooncake_conv
--intervals 60 --scale-down-intervals 1`` releases both components after one)."""

CONFIRM_RISE_T = 3.0
"""Standard errors of the count's slope above which a rise needs no confirmation.

With six points (four degrees of freedom) a flat count's slope passes two standard
errors (the attainment feedback's ramp test) in about one interval of seventeen, three in
one of fifty. Three was chosen on the replays of ``benchmarks/sla_table.py``.
"""

SHORT_MISS_MULTIPLE = 20.0
"""Multiple of the miss allowance (``1 - sla_attainment``) above which a component's last
interval shows it short now: its rise is applied without confirmation.

Twenty times the allowance is 20% of the requests for a 99% target. On Mooncake at load
x1 the prompts near the TTFT limit make a 60 s interval miss more than five or ten times
the allowance often enough, read from a frontend's buckets, that those multiples raised
prefill above the best static deployment's; with twenty, the x10, x1 and histogram
replays of ``benchmarks/sla_table.py`` are as without it."""

# --------------------------------------------------------------------------------------
# The scaler
# --------------------------------------------------------------------------------------


@attrs.frozen
class _Expected:
    """The demand a sizing expects: the forecast's point values.

    That is before the upper quantile and the lookahead; the prefill saturation limit is
    taken there.
    """

    rate_per_s: float
    mix: RequestMix


@attrs.frozen
class _Component:
    replicas: int
    reasons: tuple[str, ...]
    details: dict[str, Any]
    raised_to_min: bool


@attrs.define(kw_only=True)
class SLAScaler:
    """Sizes replicas for a share of requests meeting TTFT and ITL (see the module doc).

    It satisfies :class:`dynamo_planner.protocols.Scaler`. Unlike the reference scaler it
    keeps private state across decisions: the recent requirements (hysteresis), the recent
    request counts (trend and spread), and the calibration factors.

    Attributes:
        interpolator: The performance model (the fitted one is recommended).
        ttft_ms: TTFT target.
        itl_ms: ITL target.
        attainment: Share of requests that must meet the targets.
        prefill_gpus_per_engine: GPUs per prefill replica (reported).
        decode_gpus_per_engine: GPUs per decode replica (reported).
        min_endpoint: Fewest replicas per planned component.
        mode: ``"disagg"``, ``"prefill"`` or ``"decode"``.
        cold_start_s: Time from requesting a worker to it serving (lookahead).
        scale_down_intervals: Intervals a requirement must stay lower before scaling
            down (``None``: 2, or 1 for intervals of at least
            :data:`PREFILL_SCALE_DOWN_HOLD_S` for prefill and
            :data:`DECODE_SCALE_DOWN_HOLD_S` for decode).
        max_num_batched_tokens: Token budget of one prefill batch (0: no batching).
        arrival_cv2: ``Ca²``, the burstiness of arrivals the queueing model assumes
            while the source gives no measure of it (1: Poisson). An observation's
            ``arrival_dispersion`` replaces it once seen (see :attr:`burstiness`).
        calibrate: Correct the model from observed TTFT and ITL.
        calibration_weight: Weight of one interval's factor in the running factor.
        trend_intervals: Recent intervals used for the trend and the spread.
        prior_spread: Relative headroom on the request count while the forecast has
            no spread and the history is too short to measure one.
        strict: Raise :class:`~dynamo_planner.exceptions.InfeasibleSLAError` when the
            mean request of a decision alone misses a target (by default the plan says
            so and sizes on a best-effort basis; construction always refuses a target
            that even the shortest request misses).
        attainment_feedback: Size for a lower share while observed misses stay below
            what ``attainment`` allows (see the module doc).
        feedback_setpoint: Share of the allowed misses each component's feedback
            aims for.
        prefill_max_miss_multiple: Most TTFT misses the prefill sizing may allow, as a
            multiple of ``1 - attainment`` (and at most half the requests).
        decode_max_miss_multiple: The same for ITL misses and decode (1: decode is
            always sized for ``attainment``).
        feedback_intervals: Intervals whose misses the feedback pools.
        prefill_max_wait: Most of the requests the prefill queue model may have wait
            (``P(wait)``) at the planned replicas and the demand expected: prefill stops
            short of saturation (1: no limit; see the module doc).
        release_on_fall: Skip the scale-down hold while the request count clearly falls
            (see the module doc).
        remove_own_noise: Narrow the forecast bands of the request count and the mean
            lengths by the next interval's own sampling noise, which the queueing and
            decode models already carry (see the module doc).
        confirm_rises: With a cold start of at least one interval, add workers only
            when every decision over the last cold start (at least two, at most
            :data:`~dynamo_planner.scalers.hysteresis.MAX_CONFIRM_DECISIONS`) needed
            them, unless the request count clearly rises (see the module doc).
    """

    interpolator: Interpolator
    ttft_ms: float = attrs.field(default=500.0, validator=_checks.positive)
    itl_ms: float = attrs.field(default=50.0, validator=_checks.positive)
    attainment: float = attrs.field(default=0.99, validator=_checks.share)
    prefill_gpus_per_engine: int = attrs.field(default=1, validator=_checks.at_least(1))
    decode_gpus_per_engine: int = attrs.field(default=1, validator=_checks.at_least(1))
    min_endpoint: int = attrs.field(default=1, validator=_checks.at_least(0))
    mode: Mode = attrs.field(
        default="disagg", validator=_checks.in_modes("sla", _MODES)
    )
    cold_start_s: float = attrs.field(default=60.0, validator=_checks.non_negative)
    scale_down_intervals: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(_checks.at_least(1))
    )
    max_num_batched_tokens: int = attrs.field(
        default=8192, validator=_checks.at_least(0)
    )
    arrival_cv2: float = attrs.field(default=1.0, validator=_checks.non_negative)
    calibrate: bool = True
    calibration_weight: float = attrs.field(default=0.5, validator=_checks.positive)
    trend_intervals: int = attrs.field(default=5, validator=_checks.at_least(2))
    prior_spread: float = attrs.field(default=0.1, validator=_checks.non_negative)
    strict: bool = False
    attainment_feedback: bool = True
    feedback_setpoint: float = attrs.field(default=0.3, validator=_checks.share)
    prefill_max_miss_multiple: float = attrs.field(
        default=10.0, validator=_checks.at_least(1)
    )
    decode_max_miss_multiple: float = attrs.field(
        default=1.0, validator=_checks.at_least(1)
    )
    feedback_intervals: int = attrs.field(default=10, validator=_checks.at_least(1))
    prefill_max_wait: float = attrs.field(default=0.8, validator=_checks.share_or_one)
    release_on_fall: bool = True
    remove_own_noise: bool = True
    confirm_rises: bool = True

    _law: DecodeLaw = attrs.field(init=False)
    _prefill_overhead_ms: float = attrs.field(init=False)
    _prefill_hold: ScaleDownHold = attrs.field(init=False)
    _decode_hold: ScaleDownHold = attrs.field(init=False)
    _hold_windows: dict[str, tuple[int, str]] = attrs.field(init=False, factory=dict)
    _history: DemandHistory = attrs.field(init=False)
    _calibration: ModelCalibration = attrs.field(init=False)
    _currents: collections.deque[ReplicaState] = attrs.field(init=False)
    _dispersion: float | None = attrs.field(init=False, default=None)
    _on_target: bool = attrs.field(init=False, default=False)
    _feedback: AttainmentFeedback = attrs.field(init=False)
    _observed_rate: float | None = attrs.field(init=False, default=None)
    _errors: ForecastErrors = attrs.field(init=False, factory=ForecastErrors)
    _rises: dict[str, RiseConfirmation] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._law = DecodeLaw.from_interpolator(self.interpolator)
        self._calibration = ModelCalibration(
            attainment=self.attainment, weight=self.calibration_weight
        )
        self._prefill_overhead_ms = _prefill_overhead_ms(self.interpolator)
        # the longest window a decision uses: scale_down_intervals, or 2 by default
        window = max(2, self.scale_down_intervals or 2)
        self._prefill_hold = ScaleDownHold("prefill", window)
        self._decode_hold = ScaleDownHold("decode", window)
        self._rises = {name: RiseConfirmation(name) for name in ("prefill", "decode")}
        self._history = DemandHistory(
            intervals=self.trend_intervals,
            prior_spread=self.prior_spread,
            remove_own_noise=self.remove_own_noise,
            cold_start_s=self.cold_start_s,
        )
        self._currents = collections.deque(maxlen=STEADY_INTERVALS)
        prefill, decode = (
            MissFeedback(
                name=f"{component} feedback ({metric} misses)",
                target=self.attainment,
                setpoint=self.feedback_setpoint,
                max_multiple=multiple,
                window=self.feedback_intervals,
            )
            for component, metric, multiple in (
                ("prefill", "TTFT", self.prefill_max_miss_multiple),
                ("decode", "ITL", self.decode_max_miss_multiple),
            )
        )
        self._feedback = AttainmentFeedback(
            prefill=prefill, decode=decode, min_requests=MIN_CALIBRATION_REQUESTS
        )
        self._check_feasible()

    @classmethod
    def from_config(cls, config: Any, interpolator: Interpolator) -> SLAScaler:
        """Build from a :class:`~dynamo_planner.config.PlannerConfig`.

        Reads ``ttft_ms``, ``itl_ms``, ``sla_attainment``, ``cold_start_s``,
        ``scale_down_intervals``, ``max_num_batched_tokens``, ``min_endpoint``, ``mode``,
        ``sla_arrival_cv2``, ``sla_prefill_max_wait``, the GPUs per engine,
        ``no_correction`` (which turns calibration off) and ``no_attainment_feedback``.

        Raises:
            InfeasibleSLAError: Not even the shortest request can meet a target.
            ConfigError: A value is out of range (e.g. ``mode="agg"``).
        """
        prefill_gpus = getattr(config, "prefill_engine_num_gpu", None)
        decode_gpus = getattr(config, "decode_engine_num_gpu", None)
        return cls(
            interpolator=interpolator,
            ttft_ms=float(getattr(config, "ttft_ms", 500.0)),
            itl_ms=float(getattr(config, "itl_ms", 50.0)),
            attainment=float(getattr(config, "sla_attainment", 0.99)),
            prefill_gpus_per_engine=1 if prefill_gpus is None else int(prefill_gpus),
            decode_gpus_per_engine=1 if decode_gpus is None else int(decode_gpus),
            min_endpoint=int(getattr(config, "min_endpoint", 1)),
            mode=getattr(config, "mode", "disagg"),
            cold_start_s=float(getattr(config, "cold_start_s", 60.0)),
            scale_down_intervals=_optional_int(
                getattr(config, "scale_down_intervals", None)
            ),
            max_num_batched_tokens=int(getattr(config, "max_num_batched_tokens", 8192)),
            arrival_cv2=float(getattr(config, "sla_arrival_cv2", 1.0)),
            prefill_max_wait=float(getattr(config, "sla_prefill_max_wait", 0.8)),
            calibrate=not bool(getattr(config, "no_correction", False)),
            attainment_feedback=not bool(
                getattr(config, "no_attainment_feedback", False)
            ),
        )

    # ------------------------------------------------------------------ state
    @property
    def calibration(self) -> tuple[float, float]:
        """The current ``(prefill, decode)`` calibration factors."""
        return self._calibration.prefill, self._calibration.decode

    @property
    def spread_factor(self) -> float:
        """The factor on the decode model's ITL spread, learned from per-request ITLs.

        Each calibrated interval with at least
        :data:`~dynamo_planner.scalers.calibration.MIN_SPREAD_SAMPLES` per-request ITLs,
        whose mean ITL the calibration explains (not a transient), measures the
        observed spread, the ITL at the attainment quantile less the mean (at a lower
        quantile while fewer than
        :data:`~dynamo_planner.scalers.calibration.SPREAD_TAIL_SAMPLES` requests would
        lie above it), against the model's at the running replicas. Without per-request
        ITLs the ITL buckets and the mean ITL give the spread, read as a normal's
        (:func:`~dynamo_planner.scalers.calibration.spread_from_histogram`). The ratio,
        bounded to :data:`~dynamo_planner.scalers.calibration.SPREAD_BOUNDS`, is blended
        into this factor with weight :attr:`calibration_weight`. 1 until measured
        (:class:`~dynamo_planner.scalers.calibration.ModelCalibration`).

        The factor measures how admission to the worker with the fewest reserved KV
        tokens evens out work across several workers. A single worker has nothing to
        even out (the model amplifies its spread instead), so the factor is learned on
        two or more decode workers and applied only to sizings of two or more.
        """
        return self._calibration.spread

    @property
    def burstiness(self) -> float:
        """The ``Ca²`` the prefill queue is sized with.

        The running mean (weight :attr:`calibration_weight`) of the observed indices of
        dispersion of per-second arrival counts, bounded to :data:`DISPERSION_BOUNDS`;
        :attr:`arrival_cv2` until one is observed. For a renewal process the index of
        dispersion tends to ``Ca²``; measured per second it also carries the swings of
        the arrival rate within an interval, which queue like bursts.
        """
        return self.arrival_cv2 if self._dispersion is None else self._dispersion

    @property
    def sized_attainment(self) -> tuple[float, float]:
        """The ``(prefill, decode)`` shares sized for unless demand rises (module doc)."""
        if not self.attainment_feedback:
            return self.attainment, self.attainment
        return self._feedback.sized

    @property
    def z(self) -> float:
        """The standard-normal quantile of :attr:`attainment`."""
        return NormalDist().inv_cdf(self.attainment)

    def _check_feasible(self) -> None:
        shortest = self.interpolator.prefill_ttft_ms(1.0)
        if shortest > self.ttft_ms:
            raise InfeasibleSLAError(
                f"TTFT target {self.ttft_ms:g} ms is below the prefill time of a "
                f"one-token request alone ({shortest:.1f} ms): no request can meet it"
            )
        law = self._law
        alone = law.step_overhead_ms + law.per_request_ms
        if alone > self.itl_ms:
            raise InfeasibleSLAError(
                f"ITL target {self.itl_ms:g} ms is below the decode step of one request "
                f"alone ({alone:.2f} ms): no request can meet it"
            )

    # ------------------------------------------------------------------ decide
    def decide(self, request: ScalingRequest) -> ReplicaPlan:
        """Replicas for the next interval, before the GPU budget.

        Args:
            request: The demand, the running replicas and the latest observation.

        Returns:
            The plan, with reasons and details (see the module docstring).

        Raises:
            InfeasibleSLAError: The mean request alone cannot meet a target.
            ValueError: The demand is negative or not finite.
        """
        demand = request.demand
        _check_demand(demand)
        interval_s = demand.interval_s
        observation = request.observation
        reasons: list[str] = []
        details: dict[str, Any] = {
            "interval_s": interval_s,
            "ttft_target_ms": self.ttft_ms,
            "itl_target_ms": self.itl_ms,
            "attainment_target": self.attainment,
            "planner_corrections": (
                request.corrections.prefill,
                request.corrections.decode,
            ),
        }
        reasons.extend(self._observe(request, details))

        self._hold_for(demand)
        num_req, demand_words = self._history.sized_num_req(
            demand, self.burstiness, details
        )
        reasons.extend(demand_words)
        (prefill_share, decode_share), attainment_words = self._sized_attainment(
            details
        )
        reasons.append(attainment_words)
        rate = num_req / interval_s
        details["rate_per_s"] = rate
        isl_mean, osl_mean = self._history.sized_lengths(demand, details)
        mix = sized_mix(demand, observation, isl_mean=isl_mean, osl_mean=osl_mean)
        details["mix_requests"] = int(mix.isl.size)
        details["mix_isl_mean_tokens"] = float(np.mean(mix.isl))
        details["mix_osl_mean_tokens"] = float(np.mean(mix.osl))
        reasons.append(mix.words)

        prefill = decode = None
        raised = False
        if self.mode in ("disagg", "prefill"):
            expected = _Expected(
                rate_per_s=demand.num_req.value / interval_s,
                mix=sized_mix(
                    demand,
                    observation,
                    isl_mean=demand.isl_tokens.value,
                    osl_mean=demand.osl_tokens.value,
                ),
            )
            sized = self._prefill(
                rate, mix, prefill_share, observation, interval_s, expected
            )
            prefill, raised = sized.replicas, sized.raised_to_min
            reasons.extend(sized.reasons)
            details.update(sized.details)
        if self.mode in ("disagg", "decode"):
            decode_rate, drain_words = _decode_rate(rate, observation)
            if drain_words:
                reasons.append(drain_words)
            details["decode_rate_per_s"] = decode_rate
            sized = self._decode(
                decode_rate,
                mix,
                decode_share,
                interval_s,
                forecast_rate=demand.num_req.value / interval_s,
            )
            decode, raised = sized.replicas, raised or sized.raised_to_min
            reasons.extend(sized.reasons)
            details.update(sized.details)
        details["prefill_factor"], details["decode_factor"] = self.calibration
        return ReplicaPlan(
            prefill=prefill,
            decode=decode,
            reasons=reasons,
            demand=demand,
            unclamped_prefill=prefill,
            unclamped_decode=decode,
            clamps=("min_endpoint",) if raised else (),
            details=details,
        )

    def _observe(self, request: ScalingRequest, details: dict[str, Any]) -> list[str]:
        """Take in what the last interval showed, before any sizing; say what it moved.

        Calibrates the model, counts the feedback's misses, and records the request
        count, mean lengths, arrival dispersion and the previous forecast's error for the
        trend, band, scenario and hysteresis tests of this and later decisions.
        """
        observation = request.observation
        demand = request.demand
        reasons: list[str] = []
        if observation is not None and self.calibrate:
            reasons.extend(self._calibrate(observation, request.current, details))
        self._currents.append(request.current)
        self._feedback.last_missed.clear()
        observed = (
            observation.num_req.value
            if observation is not None and observation.num_req.known
            else None
        )
        self._observed_rate = (
            None
            if observed is None or observation is None
            else observed / observation.interval_s
        )
        self._errors.record(observed, demand.num_req.value, demand.interval_s)
        if observation is not None:
            reasons.append(self._observe_dispersion(observation))
            if self.attainment_feedback:
                reasons.extend(
                    self._feedback.observe(
                        observation,
                        ttft_ms=self.ttft_ms,
                        itl_ms=self.itl_ms,
                        counted_share=self._counted_share,
                        details=details,
                    )
                )
        details["arrival_cv2"] = self.burstiness
        self._on_target = observation is not None and _means_on_target(
            observation, self.ttft_ms, self.itl_ms
        )
        if observation is not None:
            self._history.record(observation)
        return reasons

    def _observe_dispersion(self, observation: Observation) -> str:
        """Fold an observed index of dispersion into :attr:`burstiness`; say so."""
        sample = observation.arrival_dispersion
        if not sample.known:
            return (
                f"arrivals: no index of dispersion observed; the queue assumes Ca² "
                f"{self.burstiness:.2f}"
            )
        low, high = DISPERSION_BOUNDS
        seen = min(high, max(low, sample.value))
        if self._dispersion is None:
            self._dispersion = seen
        else:
            w = min(1.0, self.calibration_weight)
            self._dispersion = (1.0 - w) * self._dispersion + w * seen
        return (
            f"arrivals: index of dispersion {sample.value:.2f} over the last "
            f"interval (Poisson: 1); the queue assumes Ca² {self._dispersion:.2f} "
            f"(running mean, bounded to [{low:g}, {high:g}])"
        )

    def _counted_share(self, isl_tokens: FloatArray) -> float:
        """The share of these prompts whose TTFT misses the feedback counts.

        Prompts that miss the target even alone are written off, as in the sizing, but
        only those the model puts past it by :data:`WRITE_OFF_MARGIN`: writing off too
        many hides misses.
        """
        return self.prefill_mix(isl_tokens).feasible_share(
            WRITE_OFF_MARGIN * self.ttft_ms / 1000.0
        )

    def _sized_attainment(
        self, details: dict[str, Any]
    ) -> tuple[tuple[float, float], str]:
        """The shares this decision sizes for: relaxed by feedback unless demand rises."""
        relaxed = self.sized_attainment
        value = (self.attainment, self.attainment)
        shown = f"prefill {relaxed[0]:.2%}, decode {relaxed[1]:.2%}"
        if not self.attainment_feedback:
            words = "attainment feedback off"
        elif min(relaxed) >= self.attainment:
            words = "no relaxation earned"
        elif self._history.rising(2.0, self.burstiness):
            words = (
                f"demand is rising, so the relaxation that feedback earned ({shown}) is "
                "not used: an under-sized ramp queues faster than a cold start can "
                "follow"
            )
        else:
            value = relaxed
            words = "relaxed by feedback: recent intervals missed less than allowed"
            if self._history.slope_rising():
                words += "; the count has turned, so a slope still rising is no ramp"
        details["sized_attainment"] = value
        return value, (
            f"attainment: target {self.attainment:.2%}; sizing prefill for "
            f"{value[0]:.2%} and decode for {value[1]:.2%} ({words})"
        )

    def _confirm_rise(
        self,
        replicas: int,
        need: int,
        name: str,
        interval_s: float,
        *,
        predicted_miss: float | None = None,
        saturated: str | None = None,
    ) -> tuple[int, str | None]:
        """Hold a new rise above the running replicas until it has lasted a cold start.

        ``replicas`` is the plan after the scale-down hold, ``need`` this decision's
        requirement. A rise the previous plan asked for is kept (the scale-down hold
        releases it), even while its workers still start: requests do not go up and
        down. ``predicted_miss`` is the model's ITL miss share on the running workers at
        the load just observed (decode only); ``saturated``, why the running prefill
        workers sit past the wait limit (prefill only). Returns the replicas and, when a rise was
        held back, the words saying so (module doc: Hysteresis).
        """
        running = int(getattr(self._currents[-1], name)) if self._currents else None
        applies = self.confirm_rises and self.cold_start_s >= interval_s
        return self._rises[name].decide(
            replicas,
            need,
            running=running if applies else None,
            decisions=min(
                MAX_CONFIRM_DECISIONS,
                max(2, math.ceil(self.cold_start_s / interval_s - 1e-9)),
            ),
            rising=self._history.rising(CONFIRM_RISE_T, self.burstiness),
            short=self._short_now(name, running or 0, predicted_miss) or saturated,
            why_unconfirmed=(
                f"; a worker asked for now serves only after the {self.cold_start_s:g} "
                "s cold start, and the request count is not clearly rising (slope "
                f"within {CONFIRM_RISE_T:g} standard errors)"
            ),
        )

    def _short_now(
        self, name: str, running: int, predicted_miss: float | None
    ) -> str | None:
        """Why ``name`` is short of its target now, or ``None`` (module doc: Hysteresis).

        The last interval's observed miss share, or the model's on the running decode
        workers at the load just observed (``predicted_miss``), above
        :data:`SHORT_MISS_MULTIPLE` times the allowance.
        """
        observed = self._feedback.last_missed.get(name, 0.0)
        predicted = predicted_miss or 0.0
        allowed = 1.0 - self.attainment
        if max(observed, predicted) <= SHORT_MISS_MULTIPLE * allowed:
            return None
        metric = "TTFT" if name == "prefill" else "ITL"
        if observed >= predicted:
            missed = (
                f"the last interval missed the {metric} target for {observed:.1%} of "
                "its requests"
            )
        else:
            missed = (
                f"at the load just observed ({self._observed_rate:.2f} requests/s) the "
                f"model puts {predicted:.1%} of ITLs on the {running} running "
                f"worker{'s' * (running != 1)} above the target"
            )
        return (
            f"{missed}, over {SHORT_MISS_MULTIPLE:g} times the {allowed:.1%} allowed, so "
            "the need is already here"
        )

    def _hold_for(self, demand: Demand) -> None:
        """Set each component's scale-down window for this decision (module doc: Hysteresis)."""
        dips = self._history.forecast_dips(demand)
        self._hold_windows = {}
        for name, hold_s in (
            ("prefill", PREFILL_SCALE_DOWN_HOLD_S),
            ("decode", DECODE_SCALE_DOWN_HOLD_S),
        ):
            window = self.scale_down_intervals or (
                1 if demand.interval_s >= hold_s - 1e-9 else 2
            )
            why = ""
            if window < 2 and dips:
                window = 2
                why = (
                    f"; two, as the forecast is below the last interval's {dips}: "
                    "demand has not been low yet"
                )
            self._hold_windows[name] = (window, why)

    def _held(self, hold: ScaleDownHold, need: int) -> tuple[int, str]:
        """The scale-down hold with this decision's window and fall test.

        See :class:`~dynamo_planner.scalers.hysteresis.ScaleDownHold`.
        """
        running = getattr(self._currents[-1], hold.name) if self._currents else None
        window, why = self._hold_windows[hold.name]
        return hold.decide(
            need,
            window=window,
            falling=self._falling(),
            why=why,
            running=running,
        )

    def _falling(self) -> bool:
        """Whether a scale-down may skip the hold (module doc: Hysteresis)."""
        return self.release_on_fall and self._on_target and self._history.falling()

    # ------------------------------------------------------------------ prefill
    def prefill_mix(self, isl_tokens: npt.ArrayLike) -> PrefillMix:
        """The queueing model's view of a set of prompts, at the current calibration.

        Args:
            isl_tokens: The prompts' input lengths.

        Returns:
            Their prefill work and batch overhead, ready for
            :func:`~dynamo_planner.scalers.queueing.estimate_prefill`.
        """
        isl = np.asarray(isl_tokens, dtype=np.float64)
        mix = RequestMix(isl=isl, osl=np.ones_like(isl), words="")
        return self._prefill_mix(mix, self._calibration.prefill)

    def _prefill_mix(self, mix: RequestMix, factor: float) -> PrefillMix:
        alone = _prefill_alone_ms(self.interpolator, mix.isl)
        overhead = min(self._prefill_overhead_ms, float(np.min(alone)))
        work = np.maximum(alone - overhead, 0.0)
        return PrefillMix(
            work_s=work * factor / 1000.0,
            overhead_s=overhead * factor / 1000.0,
            isl_tokens=mix.isl,
            max_num_batched_tokens=self.max_num_batched_tokens,
        )

    def _prefill(
        self,
        rate: float,
        mix: RequestMix,
        attainment: float,
        observation: Observation | None,
        interval_s: float,
        expected: _Expected,
    ) -> _Component:
        factor = self._calibration.prefill
        target_s = self.ttft_ms / 1000.0
        mean_isl = float(np.mean(mix.isl))
        mean_alone = self.interpolator.prefill_ttft_ms(mean_isl) * factor
        reasons = []
        if mean_alone > self.ttft_ms:
            words = (
                f"TTFT target {self.ttft_ms:g} ms is infeasible: a request of the mean "
                f"ISL ({mean_isl:,.0f} tokens) alone takes {mean_alone:.0f} ms to prefill"
            )
            if self.strict:
                raise InfeasibleSLAError(words)
            reasons.append(f"prefill: {words}; sizing on a best-effort basis")
        pmix = self._prefill_mix(mix, factor)
        feasible = pmix.feasible_share(target_s)
        target = attainment
        floor = max(1, self.min_endpoint) if rate > 0 else self.min_endpoint
        if rate > 0:
            chosen, all_feasible = servers_for_target(
                pmix,
                arrival_rate_per_s=rate,
                ttft_s=target_s,
                attainment=target,
                arrival_cv2=self.burstiness,
                min_servers=floor,
            )
            chosen, words = self._short_of_saturation(
                chosen, pmix, rate, target, expected
            )
            need = chosen.servers
            if words:
                reasons.append(words)
            if not all_feasible:
                reasons.append(
                    f"prefill: {1 - feasible:.1%} of the mix exceeds TTFT "
                    f"{self.ttft_ms:g} ms even alone and cannot meet it; sizing for "
                    f"{target:.0%} of the rest ({target * feasible:.2%} of all requests), "
                    f"at most the replicas where {1 - target:.0%} of requests wait "
                    f"longer than {CAP_WAIT_SHARE * self.ttft_ms:g} ms"
                )
        else:
            chosen = None
            need = floor
        held = self._backlogged_workers(observation, mix, interval_s)
        if held and rate > 0:
            need += held
            reasons.append(
                f"prefill: {held} worker{'s' if held != 1 else ''} hold{'s' if held == 1 else ''} "
                f"more than {interval_s:g} s of queued prefill work (a backlog) and "
                "serve no new request this interval; adding as many replicas"
            )
        replicas, hold_words = self._held(self._prefill_hold, need)
        replicas, confirm_words = self._confirm_rise(
            replicas,
            need,
            "prefill",
            interval_s,
            saturated=self._saturated_now(pmix, rate, target, need),
        )
        estimate = chosen
        if rate > 0 and replicas - held != need - held and replicas > held:
            estimate = self._estimate_prefill(pmix, replicas - held, rate, target)
        details: dict[str, Any] = {
            "prefill_required": need,
            "prefill_replicas": replicas,
            "prefill_backlogged_workers": held,
            "prefill_feasible_share": feasible,
            "prefill_attainment_target": target * feasible,
            "prefill_hysteresis": list(self._prefill_hold.needs),
        }
        reasons.append(self._prefill_words(replicas, estimate, rate, target, details))
        reasons.append(hold_words)
        if confirm_words:
            reasons.append(confirm_words)
        return _Component(
            replicas=replicas,
            reasons=tuple(reasons),
            details=details,
            raised_to_min=rate > 0 and need == floor and floor > 1,
        )

    def _estimate_prefill(
        self, pmix: PrefillMix, servers: int, rate: float, attainment: float
    ) -> PrefillQueueEstimate:
        """The queue at ``servers`` replicas, at the TTFT target and :attr:`burstiness`."""
        return estimate_prefill(
            pmix,
            servers=servers,
            arrival_rate_per_s=rate,
            ttft_s=self.ttft_ms / 1000.0,
            quantile=attainment,
            arrival_cv2=self.burstiness,
        )

    def _saturated_now(
        self, pmix: PrefillMix, rate: float, attainment: float, need: int
    ) -> str | None:
        """Why the running prefill workers sit past :attr:`prefill_max_wait`, or ``None``.

        Only asked when ``need`` is above the running workers (a rise to confirm).
        """
        running = int(self._currents[-1].prefill) if self._currents else 0
        if running < 1 or need <= running or rate <= 0:
            return None
        at_running = self._estimate_prefill(pmix, running, rate, attainment)
        if at_running.wait_probability <= self.prefill_max_wait:
            return None
        return (
            f"at the demand sized for, {at_running.wait_probability:.0%} of requests "
            f"would wait on the {running} running, over the "
            f"{self.prefill_max_wait:.0%} limit, so the need is already here"
        )

    def _short_of_saturation(
        self,
        chosen: PrefillQueueEstimate,
        pmix: PrefillMix,
        rate: float,
        attainment: float,
        expected: _Expected,
    ) -> tuple[PrefillQueueEstimate, str]:
        """Add replicas until at most :attr:`prefill_max_wait` of requests wait.

        The wait is taken at the demand expected (the forecast's point values), not at
        the upper quantile sized for: that quantile is already headroom, and short of
        saturation at both would pay for the headroom twice. One worker is the
        exception, judged at the demand sized for: it has no other worker to absorb a
        burst, and near saturation the model is furthest from the engine there.

        Returns the estimate at the count kept (at the demand sized for) and, when
        replicas were added, the words that say so (module doc: Prefill).
        """
        expected_pmix = self._prefill_mix(expected.mix, self._calibration.prefill)

        def at(servers: int) -> PrefillQueueEstimate:
            if servers == 1:
                return self._estimate_prefill(pmix, servers, rate, attainment)
            return self._estimate_prefill(
                expected_pmix, servers, expected.rate_per_s, attainment
            )

        sized = at(chosen.servers)
        kept = sized
        while kept.wait_probability > self.prefill_max_wait:
            kept = at(kept.servers + 1)
        if kept is sized:
            return chosen, ""
        where = (
            "at the demand sized for (one worker has no other to absorb a burst)"
            if sized.servers == 1
            else f"at the demand expected ({expected.rate_per_s:.2f} requests/s, mean "
            f"ISL {float(np.mean(expected.mix.isl)):,.0f})"
        )
        return self._estimate_prefill(pmix, kept.servers, rate, attainment), (
            f"prefill: {sized.servers} replicas would meet the share sized for, but "
            f"{where} {sized.wait_probability:.0%} of requests would wait (utilisation "
            f"{sized.utilisation:.2f}); {kept.servers} "
            f"keep that at most {self.prefill_max_wait:.0%}, short of saturation, where "
            "the model's errors grow fastest"
        )

    def _backlogged_workers(
        self, observation: Observation | None, mix: RequestMix, interval_s: float
    ) -> int:
        """Prefill workers whose queued work alone lasts the whole next interval."""
        if observation is None or not observation.workers:
            return 0
        mean_isl = float(np.mean(mix.isl))
        if mean_isl <= 0:
            return 0
        per_token_s = (
            self.interpolator.prefill_ttft_ms(mean_isl)
            * self._calibration.prefill
            / mean_isl
            / 1000.0
        )
        return sum(
            1
            for w in observation.workers
            if w.worker_type == "prefill"
            and (w.active_prefill_tokens or 0.0) * per_token_s >= interval_s
        )

    def _prefill_words(
        self,
        replicas: int,
        estimate: PrefillQueueEstimate | None,
        rate: float,
        attainment: float,
        details: dict[str, Any],
    ) -> str:
        if estimate is None:
            details.update({"predicted_ttft_ms": 0.0, "predicted_mean_ttft_ms": 0.0})
            return f"prefill: no requests expected; {replicas} replicas (min_endpoint)"
        details.update(
            {
                "predicted_ttft_ms": estimate.ttft_quantile_s * 1000.0,
                "predicted_mean_ttft_ms": estimate.mean_ttft_s * 1000.0,
                "predicted_prefill_attainment": estimate.attainment,
                "prefill_utilisation": estimate.utilisation,
                "prefill_batch_size": estimate.batch_size,
                "prefill_wait_probability": estimate.wait_probability,
                "prefill_long_wait_share": _long_wait_share(
                    estimate, CAP_WAIT_SHARE * self.ttft_ms / 1000.0
                ),
            }
        )
        return (
            f"prefill: {replicas} replicas x {self.prefill_gpus_per_engine} GPUs at "
            f"{rate:.2f} requests/s: predicted TTFT p{attainment * 100:.4g} "
            f"{estimate.ttft_quantile_s * 1000:,.0f} ms (mean "
            f"{estimate.mean_ttft_s * 1000:,.0f} ms) vs target {self.ttft_ms:g} ms; "
            f"utilisation {estimate.utilisation:.2f}, P(wait) "
            f"{estimate.wait_probability:.2f}, batch {estimate.batch_size:.2f}, "
            f"predicted attainment {estimate.attainment:.4f}"
        )

    # ------------------------------------------------------------------ decode
    def _decode(
        self,
        rate: float,
        mix: RequestMix,
        attainment: float,
        interval_s: float,
        *,
        forecast_rate: float,
    ) -> _Component:
        law = self._law.scaled(self._calibration.decode)
        z = NormalDist().inv_cdf(attainment)
        mean_ctx = float(np.mean(mix.context))
        alone = (
            law.step_overhead_ms + law.per_request_ms + law.per_kv_token_ms * mean_ctx
        )
        itl_target = self.itl_ms
        infeasible_words = ""
        if alone > self.itl_ms:
            words = (
                f"ITL target {self.itl_ms:g} ms is infeasible: one request of the mean "
                f"context ({mean_ctx:,.0f} tokens) alone takes {alone:.2f} ms per token"
            )
            if self.strict:
                raise InfeasibleSLAError(words)
            itl_target = BEST_EFFORT_SLACK * alone
            infeasible_words = (
                f"decode: {words}; sizing on a best-effort basis for ITL "
                f"{itl_target:.2f} ms"
            )
        floor = max(1, self.min_endpoint) if rate > 0 else self.min_endpoint
        need = floor
        error_words = ""
        expected_miss = None
        if rate > 0:
            need = self._decode_replicas(law, mix, rate, z, floor, itl_target)
            need, expected_miss, error_words = self._decode_for_errors(
                law, mix, need, forecast_rate, 1.0 - attainment, itl_target
            )
        replicas, hold_words = self._held(self._decode_hold, need)
        predicted_miss = self._running_decode_misses(law, mix, itl_target)
        replicas, confirm_words = self._confirm_rise(
            replicas, need, "decode", interval_s, predicted_miss=predicted_miss
        )
        details: dict[str, Any] = {
            "decode_required": need,
            "decode_replicas": replicas,
            "decode_hysteresis": list(self._decode_hold.needs),
            "decode_expected_miss_share": expected_miss,
            "decode_predicted_running_miss_share": predicted_miss,
            "decode_law_source": law.source,
            "decode_law_ms": (
                law.step_overhead_ms,
                law.per_request_ms,
                law.per_kv_token_ms,
            ),
        }
        if infeasible_words:
            details["decode_best_effort_itl_ms"] = itl_target
        words = self._decode_words(law, mix, rate, replicas, attainment, details)
        return _Component(
            replicas=replicas,
            reasons=tuple(
                w
                for w in (
                    infeasible_words,
                    words,
                    error_words,
                    hold_words,
                    confirm_words,
                )
                if w
            ),
            details=details,
            raised_to_min=rate > 0 and need == floor and floor > 1,
        )

    def _decode_words(
        self,
        law: DecodeLaw,
        mix: RequestMix,
        rate: float,
        replicas: int,
        attainment: float,
        details: dict[str, Any],
    ) -> str:
        """The model's view of the chosen decode replicas, in the plan and its details."""
        if not (rate > 0 and replicas > 0):
            details.update({"predicted_itl_ms": 0.0, "predicted_mean_itl_ms": 0.0})
            return f"decode: no requests expected; {replicas} replicas (min_endpoint)"
        z = NormalDist().inv_cdf(attainment)
        est = self._decode_estimate(law, mix, rate, replicas, z)
        details.update(
            {
                "predicted_itl_ms": est.quantile_itl_ms,
                "predicted_mean_itl_ms": est.mean_itl_ms,
                "decode_spread_factor": self._calibration.spread_on(replicas),
                "decode_concurrency_per_replica": est.concurrency_per_replica,
                "decode_kv_usage": est.kv_usage,
                "decode_throughput_per_gpu": est.concurrency_per_replica
                / est.mean_itl_ms
                * 1000.0
                / self.decode_gpus_per_engine,
            }
        )
        duration_s = float(np.mean(mix.osl)) * est.mean_itl_ms / 1000.0
        return (
            f"decode: {replicas} replicas x {self.decode_gpus_per_engine} GPUs: "
            f"predicted ITL p{attainment * 100:.4g} {est.quantile_itl_ms:.1f} ms "
            f"(mean {est.mean_itl_ms:.1f} ms, spread x{self._calibration.spread_on(replicas):.2f}) vs "
            f"target {self.itl_ms:g} ms; "
            f"{est.concurrency_per_replica:,.0f} requests per replica by Little's "
            f"law ({rate:.2f}/s x {duration_s:.2f} s in decode / {replicas}), "
            f"KV {est.kv_usage:.0%} (p{attainment * 100:.4g} "
            f"{est.kv_quantile_usage:.0%}); step law {law.step_overhead_ms:.2f} + "
            f"{law.per_request_ms:.4f} n + {law.per_kv_token_ms:.3g} KV ms"
        )

    def _decode_share_above(
        self, law: DecodeLaw, mix: RequestMix, rate: float, replicas: int, itl_ms: float
    ) -> float:
        """The decode model's share of ITLs above ``itl_ms`` at ``rate`` on ``replicas``."""
        if rate <= 0:
            return 0.0
        z = self.z
        return self._decode_estimate(law, mix, rate, replicas, z).share_above(itl_ms, z)

    def _decode_for_errors(
        self,
        law: DecodeLaw,
        mix: RequestMix,
        need: int,
        forecast_rate: float,
        allowed: float,
        itl_target: float,
    ) -> tuple[int, float | None, str]:
        """Raise ``need`` until the forecast's recent errors leave misses within ``allowed``.

        See :mod:`~dynamo_planner.scalers.forecast_errors`. Returns the replicas, the
        expected miss share there and the words saying what the scenarios gave
        (``None`` and empty without scenarios).
        """
        kept = self._history.kept_count(self.burstiness)
        rates = self._errors.scenarios(forecast_rate, kept)
        if rates is None:
            return need, None, ""

        def expected(replicas: int) -> float:
            return expected_miss_share(
                rates,
                lambda r: self._decode_share_above(law, mix, r, replicas, itl_target),
            )

        replicas, share = need, expected(need)
        shares = [f"{share:.2%} at {replicas}"]
        while share > allowed and replicas < MAX_DECODE_REPLICAS:
            replicas += 1
            share = expected(replicas)
            shares.append(f"{share:.2%} at {replicas}")
        raised = (
            f"; raised to {replicas} replicas"
            if replicas > need
            else ", no worker added"
        )
        return (
            replicas,
            share,
            (
                f"decode: the forecast's last {rates.size} errors (largest "
                f"{self._errors.largest:+.0%}), {kept:.0%} of each kept (the rest is "
                "the next interval's own draw), as scenarios of the next interval put "
                f"the expected ITL misses at {', '.join(shares)} against {allowed:.2%} "
                f"allowed{raised}"
            ),
        )

    def _running_decode_misses(
        self, law: DecodeLaw, mix: RequestMix, itl_target: float
    ) -> float | None:
        """The decode model's ITL misses on the running workers at the load just observed.

        Decode misses are observed only as requests finish; the model sees them as soon
        as the load does. ``None`` without an observed rate or a running worker.
        """
        rate = self._observed_rate
        if rate is None or not self._currents:
            return None
        running = int(self._currents[-1].decode)
        if running < 1:
            return None
        return self._decode_share_above(law, mix, rate, running, itl_target)

    def _decode_replicas(
        self,
        law: DecodeLaw,
        mix: RequestMix,
        rate: float,
        z: float,
        floor: int,
        itl_target: float,
    ) -> int:
        per_step = law.per_request_ms + law.per_kv_token_ms * mix.context
        work1 = float(np.mean(mix.osl * per_step))
        room = itl_target - law.step_overhead_ms
        # lower bound: the mean ITL alone within target
        replicas = max(floor, 1, math.floor(rate * itl_target * work1 / 1000 / room))
        while replicas <= MAX_DECODE_REPLICAS:
            est = self._decode_estimate(law, mix, rate, replicas, z)
            if est.quantile_itl_ms <= itl_target and est.kv_quantile_usage <= 1.0:
                return replicas
            replicas += 1
        raise InfeasibleSLAError(
            f"no decode replica count up to {MAX_DECODE_REPLICAS} meets ITL "
            f"{itl_target:g} ms at {rate:g} requests/s"
        )

    # ------------------------------------------------------------------ calibration
    def _calibrate(
        self,
        observation: Observation,
        current: ReplicaState,
        details: dict[str, Any],
    ) -> list[str]:
        calibration = self._calibration
        factors = calibration.words
        steady = len(self._currents) == STEADY_INTERVALS and all(
            c == current for c in self._currents
        )
        count = observation.num_req.value if observation.num_req.known else 0.0
        if not steady:
            return [
                (
                    f"calibration: skipped (replicas not steady for {STEADY_INTERVALS} "
                    f"intervals); {factors}"
                )
            ]
        if count < MIN_CALIBRATION_REQUESTS:
            return [f"calibration: skipped ({count:g} requests); {factors}"]
        mix = observed_mix(observation)
        if mix is None:
            return [f"calibration: skipped (no ISL/OSL observed); {factors}"]
        rate = count / observation.interval_s
        words = []
        prefill_ok = (
            self.mode in ("disagg", "prefill")
            and observation.ttft_ms.status is Status.OK
            and current.prefill > 0
        )
        if prefill_ok and observation.ttft_ms.value > self.ttft_ms:
            prefill_ok = False
            words.append(
                f"calibration: observed mean TTFT {observation.ttft_ms.value:,.0f} ms is "
                f"above the {self.ttft_ms:g} ms target: a backlog, which the queueing "
                f"model sizes against, not evidence about prefill speed; prefill factor "
                f"stays {calibration.prefill:.2f}"
            )
        if prefill_ok:
            target_s = self.ttft_ms / 1000.0

            def mean_ttft_ms(factor: float) -> float:
                est = estimate_prefill(
                    self._prefill_mix(mix, factor),
                    servers=current.prefill,
                    arrival_rate_per_s=rate,
                    ttft_s=target_s,
                    quantile=None,
                    arrival_cv2=self.burstiness,
                )
                return est.mean_ttft_s * 1000.0

            said, _ = calibration.update_factor(
                "prefill",
                "TTFT",
                observation.ttft_ms.value,
                mean_ttft_ms,
                current.prefill,
                details,
            )
            words.append(said)
        if (
            self.mode in ("disagg", "decode")
            and observation.itl_ms.status is Status.OK
            and current.decode > 0
        ):
            z = self.z

            def mean_itl_ms(factor: float) -> float:
                return (
                    self._law.scaled(factor)
                    .estimate(
                        mix.isl, mix.osl, rate_per_s=rate, replicas=current.decode, z=z
                    )
                    .mean_itl_ms
                )

            said, steady_itl = calibration.update_factor(
                "decode",
                "ITL",
                observation.itl_ms.value,
                mean_itl_ms,
                current.decode,
                details,
            )
            words.append(said)

            def spread_itl_ms(quantile_z: float) -> float:
                est = self._law.scaled(calibration.decode).estimate(
                    mix.isl,
                    mix.osl,
                    rate_per_s=rate,
                    replicas=current.decode,
                    z=quantile_z,
                )
                return est.quantile_itl_ms - est.mean_itl_ms

            words.append(
                calibration.update_spread(
                    observation,
                    spread_itl_ms,
                    current.decode,
                    details,
                    transient=not steady_itl,
                )
            )
        return words or [f"calibration: nothing to compare; {factors}"]

    def _decode_estimate(
        self, law: DecodeLaw, mix: RequestMix, rate: float, replicas: int, z: float
    ) -> DecodeEstimate:
        """The decode model on ``replicas`` workers, with the calibrated spread."""
        return law.estimate(
            mix.isl,
            mix.osl,
            rate_per_s=rate,
            replicas=replicas,
            z=z,
            spread_factor=self._calibration.spread_on(replicas),
        )


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _long_wait_share(estimate: PrefillQueueEstimate, wait_s: float) -> float:
    """Share of requests waiting longer than ``wait_s`` (Erlang C, exponential tail)."""
    mean = estimate.conditional_mean_wait_s
    if not math.isfinite(mean):
        return 1.0
    if mean <= 0:
        return 0.0
    return estimate.wait_probability * math.exp(-wait_s / mean)


def _decode_rate(rate: float, observation: Observation | None) -> tuple[float, str]:
    """Requests per second entering decode: the sized rate, or more while a backlog drains.

    A prefill backlog (a queue built while workers were starting) releases requests into
    decode faster than they arrive; the requests completed in the last interval (its OSL
    samples, or the count of its OSL histogram: a frontend observes a request's output
    length when it completes) measure that.
    """
    if observation is None:
        return rate, ""
    if observation.osl_samples_tokens:
        count = float(len(observation.osl_samples_tokens))
    elif observation.osl_histogram_tokens:
        count = observation.osl_histogram_tokens[-1][1]
    else:
        return rate, ""
    completed = count / observation.interval_s
    if completed <= rate:
        return rate, ""
    return completed, (
        f"decode: {completed:.2f} requests/s completed in the last interval, more than "
        f"the {rate:.2f}/s sized for (a backlog is draining into decode); decode is "
        "sized for the completions"
    )


def _optional_int(value: Any) -> int | None:
    """``None`` stays ``None``; anything else becomes an ``int``."""
    return None if value is None else int(value)


def _check_demand(demand: Demand) -> None:
    for name in ("num_req", "isl_tokens", "osl_tokens"):
        forecast = getattr(demand, name)
        for value in (forecast.value, forecast.upper):
            if not (math.isfinite(value) and value >= 0):
                msg = f"demand.{name} must be finite and >= 0, got {value!r}"
                raise ValueError(msg)
    if not (math.isfinite(demand.interval_s) and demand.interval_s > 0):
        msg = f"demand.interval_s must be positive, got {demand.interval_s!r}"
        raise ValueError(msg)


def _prefill_alone_ms(interpolator: Interpolator, isl: FloatArray) -> FloatArray:
    from dynamo_planner.interpolators.fitted import FittedInterpolator

    if isinstance(interpolator, FittedInterpolator):
        fit = interpolator.prefill
        return np.asarray(fit.overhead_ms + fit.work_ms_array(isl), dtype=np.float64)
    return np.asarray(
        [interpolator.prefill_ttft_ms(float(x)) for x in isl], dtype=np.float64
    )


def _prefill_overhead_ms(interpolator: Interpolator) -> float:
    """The fixed cost of one prefill batch.

    The fitted interpolator knows it; for any other the TTFT curve is extrapolated to zero
    tokens along the chord from 512 to 1024 tokens (``2 TTFT(512) - TTFT(1024)``).
    """
    from dynamo_planner.interpolators.fitted import FittedInterpolator

    if isinstance(interpolator, FittedInterpolator):
        return interpolator.prefill.overhead_ms
    low = interpolator.prefill_ttft_ms(512.0)
    high = interpolator.prefill_ttft_ms(1024.0)
    return float(min(max(0.0, 2.0 * low - high), low))


def _means_on_target(observation: Observation, ttft_ms: float, itl_ms: float) -> bool:
    """Whether the observed mean TTFT is known and within target, and the ITL too."""
    ttft, itl = observation.ttft_ms, observation.itl_ms
    return (
        ttft.known and ttft.value <= ttft_ms and (not itl.known or itl.value <= itl_ms)
    )
