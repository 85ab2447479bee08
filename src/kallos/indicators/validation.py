"""Checks at both ends of the engine: bars that cannot be computed, and indicator values outside their range.

Every problem is named with its coin (for a panel) and first date, so a researcher can find the row.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from kallos.errors import DataValidationError
from kallos.indicators import fused
from kallos.indicators.contract import BAR_COLUMNS, OUTPUT_COLUMNS
from kallos.indicators.fused import COLUMN_INDEX

__all__ = ["check_bars", "range_problems", "validate_indicators"]

# Relative slack for OHLC relations (docs/decisions.md#D7 uses the same tolerance when it nulls broken candles).
_OHLC_RTOL = 1e-9
# Absolute slack for the [0, 100] style bounds: TA-Lib's smoothing can leave ~1e-14 above/below a bound.
_BOUND_ATOL = 1e-9
_PERCENT_COLUMNS = ("rsi_14", "mfi_14", "stoch_k", "stoch_d", "adx_14", "plus_di_14", "minus_di_14")


def _day(value: object) -> str:
    return value.date().isoformat() if isinstance(value, pd.Timestamp) else str(value)


def _per_coin(frame: pd.DataFrame, label: str, mask: np.ndarray) -> list[DataValidationError]:
    """One problem per coin (for a panel) where `mask` holds, each naming its first row's date and its row count;
    coins in the order they first fail."""
    hit = np.flatnonzero(mask)
    if hit.size == 0:
        return []
    if "coin_id" not in frame.columns:
        return [DataValidationError(label, rows=int(hit.size), date=_day(frame["date"].iloc[hit[0]]))]
    codes, coins = pd.factorize(frame["coin_id"].to_numpy()[hit])
    counts = np.bincount(codes)
    _, first = np.unique(codes, return_index=True)
    dates = frame["date"].iloc[hit[first]]
    return [
        DataValidationError(label, rows=int(n), coin_id=coin, date=_day(day))
        for coin, n, day in zip(coins, counts, dates, strict=True)
    ]


def _sorted_codes(frame: pd.DataFrame, panel: bool) -> np.ndarray | None:
    """Coin codes 0..n-1 in row order when the rows are already sorted by (coin_id, date) with no duplicate
    date (one pass over the keys: the usual case, rows read from the store), else None."""
    n = len(frame)
    dates = frame["date"].to_numpy()
    if panel:
        codes, uniques = pd.factorize(frame["coin_id"], sort=False)
        codes = codes.astype(np.int64)
        if len(uniques) > 1 and not pd.Index(uniques).is_monotonic_increasing:
            return None
        same = codes[1:] == codes[:-1]
        if n > 1 and not (codes[1:] >= codes[:-1]).all():
            return None
    else:
        codes, same = np.zeros(n, dtype=np.int64), np.ones(max(n - 1, 0), dtype=bool)
    if n > 1 and not (dates[1:][same] > dates[:-1][same]).all():
        return None
    return codes


def check_bars(bars: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Return the bars typed and sorted by (coin_id, date) with each row's coin code (0, 1, ... in that order),
    or raise one DataValidationError naming every problem found (docs/decisions.md#D45).

    The shape comes first (a frame, the columns, readable dates and numbers): without it the values cannot be
    judged. Then every value check runs on every row, each row judged by the most basic check it fails (a zero
    close is a bad close, not also a close outside its candle). Input already sorted is neither copied nor
    re-sorted (docs/decisions.md#D110).
    """
    if not isinstance(bars, pd.DataFrame):
        raise DataValidationError(f"bars must be a pandas DataFrame, not {type(bars).__name__}")
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise DataValidationError(f"bars lack required columns {missing}", missing=missing)
    panel = "coin_id" in bars.columns
    columns: dict[str, object] = {}
    problems: list[DataValidationError] = []
    if panel:
        if bars["coin_id"].isna().any():
            problems.append(
                DataValidationError("coin_id is missing on some rows", rows=int(bars["coin_id"].isna().sum()))
            )
        columns["coin_id"] = bars["coin_id"].reset_index(drop=True)  # as given: no conversion of the strings
    try:
        dates = pd.to_datetime(bars["date"])
    except (TypeError, ValueError) as exc:
        problems.append(DataValidationError(f"unparseable date: {exc}"))
    else:
        if isinstance(dates.dtype, pd.DatetimeTZDtype):
            dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
        columns["date"] = dates.reset_index(drop=True)
    for name in ("open", "high", "low", "close", "volume"):
        try:
            columns[name] = pd.to_numeric(bars[name]).to_numpy(dtype="float64", na_value=np.nan)
        except (TypeError, ValueError):
            problems.append(DataValidationError(f"column {name} is not numeric", column=name))
    if problems:
        raise DataValidationError.of_problems("bars", problems)
    frame = pd.DataFrame(columns, copy=False)

    codes = _sorted_codes(frame, panel)
    if codes is None:
        frame = frame.sort_values((["coin_id"] if panel else []) + ["date"], kind="stable").reset_index(drop=True)
    no_date = frame["date"].isna().to_numpy()
    problems += _per_coin(frame, "missing date", no_date)
    if codes is None:  # sorted input has no duplicate date (checked by _sorted_codes)
        dup = frame.duplicated(subset=(["coin_id"] if panel else []) + ["date"]).to_numpy() & ~no_date
        problems += _per_coin(frame, "duplicate dates", dup)
    close = frame["close"].to_numpy()
    bad_close = ~(close > 0) | np.isinf(close)
    problems += _per_coin(frame, "non-positive, missing or infinite close", bad_close)
    bad_candle = np.zeros(len(frame), dtype=bool)
    for name in ("open", "high", "low"):
        v = frame[name].to_numpy()
        bad = (~np.isnan(v)) & (~(v > 0) | np.isinf(v))
        problems += _per_coin(frame, f"non-positive or infinite {name}", bad)
        bad_candle |= bad
    vol = frame["volume"].to_numpy()
    problems += _per_coin(frame, "negative or infinite volume", (vol < 0) | np.isinf(vol))
    high, low = frame["high"].to_numpy(), frame["low"].to_numpy()
    has = ~np.isnan(high) & ~np.isnan(low) & ~bad_candle
    with np.errstate(invalid="ignore"):
        inverted = has & (high < low)
        problems += _per_coin(frame, "high below low", inverted)
        outside = has & ~inverted & ~bad_close & ((close > high * (1 + _OHLC_RTOL)) | (close < low * (1 - _OHLC_RTOL)))
        problems += _per_coin(frame, "close outside [low, high]", outside)
    if problems:
        raise DataValidationError.of_problems("bars", problems)
    if codes is None:
        codes = _sorted_codes(frame, panel)
        assert codes is not None  # sorted, and no duplicate or missing date
    return frame, codes


def _range_checks() -> list[tuple[str, str, Callable[[pd.DataFrame], np.ndarray]]]:
    def outside(col: str, lo: float | None, hi: float | None) -> Callable[[pd.DataFrame], np.ndarray]:
        def bad(f: pd.DataFrame) -> np.ndarray:
            v = f[col].to_numpy(dtype="float64")
            with np.errstate(invalid="ignore"):
                out = np.zeros(len(v), dtype=bool)
                if lo is not None:
                    out |= v < lo - _BOUND_ATOL
                if hi is not None:
                    out |= v > hi + _BOUND_ATOL
            return out

        return bad

    checks: list[tuple[str, str, Callable[[pd.DataFrame], np.ndarray]]] = []
    for col in _PERCENT_COLUMNS:
        checks.append((col, f"{col} outside [0, 100]", outside(col, 0.0, 100.0)))
    checks.append(("chop_14", "chop_14 negative", outside("chop_14", 0.0, None)))
    checks.append(("willr_14", "willr_14 outside [-100, 0]", outside("willr_14", -100.0, 0.0)))
    for col in ("atr_14", "natr_14", "ui_14", "bb_width"):
        checks.append((col, f"{col} negative", outside(col, 0.0, None)))

    def bands(f: pd.DataFrame) -> np.ndarray:
        lo, mid, up = (f[c].to_numpy(dtype="float64") for c in ("bb_lower", "bb_mid", "bb_upper"))
        with np.errstate(invalid="ignore"):
            return (lo > mid) | (mid > up)

    checks.append(("bb_mid", "Bollinger bands out of order (bb_lower <= bb_mid <= bb_upper)", bands))
    return checks


_CHECKS = _range_checks()


def validate_indicators(frame: pd.DataFrame) -> list[str]:
    """The seed's range checks, extended (docs/indicators.md): one message per failed check and coin.

    NaN (look-back, close-only bars) passes; columns absent from the frame are not checked.
    """
    problems: list[str] = []
    for col, label, bad_rows in _CHECKS:
        needed = ("bb_lower", "bb_mid", "bb_upper") if col == "bb_mid" else (col,)
        if not all(c in frame.columns for c in needed) or frame.empty:
            continue
        for problem in _per_coin(frame, label, bad_rows(frame)):
            ctx = problem.context
            coin = f"coin {ctx['coin_id']}, " if "coin_id" in ctx else ""
            problems.append(f"{label}: {coin}{ctx['rows']} rows from {ctx['date']}")
    return problems


_BOUNDS = np.array(  # the checks of _range_checks, as (column, lo, hi) for the one-pass counter
    [(COLUMN_INDEX[c], 0.0, 100.0) for c in _PERCENT_COLUMNS]
    + [(COLUMN_INDEX["chop_14"], 0.0, np.inf), (COLUMN_INDEX["willr_14"], -100.0, 0.0)]
    + [(COLUMN_INDEX[c], 0.0, np.inf) for c in ("atr_14", "natr_14", "ui_14", "bb_width")]
)


def range_problems(values: np.ndarray, frame: pd.DataFrame) -> list[str]:
    """validate_indicators for the engine's output block `values[column, row]` (rows of `frame`): one
    counting pass over the block; the messages are built only when something is out of range."""
    if not values.shape[1] or not fused.range_violations(values, _BOUNDS, _BOUND_ATOL).any():
        return []
    columns = {c: frame[c].to_numpy() for c in ("coin_id", "date") if c in frame.columns}
    out = pd.DataFrame(columns | {name: values[i] for i, name in enumerate(OUTPUT_COLUMNS)})
    return validate_indicators(out)
