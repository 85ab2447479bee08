"""Universe sync (delisted coins kept, renames, shared symbols), coin details and the raw archive."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pandas as pd

from kallos import clock
from kallos.fake import CoinInfo, Dataset, FakeCoinGecko
from kallos.fake.dataset import day_of
from kallos.fake.testing import small_market
from kallos.ingest.backfill import backfill
from kallos.ingest.details import refresh_details
from kallos.ingest.universe import sync_universe
from kallos.store import Store

from .helpers import run_with_client, settings_for

UTC = dt.UTC
NOW = dt.datetime(2024, 6, 30, 15, tzinfo=UTC)


def tiny(coins: list[tuple[str, str, str, int]]) -> Dataset:
    """Coins (id, symbol, name, last day index) with flat prices from 2024-01-01 to 2024-06-30."""
    start = day_of("2024-01-01")
    n_days = day_of("2024-07-01") - start + 1
    n = len(coins)
    ones = np.ones((n, n_days))
    return Dataset(
        coins=[CoinInfo(cid, sym, name, categories=("layer-1",)) for cid, sym, name, _ in coins],
        start_day=start,
        price=ones * 2.0,
        market_cap=ones * 1e9,
        volume=ones * 1e6,
        present=np.ones((n, n_days), dtype=bool),
        first=np.zeros(n, dtype=np.int64),
        last=np.array([last if last >= 0 else n_days - 1 for *_, last in coins], dtype=np.int64),
        default_now=NOW,
    )


def sync(store: Store, ds: Dataset, now: dt.datetime) -> dict[str, Any]:
    with FakeCoinGecko(dataset=ds, plan="pro", now=now) as srv:
        clock.set_now(now)
        settings = settings_for(srv.url, "pro")
        return run_with_client(settings, lambda cg: sync_universe(store, cg, settings))


def test_sync_keeps_delisted_coins_renames_and_shared_symbols(store: Store) -> None:
    first = tiny(
        [
            ("bitcoin", "btc", "Bitcoin", -1),
            ("union-2", "unn", "Union", -1),
            ("bitcoin-fake", "btc", "Bitcoin Fake", 60),
        ]
    )
    r1 = sync(store, first, NOW - dt.timedelta(days=5))
    assert r1["coins"] == 3 and r1["shared_symbols"] == 2
    coins = store.read("coins").set_index("coingecko_id")
    assert coins.loc["bitcoin-fake", "status"] == "inactive"  # ended > 30 days ago: delisted, still listed
    assert coins.loc["bitcoin", "status"] == "active"

    second = tiny(
        [
            ("bitcoin", "btc", "Bitcoin", -1),
            ("union", "unn", "Union", -1),
            ("bitcoin-fake", "btc", "Bitcoin Fake", 60),
        ]
    )
    r2 = sync(store, second, NOW)
    assert r2["renamed"] == 1 and r2["vanished"] == 1 and r2["new"] == 1
    coins = store.read("coins").set_index("coingecko_id")
    assert set(coins.index) == {"bitcoin", "union-2", "union", "bitcoin-fake"}  # never deleted
    assert coins.loc["union-2", "status"] == "inactive"
    assert coins.loc["bitcoin", "first_seen"] == pd.Timestamp(NOW - dt.timedelta(days=5))
    assert coins.loc["bitcoin", "last_seen"] == pd.Timestamp(NOW)
    assert coins.loc["union-2", "last_seen"] == pd.Timestamp(NOW - dt.timedelta(days=5))
    state = store.read("kallos_state").set_index("key")["value"]
    assert state["renamed:union-2"] == "union"
    assert json.loads(coins.loc["bitcoin", "platforms"]) == {}


def test_details_fill_and_refresh_only_stale_coins(duck_store: Store) -> None:
    with FakeCoinGecko(dataset=small_market(), plan="pro") as srv:
        clock.set_now(srv.now)
        settings = settings_for(srv.url, "pro", raw_archive=True)

        async def go(cg: Any) -> list[dict[str, Any]]:
            await sync_universe(duck_store, cg, settings)
            out = [await refresh_details(duck_store, cg, settings, coins=["bitcoin", "tether", "nope"])]
            out.append(await refresh_details(duck_store, cg, settings, coins=["bitcoin", "tether"]))
            out.append(await refresh_details(duck_store, cg, settings, coins=["bitcoin"], max_age_days=0))
            return out

        first, second, forced = run_with_client(settings, go)
    assert first["coins"] == 2 and first["status"] == "partial" and set(first["failed"]) == {"nope"}
    assert second["coins"] == 0 and second["api_calls"] == 0
    assert forced["coins"] == 1 and forced["api_calls"] == 1
    coins = duck_store.read("coins").set_index("coingecko_id")
    btc = coins.loc["bitcoin"]
    source = small_market().coins[small_market().index["bitcoin"]]
    assert btc["description"].startswith("Bitcoin")
    if source.genesis_date:
        assert btc["genesis_date"] == pd.Timestamp(source.genesis_date)
    else:
        assert pd.isna(btc["genesis_date"])  # CoinGecko has none: NULL, not a made-up date
    assert btc["hashing_algorithm"] == "SHA-256"
    links = json.loads(btc["links"])
    assert links["homepage"] and "" not in links["homepage"]
    assert btc["community_data"] is None or pd.isna(btc["community_data"])  # no longer supplied: NULL
    assert json.loads(btc["developer_data"])["stars"] > 0
    assert coins.loc["tether", "category"] == "stablecoins"
    history = duck_store.read("coin_details_history").set_index("coin_id")  # one row per coin and day (D78)
    assert len(history) == 2 and set(history["source"]) == {"details"}
    assert history.loc["bitcoin", "stars"] == json.loads(btc["developer_data"])["stars"]
    assert history.loc["bitcoin", "date"] == pd.Timestamp(clock.utcnow().date() + dt.timedelta(days=1))  # next bar
    assert history.loc["bitcoin", "watchlist_portfolio_users"] > 0
    cats = duck_store.read("coin_categories", coins=["tether"])
    assert "stablecoins" in set(cats["category_id"])
    raw = duck_store.read("raw_responses")
    detail = raw[raw["endpoint"] == "/coins/{id}"]
    assert len(detail) >= 3 and (detail["status"] == 200).all()
    assert "test-key" not in "".join(raw["params"]) and "bitcoin" in detail["body"].iloc[0]
    assert detail["schema_drift"].str.contains(r"\+categories_details").all()  # a field newer than our schema


def test_raw_archive_is_off_by_default(duck_store: Store) -> None:
    with FakeCoinGecko(dataset=small_market(), plan="pro") as srv:
        clock.set_now(srv.now)
        settings = settings_for(srv.url, "pro")
        assert settings.raw_archive is False

        async def go(cg: Any) -> None:
            await sync_universe(duck_store, cg, settings)
            await backfill(duck_store, cg, settings, coins=["bitcoin"], since=dt.date(2024, 12, 1))

        run_with_client(settings, go)
    assert duck_store.read("raw_responses").empty
    assert len(duck_store.read("daily_market_data")) == 31
