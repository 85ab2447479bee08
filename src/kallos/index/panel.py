"""The market as dense arrays on a calendar-day grid: the one shape every index computation reads.

A long frame (coin_id, date, close, market_cap) becomes two T x N matrices (days x coins, coins sorted
by their CoinGecko id so column order is the tie-break order of docs/decisions.md#D1). Unknown values
(missing rows, NULL, 0 or negative) are NaN, so "valid observation" is a plain ``isfinite`` test.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from kallos.errors import DataValidationError

REQUIRED_COLUMNS = ("coin_id", "date", "close", "market_cap")


@dataclass(frozen=True)
class Panel:
    days: npt.NDArray[np.int64]
    """Day numbers (days since 1970-01-01) of the grid rows, consecutive."""
    coins: npt.NDArray[np.str_]
    close: npt.NDArray[np.float64]
    """T x N closes; NaN where no positive close is stored."""
    market_cap: npt.NDArray[np.float64]
    """T x N market caps; NaN where unknown (NULL, 0, negative) or where the close is unknown."""

    @property
    def valid(self) -> npt.NDArray[np.bool_]:
        """docs/decisions.md (C-IDX) item 2: close > 0 and market_cap > 0."""
        return np.isfinite(self.market_cap)

    def row_of(self, day: dt.date) -> int:
        return int(to_day_number(day) - self.days[0])

    def date_at(self, row: int) -> dt.date:
        return day_to_date(int(self.days[row]))


_EPOCH = dt.date(1970, 1, 1)


def to_day_number(value: dt.date) -> int:
    return (value - _EPOCH).days


def day_to_date(day: int) -> dt.date:
    return _EPOCH + dt.timedelta(days=day)


def as_date(value: object, name: str) -> dt.date:
    """Dates, datetimes, pandas Timestamps or ISO strings -> datetime.date (a UTC calendar day)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip()[:10])
        except ValueError:
            raise DataValidationError(f"{name} is not an ISO date", value=value) from None
    if isinstance(value, np.datetime64):
        return as_date(pd.Timestamp(value).to_pydatetime(), name)
    raise DataValidationError(f"{name} must be a date or an ISO string", value=repr(value))


def _day_numbers(dates: pd.Series) -> npt.NDArray[np.int64]:
    if not pd.api.types.is_datetime64_any_dtype(dates):
        dates = pd.to_datetime(dates)
    if getattr(dates.dt, "tz", None) is not None:
        dates = dates.dt.tz_convert("UTC").dt.tz_localize(None)
    if dates.isna().any():
        raise DataValidationError("market has rows without a date", column="date")
    return dates.to_numpy().astype("datetime64[D]").astype(np.int64)


def build_panel(market: pd.DataFrame, *, last_day: dt.date | None = None) -> Panel:
    """Dense matrices from the long frame, rows after ``last_day`` dropped (they are never read)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in market.columns]
    if missing:
        raise DataValidationError("market frame lacks columns", missing=missing)
    if market.empty:
        raise DataValidationError("market frame is empty")
    days = _day_numbers(market["date"])
    keep = np.ones(len(days), dtype=bool)
    if last_day is not None:
        keep = days <= to_day_number(last_day)
        if not keep.any():
            raise DataValidationError("no market rows on or before the end date", end=last_day.isoformat())
    days = days[keep]
    coin_ids = market["coin_id"]
    if not keep.all():
        coin_ids = coin_ids[keep]
    coin_codes, coin_index = pd.factorize(coin_ids.astype(str), sort=True)
    coins = np.asarray(coin_index, dtype=str)
    close = pd.to_numeric(market["close"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)[keep]
    mcap = pd.to_numeric(market["market_cap"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)[
        keep
    ]
    first = int(days.min())
    n_days = int(days.max()) - first + 1
    rows = days - first
    flat = coin_codes.astype(np.int64) * n_days + rows
    if np.bincount(flat, minlength=1).max() > 1:
        i = int(np.flatnonzero(pd.Series(flat).duplicated().to_numpy())[0])
        raise DataValidationError(
            "duplicate (coin_id, date) rows in the market frame",
            coin_id=str(coins[coin_codes[i]]),
            date=day_to_date(int(days[i])).isoformat(),
        )
    good_close = np.isfinite(close) & (close > 0)
    good_cap = good_close & np.isfinite(mcap) & (mcap > 0)
    close_m = np.full((n_days, len(coins)), np.nan)
    cap_m = np.full((n_days, len(coins)), np.nan)
    close_m[rows[good_close], coin_codes[good_close]] = close[good_close]
    cap_m[rows[good_cap], coin_codes[good_cap]] = mcap[good_cap]
    return Panel(
        days=np.arange(first, first + n_days, dtype=np.int64),
        coins=coins,
        close=close_m,
        market_cap=cap_m,
    )
