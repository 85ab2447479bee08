"""Checks at both ends of the engine: bars that cannot be computed, and indicator values outside their range.

Every problem is named with its coin (for a panel) and first date, so a researcher can find the row.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from kallos.errors import DataValidationError
from kallos.indicators.contract import BAR_COLUMNS

__all__ = ["check_bars", "validate_indicators"]

# Relative slack for OHLC relations (decisions.md #7 uses the same tolerance when it nulls broken candles).
_OHLC_RTOL = 1e-9
# Absolute slack for the [0, 100] style bounds: TA-Lib's smoothing can leave ~1e-14 above/below a bound.
_BOUND_ATOL = 1e-9


def _where(frame: pd.DataFrame, mask: np.ndarray) -> dict[str, object]:
    """Context of the first offending row: its coin (for a panel), date, and how many rows fail."""
    i = int(np.flatnonzero(mask)[0])
    ctx: dict[str, object] = {"rows": int(mask.sum())}
    if "coin_id" in frame.columns:
        ctx["coin_id"] = frame["coin_id"].iloc[i]
    day = frame["date"].iloc[i]
    ctx["date"] = day.date().isoformat() if isinstance(day, pd.Timestamp) else str(day)
    return ctx


def check_bars(bars: pd.DataFrame) -> pd.DataFrame:
    """Return the bars typed and sorted by (coin_id, date), or raise DataValidationError naming the
    problem."""
    if not isinstance(bars, pd.DataFrame):
        raise DataValidationError(f"bars must be a pandas DataFrame, not {type(bars).__name__}")
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise DataValidationError(f"bars lack required columns {missing}", missing=missing)
    panel = "coin_id" in bars.columns
    cols = (["coin_id"] if panel else []) + list(BAR_COLUMNS)
    frame = bars[cols].copy()
    if panel and frame["coin_id"].isna().any():
        raise DataValidationError("coin_id is missing on some rows", rows=int(frame["coin_id"].isna().sum()))
    try:
        dates = pd.to_datetime(frame["date"])
    except (TypeError, ValueError) as exc:
        raise DataValidationError(f"unparseable date: {exc}") from None
    if isinstance(dates.dtype, pd.DatetimeTZDtype):
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    frame["date"] = dates
    if dates.isna().any():
        raise DataValidationError("missing date", **_where(frame, dates.isna().to_numpy()))
    for name in ("open", "high", "low", "close", "volume"):
        try:
            frame[name] = pd.to_numeric(frame[name]).astype("float64")
        except (TypeError, ValueError):
            raise DataValidationError(f"column {name} is not numeric", column=name) from None
    frame = frame.sort_values((["coin_id"] if panel else []) + ["date"], kind="stable").reset_index(drop=True)

    dup = frame.duplicated(subset=(["coin_id"] if panel else []) + ["date"]).to_numpy()
    if dup.any():
        raise DataValidationError("duplicate dates", **_where(frame, dup))
    close = frame["close"].to_numpy()
    bad = ~(close > 0) | np.isinf(close)
    if bad.any():
        raise DataValidationError("non-positive, missing or infinite close", **_where(frame, bad))
    for name in ("open", "high", "low"):
        v = frame[name].to_numpy()
        bad = (~np.isnan(v)) & (~(v > 0) | np.isinf(v))
        if bad.any():
            raise DataValidationError(f"non-positive or infinite {name}", **_where(frame, bad))
    vol = frame["volume"].to_numpy()
    bad = (vol < 0) | np.isinf(vol)
    if bad.any():
        raise DataValidationError("negative or infinite volume", **_where(frame, bad))
    high, low = frame["high"].to_numpy(), frame["low"].to_numpy()
    has = ~np.isnan(high) & ~np.isnan(low)
    with np.errstate(invalid="ignore"):
        bad = has & (high < low)
        if bad.any():
            raise DataValidationError("high below low", **_where(frame, bad))
        bad = has & ((close > high * (1 + _OHLC_RTOL)) | (close < low * (1 - _OHLC_RTOL)))
        if bad.any():
            raise DataValidationError("close outside [low, high]", **_where(frame, bad))
    return frame


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
    for col in ("rsi_14", "mfi_14", "stoch_k", "stoch_d", "adx_14", "plus_di_14", "minus_di_14"):
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
