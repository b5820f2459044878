"""Request-level simulator of prefill and decode workers, driven by a trace.

* :mod:`~dynamo_planner.sim.engine_model` - prefill batch and decode step times from a
  profile;
* :mod:`~dynamo_planner.sim.engine` - the event-driven simulation (routing, batching, KV
  admission, cold start, drain); :mod:`~dynamo_planner.sim.results` - what it produced;
  :mod:`~dynamo_planner.sim.frontend_view` - what a frontend's metrics give of it;
* :mod:`~dynamo_planner.sim.workload` - trace transforms and ServeGen arrival synthesis;
* :mod:`~dynamo_planner.sim.edges` - the clock, metric source and connector a
  :class:`~dynamo_planner.planner.Planner` drives it through;
* :mod:`~dynamo_planner.sim.metrics` and :mod:`~dynamo_planner.sim.baselines` - how runs
  are judged, and what they are compared with; :mod:`~dynamo_planner.sim.oracle` and
  :mod:`~dynamo_planner.sim.schedule` - what a planner knowing the future would spend;
* :mod:`~dynamo_planner.sim.replay` - the replay entry point;
  :mod:`~dynamo_planner.sim.report` - what it measured, its table and files;
  :mod:`~dynamo_planner.sim.plot` - its plot (needs matplotlib).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from dynamo_planner.sim.baselines import best_static, capacity_floor, run_static
from dynamo_planner.sim.edges import (
    OraclePredictor,
    SimClock,
    SimConnector,
    SimMetricSource,
)
from dynamo_planner.sim.engine import SimConfig, Simulation
from dynamo_planner.sim.engine_model import EngineModel
from dynamo_planner.sim.oracle import IntervalOracle, interval_oracle
from dynamo_planner.sim.replay import (
    ReplayOptions,
    ReplayReport,
    areplay,
    replay,
    run_planner,
)
from dynamo_planner.sim.results import SimResult
from dynamo_planner.sim.schedule import (
    RefinedSchedule,
    ScheduleRun,
    refine_schedule,
    replay_schedule,
)
from dynamo_planner.sim.workload import (
    load_scale,
    rate_scale,
    spread_ties,
    synthesize_servegen,
    window,
)

__all__ = [
    "EngineModel",
    "IntervalOracle",
    "OraclePredictor",
    "RefinedSchedule",
    "ReplayOptions",
    "ReplayReport",
    "ScheduleRun",
    "SimClock",
    "SimConfig",
    "SimConnector",
    "SimMetricSource",
    "SimResult",
    "Simulation",
    "areplay",
    "best_static",
    "capacity_floor",
    "interval_oracle",
    "load_scale",
    "rate_scale",
    "refine_schedule",
    "replay",
    "replay_schedule",
    "run_planner",
    "run_static",
    "spread_ties",
    "synthesize_servegen",
    "window",
]
