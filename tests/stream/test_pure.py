"""Sharding within CoinGecko's limits, the replay filter, and the micro-batch's frames."""

from __future__ import annotations

import pandas as pd
import pytest

from kallos.errors import UsageError
from kallos.stream.batch import TickBatch, latest_of
from kallos.stream.dedup import ReplayFilter
from kallos.stream.protocol import PriceUpdate
from kallos.stream.shards import plan_shards


def test_shards_fill_sockets_of_100_in_order() -> None:
    coins = [f"c{i}" for i in range(250)]
    shards = plan_shards(coins + ["c0", "c1"])  # duplicates are dropped
    assert [len(s) for s in shards] == [100, 100, 50]
    assert sum(shards, []) == coins


def test_shards_refuse_more_than_ten_sockets_hold() -> None:
    assert len(plan_shards([f"c{i}" for i in range(1000)])) == 10
    with pytest.raises(UsageError, match=r"1001 coins .* at most 1000"):
        plan_shards([f"c{i}" for i in range(1001)])
    with pytest.raises(UsageError, match="no coins"):
        plan_shards([])


def _u(coin: str, ts: int, price: float | None = 1.0) -> PriceUpdate:
    return PriceUpdate(coin, ts, price, None, None, None)


def test_replay_filter_drops_what_is_not_newer_per_coin() -> None:
    f = ReplayFilter({"bitcoin": 100})
    assert not f.accept(_u("bitcoin", 100))  # stored by an earlier process
    assert f.accept(_u("bitcoin", 101))
    assert f.accept(_u("ethereum", 50))  # coins are independent
    assert not f.accept(_u("bitcoin", 99))  # a replay after a reconnect
    assert not f.accept(_u("bitcoin", 101))  # a duplicate frame
    assert f.accept(_u("bitcoin", 102))
    assert f.replays == 3
    assert f.last_seen("bitcoin") == 102


def test_batch_frames_and_latest_per_coin() -> None:
    b = TickBatch()
    b.add(PriceUpdate("bitcoin", 1_700_000_000_000_001, 10.0, 1.0, None, 5.0), 1_700_000_000_500_000)
    b.add(PriceUpdate("ethereum", 1_700_000_000_000_000, 2.0, None, 3.0, None), 1_700_000_000_500_001)
    b.add(PriceUpdate("bitcoin", 1_700_000_001_000_000, 11.0, 1.1, None, 6.0), 1_700_000_001_500_000)
    ticks = b.ticks()
    assert list(ticks.columns) == [
        "coin_id",
        "ts",
        "price",
        "price_change_24h_pct",
        "market_cap",
        "volume_24h",
        "received_at",
    ]
    assert ticks["ts"].iloc[0] == pd.Timestamp("2023-11-14 22:13:20.000001", tz="UTC")
    assert ticks["market_cap"].isna().tolist() == [True, False, True]
    latest = latest_of(ticks)
    assert latest.set_index("coin_id")["price"].to_dict() == {"bitcoin": 11.0, "ethereum": 2.0}
    front = TickBatch()
    front.add(PriceUpdate("solana", 5, 1.0, None, None, None), 6)
    b.extend(front)
    assert b.ticks()["coin_id"].tolist()[0] == "solana" and len(b) == 4
