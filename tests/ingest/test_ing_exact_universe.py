"""Mixed mode on pro (docs/decisions.md#D117, D121): exact chart closes and candles for the exact-close universe
only, the close-window sweep for the other coins; the planner prices what the run spends."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from kallos import clock
from kallos.coingecko import plans
from kallos.fake import FakeCoinGecko, SimulatedMarket
from kallos.fake.dataset import Dataset
from kallos.ingest.select import exact_universe
from kallos.ingest.state import CHART, OHLC, read_watermarks
from kallos.ingest.universe import sync_universe
from kallos.ingest.update import daily_update, estimate_daily
from kallos.store import Store

from .helpers import run_with_client, settings_for

UTC = dt.UTC
SEEDED = dt.date(2024, 12, 29)
WINDOW = dt.datetime(2024, 12, 30, 0, 45, tzinfo=UTC)  # day 12-30 is final (00:35) and the close window is open
K = 12  # KALLOS_EXACT_CLOSE_TOP in these tests
SEATS = 3  # the default index's constituents: 2 x 3 candidates among the coins it does not exclude


@pytest.fixture(scope="module")
def market() -> Dataset:
    return SimulatedMarket(seed=5, n_coins=270, start="2024-06-01", end="2024-12-31")


@pytest.fixture(scope="module")
def small_market() -> Dataset:
    return SimulatedMarket(seed=5, n_coins=40, start="2024-06-01", end="2024-12-31")


@pytest.fixture
def pro(market: Dataset) -> Iterator[FakeCoinGecko]:
    """270 coins: the sweep takes two pages."""
    with FakeCoinGecko(dataset=market, plan="pro") as srv:
        yield srv


@pytest.fixture
def pro_small(small_market: Dataset) -> Iterator[FakeCoinGecko]:
    with FakeCoinGecko(dataset=small_market, plan="pro") as srv:
        yield srv


def at(srv: FakeCoinGecko, when: dt.datetime) -> None:
    srv.now = when
    clock.set_now(when)


def mixed(url: str, top: int = K) -> Any:
    return settings_for(url, "pro", exact_close_top=top, index_constituents=SEATS, index_max_weight=0.35)


def counted(srv: FakeCoinGecko) -> dict[str, int]:
    out: dict[str, int] = {}
    for q in srv.requests:
        parts = q.path.strip("/").split("/")
        key = "markets" if parts[:2] == ["coins", "markets"] else "/".join(parts[2:]) if len(parts) > 2 else q.path
        out[key] = out.get(key, 0) + 1
    return out


def tracked_through(store: Store, srv: FakeCoinGecko, settings: Any, day: dt.date) -> list[str]:
    """Every active coin tracked through `day` (chart and candle watermarks), as after a first load: backfilling
    270 coins here would only slow the test down; the days before are not read by the daily update."""
    at(srv, dt.datetime(2024, 12, 29, 15, tzinfo=UTC))
    run_with_client(settings, lambda cg: sync_universe(store, cg, settings))
    active = sorted(store.query("SELECT coingecko_id FROM coins WHERE status = 'active'")["coingecko_id"])
    for series in (CHART, OHLC):
        store.upsert(
            "ingestion_watermarks",
            pd.DataFrame({"coin_id": active, "series": series, "first_date": day, "last_date": day}),
        )
    return active


def update(srv: FakeCoinGecko, settings: Any, store: Store, when: dt.datetime) -> dict[str, Any]:
    at(srv, when)
    srv.clear_requests()
    return run_with_client(settings, lambda cg: daily_update(store, cg, settings))


def ranked(store: Store) -> list[str]:
    frame = store.query(
        "SELECT coingecko_id FROM coins WHERE market_cap_rank IS NOT NULL ORDER BY market_cap_rank, coingecko_id"
    )
    return list(frame["coingecko_id"])


def test_the_universe_is_the_top_n_and_every_index_candidate() -> None:
    ranks = {"a": 1, "usdt": 2, "b": 3, "c": 4, "d": 5, "e": 6, "old": 40, "unranked": None}
    assert exact_universe(ranks, top=2) == {"a", "usdt"}
    # An index of 2 seats excluding usdt: its first 4 eligible coins by rank, and its constituents however ranked.
    index = (2, {"usdt"}, ["old", "gone"])
    assert exact_universe(ranks, top=2, indices=[index]) == {"a", "usdt", "b", "c", "d", "old"}
    assert exact_universe(ranks, top=0, indices=[index]) == {"a", "b", "c", "d", "old"}
    assert plans.daily_update_calls(1000, 1000, paid=True) == 2004
    assert plans.daily_update_calls(1000, 100, paid=True) == 204
    assert plans.daily_update_calls(1000, 0, paid=True) == plans.daily_update_calls(1000, 0, paid=False) == 4


def test_pro_default_is_mixed_and_explicit_modes_keep_their_meaning(pro: FakeCoinGecko) -> None:
    assert settings_for(pro.url, "pro").effective_close_source == "mixed"
    assert settings_for(pro.url, "demo").effective_close_source == "markets"
    assert settings_for(pro.url, "pro", daily_close_source="chart").effective_close_source == "chart"
    assert settings_for(pro.url, "pro", daily_close_source="markets").effective_close_source == "markets"


def test_mixed_run_costs_two_calls_per_exact_coin_plus_the_sweep(duck_store: Store, pro: FakeCoinGecko) -> None:
    store, srv = duck_store, pro
    settings = mixed(srv.url)
    active = tracked_through(store, srv, settings, SEEDED)
    n = len(active)
    assert n > 250

    result = update(srv, settings, store, WINDOW)
    assert result["status"] == "success", result["failed"]
    exact = set(ranked(store)[:K])  # the index's 6 candidates are ranked inside the top 12 here
    assert result["mode"] == "mixed" and result["exact_coins"] == len(exact) == K
    calls = counted(srv)
    pages = math.ceil(n / 250)
    assert calls == {
        "markets": pages,
        "market_chart/range": K,
        "ohlc/range": K,
    }
    assert result["api_calls"] == 2 * K + pages == plans.daily_update_calls(n, K, paid=True)
    assert result["calls_per_coin_day"] == round((2 * K + pages) / n, 4)
    assert result["chart_calls"] == result["ohlc_calls"] == K and result["gap_fills"] == 0

    day = store.read("daily_market_data", start=pd.Timestamp("2024-12-30"), end=pd.Timestamp("2024-12-30"))
    assert set(day["coin_id"]) == set(active)
    inside = day[day["coin_id"].isin(exact)]
    outside = day[~day["coin_id"].isin(exact)]
    assert set(inside["close_source"]) == {"chart"} and set(inside["ohlc_source"]) == {"candles"}
    assert set(outside["close_source"]) == {"markets"} and outside["ohlc_source"].isna().all()
    assert (outside["snapped_at"] == pd.Timestamp(WINDOW)).all()  # the sweep's real time
    assert result["markets_closes"] == n - K
    wms, candles = read_watermarks(store, CHART), read_watermarks(store, OHLC)
    assert {wms[c].last_date for c in active} == {dt.date(2024, 12, 30)}
    assert {candles[c].last_date for c in exact} == {dt.date(2024, 12, 30)}
    assert {candles[c].last_date for c in set(active) - exact} == {SEEDED}  # no candles outside

    # The same day again: the sweep only, nothing written.
    again = update(srv, settings, store, WINDOW + dt.timedelta(minutes=5))
    assert again["rows_written"] == 0 and counted(srv) == {"markets": pages}


def test_planner_prices_what_the_run_spends(duck_store: Store, pro_small: FakeCoinGecko) -> None:
    store, srv = duck_store, pro_small
    settings = mixed(srv.url)
    active = tracked_through(store, srv, settings, SEEDED)
    update(srv, settings, store, WINDOW)  # stores the ranks the planner reads

    for when in (WINDOW + dt.timedelta(days=1), dt.datetime(2024, 12, 31, 15, tzinfo=UTC)):
        at(srv, when)
        est = estimate_daily(store, settings, now=when)
        result = update(srv, settings, store, when)
        spent = {f"/coins/{{id}}/{k}" if k != "markets" else "/coins/markets": v for k, v in counted(srv).items()}
        assert est["calls"] == result["api_calls"] == sum(spent.values()), (when, est, result, spent)
        assert est["by_endpoint"] == spent
        assert est["calls_per_coin_day"] == result["calls_per_coin_day"]
        assert est["coins"] == len(active) and est["exact_coins"] == result["exact_coins"]
    # The second day above was outside the close window and already final: nothing to fetch but the sweep.
    assert est["calls"] == math.ceil(len(active) / 250)


def test_missed_window_fills_the_gap_by_chart_without_candles(duck_store: Store, pro_small: FakeCoinGecko) -> None:
    store, srv = duck_store, pro_small
    settings = mixed(srv.url, top=4)
    active = tracked_through(store, srv, settings, SEEDED)
    late = dt.datetime(2024, 12, 30, 6, tzinfo=UTC)  # after the window: the sweep is only a snapshot
    at(srv, late)
    result = update(srv, settings, store, late)
    exact = result["exact_coins"]
    calls = counted(srv)
    assert calls["market_chart/range"] == len(active) and calls["ohlc/range"] == exact
    assert result["gap_fills"] == len(active) - exact and result["markets_closes"] == 0
    day = store.read("daily_market_data", start=pd.Timestamp("2024-12-30"), end=pd.Timestamp("2024-12-30"))
    assert set(day["close_source"]) == {"chart"}
    assert int(day["ohlc_source"].notna().sum()) == exact


def test_a_coin_entering_the_universe_gets_exact_closes_and_candles_for_its_sweep_days(
    duck_store: Store, pro_small: FakeCoinGecko
) -> None:
    store, srv = duck_store, pro_small
    small = mixed(srv.url, top=6)
    tracked_through(store, srv, small, SEEDED)
    update(srv, small, store, WINDOW)
    update(srv, small, store, WINDOW + dt.timedelta(days=1))  # 12-30 and 12-31 from the sweep outside the top 6
    entering = set(ranked(store)[6:K]) - {
        c for c, s in _sources(store, "2024-12-31").items() if s == "chart"
    }
    assert entering
    # The universe grows to K: the coins entering it are fetched back to the day after their last candle day.
    wider = mixed(srv.url)
    est = estimate_daily(store, wider, now=WINDOW + dt.timedelta(days=1, minutes=10))
    result = update(srv, wider, store, WINDOW + dt.timedelta(days=1, minutes=10))
    assert result["exact_entries"] == len(entering) == est["exact_entries"]
    assert result["api_calls"] == est["calls"] == math.ceil(result["coins"] / 250) + 2 * len(entering)
    for day in ("2024-12-30", "2024-12-31"):
        sources = _sources(store, day, "close_source")
        assert {sources[c] for c in entering} == {"chart"}
        assert set(_sources(store, day, "ohlc_source", sorted(entering)).values()) == {"candles"}
    assert {read_watermarks(store, OHLC)[c].last_date for c in entering} == {dt.date(2024, 12, 31)}
    # ... and once is enough: the next run fetches nothing more for them.
    again = update(srv, wider, store, WINDOW + dt.timedelta(days=1, minutes=15))
    assert again["rows_written"] == 0 and again["exact_entries"] == 0


def _sources(store: Store, day: str, column: str = "close_source", coins: Any = None) -> dict[str, Any]:
    frame = store.read("daily_market_data", start=pd.Timestamp(day), end=pd.Timestamp(day), coins=coins)
    return dict(zip(frame["coin_id"], frame[column], strict=True))
