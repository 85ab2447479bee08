"""The index step and CLI against a real store (DuckDB, and PostgreSQL where available)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kallos.cli.main import main
from kallos.errors import IndexConstructionError
from kallos.index import build_index
from kallos.index.exclusions import excluded_coins
from kallos.index.step import (
    index_step,
    last_month_end,
    read_base_date,
    read_index,
    report_step,
)
from kallos.pipeline.contract import StepContext
from kallos.settings import Settings, load_settings
from kallos.store import Store, open_store

from .index_frames import random_market

PARAMS = {"n_constituents": 20, "max_weight": 0.35, "min_history_days": 1095, "min_coverage": 0.9}


def market_through(last: str, *, seed: int = 21, n_coins: int = 6) -> pd.DataFrame:
    """Random coins from 2019-01-01 with enough history for the spec's 3-year rule by 2022."""
    m = random_market(seed, n_coins=n_coins, start="2019-01-01", days=1500, late_listings=False)
    return m[m["date"] <= last].reset_index(drop=True)


def seed(store: Store, market: pd.DataFrame, *, extra_coins: tuple[str, ...] = ()) -> None:
    ids = sorted(set(market["coin_id"]) | set(extra_coins))
    store.upsert("coins", pd.DataFrame({"coingecko_id": ids, "symbol": ids, "name": ids}))
    store.upsert("daily_market_data", market)


def settings(store: Store, **kw) -> Settings:
    return load_settings(database_url="duckdb:///unused.duckdb", **kw)


NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def build(
    store: Store, s: Settings, *, run_id: str = "test", now: dt.datetime = NOW, **kw: Any
) -> dict[str, Any]:
    """Run the step for the default index; its outcome flattened as the default index's figures."""
    outcome = index_step(StepContext(store=store, settings=s, run_id=run_id, now=now), **kw)
    extra = dict(outcome.extra)
    out: dict[str, Any] = {"status": outcome.status, "reason": outcome.reason, **extra}
    out.update({k.split(".", 1)[1]: v for k, v in extra.items() if k.startswith("default.")})
    out["status"] = outcome.status
    return out


def test_build_writes_then_is_idempotent(store: Store) -> None:
    market = market_through("2022-06-15")
    seed(store, market)
    first = build(store, settings(store), run_id="r1")
    assert first["status"] == "success"
    assert first["through"] == "2022-06-15"  # valued through the last final day, inside June
    assert read_base_date(store) == dt.date.fromisoformat(first["base_date"])

    expected = build_index(market, start=first["base_date"], end="2022-06-15", **PARAMS)
    values, constituents, turnover = read_index(store)
    np.testing.assert_allclose(values["index_value"], expected.values["index_value"], rtol=1e-15)
    assert values["date"].max() == pd.Timestamp("2022-06-15")
    pd.testing.assert_frame_equal(
        constituents[["selection_date", "coin_id", "rank", "market_cap", "weight"]],
        expected.constituents,
        check_dtype=False,
    )
    np.testing.assert_allclose(turnover["turnover"], expected.turnover["turnover"], rtol=1e-15)
    assert first["months_written"] == len(expected.constituents["selection_date"].unique())
    assert first["value_rows"] == len(expected.values)

    again = build(store, settings(store), run_id="r2")
    assert again["months_written"] == again["value_rows"] == again["turnover_rows"] == 0
    assert set(store.read("daily_index_values")["run_id"]) == {"r1"}


def test_each_new_day_is_valued_and_a_month_added_once_it_has_ended(store: Store) -> None:
    market = market_through("2022-07-31")
    seed(store, market[market["date"] <= "2022-06-20"])
    base = build(store, settings(store))["base_date"]
    store.upsert("daily_market_data", market[market["date"] > "2022-06-20"])
    out = build(store, settings(store), run_id="r2")
    assert out["base_date"] == base
    assert out["through"] == "2022-07-31"
    assert out["months_written"] == 2  # June and July
    assert out["value_rows"] == 41  # 2022-06-21 .. 2022-07-31: the days before are unchanged


def test_changed_history_rewrites_only_what_changed(store: Store) -> None:
    market = market_through("2022-06-30")
    seed(store, market)
    build(store, settings(store))
    _, constituents, _ = read_index(store)
    held = constituents.loc[constituents["selection_date"] == "2022-04-30", "coin_id"].iloc[0]
    bumped = market[(market["date"] == "2022-05-10") & (market["coin_id"] == held)].copy()
    bumped["close"] *= 1.5
    store.upsert("daily_market_data", bumped)
    out = build(store, settings(store), run_id="r3")
    # selections read month ends only, and drifted weights at 2022-05-31 do not depend on 2022-05-10
    assert out["months_written"] == 0 and out["turnover_rows"] == 0
    values = store.read("daily_index_values")
    changed = values[values["run_id"] == "r3"]
    assert len(changed) == out["value_rows"] >= 2
    assert changed["date"].min() == pd.Timestamp("2022-05-10")
    assert {pd.Timestamp("2022-05-10"), pd.Timestamp("2022-05-11")} <= set(changed["date"])


def test_start_end_limit_the_months_written(store: Store) -> None:
    market = market_through("2022-06-30")
    seed(store, market)
    out = build(store, settings(store), start="2022-03-15", end="2022-04-02")
    assert out["months_written"] == 2
    values, constituents, _ = read_index(store)
    assert values["date"].min() == pd.Timestamp("2022-03-01")
    assert values["date"].max() == pd.Timestamp("2022-04-30")
    assert set(constituents["selection_date"]) == {pd.Timestamp("2022-03-31"), pd.Timestamp("2022-04-30")}
    # the base date is the persisted first qualifying month end, not --start
    assert read_base_date(store) < dt.date(2022, 3, 1)


def test_configured_base_date_wins(store: Store) -> None:
    market = market_through("2022-06-30")
    seed(store, market)
    out = build(store, settings(store, index_base_date="2022-02-15"))
    assert out["base_date"] == "2022-02-28"
    assert read_base_date(store) is None
    values = store.read("daily_index_values")
    assert values["index_value"].iloc[0] == 1000.0 and values["date"].iloc[0] == pd.Timestamp("2022-02-28")


def test_moving_the_base_date_removes_stale_rows(store: Store) -> None:
    market = market_through("2022-06-30")
    seed(store, market)
    build(store, settings(store))
    out = build(store, settings(store, index_base_date="2022-04-30"))
    assert out["deleted_rows"] > 0
    values, constituents, turnover = read_index(store)
    assert values["date"].min() == pd.Timestamp("2022-04-30")
    assert constituents["selection_date"].min() == pd.Timestamp("2022-04-30")
    assert turnover["selection_date"].min() > pd.Timestamp("2022-04-30")


def test_skipped_without_enough_history(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    seed(store, market_through("2020-06-30"))
    out = build(store, settings(store))
    assert out["status"] == "skipped"
    assert "eligible" in out["reason"]
    assert store.read("daily_index_values").empty
    assert read_base_date(store) is None
    assert any("index skipped" in r.getMessage() for r in caplog.records)


def test_skipped_on_an_empty_store(store: Store) -> None:
    assert build(store, settings(store))["status"] == "skipped"


def test_stored_categories_exclude_coins(store: Store) -> None:
    market = market_through("2022-03-31", n_coins=7)
    seed(store, market)
    store.upsert(
        "coin_categories",
        pd.DataFrame(
            {
                "coin_id": ["coin-03", "coin-05"],
                "category_id": ["stablecoins", "meme-token"],
                "name": ["Stablecoins", "Meme"],
            }
        ),
    )
    build(store, settings(store))
    _, constituents, _ = read_index(store)
    assert "coin-03" not in set(constituents["coin_id"])
    assert "coin-05" in set(constituents["coin_id"])


def test_exclusion_matching() -> None:
    cats = pd.DataFrame(
        {
            "coin_id": ["a", "b", "c", "d", "e"],
            "category_id": ["usd-stablecoin", "liquid-staking-tokens", None, "layer-1", "wrapped-tokens"],
            "name": [
                "USD Stablecoin",
                "Liquid Staking Tokens",
                "Bridged Tokens",
                "Layer 1 (L1)",
                "Wrapped-Tokens",
            ],
        }
    )
    coins = pd.DataFrame({"coingecko_id": ["f", "g"], "category": ["Stablecoins", "Smart Contract Platform"]})
    out = excluded_coins(cats, coins, explicit=())
    assert out == {"a", "b", "c", "e", "f"}
    assert {"tether", "usd-coin", "wrapped-bitcoin", "staked-ether"} <= excluded_coins()


def test_too_few_coins_after_the_base_fails(store: Store) -> None:
    market = market_through("2022-06-30", n_coins=4)
    seed(store, market)
    build(store, settings(store))
    # two coins stop trading: the May selection has two eligible coins
    store.execute('DELETE FROM daily_market_data WHERE "date" > :d', {"d": dt.date(2022, 5, 20)})
    market2 = market[(market["date"] > "2022-05-20") & market["coin_id"].isin(["coin-00", "coin-01"])]
    store.upsert("daily_market_data", market2)
    with pytest.raises(IndexConstructionError) as info:
        build(store, settings(store))
    assert info.value.context["date"] == "2022-05-31"


def test_last_month_end() -> None:
    assert last_month_end(dt.date(2024, 2, 29)) == dt.date(2024, 2, 29)
    assert last_month_end(dt.date(2024, 2, 28)) == dt.date(2024, 1, 31)
    assert last_month_end(dt.date(2024, 1, 1)) == dt.date(2023, 12, 31)


def test_cli_build_and_report(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'cli.duckdb'}"
    s = open_store(url)
    s.init()
    seed(s, market_through("2022-04-10"))
    s.close()
    assert main(["index", "build", "--database-url", url]) == 0
    assert (
        main(["index", "build", "--database-url", url, "--start", "2022-01-01", "--end", "2022-02-01"]) == 0
    )
    out_dir = tmp_path / "report"
    assert main(["index", "report", "--database-url", url, "--output-dir", str(out_dir)]) == 0
    html = (out_dir / "index_report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert (out_dir / "index_level.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out_dir / "index_weights.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_skipped_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"duckdb:///{tmp_path / 'cli.duckdb'}"
    s = open_store(url)
    s.init()
    seed(s, market_through("2019-12-31"))
    s.close()
    assert main(["index", "build", "--database-url", url]) == 0
    assert "skipped" in capsys.readouterr().err


def test_report_needs_values(duck_store: Store, tmp_path: Path) -> None:
    from kallos.errors import InputError

    with pytest.raises(InputError):
        report_step(duck_store, settings(duck_store), tmp_path)


def test_report_metrics_match_build(duck_store: Store, tmp_path: Path) -> None:
    market = market_through("2022-06-30")
    seed(duck_store, market)
    out = build(duck_store, settings(duck_store))
    rep = report_step(duck_store, settings(duck_store), tmp_path / "r")
    expected = build_index(market, start=out["base_date"], end=out["through"], **PARAMS).metrics
    for key in ("total_return", "volatility", "sharpe", "max_drawdown", "avg_monthly_turnover"):
        assert rep["metrics"][key] == pytest.approx(expected[key], rel=1e-12)
    assert rep["metrics"]["max_drawdown_trough"] == expected["max_drawdown_trough"]
    assert (tmp_path / "r" / "index_report.html").exists()
