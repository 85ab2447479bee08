"""Hand-built indicator frames for the signal tests: a calm baseline where no rule fires, edited by day."""

from __future__ import annotations

import numpy as np
import pandas as pd

START = pd.Timestamp("2024-01-01")


def calm_frame(n: int = 80, coin: str = "alpha") -> pd.DataFrame:
    """Neutral indicators on a gently oscillating close: RSI 50, MACD and EMA spreads fixed and positive,
    close well inside wide Bollinger bands, %K = %D = 50, ADX 30, flat volume and no money flow."""
    days = pd.date_range(START, periods=n, freq="D")
    close = 100.0 + np.sin(np.arange(n) / 3.0)
    return pd.DataFrame(
        {
            "coin_id": coin,
            "date": days,
            "close": close,
            "rsi_14": 50.0,
            "macd_line": 1.0,
            "macd_signal": 0.5,
            "ema_10": 101.0,
            "ema_50": 100.0,
            "bb_upper": 110.0,
            "bb_mid": 100.0,
            "bb_lower": 90.0,
            "stoch_k": 50.0,
            "stoch_d": 50.0,
            "adx_14": 30.0,
            "volume_roc_7": 0.0,
            "cmf_20": 0.0,
        }
    )


def day(i: int) -> pd.Timestamp:
    return START + pd.Timedelta(days=i)


def set_values(frame: pd.DataFrame, i: int, **values: float) -> pd.DataFrame:
    for col, v in values.items():
        frame.loc[frame["date"] == day(i), col] = v
    return frame


def realistic_frame(n: int = 260, coin: str = "walk", seed: int = 7) -> pd.DataFrame:
    """A random walk with TA-Lib indicators (the engine's column names), for properties like no look-ahead."""
    import talib

    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.035, n)))
    high = close * (1 + rng.uniform(0, 0.03, n))
    low = close * (1 - rng.uniform(0, 0.03, n))
    volume = rng.uniform(1e6, 3e6, n)
    f = pd.DataFrame({"coin_id": coin, "date": pd.date_range(START, periods=n, freq="D"), "close": close})
    f["ema_10"] = talib.EMA(close, 10)
    f["ema_50"] = talib.EMA(close, 50)
    f["rsi_14"] = talib.RSI(close, 14)
    f["macd_line"], f["macd_signal"], _ = talib.MACD(close, 12, 26, 9)
    f["bb_upper"], f["bb_mid"], f["bb_lower"] = talib.BBANDS(close, 20, 2, 2, 0)
    f["stoch_k"], f["stoch_d"] = talib.STOCH(high, low, close, 14, 3, 0, 3, 0)
    f["adx_14"] = talib.ADX(high, low, close, 14)
    prev7 = pd.Series(volume).shift(7)
    f["volume_roc_7"] = (pd.Series(volume) / prev7 - 1).to_numpy()
    mfm = ((close - low) - (high - close)) / (high - low)
    f["cmf_20"] = (pd.Series(mfm * volume).rolling(20).sum() / pd.Series(volume).rolling(20).sum()).to_numpy()
    return f
