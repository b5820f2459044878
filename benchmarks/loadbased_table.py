"""Throughput, load-based, both modes and agg, replayed with ``dynamo-planner replay``.

Run: ``python benchmarks/loadbased_table.py`` (about two minutes with the default two
processes). Every row is the replay of one ``dynamo-planner replay`` command line, which
the script prints: it parses that command line with the replay command's own parser and
replays what the command would (``dynamo_planner.cli._replay.prepare``), and at the end it
runs one of the commands through the command line itself and checks that it prints the
same figures.

For each workload it first finds the best static deployments (disaggregated, and
aggregated for agg) with the command's ``--baselines best_static,capacity_floor``, then
replays, at cold starts of 0, 60 and 180 s, starting from the best static deployment (as
if the planner took over a right-sized deployment):

* **throughput**: the throughput planner alone (reference interpolator and 180 s
  interval by default; the reference scaler and the ARIMA predictor, the reference's
  defaults, named on the command line so that the figures do not move with this
  library's defaults), with its perfect-forecast baseline;
* **load**: load-based scaling alone (defaults: 5 s interval, window 50, 5 observations,
  sensitivity 80, 10 router scrapes per interval);
* **both**: the two together (the throughput plan is a floor the load path enforces);
* **agg**: load-based scaling of aggregated workers (``--mode agg``), on the simulator's
  aggregated engine derived from the prefill and decode profiles.

All on the bundled H200 / Llama-3.1-8B profile with no GPU budget. It prints one markdown
table per workload (attainment: share of requests meeting both the TTFT and the ITL
target; GPU-hours; scaling actions: changes of the requested replicas) with its command
lines, and writes one figure per workload with the workers held over time (``--out``,
default ``docs/_static``): rows are cold starts; columns prefill, decode and agg workers.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import shlex
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from dynamo_planner.cli._replay import parse, prepare
from dynamo_planner.sim.engine import WorkerSpan
from dynamo_planner.sim.metrics import RunSummary, workers_over_time
from dynamo_planner.sim.replay import ReplayOptions, replay

REPO = Path(__file__).resolve().parent.parent
COLD_STARTS_S = (0.0, 60.0, 180.0)
COMMON = (
    "--max-gpu-budget",
    "-1",
    "--load-predictor",
    "arima",
    "--scaler",
    "reference",
)
POLICIES: dict[str, tuple[str, ...]] = {
    "throughput": (),
    "load": ("--enable-loadbased-scaling", "--disable-throughput-scaling"),
    "both": ("--enable-loadbased-scaling",),
    "agg": (
        "--mode",
        "agg",
        "--enable-loadbased-scaling",
        "--disable-throughput-scaling",
    ),
}


@attrs.frozen
class Workload:
    """A trace (as ``dynamo-planner replay`` flags) and what it shows."""

    name: str
    flags: tuple[str, ...]
    why: str


WORKLOADS = (
    Workload(
        "azure-conv",
        (),
        "the bundled Azure LLM inference 2023 conversation trace, as recorded; "
        "TTFT 500 ms, ITL 50 ms",
    ),
    Workload(
        "azure-conv-x16",
        ("--load-scale", "16"),
        "the same, 16 time-shifted copies superposed (bursts kept), so that scaling "
        "matters; TTFT 500 ms, ITL 50 ms",
    ),
    Workload(
        "mooncake-conv",
        ("--trace", "data/traces/mooncake/conversation_trace.jsonl", "--ttft", "3500"),
        "Mooncake conversation, as recorded; TTFT 3.5 s because the longest prompt "
        "(126k tokens) alone takes 3.1 s to prefill on this profile, ITL 50 ms",
    ),
)


@attrs.frozen
class Figures:
    """One run's figures (a summary row) and, for plots, its workers' lives."""

    name: str
    attainment: float
    attainment_ttft: float
    attainment_itl: float
    gpu_hours: float
    scaling_actions: int
    requests: int
    workers: tuple[WorkerSpan, ...] = ()
    end_s: float = math.nan

    @classmethod
    def of(
        cls,
        summary: RunSummary,
        workers: tuple[WorkerSpan, ...] = (),
        end_s: float = math.nan,
    ) -> Figures:
        return cls(
            name=summary.label,
            attainment=summary.attainment,
            attainment_ttft=summary.attainment_ttft,
            attainment_itl=summary.attainment_itl,
            gpu_hours=summary.gpu_hours,
            scaling_actions=summary.scaling_actions,
            requests=summary.requests,
            workers=workers,
            end_s=end_s,
        )


@attrs.frozen
class Outcome:
    """What one command replayed."""

    argv: tuple[str, ...]
    planner: Figures | None
    perfect: Figures | None
    static: Figures | None
    static_counts: tuple[int, int] | None
    floor_gpu_hours: float | None
    wall_s: float


def replay_command(argv: Sequence[str], *, with_planner: bool = True) -> Outcome:
    """Replay what ``dynamo-planner replay ARGV`` replays (without its planner run).

    ``with_planner=False`` computes the command's baselines only (the best static
    deployment and the capacity floor do not depend on the planner).
    """
    logging.getLogger("dynamo_planner.config").setLevel(logging.ERROR)
    started = time.perf_counter()
    inputs = prepare(parse(argv))
    config = inputs.config
    if with_planner:
        report = replay(inputs.trace, inputs.profile, config, options=inputs.options)
    else:
        interval = (
            config.loadbased_adjustment_interval_s
            if config.enable_loadbased_scaling
            else config.adjustment_interval_s
        )
        options: ReplayOptions = attrs.evolve(
            inputs.options,
            interval_s=interval,
            ttft_ms=config.ttft_ms,
            itl_ms=config.itl_ms,
        )
        report = replay(inputs.trace, inputs.profile, None, options=options)
    run, perfect, static = report.planner, report.perfect_forecast, report.best_static
    return Outcome(
        argv=tuple(argv),
        planner=Figures.of(run.summary, run.result.workers, run.result.end_s)
        if run
        else None,
        perfect=Figures.of(
            perfect.summary, perfect.result.workers, perfect.result.end_s
        )
        if perfect
        else None,
        static=Figures.of(static.summary) if static else None,
        static_counts=(static.prefill, static.decode) if static else None,
        floor_gpu_hours=report.capacity_floor.gpu_hours
        if report.capacity_floor
        else None,
        wall_s=time.perf_counter() - started,
    )


def _statics(argv: Sequence[str]) -> Outcome:
    return replay_command(argv, with_planner=False)


def static_argv(workload: Workload, policy: str) -> list[str]:
    """The command whose baselines give the best static deployment of ``policy``."""
    baselines = "best_static" if policy == "agg" else "best_static,capacity_floor"
    return [
        *workload.flags,
        *COMMON,
        *POLICIES[policy],
        "--baselines",
        baselines,
    ]


def run_argv(
    workload: Workload, policy: str, cold_start_s: float, start: tuple[int, int]
) -> list[str]:
    """The command of one row: a policy at a cold start, from the best static."""
    prefill, decode = start
    begin = (
        ["--start-num-d", str(decode)]
        if policy == "agg"
        else ["--start-num-p", str(prefill), "--start-num-d", str(decode)]
    )
    return [
        *workload.flags,
        *COMMON,
        *POLICIES[policy],
        "--cold-start-s",
        f"{cold_start_s:g}",
        *begin,
        "--baselines",
        "perfect_forecast" if policy == "throughput" else "none",
    ]


def command(argv: Sequence[str]) -> str:
    """The shell command line of ``argv``."""
    return shlex.join(["dynamo-planner", "replay", *argv])


# ------------------------------------------------------------------------ output


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1%}"


def format_table(
    workload: Workload,
    statics: dict[str, Outcome],
    runs: dict[tuple[float, str], Outcome],
) -> str:
    """The markdown table of one workload, with its command lines."""
    disagg = statics["disagg"]
    agg = statics["agg"]
    assert disagg.static is not None
    assert agg.static is not None
    lines = [
        f"**{workload.name}** ({disagg.static.requests:,} requests; {workload.why})",
        "",
        (
            "| cold start | policy | attainment | TTFT ok | ITL ok | GPU-h "
            "| scaling actions |"
        ),
        "|---:|---|---:|---:|---:|---:|---:|",
    ]

    def row(cold: str, name: str, f: Figures | None, actions: str) -> None:
        if f is None:
            return
        lines.append(
            f"| {cold} | {name} | {_pct(f.attainment)} | {_pct(f.attainment_ttft)} | "
            f"{_pct(f.attainment_itl)} | {f.gpu_hours:.2f} | {actions} |"
        )

    for cold in COLD_STARTS_S:
        for policy in POLICIES:
            outcome = runs[(cold, policy)]
            planner = outcome.planner
            assert planner is not None
            row(f"{cold:g} s", policy, planner, str(planner.scaling_actions))
        row(f"{cold:g} s", "perfect forecast", runs[(cold, "throughput")].perfect, "")
    row("any", disagg.static.name, disagg.static, "")
    row("any", agg.static.name, agg.static, "")
    lines.append(
        f"| any | capacity floor | | | | {disagg.floor_gpu_hours or math.nan:.2f} | |"
    )
    lines += [
        "",
        (
            "Commands (run from the repository's root; a row's figures are in the "
            "output's `planner` line, the baselines' in theirs; other cold starts: change "
            "`--cold-start-s`):"
        ),
        "",
        "```text",
        f"# best static and capacity floor\n{command(disagg.argv)}",
        f"# best static (agg)\n{command(agg.argv)}",
    ]
    for policy in POLICIES:
        lines.append(f"# {policy}, cold start 60 s")
        lines.append(command(runs[(60.0, policy)].argv))
    lines.append("```")
    return "\n".join(lines)


_STYLES: dict[str, dict[str, Any]] = {
    "perfect forecast": {"color": "grey", "linewidth": 3.0, "alpha": 0.4},
    "throughput": {"color": "tab:orange", "linewidth": 1.2},
    "load": {"color": "tab:blue", "linewidth": 1.6},
    "both": {"color": "tab:green", "linewidth": 1.0, "linestyle": "--"},
    "agg": {"color": "tab:purple", "linewidth": 1.4},
}


def plot_workload(
    workload: Workload,
    statics: dict[str, Outcome],
    runs: dict[tuple[float, str], Outcome],
    out: Path,
) -> Path:
    """Workers held over time: rows are cold starts; prefill, decode, agg columns."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 2.6 * len(COLD_STARTS_S)), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(COLD_STARTS_S), 3, sharex=True, squeeze=False)
    disagg_start = statics["disagg"].static_counts or (0, 0)
    agg_start = statics["agg"].static_counts or (0, 0)
    for r, cold in enumerate(COLD_STARTS_S):
        plotted: dict[str, Figures] = {}
        for policy in POLICIES:
            figures = runs[(cold, policy)].planner
            if figures is not None:
                plotted[policy] = figures
        perfect = runs[(cold, "throughput")].perfect
        if perfect is not None:
            plotted["perfect forecast"] = perfect
        end = max(f.end_s for f in plotted.values())
        t = np.linspace(0.0, end, 800)
        columns = (
            ("prefill", "prefill workers", disagg_start[0]),
            ("decode", "decode workers", disagg_start[1]),
            ("agg", "agg workers", agg_start[1]),
        )
        for c, (column, label, static) in enumerate(columns):
            ax = axes[r][c]
            for name, style in _STYLES.items():
                figures = plotted.get(name)
                if figures is None or (name == "agg") != (column == "agg"):
                    continue
                component = "decode" if column == "agg" else column
                _, held = workers_over_time(figures.workers, t, component)
                ax.step(t / 60.0, held, where="post", label=name, **style)
            ax.axhline(
                static,
                color="black",
                linestyle="--",
                linewidth=0.8,
                label="best static",
            )
            ax.set_ylabel(label)
            ax.set_title(f"{workload.name}, cold start {cold:g} s", fontsize=9)
            if r == 0 and c in (0, 2):
                ax.legend(loc="upper right", fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("time (min)")
    fig.tight_layout()
    path = out / f"loadbased_{workload.name}.png"
    fig.savefig(path)
    return path


def check_command(outcome: Outcome) -> str:
    """Run one row's command through the command line; its figures must match."""
    from dynamo_planner.cli import main

    with tempfile.TemporaryDirectory() as folder:
        stdout = io.StringIO()
        argv = [
            "replay",
            *outcome.argv,
            "--format",
            "json",
            "--no-plot",
            "-q",
            "--output-dir",
            folder,
        ]
        with (
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            status = main(argv)
    if status != 0:
        msg = f"{command(outcome.argv)} exited with {status}"
        raise RuntimeError(msg)
    printed = json.loads(stdout.getvalue())
    run = printed["runs"][0]
    assert outcome.planner is not None
    mine = (
        outcome.planner.attainment,
        outcome.planner.gpu_hours,
        outcome.planner.scaling_actions,
    )
    theirs = (run["attainment"], run["gpu_hours"], run["scaling_actions"])
    if mine != theirs:
        msg = f"{command(outcome.argv)} printed {theirs}, the table has {mine}"
        raise RuntimeError(msg)
    return (
        f"checked: `{command(outcome.argv)}` prints attainment "
        f"{theirs[0]:.1%}, {theirs[1]:.2f} GPU-h, {theirs[2]} scaling actions"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=lambda text: Path(text).resolve(),
        default=REPO / "docs" / "_static",
        help="figure folder",
    )
    parser.add_argument(
        "--jobs", type=int, default=2, help="processes replaying at once (default 2)"
    )
    parser.add_argument(
        "--workload",
        action="append",
        choices=[w.name for w in WORKLOADS],
        help="run only these workloads (repeatable)",
    )
    args = parser.parse_args(argv)
    os.chdir(REPO)  # the commands' relative paths are from the repository's root
    workloads = [w for w in WORKLOADS if not args.workload or w.name in args.workload]
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        # 1. best static deployments (disagg and agg) and the capacity floor
        futures = {
            (w.name, kind): pool.submit(
                _statics, static_argv(w, "agg" if kind == "agg" else "throughput")
            )
            for w in workloads
            for kind in ("disagg", "agg")
        }
        statics = {key: future.result() for key, future in futures.items()}
        for (name, kind), outcome in statics.items():
            print(
                f"  {name}: best static {kind} {outcome.static_counts} "
                f"({outcome.wall_s:.0f} s)"
            )
        # 2. every policy at every cold start, from the best static
        run_futures = {}
        for w in workloads:
            for cold in COLD_STARTS_S:
                for policy in POLICIES:
                    kind = "agg" if policy == "agg" else "disagg"
                    start = statics[(w.name, kind)].static_counts
                    assert start is not None
                    run_futures[(w.name, cold, policy)] = pool.submit(
                        replay_command, run_argv(w, policy, cold, start)
                    )
        runs = {key: future.result() for key, future in run_futures.items()}
    print(f"  replays done ({time.perf_counter() - started:.0f} s)")
    tables = []
    for w in workloads:
        mine = {kind: statics[(w.name, kind)] for kind in ("disagg", "agg")}
        rows = {
            (cold, policy): runs[(w.name, cold, policy)]
            for cold in COLD_STARTS_S
            for policy in POLICIES
        }
        tables.append(format_table(w, mine, rows))
        path = plot_workload(w, mine, rows, args.out)
        print(
            f"  wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}"
        )
    # 3. one row again, through the command line itself
    probe = next(
        (k for k in runs if k[0] == "mooncake-conv" and k[1:] == (60.0, "load")),
        next(iter(runs)),
    )
    check = check_command(runs[probe])
    print()
    print("\n\n".join(tables))
    print()
    print(check)
    print(f"total wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
