"""The scale-down hold and the rise confirmation on their own."""

from __future__ import annotations

import collections

from hypothesis import given
from hypothesis import strategies as st

from dynamo_planner.scalers.hysteresis import (
    MAX_CONFIRM_DECISIONS,
    REVERSAL_HOLD_DECISIONS,
    RiseConfirmation,
    ScaleDownHold,
    hold_peak,
)


def run(needs: list[int], window: int, **options: bool) -> list[int]:
    history: collections.deque[int] = collections.deque(maxlen=max(2, window))
    return [
        hold_peak(history, n, "prefill", window=window, **options)[0] for n in needs
    ]


class TestHoldPeak:
    """Up at once, down after a whole window, at once on a clear fall."""

    def test_rises_at_once(self) -> None:
        """A higher requirement is planned in the decision that needs it."""
        assert run([2, 4], window=2) == [2, 4]

    def test_falls_after_the_window(self) -> None:
        """With a window of two, a lower requirement waits one more decision."""
        assert run([4, 2, 2, 2], window=2) == [4, 4, 2, 2]

    def test_a_window_of_one_holds_nothing(self) -> None:
        """Each decision's requirement is planned as it is."""
        assert run([4, 2, 3, 1], window=1) == [4, 2, 3, 1]

    def test_a_clear_fall_releases_at_once(self) -> None:
        """While demand clearly falls, a lower requirement is planned at once."""
        assert run([4, 4, 2], window=2, falling=True) == [4, 4, 2]

    def test_not_right_after_a_rise(self) -> None:
        """A component raised at the previous decision is held even on a fall."""
        assert run([2, 4, 2], window=2, falling=True) == [2, 4, 4]

    def test_the_words_say_what_is_held(self) -> None:
        """The words name the requirement, the peak held, and when it is released."""
        history: collections.deque[int] = collections.deque(maxlen=3)
        hold_peak(history, 5, "decode", window=3)
        held, words = hold_peak(history, 3, "decode", window=3)
        assert held == 5
        assert "requirement 3 but holding 5" in words
        assert "released after 2 more intervals" in words

    @given(
        st.lists(st.integers(0, 20), min_size=1, max_size=15),
        st.integers(1, 4),
    )
    def test_the_largest_of_the_window(self, needs: list[int], window: int) -> None:
        """Without the fall exception, the plan is the peak of the last needs."""
        planned = run(needs, window)
        for i, value in enumerate(planned):
            assert value == max(needs[max(0, i - window + 1) : i + 1])


class TestScaleDownHold:
    """One component's hold across decisions, with the reversal hold."""

    def test_a_reversal_widens_the_window_for_a_while(self) -> None:
        """Down and straight back up: the next REVERSAL_HOLD_DECISIONS decisions hold
        scale-downs for two intervals; then a window of one applies again."""
        hold = ScaleDownHold("decode")
        planned = [hold.decide(n, window=1)[0] for n in (2, 1, 2, 1, 1)]
        assert planned == [2, 1, 2, 2, 1]
        for _ in range(REVERSAL_HOLD_DECISIONS - 2):
            hold.decide(1, window=1)
        assert [hold.decide(n, window=1)[0] for n in (2, 1)] == [2, 1]

    def test_the_words_say_why(self) -> None:
        """The widened window is explained in the hold's words."""
        hold = ScaleDownHold("prefill")
        for n in (3, 2, 3):
            hold.decide(n, window=1)
        held, words = hold.decide(2, window=1)
        assert held == 3
        assert "prefill went down and back up 1 decision(s) ago" in words

    def test_its_requirements_are_kept(self) -> None:
        """``needs`` holds the recent requirements, at most ``capacity``."""
        hold = ScaleDownHold("prefill", capacity=3)
        for n in (4, 3, 2, 1):
            hold.decide(n, window=3)
        assert list(hold.needs) == [3, 2, 1]

    def test_the_first_decision_keeps_the_running_replicas(self) -> None:
        """At the first decision the running replicas stand for the interval before it,
        with a window of two whatever the caller asks, and a clear fall does not skip
        that; from the second decision the caller's window applies."""
        hold = ScaleDownHold("prefill")
        held, words = hold.decide(1, window=1, falling=True, running=3)
        assert held == 3
        assert "first decision and the 3 running" in words
        assert hold.decide(1, window=1, running=3)[0] == 1

    def test_running_replicas_only_seed_the_first_decision(self) -> None:
        """Later decisions ignore ``running``; a rise at the first decision is not held
        back by it, and none running (scaled to zero) seeds nothing."""
        hold = ScaleDownHold("decode")
        assert hold.decide(4, window=1, running=2)[0] == 4
        assert hold.decide(1, window=1, running=9)[0] == 1
        assert ScaleDownHold("decode").decide(1, window=1, running=0)[0] == 1


def confirm(
    needs: list[int], running: int, decisions: int = 2, *, rising: bool = False
) -> list[int]:
    rises = RiseConfirmation("prefill")
    return [
        rises.decide(n, n, running=running, decisions=decisions, rising=rising)[0]
        for n in needs
    ]


class TestRiseConfirmation:
    """A rise above the running replicas waits until it has lasted; some need not."""

    def test_a_rise_must_last_the_decisions_asked_for(self) -> None:
        assert confirm([2, 4, 4], running=2) == [2, 2, 4]
        assert confirm([2, 4, 4, 4], running=2, decisions=3) == [2, 2, 2, 4]

    def test_a_one_interval_blip_never_starts_a_worker(self) -> None:
        assert confirm([2, 4, 2, 2], running=2) == [2, 2, 2, 2]

    def test_it_rises_as_far_as_every_recent_decision_needed(self) -> None:
        """Needs of 3 then 5: the last two decisions agree on 3 at least."""
        assert confirm([2, 3, 5], running=2) == [2, 2, 3]

    def test_rising_demand_or_a_shortfall_needs_no_confirmation(self) -> None:
        assert confirm([2, 4], running=2, rising=True) == [2, 4]
        rises = RiseConfirmation("decode")
        rises.decide(2, 2, running=2, decisions=2)
        plan, words = rises.decide(
            4, 4, running=2, decisions=2, short="40% of ITLs missed"
        )
        assert plan == 4
        assert words == "decode rise not held back: 40% of ITLs missed"

    def test_nothing_is_held_without_a_running_count(self) -> None:
        rises = RiseConfirmation("prefill")
        assert [rises.decide(n, n, running=None, decisions=2)[0] for n in (2, 4)] == [
            2,
            4,
        ]

    def test_a_planned_rise_is_kept_while_its_workers_start(self) -> None:
        """Once planned, a rise stays even while the running count lags behind it."""
        rises = RiseConfirmation("prefill")
        plans = [rises.decide(n, n, running=2, decisions=2)[0] for n in (2, 4, 4, 4)]
        assert plans == [2, 2, 4, 4]

    def test_the_words_say_what_was_held_back(self) -> None:
        rises = RiseConfirmation("prefill")
        rises.decide(2, 2, running=2, decisions=2)
        plan, words = rises.decide(
            4, 4, running=2, decisions=2, why_unconfirmed="; not rising"
        )
        assert plan == 2
        assert words == (
            "prefill rise not confirmed: 4 needed but 2 planned, the most that each "
            "of the last 2 decisions needed (2, 4; previous plan 2, 2 running); not "
            "rising"
        )

    def test_it_remembers_at_most_the_longest_window(self) -> None:
        rises = RiseConfirmation("prefill")
        for n in range(10):
            rises.decide(n, n, running=None, decisions=2)
        assert list(rises.needs) == list(range(10 - MAX_CONFIRM_DECISIONS, 10))

    @given(
        st.lists(st.integers(0, 20), min_size=1, max_size=30),
        st.integers(0, 20),
        st.integers(2, MAX_CONFIRM_DECISIONS),
    )
    def test_never_above_the_need_nor_below_the_running(
        self, needs: list[int], running: int, decisions: int
    ) -> None:
        for need, plan in zip(needs, confirm(needs, running, decisions), strict=True):
            assert plan <= max(need, running)
            assert plan >= min(need, running)
