"""Fixtures of the stream tests: the small simulated market's coins in a store, and settings for a pro key."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import pytest

from kallos.fake.dataset import Dataset
from kallos.fake.stream import FakeStream
from kallos.fake.testing import small_market
from kallos.settings import Settings, load_settings
from kallos.store import Store, open_store
from kallos.stream.run import StreamOptions, StreamStats, stream_prices
from kallos.stream.sink import StoreSink

KEY = "stream-test-key-0123456789"


@pytest.fixture(scope="session")
def market() -> Dataset:
    return small_market()


@pytest.fixture
def coins(market: Dataset) -> list[str]:
    return [c.id for c in market.coins[:12]]


def add_coins(store: Store, coins: list[str]) -> None:
    store.upsert("coins", pd.DataFrame({"coingecko_id": coins, "symbol": coins, "name": coins}))


def stream_settings(url: str, ws_url: str, **extra: object) -> Settings:
    values: dict[str, object] = {
        "database_url": url,
        "coingecko_plan": "pro",
        "coingecko_api_key": KEY,
        "coingecko_ws_url": ws_url,
    }
    values.update(extra)
    return load_settings(**values)


def stored_keys(store: Store) -> set[tuple[str, int]]:
    ticks = store.read("price_ticks", columns=["coin_id", "ts"])
    micros = (pd.to_datetime(ticks["ts"], utc=True) - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)
    return set(zip(ticks["coin_id"], (int(m) for m in micros), strict=True))


@contextmanager
def opened(url: str) -> Iterator[Store]:
    store = open_store(url)
    try:
        yield store
    finally:
        store.close()


async def stream_until(
    settings: Settings, coins: list[str], srv: FakeStream, updates: int, *, sink: StoreSink | None = None, **opts: Any
) -> StreamStats:
    """Stream until the fake has sent `updates` more updates; then pause the fake, let the wire drain and stop
    cleanly, so what the fake delivered and what the store holds can be compared exactly."""
    target = srv.updates_sent + updates
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def watch() -> None:
        deadline = time.monotonic() + 60
        while srv.updates_sent < target and time.monotonic() < deadline:
            time.sleep(0.02)
        srv.pause()
        time.sleep(0.4)
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=watch, daemon=True).start()
    options = StreamOptions(flush_seconds=0.2, **opts)
    try:
        return await stream_prices(settings, coins, options=options, sink=sink, handle_signals=False, stop=stop)
    finally:
        srv.pause(False)
