"""The daily run's market step on pro: API calls and seconds, every coin on charts against the mixed default.

A fake CoinGecko (pro plan, in a child process so that it does not share this process's GIL) serves a simulated
market of N coins. The store gets a first load of every coin (two months of daily bars with candles), then the
same day's market step runs twice from copies of that store, inside the close window (00:45 UTC):

- `KALLOS_DAILY_CLOSE_SOURCE=chart` (the pro default before docs/decisions.md#D117): every coin's chart and candles;
- the pro default, `mixed` with `KALLOS_EXACT_CLOSE_TOP` (default 100): charts and candles for the exact-close
  universe, the close-window sweep for the other coins.

Before each, `kallos plan daily`'s estimate (`kallos.ingest.update.estimate_daily`) is taken and compared with what
the step spent.

    .venv/bin/python bench/bench_daily_calls.py [--coins 1000] [--exact-top 100]

Prints a Markdown table for docs/benchmarks.md ("The daily run's cost in calls").
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from kallos import clock
from kallos.coingecko.client import CoinGeckoClient
from kallos.ingest.backfill import backfill
from kallos.ingest.universe import sync_universe
from kallos.ingest.update import daily_update, estimate_daily
from kallos.settings import load_settings
from kallos.store import open_store

KEY = "bench-key-0000"
UTC = dt.UTC
LOAD_AT = dt.datetime(2024, 12, 29, 15, tzinfo=UTC)
RUN_AT = dt.datetime(2024, 12, 30, 0, 45, tzinfo=UTC)


def _serve(n_coins: int, urls: Any, commands: Any) -> None:
    from kallos.fake import FakeCoinGecko, SimulatedMarket

    market = SimulatedMarket(seed=11, n_coins=n_coins, start="2024-06-01", end="2024-12-31")
    with FakeCoinGecko(dataset=market, plan="pro", api_key=KEY) as srv:
        urls.put(srv.url)
        while True:
            cmd, value = commands.get()
            if cmd == "stop":
                return
            srv.now = dt.datetime.fromisoformat(value)
            urls.put("ok")


class Server:
    def __init__(self, n_coins: int) -> None:
        ctx = mp.get_context("spawn")
        self.urls, self.commands = ctx.Queue(), ctx.Queue()
        self.proc = ctx.Process(target=_serve, args=(n_coins, self.urls, self.commands), daemon=True)
        self.proc.start()
        self.url = self.urls.get(timeout=600)

    def at(self, when: dt.datetime) -> None:
        self.commands.put(("now", when.isoformat()))
        assert self.urls.get(timeout=60) == "ok"
        clock.set_now(when)

    def stop(self) -> None:
        self.commands.put(("stop", ""))
        self.proc.join(timeout=30)


def settings(url: str, db: Path, **kw: Any) -> Any:
    return load_settings(
        database_url=f"duckdb:///{db}",
        coingecko_plan="pro",
        coingecko_api_key=KEY,
        coingecko_base_url=url,
        rate_limit_per_minute=10_000_000,
        log_level="WARNING",
        **kw,
    )


async def _with_client(s: Any, fn: Any) -> Any:
    async with CoinGeckoClient.from_settings(s, share_rate_limit=False) as cg:
        return await fn(cg)


def first_load(url: str, db: Path, n_coins: int) -> int:
    s = settings(url, db)
    store = open_store(s.database_url)
    try:
        store.init()
        asyncio.run(_with_client(s, lambda cg: sync_universe(store, cg, s)))
        out = asyncio.run(
            _with_client(s, lambda cg: backfill(store, cg, s, top=n_coins, since=dt.date(2024, 11, 1)))
        )
        return int(out["coins"])
    finally:
        store.close()


def one_day(url: str, db: Path, **kw: Any) -> dict[str, Any]:
    s = settings(url, db, **kw)
    store = open_store(s.database_url)
    try:
        est = estimate_daily(store, s, now=RUN_AT)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        out = asyncio.run(_with_client(s, lambda cg: daily_update(store, cg, s)))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        store.close()
    return {**out, "wall": wall, "cpu": cpu, "planned": est["calls"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coins", type=int, default=1000)
    parser.add_argument("--exact-top", type=int, default=100)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kallos-bench-calls-"))
    server = Server(args.coins)
    try:
        server.at(LOAD_AT)
        t0 = time.perf_counter()
        loaded = first_load(server.url, tmp / "loaded.duckdb", args.coins)
        print(f"first load: {loaded} coins in {time.perf_counter() - t0:.0f} s", flush=True)
        server.at(RUN_AT)
        rows = []
        for label, kw in (
            ("chart (every coin)", {"daily_close_source": "chart"}),
            (f"mixed, exact top {args.exact_top} (pro default)", {"exact_close_top": args.exact_top}),
        ):
            db = tmp / f"{label.split()[0]}.duckdb"
            shutil.copy(tmp / "loaded.duckdb", db)
            load0 = os.getloadavg()[0]
            out = one_day(server.url, db, **kw)
            rows.append((label, out, load0))
            print(f"{label}: {out['api_calls']} calls, planned {out['planned']}, {out['wall']:.1f} s", flush=True)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        clock.set_now(None)
    print()
    print("| close source | coins | exact coins | calls (planned) | calls per coin per day | wall s | CPU s | load |")
    print("|---|---|---|---|---|---|---|---|")
    for label, out, load0 in rows:
        print(
            f"| {label} | {out['coins']:,} | {out['exact_coins']:,} | {out['api_calls']:,} ({out['planned']:,}) | "
            f"{out['calls_per_coin_day']:.3f} | {out['wall']:.1f} | {out['cpu']:.1f} | {load0:.1f} |"
        )


if __name__ == "__main__":
    main()
