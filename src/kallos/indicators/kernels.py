"""TA-Lib, one coin at a time: the columns TA-Lib has, with its start-up conventions (docs/indicators.md).

TA-Lib is the engine for the indicators it has (its C loops define the conventions and are fast per coin); the
formula columns are fused numba kernels (kallos.indicators.fused).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import talib as _talib

FloatArray = np.ndarray


def _unwrapped(name: str) -> Any:
    """TA-Lib's compiled function itself: the package wraps each one to accept pandas and polars Series, a check
    of every argument that costs ~1.5 us a call (18 calls a coin) for the NumPy arrays the engine always passes."""
    func = getattr(_talib, name)
    return getattr(func, "__wrapped__", func)


talib = SimpleNamespace(
    MA_Type=_talib.MA_Type,
    **{
        name: _unwrapped(name)
        for name in ("ADX", "ATR", "BBANDS", "CCI", "EMA", "MACD", "MINUS_DI", "OBV", "PLUS_DI", "ROC", "RSI")
        + ("SMA", "STOCH", "WILLR")
    },
)


# ---- TA-Lib, one coin at a time ---------------------------------------------------------------------------
CLOSE_TALIB = (
    "ema_10", "ema_50", "sma_20", "sma_50", "sma_200", "rsi_14", "macd_line", "macd_signal", "macd_histogram",
    "bb_upper", "bb_mid", "bb_lower", "roc_10", "obv",
)  # fmt: skip
HIGH_LOW_TALIB = (
    "plus_di_14", "minus_di_14", "adx_14", "adxr_14", "atr_14", "natr_14", "kc_upper", "kc_mid", "kc_lower",
    "stoch_k", "stoch_d", "willr_14", "cci_20",
)  # fmt: skip
# The formula columns computed over the candle bars (NaN on close-only bars with the TA-Lib high/low columns).
HIGH_LOW_FORMULAS = ("mfi_14", "cmf_20", "chop_14", "stoch_diff", "di_diff", "volatility_ratio", "trend_quality")


def talib_close(close: FloatArray, volume: FloatArray) -> tuple[FloatArray, ...]:
    """The close(/volume) TA-Lib columns of one coin, in CLOSE_TALIB order."""
    macd, signal, hist = talib.MACD(close, 12, 26, 9)
    upper, mid, lower = talib.BBANDS(close, 20, 2.0, 2.0, talib.MA_Type.SMA)
    return (
        talib.EMA(close, 10),
        talib.EMA(close, 50),
        mid,  # BBANDS' middle band is TA-Lib's SMA20, bit for bit: no second pass
        talib.SMA(close, 50),
        talib.SMA(close, 200),
        talib.RSI(close, 14),
        macd,
        signal,
        hist,
        upper,
        mid,
        lower,
        talib.ROC(close, 10),
        talib.OBV(close, volume),
    )


def talib_high_low(high: FloatArray, low: FloatArray, close: FloatArray) -> tuple[FloatArray, ...]:
    """The high/low TA-Lib columns of one coin's candle sequence, in HIGH_LOW_TALIB order.

    ADXR and NATR are derived from the ADX and ATR already computed, with TA-Lib's own final step
    ((ADX_t + ADX_t-13) / 2 and ATR / close * 100): bit-identical to talib.ADXR / talib.NATR, without
    running the directional-movement and true-range recursions twice.
    """
    atr = talib.ATR(high, low, close, 14)
    adx = talib.ADX(high, low, close, 14)
    adxr = np.full_like(adx, np.nan)
    if len(adx) > 40:
        adxr[40:] = (adx[40:] + adx[27:-13]) / 2.0
    kc_mid = talib.EMA(close, 20)
    kc_atr = talib.ATR(high, low, close, 10)
    stoch_k, stoch_d = talib.STOCH(high, low, close, 14, 3, talib.MA_Type.SMA, 3, talib.MA_Type.SMA)
    return (
        talib.PLUS_DI(high, low, close, 14),
        talib.MINUS_DI(high, low, close, 14),
        adx,
        adxr,
        atr,
        (atr / close) * 100.0,
        kc_mid + 2.0 * kc_atr,
        kc_mid,
        kc_mid - 2.0 * kc_atr,
        stoch_k,
        stoch_d,
        talib.WILLR(high, low, close, 14),
        talib.CCI(high, low, close, 20),
    )
