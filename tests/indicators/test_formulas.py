"""The columns TA-Lib lacks match an independent pandas implementation of docs/indicators.md (rtol 1e-9, s =
the column's mean |value| per coin, docs/decisions.md#D31), on real data, and start where the contract says."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from kallos.indicators import compute_indicators

from .indicator_data import assert_matches

RTOL = 1e-9


def reference_close(bars: pd.DataFrame, out: pd.DataFrame) -> dict[str, pd.Series]:
    c, v = bars["close"].reset_index(drop=True), bars["volume"].reset_index(drop=True)
    roc = {k: c.pct_change(k) * 100 for k in (10, 15, 20, 30)}
    kst = (
        roc[10].rolling(10).mean()
        + 2 * roc[15].rolling(10).mean()
        + 3 * roc[20].rolling(10).mean()
        + 4 * roc[30].rolling(15).mean()
    )
    peak = c.rolling(14).max()
    drawdown = 100 * (c - peak) / peak
    prev_v = v.shift(7)
    o = out.reset_index(drop=True)
    width = o["bb_upper"] - o["bb_lower"]
    return {
        "kst": kst,
        "kst_signal": kst.rolling(9).mean(),
        "ui_14": np.sqrt((drawdown**2).rolling(14).mean()),
        "realized_vol_30": np.log(c).diff().rolling(30).std(ddof=1) * math.sqrt(365),
        "bb_width": width / o["bb_mid"],
        "price_bb_diff": ((c - o["bb_mid"]) / width).where(width != 0),
        "ema_diff": o["ema_10"] - o["ema_50"],
        "rsi_deviation": o["rsi_14"] - 50,
        "macd_diff": o["macd_line"] - o["macd_signal"],
        "price_roc_30": c / c.shift(30) - 1,
        "volume_roc_7": (v / prev_v - 1).where(prev_v != 0),
    }


def reference_high_low(bars: pd.DataFrame, out: pd.DataFrame) -> dict[str, pd.Series]:
    b = bars.reset_index(drop=True)
    h, lo, c, v = b["high"], b["low"], b["close"], b["volume"]
    mfm = (((c - lo) - (h - c)) / (h - lo)).where(h != lo, 0.0)
    vsum = v.rolling(20).sum()
    prev_c = c.shift(1)
    tr = pd.concat([h - lo, (h - prev_c).abs(), (lo - prev_c).abs()], axis=1).max(axis=1, skipna=False)
    rng = h.rolling(14).max() - lo.rolling(14).min()
    o = out.reset_index(drop=True)
    di_diff = o["plus_di_14"] - o["minus_di_14"]
    return {
        "cmf_20": ((mfm * v).rolling(20).sum() / vsum).where(vsum != 0),
        "chop_14": (100 * np.log10(tr.rolling(14).sum() / rng) / math.log10(14)).where(rng != 0),
        "stoch_diff": o["stoch_k"] - o["stoch_d"],
        "di_diff": di_diff,
        "volatility_ratio": o["atr_14"] / o["atr_14"].rolling(30).mean(),
        "trend_quality": o["adx_14"] * di_diff.abs() / 100,
    }


@pytest.mark.shared_data
def test_formulas_on_exchange_bars(exchange_panel: pd.DataFrame) -> None:
    out = compute_indicators(exchange_panel)
    for coin, bars in exchange_panel.groupby("coin_id"):
        got = out[out["coin_id"] == coin]
        refs = reference_close(bars, got) | reference_high_low(bars, got)
        for name, expected in refs.items():
            assert_matches(got[name].to_numpy(), expected.to_numpy(), RTOL, f"{coin} {name}")


@pytest.mark.shared_data
def test_formulas_on_coingecko_closes(coingecko_panel: pd.DataFrame) -> None:
    out = compute_indicators(coingecko_panel)
    for coin, bars in coingecko_panel.groupby("coin_id"):
        got = out[out["coin_id"] == coin]
        for name, expected in reference_close(bars, got).items():
            assert_matches(got[name].to_numpy(), expected.to_numpy(), RTOL, f"{coin} {name}")


def random_bars(n: int, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.04, n)))
    spread = np.abs(rng.normal(0, 0.02, n)) + 0.001
    return pd.DataFrame(
        {
            "date": pd.date_range("2020-01-01", periods=n, freq="D"),
            "open": close,
            "high": close * (1 + spread),
            "low": close * (1 - spread),
            "close": close,
            "volume": rng.uniform(1e3, 1e6, n),
        }
    )


# First bar (0-based) with a value: the contract's look-backs, TA-Lib's for its columns.
FIRST_VALUE = {
    "ema_10": 9, "ema_50": 49, "sma_200": 199, "rsi_14": 14, "macd_line": 33, "macd_signal": 33,
    "plus_di_14": 14, "adx_14": 27, "adxr_14": 40, "atr_14": 14, "bb_upper": 19, "bb_width": 19,
    "kc_upper": 19, "stoch_k": 17, "stoch_d": 17, "willr_14": 13, "cci_20": 19, "roc_10": 10,
    "kst": 44, "kst_signal": 52, "mfi_14": 14, "cmf_20": 19, "obv": 0, "ui_14": 26, "chop_14": 14,
    "realized_vol_30": 30, "price_roc_30": 30, "volume_roc_7": 7, "volatility_ratio": 43, "trend_quality": 27,
    }  # fmt: skip


def test_look_back_is_nan_then_values() -> None:
    out = compute_indicators(random_bars(260))
    for name, first in FIRST_VALUE.items():
        values = out[name].to_numpy()
        assert np.isnan(values[:first]).all(), name
        assert not np.isnan(values[first:]).any(), name


def test_short_history_is_all_nan_not_an_error() -> None:
    out = compute_indicators(random_bars(5))
    assert len(out) == 5
    assert out["sma_20"].isna().all() and out["kst"].isna().all()
    assert out["obv"].notna().all()
