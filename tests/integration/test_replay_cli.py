"""``dynamo-planner replay`` end to end, as a user runs it (a subprocess)."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dynamo_planner.exceptions import ConfigError

pytestmark = pytest.mark.slow


def replay(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dynamo_planner", "replay", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


class TestReplayCommand:
    """The replay command."""

    def test_bundled_default_trace_and_profile(self, tmp_path: Path) -> None:
        """Without a trace or profile it replays the bundled ones; files land in ./replay-out."""
        done = replay(tmp_path, "--load-predictor", "constant")
        assert done.returncode == 0, done.stderr
        out = done.stdout
        assert "19,366 requests" in out
        assert "AzureLLMInferenceTrace_conv.csv" in out
        for row in ("planner", "perfect forecast", "best static", "capacity floor"):
            assert row in out
        assert "TTFT <= 500 ms, ITL <= 50 ms; interval 180 s" in out
        folder = tmp_path / "replay-out"
        assert f"wrote {Path('replay-out') / 'intervals.csv'}" in out
        png = (folder / "replay.png").read_bytes()
        assert png[:4] == b"\x89PNG"
        with (folder / "intervals.csv").open() as stream:
            rows = list(csv.DictReader(stream))
        assert len(rows) == 20  # 58.4 minutes in 180 s intervals
        assert sum(int(r["num_req"]) for r in rows) == 19366
        assert "planner" in done.stderr  # progress
        # every decision, with its reasons: one JSON object per line
        lines = (folder / "plans.jsonl").read_text().splitlines()
        plans = [json.loads(line) for line in lines]
        # a decision at the start of every interval but the first
        assert [p["time_s"] for p in plans] == [180.0 * i for i in range(1, 20)]
        for plan, row in zip(plans, rows[1:], strict=True):
            assert plan["prefill_replicas"] == int(row["planned_prefill"])
            assert plan["decode_replicas"] == int(row["planned_decode"])
        assert all(any(r.startswith("demand:") for r in p["reasons"]) for p in plans)
        assert plans[-1]["details"]["attainment_target"] == 0.99

    def test_json(self, tmp_path: Path, repo_data: Path) -> None:
        """--format json prints one object with attainment and GPU-hours per baseline."""
        done = replay(
            tmp_path,
            "--trace",
            str(repo_data / "traces/mooncake/conversation_trace.jsonl"),
            "--duration-s",
            "900",
            "--spread-ties-s",
            "3",
            "--load-predictor",
            "constant",
            "--adjustment-interval",
            "60",
            "--ttft",
            "2000",
            "--itl",
            "30",
            "--max-gpu-budget",
            "-1",
            "--cold-start-s",
            "30",
            "--no-plot",
            "--format",
            "json",
            "--output-dir",
            "out",
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert 0 <= report["attainment"] <= 1
        assert report["gpu_hours"] > 0
        assert report["itl_ms"] == 30
        assert report["interval_s"] == 60
        for name in ("best_static", "perfect_forecast", "capacity_floor"):
            assert {"attainment", "gpu_hours"} <= set(report["baselines"][name])
        assert report["baselines"]["capacity_floor"]["gpu_hours"] < report["gpu_hours"]
        assert json.loads((tmp_path / "out" / "report.json").read_text()) == report
        assert not (tmp_path / "out" / "replay.png").exists()

    def test_whole_worker_floor_and_interval_oracle(self, tmp_path: Path) -> None:
        """The whole-worker floor is printed under the capacity floor; the interval
        oracle, asked for, is printed and reported, never above the best static, and
        pays the run's cold start; its schedule, replayed and refined, meets the target
        at no more GPU-hours than its replay."""
        args = (
            "--duration-s",
            "1200",
            "--cold-start-s",
            "120",
            "--load-scale",
            "4",
            "--load-shift-s",
            "60",
            "--load-predictor",
            "constant",
            "--adjustment-interval",
            "60",
            "--ttft",
            "500",
            "--itl",
            "20",
            "--max-gpu-budget",
            "-1",
            "--no-plot",
            "--baselines",
            "best_static,capacity_floor,interval_oracle,hindsight_schedule",
        )
        text = replay(tmp_path, *args)
        assert text.returncode == 0, text.stderr
        assert "whole-worker floor" in text.stdout
        assert "interval oracle (hindsight)" in text.stdout
        assert "interval oracle: simulating" in text.stderr  # progress
        assert "hindsight schedule" in text.stdout
        assert "hindsight schedule: 1 replays" in text.stderr
        note = re.search(
            r"note: hindsight schedule: the interval oracle's schedule replayed serves "
            r"[\d.]+% at [\d.]+ GPU-h; (\d+) worker\(s\) added, (\d+) removed in "
            r"(\d+) replays",
            text.stdout,
        )
        assert note is not None, text.stdout
        done = replay(tmp_path, *args, "--format", "json")
        assert done.returncode == 0, done.stderr
        baselines = json.loads(done.stdout)["baselines"]
        floor = baselines["capacity_floor"]
        oracle = baselines["interval_oracle"]
        assert floor["gpu_hours"] <= floor["whole_worker_gpu_hours"]
        assert oracle["feasible"]
        assert oracle["attainment"] >= 0.99
        assert oracle["gpu_hours"] <= baselines["best_static"]["gpu_hours"]
        static = baselines["best_static"]
        assert [static["prefill"], static["decode"]] in oracle["candidates"]
        assert oracle["cold_start_s"] == 120.0
        assert 0.0 <= oracle["cold_start_gpu_hours"] <= oracle["gpu_hours"]
        schedule = baselines["hindsight_schedule"]
        assert schedule["attainment"] >= 0.99
        assert schedule["gpu_hours"] <= schedule["oracle_replayed_gpu_hours"]
        assert schedule["replays"] >= (
            schedule["workers_added"] + schedule["workers_removed"] + 1
        )
        assert [int(x) for x in note.groups()] == [
            schedule["workers_added"],
            schedule["workers_removed"],
            schedule["replays"],
        ]
        assert len(schedule["prefill"]) == len(schedule["decode"]) == 20
        assert min(schedule["prefill"] + schedule["decode"]) >= 1

    def test_interval_oracle_needs_best_static(self, tmp_path: Path) -> None:
        """Without best_static the oracle is skipped with a note, not an error, and so
        is the hindsight schedule that refines it."""
        done = replay(
            tmp_path,
            "--duration-s",
            "600",
            "--load-predictor",
            "constant",
            "--no-plot",
            "--baselines",
            "interval_oracle,hindsight_schedule",
        )
        assert done.returncode == 0, done.stderr
        assert "the interval oracle needs the best static deployment" in done.stdout
        assert "the hindsight schedule refines the interval oracle's" in done.stdout

    def test_config_file_and_load_scale(self, tmp_path: Path) -> None:
        """Settings come from --config; --load-scale multiplies the requests."""
        (tmp_path / "planner.toml").write_text(
            'load_predictor = "constant"\nadjustment_interval = 120\nitl = 25\n'
            "max_gpu_budget = -1\n"
        )
        done = replay(
            tmp_path,
            "--config",
            "planner.toml",
            "--duration-s",
            "600",
            "--load-scale",
            "3",
            "--baselines",
            "none",
            "--no-plot",
            "--format",
            "json",
            "-q",
        )
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert report["interval_s"] == 120
        assert report["itl_ms"] == 25
        assert report["baselines"] == {}
        from dynamo_planner.data import AZURE_CONV_TRACE
        from dynamo_planner.traces import load_requests

        first_10_min = int((load_requests(AZURE_CONV_TRACE).arrival_s < 600).sum())
        assert report["requests"] == 3 * first_10_min
        assert done.stderr.count("\n") == 1  # quiet: only where the files went

    def test_bad_trace_is_a_clear_error(self, tmp_path: Path) -> None:
        """A malformed trace fails with the file and line, exit status 2."""
        bad = tmp_path / "bad.jsonl"
        bad.write_text(
            '{"timestamp": 0, "input_length": 5, "output_length": 3}\n{oops\n'
        )
        done = replay(tmp_path, "--trace", str(bad), "--load-predictor", "constant")
        assert done.returncode == 2
        assert "bad.jsonl:2" in done.stderr


def replay_json(tmp_path: Path, *args: str) -> dict[str, object]:
    done = replay(
        tmp_path,
        "--duration-s",
        "600",
        "--load-scale",
        "16",
        "--load-predictor",
        "constant",
        "--max-gpu-budget",
        "-1",
        "--no-plot",
        "--format",
        "json",
        "-q",
        *args,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, object] = json.loads(done.stdout)
    return report


class TestScalingModes:
    """Load-based, both and agg configurations, from the command line."""

    def test_loadbased(self, tmp_path: Path) -> None:
        """Load-based alone: 5-s ticks, the throughput planner's perfect forecast."""
        report = replay_json(
            tmp_path,
            "--enable-loadbased-scaling",
            "--disable-throughput-scaling",
            "--baselines",
            "perfect_forecast",
        )
        assert report["scaling"] == "load-based (every 5 s)"
        assert report["interval_s"] == 5
        runs = report["runs"]
        assert isinstance(runs, list)
        assert [r["name"] for r in runs] == ["planner", "perfect forecast (throughput)"]
        assert runs[0]["scaling_actions"] > 0
        with (tmp_path / "replay-out" / "intervals.csv").open() as stream:
            rows = list(csv.DictReader(stream))
        assert len(rows) >= 120  # 10 minutes of 5-s intervals

    def test_tuning_flags_reach_the_planner(self, tmp_path: Path) -> None:
        """A regression needing 1000 observations never decides: no scaling action."""
        report = replay_json(
            tmp_path,
            "--enable-loadbased-scaling",
            "--disable-throughput-scaling",
            "--loadbased-learning-window",
            "2000",
            "--loadbased-min-observations",
            "1000",
            "--loadbased-adjustment-interval",
            "2",
            "--loadbased-metric-samples",
            "4",
            "--loadbased-scaling-down-sensitivity",
            "50",
            "--baselines",
            "none",
        )
        runs = report["runs"]
        assert isinstance(runs, list)
        assert runs[0]["scaling_actions"] == 0
        assert report["interval_s"] == 2

    def test_both(self, tmp_path: Path) -> None:
        """Both modes: load ticks under the throughput floor."""
        report = replay_json(
            tmp_path,
            "--enable-loadbased-scaling",
            "--loadbased-adjustment-interval",
            "10",
            "--adjustment-interval",
            "60",
            "--baselines",
            "none",
        )
        assert report["scaling"] == (
            "load-based (every 10 s) over a throughput floor (sla scaler, every 60 s)"
        )
        assert report["interval_s"] == 10

    def test_agg(self, tmp_path: Path) -> None:
        """--mode agg replays aggregated workers; best static counts them."""
        report = replay_json(
            tmp_path,
            "--mode",
            "agg",
            "--enable-loadbased-scaling",
            "--disable-throughput-scaling",
            "--start-num-d",
            "2",
            "--baselines",
            "best_static,perfect_forecast",
        )
        assert report["scaling"] == "agg, load-based (every 5 s)"
        baselines = report["baselines"]
        assert isinstance(baselines, dict)
        assert baselines["best_static"]["prefill"] == 0
        assert "perfect_forecast" not in baselines
        assert any("agg" in note for note in report["notes"])  # type: ignore[attr-defined]

    def test_agg_has_no_prefill_workers(self, tmp_path: Path) -> None:
        """--start-num-p with --mode agg is a clear error."""
        done = replay(
            tmp_path,
            "--mode",
            "agg",
            "--enable-loadbased-scaling",
            "--disable-throughput-scaling",
            "--start-num-p",
            "2",
        )
        assert done.returncode == 2
        assert "start_num_p" in done.stderr
        assert "no prefill workers" in done.stderr


class TestSLAScalerFlags:
    """--scaler sla and the settings the SLA scaler reads, from the command line."""

    def test_sla_scaler_runs_and_is_named(self, tmp_path: Path) -> None:
        """--scaler sla replays the SLA scaler; the report's header names it."""
        done = replay(
            tmp_path,
            "--scaler",
            "sla",
            "--cold-start-s",
            "120",
            "--sla-attainment",
            "0.95",
            "--duration-s",
            "600",
            "--load-scale",
            "4",
            "--load-predictor",
            "constant",
            "--adjustment-interval",
            "60",
            "--baselines",
            "none",
            "--no-plot",
            "-q",
        )
        assert done.returncode == 0, done.stderr
        assert "planner: throughput (sla scaler, every 60 s)" in done.stdout
        assert "cold start 120 s" in done.stdout

    def test_flags_reach_the_scaler_and_the_simulator(self) -> None:
        """Cold start and batch budget go to both; attainment, hysteresis, Ca² and the
        wait limit to the scaler."""
        from dynamo_planner.cli._replay import parse, prepare
        from dynamo_planner.load_planner import planner_from_config
        from dynamo_planner.planner import Planner
        from dynamo_planner.scalers.sla import SLAScaler

        inputs = prepare(
            parse(
                [
                    "--scaler",
                    "sla",
                    "--cold-start-s",
                    "180",
                    "--max-num-batched-tokens",
                    "4096",
                    "--sla-attainment",
                    "0.95",
                    "--scale-down-intervals",
                    "3",
                    "--sla-arrival-cv2",
                    "2.5",
                    "--sla-prefill-max-wait",
                    "0.9",
                    "--duration-s",
                    "60",
                ]
            )
        )
        assert inputs.options.sim.cold_start_s == 180
        assert inputs.options.sim.max_num_batched_tokens == 4096
        assert inputs.options.sim.frontend_metrics == "samples"
        histograms = prepare(
            parse(["--frontend-metrics", "histograms", "--duration-s", "60"])
        )
        assert histograms.options.sim.frontend_metrics == "histograms"
        assert histograms.options.sim.frontend_scrape_s is None
        scraped = prepare(
            parse(
                [
                    "--frontend-metrics",
                    "histograms",
                    "--frontend-scrape-s",
                    "5",
                    "--duration-s",
                    "60",
                ]
            )
        )
        assert scraped.options.sim.frontend_scrape_s == 5.0
        with pytest.raises(SystemExit):
            parse(["--frontend-scrape-s", "0"])
        with pytest.raises(ConfigError, match="--frontend-metrics histograms"):
            prepare(parse(["--frontend-scrape-s", "5", "--duration-s", "60"]))
        from dynamo_planner.sim.engine import FRONTEND_METRICS

        # the CLI spells the choices out (building it imports no simulator)
        for value in FRONTEND_METRICS:
            assert parse(["--frontend-metrics", value]).frontend_metrics == value
        with pytest.raises(SystemExit):
            parse(["--frontend-metrics", "logs"])
        planner = planner_from_config(inputs.config, profile=inputs.profile)
        assert isinstance(planner, Planner)
        scaler = planner.scaler
        assert isinstance(scaler, SLAScaler)
        assert scaler.cold_start_s == 180
        assert scaler.max_num_batched_tokens == 4096
        assert scaler.attainment == 0.95
        assert scaler.scale_down_intervals == 3
        assert scaler.arrival_cv2 == 2.5
        assert scaler.prefill_max_wait == 0.9

    def test_config_file_sets_both_when_no_flag(self, tmp_path: Path) -> None:
        """A cold start from --config reaches the simulator too; a flag overrides it."""
        from dynamo_planner.cli._replay import parse, prepare

        toml = tmp_path / "planner.toml"
        toml.write_text("cold_start_s = 90\nmax_num_batched_tokens = 0\n")
        inputs = prepare(parse(["--config", str(toml), "--duration-s", "60"]))
        assert inputs.config.cold_start_s == 90
        assert inputs.options.sim.cold_start_s == 90
        assert inputs.config.max_num_batched_tokens == 0
        assert inputs.options.sim.max_num_batched_tokens == 1  # every prompt alone
        flagged = prepare(
            parse(["--config", str(toml), "--cold-start-s", "30", "--duration-s", "60"])
        )
        assert flagged.config.cold_start_s == 30
        assert flagged.options.sim.cold_start_s == 30
