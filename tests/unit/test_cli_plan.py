"""``dynamo-planner plan`` and ``dynamo-planner profile`` on real profiles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dynamo_planner.cli import main
from dynamo_planner.data import H200_PROFILE_DIR

H100 = "profiles/h100_sxm-vllm-Llama-3.3-70B-Instruct-FP8"


def plan_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    status = main(
        ["plan", "--profile", str(H200_PROFILE_DIR), "--format", "json", *argv]
    )
    out = capsys.readouterr().out
    assert status == 0
    result: dict[str, Any] = json.loads(out)
    return result


# The table: num_req, interval, ISL, OSL, TTFT, ITL, other flags, expected,
# unclamped (min_endpoint 1, 1 GPU per engine, no budget unless stated).
PLAN_ROWS = [
    ("1200", "180", "3000", "150", "500", "50", [], (1, 1), (1, 1)),
    ("20000", "180", "3000", "150", "200", "20", [], (7, 3), (7, 3)),
    (
        "6000",
        "180",
        "8000",
        "500",
        "500",
        "10",
        ["--max-gpu-budget", "16"],
        (4, 12),
        (6, 15),
    ),
    (
        "6000",
        "60",
        "1000",
        "1000",
        "500",
        "20",
        ["--decode-engine-num-gpu", "2", "--max-gpu-budget", "8"],
        (2, 3),
        (4, 5),
    ),
    (
        "3000",
        "180",
        "12000",
        "350",
        "500",
        "50",
        ["--p-correction", "0.6", "--d-correction", "1.5"],
        (3, 3),
        (3, 3),
    ),
]


class TestPlanTable:
    """The issue's five plans with the packaged H200 profile, exactly."""

    @pytest.mark.parametrize(
        (
            "num_req",
            "interval",
            "isl",
            "osl",
            "ttft",
            "itl",
            "other",
            "expected",
            "unclamped",
        ),
        PLAN_ROWS,
        ids=[f"row{i}" for i in range(1, len(PLAN_ROWS) + 1)],
    )
    def test_row(
        self,
        capsys: pytest.CaptureFixture[str],
        num_req: str,
        interval: str,
        isl: str,
        osl: str,
        ttft: str,
        itl: str,
        other: list[str],
        expected: tuple[int, int],
        unclamped: tuple[int, int],
    ) -> None:
        """Replicas after the budget, and before it, match the table."""
        budget = [] if "--max-gpu-budget" in other else ["--max-gpu-budget", "-1"]
        result = plan_json(
            capsys,
            "--num-req", num_req,
            "--adjustment-interval", interval,
            "--isl", isl,
            "--osl", osl,
            "--ttft", ttft,
            "--itl", itl,
            "--min-endpoint", "1",
            *budget,
            *other,
        )  # fmt: skip
        assert (result["prefill_replicas"], result["decode_replicas"]) == expected
        assert (
            result["unclamped_prefill_replicas"],
            result["unclamped_decode_replicas"],
        ) == unclamped
        assert ("budget" in result["clamps"]) == (expected != unclamped)
        assert result["reasons"]
        assert result["details"]["interval_s"] == float(interval)

    def test_budget_row_reason(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The clamped row explains the budget step in words."""
        result = plan_json(
            capsys,
            "--num-req", "6000", "--isl", "8000", "--osl", "500", "--itl", "10",
            "--max-gpu-budget", "16",
        )  # fmt: skip
        assert result["reasons"][-1] == (
            "GPU budget: 21 GPUs exceed the budget of 16: scaled (6, 15) by 0.762 to "
            "(4, 12) prefill/decode replicas, 16 GPUs"
        )
        assert result["gpus"]["total"] == 16

    def test_details_carry_the_interpolated_numbers(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Prefill at ISL 3000 and the decode point at ITL 20, context 3075."""
        details = plan_json(
            capsys, "--num-req", "20000", "--isl", "3000", "--osl", "150", "--itl", "20"
        )["details"]
        assert details["prefill_throughput_per_gpu"] == pytest.approx(49_481, rel=0.005)
        assert details["prefill_ttft_ms"] == pytest.approx(60.46, rel=0.005)
        assert details["decode_context_tokens"] == 3075.0
        assert details["decode_throughput_per_gpu"] == pytest.approx(6_181, rel=0.005)
        assert details["decode_itl_ms"] == pytest.approx(19.67, rel=0.005)
        assert details["decode_kv_usage"] == pytest.approx(0.404, rel=0.005)


class TestPlanOptions:
    """Defaults, modes, text output and errors."""

    def test_reference_defaults(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Without flags: interval 180 s, ITL 50 ms, budget 8 GPUs."""
        result = plan_json(
            capsys, "--num-req", "20000", "--isl", "3000", "--osl", "150"
        )
        assert result["details"]["interval_s"] == 180.0
        assert result["details"]["decode_itl_target_ms"] == 50.0
        assert result["gpus"]["budget"] == 8
        total = result["prefill_replicas"] + result["decode_replicas"]
        assert total <= 8

    def test_reference_scaler_by_default(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """plan keeps the reference scaler although the library's default is sla."""
        from dynamo_planner.config import PlannerConfig

        assert PlannerConfig().scaler == "sla"
        argv = ("--num-req", "3000", "--isl", "1150", "--osl", "246", "--itl", "20")
        reference = plan_json(capsys, *argv)
        assert reference["reasons"][0].startswith("demand: 3000 requests in 180 s")
        sla = plan_json(capsys, *argv, "--scaler", "sla")
        assert any("upper quantile" in r or "prior 10%" in r for r in sla["reasons"])
        assert not any(
            "upper quantile" in r or "prior" in r for r in reference["reasons"]
        )

    def test_sla_scaler_uses_the_fitted_interpolator(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With --scaler sla the default interpolator is the fitted one; the flag
        picks another."""
        argv = ("--num-req", "3000", "--isl", "1150", "--osl", "246", "--itl", "20")
        fitted = plan_json(capsys, *argv, "--scaler", "sla")
        assert "fitted interpolator" in fitted["details"]["decode_law_source"]
        reference = plan_json(
            capsys, *argv, "--scaler", "sla", "--interpolator", "reference"
        )
        assert "ReferenceInterpolator" in reference["details"]["decode_law_source"]

    def test_unknown_scaler_is_an_error(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """--scaler with no such plugin exits 2 and lists the available ones."""
        status = main(
            ["plan", "--profile", str(H200_PROFILE_DIR), "--scaler", "nope",
             "--num-req", "1", "--isl", "1", "--osl", "1"]
        )  # fmt: skip
        assert status == 2
        assert "reference, sla" in capsys.readouterr().err

    @pytest.mark.parametrize(
        ("mode", "present", "absent"),
        [("prefill", "prefill_replicas", "decode_replicas"),
         ("decode", "decode_replicas", "prefill_replicas")],
    )  # fmt: skip
    def test_single_component_modes(
        self, capsys: pytest.CaptureFixture[str], mode: str, present: str, absent: str
    ) -> None:
        """In prefill or decode mode the other component is null."""
        result = plan_json(
            capsys,
            "--num-req",
            "20000",
            "--isl",
            "3000",
            "--osl",
            "150",
            "--mode",
            mode,
        )
        assert result[present] >= 1
        assert result[absent] is None
        assert result["mode"] == mode

    def test_text_output(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The text format shows a replica table and numbered reasons."""
        status = main(
            ["plan", "--profile", str(H200_PROFILE_DIR), "--num-req", "6000",
             "--isl", "8000", "--osl", "500", "--itl", "10", "--max-gpu-budget", "16"]
        )  # fmt: skip
        out = capsys.readouterr().out
        assert status == 0
        assert "prefill           4              6" in out
        assert "decode           12             15" in out
        assert "total GPUs: 16 (budget 16)" in out
        assert "  1. demand: 6000 requests in 180 s" in out

    def test_pre_swept_profile_sets_gpus_per_engine(
        self, capsys: pytest.CaptureFixture[str], repo_data: Path
    ) -> None:
        """A TP4 row means 4 GPUs per engine unless a flag says otherwise."""
        argv = ["plan", "--profile", str(repo_data / H100), "--select", "TP4",
                "--num-req", "600", "--isl", "3000", "--osl", "150", "--itl", "30",
                "--max-gpu-budget", "-1", "--format", "json"]  # fmt: skip
        assert main(argv) == 0
        gpus = json.loads(capsys.readouterr().out)["gpus"]
        assert gpus["prefill_per_engine"] == 4
        assert gpus["prefill_per_engine_from"] == "profile config TP4"
        assert main([*argv, "--prefill-engine-num-gpu", "8"]) == 0
        assert json.loads(capsys.readouterr().out)["gpus"]["prefill_per_engine"] == 8

    def test_unknown_config_is_an_error(
        self, capsys: pytest.CaptureFixture[str], repo_data: Path
    ) -> None:
        """An unknown TP exits 2 and lists TP8, TP4, TP2."""
        status = main(
            ["plan", "--profile", str(repo_data / H100), "--select", "TP3",
             "--num-req", "1", "--isl", "1", "--osl", "1"]
        )  # fmt: skip
        assert status == 2
        assert "TP8, TP4, TP2" in capsys.readouterr().err

    def test_agg_mode_is_refused(self, capsys: pytest.CaptureFixture[str]) -> None:
        """agg needs load-based scaling, which plan does not do."""
        status = main(
            ["plan", "--profile", str(H200_PROFILE_DIR), "--mode", "agg",
             "--num-req", "1", "--isl", "1", "--osl", "1"]
        )  # fmt: skip
        assert status == 2
        assert "mode" in capsys.readouterr().err

    @pytest.mark.parametrize("bad", ["-1", "nan", "x"])
    def test_bad_load_is_refused_by_argparse(self, bad: str) -> None:
        """A negative or non-numeric load is a usage error."""
        with pytest.raises(SystemExit) as info:
            main(["plan", "--profile", str(H200_PROFILE_DIR), "--num-req", bad,
                  "--isl", "1", "--osl", "1"])  # fmt: skip
        assert info.value.code == 2


class TestProfileCommand:
    """``dynamo-planner profile`` summarises a profile against an SLA."""

    def test_h200_summary(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The issue's figures appear, and the SLA is feasible."""
        status = main(["profile", "--profile", str(H200_PROFILE_DIR), "--itl", "20"])
        out = capsys.readouterr().out
        assert status == 0
        lines = {line[:40].strip(): line[40:].strip() for line in out.splitlines()}
        assert lines["TTFT at the ISL (one request)"] == "60.46 ms (target 500 ms)"
        assert lines["prefill throughput"] == "49,481 tokens/s per GPU"
        assert lines["request rate saturating one prefill GPU"] == "16.49 req/s"
        assert lines["best decode throughput"] == "6,181 tokens/s per GPU"
        assert lines["at ITL"] == "19.67 ms (target 20 ms)"
        assert lines["at KV usage"] == "0.404"
        assert lines["max KV tokens per decode engine"] == "945,029"
        assert lines["SLA feasible"] == "yes"

    def test_infeasible_targets(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A TTFT below the single-request time and an ITL below any point fail."""
        status = main(
            [
                "profile",
                "--profile",
                str(H200_PROFILE_DIR),
                "--ttft",
                "30",
                "--itl",
                "1",
            ]
        )
        out = capsys.readouterr().out
        assert status == 0
        assert "TTFT target feasible                     NO" in out
        assert "ITL target feasible                      NO" in out
        assert "zero-load point" in out

    def test_pre_swept_selection(
        self, capsys: pytest.CaptureFixture[str], repo_data: Path
    ) -> None:
        """The H100 70B TP4 row is summarised with its config."""
        status = main(
            ["profile", "--profile", str(repo_data / H100), "--select", "tp4"]
        )
        out = capsys.readouterr().out
        assert status == 0
        assert "TP4" in out
        assert "224,133" in out
