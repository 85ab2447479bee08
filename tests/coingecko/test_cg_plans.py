"""Plan rules as pure functions: hosts, headers, history window, granularity, chunking, call estimates."""

from __future__ import annotations

import datetime as dt

import pytest

from kallos.coingecko import plans
from kallos.errors import BadRequestError, ConfigError, PlanLimitError

UTC = dt.UTC
NOW = dt.datetime(2024, 12, 31, 15, 0, tzinfo=UTC)


def test_hosts_and_key_headers() -> None:
    assert plans.base_url("public") == "https://api.coingecko.com/api/v3"
    assert plans.base_url("demo") == "https://api.coingecko.com/api/v3"
    assert plans.base_url("pro") == "https://pro-api.coingecko.com/api/v3"
    assert plans.base_url("pro", "http://127.0.0.1:9999/api/v3/") == "http://127.0.0.1:9999/api/v3"
    assert plans.get_plan("demo").headers("k1") == {"x-cg-demo-api-key": "k1"}
    assert plans.get_plan("pro").headers("k2") == {"x-cg-pro-api-key": "k2"}
    assert plans.get_plan("public").headers("k3") == {}
    with pytest.raises(ConfigError, match="KALLOS_COINGECKO_PLAN"):
        plans.get_plan("enterprise")


def test_history_window_and_clamp() -> None:
    assert plans.earliest_allowed("pro", NOW) is None
    assert plans.earliest_allowed("demo", NOW) == NOW - dt.timedelta(days=365)
    start, end = plans.clamp_range("demo", dt.datetime(2020, 1, 1, tzinfo=UTC), dt.datetime(2030, 1, 1), NOW)  # type: ignore[misc]
    assert start == NOW - dt.timedelta(days=364) and end == NOW
    assert plans.clamp_range("demo", dt.datetime(2020, 1, 1), dt.datetime(2020, 2, 1), NOW) is None
    assert (
        plans.clamp_range("pro", dt.datetime(2010, 1, 1), dt.datetime(2014, 1, 1), NOW)[0]
        == plans.PRO_DATA_START
    )  # type: ignore[index]
    plans.check_days_allowed("pro", "max")
    plans.check_days_allowed("demo", 365)
    with pytest.raises(PlanLimitError, match="past 365 days"):
        plans.check_days_allowed("demo", "max")
    with pytest.raises(PlanLimitError):
        plans.check_days_allowed("public", 366)


@pytest.mark.parametrize(
    ("days", "interval", "expected"),
    [
        (1, None, "5m"),
        (0.5, None, "5m"),
        (2, None, "hourly"),
        (90, None, "hourly"),
        (91, None, "daily"),
        ("max", None, "daily"),
        (30, "daily", "daily"),
    ],
)
def test_market_chart_granularity(days: object, interval: str | None, expected: str) -> None:
    assert plans.market_chart_granularity(days, interval) == expected  # type: ignore[arg-type]


def test_range_granularity_cliff_at_90_days() -> None:
    end = dt.datetime(2024, 6, 1, tzinfo=UTC)
    assert plans.market_chart_range_granularity(end - dt.timedelta(days=90), end, NOW) == "hourly"
    assert plans.market_chart_range_granularity(end - dt.timedelta(days=91), end, NOW) == "daily"
    assert plans.market_chart_range_granularity(end - dt.timedelta(days=1), end, NOW) == "hourly"
    assert plans.market_chart_range_granularity(NOW - dt.timedelta(days=1), NOW, NOW) == "5m"
    assert plans.market_chart_range_granularity(end - dt.timedelta(days=5), end, NOW, "daily") == "daily"


def test_ohlc_rules() -> None:
    assert plans.ohlc_candle(1) == dt.timedelta(minutes=30)
    assert plans.ohlc_candle(7) == dt.timedelta(hours=4)
    assert plans.ohlc_candle(30) == dt.timedelta(hours=4)
    assert plans.ohlc_candle(90) == dt.timedelta(days=4)
    assert plans.ohlc_candle("max") == dt.timedelta(days=4)
    assert plans.ohlc_candle(90, "daily") == dt.timedelta(days=1)
    with pytest.raises(BadRequestError, match="days in 1, 7"):
        plans.check_ohlc_days(4)
    with pytest.raises(BadRequestError):
        plans.check_ohlc_days(365, "daily")
    with pytest.raises(BadRequestError):
        plans.check_ohlc_days(180, "hourly")


def test_ohlc_range_is_paid_and_bounded() -> None:
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    plans.check_ohlc_range("pro", start, start + dt.timedelta(days=180), "daily")
    with pytest.raises(PlanLimitError, match="paid plan"):
        plans.check_ohlc_range("demo", start, start + dt.timedelta(days=10), "daily")
    with pytest.raises(BadRequestError, match="chunk_range"):
        plans.check_ohlc_range("pro", start, start + dt.timedelta(days=32), "hourly")


def test_chunk_range_covers_without_gaps() -> None:
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    end = start + dt.timedelta(days=400)
    chunks = list(plans.chunk_range(start, end, dt.timedelta(days=180)))
    assert chunks[0][0] == start and chunks[-1][1] == end
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:], strict=False))
    assert all(b - a <= dt.timedelta(days=180) for a, b in chunks)
    assert len(chunks) == plans.ohlc_range_calls(start, end, "daily") == 3
    assert list(plans.chunk_range(end, start, dt.timedelta(days=1))) == []


def test_call_estimates() -> None:
    start = dt.datetime(2023, 1, 1, tzinfo=UTC)
    end = dt.datetime(2024, 1, 1, tzinfo=UTC)
    assert plans.chart_range_calls(start, end, "daily") == 1
    assert plans.chart_range_calls(start, end, "hourly") == 5  # 365 / 90 -> 5 windows
    assert plans.chart_range_calls(end, start) == 0
    assert plans.markets_pages(1000) == 4
    assert plans.markets_pages(250) == 1
    assert plans.markets_pages(0) == 0
    assert plans.minutes_for(60, 30) == 2.0
    assert plans.credits_for(200) == 1 and plans.credits_for(429) == 0
    with pytest.raises(BadRequestError):
        plans.markets_pages(10, per_page=251)
