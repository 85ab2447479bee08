"""A backfill killed with SIGKILL at random points and run again converges to the database of one clean run.

The CLI runs as a subprocess against a fake server in this process; "the same database" compares the data
tables by natural key and value, leaving out ledger rows, run ids and audit timestamps (docs/decisions.md#D15).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from kallos import clock
from kallos.fake import FakeCoinGecko
from kallos.fake.dataset import Dataset
from kallos.ingest.backfill import backfill
from kallos.ingest.universe import sync_universe
from kallos.store import Store, open_store

from .helpers import run_with_client, settings_for

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

COINS = ["bitcoin", "ethereum", "tether", "shiba-inu", "binancecoin", "cardano"]
COMPARED = {
    "coins": ["coingecko_id", "symbol", "name", "status", "platforms", "category", "first_seen", "last_seen"],
    "coin_categories": ["coin_id", "category_id", "name", "first_seen", "last_seen"],
    "daily_market_data": [
        "coin_id",
        "date",
        "open",
        "high",
        "low",
        "close",
        "volume",
        "market_cap",
        "ohlc_source",
        "close_source",
        "snapped_at",
    ],
    "market_snapshots": ["coin_id", "fetched_at", "price", "market_cap", "volume", "source"],
    "data_quality_events": ["coin_id", "date", "source", "field", "reason", "action", "raw", "detail"],
    "ingestion_watermarks": [
        "coin_id",
        "series",
        "first_date",
        "last_date",
        "dirty_from",
        "missing_dates",
        "state",
    ],
}


def snapshot(store: Store) -> dict[str, pd.DataFrame]:
    out = {}
    for table, cols in COMPARED.items():
        frame = store.read(table, columns=cols)
        out[table] = frame.sort_values(cols[:3]).reset_index(drop=True)
    return out


def synced_store(path: Path, srv: FakeCoinGecko) -> None:
    store = open_store(f"duckdb:///{path}")
    store.init()
    settings = settings_for(srv.url, "pro")
    clock.set_now(srv.now)
    run_with_client(settings, lambda cg: sync_universe(store, cg, settings))
    store.close()


def coins_done(path: Path) -> int:
    store = open_store(f"duckdb:///{path}")
    try:
        return int(
            store.scalar("SELECT count(*) FROM ingestion_watermarks WHERE series = 'market_chart'") or 0
        )
    finally:
        store.close()


def cli_env(srv: FakeCoinGecko, db: Path, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KALLOS_") and k != "COINGECKO_API_KEY"}
    env.update(
        {
            "KALLOS_DATABASE_URL": f"duckdb:///{db}",
            "KALLOS_COINGECKO_BASE_URL": srv.url,
            "KALLOS_COINGECKO_PLAN": "pro",
            "COINGECKO_API_KEY": "test-key",
            "KALLOS_NOW": srv.now_header,
            "KALLOS_RATE_LIMIT_PER_MINUTE": "1500",
            "KALLOS_RATE_LIMIT_DIR": str(tmp / "ratelimit"),
            "KALLOS_CONCURRENCY": "2",
            "KALLOS_LOG_FORMAT": "json",
        }
    )
    return env


def test_killed_backfill_converges_to_a_clean_run(tmp_path: Path, csv_dataset: Dataset) -> None:
    with FakeCoinGecko(dataset=csv_dataset, plan="pro") as srv:
        clean_db, killed_db = tmp_path / "clean.duckdb", tmp_path / "killed.duckdb"
        synced_store(clean_db, srv)
        synced_store(killed_db, srv)
        clean = open_store(f"duckdb:///{clean_db}")
        settings = settings_for(srv.url, "pro")
        clock.set_now(srv.now)
        result = run_with_client(settings, lambda cg: backfill(clean, cg, settings, coins=COINS))
        assert result["status"] == "success"
        expected = snapshot(clean)
        clean.close()

        env = cli_env(srv, killed_db, tmp_path)
        cmd = [
            sys.executable,
            "-m",
            "kallos.cli.main",
            "market",
            "backfill",
            "--coins",
            ",".join(COINS),
            "--no-progress",
        ]
        rng = random.Random(20261125)
        kills, progress = 0, []
        for _ in range(2):
            # Kill after a random number of stored coins plus a random delay: inside a fetch or a write.
            target, delay = rng.randint(1, len(COINS) - 2), rng.uniform(0.0, 0.4)
            proc = subprocess.Popen(
                cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            assert proc.stderr is not None
            stored = 0
            for line in proc.stderr:
                stored += '"coin stored"' in line
                if stored >= target:
                    time.sleep(delay)
                    break
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
            proc.communicate(timeout=60)
            progress.append(coins_done(killed_db))
        final = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, final.stderr[-2000:]
        assert kills >= 1, "no run was killed: the backfill finished too fast to test resumption"
        assert any(0 < n < len(COINS) for n in progress), (
            f"no kill landed mid-backfill: coins done {progress}"
        )
        assert progress == sorted(progress)

    killed = open_store(f"duckdb:///{killed_db}")
    try:
        got = snapshot(killed)
    finally:
        killed.close()
    for table, frame in expected.items():
        pd.testing.assert_frame_equal(got[table], frame, check_dtype=False, obj=table)
    bars = got["daily_market_data"]
    assert not bars.duplicated(["coin_id", "date"]).any()
    assert set(bars["coin_id"]) == set(COINS)
