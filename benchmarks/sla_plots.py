"""The figures of docs/concepts/sla-scaler.md, and the numbers quoted beside them.

Run: ``python benchmarks/sla_plots.py`` (about a minute; needs matplotlib). It writes four
PNGs to ``docs/_static/`` and prints the figures the page quotes:

1. ``sla_decode_consistency.png``: at context 1,260 tokens, ITL and throughput against
   concurrency for the reference's two decode surfaces, the fitted model and the measured
   profile points around it; the reference's throughput surface against its own
   batch / ITL at ITL 20 ms.
2. ``sla_prefill_fit.png``: TTFT against ISL: profile points, the fitted model (tangent
   beyond the profile), the reference (clamped) and the simulator (linear beyond).
3. ``sla_queueing.png``: prefill attainment within 500 ms against the request rate on two
   workers: the queueing model against a discrete-event simulation of the same queue.
4. ``sla_replay_azure.png``: Azure conversation x10 (copies 60 s apart), 60 s interval
   and cold start, both planners starting from the best static 3P+2D: request rate and
   replicas of the reference and SLA scalers, and each interval's attainment; and the
   reasons of one SLA plan.

Then the best static deployment of Azure conversation x10 with and without prefill
batching, how long the first cold start's prefill backlog lasts on Mooncake x10, the
decode spread, the arrivals' dispersion, and the queueing model against the simulator
near saturation.
"""

from __future__ import annotations

import heapq
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from dynamo_planner.config import PlannerConfig
from dynamo_planner.data import AZURE_CONV_TRACE, H200_PROFILE_DIR
from dynamo_planner.interpolators.fitted import FittedInterpolator, cross_validate
from dynamo_planner.interpolators.reference import ReferenceInterpolator
from dynamo_planner.profiles import load_profile
from dynamo_planner.scalers.queueing import PrefillMix, estimate_prefill
from dynamo_planner.sim import (
    EngineModel,
    ReplayOptions,
    SimConfig,
    best_static,
    load_scale,
    replay,
    spread_ties,
)
from dynamo_planner.traces import load_requests
from dynamo_planner.values import PerfProfile

OUT = Path(__file__).resolve().parent.parent / "docs" / "_static"
MOONCAKE = (
    Path(__file__).resolve().parent.parent
    / "data"
    / "traces"
    / "mooncake"
    / "conversation_trace.jsonl"
)
CONTEXT = 1260.0
Z_P99 = 2.326
ITL_TARGET = 20.0


def decode_figure(plt: Any, profile: PerfProfile) -> None:
    reference = ReferenceInterpolator.from_profile(profile)
    fitted = FittedInterpolator.from_profile(profile)
    model = EngineModel.from_profile(profile)
    n = np.arange(1, 301, dtype=np.float64)
    ref_itl = np.array([reference.decode_itl_ms(x, CONTEXT) for x in n])
    ref_thpt = np.array([reference.decode_throughput_per_gpu(x, CONTEXT) for x in n])
    fit_itl = np.array([fitted.decode_itl_ms(x, CONTEXT) for x in n])
    sim_itl = model.decode_step_ms_array(n, CONTEXT)
    point = reference.best_decode_point(ITL_TARGET, CONTEXT)
    batch = point.kv_usage * reference.max_kv_tokens() / CONTEXT
    ours = fitted.best_decode_point(ITL_TARGET, CONTEXT)
    ours_batch = ours.kv_usage * fitted.max_kv_tokens() / CONTEXT
    print(
        f"reference at context {CONTEXT:g}, ITL {ITL_TARGET:g} ms: throughput surface "
        f"{point.throughput_per_gpu:,.0f} tokens/s/GPU at batch {batch:.0f} "
        f"(its ITL {point.itl_ms:.2f} ms); batch / ITL = "
        f"{batch / point.itl_ms * 1000:,.0f} tokens/s/GPU"
    )
    print(
        f"fitted at the same point: batch {ours_batch:.0f}, ITL {ours.itl_ms:.2f} ms, "
        f"{ours.throughput_per_gpu:,.0f} tokens/s/GPU (= batch / ITL); simulator ITL at "
        f"that batch {model.decode_step_ms(ours_batch, CONTEXT):.2f} ms"
    )
    for batch_size in (58, 116):
        ratio = reference.decode_itl_ms(batch_size, CONTEXT) / model.decode_step_ms(
            batch_size, CONTEXT
        )
        print(
            f"reference ITL surface / simulator at {batch_size} requests, context "
            f"{CONTEXT:g}: {ratio:.2f}"
        )
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(n, ref_itl, label="reference ITL surface")
    left.plot(n, fit_itl, label="fitted: a + b n + c n ctx")
    left.plot(n, sim_itl, "--", label="simulator (measured points, linear)")
    dec = profile.decode
    for ctx, marker in ((350.0, "o"), (2997.0, "s")):
        mask = dec.context_length_tokens == ctx
        left.plot(
            dec.concurrency[mask],
            dec.itl_ms[mask],
            marker,
            label=f"measured, ctx {ctx:g}",
        )
    left.axhline(ITL_TARGET, color="grey", lw=0.8)
    left.set(
        xlim=(0, 300),
        ylim=(0, 50),
        xlabel="concurrent requests",
        ylabel="ITL (ms)",
        title=f"ITL at context {CONTEXT:g}",
    )
    left.legend(fontsize=7)
    right.plot(n, ref_thpt, label="reference throughput surface")
    right.plot(n, n / ref_itl * 1000, label="reference batch / its ITL")
    right.plot(n, n / fit_itl * 1000, label="fitted batch / ITL")
    right.plot([batch], [point.throughput_per_gpu], "k^")
    right.plot([batch], [batch / point.itl_ms * 1000], "kv")
    right.set(
        xlim=(0, 300),
        xlabel="concurrent requests",
        ylabel="output tokens/s per GPU",
        title="decode throughput",
    )
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "sla_decode_consistency.png", dpi=110)
    ours_cv = cross_validate(profile, model="fitted")
    ref_cv = cross_validate(
        profile, ReferenceInterpolator.from_profile, model="reference"
    )
    print(ours_cv.summary())
    print(ref_cv.summary())


def prefill_figure(plt: Any, profile: PerfProfile) -> None:
    reference = ReferenceInterpolator.from_profile(profile)
    fitted = FittedInterpolator.from_profile(profile)
    model = EngineModel.from_profile(profile)
    x = np.linspace(100, 32_000, 400)
    fig, ax = plt.subplots(figsize=(6, 4))
    pre = profile.prefill
    ax.plot(pre.isl_tokens, pre.ttft_ms, "o", label="measured")
    ax.plot(x, [fitted.prefill_ttft_ms(v) for v in x], label="fitted (tangent beyond)")
    ax.plot(x, [reference.prefill_ttft_ms(v) for v in x], label="reference (clamped)")
    ax.plot(x, model.prefill_ms_array(x), "--", label="simulator (linear beyond)")
    ax.axhline(500, color="grey", lw=0.8)
    ax.axvline(pre.isl_tokens.max(), color="grey", lw=0.5, ls=":")
    ax.set(
        xlabel="ISL (tokens)",
        ylabel="TTFT alone (ms)",
        ylim=(0, 900),
        title="prefill: one request alone",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "sla_prefill_fit.png", dpi=110)
    f = fitted.prefill
    print(
        f"prefill fit: TTFT = {f.overhead_ms:.1f} + {f.per_token_ms:.4f} x + "
        f"{f.per_token_squared_ms:.3g} x^2 ms; decode fit: ITL = "
        f"{fitted.decode.step_overhead_ms:.2f} + {fitted.decode.per_request_ms:.4f} n + "
        f"{fitted.decode.per_kv_token_ms:.3g} n ctx ms "
        f"({fitted.decode.points_excluded} saturated points left out)"
    )
    print(
        f"simulator past the largest profiled context "
        f"({model.decode_contexts_tokens[-1]:,.0f} tokens): each running request adds "
        f"{model.decode_kv_slope_ms:.2g} ms per step per extra context token"
    )
    mooncake = load_requests(MOONCAKE)
    isl = np.asarray(mooncake.isl_tokens)
    sim_ok = float(np.mean(model.prefill_ms_array(isl) <= 500))
    fit_ok = float(np.mean(f.overhead_ms + f.work_ms_array(isl) <= 500))
    print(
        f"Mooncake conversation: {sim_ok:.1%} of requests can meet TTFT 500 ms alone on "
        f"the simulator, {fit_ok:.1%} by the fitted model, 100% by the reference "
        f"(clamped at {reference.prefill_ttft_ms(1e9):.0f} ms)"
    )


def _des(
    arrivals: np.ndarray,
    isl: np.ndarray,
    work: np.ndarray,
    servers: int,
    overhead: float,
    budget: int,
) -> np.ndarray:
    ttft = np.empty(arrivals.size)
    free = [0.0] * servers
    waiting: deque[int] = deque()
    i = 0
    while i < arrivals.size or waiting:
        at = heapq.heappop(free)
        while i < arrivals.size and arrivals[i] <= at:
            waiting.append(i)
            i += 1
        if waiting:
            start = at
        else:
            waiting.append(i)
            start = arrivals[i]
            i += 1
        batch = [waiting.popleft()]
        tokens = isl[batch[0]]
        while waiting and tokens + isl[waiting[0]] <= budget:
            tokens += isl[waiting[0]]
            batch.append(waiting.popleft())
        end = start + overhead + float(work[batch].sum())
        ttft[batch] = end - arrivals[batch]
        heapq.heappush(free, end)
    return ttft


def queueing_figure(plt: Any, profile: PerfProfile) -> None:
    fit = FittedInterpolator.from_profile(profile).prefill
    rng = np.random.default_rng(1)
    n = 20_000
    isl = np.asarray(load_requests(AZURE_CONV_TRACE).isl_tokens)
    draw = rng.choice(isl, n)
    work = fit.work_ms_array(draw) / 1000
    overhead = fit.overhead_ms / 1000
    mix = PrefillMix(
        work_s=work[:2000],
        overhead_s=overhead,
        isl_tokens=draw[:2000],
        max_num_batched_tokens=8192,
    )
    rates = np.arange(30, 86, 5, dtype=np.float64)
    model_att, sim_att = [], []
    for rate in rates:
        arrivals = np.cumsum(rng.exponential(1 / rate, n))
        ttft = _des(arrivals, draw, work, 2, overhead, 8192)
        sim_att.append(float(np.mean(ttft <= 0.5)))
        model_att.append(
            estimate_prefill(
                mix, servers=2, arrival_rate_per_s=rate, ttft_s=0.5
            ).attainment
        )
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(rates, model_att, "-", label="queueing model (M/G/c, batching)")
    ax.plot(rates, sim_att, "o", label="discrete-event simulation")
    ax.axhline(0.99, color="grey", lw=0.8)
    ax.set(
        xlabel="requests/s on 2 prefill workers",
        ylabel="share with TTFT <= 500 ms",
        title="prefill attainment, Azure conversation ISL mix",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(OUT / "sla_queueing.png", dpi=110)
    gaps = np.abs(np.asarray(model_att) - np.asarray(sim_att))
    print(
        f"queueing model vs simulation, 2 workers, {rates[0]:g}-{rates[-1]:g} req/s: "
        f"largest attainment gap {gaps.max():.3f}"
    )


def replay_figure(plt: Any, profile: PerfProfile) -> None:
    trace = load_scale(load_requests(AZURE_CONV_TRACE), 10, shift_s=60.0)
    options = ReplayOptions(
        sim=SimConfig(cold_start_s=60.0, initial_prefill=3, initial_decode=2),
        warmup_s=600.0,
        baselines=(),
    )
    runs = {}
    for scaler in ("reference", "sla"):
        config = PlannerConfig(
            environment="virtual",
            scaler=scaler,
            interpolator="fitted" if scaler == "sla" else "reference",
            load_predictor="constant",
            ttft_ms=500.0,
            itl_ms=ITL_TARGET,
            adjustment_interval_s=60.0,
            cold_start_s=60.0,
            max_gpu_budget=-1,
        )
        report = replay(trace, profile, config, options=options)
        assert report.planner is not None
        runs[scaler] = report.planner
        s = report.planner.summary
        print(
            f"replay {scaler}: attainment {s.attainment:.4f}, {s.gpu_hours:.2f} GPU-h"
        )
    early = [f"{r.attainment:.1%}" for r in runs["sla"].intervals[:6]]
    print(f"sla attainment in minutes 0 to 5 (before the warm-up): {', '.join(early)}")
    for minute in (20, 45):
        when, plan = next((t, p) for t, p in runs["sla"].plans if t >= minute * 60)
        print(f"the sla plan at {when:.0f} s, its reasons:")
        for line in plan.reasons:
            print(f"  {line}")
    fig, axes = plt.subplots(4, 1, figsize=(8, 9), sharex=True)
    rows = runs["sla"].intervals
    t = [r.start_s / 60 for r in rows]
    axes[0].plot(t, [r.num_req / (r.end_s - r.start_s) for r in rows], color="k")
    axes[0].set(ylabel="requests/s")
    for scaler, style in (("reference", "--"), ("sla", "-")):
        rows = runs[scaler].intervals
        t = [r.start_s / 60 for r in rows]
        axes[1].step(
            t,
            [r.prefill_ready for r in rows],
            style,
            where="post",
            label=f"{scaler} prefill",
        )
        axes[1].step(
            t,
            [r.decode_ready for r in rows],
            style,
            where="post",
            label=f"{scaler} decode",
        )
        axes[2].plot(t, [r.attainment for r in rows], style, label=scaler)
    axes[1].set(ylabel="ready workers")
    axes[1].legend(fontsize=7, ncol=2)
    axes[2].set(ylabel="attainment", ylim=(-0.02, 1.02))
    axes[2].axvline(10, color="grey", lw=0.8)
    axes[2].legend(fontsize=7)
    plans = runs["sla"].plans
    axes[3].step(
        [t / 60 for t, _ in plans],
        [p.details["sized_attainment"][0] for _, p in plans],
        where="post",
        label="prefill sized for (attainment feedback)",
    )
    axes[3].axhline(0.99, color="grey", lw=0.8, ls=":")
    axes[3].set(ylabel="share sized for", xlabel="minutes", ylim=(0.88, 1.0))
    axes[3].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "sla_replay_azure.png", dpi=110)


def without_batching(profile: PerfProfile) -> None:
    """Best static deployments of Azure conversation x10 with and without batching."""
    model = EngineModel.from_profile(profile)
    trace = load_scale(load_requests(AZURE_CONV_TRACE), 10)
    for budget in (8192, 1):
        found = best_static(
            trace,
            model,
            SimConfig(max_num_batched_tokens=budget),
            ttft_ms=500.0,
            itl_ms=ITL_TARGET,
            warmup_s=600.0,
        )
        print(
            f"Azure conversation x10, max_num_batched_tokens={budget}: best static "
            f"{found.prefill}P+{found.decode}D"
        )


def backlog(profile: PerfProfile) -> None:
    """How long the first cold start's prefill backlog lasts on Mooncake x10.

    Starting from one worker of each kind (the replay default), copies 60 s apart.
    """
    trace = load_scale(spread_ties(load_requests(MOONCAKE), 3.0), 10, shift_s=60.0)
    config = PlannerConfig(
        environment="virtual",
        scaler="sla",
        interpolator="fitted",
        load_predictor="constant",
        ttft_ms=500.0,
        itl_ms=ITL_TARGET,
        adjustment_interval_s=60.0,
        cold_start_s=60.0,
        max_gpu_budget=-1,
    )
    options = ReplayOptions(
        sim=SimConfig(cold_start_s=60.0), warmup_s=600.0, baselines=()
    )
    run = replay(trace, profile, config, options=options).planner
    assert run is not None
    result = run.result
    waited = (result.prefill_start_s - result.arrival_s) > 60.0
    print(
        f"Mooncake conversation x10, sla 60 s / 60 s: {int(waited.sum()):,} requests "
        f"waited over 60 s for prefill, the last starting at "
        f"{float(result.prefill_start_s[waited].max()) / 60:.0f} min"
    )


def decode_spread(profile: PerfProfile) -> None:
    """Decode ITL p99 on Mooncake at its mean load: simulator against the model.

    At x10 on 7 and 8 workers, and at x1 on 1 and 2. The model's worker carries its own
    Poisson population (a single worker's spread amplified by ``1 / (1 - load)`` and its
    quantile taken in the skewed tail); beside it, an even split of the aggregate's
    fluctuation over several workers, or on one the spread without the amplification and
    the amplified one with a normal quantile.
    """
    from dynamo_planner.interpolators.fitted import FittedInterpolator
    from dynamo_planner.scalers.decode_model import DecodeLaw, skew_shift
    from dynamo_planner.sim import run_static

    law = DecodeLaw.from_interpolator(FittedInterpolator.from_profile(profile))
    model = EngineModel.from_profile(profile)
    for load, prefill, decode_counts in ((10, 16, (7, 8)), (1, 5, (1, 2))):
        trace = load_scale(
            spread_ties(load_requests(MOONCAKE), 3.0), load, shift_s=60.0
        )
        counted = np.asarray(trace.arrival_s) >= 600.0
        rate = float(counted.sum()) / (float(trace.arrival_s[-1]) - 600.0)
        size = min(1024, int(counted.sum()))
        pick = np.random.default_rng(0).choice(int(counted.sum()), size, replace=False)
        isl = np.asarray(trace.isl_tokens, dtype=float)[counted][pick]
        osl = np.asarray(trace.osl_tokens, dtype=float)[counted][pick]
        for workers in decode_counts:
            est = law.estimate(isl, osl, rate_per_s=rate, replicas=workers, z=Z_P99)
            spread = est.quantile_itl_ms - est.mean_itl_ms
            if workers == 1:
                # alone the quantile is taken in the skewed tail, and the spread is
                # amplified by 1 / (1 - load) = mean / a: undo both
                step = law.per_request_ms + law.per_kv_token_ms * (isl + osl / 2.0)
                second = float(np.mean(osl * step**2))
                third = float(np.mean(osl * step**3))
                amplified = est.mean_itl_ms / law.step_overhead_ms
                spread -= skew_shift(Z_P99, second, third) * amplified
                normal = est.mean_itl_ms + spread
                spread /= amplified
                seconds = rate * est.mean_itl_ms / 1000.0  # the population's size
                skew = third / second**1.5 / np.sqrt(seconds)
            even = est.mean_itl_ms + spread / np.sqrt(workers)
            other = "plain spread" if workers == 1 else "even split"
            if workers == 1:
                other += f"; {normal:.2f} ms amplified but normal, skew {skew:.2f}"
            run = run_static(
                trace,
                model,
                SimConfig(),
                prefill=prefill,
                decode=workers,
                ttft_ms=500.0,
                itl_ms=ITL_TARGET,
                warmup_s=600.0,
            )
            print(
                f"Mooncake x{load}, {workers} decode worker{'s' if workers != 1 else ''} at "
                f"{rate:.1f} requests/s: "
                f"simulator ITL p99 {run.itl_ms[2]:.2f} ms ({run.attainment_itl:.2%} "
                f"within {ITL_TARGET:g} ms); model p99 {est.quantile_itl_ms:.2f} ms "
                f"(one worker's population), {even:.2f} ms ({other})"
            )


def dispersion() -> None:
    """Index of dispersion of Azure x10 arrivals per second: per minute and per hour."""
    trace = load_scale(load_requests(AZURE_CONV_TRACE), 10, shift_s=60.0)
    arrivals = np.asarray(trace.arrival_s)
    seconds = np.bincount(np.floor(arrivals - arrivals[0]).astype(np.int64))
    minutes = seconds[: seconds.size // 60 * 60].reshape(-1, 60)
    per_minute = minutes.var(axis=1) / minutes.mean(axis=1)
    print(
        f"Azure x10 arrivals per second, index of dispersion: within each minute "
        f"{np.percentile(per_minute, 5):.2f} to {np.percentile(per_minute, 95):.2f} "
        f"(5th to 95th percentile); over the whole trace "
        f"{seconds.var() / seconds.mean():.2f}"
    )


def saturation(profile: PerfProfile) -> None:
    """The queueing model against the simulator as one or two prefill workers fill up.

    Poisson arrivals with the Azure conversation ISL mix, 15 minutes at each rate (the
    first 2 not counted), decode generously provisioned.
    """
    from dynamo_planner.scalers.sla import SLAScaler
    from dynamo_planner.sim import run_static
    from dynamo_planner.traces import RequestTrace

    trace = load_requests(AZURE_CONV_TRACE)
    isl = np.asarray(trace.isl_tokens, dtype=np.float64)
    osl = np.asarray(trace.osl_tokens, dtype=np.float64)
    model = EngineModel.from_profile(profile)
    scaler = SLAScaler(interpolator=FittedInterpolator.from_profile(profile))
    rng = np.random.default_rng(1)
    for servers, rates in ((1, (30, 34, 38, 42)), (2, (70, 76, 80, 84))):
        for rate in rates:
            n = int(rate * 900)
            pick = rng.integers(0, isl.size, n)
            arrivals = np.cumsum(rng.exponential(1.0 / rate, n))
            sim = run_static(
                RequestTrace(
                    arrival_s=arrivals, isl_tokens=isl[pick], osl_tokens=osl[pick]
                ),
                model,
                SimConfig(),
                prefill=servers,
                decode=8,
                ttft_ms=500.0,
                itl_ms=ITL_TARGET,
                warmup_s=120.0,
            )
            mix = scaler.prefill_mix(isl[pick[:1024]])
            est = estimate_prefill(
                mix, servers=servers, arrival_rate_per_s=rate, ttft_s=0.5
            )
            print(
                f"{servers} prefill worker(s) at {rate} requests/s: simulator "
                f"attainment {sim.attainment:.3f}, model {est.attainment:.3f} "
                f"(utilisation {est.utilisation:.2f}, batch {est.batch_size:.1f})"
            )


def main() -> int:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    profile = load_profile(H200_PROFILE_DIR)
    OUT.mkdir(parents=True, exist_ok=True)
    decode_figure(plt, profile)
    prefill_figure(plt, profile)
    queueing_figure(plt, profile)
    replay_figure(plt, profile)
    without_batching(profile)
    backlog(profile)
    decode_spread(profile)
    dispersion()
    saturation(profile)
    print(f"figures written to {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
