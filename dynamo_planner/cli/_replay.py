"""``dynamo-planner replay``: what would this planner have done on this traffic?

It replays a request trace on simulated prefill and decode workers that follow a measured
performance profile, with the planner in the loop (scaling with cold starts and drains),
and prints SLA attainment and GPU-hours beside three baselines: the best static
deployment, the same planner with a perfect forecast, and the capacity floor. It writes a
plot and per-interval results.

With no arguments it replays the bundled Azure 2023 conversation trace on the bundled H200
Llama-3.1-8B profile with the default planner configuration (the reference planner's
defaults: TTFT 500 ms, ITL 50 ms, 180 s interval, GPU budget 8; but the ``sla`` scaler,
where the reference's is ``--scaler reference``).

The configuration's scaling modes pick the planner: throughput (the default),
load-based (--enable-loadbased-scaling --disable-throughput-scaling), both
(--enable-loadbased-scaling), or aggregated workers (--mode agg
--enable-loadbased-scaling --disable-throughput-scaling), which replays an aggregated
engine derived from the prefill and decode profiles. ``--scaler`` picks the throughput
scaler (``reference`` or ``sla``; ``--sla-attainment``, ``--scale-down-intervals``,
``--cold-start-s`` and ``--max-num-batched-tokens`` tune the latter).

Planner settings come from ``--config FILE.toml``, then ``PLANNER_*`` environment
variables, then the flags below (a later source wins).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from collections.abc import Sequence

    from dynamo_planner.config import PlannerConfig
    from dynamo_planner.sim.replay import ReplayOptions
    from dynamo_planner.traces import RequestTrace
    from dynamo_planner.values import PerfProfile

__all__ = ["ReplayInputs", "add_parser", "parse", "prepare", "run"]

_CONFIG_FIELDS = (
    "mode",
    "adjustment_interval_s",
    "max_gpu_budget",
    "min_endpoint",
    "prefill_engine_num_gpu",
    "decode_engine_num_gpu",
    "no_correction",
    "unknown_fallback_intervals",
    "scaler",
    "sla_attainment",
    "scale_down_intervals",
    "no_attainment_feedback",
    "sla_arrival_cv2",
    "sla_prefill_max_wait",
    "forecast_quantile",
    "select",
    "ttft_ms",
    "itl_ms",
    "interpolator",
    "load_predictor",
    "load_predictor_log1p",
    "prophet_window_size",
    "load_predictor_warmup_trace",
    "kalman_q_level",
    "kalman_q_trend",
    "kalman_r",
    "kalman_min_points",
    "enable_throughput_scaling",
    "enable_loadbased_scaling",
    "loadbased_adjustment_interval_s",
    "loadbased_learning_window",
    "loadbased_scaling_down_sensitivity",
    "loadbased_metric_samples",
    "loadbased_min_observations",
)

_DEFAULT_PROFILE_DIR = "profiling_results"


def _number(low: float, *, strict: bool, kind: type = float) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        ok = math.isfinite(value) and (value > low if strict else value >= low)
        if not ok:
            sign = ">" if strict else ">="
            msg = f"expected a number {sign} {low:g}, got {text!r}"
            raise argparse.ArgumentTypeError(msg)
        return value

    return parse


def add_parser(subparsers: Any) -> None:
    """Register the ``replay`` subcommand."""
    from dynamo_planner.config import PlannerConfig

    parser = subparsers.add_parser(
        "replay",
        help="replay a trace with the planner in the loop; attainment and GPU-hours",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    inputs = parser.add_argument_group("Trace and profile")
    inputs.add_argument(
        "--trace",
        metavar="PATH",
        help="mooncake JSONL(.gz), Azure CSV, or a ServeGen folder "
        "(default: the bundled Azure 2023 conversation trace)",
    )
    inputs.add_argument(
        "--trace-format",
        choices=("mooncake", "azure", "servegen"),
        help="trace layout (default: detected)",
    )
    inputs.add_argument(
        "--profile",
        metavar="PATH",
        help="profiling-results or pre-swept directory (default: "
        "--profile-results-dir if set, else the bundled H200 Llama-3.1-8B profile)",
    )
    inputs.add_argument(
        "--profile-results-dir",
        dest="profile_results_dir",
        metavar="PATH",
        help="alias of --profile (the reference's flag name)",
    )
    inputs.add_argument(
        "--config", metavar="FILE.toml", help="planner settings (TOML, flat keys)"
    )
    work = parser.add_argument_group("Workload")
    work.add_argument(
        "--start-s",
        type=_number(0, strict=False),
        default=0.0,
        help="replay the trace from this time (s; default 0)",
    )
    work.add_argument(
        "--duration-s",
        type=_number(0, strict=True),
        help="replay this long (s; default: to the end; ServeGen: 3600)",
    )
    work.add_argument(
        "--rate-scale",
        type=_number(0, strict=True),
        default=1.0,
        help="compress time by this factor: rate x k (default 1)",
    )
    work.add_argument(
        "--load-scale",
        type=_number(1, strict=False, kind=int),
        default=1,
        help="superpose k time-shifted copies of the trace: load x k, bursts kept "
        "(default 1)",
    )
    work.add_argument(
        "--load-shift-s",
        type=_number(0, strict=False),
        help="shift between the copies of --load-scale (s; default: span / k)",
    )
    work.add_argument(
        "--spread-ties-s",
        type=_number(0, strict=False),
        default=0.0,
        help="spread requests sharing a timestamp over this many seconds "
        "(e.g. 3 for the mooncake trace's 3 s buckets; default 0)",
    )
    work.add_argument(
        "--servegen-rate-factor",
        type=_number(0, strict=True),
        default=1.0,
        help="multiply every ServeGen client's rate (default 1)",
    )
    work.add_argument(
        "--lengths-from",
        metavar="PATH",
        help="trace whose (ISL, OSL) pairs ServeGen arrivals draw from "
        "(default: the bundled Azure trace)",
    )
    work.add_argument(
        "--seed", type=int, default=0, help="seed of every random draw (default 0)"
    )
    sim = parser.add_argument_group("Simulated deployment")
    sim.add_argument(
        "--cold-start-s",
        type=_number(0, strict=False),
        help="time from requesting a worker to it serving, in the simulator and in "
        "the planner's configuration (cold_start_s, which the sla scaler looks ahead "
        "over; s; default: the configuration's, 60)",
    )
    sim.add_argument(
        "--kv-transfer-ms",
        type=_number(0, strict=False),
        default=0.0,
        help="KV-cache transfer delay after prefill (ms; default 0)",
    )
    sim.add_argument(
        "--max-num-batched-tokens",
        type=_number(0, strict=True, kind=int),
        help="token budget of a prefill batch; a longer prompt runs alone; in the "
        "simulator and in the planner's configuration (max_num_batched_tokens, which "
        "the sla scaler's queueing model credits) (default: the configuration's, "
        "8192; 1 disables batching)",
    )
    sim.add_argument(
        "--prefill-beyond-profile",
        choices=("linear", "clamp"),
        default="linear",
        help="prefill time of prompts longer than the profile's longest: grow "
        "linearly (default) or stay at the last point (the reference interpolator's "
        "clamp; unrealistically cheap, for comparisons)",
    )
    sim.add_argument(
        "--decode-beyond-profile",
        choices=("linear", "clamp"),
        default="linear",
        help="decode step time at contexts longer than the profile's longest: add "
        "the KV read of the extra context (default) or stay at the longest context's "
        "curve (unrealistically fast, for comparisons)",
    )
    sim.add_argument(
        "--max-decode-batch",
        type=_number(0, strict=True, kind=int),
        help="most requests a decode worker runs at once (default: KV capacity only)",
    )
    sim.add_argument(
        "--metric-delay-s",
        type=_number(0, strict=False),
        default=0.0,
        help="how late the frontend's metrics are (s; default 0)",
    )
    sim.add_argument(
        "--frontend-metrics",
        choices=("samples", "histograms"),
        default="samples",
        help="what the planner reads beside counts and means: every request's lengths "
        "and latencies (samples, default) or bucket counts, as Prometheus reads a "
        "Dynamo frontend (histograms)",
    )
    sim.add_argument(
        "--frontend-scrape-s",
        type=_number(0, strict=True),
        default=None,
        help="with --frontend-metrics histograms: how often Prometheus scrapes the "
        "request counter (s); the planner then reads the arrivals' dispersion from "
        "the scrapes, as the Prometheus source does live (default: not scraped often "
        "enough, unknown)",
    )
    sim.add_argument(
        "--start-num-p",
        type=_number(0, strict=False, kind=int),
        help="prefill workers ready at the start (default 1; none in agg mode)",
    )
    sim.add_argument(
        "--start-num-d",
        type=_number(0, strict=False, kind=int),
        default=1,
        help="decode (agg mode: aggregated) workers ready at the start (default 1)",
    )
    judge = parser.add_argument_group("Evaluation")
    judge.add_argument(
        "--attainment-target",
        type=_number(0, strict=True),
        default=0.99,
        help="share of requests the best static deployment must serve within both "
        "targets (default 0.99)",
    )
    judge.add_argument(
        "--warmup-s",
        type=_number(0, strict=False),
        default=0.0,
        help="do not count requests arriving (nor GPU time) before this (s; default 0)",
    )
    judge.add_argument(
        "--baselines",
        default="best_static,perfect_forecast,capacity_floor",
        help="comma-separated baselines to compute, or 'none' "
        "(default: best_static,perfect_forecast,capacity_floor; interval_oracle, the "
        "hindsight per-interval deployments, simulates a grid around the best static "
        "one and is slower; hindsight_schedule replays the oracle's schedule and "
        "removes workers while the target holds, slower still)",
    )
    out = parser.add_argument_group("Output")
    out.add_argument(
        "--output-dir",
        metavar="DIR",
        default="replay-out",
        help="where the plot, the per-interval CSV, the planner's decisions and the "
        "JSON report go (default: ./replay-out)",
    )
    out.add_argument("--no-plot", action="store_true", help="do not draw the plot")
    out.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="summary on stdout as a table or one JSON object (default text)",
    )
    out.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    PlannerConfig.add_arguments(parser, fields=_CONFIG_FIELDS)
    parser.set_defaults(func=run)


class _Progress:
    """Progress on stderr: one updating line on a terminal, one line per phase else."""

    def __init__(self, stream: IO[str], *, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty()
        self.last = ""

    def __call__(self, phase: str, fraction: float) -> None:
        if not self.enabled:
            return
        done = "" if math.isnan(fraction) else f" {fraction:4.0%}"
        if self.tty:
            self.stream.write(f"\r\033[K  {phase}{done}")
            self.stream.flush()
        elif phase != self.last:
            self.stream.write(f"  {phase} ...\n")
        self.last = phase

    def note(self, text: str) -> None:
        if self.enabled:
            self.close()
            self.stream.write(f"{text}\n")

    def close(self) -> None:
        if self.enabled and self.tty and self.last:
            self.stream.write("\r\033[K")
            self.stream.flush()
        self.last = ""


def _load_trace(args: argparse.Namespace) -> RequestTrace:
    from dynamo_planner.data import AZURE_CONV_TRACE
    from dynamo_planner.sim.workload import (
        load_scale,
        rate_scale,
        spread_ties,
        synthesize_servegen,
        window,
    )
    from dynamo_planner.traces import detect_format, load_requests, load_servegen

    path = Path(args.trace) if args.trace else AZURE_CONV_TRACE
    fmt = args.trace_format or detect_format(path)
    if fmt == "servegen":
        lengths = load_requests(args.lengths_from or AZURE_CONV_TRACE)
        trace = synthesize_servegen(
            load_servegen(path),
            start_s=args.start_s,
            duration_s=args.duration_s if args.duration_s is not None else 3600.0,
            rate_factor=args.servegen_rate_factor,
            lengths=lengths,
            seed=args.seed,
        )
    else:
        trace = load_requests(path, format=fmt)
        if args.start_s > 0 or args.duration_s is not None:
            end = None if args.duration_s is None else args.start_s + args.duration_s
            trace = window(trace, args.start_s, end)
    if args.spread_ties_s > 0:
        trace = spread_ties(trace, args.spread_ties_s, seed=args.seed)
    trace = rate_scale(trace, args.rate_scale)
    trace = load_scale(trace, args.load_scale, shift_s=args.load_shift_s)
    if len(trace) == 0:
        from dynamo_planner.exceptions import TraceError

        raise TraceError(
            "no request left to replay (check --start-s/--duration-s)", path=str(path)
        )
    return trace


def _profile_dir(args: argparse.Namespace, config: PlannerConfig) -> Path:
    from dynamo_planner.data import H200_PROFILE_DIR

    if args.profile:
        return Path(args.profile)
    if args.profile_results_dir:
        return Path(args.profile_results_dir)
    if config.profile_results_dir != _DEFAULT_PROFILE_DIR:
        return Path(config.profile_results_dir)
    return H200_PROFILE_DIR


def _baselines(text: str) -> tuple[str, ...]:
    from dynamo_planner.exceptions import ConfigError
    from dynamo_planner.sim.replay import BASELINES

    if text.strip().lower() == "none":
        return ()
    names = tuple(n.strip().replace("-", "_") for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ConfigError(
            f"unknown baseline(s) {', '.join(unknown)}; choose from "
            f"{', '.join(BASELINES)} or 'none'",
            field="baselines",
            value=text,
        )
    return names


@attrs.frozen(kw_only=True)
class ReplayInputs:
    """What a ``dynamo-planner replay`` command line replays (see :func:`prepare`).

    Attributes:
        trace: The requests, after the workload transforms.
        profile: The performance profile.
        config: The planner configuration.
        options: The simulated deployment and how runs are judged.
    """

    trace: RequestTrace
    profile: PerfProfile
    config: PlannerConfig
    options: ReplayOptions


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """Parse the arguments of ``dynamo-planner replay`` (without the subcommand)."""
    parser = argparse.ArgumentParser(prog="dynamo-planner")
    add_parser(parser.add_subparsers())
    return parser.parse_args(["replay", *argv])


def prepare(args: argparse.Namespace) -> ReplayInputs:
    """Read the trace and the profile and build the configuration and options.

    :func:`run` replays exactly these; ``benchmarks/loadbased_table.py`` uses it (with
    :func:`parse`) so that each of its rows is the replay of a printed command line.

    The simulated deployment and the planner share one cold start and one prefill batch
    budget: the configuration's ``cold_start_s`` and ``max_num_batched_tokens``, which
    ``--cold-start-s`` and ``--max-num-batched-tokens`` set (over ``--config`` and the
    environment). A budget of 0 (the configuration's "no batching") runs the simulator
    with a one-token budget, where every prompt runs alone.

    Raises:
        ConfigError: A setting is invalid (e.g. prefill workers with ``--mode agg``).
        TraceError: The trace cannot be read or leaves no request.
        ProfileError: The profile cannot be read.
    """
    from dynamo_planner.config import PlannerConfig
    from dynamo_planner.profiles import load_profile
    from dynamo_planner.sim.engine import SimConfig
    from dynamo_planner.sim.replay import ReplayOptions

    config = PlannerConfig.resolve(args, toml_path=args.config)
    agg = config.mode == "agg"
    if agg and args.start_num_p:
        from dynamo_planner.exceptions import ConfigError

        raise ConfigError(
            "an agg deployment has no prefill workers (--mode agg)",
            field="start_num_p",
            value=args.start_num_p,
        )
    if args.frontend_scrape_s is not None and args.frontend_metrics != "histograms":
        from dynamo_planner.exceptions import ConfigError

        raise ConfigError(
            "--frontend-scrape-s needs --frontend-metrics histograms (the samples view "
            "already counts arrivals per second)",
            field="frontend_scrape_s",
            value=args.frontend_scrape_s,
        )
    start_p = args.start_num_p if args.start_num_p is not None else int(not agg)
    options = ReplayOptions(
        sim=SimConfig(
            mode="agg" if agg else "disagg",
            max_num_batched_tokens=max(1, config.max_num_batched_tokens),
            kv_transfer_ms=args.kv_transfer_ms,
            cold_start_s=config.cold_start_s,
            initial_prefill=start_p,
            initial_decode=args.start_num_d,
            max_decode_batch=args.max_decode_batch,
            metric_delay_s=args.metric_delay_s,
            frontend_metrics=args.frontend_metrics,
            frontend_scrape_s=args.frontend_scrape_s,
        ),
        attainment_target=min(1.0, args.attainment_target),
        warmup_s=args.warmup_s,
        baselines=_baselines(args.baselines),
        prefill_beyond=args.prefill_beyond_profile,
        decode_beyond=args.decode_beyond_profile,
    )
    trace = _load_trace(args)
    profile = load_profile(_profile_dir(args, config), select=config.select)
    return ReplayInputs(trace=trace, profile=profile, config=config, options=options)


def run(args: argparse.Namespace) -> int:
    """Replay, print the summary, write the plot and the CSV; returns the exit status."""
    from dynamo_planner.sim.replay import replay, scaling_modes

    progress = _Progress(sys.stderr, enabled=not args.quiet)
    progress.note("dynamo-planner replay: reading the trace and the profile")
    inputs = prepare(args)
    config = inputs.config
    planner = scaling_modes(config)
    if config.enable_throughput_scaling:
        planner += f" + {config.load_predictor} predictor"
    progress.note(
        f"dynamo-planner replay: {len(inputs.trace):,} requests, planner {planner}"
    )
    report = replay(
        inputs.trace,
        inputs.profile,
        config,
        options=inputs.options,
        progress=progress,
    )
    progress.close()
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [
        report.write_intervals_csv(out_dir / "intervals.csv"),
        report.write_plans_jsonl(out_dir / "plans.jsonl"),
    ]
    json_path = out_dir / "report.json"
    json_path.write_text(
        json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n",
        encoding="utf-8",
    )
    written.append(json_path)
    if not args.no_plot:
        try:
            from dynamo_planner.sim.plot import plot_replay

            written.append(plot_replay(report, out_dir / "replay.png"))
        except ImportError as exc:
            print(f"dynamo-planner replay: plot skipped: {exc}", file=sys.stderr)
    where = "wrote " + ", ".join(str(p) for p in written)
    if args.format == "json":
        print(json.dumps(report.to_dict(), allow_nan=False))
        print(where, file=sys.stderr)
    else:
        print(report.format_text())
        print()
        print(where)
    return 0
