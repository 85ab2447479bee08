"""Streamed prices end to end: the fake WebSocket server pushing as fast as it can, `kallos stream` storing into
PostgreSQL, measured as updates/s stored and the latency from CoinGecko's update time to the commit.

Run:  .venv/bin/python bench/bench_stream.py [--coins 200] [--seconds 20] [--url postgresql://postgres@127.0.0.1:5432/test]

The fake runs in its own process (`kallos fake-api serve --ws-rate 0`), so server and client do not share a GIL.
Alternatives measured in the same run, on the same machine:
- parse only: `parse_frame` over frames the fake produced, in a loop (the ceiling of the receive path);
- row by row: the same updates stored with one INSERT ... ON CONFLICT per update (executemany), the naive client.
Goal (issue 18): at least 20,000 updates/s into PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid

import pandas as pd
import psycopg

from kallos.settings import load_settings
from kallos.store import open_store
from kallos.stream.protocol import parse_frame
from kallos.stream.run import StreamOptions, stream_prices


def start_fake(n_coins: int) -> tuple[subprocess.Popen[str], str]:
    cmd = [
        sys.executable, "-m", "kallos.cli.main", "fake-api", "serve", "--port", "0", "--ws-port", "0",
        "--ws-rate", "0", "--n-coins", str(n_coins), "--start", "2024-01-01", "--end", "2024-12-31",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.match(r"KALLOS_COINGECKO_WS_URL=(\S+)", line)
        if m:
            return proc, m.group(1)
    raise RuntimeError("the fake server did not start")


def coin_ids(n: int) -> list[str]:
    from kallos.fake.simulated import SimulatedMarket
    from kallos.fake.stream import FakeStream

    market = SimulatedMarket(seed=7, n_coins=n, start="2024-01-01", end="2024-12-31")  # as `fake-api serve`
    return FakeStream(market).coins


def _num(v: float) -> float | None:
    return None if v != v else float(v)


def parse_rate(frames: list[str], repeat: int = 20) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        for f in frames:
            parse_frame(f)
    return repeat * len(frames) / (time.perf_counter() - t0)


def row_by_row_rate(url: str, schema: str, ticks: pd.DataFrame, n: int = 5000) -> float:
    rows = ticks.head(n)
    with psycopg.connect(url, autocommit=False) as conn:
        conn.execute(f"SET search_path TO {schema}")
        ids = dict(conn.execute("SELECT coingecko_id, coin_id FROM coins").fetchall())
        params = [
            (ids[r.coin_id], r.ts + pd.Timedelta(days=3650), r.price, r.price_change_24h_pct, r.market_cap,
             r.volume_24h, r.received_at)
            for r in rows.itertuples()
        ]  # fmt: skip
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO price_ticks (coin_id, ts, price, price_change_24h_pct, market_cap, volume_24h, "
                "received_at) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (coin_id, ts) DO UPDATE SET "
                "price = EXCLUDED.price",
                params,
            )
        conn.commit()
        return len(params) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--coins", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--url", default=os.environ.get("KALLOS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = ap.parse_args()

    coins = coin_ids(args.coins)
    schema = f"bench_stream_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    db_url = f"{args.url}?schema={schema}"
    store = open_store(db_url)
    store.init()
    store.upsert("coins", pd.DataFrame({"coingecko_id": coins, "symbol": coins, "name": coins}))
    store.close()
    proc, ws_url = start_fake(args.coins)
    try:
        settings = load_settings(
            database_url=db_url, coingecko_plan="pro", coingecko_api_key="bench-key", coingecko_ws_url=ws_url
        )
        options = StreamOptions(duration=args.seconds, flush_seconds=0.5)
        stats = asyncio.run(stream_prices(settings, coins, options=options, handle_signals=False))
    finally:
        proc.terminate()
        proc.wait(30)
    store = open_store(db_url)
    ticks = store.read("price_ticks")
    stored_rows = len(ticks)
    frames = [
        json.dumps(
            {"c": "C1", "i": r.coin_id, "vs": "usd", "p": _num(r.price), "pp": _num(r.price_change_24h_pct),
             "m": _num(r.market_cap), "v": _num(r.volume_24h), "t": r.ts.timestamp()}
        )
        for r in ticks.head(20_000).itertuples()
    ]  # fmt: skip
    parsed = parse_rate(frames)
    naive = row_by_row_rate(args.url, schema, ticks)
    store.close()
    with psycopg.connect(args.url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")

    rate = stats.stored / stats.seconds
    print(f"coins {stats.coins} on {stats.sockets} sockets, {stats.seconds:.1f} s, machine: {os.cpu_count()} cores")
    print(
        f"received {stats.received}, stored {stats.stored} (rows in price_ticks: {stored_rows}), "
        f"replays dropped {stats.replays_dropped}, malformed {stats.malformed}, reconnects {stats.reconnects}"
    )
    print(f"kallos stream -> PostgreSQL : {rate:10,.0f} updates/s   (goal 20,000: {rate / 20_000:.2f}x)")
    print(f"parse only (ceiling)        : {parsed:10,.0f} updates/s   (stream = {rate / parsed:.2f}x of it)")
    print(f"row-by-row INSERT           : {naive:10,.0f} updates/s   (stream = {rate / naive:.1f}x of it)")
    lat = stats.latency_ms
    print(
        f"latency update time -> commit (ms): p50 {lat['p50']:.0f}  p90 {lat['p90']:.0f}  p99 {lat['p99']:.0f}  "
        f"max {lat['max']:.0f}  (flush interval 500 ms)"
    )


if __name__ == "__main__":
    main()
