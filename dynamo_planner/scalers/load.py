"""Load-based scaling: replica decisions from per-worker load (spec §4.4 to §4.7, snapshot B).

Each load tick (``--loadbased-adjustment-interval``, default 5 s) looks at every worker's
current load and at the regression of latency on load (:mod:`.load_regression`):

* ``x_sla`` is the largest load that meets the latency target (the regression's reverse
  solve). **Prefill** compares ``active_prefill_tokens`` with ``target = x_sla - ISL``, where
  ISL is the cluster-averaged ``last_isl`` (the regression's load includes the request's own
  prompt); **decode** compares ``active_decode_blocks`` with ``target = x_sla``.
* **Scale up by one** when *every* worker is above ``target``.
* **Scale down by one** when ``N > 1`` and *every* worker is below
  ``boundary = target * (N-1)/N * sensitivity/100``: the ``(N-1)/N`` factor asks whether the
  load would still fit after consolidating onto one worker fewer (without it, 2↔1
  oscillation, upstream #9294); sensitivity 0 never scales down.
* Otherwise hold. Also hold, for that component, when the regression has too few
  observations (cold start), when the SLA is unreachable (``target <= 0``), when there are
  no workers, when a worker's load is unknown, when the router lists a different number of
  workers than the deployment has (the reconciliation guard: workers starting, stopping or
  metric lag), or while the last scaling of the component is still in progress (a guard the
  reference lacks, upstream #9774).

Modes. ``disagg``: prefill and decode decide **independently** (snapshot B); one held
component never cancels the other. ``prefill``/``decode``: one component. ``agg``: one
component of aggregated workers (reported as ``worker_type="decode"``), judged on both
dimensions: up if either dimension says up, down only if both say down.

After the rule, on **every** tick (our deltas to the reference, which applied these only
when the rule proposed a change):

1. the throughput floor (the throughput planner's latest plan, when both modes run):
   ``max(decision, floor)``;
2. ``min_endpoint`` (upstream #6637);
3. the GPU budget (:func:`~dynamo_planner.scalers.budget.apply_budget`: global in disagg,
   per component otherwise, agg with the decode GPUs per engine).

So a rule moves a component by at most one replica per tick; only the floor, the minimum and
the budget move it further. Components whose target equals the current count are left
``None`` in the plan (nothing to change).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, Protocol

import attrs

from dynamo_planner.exceptions import ConfigError
from dynamo_planner.scalers.budget import apply_budget
from dynamo_planner.scalers.load_regression import LinearFit
from dynamo_planner.values import ReplicaPlan, ReplicaState, WorkerLoad

__all__ = [
    "Component",
    "LoadRequest",
    "LoadScaler",
    "LoadSnapshot",
    "LoadView",
    "Rule",
    "RuleResult",
    "decode_observations",
    "decode_rule",
    "prefill_observations",
    "prefill_rule",
]

Component = Literal["prefill", "decode"]

Rule = Literal[
    "scale_up",
    "scale_down",
    "within_band",
    "insufficient_data",
    "sla_unreachable",
    "no_workers",
    "load_unknown",
    "worker_count_mismatch",
    "scaling_in_progress",
]
"""Which rule decided a component (recorded in ``ReplicaPlan.details``).

``scale_up``/``scale_down``: every worker above the target / below the boundary.
``within_band``: neither. The others hold the component: ``insufficient_data`` (cold start),
``sla_unreachable`` (``target <= 0``), ``no_workers``, ``load_unknown`` (a worker did not
report the load), ``worker_count_mismatch`` (router vs deployment count),
``scaling_in_progress`` (the last change has not converged).
"""

_MODES = ("disagg", "prefill", "decode", "agg")
_COMPONENTS: Mapping[str, tuple[Component, ...]] = {
    "disagg": ("prefill", "decode"),
    "prefill": ("prefill",),
    "decode": ("decode",),
    "agg": ("decode",),
}
_LOAD_FIELDS = (
    "active_prefill_tokens",
    "active_decode_blocks",
    "last_ttft_ms",
    "last_itl_ms",
    "last_isl_tokens",
)


# --------------------------------------------------------------------------- inputs
def _workers(values: Iterable[WorkerLoad]) -> tuple[WorkerLoad, ...]:
    return tuple(values)


def _mean_load(workers: Sequence[WorkerLoad], worker_type: str) -> WorkerLoad:
    """One average per field over all workers (``worker_id`` ``"*"``), ignoring gaps."""
    fields: dict[str, Any] = {}
    for name in _LOAD_FIELDS:
        values = [v for w in workers if (v := getattr(w, name)) is not None]
        fields[name] = math.fsum(values) / len(values) if values else None
    return WorkerLoad(worker_id="*", worker_type=worker_type, **fields)


class _Views(Protocol):
    """Anything shaped like the router source's views (``RouterViews``)."""

    @property
    def recent(self) -> Sequence[WorkerLoad]: ...

    @property
    def per_worker(self) -> Sequence[WorkerLoad]: ...

    @property
    def cluster(self) -> WorkerLoad | None: ...


@attrs.frozen(kw_only=True)
class LoadView:
    """The router's view of one worker type (spec §4.2, snapshot B).

    Attributes:
        recent: The workers of the last scrape (the decision rules compare these).
        per_worker: Each worker's load averaged over the recent scrapes (agg mode trains
            its regressions on these).
        cluster: One average per field over every scrape and worker; its
            ``last_isl_tokens`` is the ISL the prefill target subtracts.
    """

    recent: tuple[WorkerLoad, ...] = attrs.field(converter=_workers, default=())
    per_worker: tuple[WorkerLoad, ...] = attrs.field(converter=_workers, default=())
    cluster: WorkerLoad | None = None

    @classmethod
    def of_workers(cls, workers: Sequence[WorkerLoad], worker_type: str) -> LoadView:
        """A view from one scrape: recent and per-worker are the same workers."""
        workers = tuple(workers)
        return cls(
            recent=workers,
            per_worker=workers,
            cluster=_mean_load(workers, worker_type) if workers else None,
        )

    @classmethod
    def of(cls, views: _Views | None) -> LoadView:
        """Copy a router source's views (any object with the same three attributes)."""
        if views is None:
            return cls()
        return cls(
            recent=views.recent, per_worker=views.per_worker, cluster=views.cluster
        )

    @property
    def cluster_isl_tokens(self) -> float:
        """The cluster-averaged ISL, 0 when unknown (as the reference)."""
        if self.cluster is None or self.cluster.last_isl_tokens is None:
            return 0.0
        return self.cluster.last_isl_tokens


@attrs.frozen(kw_only=True)
class LoadSnapshot:
    """What the load path knows of the workers at one tick: a view per worker type.

    Attributes:
        prefill: Workers labelled ``worker_type="prefill"``.
        decode: Workers labelled ``worker_type="decode"`` (agg workers too).
    """

    prefill: LoadView = attrs.field(factory=LoadView)
    decode: LoadView = attrs.field(factory=LoadView)

    @classmethod
    def of_workers(cls, workers: Iterable[WorkerLoad]) -> LoadSnapshot:
        """Split one scrape's workers by ``worker_type`` (other types are ignored)."""
        workers = tuple(workers)
        return cls(
            prefill=LoadView.of_workers(
                [w for w in workers if w.worker_type == "prefill"], "prefill"
            ),
            decode=LoadView.of_workers(
                [w for w in workers if w.worker_type == "decode"], "decode"
            ),
        )

    @classmethod
    def of_router(cls, source: Any) -> LoadSnapshot:
        """Read the views of a router source (anything with ``views(worker_type)``)."""
        return cls(
            prefill=LoadView.of(source.views("prefill")),
            decode=LoadView.of(source.views("decode")),
        )


def prefill_observations(workers: Iterable[WorkerLoad]) -> list[tuple[float, float]]:
    """Prefill regression points ``(active_prefill_tokens + last_isl, last_ttft_ms)``.

    Only workers with a positive ``last_ttft_ms`` and ``last_isl_tokens`` (and a known
    ``active_prefill_tokens``) give a point (spec §4.3).
    """
    points = []
    for w in workers:
        ttft, isl, active = w.last_ttft_ms, w.last_isl_tokens, w.active_prefill_tokens
        if ttft is None or isl is None or active is None:
            continue
        if ttft > 0 and isl > 0 and math.isfinite(active + isl + ttft):
            points.append((active + isl, ttft))
    return points


def decode_observations(workers: Iterable[WorkerLoad]) -> list[tuple[float, float]]:
    """Decode regression points ``(active_decode_blocks, last_itl_ms)``.

    Only workers with a positive ``last_itl_ms`` and ``active_decode_blocks`` give a point
    (spec §4.3).
    """
    points = []
    for w in workers:
        itl, blocks = w.last_itl_ms, w.active_decode_blocks
        if itl is None or blocks is None:
            continue
        if itl > 0 and blocks > 0 and math.isfinite(itl + blocks):
            points.append((blocks, itl))
    return points


# --------------------------------------------------------------------------- rules
@attrs.frozen(kw_only=True)
class RuleResult:
    """One component's (or one agg dimension's) load-rule outcome, before any clamp.

    Attributes:
        component: ``"prefill"`` or ``"decode"``.
        current: Replicas the deployment has (``N``).
        replicas: ``N + 1``, ``N - 1``, or ``None`` to hold.
        rule: Which rule decided (see :data:`Rule`).
        reason: The decision in words.
        details: The numbers behind it: regression slope/intercept, ``x_sla``,
            ``target``, ``boundary``, per-worker loads.
    """

    component: Component
    current: int
    replicas: int | None
    rule: Rule
    reason: str
    details: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def direction(self) -> Literal["up", "down", "hold"]:
        """``"up"``, ``"down"`` or ``"hold"``."""
        if self.replicas is None or self.replicas == self.current:
            return "hold"
        return "up" if self.replicas > self.current else "down"


def _hold(
    component: Component,
    current: int,
    rule: Rule,
    reason: str,
    details: Mapping[str, Any] | None = None,
) -> RuleResult:
    return RuleResult(
        component=component,
        current=current,
        replicas=None,
        rule=rule,
        reason=f"{component}: {reason}; holding {current}",
        details=dict(details or {}),
    )


def _band(
    component: Component,
    *,
    loads: Mapping[str, float | None],
    target: float,
    replicas: int,
    sensitivity_pct: float,
    unit: str,
    details: dict[str, Any],
) -> RuleResult:
    """Steps 4 to 7 of §4.4: no workers, scale up, scale down, hold."""
    details["target"] = target
    details["loads"] = dict(loads)
    if replicas <= 0 or not loads:
        return _hold(
            component,
            replicas,
            "no_workers",
            f"no workers to judge (N={replicas}, {len(loads)} in router metrics)",
            details,
        )
    unknown = sorted(k for k, v in loads.items() if v is None)
    if unknown:
        return _hold(
            component,
            replicas,
            "load_unknown",
            f"{unit} unknown for worker(s) {', '.join(unknown)}",
            details,
        )
    values = [float(v) for v in loads.values() if v is not None]
    shown = ", ".join(f"{v:g}" for v in values)
    if all(v > target for v in values):
        return RuleResult(
            component=component,
            current=replicas,
            replicas=replicas + 1,
            rule="scale_up",
            reason=(
                f"{component}: every worker's {unit} ({shown}) is above the target "
                f"{target:g}; scaling up {replicas} -> {replicas + 1}"
            ),
            details=details,
        )
    if replicas > 1:
        boundary = target * (replicas - 1) / replicas * (sensitivity_pct / 100.0)
        details["boundary"] = boundary
        if all(v < boundary for v in values):
            return RuleResult(
                component=component,
                current=replicas,
                replicas=replicas - 1,
                rule="scale_down",
                reason=(
                    f"{component}: every worker's {unit} ({shown}) is below the "
                    f"boundary {boundary:g} = target {target:g} x ({replicas}-1)/"
                    f"{replicas} x {sensitivity_pct:g}%; scaling down "
                    f"{replicas} -> {replicas - 1}"
                ),
                details=details,
            )
        band = f"between the boundary {boundary:g} and the target {target:g}"
    else:
        band = f"not all above the target {target:g} (no scale-down below 1)"
    return _hold(
        component,
        replicas,
        "within_band",
        f"{unit} ({shown}) {band}",
        details,
    )


def _fit_details(fit: LinearFit, x_sla: float, method: str) -> dict[str, Any]:
    return {
        "slope": fit.slope,
        "intercept": fit.intercept,
        "observations": fit.num_observations,
        "x_sla": x_sla,
        "solve_method": method,
    }


def prefill_rule(
    *,
    fit: LinearFit | None,
    workers: Sequence[WorkerLoad],
    replicas: int,
    isl_tokens: float,
    ttft_ms: float,
    sensitivity_pct: float,
    min_observations: int | None = None,
) -> RuleResult:
    """The prefill rule of §4.4 (snapshot B), on ``active_prefill_tokens``.

    Args:
        fit: The TTFT regression (``None`` while it lacks data).
        workers: The prefill workers' recent loads.
        replicas: Prefill workers the deployment has (``N``).
        isl_tokens: The cluster-averaged ISL (0 when unknown).
        ttft_ms: The TTFT target.
        sensitivity_pct: Scale-down sensitivity, 0 to 100.
        min_observations: For the cold-start message only.

    Returns:
        ``N + 1``, ``N - 1`` or a hold, with the rule and its numbers.
    """
    if fit is None:
        need = f" of {min_observations}" if min_observations else ""
        return _hold(
            "prefill",
            replicas,
            "insufficient_data",
            f"TTFT regression has too few observations{need} (cold start)",
        )
    solution = fit.solve(ttft_ms)
    details = _fit_details(fit, solution.load, solution.method)
    details["isl_tokens"] = isl_tokens
    target = solution.load - isl_tokens
    if target <= 0:
        details["target"] = target
        return _hold(
            "prefill",
            replicas,
            "sla_unreachable",
            f"TTFT {ttft_ms:g} ms is unreachable at ISL {isl_tokens:g}: the regression "
            f"allows {solution.load:g} tokens, target {target:g} <= 0",
            details,
        )
    return _band(
        "prefill",
        loads={w.worker_id: w.active_prefill_tokens for w in workers},
        target=target,
        replicas=replicas,
        sensitivity_pct=sensitivity_pct,
        unit="active prefill tokens",
        details=details,
    )


def decode_rule(
    *,
    fit: LinearFit | None,
    workers: Sequence[WorkerLoad],
    replicas: int,
    itl_ms: float,
    sensitivity_pct: float,
    min_observations: int | None = None,
) -> RuleResult:
    """The decode rule of §4.4 (snapshot B), on ``active_decode_blocks``.

    Args:
        fit: The ITL regression (``None`` while it lacks data).
        workers: The decode workers' recent loads.
        replicas: Decode workers the deployment has (``N``).
        itl_ms: The ITL target.
        sensitivity_pct: Scale-down sensitivity, 0 to 100.
        min_observations: For the cold-start message only.

    Returns:
        ``N + 1``, ``N - 1`` or a hold, with the rule and its numbers.
    """
    if fit is None:
        need = f" of {min_observations}" if min_observations else ""
        return _hold(
            "decode",
            replicas,
            "insufficient_data",
            f"ITL regression has too few observations{need} (cold start)",
        )
    solution = fit.solve(itl_ms)
    details = _fit_details(fit, solution.load, solution.method)
    if solution.load <= 0:
        details["target"] = solution.load
        return _hold(
            "decode",
            replicas,
            "sla_unreachable",
            f"ITL {itl_ms:g} ms is unreachable: the regression allows "
            f"{solution.load:g} KV blocks",
            details,
        )
    return _band(
        "decode",
        loads={w.worker_id: w.active_decode_blocks for w in workers},
        target=solution.load,
        replicas=replicas,
        sensitivity_pct=sensitivity_pct,
        unit="active decode blocks",
        details=details,
    )


# --------------------------------------------------------------------------- scaler
@attrs.frozen(kw_only=True)
class LoadRequest:
    """Everything the load scaler needs for one tick.

    Attributes:
        current: Replicas the deployment has (the reference reads the DGD).
        snapshot: The router's per-worker views.
        prefill_fit: The TTFT regression's fit, ``None`` while it lacks data.
        decode_fit: The ITL regression's fit, ``None`` while it lacks data.
        floor: The throughput planner's latest replicas, enforced as a minimum.
        in_progress: The target of a scaling that has not converged yet; components
            where it differs from ``current`` are held.
        min_observations: The regressions' threshold (for messages only).
    """

    current: ReplicaState
    snapshot: LoadSnapshot = attrs.field(factory=LoadSnapshot)
    prefill_fit: LinearFit | None = None
    decode_fit: LinearFit | None = None
    floor: ReplicaState | None = None
    in_progress: ReplicaState | None = None
    min_observations: int | None = None


def _positive(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(
            f"must be a positive number, got {value!r}",
            field=attribute.name,
            value=value,
        )


def _int_range(low: int, high: int | None = None) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: int) -> None:
        if value < low or (high is not None and value > high):
            span = f"between {low} and {high}" if high is not None else f">= {low}"
            raise ConfigError(
                f"must be {span}, got {value!r}", field=attribute.name, value=value
            )

    return check


def _mode(_: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in _MODES:
        raise ConfigError(
            f"must be one of {', '.join(_MODES)}, got {value!r}",
            field=attribute.name,
            value=value,
        )


@attrs.frozen(kw_only=True)
class LoadScaler:
    """Load-based replica decisions (spec §4.4 to §4.7, snapshot B), pure.

    The regressions are learned by the caller
    (:class:`~dynamo_planner.load_planner.LoadPlanner`); the scaler gets their fits in the
    :class:`LoadRequest`.

    Attributes:
        mode: ``"disagg"``, ``"prefill"``, ``"decode"`` or ``"agg"``.
        ttft_ms: TTFT target.
        itl_ms: ITL target.
        scaling_down_sensitivity: 0 (never scale down) to 100 (scale down as soon as the
            load would fit on one worker fewer).
        min_endpoint: Fewest replicas per planned component, on every tick.
        max_gpu_budget: Most GPUs in total (``-1``: no budget).
        prefill_gpus_per_engine: GPUs per prefill replica.
        decode_gpus_per_engine: GPUs per decode (or agg) replica.
    """

    mode: str = attrs.field(default="disagg", validator=_mode)
    ttft_ms: float = attrs.field(default=500.0, validator=_positive)
    itl_ms: float = attrs.field(default=50.0, validator=_positive)
    scaling_down_sensitivity: int = attrs.field(
        default=80, validator=_int_range(0, 100)
    )
    min_endpoint: int = attrs.field(default=1, validator=_int_range(0))
    max_gpu_budget: int = -1
    prefill_gpus_per_engine: int = attrs.field(default=1, validator=_int_range(1))
    decode_gpus_per_engine: int = attrs.field(default=1, validator=_int_range(1))

    @classmethod
    def from_config(cls, config: Any) -> LoadScaler:
        """Build from a :class:`~dynamo_planner.config.PlannerConfig`."""
        return cls(
            mode=config.mode,
            ttft_ms=float(config.ttft_ms),
            itl_ms=float(config.itl_ms),
            scaling_down_sensitivity=int(config.loadbased_scaling_down_sensitivity),
            min_endpoint=int(config.min_endpoint),
            max_gpu_budget=int(config.max_gpu_budget),
            prefill_gpus_per_engine=int(config.prefill_gpus_per_engine),
            decode_gpus_per_engine=int(config.decode_gpus_per_engine),
        )

    @property
    def components(self) -> tuple[Component, ...]:
        """The components this mode plans (agg plans ``"decode"``)."""
        return _COMPONENTS[self.mode]

    # ------------------------------------------------------------------ rules
    def rules(self, request: LoadRequest) -> dict[Component, RuleResult]:
        """The load rule of each planned component, before floor, minimum and budget."""
        results: dict[Component, RuleResult] = {}
        for component in self.components:
            view = getattr(request.snapshot, component)
            current = getattr(request.current, component)
            held = self._guards(component, view, current, request)
            if held is not None:
                results[component] = held
            elif self.mode == "agg":
                results[component] = self._agg_rule(view, current, request)
            elif component == "prefill":
                results[component] = self._prefill(view, current, request)
            else:
                results[component] = self._decode(view, current, request)
        return results

    def _prefill(
        self, view: LoadView, current: int, request: LoadRequest
    ) -> RuleResult:
        return prefill_rule(
            fit=request.prefill_fit,
            workers=view.recent,
            replicas=current,
            isl_tokens=view.cluster_isl_tokens,
            ttft_ms=self.ttft_ms,
            sensitivity_pct=self.scaling_down_sensitivity,
            min_observations=request.min_observations,
        )

    def _decode(self, view: LoadView, current: int, request: LoadRequest) -> RuleResult:
        return decode_rule(
            fit=request.decode_fit,
            workers=view.recent,
            replicas=current,
            itl_ms=self.itl_ms,
            sensitivity_pct=self.scaling_down_sensitivity,
            min_observations=request.min_observations,
        )

    def _guards(
        self,
        component: Component,
        view: LoadView,
        current: int,
        request: LoadRequest,
    ) -> RuleResult | None:
        """Scaling in progress (#9774) and the reconciliation guard (§4.5 step 4)."""
        if request.in_progress is not None:
            pending = getattr(request.in_progress, component)
            if pending != current:
                return _hold(
                    component,
                    current,
                    "scaling_in_progress",
                    f"scaling to {pending} has not converged (deployment reports "
                    f"{current})",
                    {"in_progress": pending},
                )
        seen = len(view.recent)
        if seen != current:
            other = "decode" if component == "prefill" else "prefill"
            others = len(getattr(request.snapshot, other).recent)
            hint = ""
            if component == "prefill" and seen == 0 and others > 0:
                hint = (
                    "; if every worker is labelled worker_type='decode' (KV-router "
                    "mode, upstream #7581) prefill cannot be reconciled"
                )
            return _hold(
                component,
                current,
                "worker_count_mismatch",
                f"router metrics list {seen} worker(s), the deployment has "
                f"{current} (workers starting or stopping, or metric lag){hint}",
                {"router_workers": seen},
            )
        return None

    def _agg_rule(
        self, view: LoadView, current: int, request: LoadRequest
    ) -> RuleResult:
        """Agg (§4.6): up if either dimension says up, down only if both say down."""
        by_ttft = self._prefill(view, current, request)
        by_itl = self._decode(view, current, request)
        details: dict[str, Any] = {
            **{f"ttft_{k}": v for k, v in by_ttft.details.items()},
            **{f"itl_{k}": v for k, v in by_itl.details.items()},
            "ttft_rule": by_ttft.rule,
            "itl_rule": by_itl.rule,
        }
        words = f"[TTFT dimension: {by_ttft.reason}] [ITL dimension: {by_itl.reason}]"
        up = [r for r in (by_ttft, by_itl) if r.direction == "up"]
        if up:
            which = " and ".join("TTFT" if r is by_ttft else "ITL" for r in up)
            return RuleResult(
                component="decode",
                current=current,
                replicas=current + 1,
                rule="scale_up",
                reason=f"agg: {which} says up; scaling up {current} -> "
                f"{current + 1} {words}",
                details=details,
            )
        if by_ttft.direction == "down" and by_itl.direction == "down":
            return RuleResult(
                component="decode",
                current=current,
                replicas=current - 1,
                rule="scale_down",
                reason=f"agg: both dimensions say down; scaling down {current} -> "
                f"{current - 1} {words}",
                details=details,
            )
        # Holding: a dimension that could not judge names the rule, else the band.
        held: list[Rule] = [
            r.rule
            for r in (by_ttft, by_itl)
            if r.rule not in ("scale_up", "scale_down", "within_band")
        ]
        return RuleResult(
            component="decode",
            current=current,
            replicas=None,
            rule=held[0] if held else "within_band",
            reason=f"agg: no dimension says up and not both say down; holding "
            f"{current} {words}",
            details=details,
        )

    # ------------------------------------------------------------------ decision
    def decide(self, request: LoadRequest) -> ReplicaPlan:
        """One load tick's plan: the rules, then floor, ``min_endpoint`` and budget.

        Args:
            request: The current replicas, worker loads, regression fits and floor.

        Returns:
            The plan. A component is ``None`` when its target equals the current count.
            ``details`` holds per component: ``<c>_rule``, ``<c>_slope``,
            ``<c>_intercept``, ``<c>_x_sla``, ``<c>_target``, ``<c>_boundary``,
            ``<c>_loads`` (where computed), and the floor used. ``clamps`` names
            ``"floor"``, ``"min_endpoint"`` and ``"budget"`` when they changed a count.
        """
        results = self.rules(request)
        current = request.current
        reasons: list[str] = []
        clamps: list[str] = []
        details: dict[str, Any] = {
            "mode": self.mode,
            "sensitivity_pct": self.scaling_down_sensitivity,
            "ttft_target_ms": self.ttft_ms,
            "itl_target_ms": self.itl_ms,
        }
        targets: dict[Component, int] = {}
        for component, result in results.items():
            reasons.append(result.reason)
            details[f"{component}_rule"] = result.rule
            details[f"{component}_direction"] = result.direction
            for key, value in result.details.items():
                details[f"{component}_{key}"] = value
            have = getattr(current, component)
            target = have if result.replicas is None else result.replicas
            details[f"{component}_load_decision"] = target
            if request.floor is not None:
                floor = getattr(request.floor, component)
                details[f"{component}_floor"] = floor
                if target < floor:
                    reasons.append(
                        f"{component}: throughput floor {floor} raises {target} -> "
                        f"{floor}"
                    )
                    target = floor
                    clamps.append("floor")
            if target < self.min_endpoint:
                reasons.append(
                    f"{component}: min_endpoint {self.min_endpoint} raises {target} -> "
                    f"{self.min_endpoint}"
                )
                target = self.min_endpoint
                clamps.append("min_endpoint")
            targets[component] = target
        plan = ReplicaPlan(
            prefill=targets.get("prefill"),
            decode=targets.get("decode"),
            reasons=reasons,
            clamps=tuple(dict.fromkeys(clamps)),
            details=details,
        )
        plan = apply_budget(
            plan,
            current=current,
            mode=self.mode,
            prefill_gpus_per_engine=self.prefill_gpus_per_engine,
            decode_gpus_per_engine=self.decode_gpus_per_engine,
            budget_gpus=self.max_gpu_budget,
            min_endpoint=self.min_endpoint,
        )
        return attrs.evolve(
            plan,
            prefill=None if plan.prefill == current.prefill else plan.prefill,
            decode=None if plan.decode == current.decode else plan.decode,
        )
