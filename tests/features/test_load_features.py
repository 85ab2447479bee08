"""`load_features` reads the store and gives what `build_features` computes from the same bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kallos.errors import InputError
from kallos.features import build_features, load_features
from kallos.indicators.step import compute_step
from kallos.settings import load_settings
from kallos.signals.step import generate_step
from kallos.store import Store

from .feature_frames import alt, bars, constituents


def seed(store: Store, b: pd.DataFrame) -> None:
    coins = sorted(b["coin_id"].unique())
    store.upsert("coins", pd.DataFrame({"coingecko_id": coins, "symbol": coins, "name": coins}))
    store.upsert("daily_market_data", b)
    settings = load_settings(database_url="duckdb:///unused.duckdb", min_coverage=0.0, workers=1)
    compute_step(store, settings, workers=1)
    generate_step(store, settings)
    c = constituents()
    store.upsert(
        "index_monthly_constituents",
        c.assign(year=c["selection_date"].dt.year, month=c["selection_date"].dt.month, rank=1, market_cap=1.0),
    )
    other = c.assign(index_name="equal", year=2021, month=c["selection_date"].dt.month, rank=1, market_cap=1.0)
    store.upsert("index_monthly_constituents", other.assign(weight=1.0))  # another named index: not read
    store.upsert("coin_details_history", alt().assign(source="details"))


def test_load_equals_build_on_the_same_bars(store: Store) -> None:
    b = bars()
    seed(store, b)
    loaded = load_features(store=store)
    built = build_features(b, constituents=constituents(), alt=alt())
    assert list(loaded.columns) == list(built.columns)
    pd.testing.assert_frame_equal(loaded, built, check_dtype=False, rtol=1e-12)


def test_a_window_keeps_labels_from_later_stored_bars_and_rank_among_all_coins(store: Store) -> None:
    b = bars()
    seed(store, b)
    full = load_features(store=store, naming="pandas-ta", horizons=(7,))
    part = load_features(
        store=store, coins=["beta"], start="2021-05-01", end="2021-05-31", naming="pandas-ta", horizons=(7,)
    )
    assert part["date"].min() == pd.Timestamp("2021-05-01") and part["date"].max() == pd.Timestamp("2021-05-31")
    assert set(part["coin_id"]) == {"beta"}
    same = full.loc[full["coin_id"].eq("beta") & full["date"].between("2021-05-01", "2021-05-31")]
    pd.testing.assert_frame_equal(part.reset_index(drop=True), same.reset_index(drop=True), check_dtype=False)
    assert part["target_return_7"].notna().all()  # the labels at the window's end read bars after it
    top = load_features(store=store, top=1, end="2021-06-01", columns=["market_cap_rank"])
    assert list(top.columns) == ["coin_id", "date", "market_cap_rank"] and top["coin_id"].nunique() == 1
    with pytest.raises(InputError, match="not in the store"):
        load_features(store=store, coins=["nope"])


def test_an_empty_store_gives_an_empty_frame(store: Store) -> None:
    frame = load_features(store=store)
    assert frame.empty and "target_return_30" in frame.columns and np.all(frame.columns[:2] == ["coin_id", "date"])


def test_bars_without_indicator_or_signal_rows_get_empty_columns(store: Store) -> None:
    """The Arrow columns are placed into the output row by row: rows a source lacks stay empty, the others equal."""
    b = bars()
    seed(store, b)
    full = load_features(store=store, horizons=(1,))
    beta = store.coin_map()["beta"]
    store.execute(f"DELETE FROM daily_technical_indicators WHERE coin_id = {beta} AND \"date\" = '2021-05-02'")
    store.execute(f"DELETE FROM trading_signals WHERE coin_id = {beta} AND \"date\" >= '2021-06-01'")
    part = load_features(store=store, horizons=(1,))
    hole = (part["coin_id"] == "beta") & (part["date"] == pd.Timestamp("2021-05-02"))
    later = (part["coin_id"] == "beta") & (part["date"] >= pd.Timestamp("2021-06-01"))
    assert part.loc[hole, "rsi_14"].isna().all() and part.loc[hole, "ohlc_source"].isna().all()
    assert part.loc[later, "composite_score"].isna().all() and part.loc[later, "signal_action"].isna().all()
    assert part.loc[later, "signal_rsi_oversold"].isna().all()
    same = ~hole & ~later
    pd.testing.assert_frame_equal(part[same], full[same])
    assert full.loc[hole, "rsi_14"].notna().all() and full.loc[later, "signal_action"].notna().all()
