"""Benchmark of the CoinGecko client against the fake server (loopback).

1. Throughput: requests/s the client sustains with no rate limit on either side (client + server cost), for
   `/ping` and for a one-year daily `/coins/{id}/market_chart/range` payload, with the in-process limiter and
   with the cross-process (lock file) limiter.
2. Budget use: with a configured budget of R requests/min (the fake server limiting at the same R), the
   share of R the client actually uses over a window, and the number of 429s (must be 0).

    .venv/bin/python bench/bench_client.py [--seconds 10] [--budget 600] [--budget-seconds 30]

The fake server runs in a child process so that client and server do not share one GIL.
Prints Markdown tables for docs/benchmarks.md ("CoinGecko client").
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
import multiprocessing as mp
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kallos.coingecko.client import CoinGeckoClient
from kallos.fake import FakeCoinGecko, SimulatedMarket

KEY = "bench-key-0000"


def _serve(rate: int | None, urls: Any, stop: Any, results: Any) -> None:
    market = SimulatedMarket(seed=7, n_coins=20, start="2018-01-01", end="2024-12-31")
    with FakeCoinGecko(dataset=market, plan="pro", api_key=KEY, rate_limit_per_minute=rate) as srv:
        urls.put(srv.url)
        stop.wait()
        results.put([(r.time, r.status) for r in srv.requests])


@contextmanager
def server_process(rate: int | None) -> Iterator[tuple[str, list[tuple[float, int]]]]:
    """A fake server in a child process; yields its URL and, after the block, its (arrival, status) list."""
    ctx = mp.get_context("spawn")
    urls, results, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_serve, args=(rate, urls, stop, results), daemon=True)
    proc.start()
    recorded: list[tuple[float, int]] = []
    try:
        yield urls.get(timeout=120), recorded
    finally:
        stop.set()
        recorded.extend(results.get(timeout=60))
        proc.join(timeout=10)


async def _throughput(
    url: str, seconds: float, concurrency: int, shared: bool, kind: str, state: Path
) -> tuple[int, float]:
    async with CoinGeckoClient(
        plan="pro",
        api_key=KEY,
        base_url=url,
        rate_limit_per_minute=math.inf,
        concurrency=concurrency,
        share_rate_limit=shared,
        ratelimit_dir=state,
    ) as cg:
        deadline = time.perf_counter() + seconds
        done = 0
        end = dt.datetime(2024, 12, 1, tzinfo=dt.UTC)

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                if kind == "ping":
                    await cg.ping()
                else:
                    await cg.market_chart_range("bitcoin", end - dt.timedelta(days=365), end)
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done, time.perf_counter() - started


async def _budget(url: str, rate: float, seconds: float, state: Path) -> dict[str, float]:
    async with CoinGeckoClient(
        plan="pro", api_key=KEY, base_url=url, rate_limit_per_minute=rate, concurrency=8, ratelimit_dir=state
    ) as cg:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                await cg.ping()

        await asyncio.gather(*(worker() for _ in range(8)))
        return {"calls": cg.stats.calls, "rate_limited": cg.stats.rate_limited}


def _window_rate(times: list[float], window: float) -> float:
    """Calls per minute in the window [t0 + 2 s, t0 + 2 s + window) of the server's arrival times."""
    t0 = min(times) + 2.0
    n = sum(1 for t in times if t0 <= t < t0 + window)
    return n / window * 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--budget", type=float, default=600.0, help="configured requests/min")
    parser.add_argument("--budget-seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        with server_process(None) as (url, _):
            for kind in ("ping", "market_chart_range"):
                for shared in (False, True):
                    n, took = asyncio.run(
                        _throughput(url, args.seconds, args.concurrency, shared, kind, state)
                    )
                    limiter = "cross-process (lock file)" if shared else "in-process"
                    rows.append(
                        f"| {kind} | {limiter} | {args.concurrency} | {n} | {took:.1f} | {n / took:.0f} |"
                    )
        with server_process(int(args.budget)) as (url, recorded):
            stats = asyncio.run(_budget(url, args.budget, args.budget_seconds + 4, state))
    times = [t for t, _ in recorded]
    status_429 = sum(1 for _, status in recorded if status == 429)
    window = args.budget_seconds
    rate = _window_rate(times, window)
    print(
        f"CoinGecko client benchmark — {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {dt.datetime.now(dt.UTC):%Y-%m-%d}"
    )
    print()
    print("| endpoint | limiter | concurrency | requests | seconds | requests/s |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print(
        "| configured budget (req/min) | server limit (req/min) | window (s) | measured (req/min) "
        "| share of budget | 429s |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.budget:g} | {args.budget:g} | {window:g} | {rate:.1f} | {rate / args.budget:.1%} | "
        f"{status_429} (client counted {int(stats['rate_limited'])}) |"
    )


if __name__ == "__main__":
    main()
