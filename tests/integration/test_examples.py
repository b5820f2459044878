"""Every self-contained example in examples/ runs and does what it says."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class TestPlanWithFakes:
    def test_scales_up_down_and_falls_back(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The fakes example ramps up, scales down when idle, and holds then falls back."""
        namespace = runpy.run_path(str(EXAMPLES / "plan_with_fakes.py"))
        records = namespace["main"]()
        targets = [r.plan.target(r.current) for r in records]
        prefill = [t.prefill for t in targets]
        assert max(prefill[:4]) > prefill[0]
        assert prefill[5] == 1  # idle interval: known zero traffic
        assert records[6].plan.is_hold  # source down: hold
        assert records[7].plan.is_hold
        assert (targets[8].prefill, targets[8].decode) == (1, 1)  # then min_endpoint
        assert "errors: {'source': 3}" in capsys.readouterr().out


class TestBurstyArrivals:
    def test_bursts_need_more_prefill(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Same count and prompts: arrivals in bursts, read from the scraped counter,
        get more prefill workers than even ones."""
        namespace = runpy.run_path(str(EXAMPLES / "bursty_arrivals.py"))
        plans = namespace["main"]()
        even, bursty = plans["even arrivals"], plans["bursts every 10 s"]
        running = namespace["RUNNING"]
        assert bursty.target(running).prefill > even.target(running).prefill
        assert even.details["arrival_cv2"] == 0.5
        assert bursty.details["arrival_cv2"] == 20.0
        out = capsys.readouterr().out
        assert "even arrivals: prefill 3" in out
        assert "bursts every 10 s: prefill 5" in out


class TestSLAFromHistograms:
    def test_a_long_tail_needs_more_prefill(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Same count and mean prompt: the shape with 5% long prompts gets more prefill
        workers, and both mixes come from the histograms."""
        namespace = runpy.run_path(str(EXAMPLES / "sla_from_histograms.py"))
        plans = namespace["main"]()
        even, tail = plans["even prompts"], plans["5% long prompts"]
        running = namespace["RUNNING"]
        assert tail.target(running).prefill > even.target(running).prefill
        out = capsys.readouterr().out
        assert out.count("ISL and OSL histograms") == 2
        assert "5% long prompts: prefill 3" in out


class TestTraceBurstiness:
    def test_bursty_traffic_measures_burstier(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The Azure conversation trace is near Poisson per minute; ServeGen's bursty
        m-large workload measures well above it, and the value to configure is printed."""
        namespace = runpy.run_path(str(EXAMPLES / "trace_burstiness.py"))
        servegen = (
            EXAMPLES.parent / "data" / "traces" / "servegen" / "language" / "m-large"
        )
        found = namespace["main"]([str(namespace["AZURE_CONV_TRACE"]), str(servegen)])
        azure, bursty = found["AzureLLMInferenceTrace_conv.csv"], found["m-large"]
        assert 0.8 < azure["median"] < 1.4
        assert azure["intervals"] >= 50
        assert bursty["median"] > 2.0 * azure["median"]
        assert bursty["p5"] <= bursty["median"] <= bursty["p95"]
        assert "m-large: index of dispersion" in capsys.readouterr().out
