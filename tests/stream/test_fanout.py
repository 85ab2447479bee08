"""Fan-out to the real NATS and Redis servers on this machine: every stored update is published once, on its
coin's subject or channel, after its batch is committed."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest

from kallos.fake.dataset import Dataset
from kallos.fake.stream import FakeStream

from .conftest import add_coins, opened, stored_keys, stream_settings, stream_until

NATS_URL = os.environ.get("KALLOS_TEST_NATS_URL", "nats://127.0.0.1:4222")
REDIS_URL = os.environ.get("KALLOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _unavailable(what: str, exc: BaseException) -> None:
    message = f"{what} not reachable ({exc}); start it to run this test"
    if IN_CI:
        pytest.fail(message + " -- required when CI=true")
    pytest.skip(message)


async def _collect_and_stream(settings, coins, srv, subscribe):  # type: ignore[no-untyped-def]
    received: list[tuple[str, dict]] = []
    closer = await subscribe(received)
    stats = await stream_until(settings, coins, srv, 150)
    deadline = time.monotonic() + 15  # delivery to the subscriber can lag on a loaded machine
    while len(received) < stats.published and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # nothing more may arrive: every update is published once
    await closer()
    return stats, received


def _ours(received: list[tuple[str, dict]], stored: set[tuple[str, int]]) -> list[tuple[str, dict]]:
    """The messages of this test's stream: the bus is shared, and another stream may publish on it meanwhile.
    Each stored update must arrive exactly once."""
    mine = []
    for subject, msg in received:
        ts = pd.Timestamp(msg["ts"])
        key = (msg["coin_id"], (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1))
        if key in stored:
            mine.append((subject, msg))
    keys = [(m["coin_id"], m["ts"]) for _, m in mine]
    assert len(keys) == len(set(keys)) == len(stored), "each stored update is published exactly once"
    return mine


def test_nats_subject_per_coin(tmp_path: Path, market: Dataset, coins: list[str]) -> None:
    nats = pytest.importorskip("nats")
    url = f"duckdb:///{tmp_path / 'k.duckdb'}"
    with opened(url) as store:
        store.init()
        add_coins(store, coins)

    async def subscribe(received):  # type: ignore[no-untyped-def]
        try:
            nc = await nats.connect(NATS_URL, connect_timeout=3, max_reconnect_attempts=0)
        except Exception as exc:  # noqa: BLE001
            _unavailable("NATS", exc)

        async def on(msg):  # type: ignore[no-untyped-def]
            received.append((msg.subject, json.loads(msg.data)))

        await nc.subscribe("kallos.prices.*", cb=on)
        return nc.drain

    with FakeStream(market, rate=200) as srv:
        settings = stream_settings(url, srv.url, stream_nats_url=NATS_URL)
        stats, received = asyncio.run(_collect_and_stream(settings, coins[:4], srv, subscribe))
    with opened(url) as store:
        mine = _ours(received, stored_keys(store))
    assert stats.published == stats.stored == len(mine) > 0
    assert {s for s, _ in mine} == {f"kallos.prices.{c}" for c in coins[:4]}
    assert all(s == f"kallos.prices.{m['coin_id']}" for s, m in mine)


def test_redis_channel_per_coin(tmp_path: Path, market: Dataset, coins: list[str]) -> None:
    redis = pytest.importorskip("redis.asyncio")
    url = f"duckdb:///{tmp_path / 'k.duckdb'}"
    with opened(url) as store:
        store.init()
        add_coins(store, coins)

    async def subscribe(received):  # type: ignore[no-untyped-def]
        client = redis.from_url(REDIS_URL, socket_connect_timeout=3)
        try:
            await client.ping()
        except Exception as exc:  # noqa: BLE001
            _unavailable("Redis", exc)
        pubsub = client.pubsub()
        await pubsub.psubscribe("kallos:prices:*")

        async def reader() -> None:
            async for msg in pubsub.listen():
                if msg["type"] == "pmessage":
                    received.append((msg["channel"].decode(), json.loads(msg["data"])))

        task = asyncio.create_task(reader())

        async def close() -> None:
            task.cancel()
            await pubsub.aclose()
            await client.aclose()

        return close

    with FakeStream(market, rate=200) as srv:
        settings = stream_settings(url, srv.url, stream_redis_url=REDIS_URL)
        stats, received = asyncio.run(_collect_and_stream(settings, coins[:4], srv, subscribe))
    with opened(url) as store:
        mine = _ours(received, stored_keys(store))
    assert stats.published == stats.stored == len(mine) > 0
    assert all(ch == f"kallos:prices:{m['coin_id']}" for ch, m in mine)
    first = mine[0][1]
    assert set(first) == {"coin_id", "ts", "price", "price_change_24h_pct", "market_cap", "volume_24h", "received_at"}
