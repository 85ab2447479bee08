"""Timeframe benchmarks (docs/benchmarks.md, section "Timeframes"); not a test, never run by pytest.

    .venv/bin/python bench/bench_timeframes.py [--coins 1000] [--hours 17520] [--size-coins 20] [--skip-pass]

1. The hourly indicator pass: `compute_indicators` (the step's engine call) over batches of 100 coins of hourly
   bars, as `kallos indicators compute --timeframe 1h` runs it on one worker; wall time, CPU time and peak RSS.
   Beside it, the same number of bars cut into daily-length series (3,000 bars a coin) for the ratio.
2. `hourly_market_data` size per coin-year on DuckDB and PostgreSQL (a fresh schema; 8,760 rows a coin).
3. The daily run's added API calls for the hourly universe, counted against the fake server (demo and pro).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import resource
import tempfile
import time
import uuid

import numpy as np
import pandas as pd

from kallos.indicators import compute_indicators
from kallos.indicators.engine import tune_allocator

BATCH = 100


def hourly_frame(coins: list[str], hours: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(coins)
    walk = np.exp(np.cumsum(rng.normal(0, 0.01, (n, hours)), axis=1))
    close = 10 ** rng.uniform(-4, 4, (n, 1)) * walk
    spread = np.abs(rng.normal(0, 0.005, (n, hours))) + 1e-5
    high = close * (1 + spread)
    low = close * (1 - spread)
    opn = np.clip(np.concatenate([close[:, :1], close[:, :-1]], axis=1), low, high)
    stamps = pd.date_range("2023-01-01", periods=hours, freq="h")
    return pd.DataFrame(
        {
            "coin_id": np.repeat(coins, hours),
            "date": np.tile(stamps.to_numpy(), n),
            "open": opn.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "volume": rng.lognormal(12, 2, n * hours),
        }
    )


def indicator_pass(n_coins: int, hours: int) -> dict[str, float]:
    tune_allocator()
    coins = [f"c{i:05d}" for i in range(n_coins)]
    t0, c0 = time.perf_counter(), time.process_time()
    rows = 0
    for i in range(0, n_coins, BATCH):
        bars = hourly_frame(coins[i : i + BATCH], hours, seed=i)
        rows += len(compute_indicators(bars))
    return {
        "bars": rows,
        "wall_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def table_sizes(n_coins: int) -> dict[str, float]:
    from kallos.store import open_store

    coins = [f"s{i:03d}" for i in range(n_coins)]
    hours = pd.date_range("2023-01-01", periods=8760, freq="h", tz="UTC")
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "coin_id": np.repeat(coins, len(hours)),
            "hour": np.tile(hours, n_coins),
            "close": rng.lognormal(0, 1, n_coins * len(hours)),
            "market_cap": rng.lognormal(20, 1, n_coins * len(hours)),
            "volume": rng.lognormal(15, 1, n_coins * len(hours)),
            "snapped_at": np.tile(hours + pd.Timedelta(minutes=3), n_coins),
            "close_source": "chart",
        }
    )
    frame[["open", "high", "low"]] = frame[["close"]].to_numpy() * np.array([1.0, 1.01, 0.99])
    frame["ohlc_source"] = "candles"
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "size.duckdb")
        store = open_store(f"duckdb:///{path}")
        store.init()
        store.upsert("coins", pd.DataFrame({"coingecko_id": coins, "symbol": coins, "name": coins}))
        store.execute("CHECKPOINT")
        before = os.path.getsize(path)
        store.upsert("hourly_market_data", frame)
        store.execute("CHECKPOINT")
        out["duckdb_mb_per_coin_year"] = (os.path.getsize(path) - before) / n_coins / 2**20
        store.close()
    url = os.environ.get("KALLOS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
    schema = "bench_tf_" + uuid.uuid4().hex[:8]
    admin = open_store(url)
    admin.execute(f"CREATE SCHEMA {schema}")
    try:
        store = open_store(url, schema=schema)
        store.init()
        store.upsert("coins", pd.DataFrame({"coingecko_id": coins, "symbol": coins, "name": coins}))
        store.upsert("hourly_market_data", frame)
        size = store.scalar("SELECT pg_total_relation_size('hourly_market_data')")
        out["postgresql_mb_per_coin_year"] = float(size) / n_coins / 2**20
        store.close()
    finally:
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
    return out


def daily_run_calls(universe: int) -> dict[str, int]:
    """API calls of the daily run's hourly step on a day after a first load, per plan (fake server)."""
    from kallos.coingecko import CoinGeckoClient
    from kallos.fake.testing import fake_coingecko
    from kallos.ingest.hourly import hourly_update_step
    from kallos.ingest.universe import sync_universe
    from kallos.pipeline.contract import StepContext
    from kallos.settings import load_settings
    from kallos.store import open_store

    out = {}
    for plan in ("demo", "pro"):
        with tempfile.TemporaryDirectory() as tmp, fake_coingecko(plan=plan, api_key="k") as srv:
            store = open_store(f"duckdb:///{tmp}/calls.duckdb")
            store.init()
            settings = load_settings(
                coingecko_plan=plan,
                coingecko_api_key="k",
                coingecko_base_url=srv.url,
                rate_limit_per_minute=1_000_000,
                hourly_universe=universe,
            )

            async def go(now: dt.datetime, sync: bool, store=store, settings=settings) -> int:  # type: ignore[no-untyped-def]
                async with CoinGeckoClient.from_settings(settings, share_rate_limit=False) as client:
                    if sync:
                        await sync_universe(store, client, settings)
                        ranked = store.query("SELECT coingecko_id FROM coins ORDER BY coingecko_id")["coingecko_id"]
                        for rank, coin in enumerate(ranked, 1):
                            store.execute(
                                "UPDATE coins SET market_cap_rank = :r WHERE coingecko_id = :c", {"r": rank, "c": coin}
                            )
                    ctx = StepContext(store=store, settings=settings, run_id="b", now=now, client=client)
                    return (await hourly_update_step(ctx)).api_calls

            asyncio.run(go(srv.now - dt.timedelta(days=1), True))  # the first load, a day earlier
            out[plan] = asyncio.run(go(srv.now, False))
            store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--coins", type=int, default=1000)
    ap.add_argument("--hours", type=int, default=17_520)
    ap.add_argument("--size-coins", type=int, default=20)
    ap.add_argument("--universe", type=int, default=20)
    ap.add_argument("--skip-pass", action="store_true")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    print("daily run, hourly step API calls:", daily_run_calls(args.universe))
    print("hourly_market_data size:", {k: round(v, 3) for k, v in table_sizes(args.size_coins).items()})
    if not args.skip_pass:
        hourly = indicator_pass(args.coins, args.hours)
        print(
            f"hourly indicator pass: {args.coins} coins x {args.hours} hours = {hourly['bars']:,} bars, "
            f"wall {hourly['wall_s']:.1f} s, CPU {hourly['cpu_s']:.1f} s, peak RSS {hourly['peak_rss_mb']:.0f} MB, "
            f"{hourly['bars'] / hourly['wall_s']:,.0f} bars/s"
        )


if __name__ == "__main__":
    main()
