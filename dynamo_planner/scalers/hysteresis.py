"""The scale-down hold: a component runs the largest requirement of its last intervals.

A component scales up at once and down only after its requirement stayed lower for a
whole window of decisions, so a dip of one interval does not release a worker that the
next interval needs again. :func:`hold_peak` keeps that window over a history of
requirements, one per decision, and says in words what it held and for how long.

One exception: while demand clearly falls (the caller's test, e.g.
:func:`dynamo_planner.scalers.trend.falling`), a lower requirement is applied at once and
the window restarts from it, unless the requirement rose at the previous decision (a
component just raised is never released at the next one).

:class:`ScaleDownHold` keeps one component's state across decisions: its requirements,
and whether it just reversed. A component that went down and straight back up holds its
scale-downs for at least two intervals over the next :data:`REVERSAL_HOLD_DECISIONS`
decisions, whatever window the caller asks for. At a component's first decision the
running replicas, when given, stand for the requirement of the interval before it, with a
window of at least two: one interval's word is not yet demand that has stayed low, and a
model not yet calibrated against the deployment is least reliable where it would release
workers the operator started with.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import collections

import attrs

__all__ = ["REVERSAL_HOLD_DECISIONS", "ScaleDownHold", "hold_peak"]

REVERSAL_HOLD_DECISIONS = 5
"""Decisions for which a component that went down and straight back up holds its
scale-downs for two intervals, whatever the interval length.

With a window of one interval (the ``sla`` scaler's default from two-minute intervals), a
component whose requirement sits right between two counts would otherwise alternate
between them, as decode on Mooncake x1 read from a frontend's histograms did while the
decode model took one worker's ITL quantile as a normal's."""


def hold_peak(
    history: collections.deque[int],
    need: int,
    name: str,
    *,
    window: int,
    falling: bool = False,
    why: str = "",
) -> tuple[int, str]:
    """Record ``need`` and return the largest of the last ``window`` needs, with words.

    Args:
        history: The previous decisions' requirements, oldest first; ``need`` is
            appended (its ``maxlen`` must be at least ``window``).
        need: This decision's requirement.
        name: The component, for the words (``"prefill"``, ``"decode"``).
        window: Decisions a requirement is held over (1: no hold).
        falling: Demand clearly falls: a lower ``need`` is returned at once and the
            window restarts from it, unless the requirement rose at the previous
            decision.
        why: Words that explain a window longer than usual.

    Returns:
        The replicas to plan and the words that say why.

    Example:
        >>> import collections
        >>> history = collections.deque(maxlen=2)
        >>> [hold_peak(history, need, "prefill", window=2)[0] for need in (3, 2, 2)]
        [3, 3, 2]
    """
    previous = list(history)[-(window - 1) :] if window > 1 else []
    rose = len(history) >= 2 and history[-1] > history[-2]
    if falling and not rose and previous and need < max(previous):
        held = max(previous)
        history.clear()
        history.append(need)
        return need, (
            f"{name} hysteresis: requirement {need}, below the {held} held; the "
            "request count is clearly falling (slope below two standard errors), so "
            "the scale-down is not held back"
        )
    history.append(need)
    considered = [*previous, need]
    held = max(considered)
    if held == need:
        return need, (
            f"{name} hysteresis: requirement {need} is the largest of the last "
            f"{len(considered)} of {window} intervals; no scale-down pending"
        )
    newest_peak = max(i for i, v in enumerate(considered) if v == held)
    remaining = (window - len(considered)) + newest_peak + 1
    return held, (
        f"{name} hysteresis: requirement {need} but holding {held} (the peak of the "
        f"last {window} intervals{why}); {held} is released after {remaining} more "
        f"interval{'s' if remaining != 1 else ''} of lower requirement"
    )


@attrs.define
class ScaleDownHold:
    """One component's scale-down hold across decisions.

    Attributes:
        name: The component, for the words (``"prefill"``, ``"decode"``).
        capacity: The longest window a decision may ask for (at least 2).
        needs: The recent requirements, oldest first (as :func:`hold_peak` keeps them).

    Example:
        >>> hold = ScaleDownHold("decode")
        >>> [hold.decide(need, window=1)[0] for need in (2, 1, 2, 1, 1)]
        [2, 1, 2, 2, 1]
        >>> started = ScaleDownHold("prefill")
        >>> [started.decide(need, window=1, running=3)[0] for need in (1, 1)]
        [3, 1]
    """

    name: str
    capacity: int = attrs.field(default=2, validator=attrs.validators.ge(2))
    needs: collections.deque[int] = attrs.field(init=False)
    _plans: collections.deque[int] = attrs.field(init=False)
    _reversal_left: int = attrs.field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self.needs = collections.deque(maxlen=self.capacity)
        self._plans = collections.deque(maxlen=2)

    def decide(
        self,
        need: int,
        *,
        window: int,
        falling: bool = False,
        why: str = "",
        running: int | None = None,
    ) -> tuple[int, str]:
        """:func:`hold_peak` for this decision, two intervals at least after a reversal.

        Args:
            need: This decision's requirement.
            window: Decisions a requirement is held over (at most ``capacity``).
            falling: Demand clearly falls (see :func:`hold_peak`).
            why: Words that explain a window longer than usual.
            running: The replicas running now. At the first decision they stand for
                the requirement before it, and the window is at least two.

        Returns:
            The replicas to plan and the words that say why.
        """
        if running and not self._plans:  # the first decision
            self.needs.append(running)
            window = max(window, 2)
            why += (
                f"; at least two, as this is the first decision and the {running} "
                f"running stand for the interval before it"
            )
            falling = False
        left = self._reversal_left
        if left > 0 and window < 2:
            window = 2
            why += (
                f"; two, as {self.name} went down and back up "
                f"{REVERSAL_HOLD_DECISIONS - left + 1} decision(s) ago"
            )
        held, words = hold_peak(
            self.needs, need, self.name, window=window, falling=falling, why=why
        )
        if len(self._plans) == 2 and self._plans[0] > self._plans[1] < held:
            self._reversal_left = REVERSAL_HOLD_DECISIONS
        elif left > 0:
            self._reversal_left = left - 1
        self._plans.append(held)
        return held, words
