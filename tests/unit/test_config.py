"""Tests for dynamo_planner.config: defaults, validation, sources and precedence."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynamo_planner.config import (
    DEFAULT_PROMETHEUS_ENDPOINT,
    PlannerConfig,
    add_arguments,
    config_options,
)
from dynamo_planner.exceptions import ConfigError

# Spec §8: every reference flag with its default, except where we deliberately differ:
# the default predictor is "auto" (it beats the reference's "arima" in the backtest).
REFERENCE_DEFAULTS: dict[str, Any] = {
    "environment": "kubernetes",
    "namespace": "dynamo",
    "backend": "vllm",
    "mode": "disagg",
    "no_operation": False,
    "log_dir": None,
    "adjustment_interval_s": 180.0,
    "max_gpu_budget": 8,
    "min_endpoint": 1,
    "prefill_engine_num_gpu": None,
    "decode_engine_num_gpu": None,
    "profile_results_dir": "profiling_results",
    "ttft_ms": 500.0,
    "itl_ms": 50.0,
    "load_predictor": "auto",
    "load_predictor_log1p": False,
    "prophet_window_size": 50,
    "load_predictor_warmup_trace": None,
    "kalman_q_level": 1.0,
    "kalman_q_trend": 0.1,
    "kalman_r": 10.0,
    "kalman_min_points": 5,
    "metric_pulling_prometheus_endpoint": (
        "http://prometheus-kube-prometheus-prometheus.monitoring.svc.cluster.local:9090"
    ),
    "metric_reporting_prometheus_port": 0,
    "no_correction": False,
    "model_name": None,
    "enable_throughput_scaling": True,
    "enable_loadbased_scaling": False,
    "loadbased_router_metrics_url": None,
    "loadbased_adjustment_interval_s": 5.0,
    "loadbased_learning_window": 50,
    "loadbased_scaling_down_sensitivity": 80,
    "loadbased_metric_samples": 10,
    "loadbased_min_observations": 5,
}

# Our additions (DESIGN.md): plugin names, unknown-metric policy, TLS, timeouts.
LIBRARY_DEFAULTS: dict[str, Any] = {
    "scaler": "sla",
    "interpolator": "auto",
    "metric_source": None,
    "connector": None,
    "unknown_fallback_intervals": 3,
    "forecast_quantile": 0.75,
    "sla_attainment": 0.99,
    "cold_start_s": 60.0,
    "scale_down_intervals": None,
    "no_attainment_feedback": False,
    "sla_arrival_cv2": 1.0,
    "sla_prefill_max_wait": 0.8,
    "max_num_batched_tokens": 8192,
    "prometheus_verify_tls": True,
    "prometheus_arrival_dispersion": True,
    "metric_timeout_s": 10.0,
    "select": None,
    "etcd_endpoints": "http://127.0.0.1:2379",
    "scaling_check_interval_s": 10.0,
    "scaling_max_wait_s": 1800.0,
}

# Spec §8 flag spellings of the fields whose names gained a unit.
REFERENCE_FLAGS = {
    "adjustment_interval_s": "--adjustment-interval",
    "ttft_ms": "--ttft",
    "itl_ms": "--itl",
    "loadbased_adjustment_interval_s": "--loadbased-adjustment-interval",
}

LOADBASED_VIRTUAL = {
    "environment": "virtual",
    "enable_loadbased_scaling": True,
    "loadbased_router_metrics_url": "http://router:8000/metrics",
}


def _error(call: Any, *args: Any, **kwargs: Any) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        call(*args, **kwargs)
    return info.value


class TestDefaults:
    """The defaults are the reference planner's."""

    def test_reference_defaults(self) -> None:
        """Every reference flag of spec §8 has the reference's default."""
        mapping = PlannerConfig().to_mapping()
        assert REFERENCE_DEFAULTS == {k: mapping[k] for k in REFERENCE_DEFAULTS}

    def test_library_defaults(self) -> None:
        """The settings this library adds default to the documented values."""
        mapping = PlannerConfig().to_mapping()
        assert LIBRARY_DEFAULTS == {k: mapping[k] for k in LIBRARY_DEFAULTS}

    def test_no_undocumented_fields(self) -> None:
        """Every field is listed in one of the two default tables above."""
        names = {f.name for f in attrs.fields(PlannerConfig)}
        assert names == set(REFERENCE_DEFAULTS) | set(LIBRARY_DEFAULTS)

    def test_default_prometheus_constant(self) -> None:
        """The exported default endpoint is the field's default."""
        assert (
            DEFAULT_PROMETHEUS_ENDPOINT
            == PlannerConfig().metric_pulling_prometheus_endpoint
        )

    def test_frozen(self) -> None:
        """A config cannot be changed after construction."""
        config = PlannerConfig()
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            config.ttft_ms = 1.0  # type: ignore[misc]

    def test_keyword_only(self) -> None:
        """Positional arguments are refused."""
        with pytest.raises(TypeError):
            PlannerConfig("virtual")  # type: ignore[misc]


class TestOptions:
    """Every field carries its flag, environment variables and help."""

    def test_every_field_described(self) -> None:
        """Each field has a flag (or an opposite flag), a variable and help text."""
        options = config_options()
        assert [o.name for o in options] == [
            f.name for f in attrs.fields(PlannerConfig)
        ]
        for option in options:
            assert option.flag or option.negative_flag, option.name
            assert option.env, option.name
            assert option.help, option.name
            assert option.type_name, option.name

    def test_reference_flag_names(self) -> None:
        """Fields keep the reference's flag spellings, and the rest derive from the name."""
        flags = {o.name: o.flag for o in config_options()}
        for name, flag in REFERENCE_FLAGS.items():
            assert flag == flags[name]
        for name in REFERENCE_DEFAULTS:
            if name not in REFERENCE_FLAGS:
                assert "--" + name.replace("_", "-") == flags[name]

    def test_planner_env_for_every_flag(self) -> None:
        """Each flag has its PLANNER_<FLAG> variable, listed first."""
        for option in config_options():
            flag = option.flag or option.negative_flag
            assert flag is not None
            expected = "PLANNER_" + flag[2:].upper().replace("-", "_")
            assert expected == option.env[0]

    @pytest.mark.parametrize(
        ("name", "variable"),
        [
            ("namespace", "DYN_NAMESPACE"),
            ("metric_pulling_prometheus_endpoint", "PROMETHEUS_ENDPOINT"),
            ("metric_reporting_prometheus_port", "PLANNER_PROMETHEUS_PORT"),
            ("etcd_endpoints", "ETCD_ENDPOINTS"),
            ("scaling_check_interval_s", "SCALING_CHECK_INTERVAL"),
            ("scaling_max_wait_s", "SCALING_MAX_WAIT_TIME"),
        ],
    )
    def test_reference_variables(self, name: str, variable: str) -> None:
        """The reference's own environment variables are read too."""
        option = next(o for o in config_options() if o.name == name)
        assert variable in option.env

    def test_type_names(self) -> None:
        """Type names show choices, optionality and units."""
        types = {o.name: o.type_name for o in config_options()}
        assert "{kubernetes, virtual}" == types["environment"]
        assert "int | None" == types["prefill_engine_num_gpu"]
        assert "float (ms)" == types["ttft_ms"]


class TestDerived:
    """Helpers derived from the fields."""

    @pytest.mark.parametrize(
        ("kwargs", "expected"),
        [
            ({}, "fitted"),
            ({"scaler": "reference"}, "reference"),
            ({"scaler": "my_scaler"}, "reference"),
            ({"interpolator": "reference"}, "reference"),
            ({"scaler": "reference", "interpolator": "fitted"}, "fitted"),
        ],
    )
    def test_interpolator_auto(self, kwargs: dict[str, Any], expected: str) -> None:
        """'auto' is the fitted interpolator for sla, the reference one otherwise."""
        assert PlannerConfig(**kwargs).interpolator_name == expected

    def test_gpus_per_engine_default_one(self) -> None:
        """Unset GPUs per engine count as 1."""
        config = PlannerConfig()
        assert (1, 1) == (config.prefill_gpus_per_engine, config.decode_gpus_per_engine)

    def test_gpus_per_engine_set(self) -> None:
        """Set GPUs per engine are returned as given."""
        config = PlannerConfig(prefill_engine_num_gpu=2, decode_engine_num_gpu=4)
        assert (2, 4) == (config.prefill_gpus_per_engine, config.decode_gpus_per_engine)

    @pytest.mark.parametrize(
        ("kwargs", "expected"),
        [
            ({}, "kubernetes"),
            ({"environment": "virtual"}, "virtual"),
            ({"no_operation": True}, "log"),
            ({"no_operation": True, "connector": "mine"}, "mine"),
            ({"connector": "example_memory"}, "example_memory"),
        ],
    )
    def test_connector_name(self, kwargs: dict[str, Any], expected: str) -> None:
        """The connector follows the environment unless set or in no-operation mode."""
        assert expected == PlannerConfig(**kwargs).connector_name

    @pytest.mark.parametrize(
        ("kwargs", "expected"),
        [
            ({}, "prometheus"),
            ({"enable_loadbased_scaling": True}, "prometheus"),
            (
                {
                    "mode": "agg",
                    "enable_loadbased_scaling": True,
                    "enable_throughput_scaling": False,
                },
                "router",
            ),
            ({"metric_source": "replay"}, "replay"),
        ],
    )
    def test_metric_source_name(self, kwargs: dict[str, Any], expected: str) -> None:
        """The metric source is Prometheus unless only load-based scaling runs."""
        assert expected == PlannerConfig(**kwargs).metric_source_name


class TestCrossFieldValidation:
    """Spec §4.7 and §11.5 argument validation."""

    def test_loadbased_forces_no_correction(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Load-based on and no_correction False: no_correction becomes True, with a warning."""
        with caplog.at_level(logging.WARNING, logger="dynamo_planner.config"):
            config = PlannerConfig(enable_loadbased_scaling=True, no_correction=False)
        assert config.no_correction is True
        assert any("no_correction" in r.getMessage() for r in caplog.records)

    def test_loadbased_with_no_correction_no_warning(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Load-based on and no_correction already True: nothing to warn about."""
        with caplog.at_level(logging.WARNING, logger="dynamo_planner.config"):
            config = PlannerConfig(enable_loadbased_scaling=True, no_correction=True)
        assert config.no_correction is True
        assert not caplog.records

    @pytest.mark.parametrize("no_correction", [False, True])
    def test_throughput_only_leaves_no_correction(self, no_correction: bool) -> None:
        """Load-based off: no_correction is left unchanged."""
        assert no_correction is PlannerConfig(no_correction=no_correction).no_correction

    def test_both_modes_disabled(self) -> None:
        """Both scaling modes disabled is an error naming the throughput switch."""
        error = _error(
            PlannerConfig,
            enable_throughput_scaling=False,
            enable_loadbased_scaling=False,
        )
        assert "enable_throughput_scaling" == error.field
        assert "at least one scaling mode" in str(error)

    def test_loadbased_virtual_needs_router_url(self) -> None:
        """Load-based in the virtual environment without a router URL is an error."""
        error = _error(
            PlannerConfig, environment="virtual", enable_loadbased_scaling=True
        )
        assert "loadbased_router_metrics_url" == error.field

    def test_loadbased_virtual_with_router_url(self) -> None:
        """Load-based in the virtual environment with a router URL is accepted."""
        config = PlannerConfig(**LOADBASED_VIRTUAL)
        assert config.loadbased_router_metrics_url == "http://router:8000/metrics"

    def test_loadbased_kubernetes_discovers_router(self) -> None:
        """On Kubernetes the router URL may be left to discovery."""
        assert PlannerConfig(enable_loadbased_scaling=True).enable_loadbased_scaling

    def test_equal_intervals_rejected(self) -> None:
        """Both modes on with load interval 180 and throughput interval 180 is an error."""
        error = _error(
            PlannerConfig,
            enable_loadbased_scaling=True,
            loadbased_adjustment_interval_s=180,
            adjustment_interval_s=180,
        )
        assert "loadbased_adjustment_interval_s" == error.field
        assert 180.0 == error.value
        assert "strictly less" in str(error)

    def test_shorter_load_interval_accepted(self) -> None:
        """A load interval just under the throughput interval is accepted."""
        config = PlannerConfig(
            enable_loadbased_scaling=True,
            loadbased_adjustment_interval_s=179,
            adjustment_interval_s=180,
        )
        assert 179.0 == config.loadbased_adjustment_interval_s

    def test_interval_rule_only_with_both_modes(self) -> None:
        """With throughput scaling off, the load interval may exceed the throughput one."""
        config = PlannerConfig(
            enable_loadbased_scaling=True,
            enable_throughput_scaling=False,
            loadbased_adjustment_interval_s=300,
        )
        assert 300.0 == config.loadbased_adjustment_interval_s

    @pytest.mark.parametrize(
        ("throughput", "loadbased"), [(True, True), (True, False), (False, True)]
    )
    def test_agg_mode(self, throughput: bool, loadbased: bool) -> None:
        """Agg mode needs load-based on and throughput off."""
        kwargs = {
            "mode": "agg",
            "enable_throughput_scaling": throughput,
            "enable_loadbased_scaling": loadbased,
        }
        if loadbased and not throughput:
            assert "agg" == PlannerConfig(**kwargs).mode
        else:
            assert "mode" == _error(PlannerConfig, **kwargs).field

    def test_evolve_revalidates(self) -> None:
        """attrs.evolve runs the same validation."""
        error = _error(attrs.evolve, PlannerConfig(), enable_throughput_scaling=False)
        assert "enable_throughput_scaling" == error.field


class TestFieldValidation:
    """Each field checks its own type and range, and the error names it."""

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("environment", "docker"),
            ("backend", "tgi"),
            ("mode", "both"),
            ("namespace", ""),
            ("namespace", 3),
            ("no_operation", "yes"),
            ("no_operation", 1),
            ("adjustment_interval_s", 0),
            ("adjustment_interval_s", -5.0),
            ("adjustment_interval_s", math.nan),
            ("adjustment_interval_s", "180"),
            ("max_gpu_budget", 0),
            ("max_gpu_budget", -2),
            ("max_gpu_budget", 8.0),
            ("max_gpu_budget", True),
            ("min_endpoint", -1),
            ("prefill_engine_num_gpu", 0),
            ("decode_engine_num_gpu", -1),
            ("ttft_ms", 0.0),
            ("ttft_ms", math.inf),
            ("itl_ms", -1.0),
            ("itl_ms", None),
            ("prophet_window_size", 0),
            ("kalman_q_level", -0.1),
            ("kalman_r", 0.0),
            ("kalman_min_points", 0),
            ("metric_pulling_prometheus_endpoint", "prometheus:9090"),
            ("metric_reporting_prometheus_port", 70000),
            ("metric_reporting_prometheus_port", -1),
            ("loadbased_router_metrics_url", "router/metrics"),
            ("loadbased_adjustment_interval_s", 0),
            ("loadbased_learning_window", 0),
            ("loadbased_scaling_down_sensitivity", 101),
            ("loadbased_scaling_down_sensitivity", -1),
            ("loadbased_metric_samples", 0),
            ("loadbased_min_observations", 0),
            ("scaler", "bad name"),
            ("connector", ""),
            ("forecast_quantile", 1.0),
            ("forecast_quantile", 0.0),
            ("prometheus_verify_tls", "false"),
            ("metric_timeout_s", 0),
            ("select", ""),
            ("etcd_endpoints", "127.0.0.1:2379"),
            ("scaling_check_interval_s", 0),
            ("scaling_max_wait_s", -1),
        ],
    )
    def test_invalid_value_names_field(self, name: str, value: Any) -> None:
        """An invalid value raises ConfigError naming the field and carrying the value."""
        error = _error(PlannerConfig, **{name: value})
        assert name == error.field
        assert isinstance(error, ValueError)
        assert str(error).startswith(f"{name}: ")
        if not (isinstance(value, float) and math.isnan(value)):
            assert value == error.value

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("max_gpu_budget", -1),
            ("min_endpoint", 0),
            ("loadbased_scaling_down_sensitivity", 0),
            ("loadbased_scaling_down_sensitivity", 100),
            ("unknown_fallback_intervals", 0),
            ("unknown_fallback_intervals", -1),
            ("kalman_q_trend", 0.0),
            ("metric_reporting_prometheus_port", 65535),
            ("etcd_endpoints", "http://a:2379,https://b:2379"),
            ("metric_pulling_prometheus_endpoint", "https://prom.example:9090"),
            ("load_predictor", "my-predictor.v2"),
        ],
    )
    def test_boundary_values_accepted(self, name: str, value: Any) -> None:
        """Values on the edge of each range are accepted."""
        assert value == getattr(PlannerConfig(**{name: value}), name)

    def test_int_becomes_float(self) -> None:
        """An integer given for a float field is stored as a float."""
        config = PlannerConfig(ttft_ms=200)
        assert isinstance(config.ttft_ms, float)
        assert 200.0 == config.ttft_ms

    def test_path_becomes_str(self, tmp_path: Path) -> None:
        """A path given for a path field is stored as a string."""
        config = PlannerConfig(profile_results_dir=tmp_path)
        assert str(tmp_path) == config.profile_results_dir


class TestCheckLive:
    """Rules that only a live run needs."""

    def test_offline_config_passes(self) -> None:
        """The defaults are enough for a live Kubernetes run."""
        PlannerConfig().check_live()

    def test_no_operation_needs_model_name(self) -> None:
        """No-operation mode without a model name cannot filter metrics."""
        config = PlannerConfig(no_operation=True)
        error = _error(config.check_live)
        assert "model_name" == error.field
        assert "no-operation" in str(error)

    def test_virtual_needs_model_and_gpus(self) -> None:
        """The virtual environment needs the model name and GPUs per engine."""
        assert (
            "model_name"
            == _error(PlannerConfig(environment="virtual").check_live).field
        )
        config = PlannerConfig(environment="virtual", model_name="m")
        assert "prefill_engine_num_gpu" == _error(config.check_live).field
        config = attrs.evolve(config, prefill_engine_num_gpu=1)
        assert "decode_engine_num_gpu" == _error(config.check_live).field
        attrs.evolve(config, decode_engine_num_gpu=2).check_live()

    def test_virtual_decode_mode_needs_decode_gpus_only(self) -> None:
        """In decode mode only the decode engines' GPUs are needed."""
        config = PlannerConfig(
            environment="virtual",
            model_name="m",
            mode="decode",
            decode_engine_num_gpu=1,
        )
        config.check_live()


class TestFromMapping:
    """PlannerConfig.from_mapping: names, aliases and unknown keys."""

    def test_field_names(self) -> None:
        """Field names set their fields; others keep defaults."""
        config = PlannerConfig.from_mapping({"ttft_ms": 200.0, "min_endpoint": 2})
        assert (200.0, 2, 50.0) == (config.ttft_ms, config.min_endpoint, config.itl_ms)

    def test_reference_names_and_flags(self) -> None:
        """The reference's names and flag spellings are aliases."""
        config = PlannerConfig.from_mapping(
            {
                "adjustment_interval": 60,
                "ttft": 200,
                "itl": 20,
                "loadbased-adjustment-interval": 10,
                "--max-gpu-budget": -1,
                "Prefill_Engine_Num_GPU": 2,
            }
        )
        assert 60.0 == config.adjustment_interval_s
        assert (200.0, 20.0) == (config.ttft_ms, config.itl_ms)
        assert 10.0 == config.loadbased_adjustment_interval_s
        assert -1 == config.max_gpu_budget
        assert 2 == config.prefill_engine_num_gpu

    def test_nan_scaledown_threshold_alias(self) -> None:
        """The upstream fix's name for the unknown-metric fallback is accepted."""
        config = PlannerConfig.from_mapping({"nan_scaledown_threshold": 0})
        assert 0 == config.unknown_fallback_intervals

    def test_unknown_key_suggests(self) -> None:
        """An unknown key is an error naming it and the closest field."""
        error = _error(PlannerConfig.from_mapping, {"ttft_mss": 1.0})
        assert "ttft_mss" == error.field
        assert "did you mean 'ttft_ms'?" in str(error)

    def test_unknown_key_without_match(self) -> None:
        """A key like no field gets no suggestion."""
        error = _error(PlannerConfig.from_mapping, {"zzzz": 1})
        assert "zzzz" == error.field
        assert "did you mean" not in str(error)

    def test_key_given_twice(self) -> None:
        """A field given under two spellings is an error."""
        error = _error(PlannerConfig.from_mapping, {"ttft": 1.0, "ttft_ms": 2.0})
        assert "ttft_ms" == error.field
        assert "given twice" in str(error)

    def test_strings_not_parsed(self) -> None:
        """A mapping value is not parsed from a string."""
        error = _error(PlannerConfig.from_mapping, {"ttft": "200"})
        assert "ttft_ms" == error.field
        assert "'200' (str)" in str(error)

    def test_disable_throughput(self) -> None:
        """disable_throughput_scaling turns throughput scaling off, overriding enable."""
        data = {
            "enable_throughput_scaling": True,
            "disable_throughput_scaling": True,
            "enable_loadbased_scaling": True,
        }
        assert not PlannerConfig.from_mapping(data).enable_throughput_scaling

    def test_disable_false_is_no_op(self) -> None:
        """disable_throughput_scaling=False does not turn throughput scaling on."""
        data = {
            "enable_throughput_scaling": False,
            "disable_throughput_scaling": False,
            "enable_loadbased_scaling": True,
        }
        assert not PlannerConfig.from_mapping(data).enable_throughput_scaling

    @pytest.mark.parametrize(("skip", "verify"), [(True, False), (False, True)])
    def test_insecure_skip_verify(self, skip: bool, verify: bool) -> None:
        """prometheus_insecure_skip_verify is the opposite of prometheus_verify_tls."""
        config = PlannerConfig.from_mapping({"prometheus_insecure_skip_verify": skip})
        assert verify is config.prometheus_verify_tls

    def test_opposite_must_be_bool(self) -> None:
        """An opposite switch must be a boolean."""
        error = _error(
            PlannerConfig.from_mapping, {"disable_throughput_scaling": "yes"}
        )
        assert "disable_throughput_scaling" == error.field

    def test_to_mapping_is_plain_dict(self) -> None:
        """to_mapping gives every field by name."""
        mapping = PlannerConfig().to_mapping()
        assert isinstance(mapping, dict)
        assert [f.name for f in attrs.fields(PlannerConfig)] == list(mapping)


class TestFromToml:
    """PlannerConfig.from_toml: the file's keys, and errors naming the file."""

    def test_reads_file(self, tmp_path: Path) -> None:
        """Top-level keys are read like from_mapping's."""
        path = tmp_path / "planner.toml"
        path.write_text(
            'environment = "virtual"\nttft = 200\nitl_ms = 20.5\n'
            "adjustment-interval = 60\nno_operation = true\n",
            encoding="utf-8",
        )
        config = PlannerConfig.from_toml(path)
        assert ("virtual", 200.0, 20.5, 60.0, True) == (
            config.environment,
            config.ttft_ms,
            config.itl_ms,
            config.adjustment_interval_s,
            config.no_operation,
        )

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is an error naming it."""
        path = tmp_path / "absent.toml"
        error = _error(PlannerConfig.from_toml, path)
        assert str(path) == error.field
        assert "cannot read" in str(error)

    def test_syntax_error(self, tmp_path: Path) -> None:
        """A malformed file is an error naming it and the line."""
        path = tmp_path / "bad.toml"
        path.write_text("ttft = 200\nitl = \n", encoding="utf-8")
        error = _error(PlannerConfig.from_toml, path)
        assert str(path) == error.field
        assert "line 2" in str(error)

    def test_bad_value_names_file_and_field(self, tmp_path: Path) -> None:
        """An invalid value names the field and the file."""
        path = tmp_path / "planner.toml"
        path.write_text("ttft = -1\n", encoding="utf-8")
        error = _error(PlannerConfig.from_toml, path)
        assert "ttft_ms" == error.field
        assert str(path) in str(error)

    def test_unknown_key_names_file(self, tmp_path: Path) -> None:
        """An unknown key names the key and the file."""
        path = tmp_path / "planner.toml"
        path.write_text("[planner]\nttft = 1\n", encoding="utf-8")
        error = _error(PlannerConfig.from_toml, path)
        assert "planner" == error.field
        assert str(path) in str(error)

    def test_cross_field_error_names_file(self, tmp_path: Path) -> None:
        """A cross-field error names the file too."""
        path = tmp_path / "planner.toml"
        path.write_text(
            "enable_loadbased_scaling = true\nloadbased_adjustment_interval = 200\n",
            encoding="utf-8",
        )
        error = _error(PlannerConfig.from_toml, path)
        assert "loadbased_adjustment_interval_s" == error.field
        assert str(path) in str(error)


class TestFromEnv:
    """PlannerConfig.from_env: PLANNER_* and the reference's variables."""

    def test_empty_environment(self) -> None:
        """No variables: the defaults."""
        assert PlannerConfig() == PlannerConfig.from_env({})

    def test_parses_types(self) -> None:
        """Variables are parsed to each field's type."""
        config = PlannerConfig.from_env(
            {
                "PLANNER_ENVIRONMENT": "virtual",
                "PLANNER_TTFT": "200.5",
                "PLANNER_ADJUSTMENT_INTERVAL": "60",
                "PLANNER_MAX_GPU_BUDGET": "-1",
                "PLANNER_NO_OPERATION": "true",
                "PLANNER_LOAD_PREDICTOR_LOG1P": "1",
                "PLANNER_PREFILL_ENGINE_NUM_GPU": " 2 ",
                "PLANNER_MODEL_NAME": "llama",
            }
        )
        assert "virtual" == config.environment
        assert 200.5 == config.ttft_ms
        assert 60.0 == config.adjustment_interval_s
        assert -1 == config.max_gpu_budget
        assert config.no_operation is True
        assert config.load_predictor_log1p is True
        assert 2 == config.prefill_engine_num_gpu
        assert "llama" == config.model_name

    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("1", True),
            ("TRUE", True),
            ("yes", True),
            ("on", True),
            ("0", False),
            ("False", False),
            ("no", False),
            ("off", False),
        ],
    )
    def test_booleans(self, raw: str, expected: bool) -> None:
        """Booleans accept the usual spellings."""
        config = PlannerConfig.from_env({"PLANNER_NO_CORRECTION": raw})
        assert expected is config.no_correction

    def test_reference_variables(self) -> None:
        """The reference's variables set their fields."""
        config = PlannerConfig.from_env(
            {
                "DYN_NAMESPACE": "prod-llama",
                "PROMETHEUS_ENDPOINT": "http://prom:9090",
                "PLANNER_PROMETHEUS_PORT": "9085",
                "ETCD_ENDPOINTS": "http://etcd:2379",
                "SCALING_CHECK_INTERVAL": "2",
                "SCALING_MAX_WAIT_TIME": "60",
            }
        )
        assert "prod-llama" == config.namespace
        assert "http://prom:9090" == config.metric_pulling_prometheus_endpoint
        assert 9085 == config.metric_reporting_prometheus_port
        assert "http://etcd:2379" == config.etcd_endpoints
        assert (2.0, 60.0) == (
            config.scaling_check_interval_s,
            config.scaling_max_wait_s,
        )

    def test_planner_variable_wins(self) -> None:
        """PLANNER_<FLAG> takes precedence over the reference's variable."""
        config = PlannerConfig.from_env(
            {"DYN_NAMESPACE": "operator", "PLANNER_NAMESPACE": "mine"}
        )
        assert "mine" == config.namespace

    def test_service_protocol(self) -> None:
        """SERVICE_PROTOCOL sets the scheme of the default Prometheus URL."""
        config = PlannerConfig.from_env({"SERVICE_PROTOCOL": "HTTPS"})
        assert config.metric_pulling_prometheus_endpoint.startswith(
            "https://prometheus-"
        )
        assert config.metric_pulling_prometheus_endpoint.endswith(":9090")

    def test_service_protocol_does_not_override_endpoint(self) -> None:
        """An explicit endpoint keeps its own scheme."""
        config = PlannerConfig.from_env(
            {"SERVICE_PROTOCOL": "https", "PROMETHEUS_ENDPOINT": "http://prom:9090"}
        )
        assert "http://prom:9090" == config.metric_pulling_prometheus_endpoint

    def test_bad_service_protocol(self) -> None:
        """An unknown SERVICE_PROTOCOL is an error naming the variable."""
        error = _error(PlannerConfig.from_env, {"SERVICE_PROTOCOL": "ftp"})
        assert "metric_pulling_prometheus_endpoint" == error.field
        assert "SERVICE_PROTOCOL" in str(error)

    @pytest.mark.parametrize(
        ("variable", "raw", "field"),
        [
            ("PLANNER_TTFT", "fast", "ttft_ms"),
            ("PLANNER_MIN_ENDPOINT", "1.5", "min_endpoint"),
            ("PLANNER_NO_OPERATION", "maybe", "no_operation"),
            ("PLANNER_PROMETHEUS_PORT", "http", "metric_reporting_prometheus_port"),
        ],
    )
    def test_unparsable_value(self, variable: str, raw: str, field: str) -> None:
        """A value that cannot be parsed names the variable and the field."""
        error = _error(PlannerConfig.from_env, {variable: raw})
        assert field == error.field
        assert raw == error.value
        assert variable in str(error)

    def test_invalid_value_names_variable(self) -> None:
        """A parsed but invalid value names the variable it came from."""
        error = _error(
            PlannerConfig.from_env,
            {"PLANNER_LOADBASED_SCALING_DOWN_SENSITIVITY": "150"},
        )
        assert "loadbased_scaling_down_sensitivity" == error.field
        assert "environment variable PLANNER_LOADBASED_SCALING_DOWN_SENSITIVITY" in str(
            error
        )

    def test_empty_unsets_optional(self) -> None:
        """An empty value leaves an optional field unset."""
        config = PlannerConfig.from_env(
            {"PLANNER_MODEL_NAME": "", "PLANNER_LOG_DIR": " "}
        )
        assert (None, None) == (config.model_name, config.log_dir)

    def test_unrelated_variables_ignored(self) -> None:
        """Variables that name no field are ignored."""
        config = PlannerConfig.from_env({"PLANNER_TTFTT": "1", "HOME": "/root"})
        assert PlannerConfig() == config

    def test_disable_variable(self) -> None:
        """PLANNER_DISABLE_THROUGHPUT_SCALING turns throughput scaling off."""
        config = PlannerConfig.from_env(
            {
                "PLANNER_DISABLE_THROUGHPUT_SCALING": "1",
                "PLANNER_ENABLE_LOADBASED_SCALING": "true",
            }
        )
        assert (False, True) == (
            config.enable_throughput_scaling,
            config.enable_loadbased_scaling,
        )

    def test_reads_os_environ_by_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without an argument, os.environ is read."""
        monkeypatch.setenv("PLANNER_ITL", "12.5")
        assert 12.5 == PlannerConfig.from_env().itl_ms


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="test")
    parser.add_argument("--profile")
    add_arguments(parser)
    return parser


class TestFromArgs:
    """add_arguments and PlannerConfig.from_args."""

    def test_reference_flags(self) -> None:
        """The reference's flags set their fields."""
        config = PlannerConfig.from_args(
            [
                "--environment",
                "virtual",
                "--ttft",
                "200",
                "--itl=20",
                "--adjustment-interval",
                "60",
                "--max-gpu-budget",
                "-1",
                "--no-operation",
                "--load-predictor",
                "kalman",
                "--load-predictor-log1p",
            ]
        )
        assert ("virtual", 200.0, 20.0, 60.0, -1) == (
            config.environment,
            config.ttft_ms,
            config.itl_ms,
            config.adjustment_interval_s,
            config.max_gpu_budget,
        )
        assert (True, "kalman", True) == (
            config.no_operation,
            config.load_predictor,
            config.load_predictor_log1p,
        )

    def test_no_flags_is_default(self) -> None:
        """No flags: the defaults."""
        assert PlannerConfig() == PlannerConfig.from_args([])

    def test_disable_throughput_scaling(self) -> None:
        """--disable-throughput-scaling overrides --enable-throughput-scaling."""
        config = PlannerConfig.from_args(
            [
                "--enable-throughput-scaling",
                "--disable-throughput-scaling",
                "--enable-loadbased-scaling",
            ]
        )
        assert not config.enable_throughput_scaling
        assert config.enable_loadbased_scaling

    def test_negated_enable_flag(self) -> None:
        """The enable flags are negatable, as in the reference's planner_args.py."""
        config = PlannerConfig.from_args(
            ["--no-enable-throughput-scaling", "--enable-loadbased-scaling"]
        )
        assert not config.enable_throughput_scaling

    def test_insecure_skip_verify(self) -> None:
        """--prometheus-insecure-skip-verify turns TLS verification off."""
        config = PlannerConfig.from_args(["--prometheus-insecure-skip-verify"])
        assert not config.prometheus_verify_tls

    def test_no_arrival_dispersion(self) -> None:
        """--prometheus-no-arrival-dispersion turns the counter's samples query off."""
        from dynamo_planner.sources.prometheus import PrometheusMetricSource

        assert PlannerConfig.from_args([]).prometheus_arrival_dispersion
        config = PlannerConfig.from_args(
            ["--prometheus-no-arrival-dispersion", "--model-name", "m"]
        )
        assert not config.prometheus_arrival_dispersion
        assert not PrometheusMetricSource.from_config(config).measure_dispersion

    def test_sla_arrival_cv2(self) -> None:
        """--sla-arrival-cv2 sets the burstiness the sla scaler assumes; < 0 is refused."""
        from dynamo_planner.data import H200_PROFILE_DIR
        from dynamo_planner.interpolators.fitted import FittedInterpolator
        from dynamo_planner.profiles import load_profile
        from dynamo_planner.scalers.sla import SLAScaler

        config = PlannerConfig.from_args(["--sla-arrival-cv2", "2.8"])
        assert config.sla_arrival_cv2 == 2.8
        fitted = FittedInterpolator.from_profile(load_profile(H200_PROFILE_DIR))
        scaler = SLAScaler.from_config(config, interpolator=fitted)
        assert scaler.arrival_cv2 == 2.8
        assert scaler.burstiness == 2.8
        with pytest.raises(ConfigError, match=r"sla_arrival_cv2.*-1"):
            PlannerConfig(sla_arrival_cv2=-1.0)

    def test_sla_prefill_max_wait(self) -> None:
        """--sla-prefill-max-wait reaches the sla scaler; 0 and above 1 are refused."""
        from dynamo_planner.data import H200_PROFILE_DIR
        from dynamo_planner.interpolators.fitted import FittedInterpolator
        from dynamo_planner.profiles import load_profile
        from dynamo_planner.scalers.sla import SLAScaler

        config = PlannerConfig.from_args(["--sla-prefill-max-wait", "0.9"])
        assert config.sla_prefill_max_wait == 0.9
        fitted = FittedInterpolator.from_profile(load_profile(H200_PROFILE_DIR))
        assert (
            SLAScaler.from_config(config, interpolator=fitted).prefill_max_wait == 0.9
        )
        for bad in (0.0, 1.5):
            with pytest.raises(ConfigError, match=r"sla_prefill_max_wait"):
                PlannerConfig(sla_prefill_max_wait=bad)

    def test_namespace_with_other_arguments(self) -> None:
        """A namespace from a larger parser: only the planner flags given count."""
        args = _parser().parse_args(["--profile", "p", "--itl", "30"])
        assert 30.0 == args.itl_ms
        assert args.ttft_ms is None
        config = PlannerConfig.from_args(args)
        assert (30.0, 500.0) == (config.itl_ms, config.ttft_ms)

    def test_unparsable_flag(self) -> None:
        """A flag that cannot be parsed is a ConfigError naming the field."""
        error = _error(PlannerConfig.from_args, ["--ttft", "fast"])
        assert "ttft_ms" == error.field
        assert "--ttft" in str(error)

    def test_invalid_choice(self) -> None:
        """A value outside the choices is a ConfigError naming the field."""
        error = _error(PlannerConfig.from_args, ["--mode", "both"])
        assert "mode" == error.field

    def test_unknown_flag(self) -> None:
        """An unknown flag is a ConfigError."""
        error = _error(PlannerConfig.from_args, ["--ttfft", "1"])
        assert "ttfft" in str(error)

    def test_invalid_value_names_flag(self) -> None:
        """A parsed but invalid value names the flag it came from."""
        error = _error(PlannerConfig.from_args, ["--min-endpoint", "-3"])
        assert "min_endpoint" == error.field
        assert "flag --min-endpoint" in str(error)

    def test_one_string_refused(self) -> None:
        """A single string is not an argument list."""
        with pytest.raises(TypeError):
            PlannerConfig.from_args("--ttft 200")

    def test_help_shows_defaults_and_variables(self) -> None:
        """--help shows the reference's defaults and the environment variables."""
        text = " ".join(_parser().format_help().split())
        assert "--adjustment-interval SECONDS" in text
        assert "(default: 180; env: PLANNER_ADJUSTMENT_INTERVAL)" in text
        assert "env: PLANNER_NAMESPACE, DYN_NAMESPACE" in text
        assert "(default: 500; env: PLANNER_TTFT)" in text

    def test_fields_subset(self) -> None:
        """fields= adds only the flags of those fields."""
        parser = argparse.ArgumentParser()
        PlannerConfig.add_arguments(parser, fields=["ttft_ms", "itl_ms"])
        args = parser.parse_args(["--ttft", "100"])
        assert 100.0 == PlannerConfig.from_args(args).ttft_ms
        with pytest.raises(SystemExit):
            parser.parse_args(["--mode", "agg"])

    def test_fields_subset_unknown(self) -> None:
        """fields= with an unknown name is an error suggesting the closest field."""
        error = _error(add_arguments, argparse.ArgumentParser(), fields=["ttft"])
        assert "ttft" == error.field
        assert "ttft_ms" in str(error)


class TestResolve:
    """PlannerConfig.resolve: defaults < TOML < environment < command line."""

    @pytest.fixture(name="toml_path")
    def _toml_path(self, tmp_path: Path) -> Path:
        path = tmp_path / "planner.toml"
        path.write_text("ttft = 100\nitl = 10\nmin_endpoint = 2\n", encoding="utf-8")
        return path

    def test_precedence(self, toml_path: Path) -> None:
        """Each source overrides the ones before it, field by field."""
        environ = {"PLANNER_TTFT": "200", "PLANNER_ITL": "20"}
        config = PlannerConfig.resolve(
            ["--ttft", "300"], environ=environ, toml_path=toml_path
        )
        assert (300.0, 20.0, 2) == (config.ttft_ms, config.itl_ms, config.min_endpoint)

    def test_env_over_toml(self, toml_path: Path) -> None:
        """Without flags, the environment overrides the file."""
        config = PlannerConfig.resolve(
            environ={"PLANNER_TTFT": "200"}, toml_path=toml_path
        )
        assert (200.0, 10.0) == (config.ttft_ms, config.itl_ms)

    def test_toml_over_defaults(self, toml_path: Path) -> None:
        """The file overrides the defaults."""
        config = PlannerConfig.resolve(environ={}, toml_path=toml_path)
        assert (100.0, 10.0, 2) == (config.ttft_ms, config.itl_ms, config.min_endpoint)

    def test_nothing_given(self) -> None:
        """No sources: the defaults."""
        assert PlannerConfig() == PlannerConfig.resolve(environ={})

    def test_flag_left_out_keeps_file_value(self, toml_path: Path) -> None:
        """A parsed namespace without a flag does not reset the file's value."""
        args = _parser().parse_args(["--itl", "5"])
        config = PlannerConfig.resolve(args, environ={}, toml_path=toml_path)
        assert (100.0, 5.0) == (config.ttft_ms, config.itl_ms)

    def test_error_names_winning_source(self, toml_path: Path) -> None:
        """An invalid merged value names the source that set it."""
        error = _error(
            PlannerConfig.resolve,
            environ={"PLANNER_TTFT": "-5"},
            toml_path=toml_path,
        )
        assert "ttft_ms" == error.field
        assert "environment variable PLANNER_TTFT" in str(error)

    def test_cross_source_rule(self, toml_path: Path) -> None:
        """Cross-field rules apply to the merged result."""
        error = _error(
            PlannerConfig.resolve,
            ["--enable-loadbased-scaling", "--loadbased-adjustment-interval", "200"],
            environ={},
            toml_path=toml_path,
        )
        assert "loadbased_adjustment_interval_s" == error.field
        assert "flag --loadbased-adjustment-interval" in str(error)

    def test_service_protocol_respects_file_endpoint(self, tmp_path: Path) -> None:
        """SERVICE_PROTOCOL changes only the default URL, not one a file set."""
        path = tmp_path / "planner.toml"
        path.write_text(
            'metric_pulling_prometheus_endpoint = "http://p:9090"\n', encoding="utf-8"
        )
        config = PlannerConfig.resolve(
            environ={"SERVICE_PROTOCOL": "https"}, toml_path=path
        )
        assert "http://p:9090" == config.metric_pulling_prometheus_endpoint


# ---- round trip -------------------------------------------------------------------------

_names = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=12
).filter(lambda name: name != "--")
"""Names a flag can carry: argparse drops a bare ``--`` even as ``--flag=--``."""
_plugin_names = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
_positive = st.floats(
    min_value=0.001, max_value=1e6, allow_nan=False, allow_infinity=False
)
_urls = st.builds(
    "http://{}:{}".format,
    st.from_regex(r"[a-z][a-z0-9.-]{0,15}", fullmatch=True),
    st.integers(1, 65535),
)


@st.composite
def configs(draw: st.DrawFn) -> PlannerConfig:
    """Valid configs across every field."""
    kwargs: dict[str, Any] = {
        "environment": draw(st.sampled_from(["kubernetes", "virtual"])),
        "namespace": draw(_names),
        "backend": draw(st.sampled_from(["vllm", "sglang", "trtllm", "mocker"])),
        "mode": draw(st.sampled_from(["disagg", "prefill", "decode", "agg"])),
        "no_operation": draw(st.booleans()),
        "log_dir": draw(st.none() | _names),
        "model_name": draw(st.none() | _names),
        "adjustment_interval_s": draw(_positive),
        "max_gpu_budget": draw(st.just(-1) | st.integers(1, 1024)),
        "min_endpoint": draw(st.integers(0, 64)),
        "prefill_engine_num_gpu": draw(st.none() | st.integers(1, 16)),
        "decode_engine_num_gpu": draw(st.none() | st.integers(1, 16)),
        "no_correction": draw(st.booleans()),
        "enable_throughput_scaling": draw(st.booleans()),
        "unknown_fallback_intervals": draw(st.integers(-5, 100)),
        "scaler": draw(_plugin_names),
        "forecast_quantile": draw(st.floats(0.01, 0.99)),
        "profile_results_dir": draw(_names),
        "select": draw(st.none() | _names),
        "ttft_ms": draw(_positive),
        "itl_ms": draw(_positive),
        "interpolator": draw(_plugin_names),
        "load_predictor": draw(_plugin_names),
        "load_predictor_log1p": draw(st.booleans()),
        "prophet_window_size": draw(st.integers(1, 1000)),
        "load_predictor_warmup_trace": draw(st.none() | _names),
        "kalman_q_level": draw(st.floats(0, 100)),
        "kalman_q_trend": draw(st.floats(0, 100)),
        "kalman_r": draw(_positive),
        "kalman_min_points": draw(st.integers(1, 100)),
        "metric_pulling_prometheus_endpoint": draw(_urls),
        "metric_reporting_prometheus_port": draw(st.integers(0, 65535)),
        "metric_source": draw(st.none() | _plugin_names),
        "prometheus_verify_tls": draw(st.booleans()),
        "metric_timeout_s": draw(_positive),
        "enable_loadbased_scaling": draw(st.booleans()),
        "loadbased_router_metrics_url": draw(st.none() | _urls),
        "loadbased_adjustment_interval_s": draw(_positive),
        "loadbased_learning_window": draw(st.integers(1, 1000)),
        "loadbased_scaling_down_sensitivity": draw(st.integers(0, 100)),
        "loadbased_metric_samples": draw(st.integers(1, 100)),
        "loadbased_min_observations": draw(st.integers(1, 100)),
        "connector": draw(st.none() | _plugin_names),
        "etcd_endpoints": draw(_urls),
        "scaling_check_interval_s": draw(_positive),
        "scaling_max_wait_s": draw(_positive),
    }
    # Repair the combinations the cross-field rules forbid.
    if kwargs["mode"] == "agg":
        kwargs["enable_loadbased_scaling"] = True
        kwargs["enable_throughput_scaling"] = False
    if not (kwargs["enable_throughput_scaling"] or kwargs["enable_loadbased_scaling"]):
        kwargs["enable_throughput_scaling"] = True
    if kwargs["enable_loadbased_scaling"]:
        kwargs["no_correction"] = True
        if (
            kwargs["environment"] == "virtual"
            and kwargs["loadbased_router_metrics_url"] is None
        ):
            kwargs["loadbased_router_metrics_url"] = "http://router:8000/metrics"
        if kwargs["enable_throughput_scaling"]:
            kwargs["loadbased_adjustment_interval_s"] = (
                kwargs["adjustment_interval_s"] / 2
            )
    return PlannerConfig(**kwargs)


def _argv(config: PlannerConfig) -> list[str]:
    """The command line that gives ``config`` (every field spelled out)."""
    argv: list[str] = []
    for option in config_options():
        value = getattr(config, option.name)
        if option.flag is None:
            if value is False:
                argv.append(str(option.negative_flag))
            continue
        if isinstance(value, bool):
            if value:
                argv.append(option.flag)
            elif option.negative_flag or option.flag.startswith(
                ("--enable-", "--load-predictor-log1p")
            ):
                argv.append("--no-" + option.flag[2:])
        elif value is not None:
            argv.append(
                f"{option.flag}={value!r}"
                if isinstance(value, float)
                else f"{option.flag}={value}"
            )
    return argv


class TestRoundTrip:
    """Configs survive the trip through every representation."""

    @given(configs())
    def test_mapping_round_trip(self, config: PlannerConfig) -> None:
        """from_mapping(to_mapping(c)) == c."""
        assert config == PlannerConfig.from_mapping(config.to_mapping())

    @given(configs())
    def test_args_round_trip(self, config: PlannerConfig) -> None:
        """The flags spelling out a config parse back to it."""
        assert config == PlannerConfig.from_args(_argv(config))

    @given(configs())
    def test_hashable_and_equal(self, config: PlannerConfig) -> None:
        """Equal configs hash equally (they can key caches)."""
        copy = attrs.evolve(config)
        assert copy == config
        assert hash(copy) == hash(config)
