"""The examples in the package's docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize(
    "name",
    [
        "dynamo_planner.scalers.calibration",
        "dynamo_planner.scalers.decode_model",
        "dynamo_planner.scalers.demand_history",
        "dynamo_planner.scalers.feedback",
        "dynamo_planner.scalers.forecast_errors",
        "dynamo_planner.scalers.hysteresis",
        "dynamo_planner.scalers.request_mix",
        "dynamo_planner.scalers.sampling_noise",
        "dynamo_planner.scalers.trend",
        "dynamo_planner.sources.dispersion",
    ],
)
def test_docstring_examples(name: str) -> None:
    """Every ``>>>`` example of the module gives its shown output."""
    module = importlib.import_module(name)
    failures, attempted = doctest.testmod(module)
    assert attempted > 0
    assert failures == 0
