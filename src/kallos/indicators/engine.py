"""The pure indicator API: bars in, indicators out (no I/O).

A frame sorted by coin and date is a set of contiguous coin segments. TA-Lib runs over each segment (a view,
no copy) and writes its columns into one output block `values[column, row]`; the formula columns then run in
fused numba kernels over all segments at once, writing into the same block; the output frame wraps that block
without copying it (docs/decisions.md#D110). High/low indicators see only the bars with real candles, taken as
consecutive bars (docs/decisions.md#D6), unless the caller opts into the close-only approximation.
"""

from __future__ import annotations

import ctypes
import functools
import sys

import numpy as np
import pandas as pd
import pyarrow as pa

from kallos.errors import DataValidationError
from kallos.indicators import fused
from kallos.indicators import kernels as k
from kallos.indicators.contract import OHLC_SOURCE_APPROX, OHLC_SOURCE_CANDLES, OUTPUT_COLUMNS
from kallos.indicators.validation import check_bars, range_problems
from kallos.scale import shared

__all__ = ["approximate_candles", "compute_indicators", "compute_panel"]

_CLOSE_ROWS = np.array([fused.COLUMN_INDEX[name] for name in k.CLOSE_TALIB])
_HIGH_LOW_ROWS = np.array([fused.COLUMN_INDEX[name] for name in k.HIGH_LOW_TALIB])
_HIGH_LOW_ALL = np.array([fused.COLUMN_INDEX[name] for name in k.HIGH_LOW_TALIB + k.HIGH_LOW_FORMULAS])


@functools.cache
def tune_allocator() -> bool:
    """Let glibc serve the panel temporaries (~1 MB each) from its heap instead of a fresh mmap per array.

    By default every array above 128 KB is mapped and unmapped, and the page faults on first touch cost as
    much as the arithmetic (the engine ran 1.9x faster with this on). Raising the mmap threshold to 64 MB and
    the trim threshold to 256 MB keeps freed memory for reuse. Process-wide and harmless elsewhere; a no-op
    off glibc.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 64 * 1024 * 1024) == 1
        return ok and libc.mallopt(m_trim_threshold, 256 * 1024 * 1024) == 1
    except (OSError, AttributeError):
        return False


def compute_rows(
    close: np.ndarray,
    volume: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    candles: np.ndarray | None = None,
) -> np.ndarray:
    """Every contract column for concatenated coin segments, as a block `values[column, row]`.

    Coin i owns rows `starts[i] .. starts[i] + lengths[i]` of the float64 input columns, oldest first.
    `candles` marks the rows with a real high/low (default: all); the high/low columns are computed over those
    rows only, as consecutive bars, and are NaN on the others. Column order: OUTPUT_COLUMNS.
    """
    tune_allocator()
    close, volume, high, low = (np.ascontiguousarray(a, dtype="float64") for a in (close, volume, high, low))
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    n_rows = close.shape[0]
    # In a local pool worker the block is allocated in shared memory, so the parent maps the result instead of
    # unpickling it (docs/decisions.md#D118); elsewhere a plain array.
    values = shared.empty((len(OUTPUT_COLUMNS), n_rows))
    talib_close, talib_high_low = k.talib_close, k.talib_high_low  # looked up once (tests may patch them)
    if candles is None:
        all_candles = True
    else:
        candles = np.asarray(candles, dtype=bool)
        all_candles = bool(candles.all())
    for s, n in zip(starts.tolist(), lengths.tolist(), strict=True):
        if not n:
            continue
        e = s + n
        for row, col in zip(_CLOSE_ROWS, talib_close(close[s:e], volume[s:e]), strict=True):
            values[row, s:e] = col
        if all_candles:
            for row, col in zip(_HIGH_LOW_ROWS, talib_high_low(high[s:e], low[s:e], close[s:e]), strict=True):
                values[row, s:e] = col
            continue
        assert candles is not None
        values[_HIGH_LOW_ALL, s:e] = np.nan
        idx = s + np.flatnonzero(candles[s:e])
        if idx.size:
            for row, col in zip(_HIGH_LOW_ROWS, talib_high_low(high[idx], low[idx], close[idx]), strict=True):
                values[row, idx] = col
    fused.close_formulas(close, volume, starts, lengths, values)
    if all_candles:
        rows, c_starts, c_lengths = np.arange(n_rows, dtype=np.int64), starts, lengths
    else:
        assert candles is not None
        rows = np.flatnonzero(candles).astype(np.int64)
        before = np.concatenate([[0], np.cumsum(candles)]).astype(np.int64)
        c_starts = before[starts]
        c_lengths = before[starts + lengths] - c_starts
    fused.high_low_formulas(high, low, close, volume, rows, c_starts, c_lengths, values)
    return values


def compute_panel(
    close: np.ndarray,
    volume: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    lengths: np.ndarray,
    candles: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Every contract column for a left-aligned panel [coins x bars] (NaN after each coin's `lengths[i]`
    bars).

    `candles` marks the bars with a real high/low (default: all); the high/low columns are computed over those
    bars only, as consecutive bars, and are NaN on the others.
    """
    close = np.asarray(close, dtype="float64")
    n_coins, n_bars = close.shape
    lengths = np.asarray(lengths, dtype=np.int64)
    valid = np.arange(n_bars) < lengths[:, None]
    c, v, h, lo = (np.asarray(a, dtype="float64")[valid] for a in (close, volume, high, low))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    flags = None if candles is None else np.asarray(candles, dtype=bool)[valid]
    values = compute_rows(c, v, h, lo, starts, lengths, flags)
    out = {}
    for i, name in enumerate(OUTPUT_COLUMNS):
        panel = np.full((n_coins, n_bars), np.nan)
        panel[valid] = values[i]
        out[name] = panel
    return out


def approximate_candles(
    close: np.ndarray, high: np.ndarray, low: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    """Fill close-only bars with the close-only approximation, in place; return the mask of filled bars.

    Arrays are concatenated coin segments of `lengths` rows each. An approximated bar spans the previous close
    and its own close (a coin's first bar is flat): the smallest candle consistent with the closes. Its
    high/low indicators are then marked `close_only_approx`.
    """
    filled = np.isnan(high) | np.isnan(low)
    prev = np.empty_like(close)
    if close.size:
        prev[0] = close[0]
        prev[1:] = close[:-1]
        firsts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        firsts = firsts[np.asarray(lengths) > 0]
        prev[firsts] = close[firsts]
    high[filled] = np.maximum(prev, close)[filled]
    low[filled] = np.minimum(prev, close)[filled]
    return filled


_SOURCES = pa.array([OHLC_SOURCE_CANDLES, OHLC_SOURCE_APPROX])
_SOURCE_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)


def _source_column(codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """`ohlc_source` from per-row codes (0 candles, 1 approximated, -1 none) in one Arrow take: a string
    column (missing where -1) without a Python object per row."""
    return pd.array(_SOURCES.take(pa.array(codes, mask=codes < 0)), dtype=_SOURCE_DTYPE)


def compute_indicators(bars: pd.DataFrame, *, close_only_approx: bool = False) -> pd.DataFrame:
    """Indicators for one coin or a panel (`coin_id` column), per docs/indicators.md.

    Input: `date, open, high, low, close, volume` (and `coin_id`), any order. A bar whose high or low is
    missing is close-only: its high/low columns are NaN unless `close_only_approx`. Output: `coin_id` (when
    given), `date`, `ohlc_source` ('candles', 'close_only_approx' or missing) and every contract
    column, sorted by coin and date, NaN during each look-back. Raises DataValidationError for unusable bars or
    out-of-range results.
    """
    frame, codes = check_bars(bars)
    panel = "coin_id" in frame.columns
    n_rows = len(frame)
    n_coins = int(codes[-1]) + 1 if n_rows else 0
    lengths = np.bincount(codes, minlength=n_coins).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    close = frame["close"].to_numpy(dtype="float64")
    volume = frame["volume"].to_numpy(dtype="float64")
    high = frame["high"].to_numpy(dtype="float64", copy=close_only_approx)
    low = frame["low"].to_numpy(dtype="float64", copy=close_only_approx)
    candles = ~(np.isnan(high) | np.isnan(low))
    source = np.where(candles, 0, -1).astype(np.int8)
    if close_only_approx:
        source[approximate_candles(close, high, low, lengths)] = 1
        candles = None
    values = compute_rows(close, volume, high, low, starts, lengths, candles)
    problems = range_problems(values, frame)
    if problems:
        raise DataValidationError(
            "indicator values outside their valid range: " + "; ".join(problems), problems=len(problems)
        )
    out = pd.DataFrame(values.T, columns=list(OUTPUT_COLUMNS), copy=False)
    out.insert(0, "ohlc_source", _source_column(source))
    out.insert(0, "date", frame["date"].array)
    if panel:
        out.insert(0, "coin_id", frame["coin_id"].array)
    return out
