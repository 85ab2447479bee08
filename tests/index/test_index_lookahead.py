"""No look-ahead: corrupting every row after a selection date changes nothing decided at that date."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kallos.index import build_index

from .index_frames import random_market

PARAMS = {"n_constituents": 5, "min_history_days": 60, "min_coverage": 0.9}


def corrupt_after(market: pd.DataFrame, cut: pd.Timestamp, seed: int, *, destructive: bool) -> pd.DataFrame:
    """Every row after ``cut`` changed: scaled wildly, or (destructive) made invalid; some rows dropped."""
    rng = np.random.default_rng(seed)
    out = market.copy()
    after = out["date"] > cut
    n = int(after.sum())
    price_factors = [10.0, 0.01, np.nan, -1.0] if destructive else [10.0, 0.01, 3.0]
    cap_factors = [1e6, 0.0, np.nan, 1.5] if destructive else [1e6, 1e-6, 1.5]
    out.loc[after, "close"] = out.loc[after, "close"] * rng.choice(price_factors, n)
    out.loc[after, "market_cap"] = out.loc[after, "market_cap"] * rng.choice(cap_factors, n)
    drop = 0.2 if destructive else 0.02
    out = out.drop(index=out.index[after.to_numpy() & (rng.random(len(out)) < drop)])
    newcomer = pd.DataFrame(
        {
            "coin_id": "zz-newcomer",
            "date": pd.date_range(cut + pd.Timedelta(days=1), periods=40),
            "close": 1.0,
            "market_cap": 1e30,
        }
    )
    return pd.concat([out, newcomer], ignore_index=True)


@pytest.mark.parametrize(("seed", "destructive"), [(0, False), (1, False), (2, True), (3, True)])
def test_selection_and_weights_ignore_later_rows(seed: int, destructive: bool) -> None:
    market = random_market(100 + seed, n_coins=10, days=450, gaps=0.02)
    clean = build_index(market, **PARAMS)
    dates = sorted(clean.constituents["selection_date"].unique())
    cut = pd.Timestamp(dates[len(dates) // 2])
    # destroyed data cannot be selected from later on: value the corrupted days up to the next month end only
    end = cut + pd.Timedelta(days=20) if destructive else market["date"].max()
    dirty = build_index(corrupt_after(market, cut, seed, destructive=destructive), end=end, **PARAMS)
    assert len(dirty.constituents["selection_date"].unique()) > (len(dates) // 2 if not destructive else 0)

    def upto(frame: pd.DataFrame, column: str) -> pd.DataFrame:
        return frame[frame[column] <= cut].reset_index(drop=True)

    pd.testing.assert_frame_equal(
        upto(clean.constituents, "selection_date"),
        upto(dirty.constituents, "selection_date"),
        check_exact=True,
    )
    pd.testing.assert_frame_equal(upto(clean.values, "date"), upto(dirty.values, "date"), check_exact=True)
    pd.testing.assert_frame_equal(
        upto(clean.turnover, "selection_date"), upto(dirty.turnover, "selection_date"), check_exact=True
    )
    assert dirty.base_date == clean.base_date
