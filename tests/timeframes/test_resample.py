"""The pure resampler: Monday-stamped weeks from daily bars, days cut from hourly bars, finality, gaps."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from kallos.errors import TimeframeError
from kallos.timeframes import parse_timeframe, resample


def daily(coin: str, start: str, n: int, *, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    open_ = np.r_[100.0, close[:-1]]
    return pd.DataFrame(
        {
            "coin_id": coin,
            "date": pd.date_range(start, periods=n, freq="D"),
            "open": open_,
            "high": np.maximum(open_, close) * 1.01,
            "low": np.minimum(open_, close) * 0.99,
            "close": close,
            "volume": rng.uniform(1e6, 2e6, n),
            "market_cap": close * 1e6,
        }
    )


def test_weeks_follow_the_ohlcv_rules_by_hand() -> None:
    bars = daily("a", "2024-01-01", 14)  # 2024-01-01 is a Monday: two whole weeks
    weeks = resample(bars, "1w")
    assert list(weeks["date"]) == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-08")]
    first = bars.iloc[:7]
    w = weeks.iloc[0]
    assert w["open"] == first["open"].iloc[0]
    assert w["high"] == first["high"].max() and w["low"] == first["low"].min()
    assert w["close"] == first["close"].iloc[-1] and w["market_cap"] == first["market_cap"].iloc[-1]
    assert w["volume"] == pytest.approx(first["volume"].sum(), rel=1e-15)
    assert list(weeks["bar_days"]) == [7, 7]


def test_the_partial_week_is_not_returned_and_finality_follows_sunday() -> None:
    bars = daily("a", "2024-01-01", 10)  # Mon 1 .. Wed 10
    assert list(resample(bars, "1w")["date"]) == [pd.Timestamp("2024-01-01")]
    assert resample(bars, "1w", final_through=dt.date(2024, 1, 6)).empty  # Saturday: the week is still open
    assert len(resample(bars, "1w", final_through=dt.date(2024, 1, 7))) == 1


def test_a_week_with_missing_days_keeps_what_it_has() -> None:
    bars = daily("a", "2024-01-01", 14).drop(index=[2, 3, 13])  # Wed, Thu and the second Sunday missing
    weeks = resample(bars, "1w", final_through=dt.date(2024, 1, 14))
    assert list(weeks["bar_days"]) == [5, 6]
    assert weeks["close"].iloc[1] == bars["close"].iloc[-1]  # the Saturday's close: nothing invented


def test_a_close_only_day_makes_the_week_close_only_and_coins_stay_apart() -> None:
    a = daily("a", "2024-01-01", 7)
    a.loc[3, ["open", "high", "low"]] = np.nan
    b = daily("b", "2024-01-01", 7, seed=2)
    weeks = resample(pd.concat([b, a]), "1w").set_index("coin_id")
    assert weeks.loc["a", ["open", "high", "low"]].isna().all()
    assert weeks.loc["b", "high"] == b["high"].max()
    assert weeks.loc["b", "close"] == b["close"].iloc[-1]


def test_days_cut_from_hours_keep_the_last_24h_volume_and_drop_the_running_day() -> None:
    hours = pd.date_range("2024-03-01", periods=24 * 2 + 5, freq="h", tz="UTC")
    close = np.arange(len(hours), dtype=float) + 1
    bars = pd.DataFrame(
        {"coin_id": "a", "hour": hours, "close": close, "volume": close * 10, "market_cap": close * 100}
    ).drop(index=[30])
    days = resample(bars, "1d")
    assert list(days["date"]) == [pd.Timestamp("2024-03-01"), pd.Timestamp("2024-03-02")]
    assert list(days["bar_hours"]) == [24, 23]
    assert list(days["close"]) == [24.0, 48.0]
    assert list(days["volume"]) == [240.0, 480.0]  # rolling 24 h volume at the last hour, not a sum
    assert "open" not in days.columns  # no candles in, none out


def test_bad_timeframes_name_the_accepted_values() -> None:
    assert parse_timeframe(" 1H ") == "1h" and parse_timeframe(None) == "1d"
    with pytest.raises(TimeframeError, match="accepted values: 1h, 1d, 1w") as info:
        parse_timeframe("4h")
    assert info.value.exit_code == 2
    with pytest.raises(TimeframeError, match="1d bars from hourly"):
        resample(daily("a", "2024-01-01", 7), "1h")
    with pytest.raises(TimeframeError, match=r"\['hour'\]"):
        resample(daily("a", "2024-01-01", 7), "1d")
