"""Regenerate the table and plot of the docs page "Replaying a trace" (docs/guides/replay.md).

Run: ``python benchmarks/replay_table.py`` (``--jobs 2`` by default; at most 2 processes).

The reference planner (reference scaler, constant and ARIMA predictors) replays the Azure
2023 conversation trace and the Mooncake conversation trace (its 3 s timestamp buckets
spread uniformly, seed 0), each at load x10 (ten superposed time-shifted copies), with
TTFT <= 500 ms and ITL <= 20 ms, no GPU budget, at 60 s and 180 s adjustment intervals and
cold starts of 0, 60 and 180 s, on the bundled H200 Llama-3.1-8B profile. Requests
arriving in the first 10 minutes are not counted (nor GPU time before then). Beside each
run: the perfect-forecast run of the same setting, the best static deployment (99%
attainment target) and the capacity floor.

The table is printed and written between the markers in docs/guides/replay.md; the plot of
the Azure run at 60 s / 60 s cold start (constant predictor) goes to
docs/_static/replay_azure-conv-x10.png. ``--predictors constant`` skips ARIMA (faster).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "guides" / "replay.md"
PLOT = REPO / "docs" / "_static" / "replay_azure-conv-x10.png"
START = "<!-- replay-table:start -->"
END = "<!-- replay-table:end -->"

TRACES = {
    "Azure conv": ("azure", 0.0),
    "Mooncake conv": ("mooncake", 3.0),
}
LOAD_SCALE = 10
TTFT_MS = 500.0
ITL_MS = 20.0
WARMUP_S = 600.0
INTERVALS_S = (60.0, 180.0)
COLD_STARTS_S = (0.0, 60.0, 180.0)


def _trace(name: str) -> Any:
    from dynamo_planner.data import AZURE_CONV_TRACE
    from dynamo_planner.sim.workload import load_scale, spread_ties
    from dynamo_planner.traces import load_requests

    kind, spread = TRACES[name]
    path = (
        AZURE_CONV_TRACE
        if kind == "azure"
        else REPO / "data" / "traces" / "mooncake" / "conversation_trace.jsonl"
    )
    trace = load_requests(path)
    if spread:
        trace = spread_ties(trace, spread, seed=0)
    return load_scale(trace, LOAD_SCALE)


def _config(predictor: str, interval_s: float) -> Any:
    from dynamo_planner.config import PlannerConfig

    return PlannerConfig(
        scaler="reference",
        load_predictor=predictor,
        adjustment_interval_s=interval_s,
        ttft_ms=TTFT_MS,
        itl_ms=ITL_MS,
        max_gpu_budget=-1,
    )


def _replay(
    trace_name: str,
    predictor: str | None,
    interval_s: float,
    cold_start_s: float,
    baselines: tuple[str, ...],
    plot: Path | None = None,
) -> dict[str, Any]:
    from dynamo_planner.data import H200_PROFILE_DIR
    from dynamo_planner.profiles import load_profile
    from dynamo_planner.sim.engine import SimConfig
    from dynamo_planner.sim.replay import ReplayOptions, replay

    started = time.perf_counter()
    options = ReplayOptions(
        sim=SimConfig(cold_start_s=cold_start_s),
        interval_s=interval_s,
        ttft_ms=TTFT_MS,
        itl_ms=ITL_MS,
        warmup_s=WARMUP_S,
        baselines=baselines,
    )
    planner = _config(predictor, interval_s) if predictor else None
    report = replay(
        _trace(trace_name), load_profile(H200_PROFILE_DIR), planner, options=options
    )
    if plot is not None:
        from dynamo_planner.sim.plot import plot_replay

        plot_replay(report, plot, dpi=90)
    out: dict[str, Any] = {"wall_s": time.perf_counter() - started}
    if report.planner:
        out["planner"] = report.planner.summary.to_dict()
    if report.perfect_forecast:
        out["perfect"] = report.perfect_forecast.summary.to_dict()
    if report.best_static:
        out["static"] = report.best_static.summary.to_dict()
        out["static_feasible"] = report.best_static.feasible
        out["static_target"] = report.best_static.target
    if report.capacity_floor:
        out["floor"] = report.capacity_floor.gpu_hours
    return out


def _cell(summary: dict[str, Any]) -> str:
    return f"{summary['attainment']:.1%} · {summary['gpu_hours']:.2f}"


def _table(
    results: dict[tuple[Any, ...], dict[str, Any]], predictors: list[str]
) -> str:
    names = {"constant": "constant", "arima": "ARIMA"}
    head = (
        "| trace x10 | interval | cold start | "
        + " | ".join(f"reference, {names.get(p, p)}" for p in predictors)
        + " | perfect forecast | best static | capacity floor |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for trace in TRACES:
        static = results[(trace, "static")]
        s = static["static"]
        static_cell = f"{s['prefill']}P+{s['decode']}D: {_cell(s)}"
        if not static["static_feasible"]:
            static_cell += " ¹"
        for interval in INTERVALS_S:
            for cold in COLD_STARTS_S:
                row = [trace, f"{interval:g} s", f"{cold:g} s"]
                row += [
                    _cell(results[(trace, p, interval, cold)]["planner"])
                    for p in predictors
                ]
                row.append(
                    _cell(results[(trace, "constant", interval, cold)]["perfect"])
                )
                row.append(static_cell)
                row.append(f"{static['floor']:.2f}")
                lines.append("| " + " | ".join(row) + " |")
    notes = [
        "",
        "Cells: attainment (share of requests meeting both targets) · GPU-hours.",
    ]
    for trace in TRACES:
        static = results[(trace, "static")]
        if not static["static_feasible"]:
            notes.append(
                f"¹ {trace}: no static deployment reaches 99%; the best static is the "
                f"smallest reaching {static['static_target']:.1%} (the most any "
                "deployment reaches, less 0.5 point)."
            )
    return "\n".join(lines + notes)


def _write_doc(table: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        sys.exit(f"{DOC}: markers {START} / {END} not found")
    DOC.write_text(
        pattern.sub(lambda _: f"{START}\n{table}\n{END}", text), encoding="utf-8"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, choices=(1, 2), default=2)
    parser.add_argument(
        "--predictors", default="constant,arima", help="comma-separated predictors"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave the docs alone"
    )
    args = parser.parse_args()
    predictors = [p.strip() for p in args.predictors.split(",") if p.strip()]
    if "constant" not in predictors:
        predictors.insert(0, "constant")  # the perfect forecast rides on its job
    started = time.perf_counter()
    jobs: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for trace in TRACES:
        jobs[(trace, "static")] = (
            trace,
            None,
            60.0,
            0.0,
            ("best_static", "capacity_floor"),
        )
        for interval in INTERVALS_S:
            for cold in COLD_STARTS_S:
                for predictor in predictors:
                    baselines = ("perfect_forecast",) if predictor == "constant" else ()
                    jobs[(trace, predictor, interval, cold)] = (
                        trace,
                        predictor,
                        interval,
                        cold,
                        baselines,
                    )
    # the slowest (ARIMA at 60 s) first, so two processes finish together
    order = sorted(
        jobs, key=lambda k: (k[1] != "arima", k[2] if len(k) > 2 else 0, str(k))
    )
    results: dict[tuple[Any, ...], dict[str, Any]] = {}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {key: pool.submit(_replay, *jobs[key]) for key in order}
        plot_future = pool.submit(
            _replay,
            "Azure conv",
            "constant",
            60.0,
            60.0,
            ("best_static", "perfect_forecast", "capacity_floor"),
            None if args.no_write else PLOT,
        )
        for count, (key, future) in enumerate(futures.items(), start=1):
            results[key] = future.result()
            print(
                f"[{count}/{len(futures)}] {' '.join(str(k) for k in key)}: "
                f"{results[key]['wall_s']:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        plot_future.result()
    table = _table(results, predictors)
    print(table)
    if not args.no_write:
        _write_doc(table)
        print(f"wrote {DOC.relative_to(REPO)} and {PLOT.relative_to(REPO)}")
    print(f"total {time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
