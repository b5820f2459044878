"""Read performance profiles (the only module that opens profile files).

Two directory layouts written by Dynamo's profiler are understood (spec §2.1):

* **profiling results**: ``selected_prefill_interpolation/raw_data.npz`` and
  ``selected_decode_interpolation/raw_data.npz``; for each component whose NPZ is missing,
  the JSON fallback ``prefill_raw_data.json`` / ``decode_raw_data.json`` is read instead;
* **pre-swept**: ``prefill.npz`` and ``decode.npz`` with one row per parallel configuration
  and metadata columns (``gpu_type``, ``model``, ``tp``, ``dp``, ``pp``, ...). A row is chosen
  with ``select`` (``"TP4"`` or ``{"tp": 4}``); a file with a single row needs no selection.

Everything read is validated; a malformed file raises :class:`ProfileError` naming the file
and the array at fault.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dynamo_planner.exceptions import ProfileError
from dynamo_planner.values import DecodeProfile, PerfProfile, PrefillProfile

__all__ = [
    "DECODE_KEYS",
    "METADATA_KEYS",
    "PREFILL_KEYS",
    "Selection",
    "available_configs",
    "load_json",
    "load_npz",
    "load_profile",
    "profile_from_arrays",
]

PREFILL_KEYS = ("prefill_isl", "prefill_ttft", "prefill_thpt_per_gpu")
"""Arrays of a prefill profile: ISL (tokens), TTFT (ms), tokens/s per GPU."""
DECODE_KEYS = ("x_kv_usage", "y_context_length", "z_itl", "z_thpt_per_gpu")
"""Arrays of a decode profile (plus the scalar ``max_kv_tokens``)."""
METADATA_KEYS = (
    "gpu_type",
    "model",
    "framework",
    "framework_version",
    "tp",
    "dp",
    "pp",
    "block_size",
    "max_batch_size",
    "gpu_count",
)
"""Per-row metadata columns of a pre-swept file."""

MIN_POINTS = 3
"""Fewest points a profile may have (the profiler writes nothing below this)."""

Selection = str | Mapping[str, object] | None
"""How to pick a pre-swept row: ``"TP4"``, ``{"tp": 4}``, or ``None`` for a single row."""

_RESULTS_PREFILL_NPZ = Path("selected_prefill_interpolation", "raw_data.npz")
_RESULTS_DECODE_NPZ = Path("selected_decode_interpolation", "raw_data.npz")
_RESULTS_PREFILL_JSON = Path("prefill_raw_data.json")
_RESULTS_DECODE_JSON = Path("decode_raw_data.json")
_SWEPT_PREFILL = Path("prefill.npz")
_SWEPT_DECODE = Path("decode.npz")
_SELECT_TOKEN = re.compile(r"(tp|dp|pp)\s*=?\s*(\d+)", re.IGNORECASE)

Arrays = dict[str, npt.NDArray[Any]]


def load_profile(
    path: str | os.PathLike[str], *, select: Selection = None
) -> PerfProfile:
    """Read a profile directory in either layout.

    Args:
        path: A profiling-results directory or a pre-swept directory.
        select: The pre-swept row to use (``"TP4"``, ``"tp4"``, ``{"tp": 4}``); ignored
            (and not needed) for a profiling-results directory or a single-row file.

    Returns:
        The validated profile. ``metadata["layout"]`` says which layout was read.

    Raises:
        ProfileError: The directory holds neither layout, or a file is malformed, or the
            selection matches no row (the message lists the rows available).
    """
    directory = Path(path)
    if not directory.is_dir():
        raise ProfileError(
            "not a directory; expected a profiling-results directory "
            f"({_RESULTS_PREFILL_NPZ}, ...) or a pre-swept directory "
            f"({_SWEPT_PREFILL}, {_SWEPT_DECODE})",
            path=str(directory),
        )
    if (directory / _SWEPT_PREFILL).exists() or (directory / _SWEPT_DECODE).exists():
        return load_npz(
            directory / _SWEPT_PREFILL, directory / _SWEPT_DECODE, select=select
        )
    prefill_file = _results_file(directory, _RESULTS_PREFILL_NPZ, _RESULTS_PREFILL_JSON)
    decode_file = _results_file(directory, _RESULTS_DECODE_NPZ, _RESULTS_DECODE_JSON)
    prefill = _prefill_profile(_read_any(prefill_file, PREFILL_KEYS), prefill_file)
    decode = _decode_profile(_read_any(decode_file, DECODE_KEYS), decode_file)
    return PerfProfile(
        prefill=prefill,
        decode=decode,
        source=str(directory),
        metadata={
            "layout": "profiling-results",
            "prefill_file": str(prefill_file),
            "decode_file": str(decode_file),
        },
    )


def load_npz(
    prefill_path: str | os.PathLike[str],
    decode_path: str | os.PathLike[str],
    *,
    select: Selection = None,
) -> PerfProfile:
    """Read a prefill NPZ and a decode NPZ (1-D arrays, or one row per config).

    Args:
        prefill_path: The prefill NPZ.
        decode_path: The decode NPZ.
        select: The row to use when the files hold several configurations.

    Returns:
        The validated profile.

    Raises:
        ProfileError: A file is missing or malformed, or the selection matches no row.
    """
    prefill_file, decode_file = Path(prefill_path), Path(decode_path)
    prefill_arrays = _read_npz(prefill_file, PREFILL_KEYS)
    decode_arrays = _read_npz(decode_file, DECODE_KEYS)
    prefill_meta: dict[str, Any] = {}
    decode_meta: dict[str, Any] = {}
    if _is_swept(prefill_arrays, PREFILL_KEYS):
        prefill_arrays, prefill_meta = _select_row(prefill_arrays, prefill_file, select)
    if _is_swept(decode_arrays, DECODE_KEYS):
        decode_arrays, decode_meta = _select_row(decode_arrays, decode_file, select)
    metadata: dict[str, Any] = {
        "layout": "pre-swept" if prefill_meta or decode_meta else "npz",
        "prefill_file": str(prefill_file),
        "decode_file": str(decode_file),
    }
    metadata.update(decode_meta)
    metadata.update(prefill_meta)
    if prefill_meta:
        metadata["prefill_engine_num_gpu"] = _engine_gpus(prefill_meta)
    if decode_meta:
        metadata["decode_engine_num_gpu"] = _engine_gpus(decode_meta)
    return PerfProfile(
        prefill=_prefill_profile(prefill_arrays, prefill_file),
        decode=_decode_profile(decode_arrays, decode_file),
        source=str(prefill_file.parent),
        metadata=metadata,
    )


def load_json(
    prefill_path: str | os.PathLike[str], decode_path: str | os.PathLike[str]
) -> PerfProfile:
    """Read the JSON fallback files (``prefill_raw_data.json``, ``decode_raw_data.json``).

    Args:
        prefill_path: JSON object with the three prefill arrays as lists.
        decode_path: JSON object with the decode arrays as lists and ``max_kv_tokens`` as
            an integer.

    Returns:
        The validated profile.

    Raises:
        ProfileError: A file is missing, not JSON, or malformed.
    """
    prefill_file, decode_file = Path(prefill_path), Path(decode_path)
    return PerfProfile(
        prefill=_prefill_profile(_read_json(prefill_file, PREFILL_KEYS), prefill_file),
        decode=_decode_profile(_read_json(decode_file, DECODE_KEYS), decode_file),
        source=str(prefill_file.parent),
        metadata={
            "layout": "json",
            "prefill_file": str(prefill_file),
            "decode_file": str(decode_file),
        },
    )


def profile_from_arrays(
    prefill: Mapping[str, Any],
    decode: Mapping[str, Any],
    *,
    source: str = "<arrays>",
    metadata: Mapping[str, Any] | None = None,
) -> PerfProfile:
    """Validate in-memory arrays (keys as in the NPZ files) into a profile.

    Args:
        prefill: ``prefill_isl``, ``prefill_ttft``, ``prefill_thpt_per_gpu``.
        decode: ``x_kv_usage``, ``y_context_length``, ``z_itl``, ``z_thpt_per_gpu``,
            ``max_kv_tokens``.
        source: A description used in error messages.
        metadata: Descriptive fields to attach.

    Returns:
        The validated profile.

    Raises:
        ProfileError: The arrays are malformed.
    """
    where = Path(source)
    prefill_arrays = {k: np.asarray(v) for k, v in prefill.items()}
    decode_arrays = {k: np.asarray(v) for k, v in decode.items()}
    return PerfProfile(
        prefill=_prefill_profile(prefill_arrays, where),
        decode=_decode_profile(decode_arrays, where),
        source=source,
        metadata=dict(metadata or {}),
    )


def available_configs(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Labels (``"TP8"``, ``"TP4 DP2"``, ...) of the rows of a pre-swept NPZ file.

    Args:
        path: A pre-swept ``prefill.npz`` or ``decode.npz``.

    Returns:
        One label per row, in file order.
    """
    file = Path(path)
    arrays = _read_npz(file, ())
    return tuple(
        _row_label(_row_metadata(arrays, i)) for i in range(_row_count(arrays))
    )


# --- reading -------------------------------------------------------------------------


def _results_file(directory: Path, npz: Path, fallback: Path) -> Path:
    for candidate in (directory / npz, directory / fallback):
        if candidate.is_file():
            return candidate
    raise ProfileError(
        f"no profile data: looked for {npz} and its JSON fallback {fallback} "
        f"(profiling-results layout) and for {_SWEPT_PREFILL}/{_SWEPT_DECODE} "
        "(pre-swept layout); run Dynamo's pre-deployment profiler first",
        path=str(directory),
    )


def _read_any(file: Path, keys: tuple[str, ...]) -> Arrays:
    if file.suffix == ".json":
        return _read_json(file, keys)
    return _read_npz(file, keys)


def _read_npz(file: Path, keys: tuple[str, ...]) -> Arrays:
    if not file.is_file():
        raise ProfileError("file not found", path=str(file))
    try:
        loaded = np.load(file, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ProfileError(f"not a readable NPZ file ({exc})", path=str(file)) from exc
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ProfileError("not an NPZ archive (a single .npy array?)", path=str(file))
    try:
        with loaded as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ProfileError(f"not a readable NPZ file ({exc})", path=str(file)) from exc
    _require_keys(arrays, keys, file)
    return arrays


def _read_json(file: Path, keys: tuple[str, ...]) -> Arrays:
    if not file.is_file():
        raise ProfileError("file not found", path=str(file))
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ProfileError(
            f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            path=str(file),
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read ({exc})", path=str(file)) from exc
    if not isinstance(data, dict):
        raise ProfileError(
            f"expected a JSON object, got {type(data).__name__}", path=str(file)
        )
    arrays: Arrays = {}
    for name, value in data.items():
        try:
            arrays[name] = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ProfileError(
                f"not a list of numbers ({exc})", path=str(file), field=name
            ) from exc
    _require_keys(arrays, keys, file)
    return arrays


def _require_keys(arrays: Mapping[str, Any], keys: tuple[str, ...], file: Path) -> None:
    needed = keys + (("max_kv_tokens",) if keys == DECODE_KEYS else ())
    for key in needed:
        if key not in arrays:
            have = ", ".join(sorted(arrays)) or "nothing"
            raise ProfileError(
                f"missing array (the file has: {have})", path=str(file), field=key
            )


# --- pre-swept rows -------------------------------------------------------------------


def _is_swept(arrays: Arrays, keys: tuple[str, ...]) -> bool:
    return any(k in arrays for k in METADATA_KEYS) or np.ndim(arrays[keys[0]]) == 2


def _row_count(arrays: Arrays) -> int:
    for key in (*PREFILL_KEYS, *DECODE_KEYS, *METADATA_KEYS):
        if key in arrays and np.ndim(arrays[key]) >= 1:
            return int(np.shape(arrays[key])[0])
    return 0


def _scalar(value: Any) -> Any:
    return np.asarray(value).reshape(-1)[0].item()


def _row_metadata(arrays: Arrays, row: int) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key in METADATA_KEYS:
        if key in arrays and np.ndim(arrays[key]) >= 1:
            meta[key] = _scalar(arrays[key][row])
    return meta


def _row_label(meta: Mapping[str, Any]) -> str:
    parts = [f"TP{meta.get('tp', '?')}"]
    parts.extend(
        f"{name.upper()}{meta[name]}"
        for name in ("dp", "pp")
        if meta.get(name, 1) not in (1, "1")
    )
    return " ".join(parts)


def _engine_gpus(meta: Mapping[str, Any]) -> int:
    gpus = 1
    for name in ("tp", "dp", "pp"):
        value = meta.get(name, 1)
        gpus *= int(value) if isinstance(value, (int, float, str)) else 1
    return gpus


def _parse_selection(select: Selection, file: Path) -> dict[str, object]:
    if select is None:
        return {}
    if isinstance(select, Mapping):
        return {str(k).lower(): v for k, v in select.items()}
    tokens = _SELECT_TOKEN.findall(select)
    leftover = _SELECT_TOKEN.sub("", select).strip(" ,;:-_/")
    if not tokens or leftover:
        raise ProfileError(
            f"cannot parse selection {select!r}; write it like 'TP4', 'tp4-dp2' "
            "or as a mapping {'tp': 4}",
            path=str(file),
            field="select",
        )
    return {name.lower(): int(value) for name, value in tokens}


def _matches(meta: Mapping[str, Any], wanted: Mapping[str, object]) -> bool:
    return all(k in meta and str(meta[k]) == str(v) for k, v in wanted.items())


def _select_row(
    arrays: Arrays, file: Path, select: Selection
) -> tuple[Arrays, dict[str, Any]]:
    rows = _row_count(arrays)
    metas = [_row_metadata(arrays, i) for i in range(rows)]
    labels = ", ".join(_row_label(m) for m in metas) or "none"
    wanted = _parse_selection(select, file)
    if not wanted and rows != 1:
        raise ProfileError(
            f"{rows} parallel configs in this file; choose one with select "
            f"(available: {labels})",
            path=str(file),
            field="select",
        )
    chosen = [i for i, meta in enumerate(metas) if _matches(meta, wanted)]
    if len(chosen) != 1:
        problem = "matches no config" if not chosen else "matches several configs"
        raise ProfileError(
            f"selection {select!r} {problem} (available: {labels})",
            path=str(file),
            field="select",
        )
    row = chosen[0]
    picked = {
        key: value[row] if np.ndim(value) == 2 else value
        for key, value in arrays.items()
        if key not in METADATA_KEYS
    }
    meta = dict(metas[row])
    meta["config"] = _row_label(meta)
    return picked, meta


# --- validation -------------------------------------------------------------------------


def _numeric(
    arrays: Mapping[str, Any], key: str, file: Path
) -> npt.NDArray[np.float64]:
    raw = np.asarray(arrays[key])
    if raw.dtype.kind not in "iuf":
        raise ProfileError(
            f"expected numbers, got dtype {raw.dtype}", path=str(file), field=key
        )
    values = raw.astype(np.float64)
    if values.ndim != 1:
        raise ProfileError(
            f"expected a 1-D array, got shape {values.shape}", path=str(file), field=key
        )
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ProfileError(
            f"non-finite value {values[bad[0]]} at index {bad[0]}",
            path=str(file),
            field=key,
        )
    return values


def _columns(
    arrays: Mapping[str, Any], keys: tuple[str, ...], file: Path
) -> list[npt.NDArray[np.float64]]:
    columns = [_numeric(arrays, key, file) for key in keys]
    length = columns[0].size
    for key, column in zip(keys, columns, strict=True):
        if column.size != length:
            raise ProfileError(
                f"has {column.size} points but {keys[0]} has {length}",
                path=str(file),
                field=key,
            )
    if length < MIN_POINTS:
        raise ProfileError(
            f"only {length} points; a profile needs at least {MIN_POINTS}",
            path=str(file),
            field=keys[0],
        )
    return columns


def _require(
    ok: npt.NDArray[np.bool_],
    what: str,
    values: npt.NDArray[np.float64],
    file: Path,
    key: str,
) -> None:
    bad = np.flatnonzero(~ok)
    if bad.size:
        raise ProfileError(
            f"value {values[bad[0]]} at index {bad[0]} {what}",
            path=str(file),
            field=key,
        )


def _prefill_profile(arrays: Mapping[str, Any], file: Path) -> PrefillProfile:
    _require_keys(arrays, PREFILL_KEYS, file)
    isl, ttft, thpt = _columns(arrays, PREFILL_KEYS, file)
    _require(isl > 0, "is not a positive ISL", isl, file, "prefill_isl")
    steps = np.diff(isl)
    if np.any(steps <= 0):
        at = int(np.flatnonzero(steps <= 0)[0]) + 1
        raise ProfileError(
            f"ISL must increase strictly; {isl[at]} at index {at} follows {isl[at - 1]}",
            path=str(file),
            field="prefill_isl",
        )
    _require(ttft > 0, "is not a positive TTFT (ms)", ttft, file, "prefill_ttft")
    _require(thpt >= 0, "is a negative throughput", thpt, file, "prefill_thpt_per_gpu")
    return PrefillProfile(isl_tokens=isl, ttft_ms=ttft, throughput_per_gpu=thpt)


def _max_kv_tokens(arrays: Mapping[str, Any], file: Path) -> int:
    raw = np.asarray(arrays["max_kv_tokens"])
    if raw.size != 1 or raw.dtype.kind not in "iuf":
        raise ProfileError(
            f"expected one number, got shape {raw.shape} dtype {raw.dtype}",
            path=str(file),
            field="max_kv_tokens",
        )
    value = float(raw.reshape(-1)[0])
    if not math.isfinite(value) or value <= 0 or value != math.floor(value):
        raise ProfileError(
            f"must be a positive whole number of tokens, got {value}",
            path=str(file),
            field="max_kv_tokens",
        )
    return int(value)


def _decode_profile(arrays: Mapping[str, Any], file: Path) -> DecodeProfile:
    _require_keys(arrays, DECODE_KEYS, file)
    kv, context, itl, thpt = _columns(arrays, DECODE_KEYS, file)
    _require(kv >= 0, "is a negative KV usage", kv, file, "x_kv_usage")
    _require(
        context > 0,
        "is not a positive context length",
        context,
        file,
        "y_context_length",
    )
    _require(itl > 0, "is not a positive ITL (ms)", itl, file, "z_itl")
    _require(thpt >= 0, "is a negative throughput", thpt, file, "z_thpt_per_gpu")
    return DecodeProfile(
        kv_usage=kv,
        context_length_tokens=context,
        itl_ms=itl,
        throughput_per_gpu=thpt,
        max_kv_tokens=_max_kv_tokens(arrays, file),
    )
