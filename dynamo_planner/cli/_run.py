"""``dynamo-planner run``: plan live next to a deployment until SIGTERM.

Every reference flag (spec §8) with its default and environment variable, plus
``--config FILE.toml`` (lowest precedence: TOML < environment < flags). The run:

1. builds the connector (``kubernetes``, ``virtual``, or ``log`` with ``--no-operation``);
   on Kubernetes it reads the model name, GPUs per engine and the router URL from the
   DynamoGraphDeployment where the flags do not give them;
2. builds the metric source (``prometheus``, or ``router`` when only load-based scaling
   is on) and the planner; with both scaling modes on, the load planner reads the router
   source beside it (:func:`build_live_planner`);
3. serves the planner's own metrics on ``--metric-reporting-prometheus-port`` (0: off);
4. plans every ``--adjustment-interval`` seconds (throughput) or every
   ``--loadbased-adjustment-interval`` seconds (load-based; with both modes the throughput
   plan is the floor of every load tick), the first decision one interval after the
   start; a failing source or connector is logged, counted and retried next interval;
5. stops cleanly on SIGTERM or SIGINT: the current step finishes, connections close.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dynamo_planner.config import PlannerConfig
    from dynamo_planner.load_planner import CombinedPlanner, LoadPlanner
    from dynamo_planner.planner import Planner, StepRecord
    from dynamo_planner.plugins import Registry
    from dynamo_planner.protocols import Connector, MetricSource

__all__ = ["add_parser", "build_live_planner", "build_planner", "run", "serve"]

logger = logging.getLogger("dynamo_planner.run")


def add_parser(subparsers: Any) -> None:
    """Register the ``run`` subcommand."""
    from dynamo_planner.config import PlannerConfig

    parser = subparsers.add_parser(
        "run",
        help="plan live: read metrics, decide every interval, scale the deployment",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        metavar="FILE.toml",
        help="settings file (keys are the field names or the flags without dashes)",
    )
    parser.add_argument(
        "--start-delay",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait before starting (the reference always waits 30 s); default 0",
    )
    parser.add_argument(
        "--metrics-address",
        default="0.0.0.0",  # noqa: S104 (a pod serves its metrics to the cluster)
        help="address the planner's own metrics listen on (default 0.0.0.0)",
    )
    PlannerConfig.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Resolve the configuration and plan until stopped; returns the exit status."""
    from dynamo_planner.config import PlannerConfig

    config = PlannerConfig.resolve(args, toml_path=args.config)
    config.check_live()
    return asyncio.run(
        serve(
            config,
            start_delay_s=args.start_delay,
            metrics_address=args.metrics_address,
        )
    )


async def build_planner(
    config: PlannerConfig,
    *,
    registry: Registry | None = None,
    environ: Mapping[str, str] | None = None,
) -> Planner:
    """The throughput planner with its source and connector, as ``run`` builds them.

    Args:
        config: The resolved configuration.
        registry: The plugin registry (the installed entry points by default).
        environ: Environment for ``DYN_METRICS_PREFIX`` (``os.environ`` by default).
    """
    from dynamo_planner.planner import Planner
    from dynamo_planner.plugins import default_registry

    registry = registry or default_registry()
    config, source, connector, _ = await _build_parts(
        config, registry=registry, environ=environ, load_source=False
    )
    return Planner.from_config(
        config, source=source, connector=connector, registry=registry
    )


async def build_live_planner(
    config: PlannerConfig,
    *,
    registry: Registry | None = None,
    environ: Mapping[str, str] | None = None,
) -> Planner | LoadPlanner | CombinedPlanner:
    """The planner ``run`` drives, by the scaling modes of ``config``.

    Throughput only: :func:`build_planner`. Load-based only: a
    :class:`~dynamo_planner.load_planner.LoadPlanner` reading the router source. Both: a
    :class:`~dynamo_planner.load_planner.CombinedPlanner` whose throughput planner reads the
    configured source (Prometheus) and whose load planner reads the router source.

    Args:
        config: The resolved configuration.
        registry: The plugin registry (the installed entry points by default).
        environ: Environment for ``DYN_METRICS_PREFIX`` (``os.environ`` by default).
    """
    from dynamo_planner.load_planner import planner_from_config
    from dynamo_planner.plugins import default_registry

    registry = registry or default_registry()
    config, source, connector, load_source = await _build_parts(
        config, registry=registry, environ=environ, load_source=True
    )
    return planner_from_config(
        config,
        source=source,
        load_source=load_source,
        connector=connector,
        registry=registry,
    )


async def _build_parts(
    config: PlannerConfig,
    *,
    registry: Registry,
    environ: Mapping[str, str] | None,
    load_source: bool,
) -> tuple[PlannerConfig, MetricSource, Connector, MetricSource | None]:
    """The resolved configuration, source, connector and (both modes) router source."""
    import os

    import attrs

    from dynamo_planner.connectors.gpus import resolve_gpu_counts

    env = os.environ if environ is None else environ
    connector_cls = registry.load("dynamo_planner.connectors", config.connector_name)
    connector = connector_cls.from_config(config)
    try:
        validate = getattr(connector, "validate_deployment", None)
        if validate is not None and not config.no_operation:
            await validate()
        model_name = config.model_name
        get_model = getattr(connector, "get_model_name", None)
        if model_name is None and get_model is not None:
            model_name = get_model()
            if asyncio.iscoroutine(model_name):
                model_name = await model_name
        prefill_gpus, decode_gpus = await resolve_gpu_counts(
            mode=config.mode,
            prefill_flag=config.prefill_engine_num_gpu,
            decode_flag=config.decode_engine_num_gpu,
            connector=None if config.no_operation else connector,
            # Observation mode detects nothing (spec §1.8): missing counts read 1.
            dry_run=config.no_operation,
        )
        router_url = config.loadbased_router_metrics_url
        get_url = getattr(connector, "get_frontend_metrics_url", None)
        if router_url is None and config.enable_loadbased_scaling and get_url:
            router_url = await get_url()
        config = attrs.evolve(
            config,
            model_name=model_name,
            prefill_engine_num_gpu=prefill_gpus,
            decode_engine_num_gpu=decode_gpus,
            loadbased_router_metrics_url=router_url,
        )
        source_cls = registry.load(
            "dynamo_planner.metric_sources", config.metric_source_name
        )
        options: dict[str, Any] = {}
        if env.get("DYN_METRICS_PREFIX"):
            options["metric_prefix"] = env["DYN_METRICS_PREFIX"]
        source = source_cls.from_config(config, **options)
        router = None
        if (
            load_source
            and config.enable_loadbased_scaling
            and config.enable_throughput_scaling
            and config.metric_source_name != "router"
        ):
            # Both modes: the load planner reads per-worker load from the router.
            router_cls = registry.load("dynamo_planner.metric_sources", "router")
            router = router_cls.from_config(config, **options)
    except BaseException:
        await connector.aclose()
        raise
    return config, source, connector, router


def _sources_of(planner: Planner | LoadPlanner | CombinedPlanner) -> list[MetricSource]:
    """Every distinct metric source of a planner (both planners' when combined)."""
    found: list[MetricSource] = []
    for owner in (
        planner,
        getattr(planner, "throughput", None),
        getattr(planner, "load", None),
    ):
        source = getattr(owner, "source", None)
        if source is not None and all(source is not seen for seen in found):
            found.append(source)
    return found


def _log_step(record: StepRecord) -> None:
    target = record.plan.target(record.current)
    logger.info(
        "observed num_req=%s isl=%s osl=%s ttft_ms=%s itl_ms=%s | running %s | "
        "plan prefill=%s decode=%s%s | %s",
        record.observation.num_req.value,
        record.observation.isl_tokens.value,
        record.observation.osl_tokens.value,
        record.observation.ttft_ms.value,
        record.observation.itl_ms.value,
        (record.current.prefill, record.current.decode),
        target.prefill,
        target.decode,
        " (applied)" if record.applied else "",
        "; ".join(record.plan.reasons),
    )


def _install_signals(stop: asyncio.Event) -> list[signal.Signals]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError, ValueError):
            continue
        installed.append(sig)
    return installed


async def serve(
    config: PlannerConfig,
    *,
    stop: asyncio.Event | None = None,
    start_delay_s: float = 0.0,
    metrics_address: str = "0.0.0.0",  # noqa: S104
    registry: Registry | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Build the planner and plan until ``stop`` is set (or SIGTERM/SIGINT arrives).

    Returns:
        The exit status (0 after a clean stop).
    """
    from dynamo_planner.metrics import PlannerMetrics

    stop = stop or asyncio.Event()
    signals = _install_signals(stop)
    metrics: PlannerMetrics | None = None
    try:
        if start_delay_s > 0:
            logger.info("waiting %.0f s before starting", start_delay_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=start_delay_s)
            if stop.is_set():
                return 0
        planner = await build_live_planner(config, registry=registry, environ=environ)
        try:
            metrics = PlannerMetrics()
            metrics.attach(planner)
            planner.listeners.append(_log_step)
            port = config.metric_reporting_prometheus_port
            if port:
                try:
                    bound = metrics.serve(port, addr=metrics_address)
                except OSError as exc:
                    logger.error(  # noqa: TRY400 (the message says it all)
                        "cannot serve planner metrics on port %d: %s", port, exc
                    )
                else:
                    logger.info(
                        "planner metrics on %s:%d/metrics", metrics_address, bound
                    )
            logger.info(
                "planning every %g s (mode %s, source %s, connector %s%s)",
                planner.interval_s,
                config.mode,
                config.metric_source_name,
                config.connector_name,
                ", advisory" if config.no_operation else "",
            )
            await planner.run(stop)
        finally:
            for source in _sources_of(planner):
                await source.aclose()
            if planner.connector is not None:
                await planner.connector.aclose()
    finally:
        if metrics is not None:
            metrics.close()
        loop = asyncio.get_running_loop()
        for sig in signals:
            loop.remove_signal_handler(sig)
    logger.info("stopped")
    return 0
