"""Chart and candle answers as NumPy columns: one conversion per series, no Python object per point. No I/O.

`market_chart(/range)` and `ohlc(/range)` answer with arrays of numbers (``[[ms, value], ...]`` and
``[[ms, open, high, low, close], ...]``), thousands of points a call. Building a pydantic model per point cost more
than the HTTP call itself (docs/decisions.md#D115), so ingestion reads them here instead: each series becomes one
float64 array in one ``np.array`` call, checked in whole-array passes. What the per-point models accept is
accepted here with the same result (:class:`~kallos.coingecko.models.MarketChart` and
:func:`~kallos.coingecko.models.parse_ohlc` stay for users): numbers or numeric strings, ``null`` values (NaN),
points longer than needed (the extra items are ignored). What they refuse is refused, with a message naming the
series, the point's index and the point: a null or non-numeric timestamp, a non-numeric value, a point shorter than
needed, a series that is not a list. A payload the fast path cannot take whole (points of mixed lengths, nested
lists) is read point by point with the same rules, so the outcome never depends on which path read it.

Timestamps are datetime64[us] in UTC (naive, as NumPy has no zones), the resolution of Python's datetime, so the
frames built from these arrays equal the ones built from the models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "CANDLE_FIELDS",
    "CHART_SERIES",
    "CandleArrays",
    "ChartArrays",
    "parse_candles",
    "parse_chart",
]

FloatArray = npt.NDArray[np.float64]
TimeArray = npt.NDArray[np.datetime64]

CHART_SERIES = ("prices", "market_caps", "total_volumes")
"""The keys of a `market_chart(/range)` answer, in the order of :class:`ChartArrays`' value columns."""
CANDLE_FIELDS = ("open", "high", "low", "close")

# Python's datetime covers years 1..9999: a timestamp outside it was refused by the models too.
_MIN_MS = -62_135_596_800_000.0
_MAX_MS = 253_402_300_800_000.0


@dataclass(frozen=True)
class ChartArrays:
    """A chart's three series joined on their timestamps: one row per distinct timestamp, sorted by time.

    ``ts`` (datetime64[us], UTC), ``price``, ``market_cap``, ``total_volume`` (float64; NaN where the series has no
    point at that time or sent null). A series repeating a timestamp keeps its last value there, as
    :meth:`MarketChart.rows` does.
    """

    ts: TimeArray
    price: FloatArray
    market_cap: FloatArray
    total_volume: FloatArray

    def __len__(self) -> int:
        return int(self.ts.size)

    @classmethod
    def empty(cls) -> ChartArrays:
        nothing = np.empty(0, dtype=np.float64)
        return cls(np.empty(0, dtype="datetime64[us]"), nothing, nothing.copy(), nothing.copy())


@dataclass(frozen=True)
class CandleArrays:
    """OHLC candles in the order received (duplicates kept, as :func:`parse_ohlc` keeps them); ``ts`` is each
    candle's close time (datetime64[us], UTC), the prices float64 (NaN where null)."""

    ts: TimeArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray

    def __len__(self) -> int:
        return int(self.ts.size)

    @classmethod
    def empty(cls) -> CandleArrays:
        nothing = np.empty(0, dtype=np.float64)
        return cls(np.empty(0, dtype="datetime64[us]"), nothing, nothing.copy(), nothing.copy(), nothing.copy())

    @classmethod
    def concat(cls, parts: Sequence[CandleArrays]) -> CandleArrays:
        """Several answers' candles one after the other (e.g. the 180-day chunks of one coin's `ohlc/range`)."""
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        return cls(*(np.concatenate([getattr(p, name) for p in parts]) for name in ("ts", *CANDLE_FIELDS)))


def parse_chart(data: Any) -> ChartArrays:
    """A decoded `market_chart(/range)` answer as columns; ValueError or TypeError naming what is wrong."""
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object with {', '.join(CHART_SERIES)}, got {type(data).__name__}")
    series = [_series_table(data.get(name), name, 2) for name in CHART_SERIES]
    keys = [_micros(table[:, 0], name) for table, name in zip(series, CHART_SERIES, strict=True)]
    values = [table[:, 1] for table in series]
    first = keys[0]
    if all(np.array_equal(k, first) for k in keys[1:]) and (first.size < 2 or bool((np.diff(first) > 0).all())):
        # The normal answer: three series on the same increasing timestamps.
        return ChartArrays(first.astype("datetime64[us]"), *values)
    times = np.unique(np.concatenate(keys))
    columns = []
    for key, value in zip(keys, values, strict=True):
        column = np.full(times.size, np.nan)
        if key.size:
            # The last point of a repeated timestamp wins: the first occurrence in the reversed series.
            unique, first_reversed = np.unique(key[::-1], return_index=True)
            column[np.searchsorted(times, unique)] = value[key.size - 1 - first_reversed]
        columns.append(column)
    return ChartArrays(times.astype("datetime64[us]"), *columns)


def parse_candles(data: Any) -> CandleArrays:
    """A decoded `ohlc(/range)` answer as columns; ValueError or TypeError naming what is wrong."""
    if not isinstance(data, list):
        raise TypeError(f"expected a JSON array of [timestamp_ms, open, high, low, close] rows, got {_kind(data)}")
    table = _series_table(data, "candles", 5)
    ts = _micros(table[:, 0], "candles").astype("datetime64[us]")
    return CandleArrays(ts, *(np.ascontiguousarray(table[:, i]) for i in range(1, 5)))


def _series_table(raw: Any, name: str, width: int) -> FloatArray:
    """`raw` (a list of points, each at least `width` long) as an (n, width) float array; null values are NaN.

    One ``np.array`` call reads a well-formed series; anything it cannot take as a whole is read point by point,
    which either gives the same table or names the first bad point."""
    if raw is None:
        return np.empty((0, width), dtype=np.float64)
    if not isinstance(raw, list):
        raise TypeError(f"{name}: expected a list of points, got {_kind(raw)}")
    if not raw:
        return np.empty((0, width), dtype=np.float64)
    try:
        table = np.array(raw, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return _table_by_point(raw, name, width)
    if table.ndim != 2 or table.shape[1] < width:
        return _table_by_point(raw, name, width)
    return table[:, :width] if table.shape[1] > width else table


def _table_by_point(raw: list[Any], name: str, width: int) -> FloatArray:
    """The slow, exact reading of a series: what :mod:`kallos.coingecko.models` does, without a model per point."""
    shape = "[timestamp_ms, value]" if width == 2 else "[timestamp_ms, open, high, low, close]"
    table = np.empty((len(raw), width), dtype=np.float64)
    for i, point in enumerate(raw):
        if not isinstance(point, list | tuple) or len(point) < width:
            raise ValueError(f"{name}[{i}]: expected {shape}, got {_show(point)}")
        if point[0] is None:
            raise ValueError(f"{name}[{i}]: the timestamp is null in {_show(point)}")
        for j in range(width):
            item = point[j]
            try:
                table[i, j] = math.nan if item is None else float(item)
            except (TypeError, ValueError, OverflowError):
                what = "timestamp" if j == 0 else "value"
                raise ValueError(f"{name}[{i}]: the {what} {_show(item)} is not a number in {_show(point)}") from None
    return table


def _micros(ms: FloatArray, name: str) -> npt.NDArray[np.int64]:
    """Millisecond timestamps as whole microseconds (Python datetime's resolution); refuses null and out-of-range
    ones, naming the first."""
    bad = ~((ms >= _MIN_MS) & (ms < _MAX_MS))  # NaN (null) fails both comparisons
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "null" if np.isnan(ms[i]) else f"{float(ms[i])!r} ms (outside years 1-9999)"
        raise ValueError(f"{name}[{i}]: the timestamp is {what}")
    return np.rint(ms * 1000.0).astype(np.int64)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
