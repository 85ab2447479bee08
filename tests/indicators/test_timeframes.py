"""Indicators and signals on hourly and weekly bars: the same engine, their own tables, incremental == full."""

from __future__ import annotations

import pandas as pd
import pytest

from kallos.indicators import compute_indicators
from kallos.indicators.contract import OUTPUT_COLUMNS, RECOMPUTE_HISTORY_BARS
from kallos.indicators.step import compute_step
from kallos.settings import load_settings
from kallos.signals.step import generate_step
from kallos.store import Store

from .indicator_data import assert_matches
from .test_step import RTOL, candle_coin, mixed_coin, seed_coins


def hourly(bars: pd.DataFrame) -> pd.DataFrame:
    """Daily test bars re-stamped one hour apart from 2023-01-01 00:00 UTC."""
    out = bars.copy()
    pos = out.groupby("coin_id").cumcount()
    out["hour"] = pd.Timestamp("2023-01-01", tz="UTC") + pd.to_timedelta(pos, unit="h")
    return out.drop(columns=["date"])


def write_hours(store: Store, bars: pd.DataFrame) -> None:
    store.upsert("hourly_market_data", bars[["coin_id", "hour", "open", "high", "low", "close", "volume"]])


def test_hourly_incremental_equals_full_and_daily_tables_stay_empty(duck_store: Store) -> None:
    store = duck_store
    n = RECOMPUTE_HISTORY_BARS + 300
    bars = hourly(pd.concat([candle_coin(n, 1), mixed_coin(n, 2)], ignore_index=True))
    seed_coins(store, ["candle-1", "mixed-2"])
    settings = load_settings()
    cut = bars["hour"].max() - pd.Timedelta(hours=50)
    write_hours(store, bars[bars["hour"] <= cut])
    first = compute_step(store, settings, workers=1, timeframe="1h")
    assert first["full"] == 2 and first["timeframe"] == "1h"
    write_hours(store, bars)
    second = compute_step(store, settings, workers=1, timeframe="1h")
    assert second["incremental"] == 2 and second["rows_written"] == 2 * 50
    assert compute_step(store, settings, workers=1, timeframe="1h")["up_to_date"] == 2

    stored = store.read("hourly_technical_indicators")
    expected = compute_indicators(bars.rename(columns={"hour": "date"}))
    assert len(stored) == len(expected)
    for coin, exp in expected.groupby("coin_id"):
        got = stored[stored["coin_id"] == coin]
        assert (got["hour"].dt.tz_convert(None).to_numpy() == exp["date"].to_numpy()).all()
        for name in OUTPUT_COLUMNS:
            assert_matches(got[name].to_numpy(), exp[name].to_numpy(), RTOL, f"{coin} {name}")
    assert store.read("daily_technical_indicators").empty

    signals = generate_step(store, settings, timeframe="1h")
    assert signals["timeframe"] == "1h" and signals["composite_rows"] > 0
    rows = store.read("hourly_trading_signals")
    assert rows["hour"].dt.minute.eq(0).all() and store.read("trading_signals").empty
    again = generate_step(store, settings, timeframe="1h")
    assert again["up_to_date"] == 2 and again["rule_rows"] == 0


def test_weekly_bars_get_indicators_in_their_table(duck_store: Store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = duck_store
    bars = candle_coin(260, 3)
    bars["date"] = pd.Timestamp("2019-01-07") + pd.to_timedelta(bars.groupby("coin_id").cumcount() * 7, unit="D")
    seed_coins(store, ["candle-3"])
    store.upsert(
        "weekly_market_data",
        bars[["coin_id", "date", "open", "high", "low", "close", "volume"]].assign(bar_days=7),
    )
    counts = compute_step(store, load_settings(), workers=1, timeframe="1w")
    assert counts["full"] == 1 and counts["rows_written"] == 260
    assert len(store.read("weekly_technical_indicators")) == 260
    from kallos.pipeline.export import export_table

    out = export_table(store, "daily_technical_indicators", timeframe="1w", fmt="csv", output=tmp_path / "w.csv")
    assert out["table"] == "weekly_technical_indicators" and out["rows"] == 260


def test_signal_config_sections_per_timeframe() -> None:
    from kallos.errors import SignalConfigError
    from kallos.signals.config import parse_signal_config

    cfg = parse_signal_config(
        {"rules": {"rsi": {"oversold": 25}}, "timeframes": {"1h": {"rules": {"rsi": {"oversold": 20}}}}}
    )
    assert cfg.for_timeframe("1h").rules.rsi.oversold == 20
    assert cfg.for_timeframe("1w").rules.rsi.oversold == 25  # inherits the top-level (daily) section
    daily_only = parse_signal_config({"rules": {"rsi": {"oversold": 25}}})
    assert cfg.for_timeframe("1d").config_hash() == daily_only.config_hash() == cfg.config_hash()
    with pytest.raises(SignalConfigError, match="rules.rsi.oversold"):
        parse_signal_config({"timeframes": {"1h": {"rules": {"rsi": {"oversold": -5}}}}})
    with pytest.raises(SignalConfigError):
        parse_signal_config({"timeframes": {"4h": {}}})
