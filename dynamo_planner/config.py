"""The planner's configuration: one frozen :class:`PlannerConfig` value.

Every flag of the reference planner (spec §8) is a field here, with the same default, plus
the settings this library adds (plugin names, the unknown-metric policy, TLS, timeouts).
Field names carry their units (``ttft_ms``, ``adjustment_interval_s``); the reference's
spellings (``ttft``, ``adjustment_interval``, ``--loadbased-adjustment-interval``) are
accepted as aliases wherever a configuration is read from outside Python.

Construct it directly (keyword arguments, validated) or with a named constructor:

* :meth:`PlannerConfig.from_mapping` - a dict (field names or aliases, dashes or underscores);
* :meth:`PlannerConfig.from_toml` - a TOML file with the same keys at the top level;
* :meth:`PlannerConfig.from_env` - ``PLANNER_<FLAG>`` variables and the reference's
  variables (``DYN_NAMESPACE``, ``PROMETHEUS_ENDPOINT``, ``PLANNER_PROMETHEUS_PORT``, ...);
* :meth:`PlannerConfig.from_args` - the reference's command-line flags
  (:func:`add_arguments` adds them to an :class:`argparse.ArgumentParser`);
* :meth:`PlannerConfig.resolve` - all of them merged: defaults < TOML < environment <
  command line (a later source overrides an earlier one, field by field).

Only the named constructors touch files and environment variables; ``__init__`` never does.
Every invalid value raises :class:`~dynamo_planner.exceptions.ConfigError` naming the field,
the value and, when it came from outside, where it came from (file, variable or flag).

Cross-field rules (spec §4.7, §11.5), checked on construction:

* at least one of throughput and load-based scaling must be enabled;
* load-based scaling outside Kubernetes needs ``loadbased_router_metrics_url``;
* with both enabled, ``loadbased_adjustment_interval_s`` must be strictly less than
  ``adjustment_interval_s``;
* ``mode="agg"`` needs load-based scaling on and throughput scaling off;
* load-based scaling forces ``no_correction=True`` (logged as a warning), because the
  load-based regression already reflects real latency. The value stays forced in copies
  made with :func:`attrs.evolve`.

Rules that only matter when the planner drives a real deployment (a model name for
no-operation and virtual runs, GPUs per engine outside Kubernetes) are checked by
:meth:`PlannerConfig.check_live`, not on construction, so that offline uses (``plan``,
replays, notebooks) need not invent them.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import argparse
import difflib
import functools
import logging
import math
import os
import re
import tomllib
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NoReturn

import attrs

from dynamo_planner.exceptions import ConfigError
from dynamo_planner.values import DEFAULT_FORECAST_QUANTILE

__all__ = [
    "DEFAULT_PROMETHEUS_ENDPOINT",
    "ConfigOption",
    "PlannerConfig",
    "add_arguments",
    "config_options",
]

logger = logging.getLogger(__name__)

_PROMETHEUS_HOST = (
    "prometheus-kube-prometheus-prometheus.monitoring.svc.cluster.local:9090"
)
DEFAULT_PROMETHEUS_ENDPOINT = f"http://{_PROMETHEUS_HOST}"
"""The reference's default Prometheus URL (kube-prometheus in the ``monitoring`` namespace)."""

_META = "dynamo_planner"
_ENV_PREFIX = "PLANNER_"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_PLUGIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")

Kind = Literal["str", "int", "float", "bool"]


# --------------------------------------------------------------------------------------
# Field description (attrs metadata)
# --------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Spec:
    """How a field is spelled outside Python; stored in the attrs field metadata."""

    section: str
    help: str
    kind: Kind
    optional: bool = False
    choices: tuple[str, ...] = ()
    flag: str | None = None
    negative_flag: str | None = None
    extra_env: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    unit: str = ""
    negatable: bool = False
    negative_help: str = ""


@attrs.frozen(kw_only=True)
class ConfigOption:
    """The outside spellings of one :class:`PlannerConfig` field (for docs and tooling).

    Attributes:
        name: The field name.
        section: The group it belongs to in ``--help`` and the docs.
        flag: The command-line flag that sets it, if any.
        negative_flag: A flag that sets it to ``False`` (``--disable-throughput-scaling``).
        env: The environment variables read, highest precedence first. A variable
            derived from ``negative_flag`` sets the field to the opposite of its value.
        type_name: The type as the docs show it (``"float"``, ``"int | None"``, choices).
        default: The default value.
        help: What it means.
        aliases: Other keys accepted by :meth:`PlannerConfig.from_mapping`.

    .. versionadded:: 0.1.0
    """

    name: str
    section: str
    flag: str | None
    negative_flag: str | None
    env: tuple[str, ...]
    type_name: str
    default: Any
    help: str
    aliases: tuple[str, ...]


def _env_for_flag(flag: str) -> str:
    return _ENV_PREFIX + flag.removeprefix("--").upper().replace("-", "_")


def _key_for_flag(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


# --------------------------------------------------------------------------------------
# Converters (normalise only) and validators (check only); validators raise ConfigError.
# --------------------------------------------------------------------------------------


def _to_float(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _to_path_str(value: Any) -> Any:
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _describe(value: object) -> str:
    return f"{value!r} ({type(value).__name__})"


def _fail(attribute: attrs.Attribute[Any], value: object, message: str) -> NoReturn:
    raise ConfigError(message, field=attribute.name, value=value)


def _type_validator(kind: Kind, *, optional: bool) -> Callable[..., None]:
    expected = {
        "str": "a string",
        "int": "an integer",
        "float": "a number",
        "bool": "a boolean",
    }[kind]

    def validate(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value is None:
            if not optional:
                _fail(attribute, value, f"is required; expected {expected}, got None")
            return
        if kind == "bool":
            ok = isinstance(value, bool)
        elif kind == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif kind == "float":
            ok = isinstance(value, float)
            if isinstance(value, float) and not math.isfinite(value):
                _fail(attribute, value, f"must be a finite number, got {value!r}")
        else:
            ok = isinstance(value, str)
            if isinstance(value, str) and not value:
                _fail(attribute, value, "must not be empty")
        if not ok:
            _fail(attribute, value, f"expected {expected}, got {_describe(value)}")

    return validate


def _range_validator(
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    allow: tuple[object, ...] = (),
) -> Callable[..., None]:
    parts = []
    if gt is not None:
        parts.append(f"> {gt:g}")
    if ge is not None:
        parts.append(f">= {ge:g}")
    if lt is not None:
        parts.append(f"< {lt:g}")
    if le is not None:
        parts.append(f"<= {le:g}")
    rule = " and ".join(parts)
    if allow:
        rule = " or ".join([*(repr(a) for a in allow), rule])

    def validate(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None or value in allow:
            return
        if (
            (gt is not None and not value > gt)
            or (ge is not None and not value >= ge)
            or (lt is not None and not value < lt)
            or (le is not None and not value <= le)
        ):
            _fail(attribute, value, f"must be {rule}, got {value!r}")

    return validate


def _choice_validator(choices: tuple[str, ...]) -> Callable[..., None]:
    def validate(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if value not in choices:
            _fail(
                attribute, value, f"must be one of {', '.join(choices)}; got {value!r}"
            )

    return validate


def _plugin_name_validator(
    _: object, attribute: attrs.Attribute[Any], value: Any
) -> None:
    if value is not None and not _PLUGIN_NAME.fullmatch(value):
        _fail(attribute, value, f"is not a plugin name: {value!r}")


def _url_validator(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    for url in value.split(","):
        if not re.fullmatch(r"https?://[^\s/]+.*", url.strip()):
            _fail(attribute, value, f"must be an http:// or https:// URL, got {url!r}")


def _field(
    default: Any,
    *,
    section: str,
    help: str,  # noqa: A002 - the argparse word
    kind: Kind,
    optional: bool = False,
    choices: tuple[str, ...] = (),
    flag: str | None = None,
    negative_flag: str | None = None,
    extra_env: tuple[str, ...] = (),
    aliases: tuple[str, ...] = (),
    unit: str = "",
    negatable: bool = False,
    negative_help: str = "",
    validators: Sequence[Callable[..., None]] = (),
    path: bool = False,
) -> Any:
    spec = _Spec(
        section=section,
        help=help,
        kind=kind,
        optional=optional,
        choices=choices,
        flag=flag,
        negative_flag=negative_flag,
        extra_env=extra_env,
        aliases=aliases,
        unit=unit,
        negatable=negatable,
        negative_help=negative_help,
    )
    checks: list[Callable[..., None]] = [_type_validator(kind, optional=optional)]
    if choices:
        checks.append(_choice_validator(choices))
    checks.extend(validators)
    converter = _to_float if kind == "float" else (_to_path_str if path else None)
    return attrs.field(
        default=default,
        validator=checks,
        converter=converter,
        metadata={_META: spec},
    )


_DEPLOY = "Deployment"
_SCALING = "Throughput scaling"
_SLA = "SLA and performance profile"
_PREDICTOR = "Load predictor"
_METRICS = "Metrics"
_LOADBASED = "Load-based scaling"
_CONNECTOR = "Connector"


# --------------------------------------------------------------------------------------
# The configuration
# --------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class PlannerConfig:
    """Everything the planner is configured with; frozen and validated on construction.

    See the module docstring for the named constructors, the precedence of sources and the
    cross-field rules; the docs' configuration reference lists every field with its flag,
    environment variables, type, default and meaning.

    .. versionadded:: 0.1.0
    """

    # ---- deployment ------------------------------------------------------------------
    environment: Literal["kubernetes", "virtual"] = _field(
        "kubernetes",
        section=_DEPLOY,
        kind="str",
        choices=("kubernetes", "virtual"),
        flag="--environment",
        help="Where the deployment runs: a DynamoGraphDeployment on Kubernetes, or "
        "'virtual' (an external orchestrator that reads decisions from etcd).",
    )
    namespace: str = _field(
        "dynamo",
        section=_DEPLOY,
        kind="str",
        flag="--namespace",
        extra_env=("DYN_NAMESPACE",),
        help="Dynamo namespace: filters the frontend metrics and prefixes the etcd keys.",
    )
    backend: Literal["vllm", "sglang", "trtllm", "mocker"] = _field(
        "vllm",
        section=_DEPLOY,
        kind="str",
        choices=("vllm", "sglang", "trtllm", "mocker"),
        flag="--backend",
        help="Inference backend; selects the worker service and component names.",
    )
    mode: Literal["disagg", "prefill", "decode", "agg"] = _field(
        "disagg",
        section=_DEPLOY,
        kind="str",
        choices=("disagg", "prefill", "decode", "agg"),
        flag="--mode",
        help="Which components are planned: both (disagg), prefill only, decode only, or "
        "aggregated workers (agg, load-based scaling only).",
    )
    no_operation: bool = _field(
        False,
        section=_DEPLOY,
        kind="bool",
        flag="--no-operation",
        help="Advisory mode: observe, forecast and decide, but never change the "
        "deployment (plans go to the 'log' connector).",
    )
    log_dir: str | None = _field(
        None,
        section=_DEPLOY,
        kind="str",
        optional=True,
        path=True,
        flag="--log-dir",
        help="Directory for the planner's logs (accepted for compatibility).",
    )
    model_name: str | None = _field(
        None,
        section=_DEPLOY,
        kind="str",
        optional=True,
        flag="--model-name",
        help="Served model name; filters the frontend metrics. Required for live "
        "no-operation and virtual runs (see check_live).",
    )

    # ---- throughput scaling ----------------------------------------------------------
    adjustment_interval_s: float = _field(
        180.0,
        section=_SCALING,
        kind="float",
        unit="s",
        flag="--adjustment-interval",
        aliases=("throughput_adjustment_interval",),
        validators=(_range_validator(gt=0),),
        help="Throughput planning period, and the window metrics are averaged over.",
    )
    max_gpu_budget: int = _field(
        8,
        section=_SCALING,
        kind="int",
        flag="--max-gpu-budget",
        validators=(_range_validator(ge=1, allow=(-1,)),),
        help="Most GPUs the planned replicas may use in total; -1 disables the budget.",
    )
    min_endpoint: int = _field(
        1,
        section=_SCALING,
        kind="int",
        flag="--min-endpoint",
        validators=(_range_validator(ge=0),),
        help="Fewest replicas per component (the GPU budget can still go below it).",
    )
    prefill_engine_num_gpu: int | None = _field(
        None,
        section=_SCALING,
        kind="int",
        optional=True,
        flag="--prefill-engine-num-gpu",
        validators=(_range_validator(ge=1),),
        help="GPUs per prefill engine; detected from the deployment on Kubernetes, "
        "required in virtual live runs; 1 when unset offline.",
    )
    decode_engine_num_gpu: int | None = _field(
        None,
        section=_SCALING,
        kind="int",
        optional=True,
        flag="--decode-engine-num-gpu",
        validators=(_range_validator(ge=1),),
        help="GPUs per decode engine; detected from the deployment on Kubernetes, "
        "required in virtual live runs; 1 when unset offline.",
    )
    no_correction: bool = _field(
        False,
        section=_SCALING,
        kind="bool",
        flag="--no-correction",
        help="Do not correct the profile with observed/expected TTFT and ITL. Forced on "
        "when load-based scaling is enabled.",
    )
    enable_throughput_scaling: bool = _field(
        True,
        section=_SCALING,
        kind="bool",
        flag="--enable-throughput-scaling",
        negatable=True,
        negative_flag="--disable-throughput-scaling",
        negative_help="Turn throughput scaling off (overrides "
        "--enable-throughput-scaling).",
        help="Size replicas from forecast load and the performance profile.",
    )
    unknown_fallback_intervals: int = _field(
        3,
        section=_SCALING,
        kind="int",
        flag="--unknown-fallback-intervals",
        aliases=("nan_scaledown_threshold",),
        help="Consecutive intervals with unknown metrics after which replicas fall "
        "back to min_endpoint (before that they are held); 0 or less disables it.",
    )
    scaler: str = _field(
        "sla",
        section=_SCALING,
        kind="str",
        flag="--scaler",
        validators=(_plugin_name_validator,),
        help="Scaler plugin (entry-point group dynamo_planner.scalers): 'sla' sizes for "
        "a share of requests meeting both targets (queueing, lookahead, hysteresis); "
        "'reference' reproduces the reference planner's formulas.",
    )
    forecast_quantile: float = _field(
        DEFAULT_FORECAST_QUANTILE,
        section=_SCALING,
        kind="float",
        flag="--forecast-quantile",
        validators=(_range_validator(gt=0, lt=1),),
        help="Upper quantile of the forecast that quantile-aware scalers size for.",
    )
    sla_attainment: float = _field(
        0.99,
        section=_SCALING,
        kind="float",
        flag="--sla-attainment",
        validators=(_range_validator(gt=0, lt=1),),
        help="Share of requests that must meet both the TTFT and the ITL target "
        "(the 'sla' scaler sizes for it).",
    )
    cold_start_s: float = _field(
        60.0,
        section=_SCALING,
        kind="float",
        unit="s",
        flag="--cold-start",
        validators=(_range_validator(ge=0),),
        help="Time from requesting a worker to it serving; the 'sla' scaler sizes for "
        "the largest demand expected before a new worker would be ready.",
    )
    scale_down_intervals: int | None = _field(
        None,
        section=_SCALING,
        kind="int",
        optional=True,
        flag="--scale-down-intervals",
        validators=(_range_validator(ge=1),),
        help="Hysteresis of the 'sla' scaler: a component scales down only after its "
        "requirement stayed lower for this many intervals in a row (default: 2, or 1 "
        "for intervals of one minute or more for prefill and two minutes or more for "
        "decode).",
    )
    no_attainment_feedback: bool = _field(
        False,
        section=_SCALING,
        kind="bool",
        flag="--no-attainment-feedback",
        help="Keep the 'sla' scaler sizing for sla_attainment exactly. By default, while "
        "the observed share of requests missing TTFT stays well below what the "
        "target allows, it sizes prefill for a lower share (down to 10x the allowed "
        "misses), except while demand rises.",
    )
    sla_arrival_cv2: float = _field(
        1.0,
        section=_SCALING,
        kind="float",
        flag="--sla-arrival-cv2",
        validators=(_range_validator(ge=0),),
        help="Burstiness of arrivals (Ca², 1 for Poisson) the 'sla' scaler's prefill "
        "queue assumes until the metric source measures it (it does from a request "
        "counter scraped at most every 2 s). Where it is scraped more rarely, measure "
        "it on a past trace (dynamo_planner.sources.dispersion.interval_dispersion).",
    )
    sla_prefill_max_wait: float = _field(
        0.8,
        section=_SCALING,
        kind="float",
        flag="--sla-prefill-max-wait",
        validators=(_range_validator(gt=0, le=1),),
        help="Most of the requests the 'sla' scaler's prefill queue model may have wait "
        "(P(wait)) at the replicas it plans and the demand expected (the forecast's "
        "point values): prefill stops short of saturation, where "
        "the model's errors grow fastest (1: no limit).",
    )
    max_num_batched_tokens: int = _field(
        8192,
        section=_SCALING,
        kind="int",
        flag="--max-num-batched-tokens",
        validators=(_range_validator(ge=0),),
        help="Prompt-token budget of one prefill batch (vLLM's "
        "--max-num-batched-tokens); the 'sla' scaler's queueing model credits batching "
        "up to it (0: no batching).",
    )

    # ---- SLA and profile ---------------------------------------------------------------
    profile_results_dir: str = _field(
        "profiling_results",
        section=_SLA,
        kind="str",
        path=True,
        flag="--profile-results-dir",
        help="Profiling-results directory (selected_{prefill,decode}_interpolation) "
        "or a pre-swept profile file.",
    )
    select: str | None = _field(
        None,
        section=_SLA,
        kind="str",
        optional=True,
        flag="--select",
        help="Parallel configuration to pick from a pre-swept profile, e.g. 'tp4'.",
    )
    ttft_ms: float = _field(
        500.0,
        section=_SLA,
        kind="float",
        unit="ms",
        flag="--ttft",
        validators=(_range_validator(gt=0),),
        help="Time-to-first-token target.",
    )
    itl_ms: float = _field(
        50.0,
        section=_SLA,
        kind="float",
        unit="ms",
        flag="--itl",
        validators=(_range_validator(gt=0),),
        help="Inter-token latency target.",
    )
    interpolator: str = _field(
        "auto",
        section=_SLA,
        kind="str",
        flag="--interpolator",
        validators=(_plugin_name_validator,),
        help="Performance interpolator plugin (group dynamo_planner.interpolators): "
        "'reference' (the reference planner's curves and surfaces), 'fitted' (smooth "
        "physical fits), or 'auto': 'fitted' for the sla scaler, 'reference' otherwise.",
    )

    # ---- load predictor ----------------------------------------------------------------
    load_predictor: str = _field(
        "auto",
        section=_PREDICTOR,
        kind="str",
        flag="--load-predictor",
        validators=(_plugin_name_validator,),
        help="Predictor plugin for request count, ISL and OSL (group "
        "dynamo_planner.predictors): auto, constant, arima, kalman, prophet, ... "
        "The default 'auto' weighs the others by their recent out-of-sample error "
        "(the reference's default is 'arima').",
    )
    load_predictor_log1p: bool = _field(
        False,
        section=_PREDICTOR,
        kind="bool",
        flag="--load-predictor-log1p",
        negatable=True,
        help="Model log1p(y) instead of y (ARIMA, Kalman, Prophet).",
    )
    prophet_window_size: int = _field(
        50,
        section=_PREDICTOR,
        kind="int",
        flag="--prophet-window-size",
        validators=(_range_validator(ge=1),),
        help="Intervals of history Prophet fits on.",
    )
    load_predictor_warmup_trace: str | None = _field(
        None,
        section=_PREDICTOR,
        kind="str",
        optional=True,
        path=True,
        flag="--load-predictor-warmup-trace",
        help="Trace fed to the predictors before live traffic: mooncake JSONL (plain "
        "or .gz), the Azure LLM inference CSV, or a ServeGen per-client folder.",
    )
    kalman_q_level: float = _field(
        1.0,
        section=_PREDICTOR,
        kind="float",
        flag="--kalman-q-level",
        validators=(_range_validator(ge=0),),
        help="Kalman process noise of the level (higher reacts faster).",
    )
    kalman_q_trend: float = _field(
        0.1,
        section=_PREDICTOR,
        kind="float",
        flag="--kalman-q-trend",
        validators=(_range_validator(ge=0),),
        help="Kalman process noise of the trend (higher follows trend changes faster).",
    )
    kalman_r: float = _field(
        10.0,
        section=_PREDICTOR,
        kind="float",
        flag="--kalman-r",
        validators=(_range_validator(gt=0),),
        help="Kalman measurement noise (lower trusts new measurements more).",
    )
    kalman_min_points: int = _field(
        5,
        section=_PREDICTOR,
        kind="int",
        flag="--kalman-min-points",
        validators=(_range_validator(ge=1),),
        help="Observations the Kalman predictor needs before it forecasts.",
    )

    # ---- metrics -----------------------------------------------------------------------
    metric_pulling_prometheus_endpoint: str = _field(
        DEFAULT_PROMETHEUS_ENDPOINT,
        section=_METRICS,
        kind="str",
        flag="--metric-pulling-prometheus-endpoint",
        extra_env=("PROMETHEUS_ENDPOINT",),
        validators=(_url_validator,),
        help="Prometheus to read frontend metrics from. When no source sets it, "
        "SERVICE_PROTOCOL (http or https) sets the scheme of the default URL.",
    )
    metric_reporting_prometheus_port: int = _field(
        0,
        section=_METRICS,
        kind="int",
        flag="--metric-reporting-prometheus-port",
        extra_env=("PLANNER_PROMETHEUS_PORT",),
        validators=(_range_validator(ge=0, le=65535),),
        help="Port serving the planner's own Prometheus metrics; 0 disables it.",
    )
    metric_source: str | None = _field(
        None,
        section=_METRICS,
        kind="str",
        optional=True,
        flag="--metric-source",
        validators=(_plugin_name_validator,),
        help="Metric-source plugin (group dynamo_planner.metric_sources); unset: "
        "'prometheus', or 'router' when only load-based scaling is on.",
    )
    prometheus_verify_tls: bool = _field(
        True,
        section=_METRICS,
        kind="bool",
        negative_flag="--prometheus-insecure-skip-verify",
        negative_help="Do not verify Prometheus' TLS certificate.",
        help="Verify Prometheus' TLS certificate (the reference does not; we do unless "
        "told otherwise).",
    )
    prometheus_arrival_dispersion: bool = _field(
        True,
        section=_METRICS,
        kind="bool",
        negative_flag="--prometheus-no-arrival-dispersion",
        negative_help="Do not measure the arrivals' dispersion from the request "
        "counter's scrapes: the sla scaler then assumes Poisson arrivals (Ca² 1).",
        help="Measure the arrivals' index of dispersion, the sla scaler's Ca², from the "
        "request counter's scrapes (needs scrapes at most 2 s apart, ten per interval; "
        "a Dynamo frontend counts a request when it completes, so it measures "
        "completions).",
    )
    metric_timeout_s: float = _field(
        10.0,
        section=_METRICS,
        kind="float",
        unit="s",
        flag="--metric-timeout",
        validators=(_range_validator(gt=0),),
        help="Timeout of one metrics query or scrape.",
    )

    # ---- load-based scaling -------------------------------------------------------------
    enable_loadbased_scaling: bool = _field(
        False,
        section=_LOADBASED,
        kind="bool",
        flag="--enable-loadbased-scaling",
        negatable=True,
        help="Scale from per-worker load reported by the router (reacts within seconds).",
    )
    loadbased_router_metrics_url: str | None = _field(
        None,
        section=_LOADBASED,
        kind="str",
        optional=True,
        flag="--loadbased-router-metrics-url",
        validators=(_url_validator,),
        help="The router's /metrics URL; found from the deployment on Kubernetes, "
        "required otherwise.",
    )
    loadbased_adjustment_interval_s: float = _field(
        5.0,
        section=_LOADBASED,
        kind="float",
        unit="s",
        flag="--loadbased-adjustment-interval",
        validators=(_range_validator(gt=0),),
        help="Load-based planning period; must be less than adjustment_interval_s when "
        "both scaling modes are on.",
    )
    loadbased_learning_window: int = _field(
        50,
        section=_LOADBASED,
        kind="int",
        flag="--loadbased-learning-window",
        validators=(_range_validator(ge=1),),
        help="Observations the load-based latency regression keeps.",
    )
    loadbased_scaling_down_sensitivity: int = _field(
        80,
        section=_LOADBASED,
        kind="int",
        flag="--loadbased-scaling-down-sensitivity",
        validators=(_range_validator(ge=0, le=100),),
        help="Scale-down sensitivity, 0 (never) to 100 (aggressive).",
    )
    loadbased_metric_samples: int = _field(
        10,
        section=_LOADBASED,
        kind="int",
        flag="--loadbased-metric-samples",
        validators=(_range_validator(ge=1),),
        help="Router scrapes averaged per load-based interval.",
    )
    loadbased_min_observations: int = _field(
        5,
        section=_LOADBASED,
        kind="int",
        flag="--loadbased-min-observations",
        validators=(_range_validator(ge=1),),
        help="Regression observations needed before load-based decisions start.",
    )

    # ---- connector ---------------------------------------------------------------------
    connector: str | None = _field(
        None,
        section=_CONNECTOR,
        kind="str",
        optional=True,
        flag="--connector",
        validators=(_plugin_name_validator,),
        help="Connector plugin (group dynamo_planner.connectors); unset: 'log' in "
        "no-operation mode, otherwise the environment ('kubernetes' or 'virtual').",
    )
    etcd_endpoints: str = _field(
        "http://127.0.0.1:2379",
        section=_CONNECTOR,
        kind="str",
        flag="--etcd-endpoints",
        extra_env=("ETCD_ENDPOINTS",),
        validators=(_url_validator,),
        help="etcd URLs (comma-separated) of the virtual connector.",
    )
    scaling_check_interval_s: float = _field(
        10.0,
        section=_CONNECTOR,
        kind="float",
        unit="s",
        flag="--scaling-check-interval",
        extra_env=("SCALING_CHECK_INTERVAL",),
        validators=(_range_validator(gt=0),),
        help="How often a blocking apply checks whether scaling finished.",
    )
    scaling_max_wait_s: float = _field(
        1800.0,
        section=_CONNECTOR,
        kind="float",
        unit="s",
        flag="--scaling-max-wait-time",
        extra_env=("SCALING_MAX_WAIT_TIME",),
        validators=(_range_validator(gt=0),),
        help="Longest a blocking apply waits for scaling to finish.",
    )

    def __attrs_post_init__(self) -> None:
        """Cross-field rules of spec §4.7 / §11.5 (see the module docstring)."""
        throughput = self.enable_throughput_scaling
        loadbased = self.enable_loadbased_scaling
        if not throughput and not loadbased:
            raise ConfigError(
                "at least one scaling mode must be enabled "
                "(enable_throughput_scaling or enable_loadbased_scaling)",
                field="enable_throughput_scaling",
                value=False,
            )
        if self.mode == "agg" and (throughput or not loadbased):
            raise ConfigError(
                "mode 'agg' needs enable_loadbased_scaling=True and "
                f"enable_throughput_scaling=False (got {loadbased} and {throughput})",
                field="mode",
                value=self.mode,
            )
        if not loadbased:
            return
        if (
            self.environment != "kubernetes"
            and self.loadbased_router_metrics_url is None
        ):
            raise ConfigError(
                "is required when load-based scaling is enabled outside Kubernetes "
                f"(environment={self.environment!r})",
                field="loadbased_router_metrics_url",
                value=None,
            )
        if (
            throughput
            and self.loadbased_adjustment_interval_s >= self.adjustment_interval_s
        ):
            raise ConfigError(
                f"must be strictly less than adjustment_interval_s "
                f"({self.adjustment_interval_s:g}) when both scaling modes are on, "
                f"got {self.loadbased_adjustment_interval_s:g}",
                field="loadbased_adjustment_interval_s",
                value=self.loadbased_adjustment_interval_s,
            )
        if not self.no_correction:
            logger.warning(
                "no_correction forced to True: load-based scaling already reflects "
                "observed latency, so correction factors are disabled"
            )
            # Frozen class: the documented exception to "validators only check".
            object.__setattr__(self, "no_correction", True)

    # ---- derived values ----------------------------------------------------------------

    @property
    def prefill_gpus_per_engine(self) -> int:
        """GPUs per prefill engine, 1 when not configured."""
        return 1 if self.prefill_engine_num_gpu is None else self.prefill_engine_num_gpu

    @property
    def decode_gpus_per_engine(self) -> int:
        """GPUs per decode engine, 1 when not configured."""
        return 1 if self.decode_engine_num_gpu is None else self.decode_engine_num_gpu

    @property
    def interpolator_name(self) -> str:
        """The interpolator plugin to use: ``interpolator``, resolving ``"auto"``.

        ``"auto"`` is ``"fitted"`` for the ``sla`` scaler, whose queueing model needs
        prefill times that keep growing past the profile's longest prompt (the reference
        curves stop there, so long prompts look as fast as the longest profiled one),
        and ``"reference"`` for every other scaler, as in the reference planner.
        """
        if self.interpolator != "auto":
            return self.interpolator
        return "fitted" if self.scaler == "sla" else "reference"

    @property
    def connector_name(self) -> str:
        """The connector plugin to use: ``connector``, else ``log`` or the environment."""
        if self.connector is not None:
            return self.connector
        return "log" if self.no_operation else self.environment

    @property
    def metric_source_name(self) -> str:
        """The metric-source plugin: ``metric_source``, else by the scaling modes.

        ``prometheus`` (frontend histograms) unless only load-based scaling is on, then
        ``router`` (per-worker load from the router's ``/metrics``).
        """
        if self.metric_source is not None:
            return self.metric_source
        return "prometheus" if self.enable_throughput_scaling else "router"

    def check_live(self) -> None:
        """Check what a live run against a real deployment needs beyond construction.

        * ``model_name`` in no-operation mode and in the virtual environment (the
          reference's snapshot B requires ``--model-name`` in no-operation mode: without it
          metrics cannot be filtered by model);
        * GPUs per engine in the virtual environment, for each component the mode plans
          (Kubernetes reads them from the deployment).

        Offline uses (``plan``, replays, notebooks) do not call this.

        Raises:
            ConfigError: Naming the missing field.
        """
        if self.model_name is None and (
            self.no_operation or self.environment == "virtual"
        ):
            why = (
                "no-operation mode" if self.no_operation else "the virtual environment"
            )
            raise ConfigError(f"is required in {why}", field="model_name", value=None)
        if self.environment != "virtual":
            return
        if self.mode in ("disagg", "prefill") and self.prefill_engine_num_gpu is None:
            raise ConfigError(
                "is required in the virtual environment",
                field="prefill_engine_num_gpu",
            )
        if (
            self.mode in ("disagg", "decode", "agg")
            and self.decode_engine_num_gpu is None
        ):
            raise ConfigError(
                "is required in the virtual environment",
                field="decode_engine_num_gpu",
            )

    # ---- named constructors ------------------------------------------------------------

    def to_mapping(self) -> dict[str, Any]:
        """Every field by name; :meth:`from_mapping` of the result gives an equal config."""
        return attrs.asdict(self, recurse=False)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PlannerConfig:
        """Build a config from a mapping of settings; missing keys keep their defaults.

        Keys are field names or the reference's names and flag spellings
        (``adjustment_interval``, ``ttft``, ``itl``, ``loadbased_adjustment_interval``,
        ``--max-gpu-budget``), with dashes or underscores. ``disable_throughput_scaling``
        and ``prometheus_insecure_skip_verify`` set their field to the opposite; when a
        field and its opposite are both given, the one that turns the feature off wins.
        Integers are accepted for float fields; strings are not parsed.

        Raises:
            ConfigError: For an unknown key (with the closest valid name), a key given
                twice, or an invalid value.
        """
        return cls._build(_Layer.of_mapping(data, source=None))

    @classmethod
    def from_toml(cls, path: str | os.PathLike[str]) -> PlannerConfig:
        """Read settings from a TOML file: the same keys as :meth:`from_mapping`.

        Raises:
            ConfigError: If the file cannot be read or parsed, or a setting is invalid;
                the message names the file.
        """
        return cls._build(_Layer.of_toml(Path(path)))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PlannerConfig:
        """Read settings from environment variables (``os.environ`` by default).

        Each field is read from ``PLANNER_<FLAG>`` (``PLANNER_TTFT``,
        ``PLANNER_LOADBASED_ADJUSTMENT_INTERVAL``) and then from the reference's variable
        where it has one (``DYN_NAMESPACE``, ``PROMETHEUS_ENDPOINT``,
        ``PLANNER_PROMETHEUS_PORT``, ``ETCD_ENDPOINTS``, ``SCALING_CHECK_INTERVAL``,
        ``SCALING_MAX_WAIT_TIME``); the first one set wins. Booleans accept
        1/0, true/false, yes/no, on/off; an empty value unsets an optional field.
        ``SERVICE_PROTOCOL`` sets the scheme of the default Prometheus URL. Other
        variables are ignored.

        Raises:
            ConfigError: If a value cannot be parsed or is invalid; the message names the
                variable.
        """
        layer = _Layer.of_env(os.environ if environ is None else environ)
        return cls._build(layer)

    @classmethod
    def from_args(
        cls, namespace_or_argv: argparse.Namespace | Sequence[str]
    ) -> PlannerConfig:
        """Build a config from command-line flags (only the flags given count).

        Args:
            namespace_or_argv: Either a namespace parsed by a parser that
                :func:`add_arguments` filled (other attributes are ignored), or a list of
                arguments, parsed here with the reference's flags.

        Raises:
            ConfigError: If an argument cannot be parsed or a value is invalid; the
                message names the flag.
        """
        return cls._build(_Layer.of_args(namespace_or_argv))

    @classmethod
    def resolve(
        cls,
        args: argparse.Namespace | Sequence[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        toml_path: str | os.PathLike[str] | None = None,
    ) -> PlannerConfig:
        """Merge every source: defaults < TOML file < environment < command line.

        A later source overrides an earlier one field by field; only the settings a source
        actually gives count (a flag left out does not reset the TOML value to the
        default).

        Args:
            args: Parsed flags or an argument list (see :meth:`from_args`), or ``None``.
            environ: The environment; ``os.environ`` when ``None``.
            toml_path: A TOML file to read first, or ``None``.

        Raises:
            ConfigError: Naming the field and the source that set it.
        """
        layers = []
        if toml_path is not None:
            layers.append(_Layer.of_toml(Path(toml_path)))
        layers.append(_Layer.of_env(os.environ if environ is None else environ))
        if args is not None:
            layers.append(_Layer.of_args(args))
        return cls._build(_Layer.merge(layers))

    @classmethod
    def add_arguments(
        cls, parser: argparse.ArgumentParser, *, fields: Collection[str] | None = None
    ) -> None:
        """Add the reference's flags to ``parser`` (see :func:`add_arguments`)."""
        add_arguments(parser, fields=fields)

    @classmethod
    def _build(cls, layer: _Layer) -> PlannerConfig:
        values = dict(layer.values)
        endpoint = "metric_pulling_prometheus_endpoint"
        if layer.scheme is not None and endpoint not in values:
            values[endpoint] = f"{layer.scheme}://{_PROMETHEUS_HOST}"
        try:
            return cls(**values)
        except ConfigError as exc:
            where = layer.sources.get(exc.field, layer.context)
            if where is None:
                raise
            message = str(exc).removeprefix(f"{exc.field}: ")
            raise ConfigError(
                f"{message} (from {where})", field=exc.field, value=exc.value
            ) from exc


# --------------------------------------------------------------------------------------
# Option tables, built once from the attrs metadata
# --------------------------------------------------------------------------------------


@functools.cache
def _specs() -> tuple[tuple[attrs.Attribute[Any], _Spec], ...]:
    return tuple((a, a.metadata[_META]) for a in attrs.fields(PlannerConfig))


def _type_name(spec: _Spec) -> str:
    name = "{" + ", ".join(spec.choices) + "}" if spec.choices else spec.kind
    return f"{name} | None" if spec.optional else name


def config_options() -> tuple[ConfigOption, ...]:
    """Every field of :class:`PlannerConfig` with its flag, variables, type and default.

    .. versionadded:: 0.1.0
    """
    return tuple(
        ConfigOption(
            name=attribute.name,
            section=spec.section,
            flag=spec.flag,
            negative_flag=spec.negative_flag,
            env=_env_names(spec),
            type_name=_type_name(spec) + (f" ({spec.unit})" if spec.unit else ""),
            default=attribute.default,
            help=spec.help,
            aliases=tuple(
                k for k in _keys_for(attribute.name, spec) if k != attribute.name
            ),
        )
        for attribute, spec in _specs()
    )


def _env_names(spec: _Spec) -> tuple[str, ...]:
    names = [_env_for_flag(f) for f in (spec.flag, spec.negative_flag) if f]
    return (*names, *spec.extra_env)


def _keys_for(name: str, spec: _Spec) -> tuple[str, ...]:
    keys = [name]
    if spec.flag:
        keys.append(_key_for_flag(spec.flag))
    keys.extend(spec.aliases)
    if spec.negative_flag:
        keys.append(_key_for_flag(spec.negative_flag))
    return tuple(dict.fromkeys(keys))


@functools.cache
def _key_table() -> Mapping[str, tuple[str, bool]]:
    """Accepted key -> (field name, inverted)."""
    table: dict[str, tuple[str, bool]] = {}
    for attribute, spec in _specs():
        for key in _keys_for(attribute.name, spec):
            table[key] = (attribute.name, False)
        if spec.negative_flag:
            table[_key_for_flag(spec.negative_flag)] = (attribute.name, True)
    return table


def _normalise_key(key: str) -> str:
    return key.strip().lstrip("-").replace("-", "_").lower()


# --------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _Layer:
    """Settings given by one source, with where each came from."""

    values: Mapping[str, Any]
    sources: Mapping[str, str]
    context: str | None = None
    scheme: str | None = None

    @classmethod
    def merge(cls, layers: Sequence[_Layer]) -> _Layer:
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        scheme = None
        for layer in layers:
            values.update(layer.values)
            sources.update(layer.sources)
            scheme = layer.scheme or scheme
        return cls(values=values, sources=sources, scheme=scheme)

    @classmethod
    def of_mapping(
        cls,
        data: Mapping[str, Any],
        *,
        source: str | None,
        describe: Callable[[str], str] | None = None,
    ) -> _Layer:
        """Resolve aliases and opposites; ``describe(key)`` names where a key came from."""
        table = _key_table()
        direct: dict[str, tuple[str, Any]] = {}
        opposite: dict[str, tuple[str, bool]] = {}
        for raw_key, value in data.items():
            where = describe(raw_key) if describe else source
            suffix = f" (from {where})" if where else ""
            if not isinstance(raw_key, str):
                raise ConfigError(
                    f"setting names must be strings{suffix}", field=repr(raw_key)
                )
            key = _normalise_key(raw_key)
            if key not in table:
                close = difflib.get_close_matches(key, list(table), n=1, cutoff=0.6)
                hint = f"; did you mean {table[close[0]][0]!r}?" if close else ""
                raise ConfigError(
                    f"unknown setting {raw_key!r}{hint}{suffix}",
                    field=raw_key,
                    value=value,
                )
            name, inverted = table[key]
            seen = opposite if inverted else direct
            if name in seen:
                raise ConfigError(
                    f"given twice (as {seen[name][0]!r} and {raw_key!r}){suffix}",
                    field=name,
                    value=value,
                )
            if inverted:
                if not isinstance(value, bool):
                    raise ConfigError(
                        f"expected a boolean, got {_describe(value)}{suffix}",
                        field=raw_key,
                        value=value,
                    )
                opposite[name] = (raw_key, value)
            else:
                direct[name] = (raw_key, value)
        values = {name: value for name, (_, value) in direct.items()}
        keys = {name: key for name, (key, _) in direct.items()}
        for name, (key, off) in opposite.items():
            # The opt-out wins: the field is True only if nothing turned it off.
            given = values.get(name, True)
            if not isinstance(given, bool):
                continue  # the field's own validator reports the bad value
            values[name] = given and not off
            if off or name not in keys:
                keys[name] = key
        sources: dict[str, str] = {}
        for name, key in keys.items():
            where = describe(key) if describe else source
            if where:
                sources[name] = where
        return cls(values=values, sources=sources, context=source)

    @classmethod
    def of_toml(cls, path: Path) -> _Layer:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ConfigError(f"cannot read: {reason}", field=str(path)) from exc
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"invalid TOML: {exc}", field=str(path)) from exc
        return cls.of_mapping(data, source=f"file {path}")

    @classmethod
    def of_env(cls, environ: Mapping[str, str]) -> _Layer:
        raw: dict[str, Any] = {}
        variables: dict[str, str] = {}
        for attribute, spec in _specs():
            readers = [
                (_env_for_flag(spec.flag), attribute.name) if spec.flag else None,
                (_env_for_flag(spec.negative_flag), _key_for_flag(spec.negative_flag))
                if spec.negative_flag
                else None,
                *((var, attribute.name) for var in spec.extra_env),
            ]
            taken: set[str] = set()
            for reader in readers:
                if reader is None:
                    continue
                var, key = reader
                if var not in environ or key in taken:
                    continue
                taken.add(key)
                raw[key] = _parse(environ[var], spec, attribute.name, f"{var}")
                variables[key] = var
        scheme = environ.get("SERVICE_PROTOCOL")
        if scheme is not None:
            scheme = scheme.strip().lower()
            if scheme not in ("http", "https"):
                raise ConfigError(
                    f"SERVICE_PROTOCOL={environ['SERVICE_PROTOCOL']!r}: "
                    "expected http or https",
                    field="metric_pulling_prometheus_endpoint",
                    value=environ["SERVICE_PROTOCOL"],
                )
        layer = cls.of_mapping(
            raw,
            source=None,
            describe=lambda key: f"environment variable {variables[key]}",
        )
        return attrs.evolve(layer, scheme=scheme)

    @classmethod
    def of_args(cls, args: argparse.Namespace | Sequence[str]) -> _Layer:
        if isinstance(args, argparse.Namespace):
            namespace = args
        else:
            if isinstance(args, str):
                msg = "pass a list of arguments, not one string"
                raise TypeError(msg)
            parser = _RaisingParser(prog="dynamo-planner", add_help=False)
            add_arguments(parser)
            namespace = parser.parse_args(list(args))
        raw: dict[str, Any] = {}
        flags: dict[str, str] = {}
        for attribute, spec in _specs():
            readers = [(spec.flag, attribute.name)]
            if spec.negative_flag:
                readers.append((spec.negative_flag, _key_for_flag(spec.negative_flag)))
            for flag, dest in readers:
                value = None if flag is None else getattr(namespace, dest, None)
                if value is not None:
                    raw[dest] = value
                    flags[dest] = str(flag)
        return cls.of_mapping(
            raw, source=None, describe=lambda key: f"flag {flags[key]}"
        )


def _parse(raw: str, spec: _Spec, name: str, variable: str) -> Any:
    """Parse one environment value for a field of ``spec``'s kind."""
    text = raw.strip()
    if spec.optional and not text:
        return None
    kind = spec.kind
    try:
        if kind == "bool":
            lowered = text.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(raw)  # noqa: TRY301 - one error path for every kind
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError as exc:
        expected = {
            "bool": "a boolean (1/0, true/false, yes/no, on/off)",
            "int": "an integer",
            "float": "a number",
        }[kind]
        raise ConfigError(
            f"environment variable {variable}={raw!r}: expected {expected}",
            field=name,
            value=raw,
        ) from exc
    return raw


# --------------------------------------------------------------------------------------
# argparse
# --------------------------------------------------------------------------------------


class _RaisingParser(argparse.ArgumentParser):
    """A parser that raises ConfigError instead of exiting."""

    def error(self, message: str) -> NoReturn:
        match = re.search(r"argument (--[a-z0-9-]+)", message)
        field = "args"
        if match:
            key = _normalise_key(match.group(1))
            field = _key_table().get(key, (key, False))[0]
        raise ConfigError(message, field=field)


def _show_default(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return "unset"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _metavar(spec: _Spec) -> str:
    if spec.kind == "int":
        return "N"
    if spec.kind == "float":
        return {"ms": "MS", "s": "SECONDS"}.get(spec.unit, "X")
    return str(spec.flag).removeprefix("--").upper().replace("-", "_")


def add_arguments(
    parser: argparse.ArgumentParser, *, fields: Collection[str] | None = None
) -> None:
    """Add the reference planner's flags (and this library's) to ``parser``.

    Flags keep the reference's names; ``--help`` shows each default and environment
    variable. Every flag defaults to ``None`` so that :meth:`PlannerConfig.from_args` can
    tell a flag given from one left out. Each flag's ``dest`` is the field name
    (``--ttft`` is stored in ``args.ttft_ms``); ``--disable-throughput-scaling`` and
    ``--prometheus-insecure-skip-verify`` keep their own names.

    Args:
        parser: The parser to add to; one argument group per section is created.
        fields: Only add the flags of these fields (all when ``None``).

    Raises:
        ConfigError: If ``fields`` names an unknown field.

    .. versionadded:: 0.1.0
    """
    specs = _specs()
    if fields is not None:
        known = {a.name for a, _ in specs}
        for name in fields:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"unknown field{hint}", field=name)
    groups: dict[str, argparse._ArgumentGroup] = {}
    for attribute, spec in specs:
        if fields is not None and attribute.name not in fields:
            continue
        if spec.section not in groups:
            groups[spec.section] = parser.add_argument_group(spec.section)
        group = groups[spec.section]
        unit = f" [{spec.unit}]" if spec.unit else ""
        if spec.flag:
            env = ", ".join([_env_for_flag(spec.flag), *spec.extra_env])
            help_text = (
                f"{spec.help}{unit} (default: {_show_default(attribute.default)}; "
                f"env: {env})"
            ).replace("%", "%%")
            kwargs: dict[str, Any] = {
                "dest": attribute.name,
                "default": None,
                "help": help_text,
            }
            if spec.kind == "bool":
                kwargs["action"] = (
                    argparse.BooleanOptionalAction if spec.negatable else "store_true"
                )
            else:
                kwargs["type"] = {"int": int, "float": float, "str": str}[spec.kind]
                kwargs["metavar"] = _metavar(spec)
                if spec.choices:
                    kwargs["choices"] = spec.choices
                    kwargs.pop("metavar")
            group.add_argument(spec.flag, **kwargs)
        if spec.negative_flag:
            group.add_argument(
                spec.negative_flag,
                dest=_key_for_flag(spec.negative_flag),
                action="store_true",
                default=None,
                help=f"{spec.negative_help} (env: {_env_for_flag(spec.negative_flag)})",
            )
