"""Every endpoint answers with the field sets of the real, recorded responses (../shared/data cassettes)."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from .cassettes import SHARED_DATA, load_cassette

# Fields CoinGecko removed from /coins/{id} after the 2021 recordings (docs/decisions.md (C-API.4) and §3.12).
REMOVED_SINCE_2021 = {
    "coingecko_rank",
    "coingecko_score",
    "developer_score",
    "community_score",
    "liquidity_score",
    "public_interest_score",
    "public_interest_stats",
}


def _first_ok(name: str) -> object:
    return next(i["json"] for i in load_cassette(name) if i["status"] == 200)


def test_markets_rows_have_the_recorded_fields(pro: httpx.Client) -> None:
    recorded = _first_ok("market_data_for_a_coin")
    ours = pro.get("/coins/markets", params={"vs_currency": "usd", "ids": "bitcoin, ethereum"}).json()
    assert [row["id"] for row in ours] == ["bitcoin", "ethereum"]
    assert set(ours[0]) == set(recorded[0])
    for key in ("current_price", "market_cap", "total_volume", "high_24h", "ath"):
        assert isinstance(ours[0][key], int | float)
    assert ours[0]["ath_date"].endswith("Z") and ours[0]["last_updated"].endswith("Z")


def test_markets_rows_match_the_2025_response(pro: httpx.Client) -> None:
    path = SHARED_DATA / "coingecko_api_markets_RozanovIgor" / "coins_markets.json"
    if not path.exists():
        pytest.skip(f"real /coins/markets sample not available at {path}")
    recorded = json.loads(path.read_text())
    ours = pro.get("/coins/markets", params={"vs_currency": "eur", "per_page": 20}).json()
    assert len(ours) == 20
    assert {k for row in ours for k in row} == {k for row in recorded for k in row}


def test_price_change_percentage_adds_in_currency_keys(pro: httpx.Client) -> None:
    row = pro.get(
        "/coins/markets",
        params={"vs_currency": "usd", "ids": "bitcoin", "price_change_percentage": "1h,24h,7d,1y"},
    ).json()[0]
    for tf in ("1h", "24h", "7d", "1y"):
        assert isinstance(row[f"price_change_percentage_{tf}_in_currency"], float)
    spark = pro.get(
        "/coins/markets", params={"vs_currency": "usd", "ids": "bitcoin", "sparkline": "true"}
    ).json()
    assert len(spark[0]["sparkline_in_7d"]["price"]) == 168


def test_coins_list_shape(pro: httpx.Client) -> None:
    recorded = _first_ok("the_list_of_supported_coins")
    ours = pro.get("/coins/list").json()
    assert set(ours[0]) == set(recorded[0]) == {"id", "symbol", "name"}
    assert [c["id"] for c in ours] == sorted(c["id"] for c in ours)
    with_platforms = pro.get("/coins/list", params={"include_platform": "true"}).json()
    assert all(set(c) == {"id", "symbol", "name", "platforms"} for c in with_platforms)
    weth = next(c for c in with_platforms if c["id"] == "weth")
    assert weth["platforms"]["ethereum"].startswith("0x")


def test_coin_detail_has_the_recorded_fields(pro: httpx.Client) -> None:
    recorded = _first_ok("a_coins_complete_current_data")
    ours = pro.get("/coins/bitcoin").json()
    assert set(recorded) - REMOVED_SINCE_2021 <= set(ours)
    assert set(recorded["market_data"]) <= set(ours["market_data"])
    assert set(recorded["community_data"]) == set(ours["community_data"])
    assert set(recorded["developer_data"]) == set(ours["developer_data"])
    assert set(recorded["links"]) <= set(ours["links"])
    assert set(recorded["image"]) == set(ours["image"])
    assert set(recorded["tickers"][0]) <= set(ours["tickers"][0])
    assert set(recorded["market_data"]["current_price"]) & set(ours["market_data"]["current_price"]) >= {
        "usd",
        "eur",
    }


def test_coin_detail_flags_drop_sections(pro: httpx.Client) -> None:
    lean = pro.get(
        "/coins/bitcoin",
        params={
            "localization": "false",
            "tickers": "false",
            "community_data": "false",
            "developer_data": "false",
        },
    ).json()
    assert "tickers" not in lean and "localization" not in lean
    assert "community_data" not in lean and "developer_data" not in lean
    assert set(lean["description"]) == {"en"}
    assert "market_data" in lean
    no_market = pro.get("/coins/bitcoin", params={"market_data": "false"}).json()
    assert "market_data" not in no_market and "localization" in no_market


@pytest.mark.parametrize(
    "cassette",
    [
        "daily_historical_prices_for_one_coin",
        "hourly_historical_prices_for_one_coin",
        "minutely_historical_prices_for_one_coin",
    ],
)
def test_market_chart_shape(pro: httpx.Client, cassette: str) -> None:
    recorded = next(i for i in load_cassette(cassette) if i["status"] == 200)
    query = dict(parse_qsl(urlsplit(recorded["uri"]).query))  # replay the recorded request
    ours = pro.get("/coins/bitcoin/market_chart", params=query).json()
    assert set(ours) == set(recorded["json"])
    for key in ours:
        assert all(len(p) == 2 and isinstance(p[0], int) for p in ours[key])
        assert [p[0] for p in ours[key]] == [p[0] for p in ours["prices"]]
    # The recorded answers and ours have about as many points for the same request.
    assert abs(len(ours["prices"]) - len(recorded["json"]["prices"])) <= 3


@pytest.mark.parametrize(
    ("cassette", "days", "vs"),
    [
        ("ohlc_data_for_one_coin_in_the_last_7_days", "7", "usd"),
        ("ohlc_data_for_one_coin_in_the_last_30_days_in_myr", "30", "myr"),
    ],
)
def test_ohlc_shape_and_count(pro: httpx.Client, cassette: str, days: str, vs: str) -> None:
    recorded = _first_ok(cassette)
    ours = pro.get("/coins/bitcoin/ohlc", params={"vs_currency": vs, "days": days}).json()
    assert all(len(row) == 5 for row in ours)
    assert len(ours) == len(recorded)
    assert [b[0] - a[0] for a, b in zip(ours, ours[1:], strict=False)] == [
        b[0] - a[0] for a, b in zip(recorded, recorded[1:], strict=False)
    ]


def test_categories_shapes(pro: httpx.Client) -> None:
    listed = _first_ok("the_list_of_categories")
    ours = pro.get("/coins/categories/list").json()
    assert set(ours[0]) == set(listed[0]) == {"category_id", "name"}
    assert {"stablecoins", "wrapped-tokens", "liquid-staking-tokens"} <= {c["category_id"] for c in ours}
    with_data = _first_ok("the_list_of_categories_with_market_data")
    ours_data = pro.get("/coins/categories").json()
    assert set(with_data[0]) <= set(ours_data[0])
    assert {"top_3_coins_id", "top_3_coins", "content"} <= set(ours_data[0])
    caps = [c["market_cap"] for c in ours_data if c["market_cap"] is not None]
    assert caps == sorted(caps, reverse=True)


def test_history_shape(pro: httpx.Client) -> None:
    recorded = _first_ok("historical_price_for_one_coin_at_a_previous_date")
    ours = pro.get("/coins/bitcoin/history", params={"date": "30-12-2023"}).json()
    assert set(ours) == set(recorded)
    assert set(ours["market_data"]) == set(recorded["market_data"])
    iso = pro.get("/coins/bitcoin/history", params={"date": "2023-12-30"}).json()
    assert iso["market_data"] == ours["market_data"]


def test_error_bodies_match_the_recordings(pro: httpx.Client) -> None:
    missing = next(i for i in load_cassette("market_data_for_a_coin") if i["status"] == 422)
    resp = pro.get("/coins/markets")
    assert (resp.status_code, resp.json()) == (422, missing["json"])
    resp = pro.get("/coins/bitcoin/market_chart", params={"days": "1"})
    assert (resp.status_code, resp.json()) == (422, {"error": "Missing parameter vs_currency"})
    resp = pro.get("/coins/no-such-coin/market_chart", params={"vs_currency": "usd", "days": "1"})
    assert (resp.status_code, resp.json()) == (404, {"error": "coin not found"})
    resp = pro.get("/coins/markets", params={"vs_currency": "usdt"})
    assert (resp.status_code, resp.json()) == (400, {"error": "invalid vs_currency"})


def test_every_answer_carries_the_fake_now(pro: httpx.Client, pro_server) -> None:
    for path in ("/ping", "/coins/list", "/coins/nope"):
        assert pro.get(path).headers["x-fake-now"] == pro_server.now_header
    assert pro.get("/ping").json()["fake_now"] == pro_server.now_header


def test_global_shape(pro: httpx.Client) -> None:
    recorded = _first_ok("global_crypto_data")
    ours = pro.get("/global").json()
    assert set(ours) == {"data"} and set(recorded["data"]) <= set(ours["data"])
    assert isinstance(ours["data"]["updated_at"], int)  # seconds, unlike the charts' milliseconds


def test_bad_times_are_400_not_crashes(pro: httpx.Client) -> None:
    for frm in ("1e20", "nan", "yesterday"):
        resp = pro.get(
            "/coins/bitcoin/market_chart/range", params={"vs_currency": "usd", "from": frm, "to": "1"}
        )
        assert resp.status_code == 400 and resp.json() == {"error": "invalid from"}


def test_clock_with_milliseconds_is_reported_exactly(market) -> None:
    import datetime as dt

    from kallos.fake import FakeCoinGecko

    now = dt.datetime(2024, 3, 1, 12, 0, 0, 250_000, tzinfo=dt.UTC)
    with FakeCoinGecko(dataset=market, plan="public", now=now) as srv:
        resp = httpx.get(f"{srv.url}/ping")
        assert resp.headers["x-fake-now"] == resp.json()["fake_now"] == "2024-03-01T12:00:00.250Z"
        assert dt.datetime.fromisoformat(resp.headers["x-fake-now"]) == now
