"""Scale-out benchmark (docs/scaling.md, docs/benchmarks.md "Scale-out"); not a test, never run by pytest.

    .venv/bin/python bench/bench_scale.py [--coins 15000] [--days 3000] [--batch-coins 100]
        [--modes local1,local2,dask1,dask2] [--pg-coins 200] [--no-sink] [--json out.json]
    .venv/bin/python bench/bench_scale.py --pg-full kallos_scale [--coins 15000] [--days 3000] [--step-runs 2] [--keep]

What it measures (docs/decisions.md#D26 and D28), the way the indicator step runs at this size:
- compute: the universe streamed one batch of coins at a time. This process makes each batch's bars
  (`kallos.scale.simulate`, standing in for the store read), the executor computes `compute_indicators` on it
  (`local1`: in this process; `local2`: 2 worker processes; `daskN`: a `distributed.LocalCluster` of N worker
  processes, started for the run, its start-up timed apart), and this process writes each result to a Parquet
  sink (one file per batch, snappy), as the step upserts each batch. Peak memory is the largest sum of the RSS
  of this process and all its child processes (sampled every 0.2 s), and this process's own peak.
- PostgreSQL on a slice (`--pg-coins` coins x `--days` days, `--pg-url`): the slice's bars upserted, then the
  indicator step (`compute_step`) run on the partitioned layout with the local executor and with Dask (2
  workers), and the read and write rates of the parent measured alone; the figures at full size are
  extrapolated from these rates (printed).
- `--pg-full DBNAME`: the full recompute end to end, measured rather than extrapolated: a new database with the
  partitioned layout, the universe's bars loaded, then `kallos indicators compute --full` (read, compute,
  write) as its own process under `/usr/bin/time -v`; wall, CPU, peak RSS, rows/s, table sizes and the load
  average during the step are printed; the database is dropped afterwards.
Each mode's Parquet files are deleted when the mode ends (their total size is printed). `--no-sink` measures
the compute alone (results are still sent back to this process, then dropped).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

from kallos.indicators import compute_indicators
from kallos.scale.executor import DaskExecutor, LocalExecutor
from kallos.scale.simulate import coin_name, simulated_bars


class PeakRSS:
    """Sample the RSS of this process and its descendants in a thread; keep the peaks."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.total = 0
        self.parent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        try:
            own = me.memory_info().rss
            kids = 0
            for child in me.children(recursive=True):
                try:
                    kids += child.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            return
        self.parent = max(self.parent, own)
        self.total = max(self.total, own + kids)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def make_executor(mode: str) -> Any:
    kind, n = mode.rstrip("0123456789"), int(mode[len(mode.rstrip("0123456789")) :] or 1)
    if kind == "local":
        return LocalExecutor(n, preload=["kallos.indicators.engine"])
    if kind == "dask":
        return DaskExecutor(None, workers=n)
    raise SystemExit(f"unknown mode {mode!r}: use localN or daskN")


def run_mode(mode: str, coins: int, days: int, batch: int, sink_root: Path | None) -> dict[str, Any]:
    sink = sink_root / mode if sink_root else None
    if sink:
        sink.mkdir(parents=True, exist_ok=True)
    timers = {"make_bars": 0.0, "sink": 0.0}
    rows = bytes_written = 0

    def batches():
        for first in range(0, coins, batch):
            t = time.perf_counter()
            bars = simulated_bars(first, min(batch, coins - first), days, late_listing=0.0)
            timers["make_bars"] += time.perf_counter() - t
            yield bars

    with PeakRSS() as peak:
        t0 = time.perf_counter()
        executor = make_executor(mode)
        startup = time.perf_counter() - t0
        try:
            t1 = time.perf_counter()
            for i, result in enumerate(executor.map_batches(compute_indicators, batches())):
                t = time.perf_counter()
                if sink:
                    path = sink / f"batch-{i:05d}.parquet"
                    pq.write_table(pa.Table.from_pandas(result, preserve_index=False), path, compression="snappy")
                    bytes_written += path.stat().st_size
                rows += len(result)
                timers["sink"] += time.perf_counter() - t
            run = time.perf_counter() - t1
        finally:
            executor.close()
    if sink:
        shutil.rmtree(sink, ignore_errors=True)
    out = {
        "mode": mode,
        "sink": "parquet" if sink else "none",
        "coins": coins,
        "days": days,
        "batch_coins": batch,
        "rows": rows,
        "startup_s": round(startup, 2),
        "run_s": round(run, 1),
        "make_bars_s": round(timers["make_bars"], 1),
        "sink_s": round(timers["sink"], 1),
        "rows_per_s": round(rows / run),
        "parquet_gb": round(bytes_written / 1e9, 2),
        "peak_rss_total_gb": round(peak.total / 1e9, 2),
        "peak_rss_parent_gb": round(peak.parent / 1e9, 2),
    }
    print(json.dumps(out), flush=True)
    return out


def _table_bytes(store: Any, table: str) -> int:
    """Heap, TOAST and indexes of a (possibly partitioned) table."""
    sql = f"SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('{table}'::regclass)"
    return int(store.scalar(sql))


def run_pg_slice(
    url: str, coins: int, days: int, batch: int, step_modes: tuple[str, ...] = ("step_local1", "step_dask2")
) -> dict[str, Any]:
    """Upserts, reads and the indicator step (`--full`: read, compute, write, end to end, with the peak RSS of
    this process and its workers) on PostgreSQL's partitioned layout, on a slice of coins."""
    import psycopg

    from kallos.indicators.step import compute_step
    from kallos.settings import load_settings
    from kallos.store import open_store

    schema = f"bench_scale_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    out: dict[str, Any] = {"mode": "postgresql-slice", "coins": coins, "days": days}
    try:
        store = open_store(url, schema=schema)
        store.init(partitioned=True)
        bars = pd.concat(
            [
                simulated_bars(first, min(batch, coins - first), days, late_listing=0.0)
                for first in range(0, coins, batch)
            ],
            ignore_index=True,
        )
        ids = sorted(bars["coin_id"].unique())
        store.upsert("coins", pd.DataFrame({"coingecko_id": ids, "symbol": ids, "name": ids}))
        t = time.perf_counter()
        store.upsert("daily_market_data", bars)
        out["bars_rows"] = len(bars)
        out["bars_upsert_rows_per_s"] = round(len(bars) / (time.perf_counter() - t))
        out["bars_bytes_per_row"] = round(_table_bytes(store, "daily_market_data") / len(bars))
        t = time.perf_counter()
        read = store.read("daily_market_data", coins=ids, columns=["date", "open", "high", "low", "close", "volume"])
        out["bars_read_rows_per_s"] = round(len(read) / (time.perf_counter() - t))
        before = psutil.Process().memory_info().rss
        out["rss_before_steps_gb"] = round(before / 1e9, 2)
        for name in step_modes:
            executor, workers = ("dask", int(name[-1])) if "dask" in name else ("local", int(name[-1]))
            settings = load_settings(executor=executor, workers=workers)
            t = time.perf_counter()
            with PeakRSS() as peak:
                counts = compute_step(store, settings, full=True, batch_coins=batch)
            elapsed = time.perf_counter() - t
            out[f"{name}_s"] = round(elapsed, 1)
            out[f"{name}_rows_per_s"] = round(counts["rows_written"] / elapsed)
            out[f"{name}_peak_rss_gb"] = round(peak.total / 1e9, 2)  # this process and its workers
        indicators = store.read("daily_technical_indicators").drop(columns=["updated_at"])
        store.execute("TRUNCATE daily_technical_indicators")  # frees the space: the size below is fresh rows
        t = time.perf_counter()
        store.upsert("daily_technical_indicators", indicators)
        out["indicator_rows"] = len(indicators)
        out["indicator_insert_rows_per_s"] = round(len(indicators) / (time.perf_counter() - t))
        out["indicator_bytes_per_row"] = round(_table_bytes(store, "daily_technical_indicators") / len(indicators))
        changed = indicators.assign(rsi_14=indicators["rsi_14"] * 1.01)
        t = time.perf_counter()
        store.upsert("daily_technical_indicators", changed)
        out["indicator_reupsert_rows_per_s"] = round(len(indicators) / (time.perf_counter() - t))
        store.close()
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    print(json.dumps(out), flush=True)
    return out


def _parse_time_v(text: str) -> dict[str, Any]:
    """Wall, CPU and peak RSS from `/usr/bin/time -v`'s report."""
    out: dict[str, Any] = {}
    for line in text.splitlines():
        key, _, value = line.strip().rpartition(": ")
        if key == "User time (seconds)":
            out["user_s"] = float(value)
        elif key == "System time (seconds)":
            out["sys_s"] = float(value)
        elif key == "Maximum resident set size (kbytes)":
            out["peak_rss_gb"] = round(int(value) * 1024 / 1e9, 2)
        elif key.startswith("Elapsed (wall clock) time"):
            parts = [float(p) for p in value.split(":")]
            out["wall_s"] = round(sum(p * 60**i for i, p in enumerate(reversed(parts))), 1)
    return out


def run_full_pg(
    admin_url: str, dbname: str, coins: int, days: int, batch: int, keep: bool, step_runs: int = 1
) -> dict[str, Any]:
    """The full recompute end to end, measured: a database `dbname` is created (partitioned layout), the
    universe's bars are loaded batch by batch, then `kallos indicators compute --full` runs as its own process
    under `/usr/bin/time -v` (wall, CPU, peak RSS of the command), with the load average sampled every 30 s;
    the table sizes are read, and the database is dropped (unless `keep`)."""
    import subprocess

    import psycopg

    from kallos.store import open_store

    parts = admin_url.rsplit("/", 1)
    url = f"{parts[0]}/{dbname}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {dbname}")
        conn.execute(f"CREATE DATABASE {dbname}")
    out: dict[str, Any] = {"mode": "postgresql-full", "coins": coins, "days": days, "database": dbname}
    try:
        store = open_store(url)
        store.init(partitioned=True)
        ids = [coin_name(i) for i in range(coins)]
        store.upsert("coins", pd.DataFrame({"coingecko_id": ids, "symbol": ids, "name": ids}))
        t = time.perf_counter()
        cpu = time.process_time()
        n_bars = 0
        for first in range(0, coins, batch):
            bars = simulated_bars(first, min(batch, coins - first), days, late_listing=0.0)
            store.upsert("daily_market_data", bars)
            n_bars += len(bars)
            if first // batch % 10 == 0:
                print(f"bars: {n_bars:,} rows loaded, {time.perf_counter() - t:.0f} s", flush=True)
        out["bars_rows"] = n_bars
        out["bars_load_s"] = round(time.perf_counter() - t, 1)
        out["bars_load_cpu_s"] = round(time.process_time() - cpu, 1)
        out["bars_gb"] = round(_table_bytes(store, "daily_market_data") / 1e9, 2)
        store.execute("ANALYZE daily_market_data")
        store.close()
        print(json.dumps(out), flush=True)

        env = dict(os.environ, KALLOS_DATABASE_URL=url, KALLOS_PG_PARTITION_BY_YEAR="true", KALLOS_EXECUTOR="local")
        kallos = str(Path(sys.executable).with_name("kallos"))
        for run in range(1, step_runs + 1):
            # run 1 writes into empty indicator tables; later runs recompute over the stored rows (equal values:
            # staged and compared, nothing rewritten)
            key = "step" if run == 1 else f"step_run{run}"
            loads: list[float] = []
            stop = threading.Event()

            def sample(loads: list[float] = loads, stop: threading.Event = stop) -> None:
                while not stop.wait(30):
                    loads.append(os.getloadavg()[0])

            out[f"{key}_load_before"] = round(os.getloadavg()[0], 2)
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            t = time.perf_counter()
            proc = subprocess.run(
                ["/usr/bin/time", "-v", kallos, "indicators", "compute", "--full"],
                env=env,
                capture_output=True,
                text=True,
            )
            elapsed = time.perf_counter() - t
            stop.set()
            print(proc.stdout.strip(), flush=True)
            out[f"{key}_exit"] = proc.returncode
            if proc.returncode:
                print(proc.stderr[-3000:], flush=True)
            out[key] = _parse_time_v(proc.stderr)
            out[f"{key}_wall_s"] = round(elapsed, 1)
            out[f"{key}_load_during"] = [round(x, 1) for x in loads]
            out[f"{key}_load_after"] = round(os.getloadavg()[0], 2)
            store = open_store(url)
            rows = int(store.scalar("SELECT count(*) FROM daily_technical_indicators"))
            out["indicator_rows"] = rows
            out[f"{key}_rows_per_s"] = round(rows / elapsed)
            out["indicators_gb"] = round(_table_bytes(store, "daily_technical_indicators") / 1e9, 2)
            out["bars_gb"] = round(_table_bytes(store, "daily_market_data") / 1e9, 2)
            store.close()
            print(json.dumps(out), flush=True)
    finally:
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
    print(json.dumps(out), flush=True)
    return out


def extrapolate(pg: dict[str, Any], compute: list[dict[str, Any]], coins: int, days: int) -> None:
    full_rows = coins * days
    print(f"\nExtrapolation to {coins:,} coins x {days:,} days ({full_rows / 1e6:.0f}M bar rows):")
    for key in ("bars_read_rows_per_s", "indicator_insert_rows_per_s", "indicator_reupsert_rows_per_s"):
        if pg.get(key):
            print(f"  {key}: {pg[key]:,} rows/s -> {full_rows / pg[key] / 60:.0f} min at full size")
    if pg.get("indicator_bytes_per_row"):
        size = full_rows * pg["indicator_bytes_per_row"] / 1e9
        print(f"  indicators table on PostgreSQL: {pg['indicator_bytes_per_row']} B/row, {size:.0f} GB")
        size = full_rows * pg["bars_bytes_per_row"] / 1e9
        print(f"  bars table on PostgreSQL: {pg['bars_bytes_per_row']} B/row, {size:.0f} GB")
    for row in compute:
        scale = full_rows / max(1, row["rows"])
        print(f"  {row['mode']} (sink: {row['sink']}): {row['run_s'] * scale / 60:.1f} min at full size")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coins", type=int, default=15000)
    ap.add_argument("--days", type=int, default=3000)
    ap.add_argument("--batch-coins", type=int, default=100)
    ap.add_argument("--modes", default="local1,local2,dask1,dask2")
    ap.add_argument("--pg-coins", type=int, default=200, help="0 skips PostgreSQL")
    ap.add_argument(
        "--pg-url", default=os.environ.get("KALLOS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    ap.add_argument("--sink", type=Path, default=Path(tempfile.gettempdir()) / "kallos-bench-scale")
    ap.add_argument("--no-sink", action="store_true", help="compute only: results are received, not written")
    ap.add_argument("--json", type=Path, help="append each result as one JSON line to this file")
    ap.add_argument("--pg-steps", default="local1,dask2", help="the step on the slice: local1,local2,dask2")
    ap.add_argument(
        "--pg-full",
        metavar="DBNAME",
        help="measure the full recompute end to end at --coins x --days in a new database of this name (dropped after)",
    )
    ap.add_argument("--keep", action="store_true", help="--pg-full: keep the database")
    ap.add_argument("--step-runs", type=int, default=1, help="--pg-full: runs of the step (2nd: over stored rows)")
    args = ap.parse_args(argv)
    ram = psutil.virtual_memory().total / 1e9
    load = os.getloadavg()[0]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {ram:.0f} GB RAM, load {load:.1f}",
        flush=True,
    )
    results = []
    if args.pg_full:
        row = run_full_pg(
            args.pg_url, args.pg_full, args.coins, args.days, args.batch_coins, args.keep, args.step_runs
        )
        if args.json:
            with args.json.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
        return
    for mode in [m for m in args.modes.split(",") if m]:
        results.append(run_mode(mode, args.coins, args.days, args.batch_coins, None if args.no_sink else args.sink))
    pg: dict[str, Any] = {}
    if args.pg_coins:
        steps = tuple(f"step_{m}" for m in args.pg_steps.split(",") if m)
        pg = run_pg_slice(args.pg_url, args.pg_coins, args.days, args.batch_coins, steps)
        results.append(pg)
    if args.json:
        with args.json.open("a") as fh:
            for row in results:
                fh.write(json.dumps(row) + "\n")
    extrapolate(pg, [r for r in results if "run_s" in r], 15000, 3000)


if __name__ == "__main__":
    main()
