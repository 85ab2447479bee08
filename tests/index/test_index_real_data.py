"""The index on real CoinGecko history (../shared/data/coingecko_csv_*), checked by independent code.

An independent fixed-quantity portfolio simulator (buy quantities at each selection date, mark them to market
every day with the last known close, rebalance) must agree with `build_index` to 1e-10, and a naive pandas
re-implementation of the selection rules must pick the same coins with the same weights.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kallos.index import EXCLUDED_COIN_IDS, build_index

from .index_frames import shared_data

pytestmark = pytest.mark.shared_data


def load_real_market() -> tuple[pd.DataFrame, set[str]]:
    ids = pd.read_csv(shared_data("coingecko_csv_ids.csv"))
    by_symbol = dict(zip(ids["symbol"], ids["coingecko_id"], strict=True))
    stable = set(ids.loc[ids["categories"].fillna("").str.contains("stablecoins"), "coingecko_id"])
    frames = []
    for folder in sorted(Path(shared_data()).glob("coingecko_csv_*")):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*-usd-max.csv")):
            symbol = path.name[: -len("-usd-max.csv")].lower()
            raw = pd.read_csv(path)
            frames.append(
                pd.DataFrame(
                    {
                        "coin_id": by_symbol[symbol],
                        "date": pd.to_datetime(raw["snapped_at"].str[:10]),
                        "close": raw["price"],
                        "market_cap": raw["market_cap"],
                    }
                )
            )
    market = pd.concat(frames, ignore_index=True).drop_duplicates(["coin_id", "date"], keep="last")
    return market.reset_index(drop=True), stable


@pytest.fixture(scope="module")
def real() -> tuple[pd.DataFrame, set[str], object]:
    market, stable = load_real_market()
    exclude = stable | set(EXCLUDED_COIN_IDS)
    return market, exclude, build_index(market, exclude=exclude)


def simulate(market: pd.DataFrame, constituents: pd.DataFrame, end: pd.Timestamp) -> tuple[dict, dict]:
    """Fixed quantities between selection dates; returns {date: value} and {selection date: one-way
    turnover}."""
    prices: dict[str, dict[pd.Timestamp, float]] = {}
    for coin, date, close in market[["coin_id", "date", "close"]].itertuples(index=False):
        if isinstance(close, float) and close > 0 and not math.isnan(close):
            prices.setdefault(coin, {})[pd.Timestamp(date)] = close
    targets = {
        pd.Timestamp(s): dict(zip(g["coin_id"], g["weight"], strict=True))
        for s, g in constituents.groupby("selection_date")
    }
    last: dict[str, float] = {}
    quantities: dict[str, float] = {}
    values, turnover = {}, {}
    day = min(targets)
    # last closes known at the base date
    for coin, series in prices.items():
        known = [d for d in series if d <= day]
        if known:
            last[coin] = series[max(known)]
    while day <= end:
        for coin, series in prices.items():
            if day in series:
                last[coin] = series[day]
        value = 1000.0 if not quantities else sum(q * last[c] for c, q in quantities.items())
        if day in targets:
            if quantities:
                held = {c: q * last[c] / value for c, q in quantities.items()}
                names = set(held) | set(targets[day])
                turnover[day] = 0.5 * sum(abs(targets[day].get(c, 0.0) - held.get(c, 0.0)) for c in names)
            quantities = {c: w * value / last[c] for c, w in targets[day].items()}
        values[day] = value
        day += pd.Timedelta(days=1)
    return values, turnover


def test_fixed_quantity_simulator_agrees(real) -> None:
    market, _, res = real
    assert res.base_date <= dt.date(2017, 1, 1)
    assert len(res.turnover) > 60
    values, turnover = simulate(market, res.constituents, res.values["date"].max())
    got = res.values.set_index("date")["index_value"]
    assert len(values) == len(got)
    for day, value in values.items():
        assert got[day] == pytest.approx(value, rel=1e-10), day
    t = res.turnover.set_index("selection_date")["turnover"]
    assert set(t.index) == set(turnover)
    for day, tau in turnover.items():
        assert t[day] == pytest.approx(tau, abs=1e-10), day


def naive_cap(m: list[float], cap: float) -> list[float]:
    total = sum(m)
    w = [x / total for x in m]
    capped: set[int] = set()
    while True:
        over = {i for i, x in enumerate(w) if i not in capped and x > cap * (1 + 1e-12)}
        if not over:
            return w
        capped |= over
        free_total = sum(m[i] for i in range(len(m)) if i not in capped)
        rest = 1 - cap * len(capped)
        w = [cap if i in capped else m[i] * rest / free_total for i in range(len(m))]


def test_naive_selection_agrees(real) -> None:
    market, exclude, res = real
    valid = market[(market["close"] > 0) & (market["market_cap"] > 0)]
    first_valid = valid.groupby("coin_id")["date"].min()
    for s, got in res.constituents.groupby("selection_date"):
        s = pd.Timestamp(s)
        window = valid[(valid["date"] > s - pd.Timedelta(days=1095)) & (valid["date"] <= s)]
        counts = window.groupby("coin_id").size()
        today = valid[valid["date"] == s].set_index("coin_id")["market_cap"]
        eligible = [
            c
            for c in today.index
            if c not in exclude
            and first_valid[c] <= s - pd.Timedelta(days=1095)
            and counts.get(c, 0) >= 0.9 * 1095
        ]
        ranked = sorted(eligible, key=lambda c: (-today[c], c))[:20]
        assert got["coin_id"].tolist() == ranked, s
        np.testing.assert_allclose(
            got["weight"], naive_cap([today[c] for c in ranked], 0.35), rtol=0, atol=1e-12
        )
    assert not res.constituents["coin_id"].isin(exclude).any()
