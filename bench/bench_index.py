"""Benchmark of the index: `build_index` on 10 years x 100 coins, and the store step around it.

    .venv/bin/python bench/bench_index.py [--coins 100] [--years 10] [--repeat 7]

1. `build_index` with the spec's defaults (20 constituents, 35% cap, 3-year history, monthly) on
   synthetic random walks, median and best of `--repeat` runs; then with the options on (rank buffer,
   costs).
   The report's analysis: the three benchmarks (bitcoin is absent from the synthetic coins, so two are built)
   and the yearly attribution.
2. The pipeline step on a DuckDB file: the first build (read, build, write every month) and a rebuild
   with nothing changed (read, build, compare, write nothing), the daily run's case (docs/decisions.md#D16).

Prints a Markdown table for docs/benchmarks.md ("Index").
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from kallos.index import build_index
from kallos.index.step import build_step
from kallos.settings import load_settings
from kallos.store import open_store


def synthetic_market(n_coins: int, years: int, seed: int = 7) -> pd.DataFrame:
    """Random walks with drifting supplies; a third of the coins list late, 1% of rows missing."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2014-01-01", periods=365 * years, freq="D")
    n = len(days)
    close = rng.uniform(0.01, 100, n_coins) * np.exp(np.cumsum(rng.normal(0, 0.04, (n, n_coins)), axis=0))
    supply = rng.lognormal(16, 2, n_coins) * np.exp(np.cumsum(rng.normal(0, 0.001, (n, n_coins)), axis=0))
    cap = close * supply
    listed = np.where(np.arange(n_coins) % 3 == 2, rng.integers(0, n // 2, n_coins), 0)
    alive = np.arange(n)[:, None] >= listed[None, :]
    keep = alive & (rng.random((n, n_coins)) > 0.01)
    ids = np.array([f"coin-{i:03d}" for i in range(n_coins)], dtype=object)
    rows, cols = np.nonzero(keep)
    return pd.DataFrame(
        {
            "coin_id": ids[cols],
            "date": days.values[rows],
            "close": close[rows, cols],
            "market_cap": cap[rows, cols],
        }
    )


def seed_style_valuation(market: pd.DataFrame, constituents: pd.DataFrame) -> pd.Series:
    """The reference: valuation only (selection taken as given), as the seed wrote it: a pandas pivot and a
    per-day loop applying R_t = Σ w_i,t-1 r_i,t and drifting the weights."""
    closes = market.pivot(index="date", columns="coin_id", values="close").asfreq("D").ffill()
    returns = closes.pct_change().fillna(0.0)
    targets = {d: g.set_index("coin_id")["weight"] for d, g in constituents.groupby("selection_date")}
    dates = returns.index[returns.index >= min(targets)]
    weights = targets[dates[0]]
    level, out = 1000.0, {}
    for day in dates:
        if out:
            r = returns.loc[day, weights.index]
            ret = float((weights * r).sum())
            level *= 1.0 + ret
            weights = weights * (1.0 + r) / (1.0 + ret)
        out[day] = level
        if day in targets:
            weights = targets[day]
    return pd.Series(out)


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--coins", type=int, default=100)
    ap.add_argument("--years", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()

    market = synthetic_market(args.coins, args.years)
    build_index(market)  # warm-up: imports, first-touch allocations
    rows: list[tuple[str, float, float]] = []
    rows.append(("build_index, defaults", *timed(lambda: build_index(market), args.repeat)))
    rows.append(
        (
            "build_index, rank_buffer=5 + cost_bps=25",
            *timed(lambda: build_index(market, rank_buffer=5, cost_bps=25), args.repeat),
        )
    )
    res = build_index(market)
    rows.append(
        (
            "reference: seed-style per-day pandas loop, valuation only",
            *timed(lambda: seed_style_valuation(market, res.constituents), 1),
        )
    )
    from kallos.index.analysis import yearly_contributions
    from kallos.index.benchmarks import benchmark_values

    def analysis() -> None:
        benchmark_values(market, exclude=(), base_date=res.base_date, end=res.params["end"], build_kwargs={})
        yearly_contributions(res.attribution, res.values)

    rows.append(("report analysis: 3 benchmarks + yearly attribution", *timed(analysis, args.repeat)))
    ref = seed_style_valuation(market, res.constituents)
    gap = float(np.max(np.abs(ref.to_numpy() / res.values["index_value"].to_numpy() - 1.0)))

    with tempfile.TemporaryDirectory() as tmp:
        url = f"duckdb:///{Path(tmp) / 'bench.duckdb'}"
        store = open_store(url)
        store.init()
        ids = sorted(set(market["coin_id"]))
        store.upsert("coins", pd.DataFrame({"coingecko_id": ids, "symbol": ids, "name": ids}))
        store.upsert("daily_market_data", market)
        settings = load_settings(database_url=url)
        t0 = time.perf_counter()
        first = build_step(store, settings)
        rows.append(
            ("build_step on DuckDB, first build (writes all)", time.perf_counter() - t0, float("nan"))
        )
        rows.append(
            ("build_step on DuckDB, rebuild, nothing changed", *timed(lambda: build_step(store, settings), 3))
        )
        store.close()

    print(
        f"{args.coins} coins x {args.years} years ({len(market):,} rows); base date {res.base_date}, "
        f"{len(res.constituents['selection_date'].unique())} selections, {len(res.values):,} days valued; "
        f"first step wrote {first['months_written']} months, {first['value_rows']:,} values. "
        f"Python {platform.python_version()}, {platform.machine()}. "
        f"Reference vs build_index: max relative level difference {gap:.1e}."
    )
    print()
    print("| case | median s | best s |")
    print("|---|---|---|")
    for name, median, best in rows:
        best_s = "" if np.isnan(best) else f"{best:.3f}"
        print(f"| {name} | {median:.3f} | {best_s} |")


if __name__ == "__main__":
    main()
