"""market_chart granularity by span, the trailing "now" point, and the ohlc whitelist and candle sizes."""

from __future__ import annotations

import datetime as dt

import httpx
import numpy as np
import pytest

from kallos.fake import FakeCoinGecko
from kallos.fake.dataset import DAY_MS, HOUR_MS, datetime_to_ms

FIVE_MIN = 300_000


def _now_ms(srv: FakeCoinGecko) -> int:
    return datetime_to_ms(srv.now)


def _steps(points: list[list[float]]) -> np.ndarray:
    ts = np.array([p[0] for p in points[:-1]], dtype=np.int64)  # without the trailing "now" point
    return np.diff(ts // 1000 * 1000)


def chart(client: httpx.Client, coin: str = "bitcoin", **params: str) -> dict[str, list[list[float]]]:
    resp = client.get(f"/coins/{coin}/market_chart", params={"vs_currency": "usd", **params})
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.mark.parametrize(
    ("days", "step", "count"),
    [
        ("1", FIVE_MIN, 288),
        ("0.5", FIVE_MIN, 144),
        ("2", HOUR_MS, 48),
        ("30", HOUR_MS, 720),
        ("90", HOUR_MS, 2160),
    ],
)
def test_intraday_granularity_by_days(
    pro: httpx.Client, pro_server: FakeCoinGecko, days: str, step: int, count: int
) -> None:
    prices = chart(pro, days=days)["prices"]
    now = _now_ms(pro_server)
    assert prices[-1][0] == now  # the trailing "now" point
    grid = np.array([p[0] for p in prices[:-1]]) // step * step
    assert np.all(np.diff(grid) == step)
    assert abs(len(prices) - 1 - count) <= 1
    # Intraday stamps are jittered like the real ones, never in the future.
    assert any(p[0] % step for p in prices[:-1]) and all(p[0] <= now for p in prices)


@pytest.mark.parametrize("days", ["91", "365", "max"])
def test_daily_granularity_at_midnight_plus_now(
    pro: httpx.Client, pro_server: FakeCoinGecko, days: str
) -> None:
    data = chart(pro, days=days)
    prices = data["prices"]
    now = _now_ms(pro_server)
    assert prices[-1][0] == now
    assert all(p[0] % DAY_MS == 0 for p in prices[:-1])
    assert prices[-2][0] // DAY_MS == now // DAY_MS  # the last midnight and "now" share a UTC date
    if days != "max":
        assert len(prices) - 1 == int(days)
    assert len(data["market_caps"]) == len(prices) == len(data["total_volumes"])


def test_interval_daily_overrides_and_hourly_is_paid_only(pro: httpx.Client, market) -> None:
    prices = chart(pro, days="30", interval="daily")["prices"]
    assert len(prices) == 31 and all(p[0] % DAY_MS == 0 for p in prices[:-1])
    hourly = chart(pro, days="100", interval="hourly")["prices"]
    assert np.all(np.diff(np.array([p[0] for p in hourly[:-1]]) // HOUR_MS) == 1)
    with FakeCoinGecko(dataset=market, plan="demo") as demo:
        resp = httpx.get(
            f"{demo.url}/coins/bitcoin/market_chart",
            params={"vs_currency": "usd", "days": "30", "interval": "hourly"},
            headers={"x-cg-demo-api-key": "d"},
        )
        assert resp.status_code == 401 and resp.json()["status"]["error_code"] == 10005


def test_daily_values_are_the_dataset_closes_and_intraday_passes_through_them(
    pro: httpx.Client, market
) -> None:
    daily = chart(pro, days="200")["prices"][:-1]
    c = market.coin("bitcoin")
    for ts, price in daily[-5:]:
        k = ts // DAY_MS - market.start_day
        assert price == market.price[c, k]
    hourly = chart(pro, days="10")["prices"][:-1]
    at_midnight = [p for p in hourly if p[0] // HOUR_MS * HOUR_MS % DAY_MS == 0]
    by_day = {ts // DAY_MS * DAY_MS: price for ts, price in daily}
    assert at_midnight and all(by_day[ts // DAY_MS * DAY_MS] == price for ts, price in at_midnight)


def test_range_granularity_by_span(pro: httpx.Client, pro_server: FakeCoinGecko) -> None:
    now = _now_ms(pro_server) // 1000

    def rng(frm: int, to: int, **extra: str) -> list[list[float]]:
        resp = pro.get(
            "/coins/bitcoin/market_chart/range",
            params={"vs_currency": "usd", "from": str(frm), "to": str(to), **extra},
        )
        assert resp.status_code == 200, resp.text
        return resp.json()["prices"]

    five = rng(now - 86_400, now)  # one day ending now -> 5-minutely
    assert np.median(np.diff([p[0] for p in five])) < 10 * 60_000
    old_day = rng(now - 40 * 86_400, now - 39 * 86_400)  # one day elsewhere -> hourly
    assert 23 <= len(old_day) <= 25
    ninety = rng(now - 90 * 86_400, now - 86_400)
    assert np.median(np.diff([p[0] for p in ninety])) == pytest.approx(HOUR_MS, rel=0.2)
    daily = rng(now - 91 * 86_400 - 3600, now - 86_400)  # just over 90 days: the cliff to daily
    assert all(p[0] % DAY_MS == 0 for p in daily) and 90 <= len(daily) <= 92
    # Points on the boundaries are included; to < now means no "now" point.
    start = (now - 200 * 86_400) // 86_400 * 86_400
    bounded = rng(start, start + 100 * 86_400)
    assert bounded[0][0] == start * 1000 and bounded[-1][0] == (start + 100 * 86_400) * 1000
    iso = pro.get(
        "/coins/bitcoin/market_chart/range",
        params={
            "vs_currency": "usd",
            "from": dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%d"),
            "to": dt.datetime.fromtimestamp(start + 100 * 86_400, dt.UTC).strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert iso.json()["prices"] == bounded


@pytest.mark.parametrize(
    ("days", "size"),
    [
        ("1", 30 * 60_000),
        ("7", 4 * HOUR_MS),
        ("14", 4 * HOUR_MS),
        ("30", 4 * HOUR_MS),
        ("90", 4 * DAY_MS),
        ("180", 4 * DAY_MS),
        ("365", 4 * DAY_MS),
        ("max", 4 * DAY_MS),
    ],
)
def test_ohlc_candle_sizes(pro: httpx.Client, pro_server: FakeCoinGecko, days: str, size: int) -> None:
    rows = pro.get("/coins/bitcoin/ohlc", params={"vs_currency": "usd", "days": days}).json()
    closes = np.array([r[0] for r in rows])
    assert np.all(np.diff(closes) == size) and np.all(closes % size == 0)
    now = _now_ms(pro_server)
    assert closes[-1] >= now > closes[-1] - size  # the running candle closes at its boundary
    if days != "max":
        assert closes[0] - size >= now - int(days) * DAY_MS
    for _, o, h, low, c in rows:
        assert low <= min(o, c) and h >= max(o, c)


@pytest.mark.parametrize("days", ["2", "3", "4", "60", "366", "0", "abc"])
def test_ohlc_days_whitelist(pro: httpx.Client, days: str) -> None:
    resp = pro.get("/coins/bitcoin/ohlc", params={"vs_currency": "usd", "days": days})
    assert resp.status_code == 400 and "error" in resp.json()


def test_ohlc_daily_candles_agree_with_the_chart(pro: httpx.Client) -> None:
    candles = pro.get(
        "/coins/bitcoin/ohlc", params={"vs_currency": "usd", "days": "30", "interval": "daily"}
    ).json()
    closes = {p[0]: p[1] for p in chart(pro, days="60", interval="daily")["prices"][:-1]}
    full = [c for c in candles if c[0] in closes]
    assert len(full) >= 28
    for ts, o, _, _, c in full:
        assert c == closes[ts] and o == closes[ts - DAY_MS]
    hourly = pro.get(
        "/coins/bitcoin/ohlc", params={"vs_currency": "usd", "days": "7", "interval": "hourly"}
    ).json()
    assert np.all(np.diff([r[0] for r in hourly]) == HOUR_MS)
    four_day = pro.get("/coins/bitcoin/ohlc", params={"vs_currency": "usd", "days": "90"}).json()
    for ts, _, h, low, _ in four_day[:-1]:
        days = [candles_by for candles_by in candles if ts - 4 * DAY_MS < candles_by[0] <= ts]
        if len(days) == 4:
            assert h == max(d[2] for d in days) and low == min(d[3] for d in days)


def test_ohlc_interval_rules(pro: httpx.Client) -> None:
    bad = pro.get("/coins/bitcoin/ohlc", params={"vs_currency": "usd", "days": "365", "interval": "daily"})
    assert bad.status_code == 400
    bad = pro.get("/coins/bitcoin/ohlc", params={"vs_currency": "usd", "days": "180", "interval": "hourly"})
    assert bad.status_code == 400


def test_ohlc_range_pro_only_with_limits(pro: httpx.Client, pro_server: FakeCoinGecko, market) -> None:
    now = _now_ms(pro_server) // 1000
    day0 = now // 86_400 * 86_400
    rows = pro.get(
        "/coins/bitcoin/ohlc/range",
        params={"vs_currency": "usd", "from": str(day0 - 100 * 86_400), "to": str(day0), "interval": "daily"},
    ).json()
    assert len(rows) == 100 and rows[-1][0] == day0 * 1000
    hourly = pro.get(
        "/coins/bitcoin/ohlc/range",
        params={"vs_currency": "usd", "from": str(day0 - 2 * 86_400), "to": str(day0), "interval": "hourly"},
    ).json()
    assert len(hourly) == 48
    too_long = pro.get(
        "/coins/bitcoin/ohlc/range",
        params={"vs_currency": "usd", "from": str(day0 - 200 * 86_400), "to": str(day0), "interval": "daily"},
    )
    assert too_long.status_code == 400
    with FakeCoinGecko(dataset=market, plan="demo") as demo:
        resp = httpx.get(
            f"{demo.url}/coins/bitcoin/ohlc/range",
            headers={"x-cg-demo-api-key": "d"},
            params={"vs_currency": "usd", "from": str(day0 - 86_400), "to": str(day0), "interval": "daily"},
        )
        assert resp.status_code == 401
        assert resp.json() == {
            "status": {"error_code": 10005, "error_message": "This request is limited Pro API subscribers"}
        }
