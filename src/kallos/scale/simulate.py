"""Simulated daily bars for the scale tests and benchmark: any number of coins, generated batch by batch.

A batch depends only on (seed, first coin number, coin count, days), so a 15,000-coin universe can be streamed
one batch at a time without ever holding it whole. Coins list on different days (so their lengths differ), a
few have close-only stretches (no high/low, as CoinGecko's chart gives), and volumes are sometimes zero.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["coin_name", "simulated_bars"]

START = pd.Timestamp("2017-01-01")


def coin_name(i: int) -> str:
    return f"sim-{i:05d}"


def simulated_bars(
    first: int,
    n_coins: int,
    days: int,
    *,
    seed: int = 7,
    start: pd.Timestamp = START,
    late_listing: float = 0.3,
) -> pd.DataFrame:
    """Bars of coins `first .. first + n_coins - 1` over `days` days: coin_id, date, open, high, low, close,
    volume, sorted by coin and date. A share `late_listing` of the coins list after the first day."""
    rng = np.random.default_rng([seed, first, n_coins, days])
    level = 10 ** rng.uniform(-4, 4, (n_coins, 1))
    close = level * np.exp(np.cumsum(rng.normal(0, 0.05, (n_coins, days)), axis=1))
    spread = np.abs(rng.normal(0, 0.03, (n_coins, days))) + 1e-4
    high = close * (1 + spread * rng.uniform(0.2, 1, (n_coins, days)))
    low = close * (1 - spread * rng.uniform(0.2, 1, (n_coins, days)))
    open_ = np.clip(close * (1 + rng.normal(0, 0.01, (n_coins, days))), low, high)
    volume = rng.lognormal(12, 2, (n_coins, days))
    volume[rng.random((n_coins, days)) < 0.01] = 0.0
    listed = np.where(rng.random(n_coins) >= late_listing, 0, rng.integers(0, max(1, days - 60), n_coins))
    # One coin in ten has no candles for its first bars (close-only history).
    close_only = np.where(rng.random(n_coins) < 0.1, rng.integers(1, max(2, days // 5), n_coins), 0)
    col = np.arange(days)[None, :]
    keep = col >= listed[:, None]
    no_candle = col < (listed + close_only)[:, None]
    for arr in (open_, high, low):
        arr[no_candle] = np.nan
    dates = pd.date_range(start, periods=days, freq="D").to_numpy()
    ids = np.array([coin_name(first + i) for i in range(n_coins)], dtype=object)
    frame = pd.DataFrame(
        {
            "coin_id": np.repeat(ids, days)[keep.ravel()],
            "date": np.tile(dates, n_coins)[keep.ravel()],
            "open": open_[keep],
            "high": high[keep],
            "low": low[keep],
            "close": close[keep],
            "volume": volume[keep],
        }
    )
    return frame.reset_index(drop=True)
