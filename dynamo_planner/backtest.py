"""Forecast backtest: replay a trace one interval at a time and score each predictor.

Each predictor gets one fresh instance per series (request count, mean ISL, mean OSL), as in
the planner. For every interval from ``start_index`` on (the 6th by default) the forecast
made from the intervals before it is compared with the actual value:

* ``smape``: mean of ``2|f - a| / (|f| + |a|)``, counting 0 when both are 0;
* ``mae``: mean absolute error, in the series' unit (requests or tokens);
* ``under``: share of intervals whose forecast was below the actual (an under-forecast
  is what leaves the planner short of capacity);
* ``step_ms_median`` / ``step_ms_p99``: wall-clock cost of one ``observe`` + ``predict``
  step, in milliseconds.

Intervals whose actual is unknown (the mean ISL/OSL of an empty interval, or of a ServeGen
window) are neither fed nor scored. Before timing, a throwaway instance of each predictor
is fed the first intervals, so one-off imports do not count as step cost.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from pathlib import Path

    from dynamo_planner.protocols import Predictor
    from dynamo_planner.traces import IntervalSeries

__all__ = [
    "SERIES_KEYS",
    "BacktestResult",
    "Score",
    "backtest",
    "plot_backtest",
    "resolve_predictors",
]

FloatArray = npt.NDArray[np.float64]
Factory = Callable[[], "Predictor"]
Progress = Callable[[str, str, int, int], None]
"""``progress(predictor, series, done, total)``, called as the replay advances."""

SERIES_KEYS = ("num_req", "isl", "osl")
"""The three series a planner forecasts."""

_PREDICTOR_GROUP = "dynamo_planner.predictors"
_WARMUP_INTERVALS = 12


@attrs.frozen(kw_only=True)
class Score:
    """How one predictor did on one series.

    Attributes:
        smape: Mean symmetric absolute percentage error (0 to 2; NaN if nothing scored).
        mae: Mean absolute error, in the series' unit.
        under: Share of scored intervals forecast below the actual.
        step_ms_median: Median cost of one observe + predict step, milliseconds.
        step_ms_p99: 99th percentile of that cost, milliseconds.
        scored: Intervals scored.
    """

    smape: float
    mae: float
    under: float
    step_ms_median: float
    step_ms_p99: float
    scored: int

    def to_dict(self) -> dict[str, float | None]:
        """The JSON fields (NaN becomes ``None``)."""
        fields = ("smape", "mae", "under", "step_ms_median", "step_ms_p99")
        return {name: _json_number(getattr(self, name)) for name in fields}


def _json_number(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


@attrs.frozen(kw_only=True, eq=False)
class BacktestResult:
    """Scores and forecasts of a backtest.

    Attributes:
        series: The interval series replayed.
        start_index: Index of the first scored interval.
        scores: ``scores[predictor][series_key]``.
        forecasts: ``forecasts[predictor][series_key]``: the forecast made for each
            interval (NaN before ``start_index``), aligned with the series.
    """

    series: IntervalSeries
    start_index: int
    scores: Mapping[str, Mapping[str, Score]]
    forecasts: Mapping[str, Mapping[str, FloatArray]]

    @property
    def predictors(self) -> tuple[str, ...]:
        """The predictors, in the order they were run."""
        return tuple(self.scores)

    def to_dict(self) -> dict[str, dict[str, dict[str, float | None]]]:
        """``{predictor: {series: {"smape", "mae", "under", "step_ms_median", "step_ms_p99"}}}``."""
        return {
            name: {key: score.to_dict() for key, score in by_series.items()}
            for name, by_series in self.scores.items()
        }

    def table(self, key: str = "num_req", *, baseline: str | None = "constant") -> str:
        """A plain-text table of one series' scores, one predictor per row.

        Args:
            key: The series (``num_req``, ``isl`` or ``osl``).
            baseline: A predictor to compare with: its row is marked and the others get
                their sMAPE as a ratio to it.
        """
        base = self.scores.get(baseline or "", {}).get(key)
        header = [
            "predictor",
            "sMAPE",
            "vs " + (baseline or "-"),
            "MAE",
            "under",
            "ms p50",
            "ms p99",
        ]
        rows = [header]
        for name, by_series in self.scores.items():
            score = by_series.get(key)
            if score is None:
                continue
            ratio = (
                f"{score.smape / base.smape:.2f}x"
                if base is not None and base.smape > 0 and math.isfinite(score.smape)
                else "-"
            )
            rows.append(
                [
                    name + (" (baseline)" if name == baseline else ""),
                    _fmt(score.smape, 4),
                    ratio,
                    _fmt(score.mae, 1),
                    _fmt(score.under, 2),
                    _fmt(score.step_ms_median, 3),
                    _fmt(score.step_ms_p99, 2),
                ]
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = [
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
            for row in rows
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)


def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "-"


def resolve_predictors(
    predictors: Sequence[str] | Mapping[str, Factory],
    *,
    config: Any = None,
    interval_s: float | None = None,
) -> dict[str, Factory]:
    """Turn predictor names (entry points) or a mapping of factories into factories.

    Names are built with their class's ``from_config(config)``. When ``interval_s`` is given
    the configuration's ``adjustment_interval_s`` is set to it, so a predictor that needs
    the step (Prophet) gets the series' own.

    Raises:
        PluginNotFoundError: A name is not an installed predictor.
    """
    if isinstance(predictors, Mapping):
        return dict(predictors)
    from dynamo_planner.config import PlannerConfig
    from dynamo_planner.plugins import default_registry

    cfg = PlannerConfig() if config is None else config
    if (
        interval_s is not None
        and getattr(cfg, "adjustment_interval_s", None) != interval_s
    ):
        cfg = attrs.evolve(cfg, adjustment_interval_s=float(interval_s))
    registry = default_registry()
    factories: dict[str, Factory] = {}
    for name in predictors:
        cls = registry.load(_PREDICTOR_GROUP, name)

        def factory(cls: Any = cls) -> Predictor:
            predictor: Predictor = cls.from_config(cfg)
            return predictor

        factories[name] = factory
    return factories


def _smape_terms(forecast: FloatArray, actual: FloatArray) -> FloatArray:
    total = np.abs(forecast) + np.abs(actual)
    safe = np.where(total > 0, total, 1.0)
    return np.asarray(np.where(total > 0, 2.0 * np.abs(forecast - actual) / safe, 0.0))


def _replay(
    factory: Factory,
    values: FloatArray,
    start_index: int,
    tick: Callable[[int], None] | None,
) -> tuple[FloatArray, FloatArray]:
    """Forecasts for every interval (NaN before the start) and the cost of each step, s."""
    predictor = factory()
    forecasts = np.full(values.shape, np.nan)
    steps: list[float] = []
    current = predictor.predict().value
    for index, actual in enumerate(values):
        if index >= start_index:
            forecasts[index] = current
        if not math.isfinite(actual):
            continue
        began = time.perf_counter()
        predictor.observe(float(actual))
        current = predictor.predict().value
        steps.append(time.perf_counter() - began)
        if tick is not None:
            tick(index + 1)
    return forecasts, np.asarray(steps, dtype=np.float64)


def _known(values: FloatArray, counts: FloatArray, key: str) -> FloatArray:
    """The series with unknown actuals as NaN (lengths of empty intervals are unknown)."""
    if key == "num_req":
        return np.asarray(values, dtype=np.float64)
    return np.asarray(np.where(counts > 0, values, np.nan), dtype=np.float64)


def _score(
    forecasts: FloatArray, actual: FloatArray, steps: FloatArray, start: int
) -> Score:
    mask = np.zeros(actual.shape, dtype=bool)
    mask[start:] = True
    mask &= np.isfinite(actual) & np.isfinite(forecasts)
    f, a = forecasts[mask], actual[mask]
    costs_ms = steps * 1000.0
    nan = math.nan
    return Score(
        smape=float(np.mean(_smape_terms(f, a))) if f.size else nan,
        mae=float(np.mean(np.abs(f - a))) if f.size else nan,
        under=float(np.mean(f < a)) if f.size else nan,
        step_ms_median=float(np.median(costs_ms)) if costs_ms.size else nan,
        step_ms_p99=float(np.percentile(costs_ms, 99)) if costs_ms.size else nan,
        scored=int(f.size),
    )


def backtest(
    series: IntervalSeries,
    predictors: Sequence[str] | Mapping[str, Factory],
    *,
    config: Any = None,
    start_index: int = 5,
    keys: Sequence[str] = SERIES_KEYS,
    progress: Progress | None = None,
) -> BacktestResult:
    """Replay ``series`` one interval at a time through each predictor and score it.

    Args:
        series: The intervals (from :func:`dynamo_planner.traces.load_intervals`).
        predictors: Entry-point names (built with ``from_config``), or a mapping of names
            to zero-argument factories.
        config: The :class:`~dynamo_planner.config.PlannerConfig` names are built from
            (defaults otherwise); its adjustment interval is set to the series'.
        start_index: The first interval scored (5: the 6th, after five values).
        keys: The series to replay (``num_req``, ``isl``, ``osl``).
        progress: Called as ``progress(predictor, series, done, total)`` while replaying.

    Returns:
        Scores and forecasts per predictor and series.

    Raises:
        ValueError: ``start_index`` is negative or a key is unknown.
        PluginNotFoundError: A predictor name is not installed.
    """
    if start_index < 0:
        raise ValueError(f"start_index must be >= 0, got {start_index}")
    unknown = [k for k in keys if k not in SERIES_KEYS]
    if unknown:
        raise ValueError(
            f"unknown series {unknown}; choose from {', '.join(SERIES_KEYS)}"
        )
    factories = resolve_predictors(
        predictors, config=config, interval_s=series.interval_s
    )
    counts = np.asarray(series.num_req, dtype=np.float64)
    scores: dict[str, dict[str, Score]] = {}
    forecasts: dict[str, dict[str, FloatArray]] = {}
    total = len(series)
    for name, factory in factories.items():
        scores[name], forecasts[name] = {}, {}
        for key in keys:
            actual = _known(series.series(key), counts, key)
            _warm_up(factory, actual)
            tick = None
            if progress is not None:

                def tick(done: int, name: str = name, key: str = key) -> None:
                    progress(name, key, done, total)

            predicted, steps = _replay(factory, actual, start_index, tick)
            scores[name][key] = _score(predicted, actual, steps, start_index)
            forecasts[name][key] = predicted
    return BacktestResult(
        series=series, start_index=start_index, scores=scores, forecasts=forecasts
    )


def _warm_up(factory: Factory, actual: FloatArray) -> None:
    """Feed a throwaway instance a few values so one-off imports are not timed."""
    predictor = factory()
    for value in actual[:_WARMUP_INTERVALS]:
        if math.isfinite(value):
            predictor.observe(float(value))
            predictor.predict()


def plot_backtest(result: BacktestResult, path: str | Path) -> None:
    """Draw each series' actual values and every predictor's forecasts into ``path``.

    Raises:
        ImportError: matplotlib is not installed (``pip install 'dynamo_planner[plot]'``).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "plotting a backtest needs matplotlib: pip install 'dynamo_planner[plot]'"
        ) from exc
    keys = [k for k in SERIES_KEYS if any(k in s for s in result.scores.values())]
    fig = Figure(figsize=(11, 3.2 * len(keys)))
    axes = fig.subplots(len(keys), 1, sharex=True, squeeze=False)
    minutes = (result.series.start_s - result.series.start_s[0]) / 60.0
    labels = {
        "num_req": "requests per interval",
        "isl": "mean ISL (tokens)",
        "osl": "mean OSL (tokens)",
    }
    counts = np.asarray(result.series.num_req, dtype=np.float64)
    for axis, key in zip(axes[:, 0], keys, strict=True):
        actual = _known(result.series.series(key), counts, key)
        axis.plot(minutes, actual, color="black", linewidth=1.6, label="actual")
        for name, by_series in result.forecasts.items():
            if key in by_series:
                smape = result.scores[name][key].smape
                axis.plot(
                    minutes,
                    by_series[key],
                    linewidth=1.0,
                    label=f"{name} (sMAPE {smape:.3f})",
                )
        axis.set_ylabel(labels[key])
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, ncol=3, loc="upper left")
    axes[-1, 0].set_xlabel("minutes from the first interval")
    fig.suptitle(
        f"One-step forecasts, {result.series.interval_s:g} s intervals: {result.series.source}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
