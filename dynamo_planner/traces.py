"""The only reader of request traces: mooncake JSONL, the Azure LLM inference CSV, ServeGen.

Three layouts are understood:

``mooncake``
    JSON Lines (plain or gzip), one request per line: ``timestamp`` (**milliseconds**),
    ``input_length`` and ``output_length`` (tokens). Other fields (``hash_ids``) are ignored
    and blank lines are skipped.
``azure``
    The Azure LLM inference CSV (2023): header ``TIMESTAMP,ContextTokens,GeneratedTokens``,
    ``TIMESTAMP`` a naive wall-clock string with up to 7 fractional digits.
``servegen``
    A folder of ServeGen per-client window files ``chunk-<client>-trace.csv`` (no header:
    ``timestamp, rate, cv, pattern, arg1, arg2``, one row per 600 s window). There are no
    per-request rows; :func:`load_servegen` returns the windows and :func:`load_intervals`
    turns the aggregate rate into requests per interval.

:func:`bucket` cuts a request trace into fixed intervals. Unlike the reference planner (which
emits only non-empty buckets), empty intervals are kept as zero-count intervals, so a
predictor sees the idle periods that really happened. :func:`warm_start` feeds a series into
predictors, as ``--load-predictor-warmup-trace`` does.

A malformed record raises :class:`~dynamo_planner.exceptions.TraceError` naming the file,
the line and the field.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import math
import re
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import attrs
import numpy as np
import numpy.typing as npt

from dynamo_planner.exceptions import TraceError

if TYPE_CHECKING:
    from dynamo_planner.protocols import Predictor

__all__ = [
    "FORMATS",
    "IntervalSeries",
    "RequestTrace",
    "ServeGenWindows",
    "bucket",
    "detect_format",
    "load_intervals",
    "load_requests",
    "load_servegen",
    "warm_start",
]

FloatArray = npt.NDArray[np.float64]

FORMATS = ("mooncake", "azure", "servegen")
"""The trace layouts this module reads."""

_AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
_MOONCAKE_FIELDS = ("timestamp", "input_length", "output_length")
_SERVEGEN_GLOB = "chunk-*-trace.csv"
_SERVEGEN_CLIENT = re.compile(r"chunk-(.+)-trace\.csv$")
_SERVEGEN_PATTERNS = frozenset({"", "Gamma", "Weibull"})


def _str_tuple(values: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in values)


def _readonly(values: Any) -> FloatArray:
    array = np.array(values, dtype=np.float64)
    array.setflags(write=False)
    return array


@attrs.frozen(kw_only=True, eq=False)
class RequestTrace:
    """Requests of a trace: when each arrived and how long it was.

    Attributes:
        arrival_s: Arrival times in seconds, sorted ascending. The origin is the trace's
            own: for mooncake ``timestamp / 1000`` as written (its first record is usually
            at 0); for the Azure CSV the first request's ``TIMESTAMP`` (so it is at 0).
        isl_tokens: Input (prompt) length of each request, in tokens.
        osl_tokens: Output length of each request, in tokens.
        source: Where the trace was read from (a path or a description).
    """

    arrival_s: FloatArray = attrs.field(converter=_readonly)
    isl_tokens: FloatArray = attrs.field(converter=_readonly)
    osl_tokens: FloatArray = attrs.field(converter=_readonly)
    source: str = ""

    def __attrs_post_init__(self) -> None:
        n = self.arrival_s.shape
        if (
            self.arrival_s.ndim != 1
            or self.isl_tokens.shape != n
            or self.osl_tokens.shape != n
        ):
            raise ValueError(
                "arrival_s, isl_tokens and osl_tokens must be 1-D arrays of one length, got "
                f"{self.arrival_s.shape}, {self.isl_tokens.shape}, {self.osl_tokens.shape}"
            )
        if n[0] > 1 and bool(np.any(np.diff(self.arrival_s) < 0)):
            raise ValueError("arrival_s must be sorted ascending")

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])

    @property
    def duration_s(self) -> float:
        """Time from the first to the last arrival, in seconds (0 for fewer than 2)."""
        if len(self) < 2:
            return 0.0
        return float(self.arrival_s[-1] - self.arrival_s[0])


@attrs.frozen(kw_only=True, eq=False)
class IntervalSeries:
    """A trace cut into fixed intervals: the three series a planner forecasts.

    Attributes:
        start_s: Start of each interval, in seconds on the trace's clock.
        num_req: Requests that arrived in each interval (0 for an empty interval; may be
            fractional when derived from rates, as for ServeGen).
        isl_mean: Mean input length per interval, in tokens; NaN when unknown (an empty
            interval, or a trace without lengths).
        osl_mean: Mean output length per interval, in tokens; NaN when unknown.
        interval_s: Length of one interval, in seconds.
        source: Where the trace was read from.
    """

    start_s: FloatArray = attrs.field(converter=_readonly)
    num_req: FloatArray = attrs.field(converter=_readonly)
    isl_mean: FloatArray = attrs.field(converter=_readonly)
    osl_mean: FloatArray = attrs.field(converter=_readonly)
    interval_s: float
    source: str = ""

    def __attrs_post_init__(self) -> None:
        n = self.start_s.shape
        if any(a.shape != n for a in (self.num_req, self.isl_mean, self.osl_mean)):
            raise ValueError(
                "start_s, num_req, isl_mean and osl_mean must have one length"
            )
        if not self.interval_s > 0:
            raise ValueError(f"interval_s must be > 0, got {self.interval_s}")

    def __len__(self) -> int:
        return int(self.start_s.shape[0])

    def series(self, name: str) -> FloatArray:
        """One series by its predictor key: ``"num_req"``, ``"isl"`` or ``"osl"``."""
        arrays = {"num_req": self.num_req, "isl": self.isl_mean, "osl": self.osl_mean}
        try:
            return arrays[name]
        except KeyError:
            raise KeyError(
                f"no series {name!r}; choose from num_req, isl, osl"
            ) from None

    def head(self, n: int) -> IntervalSeries:
        """The first ``n`` intervals."""
        return attrs.evolve(
            self,
            start_s=self.start_s[:n],
            num_req=self.num_req[:n],
            isl_mean=self.isl_mean[:n],
            osl_mean=self.osl_mean[:n],
        )


@attrs.frozen(kw_only=True, eq=False)
class ServeGenWindows:
    """ServeGen per-client windows: each client's arrival process per window.

    Arrays are shaped ``(clients, windows)``; a client with no traffic in a window has rate
    0 and an empty pattern.

    Attributes:
        start_s: Start of each window, in seconds from the trace start.
        window_s: Length of one window, in seconds (600 in the published data).
        client_ids: The client of each row (from ``chunk-<client>-trace.csv``).
        rate_per_s: Mean request rate of each client in each window, requests per second.
        cv: Coefficient of variation of the inter-arrival times.
        pattern: Fitted inter-arrival distribution: ``"Gamma"``, ``"Weibull"`` or ``""``.
        arg1: Shape parameter of that distribution.
        arg2: Scale parameter of that distribution.
        source: The folder read.
    """

    start_s: FloatArray = attrs.field(converter=_readonly)
    window_s: float
    client_ids: tuple[str, ...] = attrs.field(converter=_str_tuple)
    rate_per_s: FloatArray = attrs.field(converter=_readonly)
    cv: FloatArray = attrs.field(converter=_readonly)
    pattern: npt.NDArray[np.str_]
    arg1: FloatArray = attrs.field(converter=_readonly)
    arg2: FloatArray = attrs.field(converter=_readonly)
    source: str = ""

    @property
    def total_rate_per_s(self) -> FloatArray:
        """Aggregate request rate per window (sum over clients), requests per second."""
        return _readonly(self.rate_per_s.sum(axis=0))

    @property
    def requests_per_window(self) -> FloatArray:
        """Aggregate requests per window: the summed rate times the window length."""
        return _readonly(self.rate_per_s.sum(axis=0) * self.window_s)


# ---------------------------------------------------------------------------------------
# format detection


def detect_format(path: str | Path) -> str:
    """Guess a trace's layout from its name, then from its first bytes.

    Args:
        path: A file (mooncake or Azure) or a folder (ServeGen).

    Returns:
        One of :data:`FORMATS`.

    Raises:
        TraceError: The path does not exist or its layout is not recognised.
    """
    p = Path(path)
    if p.is_dir():
        if any(p.glob(_SERVEGEN_GLOB)):
            return "servegen"
        raise TraceError(
            f"folder holds no ServeGen {_SERVEGEN_GLOB} files", path=str(p)
        )
    if not p.exists():
        raise TraceError("no such trace file", path=str(p))
    name = p.name.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "mooncake"
    with _open_text(p) as stream:
        for raw in stream:
            line = raw.strip()
            if not line:
                continue
            if line.startswith("{"):
                return "mooncake"
            if line.split(",")[0].strip().upper() == "TIMESTAMP":
                return "azure"
            break
    raise TraceError(
        "unrecognised trace layout (expected mooncake JSONL, the Azure CSV with a "
        "TIMESTAMP,ContextTokens,GeneratedTokens header, or a ServeGen folder)",
        path=str(p),
    )


def _open_text(path: Path) -> IO[str]:
    with path.open("rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


# ---------------------------------------------------------------------------------------
# request traces


def load_requests(path: str | Path, *, format: str | None = None) -> RequestTrace:  # noqa: A002
    """Read a per-request trace (mooncake JSONL or the Azure CSV; either may be gzipped).

    Args:
        path: The trace file.
        format: ``"mooncake"`` or ``"azure"``; detected from the name and content if omitted.

    Returns:
        The requests, sorted by arrival (stable for ties).

    Raises:
        TraceError: The file is missing, empty, of another layout, or a record is malformed
            (the message names the file, the line and the field).
    """
    p = Path(path)
    fmt = format or detect_format(p)
    if fmt == "servegen":
        raise TraceError(
            "a ServeGen folder has no per-request rows; use load_servegen() or "
            "load_intervals()",
            path=str(p),
        )
    if fmt not in FORMATS:
        raise TraceError(
            f"unknown trace format {fmt!r} (choose from mooncake, azure)", path=str(p)
        )
    if not p.is_file():
        raise TraceError("no such trace file", path=str(p))
    with _open_text(p) as stream:
        rows = (
            _read_mooncake(stream, p) if fmt == "mooncake" else _read_azure(stream, p)
        )
    arrival, isl, osl = rows
    if arrival.size == 0:
        raise TraceError("trace holds no requests", path=str(p))
    order = np.argsort(arrival, kind="stable")
    return RequestTrace(
        arrival_s=arrival[order],
        isl_tokens=isl[order],
        osl_tokens=osl[order],
        source=str(p),
    )


def _length(value: Any, *, path: Path, line: int, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TraceError(
            f"field {field!r} must be a number, got {value!r}",
            path=str(path),
            line=line,
        )
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise TraceError(
            f"field {field!r} must be finite and >= 0, got {value!r}",
            path=str(path),
            line=line,
        )
    return number


def _read_mooncake(
    stream: IO[str], path: Path
) -> tuple[FloatArray, FloatArray, FloatArray]:
    arrival: list[float] = []
    isl: list[float] = []
    osl: list[float] = []
    for line_no, raw in enumerate(stream, start=1):
        text = raw.strip()
        if not text:
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TraceError(
                f"not valid JSON ({exc.msg})", path=str(path), line=line_no
            ) from None
        if not isinstance(record, dict):
            raise TraceError(
                "a record must be a JSON object", path=str(path), line=line_no
            )
        values = []
        for field in _MOONCAKE_FIELDS:
            if field not in record:
                raise TraceError(
                    f"missing field {field!r}", path=str(path), line=line_no
                )
            values.append(_length(record[field], path=path, line=line_no, field=field))
        arrival.append(values[0] / 1000.0)
        isl.append(values[1])
        osl.append(values[2])
    return np.asarray(arrival), np.asarray(isl), np.asarray(osl)


def _parse_azure_time(text: str) -> tuple[int, float]:
    """Whole seconds since the epoch and the fraction of a naive ``YYYY-MM-DD HH:MM:SS.f``.

    The fraction is kept apart so its 100 ns digits survive the float conversion.
    """
    whole, _, fraction = text.strip().partition(".")
    if fraction and not fraction.isdigit():
        raise ValueError(text)
    stamp = datetime.fromisoformat(whole)
    if stamp.tzinfo is not None or len(whole) < 19:
        raise ValueError(text)
    epoch = (stamp - datetime(1970, 1, 1)) // timedelta(seconds=1)  # noqa: DTZ001
    return epoch, (float("0." + fraction) if fraction else 0.0)


def _read_azure(
    stream: IO[str], path: Path
) -> tuple[FloatArray, FloatArray, FloatArray]:
    reader = csv.reader(stream)
    header: list[str] | None = None
    for header_row in reader:
        if any(cell.strip() for cell in header_row):
            header = [cell.strip() for cell in header_row]
            break
    if header is None:
        raise TraceError("trace holds no header and no requests", path=str(path))
    try:
        columns = [header.index(name) for name in _AZURE_COLUMNS]
    except ValueError:
        missing = [name for name in _AZURE_COLUMNS if name not in header]
        raise TraceError(
            f"header lacks column(s) {', '.join(missing)} (got {', '.join(header)})",
            path=str(path),
            line=reader.line_num,
        ) from None
    width = max(columns) + 1
    whole_s: list[int] = []
    fraction_s: list[float] = []
    isl: list[float] = []
    osl: list[float] = []
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        line_no = reader.line_num
        if len(row) < width:
            raise TraceError(
                f"expected {len(header)} columns, got {len(row)}",
                path=str(path),
                line=line_no,
            )
        ts_text = row[columns[0]]
        try:
            whole, fraction = _parse_azure_time(ts_text)
        except ValueError:
            raise TraceError(
                f"field 'TIMESTAMP' is not a 'YYYY-MM-DD HH:MM:SS.fffffff' time: {ts_text!r}",
                path=str(path),
                line=line_no,
            ) from None
        whole_s.append(whole)
        fraction_s.append(fraction)
        for name, index, out in (
            ("ContextTokens", columns[1], isl),
            ("GeneratedTokens", columns[2], osl),
        ):
            text = row[index].strip()
            try:
                number = float(text)
            except ValueError:
                raise TraceError(
                    f"field {name!r} is not a number: {text!r}",
                    path=str(path),
                    line=line_no,
                ) from None
            out.append(_length(number, path=path, line=line_no, field=name))
    times = np.zeros(0)
    if whole_s:
        seconds = np.asarray(whole_s, dtype=np.int64)
        times = (seconds - seconds.min()).astype(np.float64) + np.asarray(fraction_s)
        times -= times.min()
    return times, np.asarray(isl), np.asarray(osl)


# ---------------------------------------------------------------------------------------
# ServeGen


def load_servegen(path: str | Path) -> ServeGenWindows:
    """Read a folder of ServeGen ``chunk-<client>-trace.csv`` window files.

    Every client must list the same windows; a window length is inferred from the spacing
    of the window starts.

    Args:
        path: The model's folder (e.g. ``data/traces/servegen/language/m-large``).

    Returns:
        The per-client windows, clients sorted by id (numerically when ids are numbers).

    Raises:
        TraceError: No window files, a malformed row (naming file, line and field), or
            clients whose windows disagree.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise TraceError("not a ServeGen folder", path=str(folder))
    files = sorted(folder.glob(_SERVEGEN_GLOB), key=_client_sort_key)
    if not files:
        raise TraceError(f"folder holds no {_SERVEGEN_GLOB} files", path=str(folder))
    starts: FloatArray | None = None
    clients: list[str] = []
    columns: dict[str, list[list[float]]] = {
        "rate": [],
        "cv": [],
        "arg1": [],
        "arg2": [],
    }
    patterns: list[list[str]] = []
    for file in files:
        rows = _read_servegen_file(file)
        file_starts = np.asarray(rows[0])
        if starts is None:
            starts = file_starts
        elif file_starts.shape != starts.shape or not np.array_equal(
            file_starts, starts
        ):
            raise TraceError(
                f"window starts differ from {files[0].name}'s", path=str(file)
            )
        match = _SERVEGEN_CLIENT.search(file.name)
        clients.append(match.group(1) if match else file.stem)
        for key, values in zip(("rate", "cv", "arg1", "arg2"), rows[1:5], strict=True):
            columns[key].append(values)
        patterns.append(rows[5])
    assert starts is not None  # noqa: S101 - files is not empty
    if starts.size == 0:
        raise TraceError("window files hold no rows", path=str(folder))
    if starts.size > 1:
        steps = np.diff(starts)
        window_s = float(steps[0])
        if window_s <= 0 or not np.allclose(steps, window_s):
            raise TraceError("window starts are not evenly spaced", path=str(files[0]))
    else:
        window_s = 600.0
    return ServeGenWindows(
        start_s=starts,
        window_s=window_s,
        client_ids=clients,
        rate_per_s=np.asarray(columns["rate"]),
        cv=np.asarray(columns["cv"]),
        pattern=np.asarray(patterns, dtype=np.str_),
        arg1=np.asarray(columns["arg1"]),
        arg2=np.asarray(columns["arg2"]),
        source=str(folder),
    )


def _client_sort_key(path: Path) -> tuple[int, int | str]:
    match = _SERVEGEN_CLIENT.search(path.name)
    client = match.group(1) if match else path.stem
    return (0, int(client)) if client.isdigit() else (1, client)


def _read_servegen_file(
    path: Path,
) -> tuple[list[float], list[float], list[float], list[float], list[float], list[str]]:
    starts: list[float] = []
    rates: list[float] = []
    cvs: list[float] = []
    arg1: list[float] = []
    arg2: list[float] = []
    patterns: list[str] = []
    names = ("timestamp", "rate", "cv", "pattern", "arg1", "arg2")
    with _open_text(path) as stream:
        reader = csv.reader(stream)
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            line_no = reader.line_num
            if len(row) != 6:
                raise TraceError(
                    f"expected 6 columns ({', '.join(names)}), got {len(row)}",
                    path=str(path),
                    line=line_no,
                )
            numbers: list[float] = []
            for index in (0, 1, 2, 4, 5):
                text = row[index].strip()
                try:
                    number = float(text)
                except ValueError:
                    raise TraceError(
                        f"field {names[index]!r} is not a number: {text!r}",
                        path=str(path),
                        line=line_no,
                    ) from None
                if not math.isfinite(number) or (index in (0, 1, 2) and number < 0):
                    raise TraceError(
                        f"field {names[index]!r} must be finite"
                        f"{' and >= 0' if index in (0, 1, 2) else ''}, got {text!r}",
                        path=str(path),
                        line=line_no,
                    )
                numbers.append(number)
            pattern = row[3].strip()
            if pattern not in _SERVEGEN_PATTERNS:
                raise TraceError(
                    f"field 'pattern' must be Gamma, Weibull or empty, got {pattern!r}",
                    path=str(path),
                    line=line_no,
                )
            starts.append(numbers[0])
            rates.append(numbers[1])
            cvs.append(numbers[2])
            arg1.append(numbers[3])
            arg2.append(numbers[4])
            patterns.append(pattern)
    if starts and any(b <= a for a, b in itertools.pairwise(starts)):
        raise TraceError("window starts are not strictly increasing", path=str(path))
    return starts, rates, cvs, arg1, arg2, patterns


# ---------------------------------------------------------------------------------------
# interval series


def _check_interval(interval_s: float) -> float:
    value = float(interval_s)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"interval_s must be a finite number > 0, got {interval_s!r}")
    return value


def bucket(
    trace: RequestTrace, interval_s: float, *, complete_only: bool = False
) -> IntervalSeries:
    """Cut a request trace into intervals of ``interval_s`` seconds.

    Interval ``k`` covers ``[k * interval_s, (k + 1) * interval_s)`` on the trace's clock
    (as the reference does, ``floor(arrival_s / interval_s)``). The series runs from the
    first request's interval to the last request's. Empty intervals in between are kept as
    zero-count intervals with unknown (NaN) mean lengths; the reference drops them.

    The trace is known only up to its last request, so its last interval is covered only in
    part and its count understates the load. ``complete_only=True`` drops it (as
    :func:`load_intervals` does by default); the default keeps it, like the reference.

    Args:
        trace: The requests.
        interval_s: Interval length, in seconds.
        complete_only: Drop the last interval, which the trace covers only in part.

    Returns:
        Request count, mean ISL and mean OSL per interval.
    """
    width = _check_interval(interval_s)
    if len(trace) == 0:
        empty = np.zeros(0)
        return IntervalSeries(
            start_s=empty,
            num_req=empty,
            isl_mean=empty,
            osl_mean=empty,
            interval_s=width,
            source=trace.source,
        )
    index = np.floor(trace.arrival_s / width).astype(np.int64)
    first = int(index[0])
    offset = index - first
    size = int(offset[-1]) + 1
    counts = np.bincount(offset, minlength=size).astype(np.float64)
    isl_sum = np.bincount(offset, weights=trace.isl_tokens, minlength=size)
    osl_sum = np.bincount(offset, weights=trace.osl_tokens, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        isl_mean = np.where(counts > 0, isl_sum / counts, np.nan)
        osl_mean = np.where(counts > 0, osl_sum / counts, np.nan)
    series = IntervalSeries(
        start_s=(np.arange(size) + first) * width,
        num_req=counts,
        isl_mean=isl_mean,
        osl_mean=osl_mean,
        interval_s=width,
        source=trace.source,
    )
    return series.head(size - 1) if complete_only else series


def load_intervals(
    path: str | Path,
    interval_s: float,
    *,
    format: str | None = None,  # noqa: A002
    complete_only: bool = True,
) -> IntervalSeries:
    """Read any supported trace and cut it into intervals.

    For mooncake and Azure traces this is :func:`load_requests` then :func:`bucket`. For a
    ServeGen folder the requests per window are the summed client rates times the window
    length; an interval that is a whole multiple of the window sums consecutive windows,
    and the lengths are unknown (NaN).

    By default only complete intervals are returned: the last interval of a request trace
    (which ends after the last request) and a trailing partial group of ServeGen windows
    are dropped, since their counts understate the load. Warm start and the backtest use
    this default.

    Args:
        path: A trace file or a ServeGen folder.
        interval_s: Interval length, in seconds.
        format: One of :data:`FORMATS`; detected if omitted.
        complete_only: Drop the trailing interval the trace covers only in part.

    Returns:
        The interval series.

    Raises:
        TraceError: The trace cannot be read, or (ServeGen) the interval is not a whole
            multiple of the window.
    """
    width = _check_interval(interval_s)
    fmt = format or detect_format(path)
    if fmt != "servegen":
        return bucket(
            load_requests(path, format=fmt), width, complete_only=complete_only
        )
    windows = load_servegen(path)
    ratio = width / windows.window_s
    group = round(ratio)
    if group < 1 or not math.isclose(ratio, group, rel_tol=1e-9):
        raise TraceError(
            f"interval {width:g} s is not a whole multiple of the {windows.window_s:g} s "
            "ServeGen windows",
            path=str(path),
        )
    per_window = windows.requests_per_window
    groups = per_window.size // group if complete_only else -(-per_window.size // group)
    padded = np.zeros(groups * group)
    usable = min(per_window.size, padded.size)
    padded[:usable] = per_window[:usable]
    num_req = padded.reshape(-1, group).sum(axis=1)
    unknown = np.full(num_req.shape, np.nan)
    return IntervalSeries(
        start_s=windows.start_s[: groups * group : group],
        num_req=num_req,
        isl_mean=unknown,
        osl_mean=unknown,
        interval_s=width,
        source=windows.source,
    )


# ---------------------------------------------------------------------------------------
# warm start

_WARM_KEYS = ("num_req", "isl", "osl")


def _known_values(series: IntervalSeries, key: str) -> Iterator[float]:
    values = series.series(key)
    for count, value in zip(series.num_req, values, strict=True):
        if key != "num_req" and count <= 0:
            continue  # an empty interval has no mean length
        if math.isfinite(value):
            yield float(value)


def warm_start(predictors: Mapping[str, Predictor], series: IntervalSeries) -> None:
    """Feed a past series into predictors, then re-arm their idle-skip.

    Each predictor observes its series in order: ``"num_req"`` every interval (zeros
    included), ``"isl"`` and ``"osl"`` only the intervals whose mean is known (empty
    intervals and ServeGen's missing lengths are skipped). Afterwards each predictor's
    ``rearm_idle_skip()`` is called, if it has one, so the idle period after a deployment
    starts is ignored as the reference does.

    Args:
        predictors: Predictors by series key (any of ``num_req``, ``isl``, ``osl``).
        series: The past intervals, oldest first.

    Raises:
        KeyError: A key is not one of the three series.
    """
    unknown = sorted(set(predictors) - set(_WARM_KEYS))
    if unknown:
        raise KeyError(
            f"unknown series {', '.join(unknown)}; choose from num_req, isl, osl"
        )
    for key, predictor in predictors.items():
        for value in _known_values(series, key):
            predictor.observe(value)
        rearm = getattr(predictor, "rearm_idle_skip", None)
        if callable(rearm):
            rearm()
