"""Dashboard page latency on the demo database (goal: under 300 ms per page; docs/benchmarks.md).

Run:  .venv/bin/python bench/bench_dashboard.py [--coins 50] [--requests 15] [--db PATH]

Builds the demo's database (the default demo market: 50 coins, 2018-01-01 .. 2025-06-30) unless --db names one,
serves the dashboard with uvicorn on a loopback port, and times real HTTP requests to every page and its JSON
endpoint: the first request (cold: imports, the signal evaluation before it is cached, D96) and the median and
95th percentile of the next ones. In the same run it measures the alternative D92 rejected, one DuckDB
connection held for the server's life instead of a read-only open per request, so the cost of never holding the
file is a ratio on the same machine at the same moment.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from kallos import clock
from kallos.settings import load_settings
from kallos.store import Store, open_store
from kallos.web.access import StoreReader
from kallos.web.app import create_app

PAGES = ["/", "/runs", "/quality", "/market", "/market/bitcoin", "/index", "/signals", "/metrics"]


class HeldReader(StoreReader):
    """The rejected alternative: one read-only connection for the server's life (it would block `kallos run`)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._held: Store = open_store(url, read_only=True)

    def _run(self, fn):  # type: ignore[no-untyped-def]
        return "ok", fn(self._held)


def serve(app, port: int) -> uvicorn.Server:  # type: ignore[no-untyped-def]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server


def measure(base: str, paths: list[str], n: int) -> dict[str, tuple[float, float, float, float]]:
    """Per path: cold wall ms, median and p95 wall ms, and median CPU ms of this process per request (server and
    client share the process; CPU time does not grow when other jobs load the machine, wall time does)."""
    out = {}
    with httpx.Client(base_url=base, timeout=60) as http:
        for path in paths:
            t0 = time.perf_counter()
            assert http.get(path).status_code == 200, path
            cold = time.perf_counter() - t0
            times, cpu = [], []
            for _ in range(n):
                t0, c0 = time.perf_counter(), time.process_time()
                r = http.get(path)
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
                assert r.status_code == 200, path
            times.sort()
            p95 = times[int(0.95 * (len(times) - 1))]
            out[path] = (cold * 1000, statistics.median(times) * 1000, p95 * 1000, statistics.median(cpu) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--coins", type=int, default=50)
    ap.add_argument("--requests", type=int, default=15)
    ap.add_argument("--db", type=Path, default=None)
    args = ap.parse_args()
    if args.db is None:
        from kallos.pipeline.demo import DemoMarket, run_demo

        out = Path(tempfile.mkdtemp(prefix="kallos-bench-dash-"))
        t0 = time.perf_counter()
        result = run_demo(out, market=DemoMarket(n_coins=args.coins))
        print(f"demo database built in {time.perf_counter() - t0:.1f} s: {result.summary.status}")
        db, now = out / "demo.duckdb", result.server_now
    else:
        db, now = args.db, dt.datetime.now(dt.UTC)
    clock.set_now(now)
    url = f"duckdb:///{db.resolve()}"
    store = open_store(url, read_only=True)
    rows = {t: store.scalar(f"SELECT count(*) FROM {t}") for t in ("daily_market_data", "trading_signals")}
    store.close()
    print(f"store: {db} ({db.stat().st_size / 1e6:.0f} MB), {rows}")
    paths = PAGES + ["/api" + ("/overview" if p == "/" else p) for p in PAGES if p != "/metrics"]
    settings = load_settings(database_url=url)
    per_request = serve(create_app(settings), 18051)
    held = serve(create_app(settings, reader=HeldReader(url)), 18052)
    try:
        a = measure("http://127.0.0.1:18051", paths, args.requests)
        b = measure("http://127.0.0.1:18052", paths, args.requests)
    finally:
        per_request.should_exit = held.should_exit = True
    print(f"load average before: {os.getloadavg()[0]:.1f} (2 cores)")
    head = (
        f"{'page':<22} {'cold ms':>8} {'median ms':>10} {'p95 ms':>8} {'cpu ms':>7} | {'held: median':>12} {'cpu':>6}"
    )
    print("\n" + head + f" {'ratio cpu':>9}")
    for path in paths:
        cold, med, p95, cpu = a[path]
        held = b[path]
        print(f"{path:<22} {cold:8.0f} {med:10.1f} {p95:8.1f} {cpu:7.1f} | {held[1]:12.1f} {held[3]:6.1f} "
              f"{cpu / max(held[3], 1e-3):9.2f}")  # fmt: skip
    print(
        f"\nworst median {max(v[1] for v in a.values()):.0f} ms, worst p95 {max(v[2] for v in a.values()):.0f} ms, "
        f"worst CPU {max(v[3] for v in a.values()):.0f} ms per request (goal < 300 ms per page); "
        f"load average after: {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
