"""Pure transforms from API answers to frames: provisional split, candles by day, coin rows."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from kallos.coingecko.models import Candle, CoinDetail, CoinListItem, MarketChart
from kallos.ingest import frames

UTC = dt.UTC


def ms(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").timestamp() * 1000)


def test_trailing_now_point_is_provisional() -> None:
    chart = MarketChart.model_validate(
        {
            "prices": [[ms("2024-03-30"), 1.0], [ms("2024-03-31"), 2.0], [ms("2024-03-31 15:01:22"), 3.0]],
            "market_caps": [
                [ms("2024-03-30"), 10.0],
                [ms("2024-03-31"), 0.0],
                [ms("2024-03-31 15:01:22"), None],
            ],
            "total_volumes": [
                [ms("2024-03-30"), 5.0],
                [ms("2024-03-31"), 6.0],
                [ms("2024-03-31 15:01:22"), 7.0],
            ],
        }
    )
    frame = frames.chart_frame(chart)
    assert frame.columns.tolist() == ["snapped_at", "close", "market_cap", "volume"]
    final, provisional = frames.split_final(frame, dt.date(2024, 3, 31))
    assert final["close"].tolist() == [1.0, 2.0]
    assert provisional["close"].tolist() == [3.0]
    snaps = frames.snapshots_from_chart("bitcoin", provisional, "market_chart")
    assert snaps["fetched_at"].iloc[0] == pd.Timestamp("2024-03-31 15:01:22", tz="UTC")
    assert pd.isna(snaps["market_cap"].iloc[0])
    final, provisional = frames.split_final(frame, dt.date(2024, 3, 30))  # 03-31 not final yet
    assert final["close"].tolist() == [1.0] and len(provisional) == 2


def test_four_hour_candles_make_complete_days_only() -> None:
    # 4-hour candles closing from 2024-01-01 04:00 to 2024-01-03 00:00: day 01-02 complete, 01-03 complete,
    # nothing for 01-01 (its candles are missing) and the running candle of 01-03 04:00 ignored.
    closes = pd.date_range("2024-01-01 04:00", "2024-01-03 04:00", freq="4h", tz="UTC")
    candles = [
        Candle(
            ts=t.to_pydatetime(), open=float(i), high=float(i) + 0.5, low=float(i) - 0.5, close=float(i) + 0.1
        )
        for i, t in enumerate(closes)
    ]
    daily = frames.daily_candles(frames.candles_frame(candles))
    assert daily["date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-01-02", "2024-01-03"]
    day2 = daily.iloc[0]
    assert (day2["open"], day2["high"], day2["low"], day2["candle_close"]) == (0.0, 5.5, -0.5, 5.1)


def test_daily_candles_keep_their_close_day() -> None:
    candles = [
        Candle(ts=dt.datetime(2024, 1, d, tzinfo=UTC), open=1.0, high=2.0, low=0.5, close=1.5) for d in (2, 3)
    ]
    daily = frames.daily_candles(frames.candles_frame(candles))
    assert daily["date"].dt.day.tolist() == [2, 3]


def test_coin_rows_from_list_and_details() -> None:
    items = [
        CoinListItem(id="bitcoin", symbol="btc", name="Bitcoin", platforms={}, active=True),
        CoinListItem(
            id="old", symbol="btc", name="Old", platforms={"ethereum": "0xabc", "": ""}, active=False
        ),
        CoinListItem(id="bitcoin", symbol="btc", name="Bitcoin", platforms={}, active=False),
    ]
    rows = frames.coins_list_frame(items, dt.datetime(2024, 1, 1, tzinfo=UTC)).set_index("coingecko_id")
    assert rows.loc["bitcoin", "status"] == "active" and rows.loc["old", "status"] == "inactive"
    assert rows.loc["old", "platforms"] == '{"ethereum": "0xabc"}'
    detail = CoinDetail.model_validate(
        {
            "id": "bitcoin",
            "symbol": "btc",
            "name": "Bitcoin",
            "genesis_date": "2009-01-03",
            "hashing_algorithm": "SHA-256",
            "description": {"en": "Money."},
            "links": {"homepage": ["https://bitcoin.org", "", ""], "whitepaper": ""},
            "community_data": {"twitter_followers": None, "reddit_subscribers": 0, "facebook_likes": None},
            "developer_data": {"forks": 1, "stars": 2},
        }
    )
    row = frames.detail_row(detail, dt.datetime(2024, 1, 1, tzinfo=UTC))
    assert row["description"] == "Money." and row["genesis_date"] == pd.Timestamp("2009-01-03")
    assert row["links"] == '{"homepage": ["https://bitcoin.org"], "whitepaper": ""}'
    assert row["community_data"] is None
    assert row["developer_data"] == '{"forks": 1, "stars": 2}'
    assert frames.slug("Layer 1 (L1)") == "layer-1-l1"
