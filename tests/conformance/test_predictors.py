"""Every installed predictor entry point passes the shared Predictor contract."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dynamo_planner.config import PlannerConfig
from dynamo_planner.plugins import default_registry
from dynamo_planner.protocols import Predictor
from dynamo_planner.testing.contracts import PredictorContract

GROUP = "dynamo_planner.predictors"
NAMES = default_registry().available(GROUP)
SLOW = {"prophet"}
"""Predictors whose fits take about a second over the contract's series."""


@pytest.fixture(
    params=[
        pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name
        for name in NAMES
    ]
)
def predictor_name(request: pytest.FixtureRequest) -> str:
    """The name of one installed predictor entry point."""
    name: str = request.param
    return name


class TestInstalledPredictors(PredictorContract):
    """The contract, run over every predictor entry point built from the default config."""

    @pytest.fixture
    def make_predictor(self, predictor_name: str) -> Callable[[], Predictor]:
        cls = default_registry().load(GROUP, predictor_name)
        config = PlannerConfig()
        return lambda: cls.from_config(config)


class TestBuiltinsAreInstalled:
    """The five built-in predictors are registered."""

    def test_names(self) -> None:
        """constant, arima, kalman, prophet and auto are all entry points."""
        assert {"constant", "arima", "kalman", "prophet", "auto"} <= set(NAMES)
