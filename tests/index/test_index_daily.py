"""Daily index values, rebuild marks, named indices and the migration to them (docs/decisions.md#D60-D62)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kallos.cli.main import main
from kallos.index import build_index
from kallos.index.definition import IndexDefinition
from kallos.index.step import index_step, list_indices, read_base_date, read_definitions, read_index
from kallos.ingest.state import CoinWrite, write_coins
from kallos.pipeline.contract import StepContext
from kallos.settings import Settings, load_settings
from kallos.store import Store, open_store
from kallos.store.migrations import NAMED_INDEX_TABLES
from kallos.store.schema import TABLES, create_table_sql

from .index_frames import random_market

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SPEC = {"n_constituents": 20, "max_weight": 0.35, "min_history_days": 1095, "min_coverage": 0.9}


def market(n_coins: int = 7) -> pd.DataFrame:
    return random_market(5, n_coins=n_coins, start="2019-01-01", days=1400, late_listings=False)


def settings(**kw: Any) -> Settings:
    return load_settings(database_url="duckdb:///unused.duckdb", **kw)


def seed(store: Store, frame: pd.DataFrame) -> None:
    ids = sorted(set(frame["coin_id"]))
    store.upsert("coins", pd.DataFrame({"coingecko_id": ids, "symbol": ids, "name": ids}))
    store.upsert("daily_market_data", frame)


def build(store: Store, s: Settings | None = None, **kw: Any) -> Any:
    ctx = StepContext(store=store, settings=s or settings(), run_id=kw.pop("run_id", "r"), now=NOW)
    return index_step(ctx, **kw)


def ingest(store: Store, rows: pd.DataFrame) -> None:
    """Write rows through the ingestion path, which marks the indices dirty (docs/decisions.md#D61)."""
    write_coins(
        store,
        [CoinWrite(coin_id=c, bars=part, events=pd.DataFrame()) for c, part in rows.groupby("coin_id")],
    )


@pytest.mark.slow
def test_daily_value_equals_a_full_rebuild_on_every_day(store: Store) -> None:
    full = market()
    days = pd.date_range("2022-06-28", "2022-07-02", freq="D")
    seed(store, full[full["date"] < days[0]])
    for day in days:  # the daily run: one more final day each time, across a month end
        ingest(store, full[full["date"] == day])
        outcome = build(store, only_due=True)
        assert outcome.status == "success"
        assert outcome.extra["default.through"] == day.date().isoformat()
    values, constituents, turnover = read_index(store)
    expected = build_index(full, start=read_base_date(store), end=days[-1], **SPEC)
    np.testing.assert_array_equal(values["date"], expected.values["date"])
    np.testing.assert_allclose(values["index_value"], expected.values["index_value"], rtol=1e-13, atol=0)
    pd.testing.assert_frame_equal(
        constituents[list(expected.constituents.columns)], expected.constituents, check_dtype=False
    )
    np.testing.assert_allclose(turnover["turnover"], expected.turnover["turnover"], rtol=1e-13)
    # nothing changed: not due, and a forced rebuild writes nothing
    assert build(store, only_due=True).status == "skipped"
    again = build(store, run_id="again")
    assert again.rows_written == 0 and again.extra["deleted_rows"] == 0
    assert "again" not in set(store.read("daily_index_values")["run_id"])


def test_month_end_with_a_failed_coin_is_corrected_by_the_next_run(store: Store) -> None:
    full = market()
    s = pd.Timestamp("2022-05-31")
    biggest = full.loc[full["date"] == s].sort_values("market_cap")["coin_id"].iloc[-1]
    failed = (full["coin_id"] == biggest) & (full["date"] >= s)
    seed(store, full[(full["date"] <= "2022-06-03") & ~failed])  # the coin failed from the month end on
    build(store)
    _, constituents, _ = read_index(store)
    assert biggest not in set(constituents.loc[constituents["selection_date"] == s, "coin_id"])

    ingest(store, full[failed & (full["date"] <= "2022-06-03")])  # the next run fetches it
    assert read_definitions(store).at["default", "dirty_from"] == s
    due = build(store, only_due=True)
    assert due.status == "success" and due.extra["default.rebuilt_from"] == "2022-05-31"
    assert pd.isna(read_definitions(store).at["default", "dirty_from"])  # the mark is consumed
    values, constituents, turnover = read_index(store)
    expected = build_index(full, start=read_base_date(store), end="2022-06-03", **SPEC)
    assert biggest in set(constituents.loc[constituents["selection_date"] == s, "coin_id"])
    np.testing.assert_allclose(values["index_value"], expected.values["index_value"], rtol=1e-13)
    np.testing.assert_allclose(turnover["turnover"], expected.turnover["turnover"], rtol=1e-13)


def test_a_backfill_of_old_history_marks_every_later_month(store: Store) -> None:
    full = market()
    seed(store, full[full["date"] <= "2022-06-30"])
    build(store)
    changed = full[(full["coin_id"] == "coin-01") & (full["date"] == "2021-03-10")].assign(close=lambda f: f.close * 2)
    ingest(store, changed)
    assert read_definitions(store).at["default", "dirty_from"] == pd.Timestamp("2021-03-10")
    out = build(store, only_due=True)
    assert out.status == "success" and out.extra["default.rebuilt_from"] == "2021-03-10"
    assert pd.isna(read_definitions(store).at["default", "dirty_from"])
    assert build(store, only_due=True).status == "skipped"


@pytest.mark.slow
def test_named_indices_live_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"duckdb:///{tmp_path / 'n.duckdb'}"
    s = open_store(url)
    s.init()
    full = market(n_coins=12)
    seed(s, full[full["date"] <= "2022-09-10"])
    s.close()
    db = ["--database-url", url, "--now", "2026-01-01T00:00:00"]
    assert main(["index", "build", *db]) == 0
    top10 = ["--name", "top10-q", "--constituents", "10", "--cap", "0.3", "--rebalance", "quarterly"]
    assert main(["index", "build", *top10, *db]) == 0
    assert main(["index", "build", "--name", "top5", "--constituents", "5", "--cap", "0.35", *db]) == 0
    assert main(["index", "build", "--name", "default", "--cap", "0.2", *db]) == 2  # settings own the default
    assert main(["index", "build", "--name", "Bad Name!", *db]) == 2
    assert main(["index", "build", "--name", "nope", *db]) == 4  # never defined
    capsys.readouterr()
    assert main(["index", "list", *db]) == 0
    listed = capsys.readouterr().out
    assert "top10-q" in listed and "quarterly" in listed and "top5" in listed

    s = open_store(url)
    try:
        frames = {n: read_index(s, n) for n in ("default", "top10-q", "top5")}
        for name, kw in (
            ("default", SPEC),
            ("top10-q", {**SPEC, "n_constituents": 10, "max_weight": 0.3, "rebalance": "Q"}),
            ("top5", {**SPEC, "n_constituents": 5}),
        ):
            values, constituents, _ = frames[name]
            expected = build_index(full[full["date"] <= "2022-09-10"], start=read_base_date(s, name), **kw)
            np.testing.assert_allclose(values["index_value"], expected.values["index_value"], rtol=1e-13)
            assert constituents.groupby("selection_date").size().max() <= kw["n_constituents"]
        quarter_ends = set(frames["top10-q"][1]["selection_date"].dt.month)
        assert quarter_ends <= {3, 6, 9, 12}
        assert set(list_indices(s, settings())["index_name"]) == {"default", "top10-q", "top5"}
        # a daily build builds them all; a second one writes nothing
        seed(s, full[(full["date"] > "2022-09-10") & (full["date"] <= "2022-09-12")])
        out = build(s)
        assert out.extra["indices"] == 3 and out.extra["value_rows"] == 6
        assert build(s).rows_written == 0
    finally:
        s.close()
    # changing a named index's methodology rebuilds its history under the new rules (a new base date)
    assert main(["index", "build", "--name", "top5", "--cap", "0.2", *db]) == 0
    s = open_store(url)
    try:
        values, constituents, _ = read_index(s, "top5")
        assert constituents["weight"].max() <= 0.2 + 1e-12
        expected = build_index(
            full[full["date"] <= "2022-09-12"],
            start=read_base_date(s, "top5"),
            **{**SPEC, "n_constituents": 5, "max_weight": 0.2},
        )
        np.testing.assert_allclose(values["index_value"], expected.values["index_value"], rtol=1e-13)
        assert len(read_index(s)[0]) == len(frames["default"][0]) + 2  # the others untouched
    finally:
        s.close()


def test_settings_configure_the_default_index(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    full = market(n_coins=8)
    seed(store, full[full["date"] <= "2022-04-30"])
    s = settings(
        index_constituents=4, index_max_weight=0.3, index_cost_bps=25, index_excluded_categories="default,layer-1"
    )
    store.upsert("coin_categories", pd.DataFrame({"coin_id": ["coin-02"], "category_id": ["layer-1"]}))
    build(store, s)
    values, constituents, _ = read_index(store)
    expected = build_index(
        full[full["date"] <= "2022-04-30"],
        exclude={"coin-02"},
        start=read_base_date(store),
        **{**SPEC, "n_constituents": 4, "max_weight": 0.3, "cost_bps": 25},
    )
    np.testing.assert_allclose(values["net_index_value"], expected.values["net_index_value"], rtol=1e-13)
    assert "coin-02" not in set(constituents["coin_id"])
    assert constituents["weight"].max() <= 0.3 + 1e-12

    monkeypatch.setenv("KALLOS_INDEX_CONSTITUENTS", "2")
    monkeypatch.setenv("KALLOS_INDEX_MAX_WEIGHT", "0.35")
    assert main(["index", "list", "--database-url", "duckdb:///x.duckdb"]) == 78
    monkeypatch.setenv("KALLOS_INDEX_CONSTITUENTS", "20")
    monkeypatch.setenv("KALLOS_INDEX_REBALANCE", "weekly")
    assert main(["index", "list", "--database-url", "duckdb:///x.duckdb"]) == 78


def test_definition_round_trip_and_validation() -> None:
    d = IndexDefinition(name="top5", n_constituents=5, rebalance="Q", excluded_categories="default, meme-token")
    assert d.rebalance == "quarterly" and d.excluded_categories == ("default", "meme-token")
    assert IndexDefinition.from_params("top5", d.to_json()) == d
    assert d.build_kwargs()["rebalance"] == "Q"
    for bad in ({"n_constituents": 2}, {"rebalance": "weekly"}, {"min_coverage": 2.0}, {"name": "A B"}):
        with pytest.raises(Exception, match="must|rebalance|name|n_constituents"):
            IndexDefinition(**bad)  # type: ignore[arg-type]


def _old_layout(store: Store) -> None:
    """Turn a fresh store back into the schema before migration 3: index tables without `index_name`."""
    for name in (*NAMED_INDEX_TABLES, "index_definitions"):
        store.execute(f"DROP TABLE {name}")
    for name in NAMED_INDEX_TABLES:
        t = TABLES[name]
        old = replace(
            t,
            columns=tuple(c for c in t.columns if c.name != "index_name"),
            key=tuple(k for k in t.key if k != "index_name"),
        )
        store.execute(create_table_sql(old))
    # The version is the highest applied, so migrations after this one go too (they are idempotent and rerun).
    version = store.scalar("SELECT version FROM schema_migrations WHERE name = 'named indices'")
    store.execute("DELETE FROM schema_migrations WHERE version >= :v", {"v": version})


@pytest.mark.slow
def test_migration_keeps_existing_rows_as_the_default_index(any_layout_store: Store) -> None:
    store = any_layout_store
    full = market()
    seed(store, full[full["date"] <= "2022-05-31"])
    build(store)
    before = read_index(store)
    base = read_base_date(store)
    saved = {n: store.query(f"SELECT * FROM {n}") for n in NAMED_INDEX_TABLES}
    _old_layout(store)
    for name, frame in saved.items():
        frame = frame.drop(columns=["index_name"])
        cols = list(frame.columns)
        placeholders = ", ".join(f":{c}" for c in cols)
        quoted = ", ".join(f'"{c}"' for c in cols)
        for row in frame.to_dict("records"):
            store.execute(f"INSERT INTO {name} ({quoted}) VALUES ({placeholders})", row)
    store.upsert("kallos_state", pd.DataFrame({"key": ["index_base_date"], "value": [base.isoformat()]}))
    store.init()
    store.init()  # idempotent
    after = read_index(store)
    for a, b in zip(before, after, strict=True):
        pd.testing.assert_frame_equal(a, b, check_dtype=False)
    assert read_base_date(store) == base
    # the upgraded tables take a second index beside the default, and a rebuild writes nothing
    assert build(store).rows_written == 0
    store.upsert("index_definitions", pd.DataFrame({"index_name": ["top5"], "params": ['{"n_constituents": 5}']}))
    assert build(store).extra["indices"] == 2
    assert len(read_index(store, "top5")[0]) == len(after[0])


def test_one_failing_index_does_not_hold_back_the_others(store: Store) -> None:
    full = random_market(21, n_coins=4, start="2019-01-01", days=1300, late_listings=False)
    two = full["coin_id"].isin(["coin-00", "coin-01"]) | (full["date"] <= "2022-05-20")
    seed(store, full[two & (full["date"] <= "2022-06-10")])
    wide = IndexDefinition(name="wide", n_constituents=4, max_weight=0.5)
    store.upsert("index_definitions", pd.DataFrame({"index_name": ["wide"], "params": [wide.to_json()]}))
    out = build(store)
    # 2022-05-31 has two eligible coins: the 35% default cannot be capped, the 50% one can
    assert out.status == "partial" and "2022-05-31" in (out.reason or "")
    assert out.extra["default.status"] == "failed" and out.extra["wide.status"] == "success"
    assert read_index(store, "wide")[0]["date"].max() == pd.Timestamp("2022-06-10")
