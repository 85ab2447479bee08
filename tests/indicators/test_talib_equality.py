"""Every TA-Lib column equals TA-Lib (ta-lib 0.8.x) on real data: rtol 1e-9, s = the column's mean |value| per
coin (docs/decisions.md#D31), and NaN exactly during TA-Lib's look-back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib

from kallos.indicators import compute_indicators

from .indicator_data import assert_matches

pytestmark = pytest.mark.shared_data

RTOL = 1e-9


def talib_reference(bars: pd.DataFrame, high_low: bool = True) -> dict[str, np.ndarray]:
    """Direct TA-Lib calls with the contract's parameters, written independently of the engine."""
    c, v = bars["close"].to_numpy(float), bars["volume"].to_numpy(float)
    ref: dict[str, np.ndarray] = {
        "ema_10": talib.EMA(c, timeperiod=10),
        "ema_50": talib.EMA(c, timeperiod=50),
        "sma_20": talib.SMA(c, timeperiod=20),
        "sma_50": talib.SMA(c, timeperiod=50),
        "sma_200": talib.SMA(c, timeperiod=200),
        "rsi_14": talib.RSI(c, timeperiod=14),
        "roc_10": talib.ROC(c, timeperiod=10),
        "obv": talib.OBV(c, v),
    }
    ref["macd_line"], ref["macd_signal"], ref["macd_histogram"] = talib.MACD(c, 12, 26, 9)
    ref["bb_upper"], ref["bb_mid"], ref["bb_lower"] = talib.BBANDS(c, 20, 2, 2, matype=talib.MA_Type.SMA)
    if high_low:
        h, lo = bars["high"].to_numpy(float), bars["low"].to_numpy(float)
        ref["plus_di_14"] = talib.PLUS_DI(h, lo, c, timeperiod=14)
        ref["minus_di_14"] = talib.MINUS_DI(h, lo, c, timeperiod=14)
        ref["adx_14"] = talib.ADX(h, lo, c, timeperiod=14)
        ref["adxr_14"] = talib.ADXR(h, lo, c, timeperiod=14)
        ref["atr_14"] = talib.ATR(h, lo, c, timeperiod=14)
        ref["natr_14"] = talib.NATR(h, lo, c, timeperiod=14)
        ema20, atr10 = talib.EMA(c, timeperiod=20), talib.ATR(h, lo, c, timeperiod=10)
        ref["kc_mid"], ref["kc_upper"], ref["kc_lower"] = ema20, ema20 + 2 * atr10, ema20 - 2 * atr10
        ref["stoch_k"], ref["stoch_d"] = talib.STOCH(
            h, lo, c, fastk_period=14, slowk_period=3, slowk_matype=0, slowd_period=3, slowd_matype=0
        )
        ref["willr_14"] = talib.WILLR(h, lo, c, timeperiod=14)
        ref["cci_20"] = talib.CCI(h, lo, c, timeperiod=20)
        ref["mfi_14"] = talib.MFI(h, lo, c, v, timeperiod=14)
    return ref


def test_exchange_bars_match_talib(exchange_panel: pd.DataFrame) -> None:
    # Shuffled on purpose: the engine sorts; the panel holds all 23 exchange series (~44,000 bars).
    shuffled = exchange_panel.sample(frac=1.0, random_state=7)
    out = compute_indicators(shuffled)
    assert (out["ohlc_source"] == "candles").all()
    checked = 0
    for coin, bars in exchange_panel.groupby("coin_id"):
        got = out[out["coin_id"] == coin]
        assert got["date"].to_numpy().tolist() == bars["date"].to_numpy().tolist()
        for name, expected in talib_reference(bars).items():
            assert_matches(got[name].to_numpy(), expected, RTOL, f"{coin} {name}")
            checked += 1
    assert checked == 23 * 28


def test_coingecko_closes_match_talib(coingecko_panel: pd.DataFrame) -> None:
    """CoinGecko exports are close-only: the close/volume columns match TA-Lib, the high/low ones stay NaN."""
    out = compute_indicators(coingecko_panel)
    assert out["ohlc_source"].isna().all()
    for coin, bars in coingecko_panel.groupby("coin_id"):
        got = out[out["coin_id"] == coin]
        for name, expected in talib_reference(bars, high_low=False).items():
            assert_matches(got[name].to_numpy(), expected, RTOL, f"{coin} {name}")
        assert (
            got[["atr_14", "adx_14", "stoch_k", "mfi_14", "cmf_20", "chop_14", "trend_quality"]]
            .isna()
            .all()
            .all()
        )
