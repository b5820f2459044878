"""dynamo_planner: plans prefill/decode GPU workers so latency targets hold at the lowest cost.

Importing this package is cheap: forecasting libraries (pmdarima, prophet, filterpy) and
plotting load only when a plugin that needs them is used.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from typing import Any

from dynamo_planner.exceptions import (
    ConfigError,
    ConnectorError,
    MetricSourceError,
    NotReadyError,
    PlannerError,
    PluginError,
    ProfileError,
    TraceError,
)
from dynamo_planner.values import (
    Corrections,
    Demand,
    Forecast,
    Observation,
    PerfProfile,
    ReplicaPlan,
    ReplicaState,
    Sample,
    Status,
    WorkerLoad,
)

__all__ = [
    "ConfigError",
    "ConnectorError",
    "Corrections",
    "Demand",
    "Forecast",
    "MetricSourceError",
    "NotReadyError",
    "Observation",
    "PerfProfile",
    "PlannerError",
    "PluginError",
    "ProfileError",
    "ReplicaPlan",
    "ReplicaState",
    "Sample",
    "Status",
    "TraceError",
    "WorkerLoad",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from dynamo_planner._compat import metadata

        return metadata.version("dynamo_planner")
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
