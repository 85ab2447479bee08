"""Benchmark of `load_features`: 1,000 coins x 3,000 days from DuckDB and from PostgreSQL.

    .venv/bin/python bench/bench_features.py [--coins 1000] [--days 3000] [--repeat 3] [--backends duckdb,postgresql]
        [--keep NAME] [--cases hand_join,load_features]

The stores are filled once with synthetic random-walk OHLCV bars, indicator and signal rows (random values in the
tables' shape; `--exact` computes them with the engines instead), an index basket per month (the 20 largest caps)
and weekly alternative data. Then each case runs
in a fresh child process (so its peak RSS is its own; the interpreter with Kallos imported is measured too):

1. `load_features` of every coin and day (the frame: bars, 45 indicators, 15 signal columns, rank, age, index weight,
   21 alternative-data columns, labels at 1, 7 and 30 days).
2. The alternative: what a user writes by hand today — read `daily_market_data`, `daily_technical_indicators` and
   the composite rows of `trading_signals` joined to `coins` for the CoinGecko id (through the same Arrow bulk
   reads, so the comparison is about the assembly, not the driver), then merge them on (coin_id, date) in pandas
   (no rank, index, alternative data or labels: it does less work).

Prints a Markdown table for docs/benchmarks.md ("Features").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from kallos.indicators.contract import OUTPUT_COLUMNS
from kallos.indicators.engine import compute_indicators
from kallos.signals.engine import generate_signals
from kallos.signals.rules import RULE_IDS
from kallos.store import open_store
from kallos.store.schema import ALT_DATA_COLUMNS

PG_URL = os.environ.get("KALLOS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
CHUNK = 100


def synthetic_bars(coins: list[str], days: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2017-01-01", periods=days, freq="D")
    n = len(coins)
    close = rng.uniform(1e-3, 1e3, n) * np.exp(np.cumsum(rng.normal(0, 0.04, (days, n)), axis=0))
    spread = np.abs(rng.normal(0, 0.02, (days, n))) + 0.005
    frame = pd.DataFrame(
        {
            "coin_id": np.tile(np.asarray(coins, dtype=object), days),
            "date": np.repeat(dates.to_numpy(), n),
            "close": close.ravel(),
            "high": (close * (1 + spread)).ravel(),
            "low": (close * (1 - spread)).ravel(),
            "volume": rng.uniform(1e4, 1e9, (days, n)).ravel(),
            "market_cap": (close * rng.lognormal(16, 2, n)).ravel(),
        }
    )
    frame["open"] = frame["close"] * (1 + rng.normal(0, 0.004, len(frame))).clip(0.99, 1.01)
    frame["open"] = frame["open"].clip(frame["low"], frame["high"])
    return frame.sort_values(["coin_id", "date"], kind="stable").reset_index(drop=True)


def indicators_and_signals(bars: pd.DataFrame, *, exact: bool, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The engines' output, or (`exact` False, the default at full size) random values in the same shape: reading
    and joining cost the same whatever the numbers, and computing 3 million rows of signals on a loaded machine
    would take longer than the benchmark. Rule rows fire on about 5% of bars, as on real data."""
    if exact:
        ind = compute_indicators(bars[["coin_id", "date", "open", "high", "low", "close", "volume"]])
        return ind, generate_signals(ind.drop(columns=["ohlc_source"]).assign(close=bars["close"].to_numpy()))
    rng = np.random.default_rng(seed)
    n = len(bars)
    ind = pd.DataFrame(
        {"coin_id": bars["coin_id"].to_numpy(), "date": bars["date"].to_numpy(), "ohlc_source": "candles"}
    )
    for col in OUTPUT_COLUMNS:
        ind[col] = rng.uniform(0, 100, n)
    score = rng.uniform(-1, 1, n)
    comp = pd.DataFrame(
        {
            "coin_id": ind["coin_id"],
            "date": ind["date"],
            "signal": "composite",
            "direction": np.sign(score).astype("int64"),
            "strength": np.abs(score),
            "composite_score": score,
            "action": np.where(score > 0.5, "buy", np.where(score < -0.5, "sell", "hold")),
        }
    )
    fired = rng.random(n) < 0.05
    rules = pd.DataFrame(
        {
            "coin_id": ind["coin_id"][fired],
            "date": ind["date"][fired],
            "signal": rng.choice(RULE_IDS, int(fired.sum())),
            "direction": 1,
            "strength": rng.uniform(0, 1, int(fired.sum())),
        }
    )
    return ind, pd.concat([comp, rules], ignore_index=True).assign(config_hash="bench")


def fill(targets: list[tuple[str, str, str | None]], n_coins: int, days: int, *, exact: bool) -> None:
    """Compute every chunk once and write it to each target store (backend, url, schema)."""
    stores = [open_store(url, schema=schema) for _, url, schema in targets]
    coins = [f"coin-{i:04d}" for i in range(n_coins)]
    for store in stores:
        store.init()
        store.upsert("coins", pd.DataFrame({"coingecko_id": coins, "symbol": coins, "name": coins}))
    t0 = time.perf_counter()
    for lo in range(0, n_coins, CHUNK):
        part = coins[lo : lo + CHUNK]
        bars = synthetic_bars(part, days, seed=lo)
        ind, sig = indicators_and_signals(bars, exact=exact, seed=lo)
        alt = bars.loc[bars["date"].dt.day_of_week == 0, ["coin_id", "date"]].copy()
        for i, col in enumerate(ALT_DATA_COLUMNS):
            alt[col] = np.arange(len(alt), dtype="float64") + i
        for store in stores:
            store.upsert("daily_market_data", bars)
            store.upsert("daily_technical_indicators", ind)
            store.upsert("trading_signals", sig)
            store.upsert("coin_details_history", alt.assign(source="details"))
        print(f"  filled {lo + len(part)}/{n_coins} coins ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    for store in stores:
        caps = store.query(
            "SELECT c.coingecko_id AS coin_id, d.date, d.market_cap FROM daily_market_data d "
            "JOIN coins c ON c.coin_id = d.coin_id WHERE EXTRACT(day FROM d.date + 1) = 1"
        )
        top = caps.sort_values("market_cap", ascending=False).groupby("date").head(20)
        top = top.assign(
            index_name="default",
            selection_date=top["date"],
            year=top["date"].dt.year,
            month=top["date"].dt.month,
            rank=top.groupby("date")["market_cap"].rank(ascending=False).astype(int),
            weight=top["market_cap"] / top.groupby("date")["market_cap"].transform("sum"),
        )
        store.upsert("index_monthly_constituents", top.drop(columns=["date"]))
        store.close()


CHILD = """
import json, sys, time
from kallos.store import open_store
url, schema, case = sys.argv[1], sys.argv[2] or None, sys.argv[3]
store = open_store(url, schema=schema)
import resource as _r
_ru = _r.getrusage(_r.RUSAGE_SELF)
cpu0 = _ru.ru_utime + _ru.ru_stime  # CPU of every thread of the child (DuckDB's workers too), after imports
t0 = time.perf_counter()
if case == "load_features":
    from kallos.features import load_features
    frame = load_features(store=store)
elif case == "hand_join":
    from kallos.indicators.contract import OUTPUT_COLUMNS
    join = "JOIN coins c ON c.coin_id = t.coin_id"
    cols = ", ".join(f"t.{c}" for c in OUTPUT_COLUMNS)
    m = store.query_bulk('SELECT c.coingecko_id AS coin_id, t."date", t."open", t."high", t."low", t."close", '
                         f"t.volume, t.market_cap FROM daily_market_data t {join}")
    i = store.query_bulk(f'SELECT c.coingecko_id AS coin_id, t."date", t.ohlc_source, {cols} '
                         f"FROM daily_technical_indicators t {join}")
    s = store.query_bulk('SELECT c.coingecko_id AS coin_id, t."date", t.composite_score, t.action '
                         f"FROM trading_signals t {join} WHERE t.signal = 'composite'")
    frame = m.merge(i, on=["coin_id", "date"], how="left").merge(s, on=["coin_id", "date"], how="left")
else:
    frame = None
wall = time.perf_counter() - t0
import resource
ru = resource.getrusage(resource.RUSAGE_SELF)
cpu = ru.ru_utime + ru.ru_stime - cpu0
print(json.dumps({"wall": wall, "cpu": cpu, "rows": 0 if frame is None else len(frame),
                  "columns": 0 if frame is None else frame.shape[1],
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_child(url: str, schema: str | None, case: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, url, schema or "", case], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))  # peak_mib: the child's own peak RSS


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--coins", type=int, default=1000)
    ap.add_argument("--days", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backends", default="duckdb,postgresql")
    ap.add_argument("--exact", action="store_true", help="Fill with the engines' indicators and signals.")
    ap.add_argument("--cases", default="hand_join,load_features", help="Which cases to time (comma-separated).")
    ap.add_argument(
        "--keep",
        metavar="NAME",
        help="Keep the filled stores (/tmp/NAME.duckdb, PostgreSQL schema NAME) and reuse "
        "them when they exist (to re-measure without refilling).",
    )
    args = ap.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, load {os.getloadavg()}", file=sys.stderr)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        import psycopg

        targets = []
        reuse = False
        for backend in args.backends.split(","):
            if backend == "duckdb":
                path = Path(f"/tmp/{args.keep}.duckdb") if args.keep else Path(tmp) / "bench.duckdb"
                reuse = reuse or path.exists()
                targets.append(("duckdb", f"duckdb:///{path}", None))
            else:
                schema = args.keep or f"bench_{uuid.uuid4().hex[:8]}"
                with psycopg.connect(PG_URL, autocommit=True) as conn:
                    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                targets.append(("postgresql", PG_URL, schema))
        try:
            if not reuse:
                t0 = time.perf_counter()
                fill(targets, args.coins, args.days, exact=args.exact)
                print(f"filled in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            for backend, url, schema in targets:
                # The child with nothing to do: the interpreter and its imports (the RSS floor of every case).
                base = run_child(url, schema, "imports")
                for case in args.cases.split(","):
                    runs = [run_child(url, schema, case) for _ in range(args.repeat)]
                    walls = [r["wall"] for r in runs]
                    cpus = [r["cpu"] for r in runs]
                    peaks = [r["peak_mib"] for r in runs]
                    rows.append(
                        {
                            "backend": backend,
                            "case": case,
                            "median_s": statistics.median(walls),
                            "best_s": min(walls),
                            "median_cpu_s": statistics.median(cpus),
                            "peak_rss_mib": max(peaks),
                            "rows": runs[0]["rows"],
                            "columns": runs[0]["columns"],
                            "floor_mib": base["peak_mib"],
                        }
                    )
                    print(rows[-1], file=sys.stderr)
        finally:
            for backend, _, schema in targets:
                if backend == "postgresql" and not args.keep:
                    with psycopg.connect(PG_URL, autocommit=True) as conn:
                        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print("| backend | case | median s | best s | median CPU s | peak RSS MiB (imports alone) | rows | columns |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['backend']} | {r['case']} | {r['median_s']:.2f} | {r['best_s']:.2f} | {r['median_cpu_s']:.2f} | "
            f"{r['peak_rss_mib']:.0f} ({r['floor_mib']:.0f}) | {r['rows']:,} | {r['columns']} |"
        )
    for backend in dict.fromkeys(r["backend"] for r in rows):
        by = {r["case"]: r for r in rows if r["backend"] == backend}
        if {"hand_join", "load_features"} <= by.keys():
            ratio = by["hand_join"]["median_s"] / by["load_features"]["median_s"]
            cpu_ratio = by["hand_join"]["median_cpu_s"] / by["load_features"]["median_cpu_s"]
            print(f"\n{backend}: hand join / load_features = {ratio:.2f}x (median wall), {cpu_ratio:.2f}x (CPU)")


if __name__ == "__main__":
    main()
