"""The ARIMA predictor: orders re-selected on a recent window, bounded cost per step (§3.3).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import deque
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt

from dynamo_planner.predictors._base import (
    DEFAULT_QUANTILE,
    IdleSkip,
    ResidualBand,
    check_value,
    config_value,
    finite_forecast,
    normal_quantile,
    quantile_validator,
)
from dynamo_planner.values import Forecast

__all__ = ["ARIMAPredictor"]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

_SYNC_SEARCH_POINTS = 40
"""Below this many window values an order search runs to the end in one step."""

_MAX_SEARCH_FITS = 100
"""Upper bound on the candidate fits of one order search (pmdarima's ``max_k``)."""

_FITS_PER_STEP = 2
"""Candidate fits one observation pays for once a search is spread over steps."""

_MAX_FEV = 40
"""Residual evaluations per parameter a CSS fit may spend (MINPACK's ``maxfev``)."""

_FALLBACKS = ("compare", "reference", "off")

Candidate = tuple[int, int, bool]
"""``(p, q, with_intercept)`` of a candidate model; ``d`` is fixed per search."""


def _max_inverse_root(coefficients: FloatArray) -> float:
    """Largest modulus of the inverse roots of ``1 + c1 z + ... + ck z^k``."""
    if coefficients.size == 0 or not np.any(coefficients):
        return 0.0
    return float(np.max(np.abs(np.roots(np.r_[1.0, coefficients]))))


def _css_fit(
    w: FloatArray, p: int, q: int, intercept: bool, condition: int
) -> tuple[FloatArray, float, float]:
    """Fit ARMA(p, q) (with a constant) to ``w`` by conditional sum of squares.

    The model is ``w_t = c + sum(phi_i w_{t-i}) + e_t + sum(theta_j e_{t-j})``: the
    parameters of statsmodels' SARIMAX with ``trend="c"``, which pmdarima fits. Residuals
    are summed from index ``condition`` on, so candidates with different ``p`` are scored on
    the same values.

    Returns:
        ``(params, sigma2, aic)`` with ``params = [c], phi..., theta...``; the AIC is
        ``inf`` when the fit failed or is not stationary and invertible (as pmdarima rules
        out near-unit roots).
    """
    from scipy.optimize import leastsq
    from scipy.signal import lfilter

    k_c = int(intercept)
    size = k_c + p + q
    m = w.size
    n_eff = m - condition
    if n_eff <= size + 1:
        return np.zeros(size), math.nan, math.inf
    lagged = [w[p - 1 - i : m - 1 - i] for i in range(p)]
    target = w[p:]

    def residuals(theta: FloatArray) -> FloatArray:
        a = target - theta[0] if k_c else target.copy()
        for i in range(p):
            a = a - theta[k_c + i] * lagged[i]
        if q:
            a = lfilter([1.0], np.r_[1.0, theta[k_c + p :]], a)
        return np.asarray(a[condition - p :], dtype=np.float64)

    params = np.zeros(size)
    if k_c:
        params[0] = float(np.mean(w))
    if size:
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                solution = leastsq(residuals, params, maxfev=_MAX_FEV * (size + 1))[0]
            params = np.asarray(solution, dtype=np.float64).reshape(size)
        except (ValueError, TypeError, np.linalg.LinAlgError):
            return params, math.nan, math.inf
    with np.errstate(all="ignore"):
        errors = residuals(params)
        sse = float(np.dot(errors, errors))
    floor = 1e-10 * max(float(np.var(w)), 1e-12)
    sigma2 = max(sse / n_eff, floor) if math.isfinite(sse) else math.nan
    if not math.isfinite(sigma2):
        return params, sigma2, math.inf
    aic = n_eff * math.log(sigma2) + 2.0 * (size + 1)
    if (
        _max_inverse_root(-params[k_c : k_c + p]) > 1 - 1e-2
        or _max_inverse_root(params[k_c + p :]) > 1 - 1e-2
    ):
        return params, sigma2, math.inf
    return params, sigma2, aic


def _mle_params(
    data: FloatArray,
    order: tuple[int, int, int],
    intercept: bool,
    start_params: FloatArray,
    maxiter: int,
) -> tuple[FloatArray, float] | None:
    """Refit by exact maximum likelihood with pmdarima, starting from ``start_params``.

    Returns:
        ``(params, sigma2)`` in the layout of :func:`_css_fit`, or ``None`` on failure.
    """
    import pmdarima as pm

    model = pm.ARIMA(
        order=order,
        with_intercept=intercept,
        start_params=start_params,
        suppress_warnings=True,
        maxiter=maxiter,
        method="lbfgs",
    )
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            model.fit(data)
            fitted = np.asarray(model.params(), dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - any numerical failure: keep the CSS fit
        logger.debug("ARIMA%s maximum-likelihood fit failed: %s", order, exc)
        return None
    if fitted.size != start_params.size or not np.all(np.isfinite(fitted)):
        return None
    return fitted[:-1], float(fitted[-1])


@attrs.define(eq=False)
class _ArmaState:
    """An ARIMA(p, d, q) with fixed parameters, run forward one value at a time.

    ``w`` is the ``d``-times differenced model-space series and
    ``w_t = c + sum(phi_i w_{t-i}) + e_t + sum(theta_j e_{t-j})``. An update is a handful of
    multiplications, whatever the history. As in the CSS fit, the first ``p`` residuals
    are taken as zero.
    """

    d: int
    constant: float
    phi: FloatArray
    theta: FloatArray
    sigma2: float
    _z: deque[float] = attrs.field(init=False)
    _w: deque[float] = attrs.field(init=False)
    _e: deque[float] = attrs.field(init=False)
    _seen_w: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self._z = deque(maxlen=max(self.d, 1))
        self._w = deque([0.0] * self.phi.size, maxlen=max(self.phi.size, 1))
        self._e = deque([0.0] * self.theta.size, maxlen=max(self.theta.size, 1))

    @classmethod
    def fitted(
        cls,
        data: FloatArray,
        order: tuple[int, int, int],
        intercept: bool,
        params: FloatArray,
        sigma2: float,
    ) -> _ArmaState:
        """The model with ``params`` (layout of :func:`_css_fit`) run through ``data``."""
        p, d, q = order
        k_c = int(intercept)
        state = cls(
            d,
            float(params[0]) if k_c else 0.0,
            np.asarray(params[k_c : k_c + p], dtype=np.float64),
            np.asarray(params[k_c + p : k_c + p + q], dtype=np.float64),
            sigma2,
        )
        for z in data:
            state.update(float(z))
        return state

    def _next_w(self) -> float:
        value = self.constant
        if self.phi.size:
            value += float(np.dot(self.phi, list(reversed(self._w))))
        if self.theta.size:
            value += float(np.dot(self.theta, list(reversed(self._e))))
        return value

    def _integrate(self, w: float) -> float:
        if self.d == 0:
            return w
        if self.d == 1:
            return w + self._z[-1]
        return w + 2.0 * self._z[-1] - self._z[-2]

    def update(self, z: float) -> None:
        """Run the model over the next model-space value."""
        if len(self._z) >= self.d:
            w = z if self.d == 0 else z - self._integrate(0.0)
            error = w - self._next_w() if self._seen_w >= self.phi.size else 0.0
            self._seen_w += 1
            if self.phi.size:
                self._w.append(w)
            if self.theta.size:
                self._e.append(error)
        if self.d:
            self._z.append(z)

    @property
    def ready(self) -> bool:
        """Whether enough values were seen to forecast."""
        return len(self._z) >= self.d and self._seen_w > 0

    def forecast(self) -> tuple[float, float]:
        """The next model-space value's mean and standard deviation."""
        return self._integrate(self._next_w()), math.sqrt(max(0.0, self.sigma2))


@attrs.define(eq=False)
class _StepwiseSearch:
    """pmdarima's stepwise (Hyndman-Khandakar) order search, over CSS fits.

    The data is frozen when the search starts; values that arrive meanwhile are kept in
    ``pending_raw`` and run through the chosen model when the search is adopted.
    """

    raw: FloatArray
    log_mode: bool
    max_p: int
    max_q: int
    max_order: int
    pending_raw: list[float] = attrs.field(factory=list)
    done: bool = False
    best_key: Candidate | None = None
    best_aic: float = math.inf
    best_params: FloatArray = attrs.field(factory=lambda: np.zeros(0))
    best_sigma2: float = math.nan
    fits: int = 0
    d: int = 0
    condition: int = 0
    data: FloatArray = attrs.field(init=False)
    _w: FloatArray = attrs.field(init=False)
    _limit: int = attrs.field(init=False, default=0)
    _queue: list[Candidate] = attrs.field(init=False, factory=list)
    _seen: dict[Candidate, float] = attrs.field(init=False, factory=dict)
    _phase: str = attrs.field(init=False, default="new")

    def __attrs_post_init__(self) -> None:
        self.data = np.log1p(self.raw) if self.log_mode else np.asarray(self.raw, float)
        self._w = self.data

    def _valid(self, key: Candidate) -> bool:
        p, q, intercept = key
        return (
            0 <= p <= min(self.max_p, self._limit)
            and 0 <= q <= min(self.max_q, self._limit)
            and p + q <= self.max_order
            and not (intercept and self.d >= 2)
            and key not in self._seen
        )

    def _neighbours(self, key: Candidate) -> list[Candidate]:
        p, q, c = key
        moves = [
            (p - 1, q, c), (p, q - 1, c), (p + 1, q, c), (p, q + 1, c),
            (p - 1, q - 1, c), (p - 1, q + 1, c), (p + 1, q - 1, c), (p + 1, q + 1, c),
            (p, q, not c),
        ]  # fmt: skip
        return [m for m in moves if self._valid(m)]

    def _start(self) -> None:
        from pmdarima.arima import ndiffs

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.d = int(ndiffs(self.data, alpha=0.05, test="kpss", max_d=2))
        self._w = np.diff(self.data, n=self.d) if self.d else self.data
        # As R's auto.arima: no more than a third of the values per lag polynomial.
        self._limit = self._w.size // 3
        self.condition = min(self.max_p, self._limit)
        intercept = self.d in (0, 1)
        start: list[Candidate] = [
            (2, 2, intercept),
            (0, 0, intercept),
            (1, 0, intercept),
        ]
        start.append((0, 1, intercept))
        if intercept:
            start.append((0, 0, False))
        if self._w.size == 0 or np.ptp(self._w) == 0:
            start = [(0, 0, intercept)]  # a perfect polynomial: nothing else to fit
        self._queue = [k for k in dict.fromkeys(start) if self._valid(k)]
        self._phase = "start"

    def step(self) -> None:
        """Fit the next candidate; set ``done`` when the search is over."""
        if self.done:
            return
        if self._phase == "new":
            self._start()
        while self._queue and self._queue[0] in self._seen:
            self._queue.pop(0)
        if not self._queue or self.fits >= _MAX_SEARCH_FITS:
            self.done = True
            return
        key = self._queue.pop(0)
        params, sigma2, aic = _css_fit(self._w, key[0], key[1], key[2], self.condition)
        self.fits += 1
        self._seen[key] = aic
        improved = aic < self.best_aic
        if improved:
            self.best_key, self.best_aic = key, aic
            self.best_params, self.best_sigma2 = params, sigma2
        if self._phase == "start":
            if not self._queue and self.best_key is not None:
                self._phase = "neighbours"
                self._queue = self._neighbours(self.best_key)
        elif improved and self.best_key is not None:
            self._queue = self._neighbours(self.best_key)
        if not self._queue:
            self.done = True

    def run(self) -> None:
        """Fit candidates until the search is over."""
        while not self.done:
            self.step()

    @property
    def order(self) -> tuple[int, int, int] | None:
        """The best ``(p, d, q)`` found."""
        if self.best_key is None:
            return None
        return (self.best_key[0], self.d, self.best_key[1])

    def model(self, method: str, maxiter: int) -> _ArmaState | None:
        """The winner, run through the frozen data (refit by ML for ``method="mle"``)."""
        order = self.order
        if order is None or self.best_key is None:
            return None
        intercept = self.best_key[2]
        params, sigma2 = self.best_params, self.best_sigma2
        if method == "mle":
            start = np.r_[params, max(sigma2, 1e-12)]
            refit = _mle_params(self.data, order, intercept, start, maxiter)
            if refit is not None:
                params, sigma2 = refit
        return _ArmaState.fitted(self.data, order, intercept, params, sigma2)


def _log_beats_raw(log_search: _StepwiseSearch, raw_search: _StepwiseSearch) -> bool:
    """Whether the log1p model fits better, comparing AICs on the data's scale.

    The log model's likelihood is of ``log1p(y)``; on the scale of ``y`` it gains the
    Jacobian ``-sum(log1p(y))``, so its AIC on that scale is ``AIC + 2 * sum(log1p(y))``.
    """
    skip = log_search.d + log_search.condition
    jacobian = 2.0 * float(np.sum(np.log1p(log_search.raw[skip:])))
    return log_search.best_aic + jacobian < raw_search.best_aic


def _optional_positive(
    _instance: Any, attribute: attrs.Attribute[Any], value: Any
) -> None:
    if value is not None and (not isinstance(value, int) or value < 1):
        raise ValueError(
            f"{attribute.name} must be None or an integer >= 1, got {value!r}"
        )


@attrs.define(kw_only=True, eq=False)
class ARIMAPredictor:
    """ARIMA(p, d, q) models chosen by AIC and re-selected on a recent window.

    Assumes the series (or its ``log1p``) is linear in its recent past: ``d`` differences
    (pmdarima's KPSS test), autoregressive terms, and moving-average terms over the forecast
    errors. The order search is pmdarima's stepwise (Hyndman-Khandakar) search with its
    default bounds. Each candidate is scored by the AIC of a conditional-sum-of-squares
    fit, as R's ``auto.arima(approximation=TRUE)`` does. The winner keeps those estimates
    (``method="css"``) or is refit by exact maximum likelihood with pmdarima
    (``method="mle"``, slower and uneven in cost).

    The reference (spec §3.3) chose the order once, from the first five values, and then
    refit that model on all the data at every step, so its cost grew with history. Here the
    order is re-selected on the last ``window`` values. While the history is short this
    happens each time it grows by a quarter, then every ``reselect_every`` values. Once the
    window holds 40 values, a search is spread over steps: two candidate fits per step, then
    one step to adopt the winner. Between searches each value runs through the current
    model in microseconds. No step pays for a whole search, and the cost of a step depends
    on the window, not on the history.

    Kept from the reference:

    * the last value is returned before ``min_points`` values;
    * a constant window forecasts that constant (pmdarima issue #572);
    * forecasts are never negative;
    * the ``log1p`` fallback when ``log1p`` is off and the order collapses to ``(0, d, 0)``.

    With ``collapse_fallback="reference"`` the model then moves to ``log1p`` space for good,
    as the reference does. The default ``"compare"`` refits in ``log1p`` space and keeps the
    model with the lower AIC, once both are measured on the data's scale (the log model's
    AIC plus the Jacobian ``2 * sum(log1p(y))``). ``"off"`` never falls back.

    The upper quantile is the model's one-step forecast distribution, ``mean + z * sigma``,
    passed through ``expm1`` in ``log1p`` space.

    Attributes:
        log1p: Model ``log1p(value)`` from the start.
        window: Values the order and parameters are estimated on.
        reselect_every: Values between order searches once the history is long. ``None``
            keeps the first order found (the reference's policy) and re-estimates its
            parameters on the window every ``window`` values.
        min_points: Values needed before a model is fitted.
        max_p: Largest autoregressive order searched (pmdarima's default 5).
        max_q: Largest moving-average order searched (5).
        max_order: Largest ``p + q`` searched (5).
        method: ``"css"`` or ``"mle"`` (see above).
        maxiter: Optimiser iterations of an ``"mle"`` refit.
        collapse_fallback: ``"compare"``, ``"reference"`` or ``"off"`` (see above).
        forecast_quantile: Level of :attr:`Forecast.upper`.
    """

    log1p: bool = False
    window: int = attrs.field(default=200, validator=attrs.validators.ge(10))
    reselect_every: int | None = attrs.field(default=50, validator=_optional_positive)
    min_points: int = attrs.field(default=5, validator=attrs.validators.ge(3))
    max_p: int = attrs.field(default=5, validator=attrs.validators.ge(0))
    max_q: int = attrs.field(default=5, validator=attrs.validators.ge(0))
    max_order: int = attrs.field(default=5, validator=attrs.validators.ge(0))
    method: str = attrs.field(
        default="css", validator=attrs.validators.in_(("css", "mle"))
    )
    maxiter: int = attrs.field(default=50, validator=attrs.validators.ge(1))
    collapse_fallback: str = attrs.field(
        default="compare", validator=attrs.validators.in_(_FALLBACKS)
    )
    forecast_quantile: float = attrs.field(
        default=DEFAULT_QUANTILE, validator=quantile_validator
    )
    _idle: IdleSkip = attrs.field(init=False, factory=IdleSkip)
    _raw: deque[float] = attrs.field(init=False)
    _count: int = attrs.field(init=False, default=0)
    _log_mode: bool = attrs.field(init=False, default=False)
    _tried_log: bool = attrs.field(init=False, default=False)
    _model: _ArmaState | None = attrs.field(init=False, default=None)
    _order: tuple[int, int, int] | None = attrs.field(init=False, default=None)
    _search: _StepwiseSearch | None = attrs.field(init=False, default=None)
    _collapsed: _StepwiseSearch | None = attrs.field(init=False, default=None)
    _next_search_at: int = attrs.field(init=False, default=0)
    _selections: int = attrs.field(init=False, default=0)
    _band: ResidualBand = attrs.field(init=False, factory=ResidualBand)
    _cache: Forecast | None = attrs.field(init=False, default=None)

    @_raw.default
    def _default_raw(self) -> deque[float]:
        return deque(maxlen=self.window)

    def __attrs_post_init__(self) -> None:
        self._log_mode = self.log1p
        self._next_search_at = self.min_points

    @classmethod
    def from_config(cls, config: object) -> ARIMAPredictor:
        """Build from a :class:`~dynamo_planner.config.PlannerConfig`.

        Reads ``load_predictor_log1p`` and ``forecast_quantile``.
        """
        return cls(
            log1p=config_value(config, "load_predictor_log1p", False),
            forecast_quantile=config_value(
                config, "forecast_quantile", DEFAULT_QUANTILE
            ),
        )

    # ---- introspection -------------------------------------------------------------------

    @property
    def num_observed(self) -> int:
        """Values kept so far (zeros dropped by idle-skip are not counted)."""
        return self._count

    @property
    def last_value(self) -> float:
        """The last value kept, or 0."""
        return self._raw[-1] if self._raw else 0.0

    @property
    def order(self) -> tuple[int, int, int] | None:
        """The ``(p, d, q)`` of the model in use, or ``None`` before the first fit."""
        return self._order

    @property
    def mode(self) -> str:
        """``"log1p"`` when the model in use works on ``log1p(value)``, else ``"raw"``."""
        return "log1p" if self._log_mode else "raw"

    @property
    def selections(self) -> int:
        """Models adopted so far (order searches completed)."""
        return self._selections

    # ---- protocol --------------------------------------------------------------------------

    def observe(self, value: float) -> None:
        """Add the next interval's value; may advance an order search by a bounded step.

        Raises:
            ValueError: The value is NaN, infinite or negative.
        """
        number = check_value(value)
        if not self._idle.accept(number):
            return
        if self._count:
            self._band.record(self.predict().value, number)
        self._cache = None
        self._raw.append(number)
        self._count += 1
        if self._model is not None:
            self._model.update(self._to_model(number, self._log_mode))
        if self._search is not None:
            self._search.pending_raw.append(number)
        self._advance_search()

    def predict(self) -> Forecast:
        """The one-step forecast; calling it again without a new value gives the same."""
        if self._cache is None:
            self._cache = self._forecast()
        return self._cache

    def rearm_idle_skip(self) -> None:
        """Skip zeros again until the next non-zero value (called after warm start)."""
        self._idle.rearm()

    # ---- internals -------------------------------------------------------------------------

    @staticmethod
    def _to_model(value: float, log_mode: bool) -> float:
        return math.log1p(value) if log_mode else value

    def _constant_window(self) -> bool:
        return len(self._raw) > 0 and max(self._raw) == min(self._raw)

    def _new_search(
        self, log_mode: bool, raw: FloatArray | None = None
    ) -> _StepwiseSearch:
        return _StepwiseSearch(
            raw=np.fromiter(self._raw, float) if raw is None else raw,
            log_mode=log_mode,
            max_p=self.max_p,
            max_q=self.max_q,
            max_order=self.max_order,
        )

    def _schedule_next(self) -> None:
        n = self._count
        if self.reselect_every is None:
            gap = self.window
        else:
            gap = min(self.reselect_every, max(1, n // 4))
        self._next_search_at = n + gap

    def _advance_search(self) -> None:
        search = self._search
        if search is None:
            due = self._count >= self._next_search_at or self._model is None
            if self._count < self.min_points or not due or self._constant_window():
                return
            if self.reselect_every is None and self._order is not None:
                self._refit_frozen_order()
                return
            sticky = self.collapse_fallback == "reference"
            search = self._search = self._new_search(
                self._log_mode if sticky else self.log1p
            )
            self._schedule_next()
        if self._model is None or len(search.raw) < _SYNC_SEARCH_POINTS:
            # Short windows are cheap: search, fall back and adopt in one go.
            while self._search is not None:
                self._search.run()
                self._finish_search(self._search)
        elif search.done:
            self._finish_search(search)  # adopting the winner is a step on its own
        else:
            for _ in range(_FITS_PER_STEP):
                search.step()

    def _collapses(self, search: _StepwiseSearch) -> bool:
        order = search.order
        if order is None or order[0] or order[2] or search.log_mode or self.log1p:
            return False
        if self.collapse_fallback == "off":
            return False
        return self.collapse_fallback == "compare" or not self._tried_log

    def _finish_search(self, search: _StepwiseSearch) -> None:
        """Adopt the search's winner, or start the log1p fallback search."""
        self._search = None
        collapsed, self._collapsed = self._collapsed, None
        if collapsed is None and self._collapses(search):
            # The reference's fallback: a (0, d, 0) raw model is refit on log1p(values).
            self._tried_log = True
            self._collapsed = search
            log_search = self._new_search(True, raw=search.raw)
            log_search.pending_raw = search.pending_raw
            self._search = log_search
            return
        chosen = search
        if collapsed is not None:
            collapsed.pending_raw = search.pending_raw
            if search.best_key is None or (
                self.collapse_fallback == "compare"
                and not _log_beats_raw(search, collapsed)
            ):
                chosen = collapsed
        model = chosen.model(self.method, self.maxiter)
        if model is None:
            logger.debug(
                "ARIMA order search found no usable model; keeping the last one"
            )
            return
        for value in chosen.pending_raw:
            model.update(self._to_model(value, chosen.log_mode))
        self._model = model
        self._log_mode = chosen.log_mode
        self._order = chosen.order
        self._selections += 1

    def _refit_frozen_order(self) -> None:
        """The reference's policy: keep the first order, re-estimate it on the window."""
        assert self._order is not None  # noqa: S101 - the caller checks
        p, d, q = self._order
        intercept = d in (0, 1)
        data = np.log1p(np.fromiter(self._raw, float)) if self._log_mode else None
        if data is None:
            data = np.fromiter(self._raw, float)
        w = np.diff(data, n=d) if d else data
        params, sigma2, _ = _css_fit(w, p, q, intercept, p)
        self._next_search_at = self._count + self.window
        if math.isfinite(sigma2):
            self._model = _ArmaState.fitted(data, (p, d, q), intercept, params, sigma2)

    def _forecast(self) -> Forecast:
        q = self.forecast_quantile
        last = self.last_value
        model = self._model
        if (
            self._count < self.min_points
            or model is None
            or not model.ready
            or self._constant_window()
        ):
            return Forecast(last, self._band.upper(last, q), q)
        mean, sd = model.forecast()
        high = mean + normal_quantile(q) * sd
        if self._log_mode:
            point, upper = math.expm1(min(mean, 700.0)), math.expm1(min(high, 700.0))
        else:
            point, upper = mean, high
        return finite_forecast(point, upper, q, fallback=last)
