"""Pure rules of the virtual connector (spec §11.9 readiness table, key layout)."""

from __future__ import annotations

import pytest

from dynamo_planner.connectors._etcd import parse_endpoints
from dynamo_planner.connectors.virtual import (
    DECISION_KEYS,
    PlannerDecision,
    is_ready,
    planner_prefix,
)


class TestReadiness:
    @pytest.mark.parametrize(
        ("current_id", "scaled_id", "ready"),
        [(-1, None, True), (3, None, False), (3, 2, False), (3, 3, True), (3, 4, True)],
    )
    def test_truth_table(
        self, current_id: int, scaled_id: int | None, ready: bool
    ) -> None:
        """The previous decision is ready when none exists or the ack caught up."""
        assert is_ready(current_id, scaled_id) is ready


class TestKeyLayout:
    def test_prefix_and_keys(self) -> None:
        """Keys live under v1/{namespace}/planner/ with Dynamo's names."""
        assert planner_prefix("ns-dgd") == "v1/ns-dgd/planner/"
        assert DECISION_KEYS == (
            "num_prefill_workers",
            "num_decode_workers",
            "decision_id",
            "scaled_decision_id",
        )

    def test_unset_decision(self) -> None:
        """A decision with no keys reads -1 everywhere."""
        assert PlannerDecision() == PlannerDecision(
            num_prefill_workers=-1, num_decode_workers=-1, decision_id=-1
        )


class TestEndpoints:
    def test_comma_separated(self) -> None:
        """ETCD_ENDPOINTS-style lists split on commas."""
        assert parse_endpoints("http://a:2379, https://b:2379") == (
            "http://a:2379",
            "https://b:2379",
        )

    @pytest.mark.parametrize("bad", ["", "a:2379", "ftp://a:1"])
    def test_invalid(self, bad: str) -> None:
        """An endpoint that is not an http(s) URL is rejected with its value."""
        with pytest.raises(ValueError, match="etcd endpoint"):
            parse_endpoints(bad)
