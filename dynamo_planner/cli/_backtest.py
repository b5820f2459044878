r"""``dynamo-planner backtest``: how well each load predictor forecasts a trace.

The trace (mooncake JSONL, the Azure CSV, or a ServeGen folder) is cut into intervals of
``--interval`` seconds (the last, partly covered interval dropped). Each predictor then
forecasts every interval from the ones before it, starting at the 6th, for the request
count, mean ISL and mean OSL. The scores are sMAPE, mean absolute error, the share of
under-forecasts and the cost of one observe + predict step. ``constant`` (the last value)
is always run too, as the baseline.

Example::

    dynamo-planner backtest --trace data/traces/mooncake/conversation_trace.jsonl \\
        --interval 60 --predictors auto,arima,kalman
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

__all__ = ["add_parser", "run"]

_KEYS = ("num_req", "isl", "osl")


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        msg = f"expected a number > 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        msg = f"expected a comma-separated list of names, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return names


def add_parser(subparsers: Any) -> None:
    """Register the ``backtest`` subcommand."""
    parser = subparsers.add_parser(
        "backtest",
        help="score load predictors one interval ahead on a trace",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--trace",
        required=True,
        help="mooncake JSONL (.gz), Azure CSV or ServeGen folder",
    )
    parser.add_argument(
        "--interval", type=_positive, required=True, help="seconds per interval"
    )
    parser.add_argument(
        "--predictors",
        type=_names,
        default=["auto", "arima", "kalman"],
        help="comma-separated predictor names (entry points); default auto,arima,kalman",
    )
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="output format"
    )
    parser.add_argument(
        "--plot", metavar="FILE", help="draw forecasts against actuals (PNG, SVG, ...)"
    )
    parser.add_argument(
        "--series",
        type=_names,
        default=list(_KEYS),
        help="series to replay: any of num_req,isl,osl (default all)",
    )
    parser.add_argument(
        "--trace-format",
        choices=("mooncake", "azure", "servegen"),
        help="trace layout (detected from the name and content by default)",
    )
    parser.add_argument(
        "--start-index",
        type=int,
        default=5,
        help="first interval scored, 0-based (default 5: after five intervals)",
    )
    parser.add_argument(
        "--log1p",
        action="store_true",
        help="pass --load-predictor-log1p to the predictors",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.set_defaults(func=run)


class _Progress:
    """Progress on stderr, at most every two seconds per line."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, predictor: str, key: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 2.0:
            return
        self._last = now
        end = "\n" if done >= total else "\r"
        print(
            f"  {predictor:>10} {key:<7} {done}/{total} intervals",
            end=end,
            file=sys.stderr,
        )


def run(args: argparse.Namespace) -> int:
    """Run the backtest and print the scores."""
    from dynamo_planner.backtest import backtest, plot_backtest
    from dynamo_planner.config import PlannerConfig
    from dynamo_planner.traces import load_intervals

    bad = [k for k in args.series if k not in _KEYS]
    if bad:
        print(
            f"dynamo-planner backtest: error: unknown series {', '.join(bad)}",
            file=sys.stderr,
        )
        return 2
    if args.start_index < 0:
        print(
            "dynamo-planner backtest: error: --start-index must be >= 0",
            file=sys.stderr,
        )
        return 2
    series = load_intervals(args.trace, args.interval, format=args.trace_format)
    names = list(dict.fromkeys(["constant", *args.predictors]))
    config = PlannerConfig(
        adjustment_interval_s=args.interval, load_predictor_log1p=args.log1p
    )
    if not args.quiet:
        print(
            f"{series.source}: {len(series)} intervals of {args.interval:g} s; "
            f"predictors {', '.join(names)}",
            file=sys.stderr,
        )
    result = backtest(
        series,
        names,
        config=config,
        start_index=args.start_index,
        keys=args.series,
        progress=None if args.quiet else _Progress(),
    )
    if args.plot:
        try:
            plot_backtest(result, args.plot)
        except ImportError as exc:
            print(f"dynamo-planner backtest: error: {exc}", file=sys.stderr)
            return 2
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(
        f"{series.source}: {len(series)} intervals of {args.interval:g} s, "
        f"scored from interval #{args.start_index + 1}"
    )
    for key in args.series:
        print(f"\n{key}")
        print(result.table(key))
    return 0
