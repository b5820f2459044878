"""The ``dynamo-planner`` command line.

Each subcommand lives in its own module ``dynamo_planner.cli._<name>`` exposing
``add_parser(subparsers)``; the module must be cheap to import (heavy work happens when the
command runs).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from dynamo_planner.exceptions import PlannerError

__all__ = ["main"]

# Order is the order shown by --help.
_SUBCOMMANDS = ("profile", "plan", "run", "replay", "backtest")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="dynamo-planner",
        description="Plan GPU workers for disaggregated LLM serving.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in _SUBCOMMANDS:
        module = importlib.import_module(f"dynamo_planner.cli._{name}")
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        status: int = args.func(args)
    except PlannerError as exc:
        print(f"dynamo-planner {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status
