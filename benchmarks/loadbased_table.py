"""Throughput-only, load-only and both scaling modes replayed on real traces.

Run: ``python benchmarks/loadbased_table.py`` (about two minutes on two cores). For each
workload and cold start (0, 60, 180 s) it replays the trace on the simulator with:

* **throughput**: the throughput planner alone (``PlannerConfig`` defaults: reference
  scaler and interpolator, 180 s interval; the predictor is ``--predictor``);
* **load**: load-based scaling alone (defaults: 5 s interval, window 50, 5 observations,
  sensitivity 80);
* **both**: the two together (the throughput plan is a floor the load path enforces);

and beside them the simulator's baselines on the same trace: the throughput planner with a
perfect forecast, the best static deployment (the cheapest meeting 99 % attainment, or the
best reachable) and the capacity floor (GPU-hours of a fluid lower bound). Every run starts
from the best static deployment (as if the planner took over a right-sized deployment:
starting from one worker each under full load leaves a backlog that dominates every
dynamic policy's result), on the bundled H200 / Llama-3.1-8B profile, with no GPU budget.

It prints one markdown table per workload (attainment: share of requests meeting both the
TTFT and the ITL target; GPU-hours; scaling actions: changes of the requested replicas),
and writes one figure per workload with the workers held over time
(``--out``, default ``docs/_static``): rows are cold starts, columns prefill and decode.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from dynamo_planner.config import PlannerConfig
from dynamo_planner.data import AZURE_CONV_TRACE, H200_PROFILE_DIR
from dynamo_planner.load_planner import planner_from_config
from dynamo_planner.profiles import load_profile
from dynamo_planner.sim.engine import SimConfig
from dynamo_planner.sim.engine_model import EngineModel
from dynamo_planner.sim.metrics import RunSummary, workers_over_time
from dynamo_planner.sim.replay import PlannerRun, ReplayOptions, arun_planner, replay
from dynamo_planner.sim.workload import load_scale
from dynamo_planner.traces import RequestTrace, load_requests

REPO = Path(__file__).resolve().parent.parent
MOONCAKE_CONV = REPO / "data" / "traces" / "mooncake" / "conversation_trace.jsonl"
COLD_STARTS_S = (0.0, 60.0, 180.0)
POLICIES = ("throughput", "load", "both")


@attrs.frozen
class Workload:
    """A trace and the targets it is judged by."""

    name: str
    path: Path
    copies: int
    ttft_ms: float
    itl_ms: float
    why: str


WORKLOADS = (
    Workload(
        "azure-conv",
        AZURE_CONV_TRACE,
        1,
        500.0,
        50.0,
        "Azure LLM inference 2023, conversation, as recorded",
    ),
    Workload(
        "azure-conv-x16",
        AZURE_CONV_TRACE,
        16,
        500.0,
        50.0,
        "the same, 16 time-shifted copies superposed (bursts kept), so that scaling "
        "matters",
    ),
    Workload(
        "mooncake-conv",
        MOONCAKE_CONV,
        1,
        3500.0,
        50.0,
        "Mooncake conversation, as recorded; TTFT 3.5 s because the longest prompt "
        "(126k tokens) alone takes 3.1 s to prefill on this profile",
    ),
)


@attrs.frozen
class Row:
    """One run's figures."""

    workload: str
    cold_start_s: float
    policy: str
    summary: RunSummary | None
    gpu_hours: float
    wall_s: float


def _config(workload: Workload, policy: str, predictor: str) -> PlannerConfig:
    load = policy in ("load", "both")
    return PlannerConfig(
        ttft_ms=workload.ttft_ms,
        itl_ms=workload.itl_ms,
        load_predictor=predictor,
        max_gpu_budget=-1,
        enable_throughput_scaling=policy in ("throughput", "both"),
        enable_loadbased_scaling=load,
        environment="virtual",
        loadbased_router_metrics_url="http://router.invalid/metrics" if load else None,
    )


async def _run(
    trace: RequestTrace,
    model: EngineModel,
    config: PlannerConfig,
    profile: Any,
    sim: SimConfig,
    name: str,
) -> PlannerRun:
    planner = planner_from_config(config, profile=profile)
    return await arun_planner(
        trace,
        model,
        planner,  # type: ignore[arg-type]  # LoadPlanner/CombinedPlanner: same surface
        sim_config=sim,
        ttft_ms=config.ttft_ms,
        itl_ms=config.itl_ms,
        name=name,
    )


def run_workload(
    workload: Workload, profile: Any, model: EngineModel, predictor: str
) -> tuple[list[Row], dict[float, dict[str, Any]]]:
    """Every policy and baseline at every cold start; rows and the runs to plot."""
    trace = load_requests(workload.path)
    trace = load_scale(trace, workload.copies)
    # The static baselines do not depend on the cold start: compute them once.
    t0 = time.perf_counter()
    statics = replay(
        trace,
        profile,
        None,
        options=ReplayOptions(
            interval_s=180.0,
            ttft_ms=workload.ttft_ms,
            itl_ms=workload.itl_ms,
            baselines=("best_static", "capacity_floor"),
        ),
    )
    best, floor = statics.best_static, statics.capacity_floor
    assert best is not None
    assert floor is not None
    print(
        f"  {workload.name}: best static {best.prefill}P+{best.decode}D "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    rows: list[Row] = []
    runs: dict[float, dict[str, Any]] = {}
    for cold in COLD_STARTS_S:
        sim = SimConfig(
            cold_start_s=cold,
            initial_prefill=best.prefill,
            initial_decode=best.decode,
        )
        t0 = time.perf_counter()
        report = replay(
            trace,
            profile,
            _config(workload, "throughput", predictor),
            options=ReplayOptions(sim=sim, baselines=("perfect_forecast",)),
        )
        assert report.planner is not None
        plotted: dict[str, Any] = {
            "throughput": report.planner,
            "best static": (best.prefill, best.decode),
        }
        rows.append(
            Row(
                workload.name,
                cold,
                "throughput",
                report.planner.summary,
                report.planner.summary.gpu_hours,
                report.planner_wall_s,
            )
        )
        for policy in ("load", "both"):
            t1 = time.perf_counter()
            run = asyncio.run(
                _run(
                    trace,
                    model,
                    _config(workload, policy, predictor),
                    profile,
                    sim,
                    policy,
                )
            )
            plotted[policy] = run
            rows.append(
                Row(
                    workload.name,
                    cold,
                    policy,
                    run.summary,
                    run.summary.gpu_hours,
                    time.perf_counter() - t1,
                )
            )
        if report.perfect_forecast is not None:
            plotted["perfect forecast"] = report.perfect_forecast
            rows.append(
                Row(
                    workload.name,
                    cold,
                    "perfect forecast",
                    report.perfect_forecast.summary,
                    report.perfect_forecast.summary.gpu_hours,
                    math.nan,
                )
            )
        runs[cold] = plotted
        print(
            f"  {workload.name} cold start {cold:g} s: {time.perf_counter() - t0:.1f} s"
        )
    rows.append(
        Row(
            workload.name,
            math.nan,
            f"best static ({best.prefill}P+{best.decode}D)",
            best.summary,
            best.summary.gpu_hours,
            math.nan,
        )
    )
    rows.append(
        Row(workload.name, math.nan, "capacity floor", None, floor.gpu_hours, math.nan)
    )
    return rows, runs


def _fmt_table(workload: Workload, trace_requests: int, rows: Sequence[Row]) -> str:
    title = (
        f"**{workload.name}** ({trace_requests:,} requests; {workload.why}; "
        f"TTFT {workload.ttft_ms:g} ms, ITL {workload.itl_ms:g} ms)"
    )
    lines = [
        title,
        "",
        "| cold start | policy | attainment | TTFT ok | ITL ok | GPU-h | scaling actions |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        s = row.summary
        if s is None:
            cells = ["", "", ""]
            actions = ""
        else:
            cells = [
                f"{s.attainment:.1%}",
                f"{s.attainment_ttft:.1%}",
                f"{s.attainment_itl:.1%}",
            ]
            actions = str(s.scaling_actions) if row.policy in POLICIES else ""
        cold = "any" if math.isnan(row.cold_start_s) else f"{row.cold_start_s:g} s"
        lines.append(
            f"| {cold} | {row.policy} | {' | '.join(cells)} | "
            f"{row.gpu_hours:.2f} | {actions} |"
        )
    return "\n".join(lines)


_STYLES: dict[str, dict[str, Any]] = {
    "perfect forecast": {"color": "grey", "linewidth": 3.0, "alpha": 0.4},
    "throughput": {"color": "tab:orange", "linewidth": 1.2},
    "load": {"color": "tab:blue", "linewidth": 1.8},
    "both": {"color": "tab:green", "linewidth": 1.0, "linestyle": "--"},
}


def plot_workload(
    workload: Workload, runs: dict[float, dict[str, Any]], out: Path
) -> Path:
    """Workers held over time, one row per cold start, prefill and decode columns."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 2.6 * len(runs)), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(runs), 2, sharex=True, squeeze=False)
    for row, (cold, plotted) in enumerate(sorted(runs.items())):
        end = max(run.result.end_s for k, run in plotted.items() if k in _STYLES)
        t = np.linspace(0.0, end, 800)
        for col, component in enumerate(("prefill", "decode")):
            ax = axes[row][col]
            for name, style in _STYLES.items():
                run = plotted.get(name)
                if run is None:
                    continue
                _, held = workers_over_time(run.result.workers, t, component)
                ax.step(t / 60.0, held, where="post", label=name, **style)
            static = plotted.get("best static")
            if static is not None:
                ax.axhline(
                    static[col],
                    color="black",
                    linestyle="--",
                    linewidth=0.8,
                    label="best static",
                )
            ax.set_ylabel(f"{component} workers")
            ax.set_title(f"{workload.name}, cold start {cold:g} s", fontsize=9)
            if row == 0 and col == 0:
                ax.legend(loc="upper right", fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("time (min)")
    fig.tight_layout()
    path = out / f"loadbased_{workload.name}.png"
    fig.savefig(path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=REPO / "docs" / "_static", help="figure folder"
    )
    parser.add_argument(
        "--predictor",
        default="constant",
        help="throughput predictor (default constant)",
    )
    parser.add_argument(
        "--workload",
        action="append",
        choices=[w.name for w in WORKLOADS],
        help="run only these workloads (repeatable)",
    )
    args = parser.parse_args(argv)
    logging.getLogger("dynamo_planner.config").setLevel(logging.ERROR)
    profile = load_profile(H200_PROFILE_DIR)
    model = EngineModel.from_profile(profile)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tables = []
    for workload in WORKLOADS:
        if args.workload and workload.name not in args.workload:
            continue
        rows, runs = run_workload(workload, profile, model, args.predictor)
        requests = rows[0].summary.requests if rows[0].summary else 0
        tables.append(_fmt_table(workload, requests, rows))
        path = plot_workload(workload, runs, args.out)
        print(
            f"  wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}"
        )
    print()
    print("\n\n".join(tables))
    print()
    print(f"total wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
