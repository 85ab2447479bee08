"""The stream end to end against the fake WebSocket server: every update the fake delivered is stored exactly once
across forced reconnects, stalls, duplicates and malformed frames, on DuckDB and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from kallos.errors import ConfigError
from kallos.fake.dataset import Dataset
from kallos.fake.stream import FakeStream, StreamFaults
from kallos.store import Store
from kallos.stream.run import StreamOptions, stream_prices
from kallos.stream.sink import StoreSink

from .conftest import KEY, add_coins, opened, stored_keys, stream_settings, stream_until


def _stream(settings, coins, *, srv, updates, **opts):  # type: ignore[no-untyped-def]
    return asyncio.run(stream_until(settings, coins, srv, updates, **opts))


def _run_with_faults(store: Store, url: str, market: Dataset, coins: list[str]) -> None:
    add_coins(store, coins)
    faults = StreamFaults(drop_after=120, malformed_every=37, duplicate_every=25, null_every=11)
    with FakeStream(market, rate=300, replay=3, faults=faults) as srv:
        settings = stream_settings(url, srv.url)
        stats = _stream(settings, coins, srv=srv, updates=400, sink=StoreSink(url, store=store))
        sent = srv.sent()
    assert stats.reconnects >= 1  # the drop forced a reconnect
    assert stats.replays_dropped >= 3  # the fake replayed after the reconnect, and duplicated frames
    assert stats.malformed >= 1
    assert len(sent) > 200
    assert stored_keys(store) == sent  # nothing lost, nothing stored twice
    assert stats.stored == len(sent)
    latest = store.read("latest_prices").set_index("coin_id")
    ticks = store.read("price_ticks")
    newest = ticks.sort_values("ts").groupby("coin_id").tail(1).set_index("coin_id")
    assert set(latest.index) == set(coins)
    assert (latest["ts"] == newest.loc[latest.index, "ts"]).all()
    assert (latest["price"] == newest.loc[latest.index, "price"]).all()
    snaps = store.query("SELECT count(*) AS n FROM market_snapshots WHERE source = 'stream'")
    assert int(snaps["n"].iloc[0]) == len(coins)  # one provisional snapshot per coin (cadence 300 s)


def test_no_update_lost_or_doubled_across_faults_duckdb(duck_store: Store, market: Dataset, coins: list[str]) -> None:
    _run_with_faults(duck_store, duck_store.url, market, coins)


@pytest.mark.postgres
def test_no_update_lost_or_doubled_across_faults_postgres(
    pg_store: Store, pg_url: str, pg_schema: str, market: Dataset, coins: list[str]
) -> None:
    _run_with_faults(pg_store, f"{pg_url}?schema={pg_schema}", market, coins)


def test_a_silent_socket_is_detected_and_replaced(tmp_path: Path, market: Dataset, coins: list[str]) -> None:
    url = f"duckdb:///{tmp_path / 'k.duckdb'}"
    with opened(url) as store:
        store.init()
        add_coins(store, coins)
    faults = StreamFaults(stall_after=50, stall_seconds=30)
    with FakeStream(market, rate=200, ping_interval=0.2, faults=faults) as srv:
        settings = stream_settings(url, srv.url)
        stats = _stream(settings, coins, srv=srv, updates=150, silence_seconds=0.6)
        sent = srv.sent()
    assert stats.silent_sockets == 1 and stats.reconnects >= 1
    with opened(url) as store:
        assert stored_keys(store) == sent


def test_a_restarted_stream_does_not_store_again(tmp_path: Path, market: Dataset, coins: list[str]) -> None:
    url = f"duckdb:///{tmp_path / 'k.duckdb'}"
    with opened(url) as store:
        store.init()
        add_coins(store, coins)
    with FakeStream(market, rate=300, replay=5) as srv:
        settings = stream_settings(url, srv.url)
        first = _stream(settings, coins[:4], srv=srv, updates=60)
        second = _stream(settings, coins[:4], srv=srv, updates=60)
        sent = srv.sent()
    assert second.replays_dropped >= 4 * 5  # the fake replayed 5 per coin: all were stored by the first run
    assert first.stored + second.stored == len(sent)
    with opened(url) as store:
        assert stored_keys(store) == sent


def test_plans_without_streaming_are_refused_before_connecting(tmp_path: Path, market: Dataset) -> None:
    url = f"duckdb:///{tmp_path / 'k.duckdb'}"
    with FakeStream(market) as srv:
        for plan in ("demo", "public"):
            settings = stream_settings(url, srv.url, coingecko_plan=plan)
            with pytest.raises(ConfigError, match="paid plan") as err:
                asyncio.run(stream_prices(settings, ["bitcoin"], handle_signals=False))
            assert err.value.setting == "KALLOS_COINGECKO_PLAN"
        assert srv.connections == 0
    with pytest.raises(ConfigError, match="COINGECKO_API_KEY"):
        asyncio.run(
            stream_prices(
                stream_settings(url, "ws://127.0.0.1:9/v1", coingecko_api_key=None), ["bitcoin"], handle_signals=False
            )
        )


def test_cleartext_ws_only_on_loopback(tmp_path: Path) -> None:
    settings = stream_settings(f"duckdb:///{tmp_path / 'k.duckdb'}", "ws://stream.example.com/v1")
    with pytest.raises(ConfigError, match="wss://"):
        asyncio.run(stream_prices(settings, ["bitcoin"], handle_signals=False))


@pytest.mark.parametrize(
    ("keys", "status", "message"),
    [({"other-key": "pro"}, 401, "refused"), ({KEY: "demo"}, 403, "plan cannot use")],
)
def test_keys_the_server_refuses_stop_the_stream(
    tmp_path: Path,
    market: Dataset,
    coins: list[str],
    keys: dict[str, str],
    status: int,
    message: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"duckdb:///{tmp_path / 'k.duckdb'}"
    with opened(url) as store:
        store.init()
        add_coins(store, coins)
    caplog.set_level(logging.DEBUG)
    with FakeStream(market, keys=keys) as srv:
        settings = stream_settings(url, srv.url)
        with pytest.raises(ConfigError, match=message) as err:
            asyncio.run(stream_prices(settings, coins[:2], options=StreamOptions(duration=5), handle_signals=False))
    assert f"HTTP {status}" in str(err.value)
    assert KEY not in str(err.value) and KEY not in caplog.text
