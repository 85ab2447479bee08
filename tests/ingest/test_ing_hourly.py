"""Hourly bars: floor to the hour, last point wins with an event, gaps stay gaps; backfill resumes exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from kallos import clock
from kallos.coingecko import CoinGeckoClient
from kallos.errors import PlanLimitError
from kallos.fake.testing import fake_coingecko
from kallos.ingest.hourly import (
    CHART_1H,
    HourWindow,
    chart_windows,
    check_since,
    estimate_hourly,
    hourly_backfill_step,
    hourly_bars,
    hourly_update_step,
)
from kallos.ingest.state import read_watermarks
from kallos.ingest.universe import sync_universe
from kallos.pipeline.contract import StepContext, StepOutcome
from kallos.store import Store

from .helpers import settings_for

UTC = dt.UTC


def test_points_floor_to_their_hour_last_wins_and_gaps_stay() -> None:
    t0 = pd.Timestamp("2024-05-01T00:00:00Z")
    stamps = [t0 + pd.Timedelta(minutes=m) for m in (1, 61, 95, 118, 241)]  # 00, 01, 01, 01, 04
    chart = pd.DataFrame(
        {"snapped_at": stamps, "close": [1.0, 2.0, 3.0, 4.0, 5.0], "market_cap": [10, 0, 30, 40, 50], "volume": 1.0}
    )
    w = HourWindow("x", t0.to_pydatetime(), (t0 + pd.Timedelta(hours=5)).to_pydatetime())
    bars, events = hourly_bars("x", chart, w)
    assert list(bars["hour"].dt.hour) == [0, 1, 4]  # hours 2, 3 and 5 are gaps: nothing invented
    assert list(bars["close"]) == [1.0, 4.0, 5.0]  # the last point of hour 01 wins
    dedup = events[events["action"] == "deduplicated"]
    assert len(dedup) == 1 and dedup["detail"].iloc[0] == "2 point(s) in hour(s) 01 UTC"
    assert bars["market_cap"].iloc[1] == 40.0
    assert events["reason"].tolist().count("non_positive_market_cap") == 0  # the 0 cap was in a dropped point


def test_a_non_positive_close_is_quarantined_and_a_zero_cap_nulled() -> None:
    t0 = pd.Timestamp("2024-05-01T00:00:00Z")
    chart = pd.DataFrame(
        {
            "snapped_at": [t0 + pd.Timedelta(minutes=m) for m in (2, 62, 122)],
            "close": [1.0, 0.0, 3.0],
            "market_cap": [10.0, 20.0, 0.0],
            "volume": [1.0, 1.0, 1.0],
        }
    )
    w = HourWindow("x", t0.to_pydatetime(), (t0 + pd.Timedelta(hours=2)).to_pydatetime())
    bars, events = hourly_bars("x", chart, w)
    assert list(bars["hour"].dt.hour) == [0, 2] and np.isnan(bars["market_cap"].iloc[1])
    assert set(zip(events["reason"], events["action"], strict=True)) == {
        ("non_positive_close", "quarantined"),
        ("non_positive_market_cap", "nulled"),
    }


def test_windows_are_two_to_ninety_days() -> None:
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    w = HourWindow("x", start, start + dt.timedelta(days=200) - dt.timedelta(hours=1))
    spans = [b - a for a, b in chart_windows(w, start)]
    assert len(spans) == 3 and max(spans) == dt.timedelta(days=90)
    short = HourWindow("x", start + dt.timedelta(days=10), start + dt.timedelta(days=10, hours=3))
    ((a, b),) = chart_windows(short, start)
    assert b - a == dt.timedelta(days=2)  # one day ending now would come back 5-minutely


def test_the_planner_refuses_hours_beyond_the_plan_naming_the_limit() -> None:
    now = dt.datetime(2024, 12, 31, 15, tzinfo=UTC)
    with pytest.raises(PlanLimitError, match="demo plan serves hourly data for the past 365 days"):
        check_since("demo", dt.date(2023, 6, 1), now)
    with pytest.raises(PlanLimitError, match="hourly data from 2018-01-30"):
        check_since("pro", dt.date(2017, 6, 1), now)
    check_since("pro", dt.date(2019, 1, 1), now)


def _run(store: Store, settings, now: dt.datetime, step) -> StepOutcome:  # type: ignore[no-untyped-def]
    async def go() -> StepOutcome:
        async with CoinGeckoClient.from_settings(settings, share_rate_limit=False) as client:
            ctx = StepContext(store=store, settings=settings, run_id="r1", now=now, client=client)
            return await step(ctx)

    return asyncio.run(go())


def _sync(store: Store, settings) -> None:  # type: ignore[no-untyped-def]
    async def go() -> None:
        async with CoinGeckoClient.from_settings(settings, share_rate_limit=False) as client:
            await sync_universe(store, client, settings)

    asyncio.run(go())


@pytest.mark.parametrize("plan", ["demo", "pro"])
def test_backfill_resumes_and_stores_each_hour_once(duck_store: Store, plan: str) -> None:
    coins = ["bitcoin", "ethereum"]
    with fake_coingecko(plan=plan, api_key="test-key") as srv:
        now = srv.now
        clock.set_now(now)
        settings = settings_for(srv.url, plan=plan)
        _sync(duck_store, settings)
        since = (now - dt.timedelta(days=40)).date()
        early = now - dt.timedelta(hours=30)
        first = _run(duck_store, settings, early, hourly_backfill_step(coins=coins, since=since))
        assert first.status == "success" and first.coins_ok == 2
        expected_calls = 1 + (2 if plan == "pro" else 0)  # 40 days: one chart window (+ two 31-day candle calls)
        assert first.api_calls == 2 * expected_calls
        second = _run(duck_store, settings, now, hourly_backfill_step(coins=coins))
        assert second.rows_written == 2 * 30 and second.api_calls == 2 * (1 + (plan == "pro"))
        again = _run(duck_store, settings, now, hourly_backfill_step(coins=coins))
        assert again.rows_written == 0 and again.api_calls == 0 and again.extra["up_to_date"] == 2

    bars = duck_store.read("hourly_market_data", coins=coins)
    assert not bars.duplicated(["coin_id", "hour"]).any()
    last = pd.Timestamp(now).floor("h") - pd.Timedelta(hours=1)
    assert bars["hour"].max() == last
    per_coin = bars.groupby("coin_id").size()
    span_hours = int((last - pd.Timestamp(since, tz="UTC")) / pd.Timedelta(hours=1)) + 1
    assert (per_coin <= span_hours).all() and (per_coin >= span_hours - 5).all()
    assert (bars["hour"] == bars["hour"].dt.floor("h")).all()
    if plan == "pro":
        with_candles = bars["ohlc_source"] == "candles"
        assert with_candles.mean() > 0.95
        ok = bars[with_candles]
        assert ((ok["low"] <= ok["close"]) & (ok["close"] <= ok["high"])).all()
    else:
        assert bars["open"].isna().all()
    wm = read_watermarks(duck_store, CHART_1H)["bitcoin"]
    assert pd.Timestamp(wm.state["last_hour"]) == last
    marks = duck_store.read("ingestion_watermarks", coins=["bitcoin"])
    assert {"indicators_1h", "signals_1h"} <= set(marks["series"])


def test_daily_run_universe_and_plan_estimate(duck_store: Store) -> None:
    with fake_coingecko(plan="demo", api_key="test-key") as srv:
        now = srv.now
        clock.set_now(now)
        settings = settings_for(srv.url, plan="demo", hourly_universe=3)
        _sync(duck_store, settings)
        duck_store.execute("UPDATE coins SET market_cap_rank = 1 WHERE coingecko_id = 'bitcoin'")
        duck_store.execute("UPDATE coins SET market_cap_rank = 2 WHERE coingecko_id = 'ethereum'")
        est = estimate_hourly(duck_store, settings, now=now, coins=None, top=None, since=None)
        assert est["coins"] == 2 and est["by_endpoint"]["/coins/{id}/market_chart/range"] == 2 * 5  # 365 d / 90
        out = _run(duck_store, settings, now - dt.timedelta(days=1), hourly_update_step)
        # A coin new to the hourly universe gets its last 90 days in the daily run, not the plan's whole history.
        assert out.coins_ok == 2 and out.api_calls == 4
        assert 2 * 89 * 24 <= out.rows_written <= 2 * 92 * 24
        nxt = _run(duck_store, settings, now, hourly_update_step)
        assert nxt.api_calls == 2 and nxt.rows_written >= 2 * 23  # the daily run: one call per coin
        off = settings_for(srv.url, plan="demo", hourly_universe=0)
        assert _run(duck_store, off, now, hourly_update_step).status == "skipped"


def test_the_hourly_universe_follows_the_default_index_then_market_cap_rank(duck_store: Store) -> None:
    from kallos.ingest.hourly import hourly_universe

    coins = ["a", "b", "c", "d"]
    duck_store.upsert(
        "coins",
        pd.DataFrame({"coingecko_id": coins, "symbol": coins, "name": coins, "market_cap_rank": [1, 2, 3, 4]}),
    )
    rows = [("default", 2024, 1, "c", 1), ("default", 2024, 2, "d", 1), ("default", 2024, 2, "b", 2)]
    rows.append(("other", 2024, 3, "a", 1))
    duck_store.upsert(
        "index_monthly_constituents",
        pd.DataFrame(
            [
                {"index_name": n, "year": y, "month": m, "coin_id": c, "rank": r, "selection_date": "2024-01-31",
                 "market_cap": 1.0, "weight": 0.5}
                for n, y, m, c, r in rows
            ]
        ),
    )  # fmt: skip
    assert hourly_universe(duck_store, 3) == ["d", "b", "a"]  # the default index's latest month, then by rank
    assert hourly_universe(duck_store, 0) == []
