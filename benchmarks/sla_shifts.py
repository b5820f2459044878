"""The ``sla`` scaler across load-x10 superpositions: the SLA page's "Short of saturation" table.

Run: ``python benchmarks/sla_shifts.py`` (about 2 minutes with the default two processes).
``benchmarks/sla_table.py`` builds load x10 from copies of the Azure 2023 conversation
trace shifted 60 s apart. How far apart the copies are is a choice: copies closer
together stack their bursts, copies further apart smooth them. This replays the ``sla``
scaler (constant predictor, targets TTFT 500 ms / ITL 20 ms, counting the requests that
arrive after the first 10 minutes, starting from the best static 3P+2D at x10, 6P+4D at
x20) at copy shifts of 20 to 240 s, at every combination of interval and cold start (60,
180 s), twice: as configured by default, and with ``--sla-prefill-max-wait 1`` (no limit
on the share of requests the prefill queue model may have wait). Every row is the
replay of the ``dynamo-planner replay`` command line the script prints, parsed with the
replay command's own parser.

It prints the markdown table the page shows: per setting, attainment and GPU-hours with
and without the limit, and the GPU-hours of the default over those without the limit.
"""

from __future__ import annotations

import argparse
import shlex
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from dynamo_planner.cli._replay import parse, prepare
from dynamo_planner.sim.replay import replay

COMMAND = (
    "--scaler sla --load-predictor constant --ttft 500 --itl 20 --max-gpu-budget -1 "
    "--warmup-s 600 --baselines none"
)
SHIFTS_S = (20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 240.0)
TIMINGS_S = ((60.0, 60.0), (60.0, 180.0), (180.0, 60.0), (180.0, 180.0))
START = {10: (3, 2), 20: (6, 4)}
"""The best static deployment at each load (``benchmarks/sla_table.py`` at x10)."""
UNLIMITED = "--sla-prefill-max-wait 1"


def settings() -> list[tuple[int, float, float, float]]:
    """(load, shift, interval, cold start) of every row."""
    rows = [(10, s, w, c) for s in SHIFTS_S for w, c in TIMINGS_S]
    rows += [(20, 60.0, w, c) for w, c in TIMINGS_S]
    return rows


def command(setting: tuple[int, float, float, float], extra: str = "") -> str:
    """The ``dynamo-planner replay`` arguments of one row."""
    load, shift_s, interval_s, cold_start_s = setting
    prefill, decode = START[load]
    return (
        f"{COMMAND} --load-scale {load} --load-shift-s {shift_s:g} "
        f"--adjustment-interval {interval_s:g} --cold-start-s {cold_start_s:g} "
        f"--start-num-p {prefill} --start-num-d {decode} {extra}"
    ).strip()


def run(job: tuple[tuple[int, float, float, float], str]) -> dict[str, Any]:
    """Replay one command line; its attainment and GPU-hours."""
    setting, extra = job
    inputs = prepare(parse(shlex.split(command(setting, extra))))
    report = replay(inputs.trace, inputs.profile, inputs.config, options=inputs.options)
    assert report.planner is not None
    summary = report.planner.summary
    return {"attainment": summary.attainment, "gpu_hours": summary.gpu_hours}


def main() -> int:
    """Replay every row twice and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    rows = settings()
    print(f"dynamo-planner replay {command(rows[0])}")
    print(
        f"  (and the same with {UNLIMITED}; every row changes load, shift and timing)"
    )
    jobs = [(row, extra) for row in rows for extra in ("", UNLIMITED)]
    with ProcessPoolExecutor(max(1, args.processes)) as pool:
        results = list(pool.map(run, jobs))
    print()
    print(
        "| load | copies apart | interval / cold start | attainment | GPU-h "
        "| without the limit: attainment | GPU-h | GPU-h ratio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for i, (load, shift_s, interval_s, cold_start_s) in enumerate(rows):
        limited, unlimited = results[2 * i], results[2 * i + 1]
        print(
            f"| x{load} | {shift_s:g} s | {interval_s:g} / {cold_start_s:g} s "
            f"| {limited['attainment']:.2%} | {limited['gpu_hours']:.2f} "
            f"| {unlimited['attainment']:.2%} | {unlimited['gpu_hours']:.2f} "
            f"| {limited['gpu_hours'] / unlimited['gpu_hours']:.3f} |"
        )
    print(f"\nwall {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
