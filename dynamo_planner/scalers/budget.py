"""The GPU budget: cap the replicas a scaler asked for at ``max_gpu_budget`` GPUs (spec §1.6).

The formulas are Dynamo's (v0.9), with one deliberate difference: **the budget never grows a
component above what it asked for**. Dynamo gives decode all the GPUs prefill leaves over,
so with 4 GPUs per prefill engine, 1 per decode engine, a budget of 12 and a request of
(3, 1) it returns (2, 4) (upstream #13064); here the answer is (2, 1).

The budget is applied after ``min_endpoint`` and wins over it: when the budget cannot host
``min_endpoint`` replicas of every component, the result is 0 replicas.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math

import attrs

from dynamo_planner.values import ReplicaPlan, ReplicaState

__all__ = [
    "BudgetResult",
    "ComponentBudgetResult",
    "apply_budget",
    "apply_component_budget",
    "apply_global_budget",
]


@attrs.frozen(kw_only=True)
class BudgetResult:
    """Prefill and decode replicas after the global budget.

    Attributes:
        prefill: Prefill replicas.
        decode: Decode replicas.
        clamped: True when the budget changed anything.
        reason: What the budget did, in words.
    """

    prefill: int
    decode: int
    clamped: bool
    reason: str


@attrs.frozen(kw_only=True)
class ComponentBudgetResult:
    """One component's replicas after its budget.

    Attributes:
        replicas: Replicas.
        clamped: True when the budget changed the count.
        reason: What the budget did, in words.
    """

    replicas: int
    clamped: bool
    reason: str


def apply_global_budget(
    prefill: int,
    decode: int,
    *,
    prefill_gpus_per_engine: int,
    decode_gpus_per_engine: int,
    budget_gpus: int,
    min_endpoint: int,
) -> BudgetResult:
    """Fit prefill and decode replicas into one GPU budget (disagg mode).

    Args:
        prefill: Prefill replicas asked for.
        decode: Decode replicas asked for.
        prefill_gpus_per_engine: GPUs per prefill replica (``Np``).
        decode_gpus_per_engine: GPUs per decode replica (``Nd``).
        budget_gpus: Most GPUs in total (``B``); negative means no budget.
        min_endpoint: Fewest replicas per component (``m``).

    Returns:
        The replicas, and whether and why the budget clamped them.
    """
    np_, nd = prefill_gpus_per_engine, decode_gpus_per_engine
    total = prefill * np_ + decode * nd
    if budget_gpus < 0:
        return BudgetResult(
            prefill=prefill,
            decode=decode,
            clamped=False,
            reason="no GPU budget (max_gpu_budget < 0)",
        )
    if total <= budget_gpus:
        return BudgetResult(
            prefill=prefill,
            decode=decode,
            clamped=False,
            reason=f"{total} GPUs fit the budget of {budget_gpus}",
        )
    minimum = min_endpoint * np_ + min_endpoint * nd
    if budget_gpus < minimum:
        return BudgetResult(
            prefill=0,
            decode=0,
            clamped=True,
            reason=(
                f"budget of {budget_gpus} GPUs cannot host min_endpoint={min_endpoint} "
                f"replicas of each component ({minimum} GPUs); scaling both to 0"
            ),
        )
    scale = budget_gpus / total
    max_prefill = math.floor((budget_gpus - min_endpoint * nd) / np_)
    new_prefill = max(min_endpoint, min(max_prefill, math.floor(prefill * scale)))
    new_decode = max(min_endpoint, math.floor((budget_gpus - new_prefill * np_) / nd))
    # Our fix (upstream #13064): decode takes the GPUs left over, but never more replicas
    # than it asked for; likewise prefill.
    new_prefill, new_decode = min(new_prefill, prefill), min(new_decode, decode)
    used = new_prefill * np_ + new_decode * nd
    return BudgetResult(
        prefill=new_prefill,
        decode=new_decode,
        clamped=True,
        reason=(
            f"{total} GPUs exceed the budget of {budget_gpus}: scaled "
            f"({prefill}, {decode}) by {scale:.3f} to ({new_prefill}, {new_decode}) "
            f"prefill/decode replicas, {used} GPUs"
        ),
    )


def apply_component_budget(
    replicas: int, *, gpus_per_engine: int, budget_gpus: int, min_endpoint: int
) -> ComponentBudgetResult:
    """Fit one component's replicas into the budget (prefill, decode or agg mode).

    Args:
        replicas: Replicas asked for (``R``).
        gpus_per_engine: GPUs per replica (``N``).
        budget_gpus: Most GPUs (``B``); negative means no budget.
        min_endpoint: Fewest replicas (``m``).

    Returns:
        The replicas, and whether and why the budget clamped them.
    """
    gpus = replicas * gpus_per_engine
    if budget_gpus < 0:
        return ComponentBudgetResult(
            replicas=replicas,
            clamped=False,
            reason="no GPU budget (max_gpu_budget < 0)",
        )
    if gpus <= budget_gpus:
        return ComponentBudgetResult(
            replicas=replicas,
            clamped=False,
            reason=f"{gpus} GPUs fit the budget of {budget_gpus}",
        )
    if budget_gpus < min_endpoint * gpus_per_engine:
        return ComponentBudgetResult(
            replicas=0,
            clamped=True,
            reason=(
                f"budget of {budget_gpus} GPUs cannot host min_endpoint={min_endpoint} "
                f"replicas of {gpus_per_engine} GPUs; scaling to 0"
            ),
        )
    fitted = min(replicas, max(min_endpoint, math.floor(replicas * budget_gpus / gpus)))
    return ComponentBudgetResult(
        replicas=fitted,
        clamped=True,
        reason=(
            f"{gpus} GPUs exceed the budget of {budget_gpus}: {replicas} replicas "
            f"reduced to {fitted} ({fitted * gpus_per_engine} GPUs)"
        ),
    )


def apply_budget(
    plan: ReplicaPlan,
    *,
    current: ReplicaState,
    mode: str = "disagg",
    prefill_gpus_per_engine: int = 1,
    decode_gpus_per_engine: int = 1,
    budget_gpus: int = -1,
    min_endpoint: int = 1,
) -> ReplicaPlan:
    """Apply the GPU budget to a scaler's plan.

    In ``disagg`` mode the global budget covers both components; a component the plan
    leaves as it is (``None``) counts with its ``current`` replicas, and stays ``None``
    unless the budget has to change it. In ``prefill``, ``decode`` and ``agg`` modes the
    planned component has the budget to itself (``agg`` uses the decode GPUs per engine).

    Args:
        plan: The scaler's plan (its replicas are before the budget).
        current: The replicas running now.
        mode: ``"disagg"``, ``"prefill"``, ``"decode"`` or ``"agg"``.
        prefill_gpus_per_engine: GPUs per prefill replica.
        decode_gpus_per_engine: GPUs per decode (or agg) replica.
        budget_gpus: Most GPUs in total; negative means no budget.
        min_endpoint: Fewest replicas per component.

    Returns:
        The plan with the budget applied: ``unclamped_*`` hold the replicas before it,
        ``"budget"`` is in ``clamps`` when it changed anything, and its reason is appended.
    """
    if plan.is_hold:
        return _with_unclamped(plan)
    if mode == "disagg":
        result = apply_global_budget(
            current.prefill if plan.prefill is None else plan.prefill,
            current.decode if plan.decode is None else plan.decode,
            prefill_gpus_per_engine=prefill_gpus_per_engine,
            decode_gpus_per_engine=decode_gpus_per_engine,
            budget_gpus=budget_gpus,
            min_endpoint=min_endpoint,
        )
        prefill = _keep_hold(plan.prefill, current.prefill, result.prefill)
        decode = _keep_hold(plan.decode, current.decode, result.decode)
        return _finish(
            plan, prefill, decode, result.clamped, result.reason, budget_gpus
        )
    if plan.prefill is not None and mode == "prefill":
        one = apply_component_budget(
            plan.prefill,
            gpus_per_engine=prefill_gpus_per_engine,
            budget_gpus=budget_gpus,
            min_endpoint=min_endpoint,
        )
        return _finish(
            plan, one.replicas, plan.decode, one.clamped, one.reason, budget_gpus
        )
    if plan.decode is not None and mode in ("decode", "agg"):
        one = apply_component_budget(
            plan.decode,
            gpus_per_engine=decode_gpus_per_engine,
            budget_gpus=budget_gpus,
            min_endpoint=min_endpoint,
        )
        return _finish(
            plan, plan.prefill, one.replicas, one.clamped, one.reason, budget_gpus
        )
    return _with_unclamped(plan)


def _keep_hold(planned: int | None, current: int, budgeted: int) -> int | None:
    """A held component stays held unless the budget moved it."""
    if planned is None and budgeted == current:
        return None
    return budgeted


def _with_unclamped(plan: ReplicaPlan) -> ReplicaPlan:
    return attrs.evolve(
        plan,
        unclamped_prefill=plan.prefill
        if plan.unclamped_prefill is None
        else plan.unclamped_prefill,
        unclamped_decode=plan.decode
        if plan.unclamped_decode is None
        else plan.unclamped_decode,
    )


def _finish(
    plan: ReplicaPlan,
    prefill: int | None,
    decode: int | None,
    clamped: bool,
    reason: str,
    budget_gpus: int,
) -> ReplicaPlan:
    base = _with_unclamped(plan)
    details = dict(plan.details)
    details["budget_gpus"] = budget_gpus
    return attrs.evolve(
        base,
        prefill=prefill,
        decode=decode,
        reasons=(*plan.reasons, f"GPU budget: {reason}"),
        clamps=(*plan.clamps, "budget") if clamped else plan.clamps,
        details=details,
    )
