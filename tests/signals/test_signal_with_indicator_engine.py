"""The indicator engine's output is the signal engine's input: the column contract holds end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kallos.indicators import compute_indicators
from kallos.signals import RULE_IDS, generate_signals


def bars(n: int = 400, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.04, n)))
    open_ = close * np.exp(rng.normal(0, 0.01, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.03, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.03, n))
    return pd.DataFrame(
        {
            "coin_id": "walk",
            "date": pd.date_range("2022-01-01", periods=n, freq="D"),
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": rng.uniform(1e6, 5e6, n),
        }
    )


def test_signals_from_engine_indicators_agree_with_the_indicator_values() -> None:
    b = bars()
    ind = compute_indicators(b)
    frame = ind.drop(columns=[c for c in ("close",) if c in ind]).merge(
        b[["coin_id", "date", "close"]], on=["coin_id", "date"]
    )
    out = generate_signals(frame)
    assert (out["signal"] == "composite").sum() == len(frame)
    assert set(out["signal"]) - {"composite"} <= set(RULE_IDS)
    assert len(set(out["signal"])) >= 8
    f = frame.set_index("date")
    prev = f.shift(1)
    for r in out.loc[out["signal"] != "composite"].itertuples(index=False):
        x, p = f.loc[r.date], prev.loc[r.date]
        if r.signal == "rsi_oversold":
            assert x["rsi_14"] < 30
        elif r.signal == "rsi_overbought":
            assert x["rsi_14"] > 70
        elif r.signal == "golden_cross":
            assert x["ema_10"] > x["ema_50"] and p["ema_10"] <= p["ema_50"] and x["adx_14"] >= 20
        elif r.signal == "death_cross":
            assert x["ema_10"] < x["ema_50"] and p["ema_10"] >= p["ema_50"] and x["adx_14"] >= 20
        elif r.signal == "macd_cross_up":
            assert x["macd_line"] > x["macd_signal"] and p["macd_line"] <= p["macd_signal"]
        elif r.signal == "bb_breakout_up":
            assert x["close"] > x["bb_upper"] and p["close"] <= p["bb_upper"]
        elif r.signal == "stoch_cross_up":
            assert x["stoch_k"] > x["stoch_d"] and x["stoch_d"] < 20
