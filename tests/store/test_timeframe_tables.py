"""Hourly and weekly tables on every layout: keys by the UTC hour, monthly partitions made on demand, reads by
instant."""

from __future__ import annotations

import pandas as pd

from kallos.store import Store


def test_hourly_bars_round_trip_on_every_layout(any_layout_store: Store) -> None:
    store = any_layout_store
    store.upsert("coins", pd.DataFrame({"coingecko_id": ["a"], "symbol": ["a"], "name": ["a"]}))
    hours = pd.date_range("2023-01-31T20:00", periods=8, freq="h", tz="UTC")  # crosses a month boundary
    bars = pd.DataFrame({"coin_id": "a", "hour": hours, "close": range(1, 9), "volume": 1.0})
    assert store.upsert("hourly_market_data", bars) == 8
    assert store.upsert("hourly_market_data", bars) == 0  # equal rows are not rewritten
    got = store.read("hourly_market_data", start=pd.Timestamp("2023-02-01T00:00Z"))
    assert list(got["hour"]) == list(hours[4:]) and list(got["close"]) == [5.0, 6.0, 7.0, 8.0]
    if store.backend == "postgresql":
        partitions = set(
            store.query(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'hourly_market_data' "
                "AND c.relnamespace = p.relnamespace AND p.relnamespace = current_schema()::regnamespace"
            )["relname"]
        )
        partitioned = bool(partitions)
        if partitioned:
            assert {"hourly_market_data_m202301", "hourly_market_data_m202302"} <= partitions
            default_rows = store.scalar("SELECT count(*) FROM hourly_market_data_default")
            assert default_rows == 0  # every hour landed in its month
    weeks = pd.DataFrame({"coin_id": "a", "date": [pd.Timestamp("2023-01-02")], "close": [1.0], "bar_days": [7]})
    assert store.upsert("weekly_market_data", weeks) == 1
