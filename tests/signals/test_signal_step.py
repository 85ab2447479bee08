"""The signals step against a real store: idempotent, incremental = full, config changes replace rows."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from kallos.errors import DataValidationError
from kallos.signals import generate_signals, parse_signal_config
from kallos.signals.step import evaluate_step, generate_step
from kallos.store import Store
from kallos.store.schema import COMPOSITE_COLUMNS, INDICATOR_COLUMNS

from .signal_frames import day, realistic_frame

KEY = ["coin_id", "date", "signal"]
COLS = ["coin_id", "date", "signal", "direction", "strength", "composite_score", "action", "config_hash"]


def frames() -> pd.DataFrame:
    return pd.concat([realistic_frame(160, "alpha", 21), realistic_frame(140, "beta", 22)], ignore_index=True)


def seed(store: Store, f: pd.DataFrame) -> None:
    coins = sorted(f["coin_id"].unique())
    store.upsert("coins", pd.DataFrame({"coingecko_id": coins, "symbol": coins, "name": coins}))
    store.upsert("daily_market_data", f[["coin_id", "date", "close"]])
    ind = [c for c in f.columns if c in set(INDICATOR_COLUMNS) | set(COMPOSITE_COLUMNS)]
    store.upsert("daily_technical_indicators", f[["coin_id", "date", *ind]])


def stored(store: Store) -> pd.DataFrame:
    out = store.read("trading_signals", columns=COLS[1:])
    return normalise(out)


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.loc[:, COLS].sort_values(KEY).reset_index(drop=True)
    out["direction"] = out["direction"].astype("int64")
    out["action"] = out["action"].astype(object).where(out["action"].notna(), None)
    out["coin_id"] = out["coin_id"].astype(object)
    out["signal"] = out["signal"].astype(object)
    out["config_hash"] = out["config_hash"].astype(object)
    return out


def expected(f: pd.DataFrame, config=None) -> pd.DataFrame:
    return normalise(generate_signals(f, config))


def test_generate_stores_the_pure_result_and_a_rerun_writes_nothing(store: Store) -> None:
    f = frames()
    seed(store, f)
    counts = generate_step(store, run_id="r1")
    assert counts["full"] == 2 and counts["composite_rows"] == len(f)
    pd.testing.assert_frame_equal(stored(store), expected(f))
    again = generate_step(store)
    assert (
        again["coins"] == 0 and again["up_to_date"] == 2 and again["rule_rows"] + again["composite_rows"] == 0
    )
    wm = store.read("ingestion_watermarks", columns=["series", "last_date", "state"])
    assert set(wm["series"]) == {"signals"}
    assert wm.set_index("coin_id").loc["alpha", "last_date"] == day(159)
    assert json.loads(wm["state"].iloc[0])["config_hash"] == counts["config_hash"]


def test_appended_days_are_computed_incrementally_and_equal_a_full_run(store: Store) -> None:
    f = frames()
    seed(store, f.loc[f["date"] <= day(100)])
    generate_step(store)
    seed(store, f)
    counts = generate_step(store)
    assert counts["incremental"] == 2 and counts["full"] == 0
    assert counts["composite_rows"] == len(f.loc[f["date"] > day(100)])
    pd.testing.assert_frame_equal(stored(store), expected(f))


def test_a_filled_hole_and_a_changed_past_row_recompute_from_that_day(store: Store) -> None:
    f = frames()
    hole = (f["coin_id"] == "alpha") & (f["date"] == day(60))
    seed(store, f.loc[~hole])
    generate_step(store)
    assert not ((stored(store)["coin_id"] == "alpha") & (stored(store)["date"] == day(60))).any()
    # the hole is filled, and beta's indicators of day 90 are rewritten (as an indicator recompute would)
    g = f.copy()
    beta90 = (g["coin_id"] == "beta") & (g["date"] == day(90))
    was_oversold = g.loc[beta90, "rsi_14"].iloc[0] < 30
    g.loc[beta90, "rsi_14"] = 50.0 if was_oversold else 5.0
    seed(store, g)
    counts = generate_step(store)
    assert counts["incremental"] == 2
    pd.testing.assert_frame_equal(stored(store), expected(g))
    rows = stored(store)
    beta_rsi = rows.loc[(rows["coin_id"] == "beta") & (rows["date"] == day(90)), "signal"]
    assert ("rsi_oversold" in set(beta_rsi)) is (not was_oversold)


def test_a_new_config_replaces_every_row(store: Store) -> None:
    f = frames()
    seed(store, f)
    first = generate_step(store)
    cfg = parse_signal_config({"rules": {"bollinger": {"enabled": False}, "rsi": {"oversold": 40}}})
    second = generate_step(store, config=cfg)
    assert second["full"] == 2 and second["config_hash"] != first["config_hash"]
    rows = stored(store)
    assert set(rows["config_hash"]) == {second["config_hash"]}
    assert not rows["signal"].str.startswith("bb_").any()
    pd.testing.assert_frame_equal(rows, expected(f, cfg))


def test_coins_and_full_options(store: Store) -> None:
    f = frames()
    seed(store, f)
    counts = generate_step(store, coins=["beta", "gamma"])
    assert counts["coins"] == 1 and counts["no_indicators"] == 1
    assert set(stored(store)["coin_id"]) == {"beta"}
    full = generate_step(store, full=True)
    assert full["full"] == 2 and full["coins"] == 2
    pd.testing.assert_frame_equal(stored(store), expected(f))


def test_evaluate_step_reports_stored_signals(store: Store) -> None:
    with pytest.raises(DataValidationError, match="no stored signals"):
        evaluate_step(store)
    f = frames()
    seed(store, f)
    generate_step(store)
    rep = evaluate_step(store, "1,7")
    assert set(rep["horizon"]) == {1, 7}
    assert (rep["count"] <= rep["occurrences"]).all()
    n_buy = int(((stored(store)["signal"] == "composite") & (stored(store)["action"] == "buy")).sum())
    if n_buy:
        assert (
            rep.loc[(rep["signal"] == "composite_buy") & (rep["horizon"] == 1), "occurrences"].iloc[0]
            == n_buy
        )
