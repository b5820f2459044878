"""Fixtures of the simulator tests: the bundled profile, its engine model, a planner."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest

from dynamo_planner.profiles import load_profile
from dynamo_planner.sim.engine_model import EngineModel
from dynamo_planner.values import Forecast, PerfProfile


@attrs.define
class LastValuePredictor:
    """Forecasts the last observed value (a local stand-in for the constant predictor)."""

    last: float = 0.0

    @classmethod
    def from_config(cls, config: object) -> LastValuePredictor:
        return cls()

    def observe(self, value: float) -> None:
        self.last = value

    def predict(self) -> Forecast:
        return Forecast.point(self.last)


@pytest.fixture(name="profile", scope="session")
def _profile() -> PerfProfile:
    from dynamo_planner.data import H200_PROFILE_DIR

    return load_profile(H200_PROFILE_DIR)


@pytest.fixture(name="model", scope="session")
def _model(profile: PerfProfile) -> EngineModel:
    return EngineModel.from_profile(profile)


@pytest.fixture(name="planner_registry", scope="session")
def _planner_registry() -> object:
    """Installed plugins plus a ``last_value`` predictor."""
    from dynamo_planner.plugins import Registry

    return Registry(
        {"dynamo_planner.predictors": {"last_value": LastValuePredictor}},
        installed=True,
    )


@pytest.fixture(name="make_planner")
def _make_planner(profile: PerfProfile, planner_registry: Any) -> Callable[..., object]:
    """A factory of reference planners with last-value predictors."""
    from dynamo_planner.config import PlannerConfig

    registry = planner_registry

    def make(**settings: object) -> object:
        from dynamo_planner.planner import Planner

        config = PlannerConfig.from_mapping(
            {"load_predictor": "last_value", "max_gpu_budget": -1, **settings}
        )
        return Planner.from_config(config, profile=profile, registry=registry)

    return make
