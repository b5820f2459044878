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

:class:`RiseConfirmation` is the other direction: with a cold start of at least one
interval, a component is raised above its running replicas only as far as every decision
over the last cold start needed, since a need that has not lasted a cold start is likely
gone before the worker serves. The caller says when a rise needs no confirmation (demand
clearly rising, or the component already short of its target).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import collections

import attrs

__all__ = [
    "MAX_CONFIRM_DECISIONS",
    "REVERSAL_HOLD_DECISIONS",
    "RiseConfirmation",
    "ScaleDownHold",
    "hold_peak",
]

REVERSAL_HOLD_DECISIONS = 5
"""Decisions for which a component that went down and straight back up holds its
scale-downs for two intervals, whatever the interval length.

With a window of one interval (the ``sla`` scaler's default from one-minute intervals for
prefill and two-minute intervals for decode), a
component whose requirement sits right between two counts would otherwise alternate
between them, as decode on Mooncake x1 read from a frontend's histograms did while the
decode model took one worker's ITL quantile as a normal's."""
MAX_CONFIRM_DECISIONS = 3
"""Most decisions a rise must last before it is applied, however long the cold start.

With short intervals and a long cold start (10 s and 600 s), waiting a whole cold start
would leave a lasting step in demand under-served for minutes before its workers were
even asked for; three decisions bound that delay to two intervals."""


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


@attrs.define
class RiseConfirmation:
    """One component's confirmation of rises above its running replicas.

    A rise the previous plan asked for is kept (the scale-down hold releases it), even
    while its workers still start: requests do not go up and down. The plan is never
    raised to a need that was held back.

    Attributes:
        name: The component, for the words (``"prefill"``, ``"decode"``).
        needs: The recent requirements, oldest first.
        planned: The previous decision's plan (``None`` before the first).

    Example:
        Two running; a need of three must last two decisions:

        >>> rises = RiseConfirmation("prefill")
        >>> [rises.decide(need, need, running=2, decisions=2)[0] for need in (2, 3, 3)]
        [2, 2, 3]
    """

    name: str
    needs: collections.deque[int] = attrs.field(
        init=False, factory=lambda: collections.deque(maxlen=MAX_CONFIRM_DECISIONS)
    )
    planned: int | None = attrs.field(init=False, default=None)

    def decide(
        self,
        replicas: int,
        need: int,
        *,
        running: int | None,
        decisions: int,
        rising: bool = False,
        short: str | None = None,
        why_unconfirmed: str = "",
    ) -> tuple[int, str | None]:
        """The replicas to plan, and words when a rise was held back or let through.

        Args:
            replicas: The plan after the scale-down hold.
            need: This decision's requirement.
            running: The replicas running now; ``None`` when rises need no confirmation
                (no cold start to wait for, or nothing known to be running).
            decisions: How many recent decisions must all have needed a rise (at most
                :data:`MAX_CONFIRM_DECISIONS`).
            rising: Demand clearly rises: the rise needs no confirmation.
            short: Why the component is short now (it then needs no confirmation), or
                ``None``.
            why_unconfirmed: Words appended when a rise is held back.

        Returns:
            The replicas and, when a rise was held back or let through by ``short``, the
            words saying so.
        """
        self.needs.append(need)
        previous = self.planned
        planned, words = replicas, None
        if running is not None and len(self.needs) >= 2:
            if previous is not None:
                # the scale-down hold keeps what was planned; it never raises to a
                # need that was held back
                planned = min(replicas, max(need, previous))
            if planned > running and not rising:
                window = list(self.needs)[-decisions:]
                held = max(running, min(planned, max(min(window), previous or 0)))
                if held < planned and short is not None:
                    words = f"{self.name} rise not held back: {short}"
                    held = planned
                planned = held
                if planned != replicas:
                    words = (
                        f"{self.name} rise not confirmed: {replicas} needed but "
                        f"{planned} planned, the most that each of the last "
                        f"{len(window)} decisions needed "
                        f"({', '.join(map(str, window))}; previous plan {previous}, "
                        f"{running} running){why_unconfirmed}"
                    )
        self.planned = planned
        return planned, words
