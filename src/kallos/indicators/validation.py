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

# Relative slack for OHLC relations (decisions.md #7 uses the same tolerance when it nulls broken candles).
_OHLC_RTOL = 1e-9
# Absolute slack for the [0, 100] style bounds: TA-Lib's smoothing can leave ~1e-14 above/below a bound.
_BOUND_ATOL = 1e-9
_PERCENT_COLUMNS = ("rsi_14", "mfi_14", "stoch_k", "stoch_d", "adx_14", "plus_di_14", "minus_di_14")


def _where(frame: pd.DataFrame, mask: np.ndarray) -> dict[str, object]:
    """Context of the first offending row: its coin (for a panel), date, and how many rows fail."""
    i = int(np.flatnonzero(mask)[0])
    ctx: dict[str, object] = {"rows": int(mask.sum())}
    if "coin_id" in frame.columns:
        ctx["coin_id"] = frame["coin_id"].iloc[i]
    day = frame["date"].iloc[i]
    ctx["date"] = day.date().isoformat() if isinstance(day, pd.Timestamp) else str(day)
    return ctx


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
    """Return the bars typed and sorted by (coin_id, date) with each row's coin code (0, 1, ... in that
    order), or raise DataValidationError naming the problem. Sorted input is not copied or re-sorted."""
    if not isinstance(bars, pd.DataFrame):
        raise DataValidationError(f"bars must be a pandas DataFrame, not {type(bars).__name__}")
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise DataValidationError(f"bars lack required columns {missing}", missing=missing)
    panel = "coin_id" in bars.columns
    columns: dict[str, object] = {}
    if panel:
        if bars["coin_id"].isna().any():
            raise DataValidationError("coin_id is missing on some rows", rows=int(bars["coin_id"].isna().sum()))
        columns["coin_id"] = bars["coin_id"].reset_index(drop=True)  # as given: no conversion of the strings
    try:
        dates = pd.to_datetime(bars["date"])
    except (TypeError, ValueError) as exc:
        raise DataValidationError(f"unparseable date: {exc}") from None
    if isinstance(dates.dtype, pd.DatetimeTZDtype):
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    columns["date"] = dates.reset_index(drop=True)
    for name in ("open", "high", "low", "close", "volume"):
        try:
            columns[name] = pd.to_numeric(bars[name]).to_numpy(dtype="float64", na_value=np.nan)
        except (TypeError, ValueError):
            raise DataValidationError(f"column {name} is not numeric", column=name) from None
    frame = pd.DataFrame(columns, copy=False)
    if dates.isna().any():
        raise DataValidationError("missing date", **_where(frame, dates.isna().to_numpy()))
    codes = _sorted_codes(frame, panel)
    if codes is None:
        keys = (["coin_id"] if panel else []) + ["date"]
        frame = frame.sort_values(keys, kind="stable").reset_index(drop=True)
        dup = frame.duplicated(subset=keys).to_numpy()
        if dup.any():
            raise DataValidationError("duplicate dates", **_where(frame, dup))
        codes = _sorted_codes(frame, panel)
        assert codes is not None

    close = frame["close"].to_numpy()
    bad = ~(close > 0) | np.isinf(close)
    if bad.any():
        raise DataValidationError("non-positive, missing or infinite close", **_where(frame, bad))
    for name in ("open", "high", "low"):
        v = frame[name].to_numpy()
        with np.errstate(invalid="ignore"):
            bad = (v <= 0) | np.isinf(v)
        if bad.any():
            raise DataValidationError(f"non-positive or infinite {name}", **_where(frame, bad))
    vol = frame["volume"].to_numpy()
    bad = (vol < 0) | np.isinf(vol)
    if bad.any():
        raise DataValidationError("negative or infinite volume", **_where(frame, bad))
    high, low = frame["high"].to_numpy(), frame["low"].to_numpy()
    has = ~np.isnan(high) & ~np.isnan(low)  # a close-only bar (no high or no low) is not checked
    with np.errstate(invalid="ignore"):
        bad = has & (high < low)
        if bad.any():
            raise DataValidationError("high below low", **_where(frame, bad))
        bad = has & ((close > high * (1 + _OHLC_RTOL)) | (close < low * (1 - _OHLC_RTOL)))
        if bad.any():
            raise DataValidationError("close outside [low, high]", **_where(frame, bad))
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
        bad = bad_rows(frame)
        if not bad.any():
            continue
        if "coin_id" in frame.columns:
            for coin in pd.unique(frame["coin_id"].to_numpy()[bad]):
                coin_bad = bad & (frame["coin_id"].to_numpy() == coin)
                ctx = _where(frame, coin_bad)
                problems.append(f"{label}: coin {coin}, {ctx['rows']} rows from {ctx['date']}")
        else:
            ctx = _where(frame, bad)
            problems.append(f"{label}: {ctx['rows']} rows from {ctx['date']}")
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
