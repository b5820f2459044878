"""The scale-down hold: a component runs the largest requirement of its last intervals.

A component scales up at once and down only after its requirement stayed lower for a
whole window of decisions, so a dip of one interval does not release a worker that the
next interval needs again. :func:`hold_peak` keeps that window over a history of
requirements, one per decision, and says in words what it held and for how long.

One exception: while demand clearly falls (the caller's test, e.g.
:func:`dynamo_planner.scalers.trend.falling`), a lower requirement is applied at once and
the window restarts from it, unless the requirement rose at the previous decision (a
component just raised is never released at the next one).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import collections

__all__ = ["hold_peak"]


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
