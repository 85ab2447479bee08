"""Benchmark of the CoinGecko client against the fake server (loopback).

1. Parsing: calls/s of the chart and candle endpoints read as NumPy columns (`*_arrays`, docs/decisions.md#D115,
   what ingestion uses) against the same calls read into one pydantic model per point (`market_chart_range`,
   `ohlc_range`), in the same run, interleaved in rounds; each call's answer is also turned into the frame
   ingestion validates (`frames.chart_frame` / `candles_frame`). Payloads: a one-year daily chart, a 7-year daily
   chart (a backfill's first call for a coin) and 180 daily candles (one `ohlc/range` chunk). Also the client
   process's CPU ms per call (the machine may be shared: CPU time says what the client costs).
2. Throughput: requests/s the client sustains with no rate limit on either side (client + server cost), for
   `/ping` and for a one-year daily chart read as arrays, with the in-process limiter and with the cross-process
   (lock file) limiter.
3. Budget use: with a configured budget of R requests/min (the fake server limiting at the same R), the
   share of R the client actually uses over a window, and the number of 429s (must be 0).

    .venv/bin/python bench/bench_client.py [--seconds 10] [--rounds 3] [--budget 600] [--budget-seconds 30]

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

from kallos.coingecko import client as client_module
from kallos.coingecko.client import CoinGeckoClient
from kallos.fake import FakeCoinGecko, SimulatedMarket
from kallos.ingest import frames

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


END = dt.datetime(2024, 12, 1, tzinfo=dt.UTC)
PAYLOADS = {
    "market_chart/range, 1 year daily": ("chart", dt.timedelta(days=365)),
    "market_chart/range, 7 years daily": ("chart", END - dt.datetime(2018, 1, 1, tzinfo=dt.UTC)),
    "ohlc/range, 180 daily candles": ("candles", dt.timedelta(days=180)),
}


async def _call(cg: CoinGeckoClient, kind: str, span: dt.timedelta, arrays: bool) -> int:
    """One call as ingestion makes it (arrays) or with one model per point; both end in the ingestion frame."""
    if kind == "ping":
        await cg.ping()
        return 0
    if kind == "chart":
        if arrays:
            chart = frames.chart_frame(await cg.market_chart_range_arrays("bitcoin", END - span, END))
        else:
            chart = frames.chart_frame(await cg.market_chart_range("bitcoin", END - span, END))
        return len(chart)
    if arrays:
        candles = frames.candles_frame(await cg.ohlc_range_arrays("bitcoin", END - span, END, "daily"))
    else:
        candles = frames.candles_frame(await cg.ohlc_range("bitcoin", END - span, END, "daily"))
    return len(candles)


async def _throughput(
    url: str,
    seconds: float,
    concurrency: int,
    shared: bool,
    kind: str,
    state: Path,
    span: dt.timedelta = dt.timedelta(days=365),
    arrays: bool = True,
) -> tuple[int, float, float]:
    """(calls, wall seconds, client CPU seconds) of `concurrency` workers calling for `seconds`."""
    async with CoinGeckoClient(
        plan="pro",
        api_key=KEY,
        base_url=url,
        rate_limit_per_minute=math.inf,
        concurrency=concurrency,
        share_rate_limit=shared,
        ratelimit_dir=state,
    ) as cg:
        await _call(cg, kind, span, arrays)  # connection and first-call costs are not measured
        deadline = time.perf_counter() + seconds
        done = 0

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await _call(cg, kind, span, arrays)
                done += 1

        cpu = time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done, time.perf_counter() - started, time.process_time() - cpu


def _parsing(url: str, seconds: float, rounds: int, concurrency: int, state: Path) -> list[str]:
    """Rows of the parsing table: per payload, models vs arrays, interleaved in `rounds` (order alternating)."""
    rows = []
    for label, (kind, span) in PAYLOADS.items():
        totals = {False: [0, 0.0, 0.0], True: [0, 0.0, 0.0]}
        for r in range(rounds):
            for arrays in (False, True) if r % 2 == 0 else (True, False):
                n, took, cpu = asyncio.run(
                    _throughput(url, seconds / rounds, concurrency, False, kind, state, span, arrays)
                )
                totals[arrays][0] += n
                totals[arrays][1] += took
                totals[arrays][2] += cpu
        (n_old, t_old, c_old), (n_new, t_new, c_new) = totals[False], totals[True]
        old_rate, new_rate = n_old / t_old, n_new / t_new
        rows.append(
            f"| {label} | {old_rate:.0f} | {new_rate:.0f} | **{new_rate / old_rate:.1f}x** "
            f"| {1000 * c_old / n_old:.1f} | {1000 * c_new / n_new:.1f} | {n_old} / {n_new} |"
        )
    return rows


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
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement (parsing: per payload and side)")
    parser.add_argument("--rounds", type=int, default=3, help="parsing: interleaved rounds of models and arrays")
    parser.add_argument("--budget", type=float, default=600.0, help="configured requests/min")
    parser.add_argument("--budget-seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        with server_process(None) as (url, _):
            parsing = _parsing(url, args.seconds, args.rounds, args.concurrency, state)
            for kind in ("ping", "chart"):
                for shared in (False, True):
                    n, took, cpu = asyncio.run(
                        _throughput(url, args.seconds, args.concurrency, shared, kind, state)
                    )
                    limiter = "cross-process (lock file)" if shared else "in-process"
                    name = "ping" if kind == "ping" else "market_chart/range (1 year daily, arrays)"
                    rows.append(
                        f"| {name} | {limiter} | {args.concurrency} | {n} | {took:.1f} | {n / took:.0f} "
                        f"| {1000 * cpu / n:.1f} |"
                    )
        with server_process(int(args.budget)) as (url, recorded):
            stats = asyncio.run(_budget(url, args.budget, args.budget_seconds + 4, state))
    times = [t for t, _ in recorded]
    status_429 = sum(1 for _, status in recorded if status == 429)
    window = args.budget_seconds
    rate = _window_rate(times, window)
    decoder = "orjson" if client_module._orjson is not None else "json (orjson not installed)"  # noqa: SLF001
    print(
        f"CoinGecko client benchmark — {platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, chart decoder {decoder}"
    )
    print()
    print(
        f"Chart and candle calls/s, concurrency {args.concurrency}, in-process limiter, call + parse + frame; "
        f"{args.seconds:g} s per side in {args.rounds} interleaved rounds"
    )
    print()
    print(
        "| payload | models (calls/s) | arrays (calls/s) | arrays / models | client CPU ms/call, models "
        "| client CPU ms/call, arrays | calls (models / arrays) |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(parsing))
    print()
    print("| endpoint | limiter | concurrency | requests | seconds | requests/s | client CPU ms/request |")
    print("|---|---|---|---|---|---|---|")
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
