"""Load predictors: one online forecaster per series (request count, ISL, OSL).

Built-ins register through the ``dynamo_planner.predictors`` entry points. Heavy libraries
(pmdarima, filterpy, prophet) are imported inside their modules only.
"""
