"""Ingestion reads chart and candle answers as arrays (docs/decisions.md#D115): a malformed answer fails its coin
alone, naming the coin and the endpoint, and the rerun converges to the clean run."""

from __future__ import annotations

import datetime as dt

import pytest

from kallos import clock
from kallos.fake import FakeCoinGecko, Faults
from kallos.fake.testing import small_market
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
