"""The indicator and signal steps store the same rows on the Dask executor (a 2-worker LocalCluster) as on the
local one, for a full run and for an incremental run after new bars; reruns write nothing."""

from __future__ import annotations

import pandas as pd
import pytest
from distributed import get_task_stream

from kallos.indicators.step import compute_step
from kallos.scale.simulate import simulated_bars
from kallos.settings import load_settings
from kallos.signals.step import generate_step
from kallos.store import Store, open_store

AUDIT = ["updated_at", "created_at", "run_id", "computed_at"]


def seed(store: Store, bars: pd.DataFrame) -> None:
    coins = sorted(bars["coin_id"].unique())
    store.upsert("coins", pd.DataFrame({"coingecko_id": coins, "symbol": coins, "name": coins}))
    store.upsert("daily_market_data", bars)


def table(store: Store, name: str) -> pd.DataFrame:
    frame = store.read(name)
    return frame.drop(columns=[c for c in AUDIT if c in frame.columns]).reset_index(drop=True)


def run_both(store: Store, settings) -> tuple[dict, dict]:
    ind = compute_step(store, settings, batch_coins=3)
    sig = generate_step(store, settings)
    return ind, sig


def task_names(stream) -> set[str]:
    return {str(t["key"]).split("-")[0] for t in stream.data}


@pytest.fixture
def local_store(tmp_path) -> Store:
    store = open_store(f"duckdb:///{tmp_path / 'local.duckdb'}")
    store.init()
    yield store
    store.close()


@pytest.mark.slow  # three full step runs on each executor and layout: tens of seconds each
def test_dask_executor_stores_exactly_what_the_local_one_stores(
    any_layout_store: Store,
    local_store: Store,
    dask_address: str,
    dask_client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On DuckDB, PostgreSQL, and PostgreSQL with the daily fact tables partitioned by year."""
    store = any_layout_store
    dask_client.wait_for_workers(2, timeout=120)
    bars = simulated_bars(0, 10, 400, seed=11)
    old = bars[bars["date"] < bars["date"].max() - pd.Timedelta(days=20)]
    local = load_settings(executor="local", workers=1)
    dask = load_settings(executor="dask", dask_scheduler=dask_address)
    import kallos.signals.step as signal_step

    monkeypatch.setattr(signal_step, "BATCH_COINS", 4)  # several signal batches in flight

    seed(local_store, old)
    seed(store, old)
    run_both(local_store, local)
    with get_task_stream(dask_client) as stream:
        ind, sig = run_both(store, dask)
    assert {"_compute_batch", "generate_signals"} <= task_names(stream)
    assert ind["full"] == 10 and sig["full"] == 10
    for name in ("daily_technical_indicators", "trading_signals"):
        pd.testing.assert_frame_equal(table(store, name), table(local_store, name), check_exact=True)
    signals = table(store, "trading_signals")
    assert len(table(store, "daily_technical_indicators")) == len(old)
    assert (signals["signal"] != "composite").sum() > 50  # rules fired: the comparison is not of empty frames

    # New bars: an incremental run on each executor.
    seed(local_store, bars)
    seed(store, bars)
    run_both(local_store, local)
    ind, sig = run_both(store, dask)
    assert ind["incremental"] == 10 and sig["incremental"] == 10
    for name in ("daily_technical_indicators", "trading_signals"):
        pd.testing.assert_frame_equal(table(store, name), table(local_store, name), check_exact=True)

    # Idempotent: a rerun on Dask finds everything up to date and changes nothing.
    before = {n: table(store, n) for n in ("daily_technical_indicators", "trading_signals")}
    ind, sig = run_both(store, dask)
    assert ind["up_to_date"] == 10 and ind["rows_written"] == 0 and sig["up_to_date"] == 10
    for name, frame in before.items():
        pd.testing.assert_frame_equal(table(store, name), frame, check_exact=True)
