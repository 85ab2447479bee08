"""Small market frames for the index tests (imported by tests/index/test_index_*.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from tests.shared_data import SHARED_DATA, shared_data  # noqa: F401 - re-exported


def long_frame(
    dates: pd.DatetimeIndex,
    closes: Mapping[str, Sequence[float]],
    caps: Mapping[str, Sequence[float]],
) -> pd.DataFrame:
    """(coin_id, date, close, market_cap) rows; NaN closes are left out as missing rows."""
    parts = []
    for coin, close in closes.items():
        close = np.asarray(close, dtype=float)
        cap = np.asarray(caps[coin], dtype=float)
        keep = ~np.isnan(close)
        parts.append(
            pd.DataFrame(
                {"coin_id": coin, "date": dates[keep], "close": close[keep], "market_cap": cap[keep]}
            )
        )
    return pd.concat(parts, ignore_index=True)


def random_market(
    seed: int,
    *,
    n_coins: int = 8,
    start: str = "2020-01-01",
    days: int = 400,
    gaps: float = 0.0,
    late_listings: bool = True,
) -> pd.DataFrame:
    """Random walks with market caps = close x a drifting supply; some coins listed late, some rows
    missing."""
    rng = np.random.default_rng(seed)
    dates = pd.date_range(start, periods=days, freq="D")
    closes, caps = {}, {}
    for i in range(n_coins):
        coin = f"coin-{i:02d}"
        close = rng.uniform(0.5, 50) * np.exp(np.cumsum(rng.normal(0, 0.05, days)))
        supply = rng.lognormal(12, 1.5) * np.exp(np.cumsum(rng.normal(0, 0.002, days)))
        if late_listings and i % 3 == 2:
            close[: rng.integers(30, days // 2)] = np.nan
        if gaps:
            close[rng.random(days) < gaps] = np.nan
        closes[coin], caps[coin] = close, close * supply
    return long_frame(dates, closes, caps)
