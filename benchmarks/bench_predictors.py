"""Cost of one observe + predict step at a short and a long history, for every predictor.

Each predictor is warmed (observe only) on the first 200 and, separately, the first 5,000
values of a real series, then both copies take the same number of timed observe + predict
steps, interleaved so that machine load hits both alike. The series is the ServeGen
m-large aggregate request count per 600 s window (2,016 windows, 14 days), repeated to
reach 5,000 + the timed steps.

Printed per predictor: median and p99 step cost at 200 and at 5,000 values of history, and
the p99 ratio (long / short), which should stay within 2x. ARIMA's p99 should stay under
50 ms. As a baseline, the reference planner's ARIMA policy (order chosen once by
pmdarima's auto_arima, then pmdarima's incremental update on the whole history) is timed
the same way (at 2,000 values instead of 5,000, as it is slow to set up).

Run: ``python benchmarks/bench_predictors.py [--steps 300] [--prophet-steps 60]``.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dynamo_planner.config import PlannerConfig
from dynamo_planner.plugins import default_registry
from dynamo_planner.traces import load_intervals

REPO = Path(__file__).resolve().parent.parent
SERVEGEN = REPO / "data" / "traces" / "servegen" / "language" / "m-large"
SHORT, LONG = 200, 5000


class ReferenceARIMA:
    """The reference's policy: auto_arima once on the first values, then update forever."""

    def __init__(self) -> None:
        self.model: Any = None
        self.pending: list[float] = []
        self.forecast = 0.0

    def warm(self, history: np.ndarray) -> None:
        import pmdarima as pm

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            order = pm.auto_arima(
                history[:5], suppress_warnings=True, error_action="ignore"
            ).order
            self.model = pm.ARIMA(order=order, suppress_warnings=True).fit(history)

    def observe(self, value: float) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model.update([value])

    def predict(self) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(np.asarray(self.model.predict(1))[0])


def _series(length: int) -> np.ndarray:
    base = load_intervals(SERVEGEN, 600).num_req
    reps = -(-length // base.size)
    return np.tile(base, reps)[:length]


def _timed_pair(
    make: Callable[[], Any],
    values: np.ndarray,
    steps: int,
    warm: Callable[[Any, np.ndarray], None],
    long_history: int = LONG,
) -> tuple[np.ndarray, np.ndarray]:
    short, long_ = make(), make()
    warm(short, values[:SHORT])
    warm(long_, values[:long_history])
    cost_short, cost_long = [], []
    for i in range(steps):
        pairs = ((short, SHORT, cost_short), (long_, long_history, cost_long))
        for predictor, start, out in pairs:
            began = time.perf_counter()
            predictor.observe(float(values[start + i]))
            predictor.predict()
            out.append(time.perf_counter() - began)
    return np.asarray(cost_short) * 1000, np.asarray(cost_long) * 1000


def _observe_all(predictor: Any, values: np.ndarray) -> None:
    for value in values:
        predictor.observe(float(value))
    predictor.predict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--steps", type=int, default=300, help="timed steps per history"
    )
    parser.add_argument(
        "--prophet-steps", type=int, default=60, help="timed steps for prophet"
    )
    parser.add_argument(
        "--reference-steps", type=int, default=30, help="timed steps, reference"
    )
    parser.add_argument(
        "--skip-reference", action="store_true", help="skip the baseline"
    )
    args = parser.parse_args()

    values = _series(LONG + max(args.steps, args.prophet_steps) + 1)
    registry = default_registry()
    config = PlannerConfig(adjustment_interval_s=600)
    rows = []
    for name in registry.available("dynamo_planner.predictors"):
        cls = registry.load("dynamo_planner.predictors", name)
        steps = args.prophet_steps if name == "prophet" else args.steps
        _observe_all(
            cls.from_config(config), values[:20]
        )  # imports, outside the timing
        short, long_ = _timed_pair(
            lambda cls=cls: cls.from_config(config), values, steps, _observe_all
        )
        rows.append((name, steps, short, long_))
        print(f"  measured {name} ({steps} steps)", flush=True)

    print(
        f"\nobserve+predict step cost, ms (ServeGen m-large request counts; "
        f"history {SHORT} vs {LONG})"
    )
    header = f"{'predictor':<18}{'steps':>6}{'p50@200':>10}{'p99@200':>10}{'p50@5000':>10}{'p99@5000':>10}{'p99 ratio':>11}"
    print(header)
    print("-" * len(header))
    failures = []
    for name, steps, short, long_ in rows:
        p99_short, p99_long = np.percentile(short, 99), np.percentile(long_, 99)
        ratio = p99_long / p99_short
        print(
            f"{name:<18}{steps:>6}{np.median(short):>10.3f}{p99_short:>10.3f}"
            f"{np.median(long_):>10.3f}{p99_long:>10.3f}{ratio:>10.2f}x"
        )
        if ratio > 2:
            failures.append(f"{name}: p99 ratio {ratio:.2f}x > 2x")
        if name == "arima" and max(p99_short, p99_long) >= 50:
            failures.append(f"arima: p99 {max(p99_short, p99_long):.1f} ms >= 50 ms")

    if not args.skip_reference:

        def warm_reference(predictor: ReferenceARIMA, history: np.ndarray) -> None:
            predictor.warm(history)

        short, long_ = _timed_pair(
            ReferenceARIMA,
            values,
            args.reference_steps,
            warm_reference,
            long_history=2000,
        )
        p99_short, p99_long = np.percentile(short, 99), np.percentile(long_, 99)
        print(
            f"{'reference arima':<18}{args.reference_steps:>6}{np.median(short):>10.3f}"
            f"{p99_short:>10.3f}{np.median(long_):>10.3f}{p99_long:>10.3f}"
            f"{p99_long / p99_short:>10.2f}x   (long history = 2000)"
        )

    print()
    if failures:
        print("NOT MET: " + "; ".join(failures))
    else:
        print("met: every p99 ratio within 2x; ARIMA p99 under 50 ms")


if __name__ == "__main__":
    main()
