"""The SLA scaler against the reference scaler, perfect forecasts and static deployments.

Run: ``python benchmarks/sla_table.py`` (about 2 minutes on 2 cores; ``--quick`` runs one
setting per trace). For each trace (Azure 2023 conversation, bundled; Mooncake
conversation, ``data/traces/mooncake``) at load x10 (superposed time-shifted copies), on
the bundled H200 Llama-3.1-8B profile, with targets TTFT 500 ms / ITL 20 ms, counting
requests that arrive after the first 10 minutes, it replays every combination of interval
(60, 180 s) and cold start (60, 180 s) with:

* ``reference``: the reference scaler and interpolator, constant predictor;
* ``reference, perfect forecast``: the same with the true next-interval load;
* ``sla``: the SLA scaler on the fitted interpolator, constant predictor;
* ``sla, perfect forecast``: the same with the true next-interval load;

and once per trace the best static deployment and the capacity floor. It prints one
table per trace: attainment (share of counted requests meeting both targets), attainment
among the requests that *can* meet TTFT (their prefill alone is within the target on the
simulated engine), GPU-hours, scaling actions, and GPU-hours over the best static's. Then
the issue's bars, each marked met or not.

Requests whose prefill alone exceeds the TTFT target cannot be served in time by any
deployment; where a trace has some (Mooncake: 15%), no deployment reaches 0.99, so the
best static is searched at ``0.99 x`` the feasible share instead (stated in the output).

``--json PATH`` writes every figure (the docs' plots read it); ``--load 1`` checks the
load-x1 bar; ``--load-shift-s`` sets the shift between superposed copies (default: the
span divided by the copies, which flattens the trace's hourly shape).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from dynamo_planner.config import PlannerConfig
from dynamo_planner.data import AZURE_CONV_TRACE, H200_PROFILE_DIR
from dynamo_planner.profiles import load_profile
from dynamo_planner.sim import (
    EngineModel,
    ReplayOptions,
    SimConfig,
    best_static,
    capacity_floor,
    load_scale,
    replay,
)
from dynamo_planner.sim.metrics import meets_targets
from dynamo_planner.traces import RequestTrace, load_requests

REPO = Path(__file__).resolve().parent.parent
TRACES = {
    "azure_conv": Path(AZURE_CONV_TRACE),
    "mooncake_conv": REPO / "data" / "traces" / "mooncake" / "conversation_trace.jsonl",
}
GPU_BARS = {"azure_conv": 0.85, "mooncake_conv": 0.95}
TTFT_MS = 500.0
ITL_MS = 20.0
WARMUP_S = 600.0
ATTAINMENT = 0.99


@attrs.frozen
class Row:
    trace: str
    interval_s: float
    cold_start_s: float
    run: str
    attainment: float
    attainment_feasible: float
    gpu_hours: float
    actions: int
    ttft_p99_ms: float
    itl_p99_ms: float


def feasible_mask(trace: RequestTrace, model: EngineModel) -> np.ndarray:
    """Requests whose prefill alone is within the TTFT target on the simulated engine."""
    return np.asarray(model.prefill_ms_array(trace.isl_tokens) <= TTFT_MS)


def run_row(
    name: str,
    summary: Any,
    result: Any,
    feasible: np.ndarray,
    *,
    trace: str,
    interval_s: float,
    cold_start_s: float,
) -> Row:
    counted = result.arrival_s >= WARMUP_S
    ok_ttft, ok_itl = meets_targets(result, ttft_ms=TTFT_MS, itl_ms=ITL_MS)
    both = ok_ttft & ok_itl
    keep = counted & feasible
    return Row(
        trace=trace,
        interval_s=interval_s,
        cold_start_s=cold_start_s,
        run=name,
        attainment=summary.attainment,
        attainment_feasible=float(both[keep].mean()) if keep.any() else math.nan,
        gpu_hours=summary.gpu_hours,
        actions=summary.scaling_actions,
        ttft_p99_ms=summary.ttft_ms[2],
        itl_p99_ms=summary.itl_ms[2],
    )


def config(scaler: str, interval_s: float, cold_start_s: float) -> PlannerConfig:
    return PlannerConfig(
        environment="virtual",
        scaler=scaler,
        interpolator="fitted" if scaler == "sla" else "reference",
        load_predictor="constant",
        ttft_ms=TTFT_MS,
        itl_ms=ITL_MS,
        adjustment_interval_s=interval_s,
        cold_start_s=cold_start_s,
        max_gpu_budget=-1,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--traces", default=",".join(TRACES))
    parser.add_argument("--load", type=int, default=10)
    parser.add_argument("--load-shift-s", type=float, default=None)
    parser.add_argument("--intervals", default="60,180")
    parser.add_argument("--cold-starts", default="60,180")
    parser.add_argument(
        "--quick", action="store_true", help="60 s interval and cold start only"
    )
    parser.add_argument(
        "--no-perfect", action="store_true", help="skip perfect forecasts"
    )
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    intervals = [float(x) for x in args.intervals.split(",")]
    colds = [float(x) for x in args.cold_starts.split(",")]
    if args.quick:
        intervals, colds = [60.0], [60.0]
    profile = load_profile(H200_PROFILE_DIR)
    model = EngineModel.from_profile(profile)
    rows: list[Row] = []
    statics: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    for name in args.traces.split(","):
        trace = load_scale(
            load_requests(TRACES[name]), args.load, shift_s=args.load_shift_s
        )
        feasible = feasible_mask(trace, model)
        counted = np.asarray(trace.arrival_s) >= WARMUP_S
        share = float(feasible[counted].mean())
        target = min(ATTAINMENT, ATTAINMENT * share)
        sim = SimConfig()
        static = best_static(
            trace,
            model,
            sim,
            ttft_ms=TTFT_MS,
            itl_ms=ITL_MS,
            attainment_target=target,
            warmup_s=WARMUP_S,
        )
        floor = capacity_floor(
            trace, model, ttft_ms=TTFT_MS, itl_ms=ITL_MS, warmup_s=WARMUP_S
        )
        s = static.summary
        statics[name] = {
            "feasible_share": share,
            "attainment_target": target,
            "best_static": f"{static.prefill}P+{static.decode}D",
            "best_static_feasible": static.feasible,
            "best_static_attainment": s.attainment,
            "best_static_gpu_hours": s.gpu_hours,
            "capacity_floor_gpu_hours": floor.gpu_hours,
        }
        print(
            f"{name} x{args.load}: {len(trace):,} requests; {share:.1%} can meet TTFT "
            f"{TTFT_MS:g} ms alone; target {target:.4f}; best static "
            f"{static.prefill}P+{static.decode}D {s.attainment:.4f} at "
            f"{s.gpu_hours:.2f} GPU-h; floor {floor.gpu_hours:.2f} GPU-h",
            file=sys.stderr,
        )
        for interval_s in intervals:
            for cold_s in colds:
                options = ReplayOptions(
                    sim=attrs.evolve(sim, cold_start_s=cold_s),
                    warmup_s=WARMUP_S,
                    baselines=() if args.no_perfect else ("perfect_forecast",),
                )
                for scaler in ("reference", "sla"):
                    report = replay(
                        trace,
                        profile,
                        config(scaler, interval_s, cold_s),
                        options=options,
                    )
                    runs = [(scaler, report.planner)]
                    if report.perfect_forecast is not None:
                        runs.append(
                            (f"{scaler}, perfect forecast", report.perfect_forecast)
                        )
                    for label, run in runs:
                        assert run is not None
                        row = run_row(
                            label,
                            run.summary,
                            run.result,
                            feasible,
                            trace=name,
                            interval_s=interval_s,
                            cold_start_s=cold_s,
                        )
                        rows.append(row)
                        print(
                            f"  {interval_s:g}/{cold_s:g} {label:<26} {row.attainment:.4f} "
                            f"(feasible {row.attainment_feasible:.4f}) {row.gpu_hours:6.2f} GPU-h "
                            f"{row.actions:3d} actions",
                            file=sys.stderr,
                        )
    print(render(rows, statics, args.load))
    print(f"\nwall {time.perf_counter() - started:.0f} s", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "load": args.load,
                    "statics": statics,
                    "rows": [attrs.asdict(r) for r in rows],
                },
                indent=1,
            )
        )
    return 0


def render(rows: list[Row], statics: dict[str, dict[str, Any]], load: int) -> str:
    out = []
    for name, info in statics.items():
        out.append(
            f"\n### {name} x{load}: best static {info['best_static']} "
            f"({info['best_static_attainment']:.1%} at {info['best_static_gpu_hours']:.2f} "
            f"GPU-h, searched at attainment {info['attainment_target']:.4f}); capacity "
            f"floor {info['capacity_floor_gpu_hours']:.2f} GPU-h; "
            f"{info['feasible_share']:.1%} of requests can meet TTFT alone\n"
        )
        out.append(
            "| interval / cold start | run | attainment | of feasible | GPU-h | "
            "x best static | actions | TTFT p99 ms | ITL p99 ms |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|")
        base = info["best_static_gpu_hours"]
        for r in rows:
            if r.trace != name:
                continue
            out.append(
                f"| {r.interval_s:g} s / {r.cold_start_s:g} s | {r.run} | "
                f"{r.attainment:.2%} | {r.attainment_feasible:.2%} | {r.gpu_hours:.2f} | "
                f"{r.gpu_hours / base:.2f} | {r.actions} | {r.ttft_p99_ms:,.0f} | "
                f"{r.itl_p99_ms:.1f} |"
            )
        out.append("")
        out.extend(bars(name, info, [r for r in rows if r.trace == name], load))
    return "\n".join(out)


def bars(name: str, info: dict[str, Any], rows: list[Row], load: int) -> list[str]:
    sla = [r for r in rows if r.run == "sla"]
    ref = {(r.interval_s, r.cold_start_s): r for r in rows if r.run == "reference"}
    base = info["best_static_gpu_hours"]
    target = info["attainment_target"]
    lines = []
    if load == 1:
        worst = max(r.gpu_hours / base for r in sla)
        lines.append(
            f"- load x1: sla GPU-h / best static at most {worst:.2f} "
            f"({'met' if worst <= 1.0 + 1e-9 else 'NOT met'}: <= 1)"
        )
        return lines
    low = min(r.attainment for r in sla)
    lines.append(
        f"- attainment >= {target:.4f} in every setting: lowest {low:.4f} "
        f"({'met' if low >= target else 'NOT met'})"
    )
    if target < ATTAINMENT:
        lines.append(
            f"  (0.99 overall is unreachable: only {info['feasible_share']:.1%} of "
            "requests can meet TTFT alone; the bar is 0.99 of those)"
        )
    worst = max(r.gpu_hours / base for r in sla)
    bar = GPU_BARS.get(name, 1.0)
    lines.append(
        f"- GPU-h <= {bar:g} x best static in every setting: highest {worst:.2f} "
        f"({'met' if worst <= bar else 'NOT met'})"
    )
    beaten = all(
        r.attainment > ref[(r.interval_s, r.cold_start_s)].attainment for r in sla
    )
    lines.append(
        f"- beats the reference's attainment in every setting: {'met' if beaten else 'NOT met'}"
    )
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
