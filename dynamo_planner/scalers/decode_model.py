"""The decode model of the SLA scaler: a step-time law and Little's law.

One decode step costs ``a + b n + c K`` for ``n`` running requests holding ``K`` context
tokens (:class:`DecodeLaw`). A request stays ``OSL x ITL`` in decode, so by Little's law
the requests in decode form a Poisson population whose step work has mean ``lambda
(ITL/1000) E[OSL (b + c ctx)]`` and variance ``lambda (ITL/1000) E[OSL (b + c ctx)^2]``;
one of ``D`` workers carries ``1/D`` of the rate and fluctuates like a population of its
own. A single worker's fluctuation is amplified by ``1 / (1 - load)``, as its mean is: more
work slows every step, so its requests stay longer and more of them accumulate. With
several workers, admission to the least-loaded one counters that loop: on the Mooncake
trace the plain spread matches the simulator at 2, 7 and 8 workers, the amplified one at
1 (``python benchmarks/sla_plots.py``).

The work of a Poisson population is skewed to the right where a few requests carry long
contexts: its third cumulant is ``lambda (ITL/1000) E[OSL (b + c ctx)^3]``. Alone, one
worker's ITL quantile takes that skew ``g`` into account (the Cornish-Fisher expansion,
``z + (z^2 - 1) g / 6`` standard deviations instead of ``z``, :func:`skew_shift`): at Mooncake x1 on one
worker the normal quantile put the p99 at 19.9 ms against the simulator's 23.9 ms, and
the skewed one at 22.8 ms. With several workers the scaler calibrates the spread from
observed ITLs (admission evens out the skew as well), so the quantile stays normal.

:meth:`DecodeLaw.estimate` gives the mean ITL (the fixed point ``ITL = a + mean work /
D``), the ITL at a quantile, the concurrency and the KV use (:class:`DecodeEstimate`). Its
``spread_factor`` scales the spread about the mean; the scaler learns it from observed
per-request ITLs (:attr:`~dynamo_planner.scalers.sla.SLAScaler.spread_factor`).
:class:`~dynamo_planner.scalers.sla.SLAScaler` picks the fewest workers whose quantile
ITL and KV fit; its module doc explains the choices.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from statistics import NormalDist

import attrs
import numpy as np
import numpy.typing as npt

from dynamo_planner.exceptions import InfeasibleSLAError
from dynamo_planner.protocols import Interpolator

__all__ = ["DecodeEstimate", "DecodeLaw", "skew_shift"]

FloatArray = npt.NDArray[np.float64]


@attrs.frozen(kw_only=True)
class DecodeLaw:
    """Decode step time ``a + b n + c K`` for ``n`` requests holding ``K`` context tokens.

    Attributes:
        step_overhead_ms: ``a``.
        per_request_ms: ``b``.
        per_kv_token_ms: ``c``.
        max_kv_tokens: KV-cache capacity of one engine.
        source: Where the law came from.
    """

    step_overhead_ms: float
    per_request_ms: float
    per_kv_token_ms: float
    max_kv_tokens: int
    source: str = ""

    @classmethod
    def from_interpolator(cls, interpolator: Interpolator) -> DecodeLaw:
        """The law of a fitted interpolator, or one fitted to any interpolator's ITL.

        For :class:`~dynamo_planner.interpolators.fitted.FittedInterpolator` the
        coefficients are taken as they are. Any other interpolator is queried on a grid of
        concurrencies (1 to 256) and contexts (512 to 16k tokens) and the law is fitted to
        its answers by non-negative least squares on relative error.
        """
        from dynamo_planner.interpolators.fitted import FittedInterpolator

        if isinstance(interpolator, FittedInterpolator):
            fit = interpolator.decode
            return cls(
                step_overhead_ms=fit.step_overhead_ms,
                per_request_ms=fit.per_request_ms,
                per_kv_token_ms=fit.per_kv_token_ms,
                max_kv_tokens=fit.max_kv_tokens,
                source="fitted interpolator",
            )
        from scipy.optimize import nnls

        rows = []
        values = []
        max_kv = interpolator.max_kv_tokens()
        for ctx in (512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0):
            for n in (1.0, 4.0, 16.0, 32.0, 64.0, 128.0, 256.0):
                if n * ctx > max_kv:
                    continue
                itl = interpolator.decode_itl_ms(n, ctx)
                if math.isfinite(itl) and itl > 0:
                    rows.append((1.0, n, n * ctx))
                    values.append(itl)
        if len(values) < 3:
            msg = "the interpolator gives fewer than 3 usable decode ITLs to fit a law"
            raise InfeasibleSLAError(msg)
        a = np.asarray(rows, dtype=np.float64)
        y = np.asarray(values, dtype=np.float64)
        coef, _ = nnls(a / y[:, None], np.ones_like(y))
        return cls(
            step_overhead_ms=float(coef[0]),
            per_request_ms=float(coef[1]),
            per_kv_token_ms=float(coef[2]),
            max_kv_tokens=max_kv,
            source=f"fitted to {type(interpolator).__name__}'s ITL",
        )

    def estimate(
        self,
        isl_tokens: npt.ArrayLike,
        osl_tokens: npt.ArrayLike,
        *,
        rate_per_s: float,
        replicas: int,
        z: float,
        spread_factor: float = 1.0,
    ) -> DecodeEstimate:
        """Mean and quantile ITL, concurrency and KV use for a request mix on replicas.

        Args:
            isl_tokens: The mix's input lengths.
            osl_tokens: Their output lengths (same order).
            rate_per_s: Requests per second entering decode.
            replicas: Decode replicas.
            z: Standard-normal quantile of the ITL reported (2.326 for p99).
            spread_factor: Multiplies the ITL's spread about its mean (a calibration;
                1: the model's own).
        """
        isl = np.asarray(isl_tokens, dtype=np.float64)
        osl = np.maximum(np.asarray(osl_tokens, dtype=np.float64), 1.0)
        return _estimate_decode(
            self,
            isl,
            osl,
            rate=rate_per_s,
            replicas=replicas,
            z=z,
            spread_factor=spread_factor,
        )

    def scaled(self, factor: float) -> DecodeLaw:
        """The law with every step cost multiplied by ``factor``."""
        return attrs.evolve(
            self,
            step_overhead_ms=self.step_overhead_ms * factor,
            per_request_ms=self.per_request_ms * factor,
            per_kv_token_ms=self.per_kv_token_ms * factor,
        )


@attrs.frozen(kw_only=True)
class DecodeEstimate:
    """What the decode model predicts for one replica count.

    Attributes:
        replicas: Decode replicas.
        mean_itl_ms: Mean ITL (the fixed point of Little's law and the step law).
        quantile_itl_ms: ITL at the attainment quantile (``inf`` when overloaded).
        concurrency_per_replica: Mean requests running on one replica.
        kv_usage: Mean share of one replica's KV cache reserved.
        kv_quantile_usage: Reserved share at the attainment quantile.
    """

    replicas: int
    mean_itl_ms: float
    quantile_itl_ms: float
    concurrency_per_replica: float
    kv_usage: float
    kv_quantile_usage: float

    def share_above(self, itl_ms: float, z: float) -> float:
        """The share of ITLs above ``itl_ms``, for an estimate made at quantile ``z``.

        The ITL is read as a normal through the mean and the quantile (skew included
        there): ``1 - Phi((itl_ms - mean) / sd)`` with ``sd = (quantile - mean) / z``.

        Args:
            itl_ms: The ITL target.
            z: The standard-normal quantile the estimate was made at (positive).

        Returns:
            The share, 1 when overloaded.

        Example:
            >>> e = DecodeEstimate(replicas=1, mean_itl_ms=10.0, quantile_itl_ms=12.0,
            ...                    concurrency_per_replica=8.0, kv_usage=0.1,
            ...                    kv_quantile_usage=0.2)
            >>> round(e.share_above(12.0, 2.0), 4)  # the mean plus z sd
            0.0228
        """
        if not math.isfinite(self.mean_itl_ms):
            return 1.0
        sd = (self.quantile_itl_ms - self.mean_itl_ms) / z if z > 0 else 0.0
        if sd <= 0.0:
            return 1.0 if self.mean_itl_ms > itl_ms else 0.0
        return 1.0 - NormalDist(self.mean_itl_ms, sd).cdf(itl_ms)


def _estimate_decode(
    law: DecodeLaw,
    isl: FloatArray,
    osl: FloatArray,
    *,
    rate: float,
    replicas: int,
    z: float,
    spread_factor: float = 1.0,
) -> DecodeEstimate:
    """Mean and quantile ITL, concurrency and KV use on ``replicas`` decode workers."""
    a = law.step_overhead_ms
    per_step = law.per_request_ms + law.per_kv_token_ms * (isl + osl / 2.0)
    work1 = float(np.mean(osl * per_step))  # ms of step work per (request/s x ms ITL)
    work2 = float(np.mean(osl * per_step**2))
    work3 = float(np.mean(osl * per_step**3))
    reserve = isl + osl
    kv1 = float(np.mean(osl * reserve))
    kv2 = float(np.mean(osl * reserve**2))
    per_replica = rate / replicas
    load = per_replica * work1 / 1000.0
    if load >= 1.0:
        return DecodeEstimate(
            replicas=replicas,
            mean_itl_ms=math.inf,
            quantile_itl_ms=math.inf,
            concurrency_per_replica=math.inf,
            kv_usage=math.inf,
            kv_quantile_usage=math.inf,
        )
    mean_itl = a / (1.0 - load)
    seconds = per_replica * mean_itl / 1000.0  # request-seconds per OSL token
    # One worker's requests fluctuate like a Poisson population of its own: admission
    # to the least-loaded worker evens out counts, not the work of requests that stay
    # for their whole decode (see the module docstring).
    spread = math.sqrt(max(0.0, seconds * work2))
    skew_ms = 0.0
    if replicas == 1:
        # alone, nothing counters the loop: more work slows every step, requests stay
        # longer and more accumulate, so the spread grows like the mean, by 1 / (1 - load)
        spread /= 1.0 - load
        # and the quantile is taken in the skewed tail; amplifying every step by
        # 1 / (1 - load) scales k3 / k2, and so the shift, by as much
        skew_ms = skew_shift(z, work2, work3) / (1.0 - load)
    quantile_itl = mean_itl + (z * spread + skew_ms) * spread_factor
    kv_mean = seconds * kv1
    kv_quantile = kv_mean + z * math.sqrt(max(0.0, seconds * kv2))
    capacity = max(1, law.max_kv_tokens)
    return DecodeEstimate(
        replicas=replicas,
        mean_itl_ms=mean_itl,
        quantile_itl_ms=quantile_itl,
        concurrency_per_replica=seconds * float(np.mean(osl)),
        kv_usage=kv_mean / capacity,
        kv_quantile_usage=kv_quantile / capacity,
    )


def skew_shift(z: float, second: float, third: float) -> float:
    """How far skew moves a quantile past ``mean + z sd``, in the variable's unit.

    The first-order Cornish-Fisher expansion puts the quantile ``z + (z^2 - 1) g / 6``
    standard deviations above the mean, for skewness ``g = k3 / k2^1.5``; past the
    normal's ``z`` that is ``(z^2 - 1) / 6 x k3 / k2``. Of a Poisson population's
    work the cumulants are its size times the moments, so the moments can be passed
    instead, and an empty population needs no care.

    Args:
        z: The standard-normal quantile.
        second: The second cumulant ``k2`` (or moment, for a Poisson population).
        third: The third cumulant ``k3`` (or moment, likewise).

    Returns:
        The shift; 0 when ``second`` is not positive.

    Example:
        A Poisson count of mean 4 (unit work: every cumulant 4, skewness 0.5) at z = 2:

        >>> skew_shift(2.0, 4.0, 4.0)  # 2 + 3 x 0.5 / 6 = 2.25 sd of 2, past 2 sd
        0.5
    """
    return (z * z - 1.0) / 6.0 * third / second if second > 0.0 else 0.0
