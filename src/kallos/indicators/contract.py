"""The indicator contract (docs/indicators.md) as data: column names, what each needs, and start-up facts.

This module owns the column names (the storage schema imports them for the daily_technical_indicators table) and
says what the engine and the pipeline step need to know about each column: whether it rests on high/low (computed
only over bars with real candles, docs/decisions.md#D6) and how much history an incremental recompute must re-read
to be exact. It imports nothing, so the store can read it without loading the engine.
"""

from __future__ import annotations

__all__ = [
    "BAR_COLUMNS",
    "COMPOSITE_COLUMNS",
    "HIGH_LOW_COLUMNS",
    "INDICATOR_COLUMNS",
    "OHLC_SOURCE_APPROX",
    "OHLC_SOURCE_CANDLES",
    "OUTPUT_COLUMNS",
    "RECOMPUTE_HISTORY_BARS",
    "TALIB_COLUMNS",
]

BAR_COLUMNS: tuple[str, ...] = ("date", "open", "high", "low", "close", "volume")

# The indicator contract (docs/decisions.md#C-IND), in its order: one column each, stored in this order.
INDICATOR_COLUMNS: tuple[str, ...] = (
    "ema_10",
    "ema_50",
    "sma_20",
    "sma_50",
    "sma_200",
    "rsi_14",
    "macd_line",
    "macd_signal",
    "macd_histogram",
    "plus_di_14",
    "minus_di_14",
    "adx_14",
    "adxr_14",
    "atr_14",
    "natr_14",
    "bb_upper",
    "bb_mid",
    "bb_lower",
    "bb_width",
    "kc_upper",
    "kc_mid",
    "kc_lower",
    "stoch_k",
    "stoch_d",
    "willr_14",
    "cci_20",
    "roc_10",
    "kst",
    "kst_signal",
    "mfi_14",
    "cmf_20",
    "obv",
    "ui_14",
    "chop_14",
    "realized_vol_30",
)
COMPOSITE_COLUMNS: tuple[str, ...] = (
    "ema_diff",
    "rsi_deviation",
    "stoch_diff",
    "di_diff",
    "price_bb_diff",
    "macd_diff",
    "price_roc_30",
    "volume_roc_7",
    "volatility_ratio",
    "trend_quality",
)

OUTPUT_COLUMNS: tuple[str, ...] = INDICATOR_COLUMNS + COMPOSITE_COLUMNS

# Columns whose definition needs high and low (docs/decisions.md#D6), composites built on them included. For a
# close-only bar they are NULL unless the caller opts into the close-only approximation.
HIGH_LOW_COLUMNS: frozenset[str] = frozenset(
    {
        "plus_di_14", "minus_di_14", "adx_14", "adxr_14", "atr_14", "natr_14",
        "kc_upper", "kc_mid", "kc_lower", "stoch_k", "stoch_d", "willr_14", "cci_20",
        "mfi_14", "cmf_20", "chop_14",
        "stoch_diff", "di_diff", "volatility_ratio", "trend_quality",
    }
)  # fmt: skip

# Columns TA-Lib computes (and that must match it to a relative 1e-9 on real data); the rest are formulas.
TALIB_COLUMNS: frozenset[str] = frozenset(
    {
        "ema_10", "ema_50", "sma_20", "sma_50", "sma_200", "rsi_14",
        "macd_line", "macd_signal", "macd_histogram",
        "plus_di_14", "minus_di_14", "adx_14", "adxr_14", "atr_14", "natr_14",
        "bb_upper", "bb_mid", "bb_lower", "kc_upper", "kc_mid", "kc_lower",
        "stoch_k", "stoch_d", "willr_14", "cci_20", "roc_10", "mfi_14", "obv",
    }
)  # fmt: skip

OHLC_SOURCE_CANDLES = "candles"
OHLC_SOURCE_APPROX = "close_only_approx"

# How many bars before the first bar to (re)write an incremental run re-reads. The recursive indicators forget
# their start at the rate of their slowest decay, EMA50's 49/51 per bar: after 1,100 bars the start's weight
# is (49/51)**1100 ~ 1e-19, far below the 1e-12 the incremental = full test demands even when the start value
# is 1000x off. Windowed indicators need at most 229 bars (SMA200 + the longest composite window).
RECOMPUTE_HISTORY_BARS = 1100
