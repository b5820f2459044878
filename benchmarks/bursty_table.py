"""The ``sla`` scaler on bursty traffic: the SLA page's "Bursty traffic" table.

Run: ``python benchmarks/bursty_table.py`` (about 20 seconds with the default two
processes). It replays the first hour of ServeGen's ``m-large`` language workload at a fifth
of its rate (about 40 requests/s, Azure conversation request lengths, seed 1) with the
``sla`` scaler and the constant predictor, targets TTFT 500 ms / ITL 20 ms, counting the
requests that arrive after the first 10 minutes, at every combination of adjustment interval
(60, 180 s) and cold start (60, 180 s), beside the best static deployment. Every row is the
replay of the ``dynamo-planner replay`` command line the script prints: it parses that
command line with the replay command's own parser and replays what the command would
(``dynamo_planner.cli._replay.prepare``).

It prints the markdown table the page shows (attainment, the shares meeting TTFT and ITL,
GPU-hours) and, per setting, the minutes whose attainment fell below 99%, from the
per-interval rows the command writes to ``intervals.csv``.
"""

from __future__ import annotations

import argparse
import shlex
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import attrs

from dynamo_planner.cli._replay import parse, prepare
from dynamo_planner.sim.replay import replay

COMMAND = (
    "--trace data/traces/servegen/language/m-large --servegen-rate-factor 0.2 --seed 1 "
    "--scaler sla --load-predictor constant --ttft 500 --itl 20 --max-gpu-budget -1 "
    "--warmup-s 600"
)
SETTINGS = ((60.0, 60.0), (60.0, 180.0), (180.0, 60.0), (180.0, 180.0))
TARGET = 0.99


def command(interval_s: float, cold_start_s: float) -> str:
    """The ``dynamo-planner replay`` arguments of one setting."""
    return (
        f"{COMMAND} --adjustment-interval {interval_s:g} --cold-start-s "
        f"{cold_start_s:g} --baselines best_static"
    )


def run(setting: tuple[float, float]) -> dict[str, Any]:
    """Replay one setting; the figures of its planner and best static runs."""
    interval_s, cold_start_s = setting
    inputs = prepare(parse(shlex.split(command(interval_s, cold_start_s))))
    report = replay(inputs.trace, inputs.profile, inputs.config, options=inputs.options)
    assert report.planner is not None
    assert report.best_static is not None
    planner = report.planner.summary
    static = report.best_static.summary
    short = [
        (row.start_s, row.attainment)
        for row in report.planner.intervals
        if row.start_s >= inputs.options.warmup_s
        and row.num_req > 0
        and row.attainment < TARGET
    ]
    return {
        "setting": setting,
        "planner": attrs.asdict(planner),
        "static": attrs.asdict(static),
        "static_size": f"{report.best_static.prefill}P+{report.best_static.decode}D",
        "short": short,
    }


def main() -> int:
    """Replay every setting and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    for interval_s, cold_start_s in SETTINGS:
        print(f"dynamo-planner replay {command(interval_s, cold_start_s)}")
    with ProcessPoolExecutor(max(1, args.processes)) as pool:
        results = list(pool.map(run, SETTINGS))
    print()
    print(
        "| interval / cold start | `sla` attainment | TTFT ok | ITL ok | GPU-h "
        "| best static |"
    )
    print("|---|---|---|---|---|---|")
    for result in results:
        interval_s, cold_start_s = result["setting"]
        p, s = result["planner"], result["static"]
        print(
            f"| {interval_s:g} / {cold_start_s:g} s | {p['attainment']:.1%} "
            f"| {p['attainment_ttft']:.1%} | {p['attainment_itl']:.1%} "
            f"| {p['gpu_hours']:.2f} | {result['static_size']}: "
            f"{s['attainment']:.1%} at {s['gpu_hours']:.2f} |"
        )
    print()
    for result in results:
        interval_s, cold_start_s = result["setting"]
        minutes = ", ".join(f"{t:,.0f} s: {a:.1%}" for t, a in result["short"])
        print(
            f"{interval_s:g} / {cold_start_s:g} s, intervals below "
            f"{TARGET:.0%}: {minutes or 'none'}"
        )
    print(f"\nwall {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
