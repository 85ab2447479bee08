"""Bulk upsert throughput on PostgreSQL: Kallos' COPY + one merge statement vs row-by-row executemany; and the wide
indicator and signal tables against a plain binary COPY of the same rows.

Run:  .venv/bin/python bench/bench_store.py [--rows 1000000] [--wide-coins 100] [--partitioned] [--repeat 5]
          [--url postgresql://postgres@127.0.0.1:5432/test]

Wide tables: `--wide-coins` coins x 3,000 days of indicator rows (compute_indicators on random walks) and the
signal rows generate_signals makes from them. Kallos' write is `store.upsert` of the frame into an empty table
(everything counted: checks, coin-id mapping, encoding, COPY). The reference is the server's own ceiling: the
same rows, already encoded in COPY's binary format (integer coin ids) before the clock starts, sent with one
`COPY ... FROM STDIN (FORMAT BINARY)` through psycopg into an empty table of the same shape in its own schema.

Each method loads the same daily rows (250 coins x 4,000 days for 1M) into its own fresh schema, in one run, so
the ratios compare like with like on a shared, noisy machine. Also measured: re-upserting identical rows (the
daily re-fetch case) and re-upserting changed rows. DuckDB is measured the same way for reference.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa

from kallos.store import open_store, pgbinary
from kallos.store.base import table_def


def make_rows(n_rows: int, n_days: int = 4000) -> pd.DataFrame:
    n_coins = max(1, n_rows // n_days)
    rng = np.random.default_rng(1)
    dates = pd.date_range("2013-01-01", periods=n_days, freq="D")
    coin = np.repeat([f"coin-{i:05d}" for i in range(n_coins)], n_days)
    close = np.exp(rng.uniform(np.log(1e-10), np.log(1e5), n_coins * n_days))
    return pd.DataFrame(
        {
            "coin_id": coin,
            "date": np.tile(dates.values, n_coins),
            "open": close * 0.99,
            "high": close * 1.02,
            "low": close * 0.97,
            "close": close,
            "volume": close * rng.uniform(1e3, 1e9, len(close)),
            "market_cap": close * rng.uniform(1e6, 1e10, len(close)),
            "ohlc_source": "candles",
            "close_source": "chart",
        }
    )


def fresh_store(url: str, partitioned: bool = False):  # type: ignore[no-untyped-def]
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    store = open_store(url, schema=schema)
    store.init(partitioned=partitioned)
    return store, schema


def drop(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def seed_coins(store, frame: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    ids = frame["coin_id"].unique()
    store.upsert("coins", pd.DataFrame({"coingecko_id": ids, "symbol": ids, "name": ids}))


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def executemany_load(store, schema: str, url: str, frame: pd.DataFrame) -> float:  # type: ignore[no-untyped-def]
    """The row-by-row baseline: one parameterized INSERT .. ON CONFLICT per row through executemany."""
    ids = store.coin_map()
    cols = ["coin_id", "date", "open", "high", "low", "close", "volume", "market_cap", "ohlc_source", "close_source"]
    quoted = ", ".join(f'"{c}"' for c in cols)
    sets = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in cols[2:])
    sql = (
        f"INSERT INTO daily_market_data ({quoted}) VALUES ({', '.join(['%s'] * len(cols))}) "
        f'ON CONFLICT (coin_id, "date") DO UPDATE SET {sets}'
    )
    t0 = time.perf_counter()
    data = frame.assign(coin_id=frame["coin_id"].map(ids), date=frame["date"].dt.date)[cols]
    rows = list(data.itertuples(index=False, name=None))
    with psycopg.connect(url, options=f"-c search_path={schema}") as conn, conn.cursor() as cur:
        cur.executemany(sql, rows)
    return time.perf_counter() - t0


def wide_frames(n_coins: int, n_days: int = 3000) -> dict[str, pd.DataFrame]:
    """Indicator rows and signal rows of n_coins random-walk coins, as the steps write them."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_indicators import bars_frame, make_panel

    from kallos.indicators import compute_indicators
    from kallos.signals import generate_signals

    bars = bars_frame(make_panel(n_coins, n_days))
    indicators = compute_indicators(bars)
    signals = generate_signals(indicators.assign(close=bars["close"].to_numpy()))
    return {"daily_technical_indicators": indicators, "trading_signals": signals}


def plain_binary_copy(store, url: str, schema: str, table: str, frame: pd.DataFrame) -> float:  # type: ignore[no-untyped-def]
    """Seconds for one binary COPY of the frame's rows, encoded before the clock starts, into an empty table."""
    data = store._prepare(table_def(table), frame, for_replace=False)  # typed Arrow columns, integer coin ids
    body = [pgbinary.encode_rows(pa.Table.from_batches([b])) for b in data.to_batches(max_chunksize=100_000)]
    cols = ", ".join(f'"{c}"' for c in data.column_names)
    with psycopg.connect(url, options=f"-c search_path={schema}") as conn, conn.cursor() as cur:
        t0 = time.perf_counter()
        with cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.write(pgbinary.SIGNATURE)
            for chunk in body:
                copy.write(chunk.data)
            copy.write(pgbinary.TRAILER)
        conn.commit()
        return time.perf_counter() - t0


def wide_tables(url: str, n_coins: int, partitioned: bool, repeat: int = 1) -> None:
    """Kallos' upsert against the plain binary COPY, `repeat` times each (alternating, each in a fresh schema);
    prints every repeat's share and the medians."""
    frames = wide_frames(n_coins)
    layout = "partitioned by year" if partitioned else "plain"
    print(
        f"wide tables ({layout} layout), {n_coins} coins x 3,000 days, {repeat} repeat(s), "
        f"load average {os.getloadavg()[0]:.1f}:"
    )
    print(
        f"{'table':<28} {'rows':>10} {'kallos s':>9} {'rows/s':>10} {'binary COPY s':>14} {'rows/s':>10} {'share':>6}"
        "  shares of the repeats"
    )
    for table, frame in frames.items():
        times: dict[str, list[float]] = {"copy": [], "kallos": []}
        for _ in range(repeat):
            for method in ("copy", "kallos"):
                store, schema = fresh_store(url, partitioned=partitioned)
                try:
                    seed_coins(store, frame)
                    if method == "kallos":
                        times[method].append(timed(lambda: store.upsert(table, frame)))  # noqa: B023
                    else:
                        times[method].append(plain_binary_copy(store, url, schema, table, frame))
                    assert int(store.scalar(f"SELECT count(*) FROM {table}")) == len(frame)
                    store.close()
                finally:
                    drop(url, schema)
        n = len(frame)
        k, c = float(np.median(times["kallos"])), float(np.median(times["copy"]))
        shares = " ".join(f"{cc / kk:.0%}" for kk, cc in zip(times["kallos"], times["copy"], strict=True))
        print(f"{table:<28} {n:>10,} {k:>9.2f} {n / k:>10,.0f} {c:>14.2f} {n / c:>10,.0f} {c / k:>6.0%}  {shares}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--wide-coins", type=int, default=100, help="0 skips the wide-table comparison")
    parser.add_argument("--partitioned", action="store_true", help="wide tables: the year-partitioned layout")
    parser.add_argument("--only-wide", action="store_true", help="skip the daily_market_data comparison")
    parser.add_argument("--repeat", type=int, default=1, help="wide tables: runs of each method; medians printed")
    args = parser.parse_args()
    if args.wide_coins:
        wide_tables(args.url, args.wide_coins, args.partitioned, args.repeat)
    if args.only_wide:
        return
    frame = make_rows(args.rows)
    n = len(frame)
    changed = frame.assign(close=frame["close"] * 1.01)
    print(f"rows: {n:,} ({frame['coin_id'].nunique()} coins x {frame['date'].nunique()} days)")

    results: dict[str, float] = {}
    store, schema = fresh_store(args.url)
    try:
        seed_coins(store, frame)
        results["pg bulk: fresh load"] = timed(lambda: store.upsert("daily_market_data", frame))
        results["pg bulk: re-upsert identical"] = timed(lambda: store.upsert("daily_market_data", frame))
        results["pg bulk: re-upsert changed"] = timed(lambda: store.upsert("daily_market_data", changed))
        store.close()
    finally:
        drop(args.url, schema)

    store, schema = fresh_store(args.url)
    try:
        seed_coins(store, frame)
        results["pg executemany: fresh load"] = executemany_load(store, schema, args.url, frame)
        store.close()
    finally:
        drop(args.url, schema)

    with tempfile.TemporaryDirectory() as tmp:
        duck = open_store(f"duckdb:///{tmp}/bench.duckdb")
        duck.init()
        seed_coins(duck, frame)
        results["duckdb bulk: fresh load"] = timed(lambda: duck.upsert("daily_market_data", frame))
        results["duckdb bulk: re-upsert identical"] = timed(lambda: duck.upsert("daily_market_data", frame))
        results["duckdb bulk: re-upsert changed"] = timed(lambda: duck.upsert("daily_market_data", changed))
        duck.close()

    print(f"{'method':<36} {'seconds':>8} {'rows/s':>12}")
    for name, secs in results.items():
        print(f"{name:<36} {secs:>8.2f} {n / secs:>12,.0f}")
    base = results["pg executemany: fresh load"]
    print(f"ratio pg bulk fresh load / executemany: {base / results['pg bulk: fresh load']:.2f}x")


if __name__ == "__main__":
    main()
