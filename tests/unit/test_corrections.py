"""Correction factors (spec §1.4, §11.1 T10-T12)."""

from __future__ import annotations

import attrs
import pytest

from dynamo_planner.scalers.corrections import update_corrections
from dynamo_planner.values import Corrections, DecodePoint, Observation


@attrs.define
class StubInterpolator:
    """Constant expected latencies; records the decode queries."""

    ttft_ms: float = 80.0
    itl_ms: float = 10.0
    itl_calls: list[tuple[float, float]] = attrs.field(factory=list)
    ttft_calls: list[float] = attrs.field(factory=list)

    def max_kv_tokens(self) -> int:
        return 100_000

    def prefill_ttft_ms(self, isl_tokens: float) -> float:
        self.ttft_calls.append(isl_tokens)
        return self.ttft_ms

    def prefill_throughput_per_gpu(self, isl_tokens: float) -> float:
        return 40_000.0

    def decode_itl_ms(self, concurrency: float, context_tokens: float) -> float:
        self.itl_calls.append((concurrency, context_tokens))
        return self.itl_ms

    def decode_throughput_per_gpu(
        self, concurrency: float, context_tokens: float
    ) -> float:
        return 10_000.0

    def best_decode_point(self, itl_ms: float, context_tokens: float) -> DecodePoint:
        return DecodePoint(10_000.0, itl_ms, 0.5)


def observation(**overrides: float | None) -> Observation:
    values: dict[str, float | None] = {
        "num_req": 600.0,
        "isl_tokens": 3000.0,
        "osl_tokens": 150.0,
        "ttft_ms": 400.0,
        "itl_ms": 15.0,
        "request_duration_s": 20.0,
    }
    values.update(overrides)
    return Observation(interval_s=60.0, **values)  # type: ignore[arg-type]


def update(
    obs: Observation,
    stub: StubInterpolator | None = None,
    *,
    previous: Corrections | None = None,
    decode_workers: int = 2,
) -> Corrections:
    return update_corrections(
        previous or Corrections(prefill=0.7, decode=1.3),
        obs,
        stub or StubInterpolator(),
        decode_workers=decode_workers,
        interval_s=60.0,
    )


class TestConformance:
    """Spec §11.1 T10-T12."""

    def test_t10_prefill_factor(self) -> None:
        """T10: observed TTFT 400 ms over the profile's 80 ms gives 5.0."""
        stub = StubInterpolator()
        assert update(observation(), stub).prefill == 5.0
        assert stub.ttft_calls == [3000.0]

    def test_t11_decode_concurrency_by_littles_law(self) -> None:
        """T11: 600 requests / 2 workers x 20 s / 60 s = concurrency 100 at ISL+OSL/2."""
        stub = StubInterpolator()
        factors = update(observation(), stub)
        assert stub.itl_calls == [(100.0, 3075.0)]
        assert factors.decode == 1.5

    def test_t12_no_decode_workers_keeps_the_factor(self) -> None:
        """T12: with 0 decode workers the decode factor stays; prefill still updates."""
        stub = StubInterpolator()
        factors = update(observation(), stub, decode_workers=0)
        assert factors.decode == 1.3
        assert factors.prefill == 5.0
        assert stub.itl_calls == []


class TestUnknownInputs:
    """A component whose inputs are unknown keeps its previous factor."""

    @pytest.mark.parametrize("missing", ["ttft_ms", "isl_tokens"])
    def test_prefill_inputs(self, missing: str) -> None:
        """Unknown TTFT or ISL keeps the prefill factor."""
        factors = update(observation(**{missing: None}))
        assert factors.prefill == 0.7

    @pytest.mark.parametrize(
        "missing",
        ["itl_ms", "num_req", "isl_tokens", "osl_tokens", "request_duration_s"],
    )
    def test_decode_inputs(self, missing: str) -> None:
        """Unknown ITL, request count, ISL, OSL or duration keeps the decode factor."""
        factors = update(observation(**{missing: float("nan")}))
        assert factors.decode == 1.3

    def test_unknown_ttft_leaves_decode_updating(self) -> None:
        """Each component is judged on its own inputs."""
        factors = update(observation(ttft_ms=None))
        assert factors == Corrections(prefill=0.7, decode=1.5)


class TestDivisionHazards:
    """Expected latencies of zero keep the previous factor (Dynamo skips the tick)."""

    def test_zero_expected_ttft(self) -> None:
        """An expected TTFT of 0 keeps the prefill factor."""
        factors = update(observation(), StubInterpolator(ttft_ms=0.0))
        assert factors.prefill == 0.7

    def test_zero_expected_itl(self) -> None:
        """An expected ITL of 0 keeps the decode factor."""
        factors = update(observation(), StubInterpolator(itl_ms=0.0))
        assert factors.decode == 1.3

    def test_measured_zero_latency_gives_zero(self) -> None:
        """TTFT and ITL measured as 0 (spec §1.9) give factors of 0, as in Dynamo."""
        factors = update(observation(ttft_ms=0.0, itl_ms=0.0))
        assert factors == Corrections(prefill=0.0, decode=0.0)

    def test_starts_from_one(self) -> None:
        """With nothing computable the defaults (1.0, 1.0) stay."""
        factors = update_corrections(
            Corrections(),
            Observation(interval_s=60.0),
            StubInterpolator(),
            decode_workers=1,
            interval_s=60.0,
        )
        assert factors == Corrections(1.0, 1.0)
