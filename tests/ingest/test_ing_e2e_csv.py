"""End to end against the fake server serving the real CoinGecko CSV exports (52 coins, 2013-2023).

The stored rows equal the source rows after the documented normalization, the known problems of
../shared/data/SOURCES.md have their quality events, and a second run changes nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kallos import clock
from kallos.fake import FakeCoinGecko
from kallos.fake.dataset import Dataset
from kallos.ingest.backfill import backfill
from kallos.ingest.details import refresh_details
from kallos.ingest.universe import sync_universe
from kallos.store import Store, open_store

from .helpers import assert_same_values, run_with_client, settings_for, source_rows

pytestmark = pytest.mark.shared_data

# The problems SOURCES.md lists that the validation rules can see: (coin, date, action, reason).
EXPECTED_EVENTS = [
    ("bitcoin", "2013-06-04", "flagged", "missing_day"),
    ("bitcoin", "2015-01-28", "flagged", "missing_day"),
    ("bitcoin", "2017-06-06", "floored", "off_midnight"),  # 2017-06-06 23:29:55 UTC
    ("bitcoin", "2018-01-30", "floored", "off_midnight"),  # 2018-01-30 00:05:18 UTC
    ("bitcoin", "2018-02-08", "floored", "off_midnight"),  # 2018-02-08 00:05:28 UTC
    ("bitcoin", "2017-04-02", "nulled", "missing_market_cap"),
    ("ethereum", "2017-04-02", "nulled", "missing_market_cap"),
    ("litecoin", "2017-04-02", "nulled", "missing_market_cap"),
    ("dogecoin", "2017-04-02", "nulled", "missing_market_cap"),
    ("ethereum", "2015-08-07", "nulled", "zero_market_cap"),  # the first ETH row
    ("binancecoin", "2017-10-30", "flagged", "price_jump"),  # x27 from 0.049 to 1.299
    ("tether", "2018-07-24", "flagged", "off_peg"),  # 1.32
]
ZERO_MARKET_CAP_ROWS = {
    "shiba-inu": 274,
    "arweave": 305,
    "binance-usd": 209,
    "terra-luna": 140,
    "kusama": 123,
    "safemoon": 58,
    "pancakeswap-token": 22,
    "cosmos": 20,
    "usd-coin": 18,
}
ZERO_VOLUME_ROWS = {"bitcoin": 242, "litecoin": 242, "ripple": 140, "dogecoin": 11}
MISSING_DAYS = {"bitcoin": 2, "ripple": 5, "stellar": 6, "shiba-inu": 14, "tether": 23}
# "SHIB moves x35 in one day around 2021-01-30"; "DOGE, XLM and KNCL show daily moves above 300%".
JUMP_WINDOWS = {
    "shiba-inu": ("2021-01-28", "2021-02-02"),
    "dogecoin": ("2013-12-15", "2023-12-31"),
    "stellar": ("2014-08-01", "2023-12-31"),
    "kyber-network": ("2017-09-01", "2023-12-31"),
}


def ingest_everything(
    store: Store, srv: FakeCoinGecko, coins: list[str] | None, candles: bool | None
) -> dict[str, Any]:
    settings = settings_for(srv.url, "pro")
    clock.set_now(srv.now)

    async def go(cg: Any) -> dict[str, Any]:
        out = {"sync": await sync_universe(store, cg, settings)}
        ids = coins or sorted(store.coin_map())
        out["details"] = await refresh_details(store, cg, settings, coins=ids)
        out["backfill"] = await backfill(store, cg, settings, coins=ids, candles=candles)
        out["again"] = await backfill(store, cg, settings, coins=ids, candles=candles)
        out["stats"] = cg.stats.as_dict()
        return out

    return run_with_client(settings, go)


@pytest.fixture(scope="module")
def all_coins_duckdb(
    tmp_path_factory: pytest.TempPathFactory, csv_dataset: Dataset
) -> Iterator[tuple[Store, dict, dt.date]]:
    path = Path(tmp_path_factory.mktemp("e2e")) / "all.duckdb"
    store = open_store(f"duckdb:///{path}")
    store.init()
    with FakeCoinGecko(dataset=csv_dataset, plan="pro") as srv:
        result = ingest_everything(store, srv, None, candles=False)
        last_final = clock.last_final_day(srv.now)
    clock.set_now(None)
    try:
        yield store, result, last_final
    finally:
        store.close()


def test_all_52_coins_equal_the_source_rows(all_coins_duckdb: tuple[Store, dict, dt.date]) -> None:
    store, result, last_final = all_coins_duckdb
    assert result["sync"]["coins"] == 52
    assert result["backfill"]["status"] == "success" and result["backfill"]["failed"] == {}
    stored = store.read("daily_market_data")
    expected = source_rows(last_final)
    assert stored["coin_id"].nunique() == 52
    assert_same_values(stored, expected, ["close", "market_cap", "volume"])
    assert set(stored["close_source"]) == {"chart"}
    assert stored["ohlc_source"].isna().all() and stored["open"].isna().all()  # close-only: nothing invented


def test_second_run_fetches_and_writes_nothing(all_coins_duckdb: tuple[Store, dict, dt.date]) -> None:
    _, result, _ = all_coins_duckdb
    again = result["again"]
    assert again["rows_written"] == 0 and again["api_calls"] == 0 and again["coins"] == 52
    # One call per coin, all history; a read timeout on a loaded machine is retried and adds its attempt.
    stats = result["stats"]
    assert 52 <= stats["by_endpoint"]["/coins/{id}/market_chart/range"] <= 52 + stats["retries"]


def test_known_bad_rows_have_their_events(all_coins_duckdb: tuple[Store, dict, dt.date]) -> None:
    store, _, _ = all_coins_duckdb
    events = store.read("data_quality_events")
    got = {
        (c, d.date().isoformat(), a, r)
        for c, d, a, r in zip(
            events["coin_id"], events["date"], events["action"], events["reason"], strict=True
        )
    }
    for item in EXPECTED_EVENTS:
        assert item in got, item

    def count(coin: str, reason: str) -> int:
        return int(((events["coin_id"] == coin) & (events["reason"] == reason)).sum())

    assert {c: count(c, "zero_market_cap") for c in ZERO_MARKET_CAP_ROWS} == ZERO_MARKET_CAP_ROWS
    assert {c: count(c, "zero_volume") for c in ZERO_VOLUME_ROWS} == ZERO_VOLUME_ROWS
    assert {c: count(c, "missing_day") for c in MISSING_DAYS} == MISSING_DAYS
    for coin, (lo, hi) in JUMP_WINDOWS.items():
        jumps = events[(events["coin_id"] == coin) & (events["reason"] == "price_jump")]
        assert jumps["date"].between(pd.Timestamp(lo), pd.Timestamp(hi)).any(), coin
    # Zero market caps are unknown values, never stored as 0; flagged rows are still stored.
    bars = store.read("daily_market_data", coins=["shiba-inu", "binancecoin"])
    assert not (bars["market_cap"] == 0).any()
    assert (bars["date"] == pd.Timestamp("2017-10-30")).any()
    # Days missing at the source are remembered in the watermark, so they are not re-fetched forever.
    from kallos.ingest.state import CHART, read_watermarks

    wm = read_watermarks(store, CHART, ["bitcoin"])["bitcoin"]
    assert {dt.date(2013, 6, 4), dt.date(2015, 1, 28)} <= wm.missing


def test_delisted_coins_keep_their_rows(all_coins_duckdb: tuple[Store, dict, dt.date]) -> None:
    store, _, _ = all_coins_duckdb
    coins = store.read(
        "coins", columns=["coingecko_id", "status", "category", "first_seen", "details_updated_at"]
    )
    inactive = coins[coins["status"] == "inactive"]["coingecko_id"]
    assert "tether" in set(inactive)  # its export ends in 2022: served as delisted
    bars = store.read("daily_market_data", coins=["tether"])
    assert len(bars) > 2000
    assert coins.set_index("coingecko_id").loc["tether", "category"] == "stablecoins"
    assert coins["details_updated_at"].notna().all()


@pytest.mark.parametrize("coins", [["bitcoin", "ethereum", "tether", "shiba-inu", "binancecoin"]])
def test_both_stores_with_candles(store: Store, csv_dataset: Dataset, coins: list[str]) -> None:
    with FakeCoinGecko(dataset=csv_dataset, plan="pro") as srv:
        result = ingest_everything(store, srv, coins, candles=None)
        last_final = clock.last_final_day(srv.now)
    assert result["backfill"]["status"] == "success"
    assert result["again"]["rows_written"] == 0 and result["again"]["api_calls"] == 0
    stored = store.read("daily_market_data")
    expected = source_rows(last_final)
    assert_same_values(stored, expected[expected["coin_id"].isin(coins)], ["close", "market_cap", "volume"])
    # Candles on the pro plan from 2018-02-09 on; a bar without a candle says so (NULL open/high/low).
    with_candles = stored[stored["ohlc_source"] == "candles"]
    assert with_candles["date"].min() >= pd.Timestamp("2018-02-09")
    assert len(with_candles) > 0.9 * len(stored[stored["date"] > pd.Timestamp("2018-02-10")])
    assert stored.loc[stored["ohlc_source"].isna(), ["open", "high", "low"]].isna().all().all()
    ok = with_candles
    assert (
        (ok["high"] >= ok[["open", "close"]].max(axis=1) * (1 - 1e-9))
        & (ok["low"] <= ok[["open", "close"]].min(axis=1) * (1 + 1e-9))
    ).all()
    events = store.read("data_quality_events", coins=coins)
    got = {
        (c, d.date().isoformat(), a, r)
        for c, d, a, r in zip(
            events["coin_id"], events["date"], events["action"], events["reason"], strict=True
        )
    }
    assert {e for e in EXPECTED_EVENTS if e[0] in coins} <= got
    # Downstream steps are told where to recompute from (docs/decisions.md#D33).
    dirty = store.query(
        "SELECT c.coingecko_id AS coin_id, w.series, w.dirty_from FROM ingestion_watermarks w "
        "JOIN coins c ON c.coin_id = w.coin_id WHERE w.series IN ('indicators', 'signals')"
    )
    assert len(dirty) == 2 * len(coins)
    first = stored.groupby("coin_id")["date"].min()
    assert (dirty.set_index("coin_id")["dirty_from"].groupby(level=0).min() == first).all()
