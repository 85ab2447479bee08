"""Small real-shaped inputs for the feature tests: random-walk OHLCV bars, an index basket, alternative data."""

from __future__ import annotations

import numpy as np
import pandas as pd


def bars(
    n_days: int = 320,
    coins: tuple[str, ...] = ("alpha", "beta", "gamma"),
    seed: int = 3,
    *,
    start: str = "2021-01-01",
    freq: str = "D",
) -> pd.DataFrame:
    """Bars one `freq` apart from `start` (`date` holds the bar's time: the day, the hour or the week's Monday)."""
    rng = np.random.default_rng(seed)
    parts = []
    for i, coin in enumerate(coins):
        days = pd.date_range(start, periods=n_days, freq=freq)[i * 15 :]  # listed at different times
        n = len(days)
        close = rng.uniform(0.5, 50) * np.exp(np.cumsum(rng.normal(0, 0.04, n)))
        spread = np.abs(rng.normal(0, 0.02, n))
        parts.append(
            pd.DataFrame(
                {
                    "coin_id": coin,
                    "date": days,
                    "open": close * (1 + rng.normal(0, 0.01, n)).clip(0.9, 1.1),
                    "high": close * (1 + spread + 0.011),
                    "low": close * (1 - spread - 0.011),
                    "close": close,
                    "volume": rng.uniform(1e5, 1e7, n),
                    "market_cap": close * rng.uniform(1e6, 1e8),
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    frame["open"] = frame[["open", "high"]].min(axis=1).clip(lower=frame["low"])
    holes = [i for i in (40, 41, 200) if i < len(frame)]  # labels across a gap
    return frame.drop(index=frame.index[holes]).reset_index(drop=True)


def constituents() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "selection_date": pd.to_datetime(["2021-03-31", "2021-03-31", "2021-04-30", "2021-04-30", "2021-04-30"]),
            "coin_id": ["alpha", "beta", "alpha", "beta", "gamma"],
            "weight": [0.6, 0.4, 0.35, 0.35, 0.30],
        }
    )


def alt() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "coin_id": ["alpha", "alpha", "beta"],
            "date": pd.to_datetime(["2021-02-15", "2021-05-01", "2021-03-01"]),
            "stars": [100.0, 120.0, 7.0],
            "watchlist_portfolio_users": [1000.0, 1500.0, np.nan],
        }
    )


HOURLY_START = "2021-03-20"
"""Hourly test bars: 1,080 hours (45 days) per coin, across both index selections and an alt snapshot."""


def hourly_bars() -> pd.DataFrame:
    return bars(1080, start=HOURLY_START, freq="h").rename(columns={"date": "hour"})


def weekly_bars() -> pd.DataFrame:
    """150 weeks stamped with their Mondays, from 2019-01-07 (across both selections and the alt snapshots)."""
    return bars(150, start="2019-01-07", freq="W-MON")


def corrupt_after(b: pd.DataFrame, later: pd.Series, how: str) -> pd.DataFrame:
    """The bars with every bar flagged `later` removed, or its prices, volume and cap replaced by other values:
    what a point-in-time feature row must not notice."""
    if how == "removed":
        return b.loc[~later]
    bad = b.copy()
    rng = np.random.default_rng(7)
    n = int(later.sum())
    scale = rng.uniform(0.2, 5.0, size=n)
    for col in ("open", "high", "low", "close"):
        bad.loc[later, col] = bad.loc[later, col] * scale
    bad.loc[later, "volume"] = rng.uniform(0, 1e9, size=n)
    bad.loc[later, "market_cap"] = rng.uniform(0, 1e12, size=n)
    return bad
