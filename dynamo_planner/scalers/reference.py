"""The reference scaler: Dynamo's throughput-based replica formulas, exactly (spec §1.5).

With ``I`` the interval (s), ``Np``/``Nd`` the GPUs per prefill/decode engine and ``m`` the
``min_endpoint``::

    prefill load   = num_req * ISL / I * min(1, p_correction)          tokens/s
    prefill        = max(ceil(load / thpt_per_gpu(ISL) / Np), m)

    ITL target'    = ITL target / d_correction     (the raw target if d_correction <= 0)
    decode point   = best_decode_point(ITL target', ISL + OSL/2)
    decode load    = num_req * OSL / I                                 tokens/s
    decode         = max(ceil(load / point.thpt_per_gpu / Nd), m)

A throughput per GPU of zero or less gives ``m``. The GPU budget is applied afterwards
(:mod:`dynamo_planner.scalers.budget`).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from typing import Any, Literal

import attrs

from dynamo_planner.protocols import Interpolator, ScalingRequest
from dynamo_planner.scalers import _checks
from dynamo_planner.values import Corrections, Demand, ReplicaPlan

__all__ = ["ReferenceScaler"]

Mode = Literal["disagg", "prefill", "decode"]
_MODES = ("disagg", "prefill", "decode")


@attrs.frozen(kw_only=True)
class _Load:
    """The demand the formulas use, checked once."""

    num_req: float
    isl_tokens: float
    osl_tokens: float
    interval_s: float

    @classmethod
    def of(cls, demand: Demand) -> _Load:
        values = {
            "num_req": demand.num_req.value,
            "isl_tokens": demand.isl_tokens.value,
            "osl_tokens": demand.osl_tokens.value,
        }
        for name, value in values.items():
            if not (math.isfinite(value) and value >= 0):
                msg = f"demand.{name} must be finite and >= 0, got {value!r}"
                raise ValueError(msg)
        if not (math.isfinite(demand.interval_s) and demand.interval_s > 0):
            msg = f"demand.interval_s must be positive, got {demand.interval_s!r}"
            raise ValueError(msg)
        return cls(interval_s=demand.interval_s, **values)


@attrs.frozen(kw_only=True)
class _Sized:
    """One component's replicas with the numbers and words behind them."""

    replicas: int
    reasons: tuple[str, ...]
    details: dict[str, float]
    raised_to_min: bool


@attrs.frozen(kw_only=True)
class ReferenceScaler:
    """Dynamo's throughput-based scaler (before the GPU budget).

    It satisfies :class:`dynamo_planner.protocols.Scaler`.

    Attributes:
        interpolator: The performance model.
        ttft_ms: TTFT target (the reference formula does not use it; it is reported).
        itl_ms: ITL target.
        prefill_gpus_per_engine: GPUs per prefill replica (``Np``).
        decode_gpus_per_engine: GPUs per decode replica (``Nd``).
        min_endpoint: Fewest replicas per component.
        mode: ``"disagg"`` plans both; ``"prefill"`` or ``"decode"`` plans one and leaves
            the other ``None``.
    """

    interpolator: Interpolator
    ttft_ms: float = attrs.field(default=500.0, validator=_checks.positive)
    itl_ms: float = attrs.field(default=50.0, validator=_checks.positive)
    prefill_gpus_per_engine: int = attrs.field(default=1, validator=_checks.at_least(1))
    decode_gpus_per_engine: int = attrs.field(default=1, validator=_checks.at_least(1))
    min_endpoint: int = attrs.field(default=1, validator=_checks.at_least(0))
    mode: Mode = attrs.field(
        default="disagg", validator=_checks.in_modes("reference", _MODES)
    )

    @classmethod
    def from_config(cls, config: Any, interpolator: Interpolator) -> ReferenceScaler:
        """Build from a :class:`~dynamo_planner.config.PlannerConfig`.

        Any object with its field names works: ``ttft_ms``, ``itl_ms``,
        ``prefill_engine_num_gpu``, ``decode_engine_num_gpu``, ``min_endpoint``, ``mode``.
        GPUs per engine left as ``None`` count as 1, as in the reference's dry run.
        """
        prefill_gpus = getattr(config, "prefill_engine_num_gpu", None)
        decode_gpus = getattr(config, "decode_engine_num_gpu", None)
        return cls(
            interpolator=interpolator,
            ttft_ms=float(getattr(config, "ttft_ms", 500.0)),
            itl_ms=float(getattr(config, "itl_ms", 50.0)),
            prefill_gpus_per_engine=1 if prefill_gpus is None else int(prefill_gpus),
            decode_gpus_per_engine=1 if decode_gpus is None else int(decode_gpus),
            min_endpoint=int(getattr(config, "min_endpoint", 1)),
            mode=getattr(config, "mode", "disagg"),
        )

    def decide(self, request: ScalingRequest) -> ReplicaPlan:
        """Replicas for the request's demand, before the GPU budget.

        Args:
            request: Demand (forecast num_req, ISL, OSL over the interval) and corrections.

        Returns:
            The plan. ``details`` holds the numbers, ``reasons`` the steps in words,
            ``clamps`` contains ``"min_endpoint"`` when that raised a component.

        Raises:
            ValueError: The demand is negative or not finite, or the interval is not
                positive.
        """
        load = _Load.of(request.demand)
        corrections = request.corrections
        demand_words = (
            f"demand: {load.num_req:g} requests in {load.interval_s:g} s, "
            f"ISL {load.isl_tokens:g}, OSL {load.osl_tokens:g} tokens"
        )
        reasons = [demand_words]
        details: dict[str, float] = {
            "interval_s": load.interval_s,
            "num_req": load.num_req,
            "isl_tokens": load.isl_tokens,
            "osl_tokens": load.osl_tokens,
            "p_correction": corrections.prefill,
            "d_correction": corrections.decode,
        }
        prefill = decode = None
        raised = False
        if self.mode in ("disagg", "prefill"):
            sized = self._prefill(load, corrections)
            prefill, raised = sized.replicas, sized.raised_to_min
            reasons.extend(sized.reasons)
            details.update(sized.details)
        if self.mode in ("disagg", "decode"):
            sized = self._decode(load, corrections)
            decode, raised = sized.replicas, raised or sized.raised_to_min
            reasons.extend(sized.reasons)
            details.update(sized.details)
        return ReplicaPlan(
            prefill=prefill,
            decode=decode,
            reasons=reasons,
            demand=request.demand,
            unclamped_prefill=prefill,
            unclamped_decode=decode,
            clamps=("min_endpoint",) if raised else (),
            details=details,
        )

    def _prefill(self, load: _Load, corrections: Corrections) -> _Sized:
        p_correction = corrections.prefill
        if not math.isfinite(p_correction):
            p_correction = 1.0
        factor = min(1.0, p_correction)
        tokens_per_s = load.num_req * load.isl_tokens / load.interval_s * factor
        thpt_per_gpu = self.interpolator.prefill_throughput_per_gpu(load.isl_tokens)
        ttft_ms = self.interpolator.prefill_ttft_ms(load.isl_tokens)
        details = {
            "prefill_tokens_per_s": tokens_per_s,
            "prefill_throughput_per_gpu": thpt_per_gpu,
            "prefill_ttft_ms": ttft_ms,
            "p_correction_applied": factor,
        }
        load_words = (
            f"prefill load: {load.num_req:g} x {load.isl_tokens:g} tokens / "
            f"{load.interval_s:g} s x min(1, p_correction {p_correction:.3g}) = "
            f"{tokens_per_s:,.0f} tokens/s"
        )
        reasons = [load_words]
        if ttft_ms > self.ttft_ms:
            reasons.append(
                f"note: one request alone takes {ttft_ms:.1f} ms to prefill, over the TTFT "
                f"target of {self.ttft_ms:g} ms (the reference formula does not use it)"
            )
        replicas, raised, words = self._replicas(
            tokens_per_s, thpt_per_gpu, self.prefill_gpus_per_engine, "prefill"
        )
        reasons.append(words)
        return _Sized(
            replicas=replicas,
            reasons=tuple(reasons),
            details=details,
            raised_to_min=raised,
        )

    def _decode(self, load: _Load, corrections: Corrections) -> _Sized:
        d_correction = corrections.decode
        if math.isfinite(d_correction) and d_correction > 0:
            itl_target_ms = self.itl_ms / d_correction
            target_words = (
                f"ITL target {self.itl_ms:g} ms / d_correction {d_correction:.3g}"
            )
        else:
            itl_target_ms = self.itl_ms
            target_words = f"ITL target {self.itl_ms:g} ms (d_correction {d_correction:.3g} unused)"
        context_tokens = load.isl_tokens + load.osl_tokens / 2
        point = self.interpolator.best_decode_point(itl_target_ms, context_tokens)
        tokens_per_s = load.num_req * load.osl_tokens / load.interval_s
        details = {
            "decode_tokens_per_s": tokens_per_s,
            "decode_context_tokens": context_tokens,
            "decode_itl_target_ms": itl_target_ms,
            "decode_throughput_per_gpu": point.throughput_per_gpu,
            "decode_itl_ms": point.itl_ms,
            "decode_kv_usage": point.kv_usage,
        }
        point_words = (
            f"decode point: {target_words} = {itl_target_ms:.3g} ms at context "
            f"{context_tokens:g} tokens -> {point.throughput_per_gpu:,.0f} tokens/s "
            f"per GPU (ITL {point.itl_ms:.2f} ms, KV usage {point.kv_usage:.3f})"
        )
        load_words = (
            f"decode load: {load.num_req:g} x {load.osl_tokens:g} tokens / "
            f"{load.interval_s:g} s = {tokens_per_s:,.0f} tokens/s"
        )
        reasons = [point_words, load_words]
        if point.itl_ms > itl_target_ms:
            reasons.append(
                f"note: no decode load meets {itl_target_ms:.3g} ms; sized at the "
                f"zero-load point (ITL {point.itl_ms:.2f} ms), as the reference does"
            )
        replicas, raised, words = self._replicas(
            tokens_per_s,
            point.throughput_per_gpu,
            self.decode_gpus_per_engine,
            "decode",
        )
        reasons.append(words)
        return _Sized(
            replicas=replicas,
            reasons=tuple(reasons),
            details=details,
            raised_to_min=raised,
        )

    def _replicas(
        self, tokens_per_s: float, thpt_per_gpu: float, gpus_per_engine: int, name: str
    ) -> tuple[int, bool, str]:
        """``max(ceil(load / thpt / gpus), min_endpoint)``, or ``min_endpoint``."""
        if thpt_per_gpu <= 0 or not math.isfinite(thpt_per_gpu):
            words = (
                f"{name}: the profile gives {thpt_per_gpu:g} tokens/s per GPU; "
                f"using min_endpoint={self.min_endpoint}"
            )
            return self.min_endpoint, True, words
        ratio = tokens_per_s / thpt_per_gpu / gpus_per_engine
        if not math.isfinite(ratio):
            msg = f"{name}: {tokens_per_s:g} tokens/s at {thpt_per_gpu:g} per GPU overflows"
            raise ValueError(msg)
        needed = math.ceil(ratio)
        replicas = max(needed, self.min_endpoint)
        words = (
            f"{name}: ceil({tokens_per_s:,.0f} / {thpt_per_gpu:,.0f} / {gpus_per_engine} GPUs) "
            f"= {needed} replicas"
        )
        if replicas > needed:
            words += f", raised to min_endpoint={self.min_endpoint}"
        return replicas, replicas > needed, words
