"""The daily update: ⌈N/250⌉ `/coins/markets` calls plus the gap fills, finality, and resuming from
watermarks.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from kallos import clock
from kallos.fake import FakeCoinGecko, SimulatedMarket
from kallos.fake.dataset import Dataset
from kallos.ingest.backfill import backfill
from kallos.ingest.state import CHART, read_watermarks
from kallos.ingest.universe import sync_universe
from kallos.ingest.update import daily_update
from kallos.store import Store

from .helpers import run_with_client, settings_for

UTC = dt.UTC


@pytest.fixture(scope="module")
def big_market() -> Dataset:
    return SimulatedMarket(seed=3, n_coins=270, start="2024-06-01", end="2024-12-31")


@pytest.fixture
def demo_server(big_market: Dataset) -> Iterator[FakeCoinGecko]:
    with FakeCoinGecko(dataset=big_market, plan="demo") as srv:
        yield srv


def at(srv: FakeCoinGecko, when: dt.datetime) -> None:
    srv.now = when
    clock.set_now(when)


def call(srv: FakeCoinGecko, settings: Any, fn: Any, store: Store, **kw: Any) -> dict[str, Any]:
    return run_with_client(settings, lambda cg: fn(store, cg, settings, **kw))


def endpoints(srv: FakeCoinGecko) -> list[str]:
    out = []
    for q in srv.requests:
        parts = q.path.strip("/").split("/")
        out.append(
            "markets"
            if parts[:2] == ["coins", "markets"]
            else "/".join(["{id}", *parts[2:]])
            if len(parts) > 2
            else q.path
        )
    return out


def test_update_costs_markets_pages_plus_gap_fills(duck_store: Store, demo_server: FakeCoinGecko) -> None:
    srv, store = demo_server, duck_store
    settings = settings_for(srv.url, "demo")
    assert settings.effective_close_source == "markets"
    at(srv, dt.datetime(2024, 12, 29, 15, tzinfo=UTC))
    call(srv, settings, sync_universe, store)
    active = sorted(store.query("SELECT coingecko_id FROM coins WHERE status = 'active'")["coingecko_id"])
    assert len(active) > 250
    lagging = active[:: len(active) // 7][:7]
    fresh = [c for c in active if c not in lagging]
    r = call(srv, settings, backfill, store, coins=fresh[:5], since=dt.date(2024, 11, 1))
    assert r["status"] == "success", r["failed"]
    # The other fresh coins are tracked through 2024-12-29 too (their watermarks say so; backfilling 250 coins
    # here would only slow the test down).
    store.upsert(
        "ingestion_watermarks",
        pd.DataFrame(
            {
                "coin_id": fresh[5:],
                "series": CHART,
                "first_date": dt.date(2024, 12, 29),
                "last_date": dt.date(2024, 12, 29),
            }
        ),
    )
    at(srv, dt.datetime(2024, 12, 25, 15, tzinfo=UTC))
    call(srv, settings, backfill, store, coins=lagging, since=dt.date(2024, 11, 1))

    # Inside the close window of 2024-12-30 (after its 00:00 point is published): one sweep per 250 coins, a
    # chart only for the 7 lagging coins; the day itself comes from the sweep for every coin.
    at(srv, dt.datetime(2024, 12, 30, 0, 45, tzinfo=UTC))
    srv.clear_requests()
    result = call(srv, settings, daily_update, store)
    n = len(active)
    calls = endpoints(srv)
    assert calls.count("markets") == math.ceil(n / 250) == result["markets_calls"]
    assert calls.count("{id}/market_chart/range") == len(lagging) == result["gap_fills"]
    assert len(calls) == math.ceil(n / 250) + len(lagging) == result["api_calls"]
    assert result["status"] == "success"
    day = pd.Timestamp("2024-12-30")
    bars = store.read("daily_market_data", start=day - pd.Timedelta(days=5))
    on_day = bars[bars["date"] == day]
    assert set(on_day["coin_id"]) == set(active)
    assert set(on_day["close_source"]) == {"markets"}
    assert (on_day["snapped_at"] == pd.Timestamp("2024-12-30 00:45", tz="UTC")).all()  # its real timestamp
    filled = bars[bars["coin_id"].isin(lagging) & bars["date"].between("2024-12-26", "2024-12-29")]
    assert len(filled) >= 4 * len(lagging) - 2  # the gap days, from the chart
    wms = read_watermarks(store, CHART)
    assert {wms[c].last_date for c in active} == {dt.date(2024, 12, 30)}

    # A later sweep in the same window does not replace the final value; outside it only snapshots move.
    before = store.read("daily_market_data", start=day, end=day)
    at(srv, dt.datetime(2024, 12, 30, 0, 50, tzinfo=UTC))
    srv.clear_requests()
    again = call(srv, settings, daily_update, store)
    assert again["rows_written"] == 0 and endpoints(srv) == ["markets"] * math.ceil(n / 250)
    at(srv, dt.datetime(2024, 12, 30, 15, tzinfo=UTC))
    srv.clear_requests()
    later = call(srv, settings, daily_update, store)
    assert later["rows_written"] == 0 and later["api_calls"] == math.ceil(n / 250)
    pd.testing.assert_frame_equal(store.read("daily_market_data", start=day, end=day), before)
    snaps = store.read("market_snapshots", coins=[active[0]])
    assert pd.Timestamp("2024-12-30 15:00", tz="UTC") in set(snaps["fetched_at"])
    assert store.read("daily_market_data", start=pd.Timestamp("2024-12-31")).empty  # today is never final


def test_chart_mode_finishes_days_with_one_chart_call_per_coin(
    duck_store: Store, big_market: Dataset
) -> None:
    with FakeCoinGecko(dataset=big_market, plan="pro") as srv:
        settings = settings_for(srv.url, "pro", daily_close_source="chart")
        at(srv, dt.datetime(2024, 12, 20, 15, tzinfo=UTC))
        call(srv, settings, sync_universe, store := duck_store)
        coins = ["bitcoin", "ethereum", "solana"]
        call(srv, settings, backfill, store, coins=coins, since=dt.date(2024, 12, 1), candles=False)
        at(srv, dt.datetime(2024, 12, 23, 15, tzinfo=UTC))
        srv.clear_requests()
        result = call(srv, settings, daily_update, store)
        calls = endpoints(srv)
        assert calls.count("markets") == 1
        assert calls.count("{id}/market_chart/range") == 3 == result["chart_calls"]
        bars = store.read("daily_market_data", start=pd.Timestamp("2024-12-21"))
        assert sorted(bars["date"].dt.day.unique().tolist()) == [21, 22, 23]
        assert set(bars["close_source"]) == {"chart"}
        # The trailing "now" point is provisional: a snapshot, never a bar.
        snaps = store.read("market_snapshots", coins=["bitcoin"])
        assert pd.Timestamp("2024-12-23 15:00", tz="UTC") in set(snaps["fetched_at"])


def test_demo_history_is_clamped_not_failed(
    duck_store: Store, demo_server: FakeCoinGecko, caplog: pytest.LogCaptureFixture
) -> None:
    srv, store = demo_server, duck_store
    settings = settings_for(srv.url, "demo")
    at(srv, dt.datetime(2024, 12, 29, 15, tzinfo=UTC))
    call(srv, settings, sync_universe, store)
    caplog.set_level("WARNING", logger="kallos")
    result = call(srv, settings, backfill, store, coins=["bitcoin"], since=dt.date(2020, 1, 1))
    assert result["status"] == "success" and result["clamped"] == 1
    assert any("clamped" in r.getMessage() for r in caplog.records)
    bars = store.read("daily_market_data", coins=["bitcoin"])
    assert bars["date"].min() >= pd.Timestamp("2023-12-30")
    assert srv.count("/coins/bitcoin/market_chart/range", status=200) == 1


def test_one_coin_failing_does_not_stop_the_others(duck_store: Store, demo_server: FakeCoinGecko) -> None:
    srv, store = demo_server, duck_store
    settings = settings_for(srv.url, "demo")
    at(srv, dt.datetime(2024, 12, 29, 15, tzinfo=UTC))
    call(srv, settings, sync_universe, store)
    store.upsert(
        "coins", pd.DataFrame({"coingecko_id": ["ghost-coin"], "symbol": ["btc"], "name": ["Ghost"]})
    )
    result = call(
        srv,
        settings,
        backfill,
        store,
        coins=["bitcoin", "ghost-coin", "never-synced", "ethereum"],
        since=dt.date(2024, 12, 1),
    )
    assert result["status"] == "partial"
    assert set(result["failed"]) == {"ghost-coin", "never-synced"}
    assert "not found" in result["failed"]["ghost-coin"].lower()
    assert set(store.read("daily_market_data")["coin_id"]) == {"bitcoin", "ethereum"}


def test_holes_are_found_and_refetched(store: Store, demo_server: FakeCoinGecko) -> None:
    srv = demo_server
    settings = settings_for(srv.url, "demo")
    at(srv, dt.datetime(2024, 12, 29, 15, tzinfo=UTC))
    call(srv, settings, sync_universe, store)
    call(srv, settings, backfill, store, coins=["bitcoin", "ethereum"], since=dt.date(2024, 10, 1))
    full = store.read("daily_market_data")
    store.execute(
        "UPDATE ingestion_watermarks SET dirty_from = NULL WHERE series IN ('indicators', 'signals')"
    )
    store.execute(
        "DELETE FROM daily_market_data WHERE \"date\" BETWEEN '2024-11-10' AND '2024-11-12' AND coin_id = "
        "(SELECT coin_id FROM coins WHERE coingecko_id = 'ethereum')"
    )
    from kallos.ingest.coverage import coverage_report

    report = coverage_report(store, last_final=dt.date(2024, 12, 29)).set_index("coin_id")
    assert report.loc["ethereum", "holes"] == 3 and report.loc["bitcoin", "holes"] == 0
    srv.clear_requests()
    result = call(srv, settings, backfill, store)  # every tracked coin: only the one with a hole is fetched
    assert result["rows_written"] == 3 and result["api_calls"] == 1
    pd.testing.assert_frame_equal(
        store.read("daily_market_data").drop(columns=["updated_at"]), full.drop(columns=["updated_at"])
    )
    dirty = store.query(
        "SELECT c.coingecko_id AS coin, w.dirty_from FROM ingestion_watermarks w JOIN coins c ON c.coin_id = "
        "w.coin_id WHERE w.series = 'indicators'"
    ).set_index("coin")["dirty_from"]
    assert dirty["ethereum"] == pd.Timestamp("2024-11-10") and pd.isna(dirty["bitcoin"])


def test_free_plans_can_take_candles_from_ohlc(duck_store: Store, demo_server: FakeCoinGecko) -> None:
    srv, store = demo_server, duck_store
    settings = settings_for(srv.url, "demo")
    at(srv, dt.datetime(2024, 12, 29, 15, tzinfo=UTC))
    call(srv, settings, sync_universe, store)
    srv.clear_requests()
    result = call(srv, settings, backfill, store, coins=["bitcoin"], since=dt.date(2024, 11, 1), candles=True)
    assert result["api_calls"] == 2 and srv.count("/coins/bitcoin/ohlc") == 1
    bars = store.read("daily_market_data")
    with_candles = bars[bars["ohlc_source"] == "candles"]
    assert len(with_candles) >= 25  # the last 30 days, from complete days of 4-hour candles
    assert with_candles["date"].min() >= pd.Timestamp("2024-11-28")
    old = bars[bars["date"] < pd.Timestamp("2024-11-28")]
    assert old["ohlc_source"].isna().all() and old["high"].isna().all()
