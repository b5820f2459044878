"""Reading profiles: both Dynamo layouts, the JSON fallback, and malformed input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dynamo_planner.exceptions import ProfileError
from dynamo_planner.profiles import (
    available_configs,
    load_json,
    load_npz,
    load_profile,
    profile_from_arrays,
)

H100 = "profiles/h100_sxm-vllm-Llama-3.3-70B-Instruct-FP8"
H200_SWEPT = "profiles/h200_sxm-vllm-Llama-3.1-8B-Instruct-FP8"


def good_prefill() -> dict[str, Any]:
    return {
        "prefill_isl": np.array([100.0, 1000.0, 2000.0, 4000.0]),
        "prefill_ttft": np.array([20.0, 40.0, 60.0, 110.0]),
        "prefill_thpt_per_gpu": np.array([5000.0, 25000.0, 33000.0, 36000.0]),
    }


def good_decode() -> dict[str, Any]:
    return {
        "x_kv_usage": np.array([0.01, 0.5, 0.9, 0.01, 0.5, 0.9]),
        "y_context_length": np.array([350.0, 350.0, 350.0, 3000.0, 3000.0, 3000.0]),
        "z_itl": np.array([5.0, 20.0, 40.0, 6.0, 25.0, 45.0]),
        "z_thpt_per_gpu": np.array([200.0, 9000.0, 12000.0, 150.0, 5000.0, 7000.0]),
        "max_kv_tokens": np.array([100000]),
    }


def write_results_dir(
    root: Path, prefill: dict[str, Any], decode: dict[str, Any]
) -> tuple[Path, Path]:
    prefill_file = root / "selected_prefill_interpolation" / "raw_data.npz"
    decode_file = root / "selected_decode_interpolation" / "raw_data.npz"
    prefill_file.parent.mkdir(parents=True)
    decode_file.parent.mkdir(parents=True)
    np.savez(prefill_file, **prefill)
    np.savez(decode_file, **decode)
    return prefill_file, decode_file


def to_json(arrays: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: np.asarray(v).tolist() for k, v in arrays.items()}
    kv = np.asarray(arrays.get("max_kv_tokens", []))
    if kv.size == 1:  # Dynamo writes it as a scalar in JSON
        out["max_kv_tokens"] = kv.reshape(-1)[0].item()
    return out


class TestProfilingResultsLayout:
    """The ``selected_*_interpolation/raw_data.npz`` layout and its JSON fallback."""

    def test_packaged_h200_profile_loads(self, h200_profile_dir: Path) -> None:
        """The bundled H200 profile has 17 prefill and 41 decode points."""
        profile = load_profile(h200_profile_dir)
        assert profile.prefill.isl_tokens.size == 17
        assert profile.decode.itl_ms.size == 41
        assert profile.decode.max_kv_tokens == 945_029
        assert profile.prefill.isl_tokens[0] == 100.0
        assert profile.metadata["layout"] == "profiling-results"

    def test_json_fallback_gives_the_same_numbers(
        self, h200_profile_dir: Path, tmp_path: Path
    ) -> None:
        """Without the NPZs the JSON files are read, with identical values."""
        npz = load_profile(h200_profile_dir)
        for name in ("prefill", "decode"):
            with np.load(
                h200_profile_dir / f"selected_{name}_interpolation" / "raw_data.npz"
            ) as archive:
                data = {k: archive[k] for k in archive.files}
            (tmp_path / f"{name}_raw_data.json").write_text(json.dumps(to_json(data)))
        fallback = load_profile(tmp_path)
        np.testing.assert_array_equal(fallback.prefill.ttft_ms, npz.prefill.ttft_ms)
        np.testing.assert_array_equal(fallback.decode.itl_ms, npz.decode.itl_ms)
        assert fallback.decode.max_kv_tokens == npz.decode.max_kv_tokens
        assert str(fallback.metadata["decode_file"]).endswith("decode_raw_data.json")

    def test_each_component_falls_back_on_its_own(self, tmp_path: Path) -> None:
        """A prefill NPZ with only a decode JSON is read as Dynamo does."""
        prefill_file, decode_file = write_results_dir(
            tmp_path, good_prefill(), good_decode()
        )
        decode_file.unlink()
        (tmp_path / "decode_raw_data.json").write_text(
            json.dumps(to_json(good_decode()))
        )
        profile = load_profile(tmp_path)
        assert profile.metadata["prefill_file"] == str(prefill_file)
        assert profile.decode.max_kv_tokens == 100_000

    def test_load_json_reads_a_file_pair(self, tmp_path: Path) -> None:
        """load_json takes the two JSON files directly."""
        (tmp_path / "p.json").write_text(json.dumps(to_json(good_prefill())))
        (tmp_path / "d.json").write_text(json.dumps(to_json(good_decode())))
        profile = load_json(tmp_path / "p.json", tmp_path / "d.json")
        assert profile.prefill.isl_tokens.tolist() == [100.0, 1000.0, 2000.0, 4000.0]

    def test_neither_file_says_what_was_looked_for(self, tmp_path: Path) -> None:
        """An empty directory names both layouts' file names."""
        with pytest.raises(ProfileError) as info:
            load_profile(tmp_path)
        message = str(info.value)
        assert "selected_prefill_interpolation/raw_data.npz" in message
        assert "prefill_raw_data.json" in message
        assert "prefill.npz" in message
        assert info.value.path == str(tmp_path)

    def test_a_file_instead_of_a_directory_is_refused(self, tmp_path: Path) -> None:
        """A path to a file is reported as not a directory."""
        file = tmp_path / "x.npz"
        file.write_bytes(b"")
        with pytest.raises(ProfileError, match="not a directory"):
            load_profile(file)


class TestPreSweptLayout:
    """``prefill.npz``/``decode.npz`` with one row per parallel config."""

    def test_h100_tp4_is_selected(self, repo_data: Path) -> None:
        """Selecting TP4 gives the TP4 row of both files and its metadata."""
        profile = load_profile(repo_data / H100, select="TP4")
        assert profile.prefill.ttft_ms[0] == pytest.approx(23.423058)
        assert profile.decode.itl_ms[0] == pytest.approx(12.14268)
        assert profile.decode.max_kv_tokens == 224_133
        assert profile.metadata["tp"] == 4
        assert profile.metadata["config"] == "TP4"
        assert profile.metadata["prefill_engine_num_gpu"] == 4
        assert profile.metadata["decode_engine_num_gpu"] == 4
        assert profile.metadata["model"] == "nvidia/Llama-3.3-70B-Instruct-FP8"

    @pytest.mark.parametrize("select", ["tp4", "TP4", " tp=4 ", {"tp": 4}, {"TP": "4"}])
    def test_selection_spellings_agree(self, repo_data: Path, select: Any) -> None:
        """Every spelling of TP4 picks the same row."""
        profile = load_profile(repo_data / H100, select=select)
        assert profile.metadata["tp"] == 4

    def test_unknown_tp_lists_the_available_configs(self, repo_data: Path) -> None:
        """TP16 is refused with the list TP8, TP4, TP2."""
        with pytest.raises(ProfileError, match="TP8, TP4, TP2") as info:
            load_profile(repo_data / H100, select="TP16")
        assert info.value.field == "select"
        assert info.value.path.endswith("prefill.npz")

    def test_several_rows_need_a_selection(self, repo_data: Path) -> None:
        """Without select a three-row file is refused and lists its rows."""
        with pytest.raises(ProfileError, match="TP8, TP4, TP2"):
            load_profile(repo_data / H100)

    def test_unparseable_selection_is_refused(self, repo_data: Path) -> None:
        """A selection string that names no TP/DP/PP is an error naming select."""
        with pytest.raises(ProfileError, match="cannot parse selection"):
            load_profile(repo_data / H100, select="big")

    def test_single_row_needs_no_selection(
        self, repo_data: Path, h200_profile_dir: Path
    ) -> None:
        """The one-row H200 pre-swept file holds the bundled profile's numbers."""
        swept = load_profile(repo_data / H200_SWEPT)
        packaged = load_profile(h200_profile_dir)
        np.testing.assert_array_equal(swept.prefill.ttft_ms, packaged.prefill.ttft_ms)
        np.testing.assert_array_equal(swept.decode.itl_ms, packaged.decode.itl_ms)
        assert swept.metadata["config"] == "TP1"

    def test_available_configs(self, repo_data: Path) -> None:
        """available_configs labels the rows in file order."""
        labels = available_configs(repo_data / H100 / "decode.npz")
        assert labels == ("TP8", "TP4", "TP2")

    def test_load_npz_reads_one_dimensional_files(self, tmp_path: Path) -> None:
        """load_npz also reads a results-layout file pair (no rows)."""
        prefill_file, decode_file = write_results_dir(
            tmp_path, good_prefill(), good_decode()
        )
        profile = load_npz(prefill_file, decode_file)
        assert profile.metadata["layout"] == "npz"
        assert profile.decode.max_kv_tokens == 100_000


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda arrays: arrays.pop(key)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(arrays: dict[str, Any]) -> None:
        arrays[key] = value

    return mutate


def _poke(key: str, index: int, value: float) -> Callable[[dict[str, Any]], None]:
    def mutate(arrays: dict[str, Any]) -> None:
        array = np.array(arrays[key], dtype=np.float64)
        array[index] = value
        arrays[key] = array

    return mutate


PREFILL_CASES = [
    ("missing key", _drop("prefill_ttft"), "prefill_ttft", "missing array"),
    ("NaN", _poke("prefill_ttft", 2, np.nan), "prefill_ttft", "non-finite"),
    (
        "inf",
        _poke("prefill_thpt_per_gpu", 1, np.inf),
        "prefill_thpt_per_gpu",
        "non-finite",
    ),
    (
        "too few points",
        lambda a: a.update({k: v[:2] for k, v in a.items()}),
        "prefill_isl",
        "at least 3",
    ),
    ("non-increasing ISL", _poke("prefill_isl", 2, 1000.0), "prefill_isl", "increase"),
    ("decreasing ISL", _poke("prefill_isl", 3, 500.0), "prefill_isl", "increase"),
    ("mismatched shapes", _set("prefill_ttft", np.ones(5)), "prefill_ttft", "5 points"),
    ("two-dimensional", _set("prefill_ttft", np.ones((2, 2))), "prefill_ttft", "1-D"),
    (
        "strings",
        _set("prefill_thpt_per_gpu", np.array(["a"] * 4)),
        "prefill_thpt_per_gpu",
        "numbers",
    ),
    ("zero TTFT", _poke("prefill_ttft", 0, 0.0), "prefill_ttft", "positive"),
]

DECODE_CASES = [
    ("missing max_kv_tokens", _drop("max_kv_tokens"), "max_kv_tokens", "missing array"),
    ("missing z_itl", _drop("z_itl"), "z_itl", "missing array"),
    ("NaN", _poke("z_itl", 4, np.nan), "z_itl", "non-finite"),
    (
        "zero max_kv_tokens",
        _set("max_kv_tokens", np.array([0])),
        "max_kv_tokens",
        "positive",
    ),
    (
        "negative max_kv_tokens",
        _set("max_kv_tokens", np.array([-5])),
        "max_kv_tokens",
        "positive",
    ),
    (
        "fractional max_kv_tokens",
        _set("max_kv_tokens", np.array([10.5])),
        "max_kv_tokens",
        "whole",
    ),
    (
        "two max_kv_tokens",
        _set("max_kv_tokens", np.array([1, 2])),
        "max_kv_tokens",
        "one number",
    ),
    (
        "mismatched shapes",
        _set("z_thpt_per_gpu", np.ones(4)),
        "z_thpt_per_gpu",
        "4 points",
    ),
    (
        "too few points",
        lambda a: a.update({k: v[:2] for k, v in a.items() if k != "max_kv_tokens"}),
        "x_kv_usage",
        "at least 3",
    ),
    ("zero context", _poke("y_context_length", 0, 0.0), "y_context_length", "positive"),
]


class TestMalformedInput:
    """Bad files raise ProfileError naming the file and the array."""

    @pytest.mark.parametrize(
        ("case", "mutate", "field", "words"),
        PREFILL_CASES,
        ids=[c[0] for c in PREFILL_CASES],
    )
    def test_bad_prefill_npz(
        self,
        tmp_path: Path,
        case: str,
        mutate: Callable[[dict[str, Any]], None],
        field: str,
        words: str,
    ) -> None:
        """Each malformed prefill NPZ names the NPZ file and the field."""
        prefill = good_prefill()
        mutate(prefill)
        prefill_file, _ = write_results_dir(tmp_path, prefill, good_decode())
        with pytest.raises(ProfileError, match=words) as info:
            load_profile(tmp_path)
        assert info.value.path == str(prefill_file)
        assert info.value.field == field
        assert str(prefill_file) in str(info.value)
        assert field in str(info.value)

    @pytest.mark.parametrize(
        ("case", "mutate", "field", "words"),
        DECODE_CASES,
        ids=[c[0] for c in DECODE_CASES],
    )
    def test_bad_decode_npz(
        self,
        tmp_path: Path,
        case: str,
        mutate: Callable[[dict[str, Any]], None],
        field: str,
        words: str,
    ) -> None:
        """Each malformed decode NPZ names the NPZ file and the field."""
        decode = good_decode()
        mutate(decode)
        _, decode_file = write_results_dir(tmp_path, good_prefill(), decode)
        with pytest.raises(ProfileError, match=words) as info:
            load_profile(tmp_path)
        assert info.value.path == str(decode_file)
        assert info.value.field == field

    @pytest.mark.parametrize(
        ("case", "mutate", "field", "words"),
        DECODE_CASES,
        ids=[c[0] for c in DECODE_CASES],
    )
    def test_bad_decode_json(
        self,
        tmp_path: Path,
        case: str,
        mutate: Callable[[dict[str, Any]], None],
        field: str,
        words: str,
    ) -> None:
        """The JSON fallback is validated the same way."""
        decode = good_decode()
        mutate(decode)
        (tmp_path / "prefill_raw_data.json").write_text(
            json.dumps(to_json(good_prefill()))
        )
        decode_file = tmp_path / "decode_raw_data.json"
        decode_file.write_text(json.dumps(to_json(decode)))
        with pytest.raises(ProfileError, match=words) as info:
            load_profile(tmp_path)
        assert info.value.path == str(decode_file)
        assert info.value.field == field

    def test_invalid_json_names_the_line(self, tmp_path: Path) -> None:
        """A syntax error in the JSON fallback reports line and column."""
        file = tmp_path / "prefill_raw_data.json"
        file.write_text('{\n  "prefill_isl": [1, 2,\n}')
        (tmp_path / "decode_raw_data.json").write_text(
            json.dumps(to_json(good_decode()))
        )
        with pytest.raises(ProfileError, match="line 3") as info:
            load_profile(tmp_path)
        assert info.value.path == str(file)

    def test_json_that_is_not_an_object(self, tmp_path: Path) -> None:
        """A JSON list at top level is refused."""
        (tmp_path / "p.json").write_text("[1, 2, 3]")
        (tmp_path / "d.json").write_text(json.dumps(to_json(good_decode())))
        with pytest.raises(ProfileError, match="JSON object"):
            load_json(tmp_path / "p.json", tmp_path / "d.json")

    def test_json_with_text_values(self, tmp_path: Path) -> None:
        """A list of strings in JSON names the field."""
        prefill = to_json(good_prefill())
        prefill["prefill_ttft"] = ["a", "b", "c", "d"]
        (tmp_path / "p.json").write_text(json.dumps(prefill))
        (tmp_path / "d.json").write_text(json.dumps(to_json(good_decode())))
        with pytest.raises(ProfileError) as info:
            load_json(tmp_path / "p.json", tmp_path / "d.json")
        assert info.value.field == "prefill_ttft"

    def test_not_a_zip_file(self, tmp_path: Path) -> None:
        """A corrupt NPZ is reported as unreadable, naming the file."""
        prefill_file, decode_file = write_results_dir(
            tmp_path, good_prefill(), good_decode()
        )
        decode_file.write_bytes(b"this is not a zip archive")
        with pytest.raises(ProfileError, match="NPZ") as info:
            load_npz(prefill_file, decode_file)
        assert info.value.path == str(decode_file)

    def test_missing_pre_swept_partner(self, tmp_path: Path) -> None:
        """A pre-swept prefill.npz without decode.npz names the missing file."""
        np.savez(tmp_path / "prefill.npz", **good_prefill())
        with pytest.raises(ProfileError, match="not found") as info:
            load_profile(tmp_path)
        assert info.value.path == str(tmp_path / "decode.npz")

    def test_bad_row_of_a_pre_swept_file(self, tmp_path: Path) -> None:
        """A NaN inside the selected row names the file and the field."""
        prefill = {k: np.stack([v, v]) for k, v in good_prefill().items()}
        prefill["prefill_ttft"][1, 2] = np.nan
        prefill["tp"] = np.array([[1], [2]])
        decode = {k: np.stack([v, v]) for k, v in good_decode().items()}
        decode["tp"] = np.array([[1], [2]])
        np.savez(tmp_path / "prefill.npz", **prefill)
        np.savez(tmp_path / "decode.npz", **decode)
        assert load_profile(tmp_path, select="tp1").metadata["tp"] == 1
        with pytest.raises(ProfileError, match="non-finite") as info:
            load_profile(tmp_path, select="tp2")
        assert info.value.field == "prefill_ttft"
        assert info.value.path == str(tmp_path / "prefill.npz")

    def test_profile_from_arrays_validates(self) -> None:
        """In-memory arrays go through the same checks."""
        prefill = good_prefill()
        prefill["prefill_isl"] = np.array([1.0, 1.0, 2.0, 3.0])
        with pytest.raises(ProfileError, match="increase"):
            profile_from_arrays(prefill, good_decode(), source="mem")
        assert (
            profile_from_arrays(good_prefill(), good_decode()).decode.max_kv_tokens
            == 100_000
        )
