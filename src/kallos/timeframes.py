"""Timeframes: which bars a timeframe stores where, and the pure resampler that derives one from another.

Three timeframes exist: `1h` (hourly bars fetched from CoinGecko), `1d` (the daily bars of the seed) and `1w`
(weekly bars derived from final daily bars). Each has its own market, indicator and signal tables with the same
columns, keyed by `(coin_id, hour)` for hourly and `(coin_id, date)` for the others (docs/decisions.md#D80).

:func:`resample` is pure (frames in, frame out) and is the one place that knows the aggregation rules
(docs/decisions.md#D84): open = first open, high = max, low = min, close = last close, market cap = last; volume
is summed for weeks (daily volumes are per-day 24 h volumes) but the last one is kept for a day cut from hours
(each hourly volume is CoinGecko's rolling 24 h volume at that instant, so a sum would count each trade ~24 times).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from kallos.errors import TimeframeError

Timeframe = Literal["1h", "1d", "1w"]
TIMEFRAMES: tuple[Timeframe, ...] = ("1h", "1d", "1w")


@dataclass(frozen=True)
class TimeframeSpec:
    """Where one timeframe's bars, indicators and signals live and how far apart its bars are."""

    name: Timeframe
    market_table: str
    indicator_table: str
    signal_table: str
    time_column: str
    """`hour` (UTC timestamp) for hourly tables, `date` (a day; a week's Monday) otherwise."""
    step: pd.Timedelta
    suffix: str
    """Added to watermark series names (`indicators` + suffix); empty for daily, so old watermarks keep."""

    def series(self, base: str) -> str:
        return base + self.suffix


SPECS: dict[str, TimeframeSpec] = {
    "1h": TimeframeSpec(
        "1h",
        "hourly_market_data",
        "hourly_technical_indicators",
        "hourly_trading_signals",
        "hour",
        pd.Timedelta(hours=1),
        "_1h",
    ),
    "1d": TimeframeSpec(
        "1d",
        "daily_market_data",
        "daily_technical_indicators",
        "trading_signals",
        "date",
        pd.Timedelta(days=1),
        "",
    ),
    "1w": TimeframeSpec(
        "1w",
        "weekly_market_data",
        "weekly_technical_indicators",
        "weekly_trading_signals",
        "date",
        pd.Timedelta(days=7),
        "_1w",
    ),
}


_FAMILIES = {"market_table": "daily_market_data", "indicator_table": "daily_technical_indicators",
             "signal_table": "trading_signals"}  # fmt: skip


def table_for(table: str, timeframe: str) -> str:
    """The timeframe's counterpart of a bar, indicator or signal table (`daily_market_data`, 1h ->
    `hourly_market_data`); other tables have one version only and are returned as they are."""
    tf = spec(timeframe)
    for attr in _FAMILIES:
        if table in {getattr(s, attr) for s in SPECS.values()}:
            return str(getattr(tf, attr))
    return table


def parse_timeframe(value: str | None) -> Timeframe:
    """`1h`, `1d` or `1w` (None means daily); anything else is a usage error naming the accepted values."""
    if value is None:
        return "1d"
    text = str(value).strip().lower()
    if text not in SPECS:
        raise TimeframeError(f"unknown timeframe {value!r}; accepted values: {', '.join(TIMEFRAMES)}", timeframe=value)
    return SPECS[text].name


def spec(value: str | None) -> TimeframeSpec:
    return SPECS[parse_timeframe(value)]


_CANDLE = ("open", "high", "low")


def resample(bars: pd.DataFrame, to: str, *, final_through: dt.datetime | dt.date | None = None) -> pd.DataFrame:
    """Daily bars -> weekly (`"1w"`), or hourly bars -> daily (`"1d"`); only final periods are returned.

    `bars` has `coin_id`, the source time column (`date` for daily input, `hour` for hourly input), `close` and
    any of `open`, `high`, `low`, `volume`, `market_cap`. A week runs Monday 00:00 UTC through Sunday and is
    stamped with its Monday; a day cut from hours runs 00:00-23:00 UTC and is stamped with its date. A period is
    final once its last day (Sunday) or last hour (23:00) is at or before `final_through` (default: the latest
    bar in `bars`); later, still partial periods are left out, never stored half-made.

    Missing days or hours are not invented: the period keeps what it has and `bar_days` (weeks) or `bar_hours`
    (days) says how many bars it had. Open/high/low are set only when every bar of the period has a real candle;
    a period with a close-only bar is close-only (its range would otherwise be understated).
    """
    target = parse_timeframe(to)
    if target == "1w":
        source, count_col = "date", "bar_days"
    elif target == "1d":
        source, count_col = "hour", "bar_hours"
    else:
        raise TimeframeError("resample makes 1d bars from hourly ones or 1w bars from daily ones", timeframe=to)
    missing = [c for c in ("coin_id", source, "close") if c not in bars.columns]
    if missing:
        raise TimeframeError(
            f"bars to resample to {target} need columns {missing} (the input is {source}-stamped)",
            timeframe=to,
        )
    value_cols = [c for c in ("open", "high", "low", "close", "volume", "market_cap") if c in bars.columns]
    out_cols = ["coin_id", "date", *value_cols, count_col]
    frame = bars[["coin_id", source, *value_cols]].dropna(subset=["close"])
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in out_cols}).astype(
            {"coin_id": object, "date": "datetime64[ns]", count_col: "int64"}
        )
    if target == "1w":
        t = pd.to_datetime(frame[source])
        if _has_tz(t):
            t = t.dt.tz_convert("UTC").dt.tz_localize(None)
        t = t.dt.normalize()
        period = t - pd.to_timedelta(t.dt.day_of_week, unit="D")
        period_end = period + pd.Timedelta(days=6)
    else:
        t = pd.to_datetime(frame[source], utc=True)
        period = t.dt.floor("D").dt.tz_localize(None)
        period_end = period + pd.Timedelta(hours=23)
        t = t.dt.tz_localize(None)
    limit = _limit(final_through, t.max(), hourly=target == "1d")
    frame = frame.assign(_t=t.to_numpy(), _p=period.to_numpy())[(period_end <= limit).to_numpy()]
    frame = frame.sort_values(["coin_id", "_t"], kind="stable")
    g = frame.groupby(["coin_id", "_p"], sort=True)
    last = frame.drop_duplicates(["coin_id", "_p"], keep="last").set_index(["coin_id", "_p"])
    agg: dict[str, pd.Series] = {}
    if "open" in value_cols:
        agg["open"] = g["open"].first()  # nulled below unless every bar has a candle, so NaN-skipping is moot
    for col, how in (("high", "max"), ("low", "min")):
        if col in value_cols:
            agg[col] = g[col].agg(how)
    agg["close"] = last["close"]
    if "volume" in value_cols:
        agg["volume"] = g["volume"].sum(min_count=1) if target == "1w" else last["volume"]
    if "market_cap" in value_cols:
        agg["market_cap"] = last["market_cap"]  # the last bar's: a stale cap is not carried forward
    agg[count_col] = g.size()
    out = pd.DataFrame(agg)
    present = [c for c in _CANDLE if c in value_cols]
    if present:
        complete = frame[present].notna().all(axis=1).groupby([frame["coin_id"], frame["_p"]]).all()
        for c in present:
            out[c] = out[c].where(complete.reindex(out.index).to_numpy())
    out = out.reset_index().rename(columns={"_p": "date"})
    out["date"] = pd.to_datetime(out["date"]).astype("datetime64[ns]")
    out[count_col] = out[count_col].astype("int64")
    return out[out_cols].reset_index(drop=True)


def _has_tz(s: pd.Series) -> bool:
    return isinstance(s.dtype, pd.DatetimeTZDtype)


def _limit(final_through: dt.datetime | dt.date | None, latest: pd.Timestamp, *, hourly: bool) -> pd.Timestamp:
    if final_through is None:
        return pd.Timestamp(latest)
    ts = pd.Timestamp(final_through)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    if not hourly and not isinstance(final_through, dt.datetime):
        return ts.normalize()
    return ts


__all__ = ["table_for", "SPECS", "TIMEFRAMES", "Timeframe", "TimeframeSpec", "parse_timeframe", "resample", "spec"]
