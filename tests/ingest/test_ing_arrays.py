"""Ingestion reads chart and candle answers as arrays (docs/decisions.md#D115): a malformed answer fails its coin
alone, naming the coin and the endpoint, and the rerun converges to the clean run."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from kallos import clock
from kallos.coingecko.arrays import CandleArrays, parse_candles, parse_chart
from kallos.fake import FakeCoinGecko, Faults
from kallos.fake.testing import small_market
from kallos.ingest import frames
from kallos.ingest.backfill import backfill
from kallos.ingest.universe import sync_universe
from kallos.store import Store

from .helpers import run_with_client, settings_for

COINS = ["bitcoin", "ethereum"]
SINCE = dt.date(2024, 6, 1)


def bars(store: Store) -> dict[str, int]:
    frame = store.query(
        "SELECT c.coingecko_id AS coin, count(*) AS n, count(d.open) AS candles FROM daily_market_data d "
        "JOIN coins c ON c.coin_id = d.coin_id GROUP BY c.coingecko_id"
    )
    return {r.coin: (int(r.n), int(r.candles)) for r in frame.itertuples(index=False)}


@pytest.mark.parametrize(
    ("path", "fault", "bad", "endpoint", "message"),
    [
        ("/coins/bitcoin/market_chart", "malformed_point", ["x", 1.0], "market_chart/range", "the timestamp 'x'"),
        ("/coins/bitcoin/market_chart", "malformed_series", "n/a", "market_chart/range", "prices: expected a list"),
        ("/coins/bitcoin/ohlc", "malformed_point", [1, 2.0], "ohlc/range", "expected [timestamp_ms, open, high"),
    ],
)
def test_a_malformed_answer_fails_its_coin_naming_coin_and_endpoint(
    duck_store: Store, path: str, fault: str, bad: object, endpoint: str, message: str
) -> None:
    faults = Faults(script=[fault], paths=(path,), malformed_point=bad, malformed_series=bad)
    with FakeCoinGecko(dataset=small_market(), plan="pro", faults=faults) as srv:
        clock.set_now(srv.now)
        settings = settings_for(srv.url)
        run_with_client(settings, lambda cg: sync_universe(duck_store, cg, settings))
        first = run_with_client(settings, lambda cg: backfill(duck_store, cg, settings, coins=COINS, since=SINCE))
        assert first["status"] == "partial" and list(first["failed"]) == ["bitcoin"]
        reason = first["failed"]["bitcoin"]
        assert f"/coins/{{id}}/{endpoint}" in reason and "coin_id=bitcoin" in reason and message in reason
        assert set(bars(duck_store)) == {"ethereum"}  # nothing of the failed coin is stored
        again = run_with_client(settings, lambda cg: backfill(duck_store, cg, settings, coins=COINS, since=SINCE))
        assert again["status"] == "success" and not again["failed"]
    stored = bars(duck_store)
    days = (clock.last_final_day(srv.now) - SINCE).days + 1
    assert stored["bitcoin"][0] == stored["ethereum"][0] == days
    assert stored["bitcoin"][1] > 0 and stored["bitcoin"][1] == stored["ethereum"][1]


def test_daily_candles_and_attach_on_real_answers() -> None:
    """`ohlc/range` daily candles (one closing each day at 00:00) become one candle a day as they are, and each
    chart row gets the candle of its day; a repeated day keeps its last candle; candles with no row are counted."""
    fake = FakeCoinGecko(dataset=small_market(), plan="pro", api_key="k")
    end = int(dt.datetime(2024, 12, 1, tzinfo=dt.UTC).timestamp())

    def get(path: str, **params: object) -> object:
        answer = fake.answer(
            f"/api/v3/coins/bitcoin/{path}",
            {"vs_currency": "usd", **{k: str(v) for k, v in params.items()}},
            {"x-cg-pro-api-key": "k"},
        )
        return json.loads(answer.payload)

    chunks = [(end - 360 * 86400, end - 180 * 86400), (end - 180 * 86400 + 86400, end)]
    candles = CandleArrays.concat(
        [parse_candles(get("ohlc/range", **{"from": a, "to": b, "interval": "daily"})) for a, b in chunks]
    )
    raw = frames.candles_frame(candles)
    daily = frames.daily_candles(raw)
    assert len(daily) == len(raw) > 300
    assert (daily["date"].to_numpy() == raw["snapped_at"].dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")).all()
    assert np.array_equal(daily["open"].to_numpy(), candles.open)

    chart = frames.chart_frame(parse_chart(get("market_chart/range", **{"from": end - 200 * 86400, "to": end})))
    repeated = pd.concat([daily, daily.iloc[[-5]].assign(open=123.0)], ignore_index=True)
    bars, unmatched = frames.attach_candles(chart, repeated)
    assert unmatched == len(daily) - 200  # the candles older than the chart's 200 days (today's has no candle yet)
    by_day = daily.set_index("date")
    day = chart["snapped_at"].iloc[10].tz_localize(None)
    assert bars["high"].iloc[10] == by_day.loc[day, "high"] and bars["low"].iloc[10] == by_day.loc[day, "low"]
    fifth_last = daily["date"].iloc[-5]
    assert bars.loc[chart["snapped_at"].dt.tz_localize(None) == fifth_last, "open"].tolist() == [123.0]
    gap, _ = frames.attach_candles(chart, daily[daily["date"] != day])
    assert np.isnan(gap[["open", "high", "low"]].iloc[10]).all() and not np.isnan(gap["open"].iloc[11])
