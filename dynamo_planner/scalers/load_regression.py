"""Online 1-D regression of latency on load, for load-based scaling (spec §4.3).

Load-based scaling learns, from the router's per-worker metrics, how a worker's latency
grows with its load, and asks the inverse question: *what is the largest load at which the
latency still meets the SLA?*

* **Prefill:** ``x = active_prefill_tokens + last_isl_tokens``, ``y = last_ttft_ms``.
* **Decode:** ``x = active_decode_blocks``, ``y = last_itl_ms``.

:class:`LoadRegression` keeps the last ``window`` ``(x, y)`` pairs (a sliding window) and
fits ordinary least squares with an intercept on demand; the fit is a frozen
:class:`LinearFit`, whose :meth:`LinearFit.solve` is the reverse solve:

* slope ``m > 0``: ``x_sla = max(0, (y_target - b) / m)``;
* slope ``m <= 0`` (latency does not grow with load in the window, e.g. a burst of cache
  hits), or so small that the division overflows (``m = 1e-309``, a flat line): Dynamo's
  snapshot-B fallback: the smallest ``x`` among observations whose latency is below the
  target, or, when there is none, the smallest ``x`` observed (at least 0).

The regression is numpy only, centred for numerical stability, and equal to scikit-learn's
``LinearRegression`` (which Dynamo uses) up to rounding: all-equal ``x`` gives slope 0 and
the mean ``y`` as intercept.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import collections
import math
from typing import Any, Literal

import attrs
import numpy as np

from dynamo_planner.exceptions import ConfigError

__all__ = ["LinearFit", "LoadRegression", "SlaSolution", "SolveMethod"]

SolveMethod = Literal["ols", "fallback_below_target", "fallback_min_load"]
"""How :meth:`LinearFit.solve` found its answer.

``"ols"``: the fitted line (slope > 0). ``"fallback_below_target"``: slope <= 0, the
smallest load observed with latency under the target. ``"fallback_min_load"``: slope <= 0
and no observation under the target, the smallest load observed.
"""


@attrs.frozen(kw_only=True)
class SlaSolution:
    """The largest load at which the latency meets a target, and how it was found.

    Attributes:
        load: The load (``x``) at the target, never negative.
        method: Which rule gave it (see :data:`SolveMethod`).
        clamped: True when the fitted line crossed the target at a negative load and
            the answer was clamped to 0.
    """

    load: float
    method: SolveMethod
    clamped: bool = False


def _finite_tuple(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


@attrs.frozen(kw_only=True, eq=False)
class LinearFit:
    """A least-squares line ``y = slope * x + intercept`` and the points it was fitted on.

    Build one with :meth:`of` (or :meth:`LoadRegression.fit`).

    Attributes:
        slope: Latency per unit of load (ms per token, or ms per KV block).
        intercept: Latency at zero load, in ms.
        x: The loads fitted on, oldest first.
        y: The latencies (ms) fitted on, oldest first.
    """

    slope: float
    intercept: float
    x: tuple[float, ...] = attrs.field(converter=_finite_tuple)
    y: tuple[float, ...] = attrs.field(converter=_finite_tuple)

    @classmethod
    def of(cls, x: Any, y: Any) -> LinearFit:
        """Fit ordinary least squares with an intercept.

        Args:
            x: Loads (at least one, all finite).
            y: Latencies in ms, as many as ``x``, all finite.

        Returns:
            The fit. With all loads equal the slope is 0 and the intercept the mean
            latency, as scikit-learn's ``LinearRegression`` gives.

        Raises:
            ValueError: ``x`` and ``y`` are empty, of different lengths or not finite.
        """
        xs = np.asarray(x, dtype=np.float64).ravel()
        ys = np.asarray(y, dtype=np.float64).ravel()
        if xs.size == 0 or xs.size != ys.size:
            msg = (
                f"need equally many loads and latencies, at least one; got "
                f"{xs.size} and {ys.size}"
            )
            raise ValueError(msg)
        if not (np.isfinite(xs).all() and np.isfinite(ys).all()):
            msg = "loads and latencies must be finite"
            raise ValueError(msg)
        x_mean = float(xs.mean())
        y_mean = float(ys.mean())
        dx = xs - x_mean
        sxx = float(dx @ dx)
        slope = 0.0 if sxx == 0.0 else float(dx @ (ys - y_mean)) / sxx
        intercept = y_mean - slope * x_mean
        return cls(slope=slope, intercept=intercept, x=xs.tolist(), y=ys.tolist())

    @property
    def num_observations(self) -> int:
        """How many points the line was fitted on."""
        return len(self.x)

    def predict(self, load: float) -> float:
        """The forward prediction: the latency (ms) the line gives at ``load``."""
        return self.slope * load + self.intercept

    def solve(self, latency_target_ms: float) -> SlaSolution:
        """The reverse solve: the largest load whose latency meets ``latency_target_ms``.

        See the module docstring for the rules (the line when its slope is positive,
        Dynamo's snapshot-B fallback otherwise).

        Args:
            latency_target_ms: The SLA (TTFT or ITL target) in ms.

        Returns:
            The load, never negative, and the rule that gave it.
        """
        if self.slope > 0:
            raw = (latency_target_ms - self.intercept) / self.slope
            if raw < 0:
                return SlaSolution(load=0.0, method="ols", clamped=True)
            if math.isfinite(raw):
                return SlaSolution(load=raw, method="ols")
            # a slope too small to divide by (e.g. 1e-309) is a flat line: fall back
        below = [
            x for x, y in zip(self.x, self.y, strict=True) if y < latency_target_ms
        ]
        if below:
            return SlaSolution(
                load=max(0.0, min(below)), method="fallback_below_target"
            )
        return SlaSolution(load=max(0.0, min(self.x)), method="fallback_min_load")


def _at_least_one(_: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"must be an integer of at least 1, got {value!r}",
            field=attribute.alias or attribute.name,
            value=value,
        )


@attrs.define(kw_only=True)
class LoadRegression:
    """A sliding window of ``(load, latency_ms)`` observations and its least-squares fit.

    Attributes:
        window: Most observations kept; the oldest is dropped first
            (``--loadbased-learning-window``).
        min_observations: Observations needed before the regression answers
            (``--loadbased-min-observations``); at most ``window``.
    """

    window: int = attrs.field(default=50, validator=_at_least_one)
    min_observations: int = attrs.field(default=5, validator=_at_least_one)
    _points: collections.deque[tuple[float, float]] = attrs.field(init=False)
    _fit: LinearFit | None = attrs.field(init=False, default=None)
    _stale: bool = attrs.field(init=False, default=True)

    def __attrs_post_init__(self) -> None:
        if self.min_observations > self.window:
            raise ConfigError(
                f"must not exceed the learning window ({self.window}), or the "
                f"regression never has enough data; got {self.min_observations}",
                field="loadbased_min_observations",
                value=self.min_observations,
            )
        self._points = collections.deque(maxlen=self.window)

    def observe(self, load: float, latency_ms: float) -> None:
        """Add one observation (the oldest is dropped when the window is full).

        Raises:
            ValueError: ``load`` or ``latency_ms`` is not finite.
        """
        if not (math.isfinite(load) and math.isfinite(latency_ms)):
            msg = (
                f"observation must be finite, got load={load!r}, latency={latency_ms!r}"
            )
            raise ValueError(msg)
        self._points.append((float(load), float(latency_ms)))
        self._stale = True

    @property
    def num_observations(self) -> int:
        """Observations in the window."""
        return len(self._points)

    def has_sufficient_data(self) -> bool:
        """True once the window holds at least ``min_observations`` observations."""
        return len(self._points) >= self.min_observations

    def fit(self) -> LinearFit | None:
        """The least-squares line over the window, or ``None`` without enough data.

        The fit is computed lazily, on the first call after new observations.
        """
        if not self.has_sufficient_data():
            return None
        if self._stale or self._fit is None:
            xs, ys = zip(*self._points, strict=True)
            self._fit = LinearFit.of(xs, ys)
            self._stale = False
        return self._fit

    @property
    def slope(self) -> float | None:
        """The fitted slope, or ``None`` without enough data."""
        fit = self.fit()
        return None if fit is None else fit.slope

    @property
    def intercept(self) -> float | None:
        """The fitted intercept (ms), or ``None`` without enough data."""
        fit = self.fit()
        return None if fit is None else fit.intercept

    def predict_x_from_sla(self, latency_target_ms: float) -> float | None:
        """The largest load meeting ``latency_target_ms``, or ``None`` without enough data.

        The name is Dynamo's; see :meth:`LinearFit.solve` for the rules.
        """
        fit = self.fit()
        return None if fit is None else fit.solve(latency_target_ms).load
