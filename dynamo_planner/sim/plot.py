"""Plot a replay: load and forecast, replicas, and latency percentiles over time.

matplotlib is imported here only, when a plot is drawn (install ``dynamo_planner[plot]``).
The figure is drawn on matplotlib's Agg canvas directly, so no global backend is changed.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dynamo_planner.sim.metrics import workers_over_time

if TYPE_CHECKING:
    from dynamo_planner.sim.report import ReplayReport

__all__ = ["plot_replay"]


def _matplotlib() -> tuple[Any, Any]:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the environment
        msg = (
            "plotting needs matplotlib; install it with "
            "`pip install 'dynamo_planner[plot]'`"
        )
        raise ImportError(msg) from exc
    return Figure, FigureCanvasAgg


def plot_replay(report: ReplayReport, path: str | Path, *, dpi: int = 110) -> Path:
    """Draw the report's planner run (and baselines) into a PNG file.

    Panels, over time: (1) request rate and the planner's forecast of it; (2) prefill and
    decode workers held (solid) and ready (dotted), with the perfect-forecast run and the
    best static deployment; (3) TTFT p50/p99 per interval against the target; (4) the same
    for ITL.

    Args:
        report: A replay with a planner run.
        path: The PNG file to write.
        dpi: Resolution.

    Returns:
        The path written.

    Raises:
        ImportError: matplotlib is not installed.
        ValueError: The report has no planner run.
    """
    run = report.planner
    if run is None:
        raise ValueError("the report has no planner run to plot")
    figure_cls, canvas_cls = _matplotlib()
    fig = figure_cls(figsize=(11, 10), dpi=dpi)
    canvas_cls(fig)
    axes = fig.subplots(4, 1, sharex=True)
    interval = report.interval_s
    minutes = [r.start_s / 60.0 for r in run.intervals]
    end_min = run.result.end_s / 60.0
    edges = [*minutes, end_min]

    def step(ax: Any, values: list[float], **kwargs: Any) -> None:
        ax.stairs(values, edges, **kwargs)

    # (1) load and forecast
    ax = axes[0]
    rate = [r.num_req / interval for r in run.intervals]
    forecast = [r.forecast_num_req / interval for r in run.intervals]
    step(ax, rate, label="actual", color="black")
    step(ax, forecast, label="planner forecast", color="tab:orange")
    ax.set_ylabel("requests/s")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(_title(report), fontsize=9)

    # (2) replicas (agg workers count as decode workers)
    ax = axes[1]
    t = np.linspace(0.0, run.result.end_s, 600)
    agg = report.options.sim.mode == "agg"
    components = (
        (("decode", "tab:green", "agg"),)
        if agg
        else (("prefill", "tab:blue", "prefill"), ("decode", "tab:green", "decode"))
    )
    for component, color, name in components:
        ready, held = workers_over_time(run.result.workers, t, component)
        ax.plot(t / 60.0, held, color=color, label=f"{name} (held)")
        ax.plot(t / 60.0, ready, color=color, linestyle=":", label=f"{name} (ready)")
        if report.perfect_forecast is not None:
            _, perfect = workers_over_time(
                report.perfect_forecast.result.workers, t, component
            )
            ax.plot(
                t / 60.0,
                perfect,
                color=color,
                alpha=0.35,
                linewidth=3,
                label=f"{name} (perfect forecast)",
            )
    if report.best_static is not None:
        if not agg:
            ax.axhline(
                report.best_static.prefill,
                color="tab:blue",
                linestyle="--",
                linewidth=0.8,
            )
        ax.axhline(
            report.best_static.decode,
            color="tab:green",
            linestyle="--",
            linewidth=0.8,
            label="best static (dashed)",
        )
    ax.set_ylabel("workers")
    ax.legend(loc="upper left", fontsize=7, ncol=3)

    # (3) TTFT, (4) ITL
    for ax, name, target in (
        (axes[2], "ttft", report.ttft_ms),
        (axes[3], "itl", report.itl_ms),
    ):
        values = [getattr(r, f"{name}_ms") for r in run.intervals]
        for q, label, style in ((0, "p50", "-"), (2, "p99", "--")):
            ys = [_clip(v[q]) for v in values]
            step(ax, ys, label=label, linestyle=style, color="tab:purple")
        ax.axhline(target, color="red", linewidth=0.8, label="target")
        ax.set_yscale("log")
        ax.set_ylabel(f"{name.upper()} ms")
        ax.legend(loc="upper left", fontsize=8)
    axes[3].set_xlabel("time (min)")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    return out


def _clip(value: float) -> float:
    if math.isnan(value):
        return math.nan
    return min(value, 1e7)


def _title(report: ReplayReport) -> str:
    parts = [
        f"{s.label}: {s.attainment:.1%} at {s.gpu_hours:.2f} GPU-h"
        for s in report.summaries()
    ]
    if report.capacity_floor is not None:
        parts.append(f"floor {report.capacity_floor.gpu_hours:.2f} GPU-h")
    return "; ".join(parts)
