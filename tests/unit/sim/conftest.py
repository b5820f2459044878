"""Fixtures of the simulator tests: the bundled profile, its engine model, a planner,
and phased Poisson traces."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np
import pytest

from dynamo_planner.profiles import load_profile
from dynamo_planner.sim.engine_model import EngineModel
from dynamo_planner.traces import RequestTrace
from dynamo_planner.values import Forecast, PerfProfile

PhasedTrace = Callable[..., RequestTrace]


def phased_trace(
    rates_per_s: Sequence[float], *, seed: int = 0, phase_s: float = 300.0
) -> RequestTrace:
    """Poisson arrivals in back-to-back phases of ``phase_s`` at the given rates; every
    request has ISL 3000 and OSL 150 tokens."""
    rng = np.random.default_rng(seed)
    parts = []
    for k, rate in enumerate(rates_per_s):
        start = k * phase_s
        gaps = rng.exponential(1 / rate, size=int(rate * phase_s * 2))
        t = start + np.cumsum(gaps)
        parts.append(t[t < start + phase_s])
    arrival = np.concatenate(parts)
    return RequestTrace(
        arrival_s=arrival,
        isl_tokens=np.full(arrival.size, 3000.0),
        osl_tokens=np.full(arrival.size, 150.0),
        source=f"phases at {', '.join(f'{r:g}' for r in rates_per_s)} requests/s",
    )


@pytest.fixture(name="phased")
def _phased() -> PhasedTrace:
    """:func:`phased_trace`, for tests that build traces of several phases."""
    return phased_trace


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
