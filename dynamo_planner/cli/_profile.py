"""``dynamo-planner profile``: what a performance profile says about an SLA.

It prints, for one ISL/OSL and the TTFT/ITL targets: the single-request TTFT and prefill
throughput per GPU at that ISL, the request rate one prefill GPU saturates at, the best decode
throughput per GPU that meets the ITL target at context ISL + OSL/2 (with its ITL and KV
usage), the KV capacity, and whether the SLA is feasible at all (the same check as Dynamo's
``perf_interpolation`` module).
"""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dynamo_planner.interpolators.reference import ReferenceInterpolator
    from dynamo_planner.values import PerfProfile

__all__ = [
    "add_parser",
    "add_profile_argument",
    "open_profile",
    "positive_float",
    "run",
]

_CONFIG_FIELDS = ("select", "ttft_ms", "itl_ms")


def add_profile_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--profile PATH`` (alias ``--profile-results-dir``)."""
    parser.add_argument(
        "--profile",
        "--profile-results-dir",
        dest="profile",
        metavar="PATH",
        required=True,
        help="profiling-results directory (selected_*_interpolation/raw_data.npz or "
        "the JSON fallback) or pre-swept directory (prefill.npz, decode.npz)",
    )


def positive_float(text: str) -> float:
    """An argparse type: a finite number above zero."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        msg = f"expected a positive number, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def add_parser(subparsers: Any) -> None:
    """Register the ``profile`` subcommand."""
    from dynamo_planner.config import PlannerConfig

    parser = subparsers.add_parser(
        "profile",
        help="show what a performance profile says about an SLA",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_profile_argument(parser)
    parser.add_argument(
        "--isl", type=positive_float, default=3000.0, help="mean input length (tokens)"
    )
    parser.add_argument(
        "--osl", type=positive_float, default=150.0, help="mean output length (tokens)"
    )
    PlannerConfig.add_arguments(parser, fields=_CONFIG_FIELDS)
    parser.set_defaults(func=run)


def open_profile(
    path: str, select: str | None
) -> tuple[PerfProfile, ReferenceInterpolator]:
    """Load a profile and build the reference interpolator on it."""
    from dynamo_planner.interpolators.reference import ReferenceInterpolator
    from dynamo_planner.profiles import load_profile

    profile = load_profile(path, select=select)
    return profile, ReferenceInterpolator.from_profile(profile)


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def run(args: argparse.Namespace) -> int:
    """Print the profile summary; returns the exit status."""
    from dynamo_planner.config import PlannerConfig

    config = PlannerConfig.from_args(args)
    profile, interp = open_profile(args.profile, config.select)
    isl, osl = args.isl, args.osl
    context = isl + osl / 2
    ttft = interp.prefill_ttft_ms(isl)
    prefill_thpt = interp.prefill_throughput_per_gpu(isl)
    point = interp.best_decode_point(config.itl_ms, context)
    ttft_ok = ttft <= config.ttft_ms
    itl_ok = point.itl_ms <= config.itl_ms
    miss = "" if itl_ok else "; no load meets it, this is the zero-load point"
    prefill_isl = profile.prefill.isl_tokens
    config_label = profile.metadata.get("config")
    rows = [
        ("profile", f"{profile.source} ({profile.metadata.get('layout', '?')})"),
        *([("parallel config", str(config_label))] if config_label else []),
        ("profiled ISL", f"{prefill_isl.min():g} .. {prefill_isl.max():g} tokens"),
        ("max KV tokens per decode engine", f"{interp.max_kv_tokens():,}"),
        ("ISL / OSL", f"{isl:g} / {osl:g} tokens"),
        (
            "TTFT at the ISL (one request)",
            f"{ttft:.2f} ms (target {config.ttft_ms:g} ms)",
        ),
        ("prefill throughput", f"{prefill_thpt:,.0f} tokens/s per GPU"),
        ("request rate saturating one prefill GPU", f"{prefill_thpt / isl:,.2f} req/s"),
        ("decode context (ISL + OSL/2)", f"{context:g} tokens"),
        ("best decode throughput", f"{point.throughput_per_gpu:,.0f} tokens/s per GPU"),
        ("  at ITL", f"{point.itl_ms:.2f} ms (target {config.itl_ms:g} ms){miss}"),
        ("  at KV usage", f"{point.kv_usage:.3f}"),
        (
            "request rate saturating one decode GPU",
            f"{point.throughput_per_gpu / osl:,.2f} req/s",
        ),
        ("TTFT target feasible", _yes(ttft_ok)),
        ("ITL target feasible", _yes(itl_ok)),
        ("SLA feasible", _yes(ttft_ok and itl_ok)),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0
