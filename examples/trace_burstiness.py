"""Measure a trace's burstiness, to configure ``sla_arrival_cv2`` where it cannot be read live.

Run: ``python examples/trace_burstiness.py [TRACE ...]`` (the bundled Azure conversation
trace by default; a mooncake JSONL, an Azure CSV or a ServeGen per-client folder). Live,
the ``sla`` scaler reads the arrivals' index of dispersion from the frontend's request
counter, but only when Prometheus scrapes it at least every two seconds. Where it is
scraped more rarely, the scaler assumes ``sla_arrival_cv2`` (1, Poisson, by default). A
past trace of the same traffic tells what to set: this counts each adjustment interval's
arrivals as a counter scraped every second would show them and applies the live estimator
(:func:`dynamo_planner.sources.dispersion.interval_dispersion`). Prints, per trace, the
median index over the intervals (the value to configure) and its 5th to 95th percentiles.

Options: ``--interval-s`` (60), ``--spread-ties-s`` (0; 3 for the mooncake conversation
trace, whose timestamps come in ~3 s buckets that would read as bursts), and
``--servegen-rate-factor`` (0.2) with ``--seed`` (1) for ServeGen folders, whose arrivals
are drawn from their per-client rates.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from dynamo_planner.data import AZURE_CONV_TRACE
from dynamo_planner.sim.workload import spread_ties, synthesize_servegen
from dynamo_planner.sources.dispersion import interval_dispersion
from dynamo_planner.traces import (
    RequestTrace,
    detect_format,
    load_requests,
    load_servegen,
)


def load(path: Path, args: argparse.Namespace) -> RequestTrace:
    """The trace's requests; a ServeGen folder's are drawn from its rates."""
    if detect_format(path) == "servegen":
        return synthesize_servegen(
            load_servegen(path),
            duration_s=3600.0,
            rate_factor=args.servegen_rate_factor,
            lengths=load_requests(AZURE_CONV_TRACE),
            seed=args.seed,
        )
    trace = load_requests(path)
    if args.spread_ties_s > 0:
        trace = spread_ties(trace, args.spread_ties_s, seed=args.seed)
    return trace


def burstiness(trace: RequestTrace, interval_s: float) -> dict[str, float]:
    """The median and the 5th and 95th percentiles of the intervals' indices."""
    indices = interval_dispersion(trace.arrival_s, interval_s)
    known = indices[np.isfinite(indices)]
    if known.size == 0:
        return {"intervals": 0.0, "median": math.nan, "p5": math.nan, "p95": math.nan}
    p5, median, p95 = np.percentile(known, [5, 50, 95])
    return {
        "intervals": float(known.size),
        "median": float(median),
        "p5": float(p5),
        "p95": float(p95),
    }


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Print each trace's burstiness; return it by trace."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("traces", nargs="*", type=Path, default=[AZURE_CONV_TRACE])
    parser.add_argument("--interval-s", type=float, default=60.0)
    parser.add_argument("--spread-ties-s", type=float, default=0.0)
    parser.add_argument("--servegen-rate-factor", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    found = {}
    for path in args.traces:
        found[path.name] = seen = burstiness(load(path, args), args.interval_s)
        print(
            f"{path.name}: index of dispersion over {seen['intervals']:.0f} intervals of "
            f"{args.interval_s:g} s, median {seen['median']:.2f} (5-95%: "
            f"{seen['p5']:.2f}-{seen['p95']:.2f}); sla_arrival_cv2 = {seen['median']:.2f}"
        )
    return found


if __name__ == "__main__":
    main()
