"""The data dictionary written beside every feature export: column, meaning, unit, look-back bars.

Look-back bars = how many earlier bars a column needs before its first value (its warm-up; the first value sits
at bar `lookback` counting from 0). Recursive columns (EMAs, MACD, RSI, ADX, ATR, OBV) keep a fading memory of
all earlier bars beyond it. Labels look forward; their look-back is given as a negative number of bars ahead.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from kallos.features.frame import feature_columns
from kallos.features.naming import column_name
from kallos.signals.rules import RULE_IDS
from kallos.store.schema import ALT_DATA_COLUMNS

_FIXED: dict[str, tuple[str, str, int]] = {
    "coin_id": ("CoinGecko coin id (key)", "", 0),
    "date": ("UTC day of the bar (key; on 1w the Monday the week starts)", "date", 0),
    "hour": ("UTC hour the bar starts (key, 1h)", "timestamp", 0),
    "open": ("open of the day's candle (NULL where no real candle exists)", "USD", 0),
    "high": ("high of the day's candle", "USD", 0),
    "low": ("low of the day's candle", "USD", 0),
    "close": ("close of the day (00:00 UTC snapshot of the next day)", "USD", 0),
    "volume": ("24h trading volume", "USD", 0),
    "market_cap": ("market capitalisation", "USD", 0),
    "ohlc_source": ("where high/low came from: candles, close_only_approx or empty", "", 0),
    "ema_10": ("exponential moving average of close, 10 bars", "USD", 9),
    "ema_50": ("exponential moving average of close, 50 bars", "USD", 49),
    "sma_20": ("simple moving average of close, 20 bars", "USD", 19),
    "sma_50": ("simple moving average of close, 50 bars", "USD", 49),
    "sma_200": ("simple moving average of close, 200 bars", "USD", 199),
    "rsi_14": ("Wilder relative strength index, 14 bars", "0-100", 14),
    "macd_line": ("MACD line, EMA12 - EMA26 of close", "USD", 33),
    "macd_signal": ("MACD signal line, EMA9 of the MACD line", "USD", 33),
    "macd_histogram": ("MACD line - signal line", "USD", 33),
    "plus_di_14": ("Wilder +DI, 14 bars", "0-100", 14),
    "minus_di_14": ("Wilder -DI, 14 bars", "0-100", 14),
    "adx_14": ("average directional index, 14 bars", "0-100", 27),
    "adxr_14": ("ADX rating, (ADX_t + ADX_t-13) / 2", "0-100", 40),
    "atr_14": ("Wilder average true range, 14 bars", "USD", 14),
    "natr_14": ("ATR as a percent of close", "percent", 14),
    "bb_upper": ("Bollinger upper band, SMA20 + 2 population std", "USD", 19),
    "bb_mid": ("Bollinger middle band, SMA20", "USD", 19),
    "bb_lower": ("Bollinger lower band, SMA20 - 2 population std", "USD", 19),
    "bb_width": ("(upper - lower) / middle band", "fraction", 19),
    "kc_upper": ("Keltner upper channel, EMA20 + 2 ATR10", "USD", 19),
    "kc_mid": ("Keltner middle line, EMA20", "USD", 19),
    "kc_lower": ("Keltner lower channel, EMA20 - 2 ATR10", "USD", 19),
    "stoch_k": ("slow stochastic %K, 14/3/3", "0-100", 17),
    "stoch_d": ("slow stochastic %D, 14/3/3", "0-100", 17),
    "willr_14": ("Williams %R, 14 bars", "-100-0", 13),
    "cci_20": ("commodity channel index, 20 bars", "index", 19),
    "roc_10": ("rate of change over 10 bars", "percent", 10),
    "kst": ("Pring know-sure-thing", "percent", 44),
    "kst_signal": ("SMA9 of KST", "percent", 52),
    "mfi_14": ("money flow index, 14 bars", "0-100", 14),
    "cmf_20": ("Chaikin money flow, 20 bars", "-1-1", 19),
    "obv": ("on-balance volume, a running total from the first bar", "USD volume", 0),
    "ui_14": ("Ulcer index, 14 bars", "percent", 26),
    "chop_14": ("choppiness index, 14 bars", "0-100", 14),
    "realized_vol_30": ("annualised std of 30 daily log returns", "fraction per year", 30),
    "ema_diff": ("ema_10 - ema_50", "USD", 49),
    "rsi_deviation": ("rsi_14 - 50", "points", 14),
    "stoch_diff": ("stoch_k - stoch_d", "points", 17),
    "di_diff": ("plus_di_14 - minus_di_14", "points", 14),
    "price_bb_diff": ("(close - bb_mid) / (bb_upper - bb_lower)", "band widths", 19),
    "macd_diff": ("macd_line - macd_signal", "USD", 33),
    "price_roc_30": ("close / close 30 bars earlier - 1", "fraction", 30),
    "volume_roc_7": ("volume / volume 7 bars earlier - 1", "fraction", 7),
    "volatility_ratio": ("atr_14 / mean of the last 30 atr_14", "ratio", 43),
    "trend_quality": ("adx_14 * abs(di_diff) / 100", "points", 27),
    "composite_score": ("weighted vote of the signal families (docs/signals.md)", "-1-1", 1),
    "signal_action": ("buy, sell or hold from the composite score", "", 1),
    "market_cap_rank": (
        "market-cap rank among the coins stored at that bar (1 = largest)",
        "rank",
        0,
    ),
    "age_days": ("days since the coin's first stored bar of the timeframe (fractional on 1h)", "days", 0),
    "index_member": ("in the daily index basket as known at the bar (empty before the index starts)", "bool", 0),
    "index_weight": ("index weight after the day's close: target weight drifted with prices", "fraction", 0),
    "alt_as_of": ("day of the alternative-data snapshot used (the last on or before the day)", "date", 0),
}


def describe(column: str) -> tuple[str, str, int]:
    """(meaning, unit, look-back bars) of a column under its Kallos name."""
    if column in _FIXED:
        return _FIXED[column]
    if column.startswith("signal_") and column[7:] in RULE_IDS:
        return (f"signed strength of rule {column[7:]} when it fires that day, else 0", "-1-1", 1)
    if column.startswith("alt_") and column[4:] in ALT_DATA_COLUMNS:
        unit = "percent" if "percentage" in column else "count"
        return (f"CoinGecko {column[4:].replace('_', ' ')} at the last snapshot on or before the day", unit, 0)
    for prefix, what in (
        ("target_log_return_", "log(close[t+h] / close[t])"),
        ("target_return_", "close[t+h] / close[t] - 1"),
    ):
        if column.startswith(prefix):
            h = int(column[len(prefix) :])
            return (f"LABEL, looks {h} bars ahead: {what}; empty where t+h is not a final bar", "fraction", -h)
    raise KeyError(column)


def data_dictionary(horizons: Sequence[int], naming: str = "kallos", timeframe: str = "1d") -> pd.DataFrame:
    rows = []
    for col in feature_columns(horizons, timeframe):
        meaning, unit, lookback = describe(col)
        rows.append({"column": column_name(col, naming), "meaning": meaning, "unit": unit, "lookback_bars": lookback})
    return pd.DataFrame(rows)
