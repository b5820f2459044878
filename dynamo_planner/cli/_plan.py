"""``dynamo-planner plan``: the replicas the reference planner runs for one interval's load.

The load is given as the reference planner's predictors would give it: requests in the
next adjustment interval, mean ISL and OSL. Correction factors can be set by hand. The
reference scaler sizes prefill and decode (spec §1.5), then the GPU budget applies (§1.6,
with this library's fix: it never grows a component). Flags and defaults are the reference
planner's (spec §8): ``--max-gpu-budget 8``, ``--ttft 500``, ``--itl 50``,
``--adjustment-interval 180``.

GPUs per engine default to the profile's parallel config when it names one (a pre-swept
profile's ``TP4`` row means 4 GPUs per engine), otherwise to 1.

Unlike the library's configuration, whose default scaler is ``sla``, this command's
default is ``--scaler reference``, so that its numbers are the reference formulas';
``--scaler sla`` (or any scaler plugin) sizes the same load with that scaler instead.
"""

from __future__ import annotations

import argparse
import json
import math
from typing import TYPE_CHECKING, Any

from dynamo_planner.cli._profile import add_profile_argument

if TYPE_CHECKING:
    from dynamo_planner.values import PerfProfile, ReplicaPlan

__all__ = ["add_parser", "run"]

_CONFIG_FIELDS = (
    "mode",
    "adjustment_interval_s",
    "max_gpu_budget",
    "min_endpoint",
    "prefill_engine_num_gpu",
    "decode_engine_num_gpu",
    "select",
    "ttft_ms",
    "itl_ms",
    "interpolator",
)


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value >= 0):
        msg = f"expected a number >= 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value):
        msg = f"expected a finite number, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def add_parser(subparsers: Any) -> None:
    """Register the ``plan`` subcommand."""
    from dynamo_planner.config import PlannerConfig

    parser = subparsers.add_parser(
        "plan",
        help="replica plan for one interval's load (reference scaler by default + "
        "GPU budget)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_profile_argument(parser)
    load = parser.add_argument_group("Load of the next interval")
    load.add_argument(
        "--num-req",
        type=_non_negative,
        required=True,
        help="requests in the adjustment interval",
    )
    load.add_argument(
        "--isl", type=_non_negative, required=True, help="mean input length (tokens)"
    )
    load.add_argument(
        "--osl", type=_non_negative, required=True, help="mean output length (tokens)"
    )
    load.add_argument(
        "--p-correction",
        type=_finite,
        default=1.0,
        help="prefill correction factor, observed/expected TTFT (default: 1)",
    )
    load.add_argument(
        "--d-correction",
        type=_finite,
        default=1.0,
        help="decode correction factor, observed/expected ITL (default: 1)",
    )
    parser.add_argument(
        "--scaler",
        default="reference",
        metavar="NAME",
        help="scaler plugin (entry-point group dynamo_planner.scalers); this command's "
        "default is 'reference', the reference formulas (the library's default is "
        "'sla')",
    )
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format"
    )
    PlannerConfig.add_arguments(parser, fields=_CONFIG_FIELDS)
    parser.set_defaults(func=run)


def _engine_gpus(
    flag: int | None, profile: PerfProfile, component: str
) -> tuple[int, str]:
    """GPUs per engine: the flag, else the profile's parallel config, else 1."""
    if flag is not None:
        return flag, "flag"
    from_profile = profile.metadata.get(f"{component}_engine_num_gpu")
    if isinstance(from_profile, int) and from_profile > 0:
        return (
            from_profile,
            f"profile config {profile.metadata.get('config', '')}".strip(),
        )
    return 1, "default"


def run(args: argparse.Namespace) -> int:
    """Plan and print; returns the exit status."""
    import attrs

    from dynamo_planner.config import PlannerConfig
    from dynamo_planner.plugins import default_registry
    from dynamo_planner.profiles import load_profile
    from dynamo_planner.protocols import ScalingRequest
    from dynamo_planner.scalers.budget import apply_budget
    from dynamo_planner.values import Corrections, Demand, ReplicaState

    config = PlannerConfig.from_args(args)
    profile = load_profile(args.profile, select=config.select)
    interpolator = (
        default_registry()
        .load("dynamo_planner.interpolators", config.interpolator_name)
        .from_profile(profile)
    )
    prefill_gpus, prefill_from = _engine_gpus(
        config.prefill_engine_num_gpu, profile, "prefill"
    )
    decode_gpus, decode_from = _engine_gpus(
        config.decode_engine_num_gpu, profile, "decode"
    )
    config = attrs.evolve(
        config, prefill_engine_num_gpu=prefill_gpus, decode_engine_num_gpu=decode_gpus
    )
    scaler_cls = default_registry().load("dynamo_planner.scalers", config.scaler)
    scaler = scaler_cls.from_config(config, interpolator=interpolator)
    request = ScalingRequest(
        demand=Demand.of(
            num_req=args.num_req,
            isl_tokens=args.isl,
            osl_tokens=args.osl,
            interval_s=config.adjustment_interval_s,
        ),
        current=ReplicaState(),
        corrections=Corrections(prefill=args.p_correction, decode=args.d_correction),
    )
    plan = apply_budget(
        scaler.decide(request),
        current=ReplicaState(),
        mode=config.mode,
        prefill_gpus_per_engine=prefill_gpus,
        decode_gpus_per_engine=decode_gpus,
        budget_gpus=config.max_gpu_budget,
        min_endpoint=config.min_endpoint,
    )
    gpus = {
        "prefill_per_engine": prefill_gpus,
        "prefill_per_engine_from": prefill_from,
        "decode_per_engine": decode_gpus,
        "decode_per_engine_from": decode_from,
        "total": (plan.prefill or 0) * prefill_gpus + (plan.decode or 0) * decode_gpus,
        "budget": config.max_gpu_budget,
    }
    if args.format == "json":
        output = plan.to_dict()
        output["gpus"] = gpus
        output["profile"] = profile.source
        output["mode"] = config.mode
        print(json.dumps(output, indent=2, sort_keys=False))
    else:
        print(_text(plan, gpus, profile))
    return 0


def _cell(value: int | None) -> str:
    return "-" if value is None else str(value)


def _row(
    name: str, replicas: int | None, unclamped: int | None, per_engine: int
) -> str:
    return f"{name:<10} {_cell(replicas):>8} {_cell(unclamped):>14} {per_engine:>12}"


def _text(plan: ReplicaPlan, gpus: dict[str, Any], profile: PerfProfile) -> str:
    lines = [
        f"profile: {profile.source}",
        "",
        f"{'':<10} {'replicas':>8} {'before budget':>14} {'GPUs/engine':>12}",
        _row(
            "prefill", plan.prefill, plan.unclamped_prefill, gpus["prefill_per_engine"]
        ),
        _row("decode", plan.decode, plan.unclamped_decode, gpus["decode_per_engine"]),
        f"total GPUs: {gpus['total']} (budget {gpus['budget']})",
        "",
        "why:",
    ]
    lines.extend(f"  {i}. {reason}" for i, reason in enumerate(plan.reasons, 1))
    return "\n".join(lines)
