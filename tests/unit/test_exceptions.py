"""Errors keep their message and attributes across processes."""

from __future__ import annotations

import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from dynamo_planner import exceptions as ex

ERRORS = [
    ex.PlannerError("plain"),
    ex.ConfigError("must be positive", field="ttft_ms", value=-1.0),
    ex.PluginNotFoundError(group="dynamo_planner.scalers", name="x", available=["sla"]),
    ex.PluginLoadError(
        group="dynamo_planner.scalers", name="x", target="m:X", reason="boom"
    ),
    ex.PluginContractError(group="dynamo_planner.scalers", name="x", protocol="Scaler"),
    ex.NotReadyError("no observation yet"),
    ex.ProfileError("not monotone", path="p/raw_data.npz", field="prefill_isl"),
    ex.TraceError("bad timestamp", path="trace.jsonl", line=7),
    ex.InfeasibleSLAError("too slow"),
    ex.MetricSourceError("timed out", source="prometheus"),
    ex.MalformedMetricsError("not JSON", source="prometheus"),
    ex.ConnectorError("refused", connector="kubernetes"),
    ex.DeploymentValidationError("no decode service", connector="kubernetes"),
    ex.ScalingDeferredError("rollout in progress", connector="kubernetes"),
]


def _state(error: BaseException) -> tuple[object, ...]:
    attributes = dict(vars(error))
    if isinstance(error, ImportError):
        attributes.update(name=error.name, path=error.path)
    return type(error), str(error), error.args, attributes


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_pickles_with_message_and_attributes(error: ex.PlannerError) -> None:
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
    assert _state(copy) == _state(error)


def _raise_trace_error() -> None:
    raise ex.TraceError("bad timestamp", path="trace.jsonl", line=7)


def test_an_error_in_a_worker_process_reaches_the_parent() -> None:
    """Raised in a process pool, the error arrives as itself, not as a broken pool."""
    with ProcessPoolExecutor(1) as pool, pytest.raises(ex.TraceError) as caught:
        pool.submit(_raise_trace_error).result()
    assert caught.value.path == "trace.jsonl"
    assert caught.value.line == 7
    assert str(caught.value) == "trace.jsonl:7: bad timestamp"
