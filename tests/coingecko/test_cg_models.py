"""Typed models parse recorded real responses; every timestamp comes out aware UTC."""

from __future__ import annotations

import datetime as dt
import json

from kallos.coingecko.models import Category as CategoryModel
from kallos.coingecko.models import (
    CoinDetail,
    CoinListItem,
    KeyInfo,
    MarketChart,
    MarketRow,
    parse_ohlc,
    to_utc_datetime,
)

UTC = dt.UTC


def test_market_chart_daily_from_recording(cassettes) -> None:  # type: ignore[no-untyped-def]
    body = json.loads(cassettes.first("daily_historical_prices_for_one_coin").body)
    chart = MarketChart.model_validate(body)
    assert len(chart.prices) == len(body["prices"]) > 80
    first = chart.prices[0]
    assert first.ts == dt.datetime(2021, 2, 15, tzinfo=UTC)  # 1613347200000 ms
    assert first.value == body["prices"][0][1]
    assert all(p.ts.tzinfo is UTC for p in chart.prices)
    rows = chart.rows()
    assert [r["ts"] for r in rows] == sorted(r["ts"] for r in rows)
    assert rows[0]["market_cap"] == body["market_caps"][0][1]


def test_ohlc_from_recording(cassettes) -> None:  # type: ignore[no-untyped-def]
    body = json.loads(cassettes.first("ohlc_data_for_one_coin_in_the_last_7_days").body)
    candles = parse_ohlc(body)
    assert len(candles) == len(body)
    assert candles[0].ts == dt.datetime(2021, 5, 8, 20, 0, tzinfo=UTC)  # 1620504000000: a 4-hour close
    assert (candles[0].open, candles[0].high, candles[0].low, candles[0].close) == tuple(body[0][1:5])
    assert candles[1].ts - candles[0].ts == dt.timedelta(hours=4)


def test_markets_from_recording(cassettes) -> None:  # type: ignore[no-untyped-def]
    body = json.loads(cassettes.first("market_data_for_multiple_coins_in_eth").body)
    rows = [MarketRow.model_validate(r) for r in body]
    assert {r.id for r in rows} == {"bitcoin", "ethereum"}
    btc = next(r for r in rows if r.id == "bitcoin")
    assert btc.last_updated is not None and btc.last_updated.tzinfo == UTC
    assert btc.ath_date is not None and btc.ath_date.tzinfo == UTC
    # Unknown fields survive (field drift), so the raw payload can still be archived.
    assert btc.model_dump()["symbol"] == "btc"


def test_coins_list_and_categories_from_recording(cassettes) -> None:  # type: ignore[no-untyped-def]
    coins = [
        CoinListItem.model_validate(r) for r in json.loads(cassettes.first("the_list_supported_coins").body)
    ]
    assert len(coins) > 5000 and any(c.id == "bitcoin" for c in coins)
    cats = [
        CategoryModel.model_validate(r)
        for r in json.loads(cassettes.first("the_list_of_categories_with_market_data").body)
    ]
    assert cats[0].id == "exchange-based-tokens"
    assert cats[0].updated_at == dt.datetime(2021, 5, 16, 8, 20, 23, 151000, tzinfo=UTC)


def test_coin_detail_from_recording(cassettes) -> None:  # type: ignore[no-untyped-def]
    coin = CoinDetail.model_validate(json.loads(cassettes.first("a_coins_complete_current_data").body))
    assert coin.id == "bitcoin" and coin.genesis_date == dt.date(2009, 1, 3)
    assert coin.platforms == {}  # the native coin's {"": ""} is dropped
    assert coin.market_value("current_price", "usd") and coin.market_value("market_cap") is not None
    assert coin.last_updated is not None and coin.last_updated.tzinfo == UTC


def test_documented_shapes() -> None:
    info = KeyInfo.model_validate(
        {
            "plan": "Other",
            "rate_limit_request_per_minute": 1000,
            "monthly_call_credit": 1000000,
            "current_total_monthly_calls": 104,
            "current_remaining_monthly_calls": 999896,
        }
    )
    assert info.rate_limit == 1000
    newer = KeyInfo.model_validate(
        {"rate_limit_request_per_minute": 1000, "api_key_rate_limit_request_per_minute": 250}
    )
    assert newer.rate_limit == 250
    chart = MarketChart.model_validate(
        {"prices": [[1491091200000, 1.0]], "market_caps": [[1491091200000, None]], "total_volumes": []}
    )
    assert chart.market_caps[0].value is None
    assert to_utc_datetime("2024-04-07T16:49:31.736Z") == dt.datetime(
        2024, 4, 7, 16, 49, 31, 736000, tzinfo=UTC
    )
    assert to_utc_datetime("2024-04-07T18:49:31+02:00") == dt.datetime(2024, 4, 7, 16, 49, 31, tzinfo=UTC)
    assert to_utc_datetime(1712512855) == dt.datetime(2024, 4, 7, 18, 0, 55, tzinfo=UTC)
