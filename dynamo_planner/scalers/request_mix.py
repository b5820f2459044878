"""The request mix a sizing evaluates: input and output lengths, one pair per request.

The ``sla`` scaler's queueing and decode models work on a sample of requests, not on mean
lengths, because a mix of short and long prompts queues differently from its mean. The mix
comes from the per-request lengths a source reports (the demand's forecast samples, or the
last observation's), in this order:

* the samples are cleaned (negative and non-finite values dropped);
* ISL and OSL samples of different sizes are paired by quantiles, shuffled, as the source
  does not say which input went with which output;
* a mix above :data:`MAX_MIX` requests is subsampled (seeded, so a decision is
  reproducible);
* the lengths are scaled to the means being sized for (the upper forecast, raised by a
  rising trend), by a factor kept within ``[0.5, 2]``.

With no samples, an exponential mix around the means stands in
(:func:`dynamo_planner.scalers.queueing.exponential_mix`), and the words say so.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import attrs
import numpy as np
import numpy.typing as npt

from dynamo_planner.scalers.queueing import exponential_mix
from dynamo_planner.values import Demand, Observation

__all__ = ["MAX_MIX", "RequestMix", "clean", "observed_mix", "sized_mix"]

FloatArray = npt.NDArray[np.float64]

MAX_MIX = 1024
"""Most requests of a mix the models evaluate (a larger mix is subsampled, seeded)."""
SCALE_BOUNDS = (0.5, 2.0)
"""The range of the factor that scales a mix's lengths to the means sized for."""


@attrs.frozen(kw_only=True, eq=False)
class RequestMix:
    """Input and output lengths of the requests a sizing evaluates.

    Attributes:
        isl: Input lengths, tokens.
        osl: Output lengths, tokens (paired with ``isl``).
        words: Where the mix came from, for the plan's reasons.
    """

    isl: FloatArray
    osl: FloatArray
    words: str

    @property
    def context(self) -> FloatArray:
        """Each request's mean context in decode, ``ISL + OSL / 2`` tokens."""
        return np.asarray(self.isl + self.osl / 2.0, dtype=np.float64)


def clean(values: tuple[float, ...]) -> FloatArray:
    """The finite, non-negative values, as an array.

    Example:
        >>> clean((3.0, -1.0, float("nan"), 5.0)).tolist()
        [3.0, 5.0]
    """
    array = np.asarray(values, dtype=np.float64)
    return np.asarray(array[np.isfinite(array) & (array >= 0)], dtype=np.float64)


def sized_mix(
    demand: Demand,
    observation: Observation | None,
    *,
    isl_mean: float | None = None,
    osl_mean: float | None = None,
) -> RequestMix:
    """The request mix to size for: samples where known, scaled to the given means.

    Args:
        demand: The forecast; its samples are used first.
        observation: The last interval, whose samples stand in when the demand has none.
        isl_mean: Mean ISL to scale to (default: the demand's upper ISL).
        osl_mean: Mean OSL to scale to (default: the demand's upper OSL).
    """
    isl = clean(demand.isl_samples_tokens)
    osl = clean(demand.osl_samples_tokens)
    where = "the demand"
    if (isl.size == 0 or osl.size == 0) and observation is not None:
        isl = clean(observation.isl_samples_tokens)
        osl = clean(observation.osl_samples_tokens)
        where = "the last observation"
    isl_mean = demand.isl_tokens.upper if isl_mean is None else isl_mean
    osl_mean = demand.osl_tokens.upper if osl_mean is None else osl_mean
    if isl.size == 0 or osl.size == 0:
        isl = exponential_mix(max(isl_mean, 1.0))
        osl = exponential_mix(max(osl_mean, 1.0))
        osl = osl[np.random.default_rng(0).permutation(osl.size)]
        return RequestMix(
            isl=isl,
            osl=osl,
            words=(
                f"mix: no per-request lengths known; an exponential mix around the "
                f"forecast ISL {isl_mean:,.0f} / OSL {osl_mean:,.0f} tokens stands in"
            ),
        )
    isl, osl = _subsample(*_pair(isl, osl))
    raw_isl, raw_osl = float(np.mean(isl)), float(np.mean(osl))
    isl, isl_factor = _scale_to(isl, isl_mean)
    osl, osl_factor = _scale_to(osl, osl_mean)
    return RequestMix(
        isl=isl,
        osl=np.maximum(osl, 1.0),
        words=(
            f"mix: {isl.size} requests from {where} (ISL mean {raw_isl:,.0f}, OSL mean "
            f"{raw_osl:,.0f} tokens), scaled x{isl_factor:.2f} / x{osl_factor:.2f} to "
            f"the sized ISL {isl_mean:,.0f} / OSL {osl_mean:,.0f} "
            "(upper forecast and trend)"
        ),
    )


def observed_mix(observation: Observation) -> RequestMix | None:
    """The last interval's mix as observed: samples, else an exponential mix.

    Returns:
        The mix, or ``None`` when neither samples nor mean lengths were observed.
    """
    isl = clean(observation.isl_samples_tokens)
    osl = clean(observation.osl_samples_tokens)
    if isl.size and osl.size:
        isl, osl = _subsample(*_pair(isl, osl))
        return RequestMix(isl=isl, osl=np.maximum(osl, 1.0), words="observed")
    if observation.isl_tokens.known and observation.osl_tokens.known:
        isl = exponential_mix(max(observation.isl_tokens.value, 1.0))
        osl = exponential_mix(max(observation.osl_tokens.value, 1.0))
        return RequestMix(isl=isl, osl=osl, words="observed means")
    return None


def _subsample(isl: FloatArray, osl: FloatArray) -> tuple[FloatArray, FloatArray]:
    if isl.size <= MAX_MIX:
        return isl, osl
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(isl.size, MAX_MIX, replace=False))
    return isl[pick], osl[pick]


def _pair(isl: FloatArray, osl: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Pair ISL and OSL samples; unequal lengths are matched by quantiles, shuffled."""
    if isl.size == osl.size:
        return isl, osl
    size = min(MAX_MIX, max(isl.size, osl.size))
    levels = (np.arange(size) + 0.5) / size
    isl_q = np.quantile(isl, levels)
    osl_q = np.quantile(osl, levels)
    rng = np.random.default_rng(0)
    return isl_q, osl_q[rng.permutation(size)]


def _scale_to(values: FloatArray, mean: float) -> tuple[FloatArray, float]:
    current = float(np.mean(values)) if values.size else 0.0
    if current <= 0 or not (mean > 0):
        return values, 1.0
    low, high = SCALE_BOUNDS
    factor = min(high, max(low, mean / current))
    return values * factor, factor
