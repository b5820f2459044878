"""The reference decode surface: ITL and throughput on a regular 100 x 100 grid (spec §2.3).

Dynamo evaluates both surfaces once, on ``linspace(0, 1, n)`` KV usage by
``linspace(0, max context, n)`` context length, with scipy's cubic ``griddata``; cells outside
the samples' convex hull are filled from ``griddata(method="nearest")``. Queries then snap to
the nearest cell (``round``), never interpolating again.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
import warnings

import attrs
import numpy as np
import numpy.typing as npt

from dynamo_planner.values import DecodePoint, DecodeProfile

__all__ = ["DecodeGrid", "snap_index"]

FloatArray = npt.NDArray[np.float64]


def snap_index(value: float, step: float, size: int) -> int:
    """The grid index nearest to ``value`` on an axis ``0, step, 2*step, ...``.

    As in Dynamo: ``clip(round(value / step), 0, size - 1)``. Non-finite input is clamped
    too (NaN and -inf go to the first cell, +inf to the last), so no query can fail.

    Args:
        value: The coordinate.
        step: The spacing of the axis (positive).
        size: The number of cells on the axis.

    Returns:
        An index in ``[0, size - 1]``.
    """
    position = value / step if step > 0 else 0.0
    if math.isnan(position):
        return 0
    if position >= size - 1:
        return size - 1
    if position <= 0:
        return 0
    return int(np.round(position))


def _surface(
    points: tuple[FloatArray, FloatArray],
    values: FloatArray,
    grid: tuple[FloatArray, FloatArray],
) -> FloatArray:
    """Cubic ``griddata`` over the grid, NaN cells filled by nearest neighbour.

    A profile whose samples are degenerate for a triangulation (e.g. all at one context
    length) cannot be fitted cubically; there the nearest-neighbour surface is used alone
    (Dynamo would fail to start).
    """
    from scipy.interpolate import griddata
    from scipy.spatial import QhullError

    nearest = np.asarray(
        griddata(points, values, grid, method="nearest"), dtype=np.float64
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            cubic = np.asarray(
                griddata(points, values, grid, method="cubic"), dtype=np.float64
            )
    except (QhullError, ValueError):
        return nearest
    missing = ~np.isfinite(cubic)
    cubic[missing] = nearest[missing]
    return cubic


@attrs.frozen(kw_only=True, eq=False)
class DecodeGrid:
    """ITL and throughput per GPU precomputed on a regular grid.

    Attributes:
        kv_usage: The KV-usage axis, ``linspace(0, 1, n)``.
        context_tokens: The context-length axis, ``linspace(0, max context, n)``.
        itl_ms: ITL at ``[context index, kv index]``.
        throughput_per_gpu: Output tokens/s per GPU at ``[context index, kv index]``.
        max_kv_tokens: KV-cache capacity of one engine.
    """

    kv_usage: FloatArray
    context_tokens: FloatArray
    itl_ms: FloatArray
    throughput_per_gpu: FloatArray
    max_kv_tokens: int

    @classmethod
    def from_profile(
        cls, profile: DecodeProfile, *, resolution: int = 100
    ) -> DecodeGrid:
        """Evaluate both surfaces of a decode profile on the grid.

        Args:
            profile: The measured decode points.
            resolution: Cells per axis (Dynamo uses 100).

        Returns:
            The grid.

        Raises:
            ValueError: ``resolution`` is below 2.
        """
        if resolution < 2:
            msg = f"resolution must be at least 2, got {resolution}"
            raise ValueError(msg)
        kv_axis = np.linspace(0.0, 1.0, resolution)
        context_axis = np.linspace(
            0.0, float(np.max(profile.context_length_tokens)), resolution
        )
        mesh = np.meshgrid(kv_axis, context_axis)
        grid = (mesh[0], mesh[1])
        points = (profile.kv_usage, profile.context_length_tokens)
        return cls(
            kv_usage=kv_axis,
            context_tokens=context_axis,
            itl_ms=_surface(points, profile.itl_ms, grid),
            throughput_per_gpu=_surface(points, profile.throughput_per_gpu, grid),
            max_kv_tokens=profile.max_kv_tokens,
        )

    @property
    def resolution(self) -> int:
        """Cells per axis."""
        return int(self.kv_usage.size)

    def context_index(self, context_tokens: float) -> int:
        """Row of the grid nearest to a context length."""
        return snap_index(
            context_tokens, float(self.context_tokens[1]), self.resolution
        )

    def kv_index(self, concurrency: float, context_tokens: float) -> int:
        """Column nearest to the KV usage of ``concurrency`` requests of that context."""
        with np.errstate(all="ignore"):
            kv_usage = float(
                np.float64(concurrency) * context_tokens / self.max_kv_tokens
            )
        if math.isnan(kv_usage):  # 0 * inf
            kv_usage = 0.0
        return snap_index(kv_usage, float(self.kv_usage[1]), self.resolution)

    def at(self, concurrency: float, context_tokens: float) -> tuple[float, float]:
        """``(itl_ms, throughput_per_gpu)`` in the cell of that load."""
        iy = self.context_index(context_tokens)
        ix = self.kv_index(concurrency, context_tokens)
        return float(self.itl_ms[iy, ix]), float(self.throughput_per_gpu[iy, ix])

    def best(self, itl_ms: float, context_tokens: float) -> DecodePoint:
        """The highest-KV-usage cell whose ITL is within ``itl_ms`` (Dynamo's scan).

        The row of the context length is scanned from full KV usage down; the first cell
        meeting the target wins. When none does, the zero-usage cell is returned (its ITL
        then exceeds the target; Dynamo's callers do not check).

        Args:
            itl_ms: The ITL target.
            context_tokens: The mean context length (ISL + OSL/2).

        Returns:
            Throughput, ITL and KV usage of the chosen cell.
        """
        iy = self.context_index(context_tokens)
        row = self.itl_ms[iy]
        meets = np.flatnonzero(row <= itl_ms)
        ix = int(meets[-1]) if meets.size else 0
        return DecodePoint(
            throughput_per_gpu=float(self.throughput_per_gpu[iy, ix]),
            itl_ms=float(row[ix]),
            kv_usage=float(self.kv_usage[ix]),
        )
