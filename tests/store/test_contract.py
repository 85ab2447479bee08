"""The store contract, run unchanged against DuckDB and the real PostgreSQL server (plain and partitioned)."""

from __future__ import annotations

import datetime as dt
import threading

import numpy as np
import pandas as pd
import pytest

from kallos.errors import SchemaMismatchError, StoreWriteError, UnknownCoinError
from kallos.store import Store
from kallos.store.migrations import LATEST


def coins_frame(*ids: str) -> pd.DataFrame:
    return pd.DataFrame({"coingecko_id": list(ids), "symbol": [i[:3] for i in ids], "name": [i.title() for i in ids]})


def bars(coin: str, start: str, n: int, price: float = 100.0) -> pd.DataFrame:
    dates = pd.date_range(start, periods=n, freq="D")
    close = price * np.exp(np.cumsum(np.full(n, 0.01)))
    return pd.DataFrame(
        {
            "coin_id": coin,
            "date": dates,
            "close": close,
            "volume": close * 1e6,
            "market_cap": close * 1e7,
            "close_source": "chart",
        }
    )


@pytest.fixture
def store(any_layout_store: Store) -> Store:
    return any_layout_store


@pytest.fixture
def seeded(store: Store) -> Store:
    store.upsert("coins", coins_frame("bitcoin", "ethereum", "tiny-token"))
    return store


def test_init_is_idempotent(store: Store) -> None:
    assert store.init() == LATEST
    assert store.init() == LATEST
    assert store.status()["version"] == LATEST


def test_coins_get_surrogate_ids_and_reads_return_coingecko_ids(seeded: Store) -> None:
    mapping = seeded.coin_map()
    assert set(mapping) == {"bitcoin", "ethereum", "tiny-token"}
    assert len(set(mapping.values())) == 3
    seeded.upsert("daily_market_data", bars("bitcoin", "2024-01-01", 3))
    out = seeded.read("daily_market_data")
    assert out["coin_id"].tolist() == ["bitcoin"] * 3
    assert out["date"].dtype == "datetime64[ns]"


def test_upsert_twice_gives_the_same_rows(seeded: Store) -> None:
    frame = pd.concat([bars("bitcoin", "2024-01-01", 50), bars("ethereum", "2024-01-10", 40)])
    assert seeded.upsert("daily_market_data", frame) == 90
    first = seeded.read("daily_market_data")
    assert seeded.upsert("daily_market_data", frame) == 0  # unchanged rows are not rewritten
    second = seeded.read("daily_market_data")
    pd.testing.assert_frame_equal(first.drop(columns="updated_at"), second.drop(columns="updated_at"))
    assert len(second) == 90


def test_changed_values_update_in_place(seeded: Store) -> None:
    frame = bars("bitcoin", "2024-01-01", 5)
    seeded.upsert("daily_market_data", frame)
    changed = frame.assign(close=frame["close"] * 2).iloc[[1, 3]]
    assert seeded.upsert("daily_market_data", changed) == 2
    out = seeded.read("daily_market_data", coins=["bitcoin"])
    np.testing.assert_array_equal(out["close"].to_numpy()[[1, 3]], changed["close"].to_numpy())
    np.testing.assert_array_equal(out["close"].to_numpy()[[0, 2, 4]], frame["close"].to_numpy()[[0, 2, 4]])


def test_bad_row_fails_clearly_and_leaves_table_unchanged(seeded: Store) -> None:
    good = bars("bitcoin", "2024-01-01", 10)
    seeded.upsert("daily_market_data", good)
    before = seeded.read("daily_market_data")
    bad = bars("bitcoin", "2024-01-05", 10).astype({"close": object})
    bad.loc[4, "close"] = "not-a-number"
    with pytest.raises(StoreWriteError) as info:
        seeded.upsert("daily_market_data", bad)
    assert info.value.table == "daily_market_data"
    assert "close" in str(info.value) and "not-a-number" in str(info.value)
    pd.testing.assert_frame_equal(seeded.read("daily_market_data"), before)


def test_null_in_not_null_column_names_the_row(seeded: Store) -> None:
    bad = bars("bitcoin", "2024-01-01", 3)
    bad.loc[1, "close"] = np.nan
    with pytest.raises(StoreWriteError, match="NULL in NOT NULL column close"):
        seeded.upsert("daily_market_data", bad)
    assert seeded.read("daily_market_data").empty


def test_infinite_value_is_rejected(seeded: Store) -> None:
    bad = bars("bitcoin", "2024-01-01", 3)
    bad.loc[2, "market_cap"] = np.inf
    with pytest.raises(StoreWriteError, match="market_cap"):
        seeded.upsert("daily_market_data", bad)


def test_database_rejection_is_wrapped_and_rolled_back(seeded: Store) -> None:
    """A failure inside the database (not caught by the frame checks) still leaves the table as it was."""
    seeded.upsert("daily_market_data", bars("bitcoin", "2024-01-01", 5))
    with pytest.raises(StoreWriteError):
        with seeded.transaction():
            seeded.upsert("daily_market_data", bars("ethereum", "2024-01-01", 5))
            seeded.execute("INSERT INTO daily_market_data (coin_id, date, close) VALUES (1, '2020-01-01', NULL)")
    out = seeded.read("daily_market_data")
    assert out["coin_id"].unique().tolist() == ["bitcoin"]


def test_unknown_coin_is_named(seeded: Store) -> None:
    with pytest.raises(UnknownCoinError) as info:
        seeded.upsert("daily_market_data", pd.concat([bars("bitcoin", "2024-01-01", 2), bars("nope", "2024-01-01", 2)]))
    assert info.value.coins == ["nope"]
    assert seeded.read("daily_market_data").empty


def test_unknown_column_and_missing_key(seeded: Store) -> None:
    with pytest.raises(SchemaMismatchError, match="bogus"):
        seeded.upsert("daily_market_data", bars("bitcoin", "2024-01-01", 2).assign(bogus=1))
    with pytest.raises(SchemaMismatchError, match="date"):
        seeded.upsert("daily_market_data", bars("bitcoin", "2024-01-01", 2).drop(columns="date"))
    with pytest.raises(SchemaMismatchError, match="unknown table"):
        seeded.upsert("nope", bars("bitcoin", "2024-01-01", 2))


def test_off_midnight_date_is_rejected(seeded: Store) -> None:
    bad = bars("bitcoin", "2024-01-01", 2)
    bad["date"] = pd.to_datetime(["2024-01-01 00:00", "2024-01-02 13:00"])
    with pytest.raises(StoreWriteError, match="calendar date"):
        seeded.upsert("daily_market_data", bad)


def test_duplicate_keys_in_one_batch_last_wins(seeded: Store) -> None:
    frame = bars("bitcoin", "2024-01-01", 3)
    dup = frame.iloc[[1]].assign(close=12345.0)
    seeded.upsert("daily_market_data", pd.concat([frame, dup]))
    out = seeded.read("daily_market_data")
    assert len(out) == 3
    assert out.loc[1, "close"] == 12345.0


def test_extreme_values_round_trip_exactly(seeded: Store) -> None:
    values = np.array([1e-12, 1.23456789e-10, 1.2345678901234567e-5, 0.1 + 0.2, 1.3e12, 9.87654321e13])
    frame = pd.DataFrame(
        {
            "coin_id": "tiny-token",
            "date": pd.date_range("2024-01-01", periods=len(values)),
            "open": values,
            "high": values,
            "low": values,
            "close": values,
            "volume": values * 10,
            "market_cap": values[::-1] * 100,
        }
    )
    seeded.upsert("daily_market_data", frame)
    out = seeded.read("daily_market_data", coins=["tiny-token"])
    for col in ("open", "close", "volume", "market_cap"):
        np.testing.assert_array_equal(out[col].to_numpy(), frame[col].to_numpy())


def test_concurrent_overlapping_writers_leave_no_duplicates(seeded: Store) -> None:
    frames = [
        pd.concat([bars("bitcoin", "2023-01-01", 400, 100 + i), bars("ethereum", "2023-03-01", 300, 50 + i)])
        for i in range(4)
    ]
    errors: list[BaseException] = []

    def write(frame: pd.DataFrame) -> None:
        try:
            for _ in range(3):
                seeded.upsert("daily_market_data", frame)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f,)) for f in frames]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    out = seeded.read("daily_market_data")
    assert len(out) == 700
    assert not out.duplicated(["coin_id", "date"]).any()
    counts = seeded.query("SELECT coin_id, date, count(*) AS n FROM daily_market_data GROUP BY coin_id, date")
    assert counts["n"].max() == 1


def test_read_filters_by_coins_and_dates(seeded: Store) -> None:
    seeded.upsert(
        "daily_market_data", pd.concat([bars("bitcoin", "2024-01-01", 30), bars("ethereum", "2024-01-01", 30)])
    )
    out = seeded.read("daily_market_data", coins=["ethereum"], start="2024-01-10", end=dt.date(2024, 1, 19))
    assert out["coin_id"].unique().tolist() == ["ethereum"]
    assert out["date"].min() == pd.Timestamp("2024-01-10") and out["date"].max() == pd.Timestamp("2024-01-19")
    assert len(out) == 10
    assert seeded.read("daily_market_data", coins=[]).empty


def test_preserve_keeps_existing_values(seeded: Store) -> None:
    first = pd.Timestamp("2024-01-01", tz="UTC")
    frame = coins_frame("bitcoin").assign(first_seen=first, last_seen=first)
    seeded.upsert("coins", frame, preserve=("first_seen",))
    later = pd.Timestamp("2024-02-01", tz="UTC")
    seeded.upsert("coins", frame.assign(first_seen=later, last_seen=later), preserve=("first_seen",))
    row = seeded.read("coins", coins=["bitcoin"]).iloc[0]
    assert row["first_seen"] == first and row["last_seen"] == later


def test_replace_swaps_a_slice_atomically(seeded: Store) -> None:
    def month(weights: dict[str, float]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "year": 2024,
                "month": 1,
                "coin_id": list(weights),
                "selection_date": dt.date(2024, 1, 31),
                "rank": range(1, len(weights) + 1),
                "market_cap": 1e9,
                "weight": list(weights.values()),
            }
        )

    seeded.replace(
        "index_monthly_constituents", month({"bitcoin": 0.6, "ethereum": 0.4}), where={"year": 2024, "month": 1}
    )
    seeded.replace("index_monthly_constituents", month({"bitcoin": 1.0}), where={"year": 2024, "month": 1})
    out = seeded.read("index_monthly_constituents")
    assert out["coin_id"].tolist() == ["bitcoin"] and out["weight"].tolist() == [1.0]


def test_views_expose_latest_rows(seeded: Store) -> None:
    seeded.upsert("daily_market_data", pd.concat([bars("bitcoin", "2024-01-01", 5), bars("ethereum", "2024-01-01", 3)]))
    seeded.refresh_views()
    latest = seeded.query("SELECT coingecko_id, date FROM latest_market_data ORDER BY coingecko_id")
    assert latest["coingecko_id"].tolist() == ["bitcoin", "ethereum"]
    assert latest["date"].tolist() == [pd.Timestamp("2024-01-05"), pd.Timestamp("2024-01-03")]
    snaps = pd.DataFrame(
        {
            "coin_id": ["bitcoin", "bitcoin"],
            "fetched_at": pd.to_datetime(["2024-01-05 10:00", "2024-01-05 12:00"], utc=True),
            "price": [1.0, 2.0],
        }
    )
    seeded.upsert("market_snapshots", snaps)
    snap = seeded.query("SELECT coingecko_id, price FROM latest_snapshot")
    assert snap["price"].tolist() == [2.0]


def test_status_counts_rows(seeded: Store) -> None:
    seeded.upsert("daily_market_data", bars("bitcoin", "2024-01-01", 7))
    info = seeded.status()
    assert info["tables"]["daily_market_data"] == 7 and info["tables"]["coins"] == 3


@pytest.mark.postgres
def test_partitioned_layout_spreads_rows_over_years(pg_partitioned_store: Store) -> None:
    store = pg_partitioned_store
    store.upsert("coins", coins_frame("bitcoin"))
    store.upsert("daily_market_data", bars("bitcoin", "2021-12-30", 5))
    store.upsert("daily_market_data", bars("bitcoin", "1999-01-01", 2))  # before the yearly partitions
    assert store.status()["partitioned"]
    parts = store.query(
        "SELECT tableoid::regclass::text AS part, count(*) AS n FROM daily_market_data GROUP BY 1 ORDER BY 1"
    )
    assert dict(zip(parts["part"], parts["n"], strict=True)) == {
        "daily_market_data_default": 2,
        "daily_market_data_y2021": 2,
        "daily_market_data_y2022": 3,
    }
    assert store.upsert("daily_market_data", bars("bitcoin", "2021-12-30", 5)) == 0


def test_fresh_batch_over_many_years_and_chunks_round_trips(seeded: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh multi-coin batch spanning years (one COPY per year's partition in the partitioned layout,
    docs/decisions.md#D122), sent in chunks smaller than a coin's run of rows: every row lands once, exactly,
    and in the partitioned layout in its own year's partition (1999 has none: the DEFAULT one)."""
    from kallos.store import postgres

    monkeypatch.setattr(postgres, "_COPY_BATCH_ROWS", 7)
    frame = pd.concat(
        [
            bars("bitcoin", "1999-12-20", 30),
            bars("ethereum", "2021-11-15", 400, 5.0),
            bars("tiny-token", "2022-12-25", 9),
        ]
    )
    assert seeded.upsert("daily_market_data", frame) == len(frame)
    out = seeded.read("daily_market_data")
    assert len(out) == len(frame)
    for col in ("date", "close", "volume", "market_cap"):
        np.testing.assert_array_equal(out[col].to_numpy(), frame[col].to_numpy())
    assert seeded.upsert("daily_market_data", frame) == 0
    if seeded.backend == "postgresql" and seeded.status()["partitioned"]:
        where = seeded.query(
            "SELECT tableoid::regclass::text AS part, extract(year FROM date)::int AS year, count(*) AS n "
            "FROM daily_market_data GROUP BY 1, 2 ORDER BY 2"
        )
        expected = {1999: "daily_market_data_default", 2000: "daily_market_data_default"}
        for _, row in where.iterrows():
            assert row["part"] == expected.get(row["year"], f"daily_market_data_y{row['year']}")
        assert set(where["year"]) == {1999, 2000, 2021, 2022, 2023}


def test_read_through_arrow_equals_the_row_path(seeded: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """`read` takes most tables through `query_bulk` (docs/decisions.md#D123): values and dtypes are those of the
    row-by-row path, NULLs included (text, integers, doubles, timestamps)."""
    from kallos.store import base

    frame = bars("bitcoin", "2024-01-01", 6).assign(
        open=[1.5, None, 2.5, None, 3.5, 4.0], ohlc_source=["candles", None, "", "candles", None, "x"]
    )
    seeded.upsert("daily_market_data", pd.concat([frame, bars("ethereum", "2024-01-03", 3)]))
    signals = pd.DataFrame(
        {
            "coin_id": "bitcoin",
            "date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-02"]),
            "signal": ["composite", "rsi", "rsi"],
            "direction": [1, None, -1],
            "strength": [0.5, None, 1.0],
            "config_hash": "h",
        }
    )
    seeded.upsert("trading_signals", signals)
    hours = pd.date_range("2024-01-31T22:00", periods=4, freq="h", tz="UTC")
    seeded.upsert("hourly_market_data", pd.DataFrame({"coin_id": "bitcoin", "hour": hours, "close": 1.0}))
    reads = [
        ("daily_market_data", {}),
        ("daily_market_data", {"coins": ["ethereum"], "start": "2024-01-04"}),
        ("daily_market_data", {"coins": ["tiny-token"]}),  # empty
        ("trading_signals", {}),
        ("hourly_market_data", {"start": "2024-02-01"}),
    ]
    bulk = [seeded.read(table, **kw) for table, kw in reads]
    monkeypatch.setattr(base, "_BULK_KINDS", {})
    rows = [seeded.read(table, **kw) for table, kw in reads]
    for (table, _), a, b in zip(reads, bulk, rows, strict=True):
        pd.testing.assert_frame_equal(a, b, obj=table)
    assert len(bulk[0]) == 9 and bulk[3]["direction"].isna().sum() == 1 and len(bulk[4]) == 2
