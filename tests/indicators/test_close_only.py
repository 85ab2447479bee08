"""Close-only bars (docs/decisions.md#D6): high/low columns are NaN on them and computed over the candle bars taken
as consecutive bars; with the approximation opted in, every bar has values and says so in ohlc_source."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kallos.indicators import compute_indicators
from kallos.indicators.contract import HIGH_LOW_COLUMNS, OUTPUT_COLUMNS

from .indicator_data import assert_matches
from .test_formulas import random_bars


def mixed_bars() -> tuple[pd.DataFrame, np.ndarray]:
    bars = random_bars(400, seed=11)
    close_only = np.zeros(len(bars), dtype=bool)
    close_only[[0, 3, 50, 51, 52, 200, 399]] = True
    close_only[300:320] = True
    bars.loc[close_only, ["open", "high", "low"]] = np.nan
    return bars, close_only


def test_high_low_columns_use_candle_bars_as_consecutive() -> None:
    bars, close_only = mixed_bars()
    out = compute_indicators(bars)
    assert out.loc[close_only, "ohlc_source"].isna().all()
    assert (out.loc[~close_only, "ohlc_source"] == "candles").all()
    assert out.loc[close_only, sorted(HIGH_LOW_COLUMNS)].isna().all().all()
    candles_only = compute_indicators(bars[~close_only])
    kept = out[~close_only].reset_index(drop=True)
    for name in sorted(HIGH_LOW_COLUMNS):
        assert_matches(kept[name].to_numpy(), candles_only[name].to_numpy(), 0.0, name)
    # Close-based columns still see every bar.
    full_close = compute_indicators(bars.assign(high=bars["close"], low=bars["close"], open=bars["close"]))
    for name in ("ema_50", "rsi_14", "macd_line", "kst", "obv", "realized_vol_30"):
        assert_matches(out[name].to_numpy(), full_close[name].to_numpy(), 0.0, name)


def test_close_only_approximation_is_opt_in_and_recorded() -> None:
    bars, close_only = mixed_bars()
    out = compute_indicators(bars, close_only_approx=True)
    assert (out.loc[close_only, "ohlc_source"] == "close_only_approx").all()
    assert (out.loc[~close_only, "ohlc_source"] == "candles").all()
    late = out.iloc[200:]  # past the longest look-back (SMA200)
    assert late[[c for c in OUTPUT_COLUMNS]].notna().all().all()
    # The approximated candle spans the previous close and the close.
    prev = bars["close"].shift(1).fillna(bars["close"])
    approx = bars.assign(
        high=np.where(close_only, np.maximum(prev, bars["close"]), bars["high"]),
        low=np.where(close_only, np.minimum(prev, bars["close"]), bars["low"]),
    )
    explicit = compute_indicators(approx)
    for name in ("atr_14", "adx_14", "stoch_k", "cmf_20"):
        assert_matches(out[name].to_numpy(), explicit[name].to_numpy(), 0.0, name)
