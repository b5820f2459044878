"""What a replay measured: the runs, the baselines, and their table and files.

:class:`ReplayReport` is what :func:`~dynamo_planner.sim.replay.replay` returns: the
planner's run (:class:`PlannerRun`), the baselines beside it, and the options used. It
prints the summary table of ``dynamo-planner replay`` (:meth:`ReplayReport.format_text`),
gives a JSON-ready dict (:meth:`ReplayReport.to_dict`, the ``report.json`` file), and
writes every decision (:meth:`ReplayReport.write_plans_jsonl`) and the per-interval
figures (:meth:`ReplayReport.write_intervals_csv`).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from dynamo_planner.sim.metrics import IntervalRow, RunSummary

if TYPE_CHECKING:
    from dynamo_planner.sim.baselines import CapacityFloor, StaticSearch
    from dynamo_planner.sim.oracle import IntervalOracle
    from dynamo_planner.sim.replay import ReplayOptions
    from dynamo_planner.sim.results import SimResult
    from dynamo_planner.sim.schedule import RefinedSchedule
    from dynamo_planner.values import ReplicaPlan

__all__ = ["PlannerRun", "ReplayReport", "share_text"]


@attrs.frozen(kw_only=True, eq=False)
class PlannerRun:
    """A run with a planner in the loop.

    Attributes:
        summary: Its figures.
        result: Every request and worker.
        intervals: Per-interval figures.
        plans: ``(time, plan)`` of every decision.
    """

    summary: RunSummary
    result: SimResult
    intervals: tuple[IntervalRow, ...]
    plans: tuple[tuple[float, ReplicaPlan], ...]


@attrs.frozen(kw_only=True, eq=False)
class ReplayReport:
    """Everything a replay measured.

    Attributes:
        trace: The trace's description.
        requests: Requests in the trace.
        duration_s: Span of the trace's arrivals.
        profile: The profile's source.
        interval_s: The planner's adjustment interval.
        ttft_ms: TTFT target.
        itl_ms: ITL target.
        options: The options used.
        planner: The planner run (``None`` if no planner was given).
        perfect_forecast: The perfect-forecast run, if computed.
        best_static: The best static deployment, if computed.
        capacity_floor: The capacity floor, if computed.
        interval_oracle: The hindsight per-interval oracle, if computed.
        hindsight_schedule: The oracle's schedule replayed and refined
            (:func:`~dynamo_planner.sim.schedule.refine_schedule`), if computed.
        wall_s: Wall-clock seconds the replay took.
        planner_wall_s: Wall-clock seconds of the planner run alone.
        scaling: The planner's scaling modes (see :func:`~dynamo_planner.sim.replay.scaling_modes`), ``""`` for a
            factory.
        notes: Remarks printed under the table (e.g. a baseline not applicable).
    """

    trace: str
    requests: int
    duration_s: float
    profile: str
    interval_s: float
    ttft_ms: float
    itl_ms: float
    options: ReplayOptions
    planner: PlannerRun | None
    perfect_forecast: PlannerRun | None
    best_static: StaticSearch | None
    capacity_floor: CapacityFloor | None
    wall_s: float
    interval_oracle: IntervalOracle | None = None
    hindsight_schedule: RefinedSchedule | None = None
    planner_wall_s: float = math.nan
    scaling: str = ""
    notes: tuple[str, ...] = ()

    @property
    def attainment(self) -> float:
        """The planner run's attainment (share meeting both targets)."""
        return self.planner.summary.attainment if self.planner else math.nan

    @property
    def gpu_hours(self) -> float:
        """The planner run's GPU-hours."""
        return self.planner.summary.gpu_hours if self.planner else math.nan

    def summaries(self) -> list[RunSummary]:
        """The runs' summaries: planner, perfect forecast, best static (those present)."""
        out = []
        if self.planner:
            out.append(self.planner.summary)
        if self.perfect_forecast:
            out.append(self.perfect_forecast.summary)
        if self.best_static:
            out.append(self.best_static.summary)
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: ``attainment``, ``gpu_hours``, ``baselines`` and details."""
        baselines: dict[str, Any] = {}
        if self.best_static:
            s = self.best_static.summary
            baselines["best_static"] = {
                "attainment": s.attainment,
                "gpu_hours": s.gpu_hours,
                "prefill": s.prefill,
                "decode": s.decode,
                "feasible": self.best_static.feasible,
                "target": self.best_static.target,
            }
        if self.perfect_forecast:
            s = self.perfect_forecast.summary
            baselines["perfect_forecast"] = {
                "attainment": s.attainment,
                "gpu_hours": s.gpu_hours,
            }
        if self.capacity_floor:
            f = self.capacity_floor
            baselines["capacity_floor"] = {
                "attainment": None,
                "gpu_hours": f.gpu_hours,
                "prefill_gpu_hours": f.prefill_gpu_hours,
                "decode_gpu_hours": f.decode_gpu_hours,
                "whole_worker_gpu_hours": _finite_or_none(f.whole_worker_gpu_hours),
                "feasible": f.feasible,
            }
        if self.interval_oracle:
            o = self.interval_oracle
            baselines["interval_oracle"] = {
                "attainment": o.attainment,
                "gpu_hours": o.gpu_hours,
                "feasible": o.feasible,
                "candidates": [list(c) for c in o.candidates],
                "cold_start_s": o.cold_start_s,
                "cold_start_gpu_hours": o.cold_start_gpu_hours,
            }
        if self.hindsight_schedule:
            baselines["hindsight_schedule"] = self.hindsight_schedule.to_dict()
        out: dict[str, Any] = _clean(
            {
                "attainment": _finite_or_none(self.attainment),
                "gpu_hours": _finite_or_none(self.gpu_hours),
                "baselines": baselines,
                "trace": self.trace,
                "requests": self.requests,
                "duration_s": self.duration_s,
                "profile": self.profile,
                "interval_s": self.interval_s,
                "ttft_ms": self.ttft_ms,
                "itl_ms": self.itl_ms,
                "attainment_target": self.options.attainment_target,
                "warmup_s": self.options.warmup_s,
                "cold_start_s": self.options.sim.cold_start_s,
                "frontend_metrics": self.options.sim.frontend_metrics,
                "frontend_scrape_s": self.options.sim.frontend_scrape_s,
                "scaling": self.scaling,
                "notes": list(self.notes),
                "runs": [s.to_dict() for s in self.summaries()],
                "wall_s": self.wall_s,
            }
        )
        return out

    def format_text(self) -> str:
        """The summary table printed by ``dynamo-planner replay``."""
        head = (
            f"Replayed {self.trace}: {self.requests:,} requests over "
            f"{self.duration_s / 60:.1f} min, profile {self.profile}\n"
            f"targets TTFT <= {self.ttft_ms:g} ms, ITL <= {self.itl_ms:g} ms; "
            f"interval {self.interval_s:g} s; cold start "
            f"{self.options.sim.cold_start_s:g} s"
        )
        if self.options.warmup_s > 0:
            head += f"; counting requests after {self.options.warmup_s:g} s"
        if self.options.prefill_beyond == "clamp":
            head += "; prefill time clamped beyond the profile"
        if self.options.decode_beyond == "clamp":
            head += "; decode step time clamped beyond the profile"
        if self.options.sim.frontend_metrics == "histograms":
            head += "; the planner reads bucket counts only, as from a Dynamo frontend"
            scrape_s = self.options.sim.frontend_scrape_s
            if scrape_s is not None:
                from dynamo_planner.sources.dispersion import MAX_SCRAPE_S

                head += (
                    f", and the arrivals' dispersion from its request counter scraped "
                    f"every {scrape_s:g} s"
                    if scrape_s <= MAX_SCRAPE_S
                    else f"; its request counter, scraped every {scrape_s:g} s, is too "
                    "coarse to give the arrivals' dispersion"
                )
        if self.scaling:
            head += f"\nplanner: {self.scaling}"
        lines = [head, ""]
        header = (
            f"{'run':<28} {'requests':>9} {'TTFT p50/p90/p99 ms':>22} "
            f"{'ITL p50/p90/p99 ms':>20} {'TTFT ok':>8} {'ITL ok':>7} "
            f"{'both':>7} {'GPU-h':>7}"
        )
        lines += [header, "-" * len(header)]
        for s in self.summaries():
            lines.append(
                f"{s.label:<28} {s.requests:>9,} {_triple(s.ttft_ms):>22} "
                f"{_triple(s.itl_ms):>20} {share_text(s.attainment_ttft):>8} "
                f"{share_text(s.attainment_itl):>7} {share_text(s.attainment):>7} "
                f"{s.gpu_hours:>7.2f}"
            )
        if self.capacity_floor:
            f = self.capacity_floor
            note = "" if f.feasible else " (targets unreachable for some requests)"
            lines.append(
                f"{'capacity floor' + note:<28} {'':>9} {'':>22} {'':>20} {'':>8} "
                f"{'':>7} {'':>7} {f.gpu_hours:>7.2f}"
            )
            if math.isfinite(f.whole_worker_gpu_hours):
                lines.append(
                    f"{'whole-worker floor':<28} {'':>9} {'':>22} {'':>20} {'':>8} "
                    f"{'':>7} {'':>7} {f.whole_worker_gpu_hours:>7.2f}"
                )
        if self.interval_oracle:
            o = self.interval_oracle
            lines.append(
                f"{'interval oracle (hindsight)':<28} {'':>9} {'':>22} {'':>20} "
                f"{'':>8} {'':>7} {share_text(o.attainment):>7} {o.gpu_hours:>7.2f}"
            )
        if self.hindsight_schedule:
            b = self.hindsight_schedule.best
            lines.append(
                f"{'hindsight schedule':<28} {'':>9} {'':>22} {'':>20} "
                f"{'':>8} {'':>7} {share_text(b.attainment):>7} {b.gpu_hours:>7.2f}"
            )
        lines.extend(f"note: {note}" for note in self.notes)
        if self.best_static and not self.best_static.feasible:
            lines.append(
                "note: no static deployment meets the attainment target "
                f"{self.options.attainment_target:.1%} (some requests miss a target even "
                f"alone); best static is the smallest reaching "
                f"{self.best_static.target:.1%}"
            )
        return "\n".join(lines)

    def write_plans_jsonl(self, path: str | Path) -> Path:
        """Write every decision of the planner run: one JSON object per line.

        Each line is the decision's time (``time_s``, since the trace's start) and its
        plan (:meth:`ReplicaPlan.to_dict <dynamo_planner.values.ReplicaPlan.to_dict>`:
        replicas, clamps, reasons and details). Non-finite numbers are ``null``.
        """
        out = Path(path)
        plans = self.planner.plans if self.planner else ()
        with out.open("w", encoding="utf-8") as stream:
            for time_s, plan in plans:
                line = _clean({"time_s": time_s, **plan.to_dict()})
                stream.write(json.dumps(line, allow_nan=False, default=str))
                stream.write("\n")
        return out

    def write_intervals_csv(self, path: str | Path) -> Path:
        """Write the planner run's per-interval figures (one row per interval)."""
        out = Path(path)
        rows = self.planner.intervals if self.planner else ()
        with out.open("w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream)
            writer.writerow(IntervalRow.FIELDS)
            for row in rows:
                writer.writerow(_csv_cell(v) for v in row.as_row())
        return out


def _csv_cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.6g}"
    return value


def _clean(value: Any) -> Any:
    """JSON-ready values, recursively: numpy as Python numbers and lists, NaN as ``None``."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _triple(values: tuple[float, float, float]) -> str:
    return " / ".join(_num(v) for v in values)


def _num(value: float) -> str:
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"


def share_text(value: float) -> str:
    """A share as a percentage with one decimal (``"99.5%"``), ``"-"`` for NaN."""
    return "-" if math.isnan(value) else f"{value * 100:.1f}%"
