"""Features on hourly and weekly bars: point in time, labels in bars, the daily index and alt data as of the bar,
and load = build on both backends (docs/decisions.md#D79)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kallos.cli.main import main
from kallos.features import build_features, label_columns, load_features
from kallos.features.build import daily_closes
from kallos.features.frame import check_timeframe
from kallos.indicators.step import compute_step
from kallos.settings import load_settings
from kallos.signals.step import generate_step
from kallos.store import Store

from .feature_frames import alt, constituents, corrupt_after, hourly_bars, weekly_bars

HORIZONS = (1, 7, 30)
STEP = {"1h": pd.Timedelta(hours=1), "1w": pd.Timedelta(days=7)}


def frame_of(timeframe: str) -> pd.DataFrame:
    return hourly_bars() if timeframe == "1h" else weekly_bars()


def features(b: pd.DataFrame, timeframe: str, **kw: object) -> pd.DataFrame:
    return build_features(
        b,
        timeframe=timeframe,
        horizons=HORIZONS,
        constituents=constituents(),
        alt=alt(),
        **kw,  # type: ignore[arg-type]
    )


def times(f: pd.DataFrame, timeframe: str) -> pd.Series:
    """The frame's time key as naive UTC (hourly frames carry `hour`, tz-aware)."""
    return f["hour"].dt.tz_localize(None) if timeframe == "1h" else f["date"]


@pytest.mark.parametrize("timeframe,cut", [("1h", "2021-03-31 05:00"), ("1h", "2021-04-30 00:00"),
                                           ("1w", "2021-03-29"), ("1w", "2021-05-03")])  # fmt: skip
@pytest.mark.parametrize("how", ["changed", "removed"])
def test_a_row_at_t_is_identical_when_every_later_bar_is_changed_or_removed(timeframe: str, cut: str, how: str) -> None:
    b = frame_of(timeframe)
    key = check_timeframe(timeframe).key
    t = pd.Timestamp(cut)
    when = b[key]
    later = when > t
    bad = corrupt_after(b, later, how)
    baseline, corrupted = features(b, timeframe), features(bad, timeframe)
    labels = label_columns(HORIZONS)
    keep = lambda f: f.loc[times(f, timeframe) <= t].drop(columns=labels).reset_index(drop=True)  # noqa: E731
    assert len(keep(baseline)) > 50
    pd.testing.assert_frame_equal(keep(baseline), keep(corrupted))
    for h in HORIZONS:  # labels whose window closes by t are unchanged too
        col = f"target_return_{h}"
        early = lambda f: f.loc[times(f, timeframe) + h * STEP[timeframe] <= t, col].reset_index(drop=True)  # noqa: E731,B023
        pd.testing.assert_series_equal(early(baseline), early(corrupted))
    after = lambda f: f.loc[times(f, timeframe) > t].reset_index(drop=True)  # noqa: E731
    assert not after(baseline).equals(after(corrupted))


@pytest.mark.parametrize("timeframe", ["1h", "1w"])
def test_labels_count_bars_of_the_timeframe(timeframe: str) -> None:
    b = frame_of(timeframe)
    key = check_timeframe(timeframe).key
    f = features(b, timeframe)
    when = times(f, timeframe)
    close = {(r[0], r[1]): r[2] for r in b[["coin_id", key, "close"]].itertuples(index=False)}
    for h in HORIZONS:
        later = [(c, d + h * STEP[timeframe]) for c, d in zip(f["coin_id"], when, strict=True)]
        expected = [
            close[k] / close[(c, d)] - 1.0 if k in close else np.nan
            for k, (c, d) in zip(later, zip(f["coin_id"], when, strict=True), strict=True)
        ]
        np.testing.assert_allclose(f[f"target_return_{h}"], expected, rtol=1e-15, atol=0)
        np.testing.assert_allclose(f[f"target_log_return_{h}"], np.log1p(expected), rtol=1e-12)
        assert np.isnan(expected).sum() >= 3 * h  # each coin's last h bars, and the holes


def test_hourly_rows_are_keyed_by_a_utc_hour_with_daily_context_as_of_the_hour() -> None:
    f = features(hourly_bars(), "1h")
    assert list(f.columns[:2]) == ["coin_id", "hour"] and str(f["hour"].dt.tz) == "UTC"
    f = f.set_index(["coin_id", "hour"])
    at = lambda s: ("alpha", pd.Timestamp(s, tz="UTC"))  # noqa: E731
    assert pd.isna(f.loc[at("2021-03-30 23:00"), "index_member"])  # the first basket is chosen on 03-31
    assert f.loc[at("2021-03-31 00:00"), "index_weight"] == pytest.approx(0.6)  # its target weight at 00:00
    assert f.loc[at("2021-03-31 07:00"), "index_member"]
    gamma = f.xs("gamma", level="coin_id")
    assert not gamma.loc[pd.Timestamp("2021-04-29 23:00", tz="UTC"), "index_member"]
    assert gamma.loc[pd.Timestamp("2021-04-30 00:00", tz="UTC"), "index_member"]
    assert f.xs(pd.Timestamp("2021-04-15 13:00", tz="UTC"), level="hour")["index_weight"].sum() == pytest.approx(1)
    assert f.loc[at("2021-04-30 23:00"), "alt_stars"] == 100.0  # the 05-01 snapshot is not known yet
    assert f.loc[at("2021-05-01 00:00"), "alt_stars"] == 120.0
    ages = f.xs("beta", level="coin_id")["age_days"]
    assert ages.iloc[0] == 0 and ages.loc[pd.Timestamp("2021-03-21 03:00", tz="UTC")] == pytest.approx(12 / 24)
    hour = f.xs(pd.Timestamp("2021-04-02 10:00", tz="UTC"), level="hour")
    assert sorted(hour["market_cap_rank"]) == [1.0, 2.0, 3.0]


def test_a_week_joins_the_daily_data_of_its_last_day() -> None:
    f = features(weekly_bars(), "1w").set_index(["coin_id", "date"])
    assert pd.isna(f.loc[("alpha", pd.Timestamp("2021-03-22")), "index_member"])  # ends 03-28: before 03-31
    assert f.loc[("alpha", pd.Timestamp("2021-03-29")), "index_member"]  # ends 04-04: the 03-31 basket is known
    assert not f.loc[("gamma", pd.Timestamp("2021-04-19")), "index_member"]
    assert f.loc[("gamma", pd.Timestamp("2021-04-26")), "index_member"]  # its week holds 04-30
    assert f.loc[("alpha", pd.Timestamp("2021-04-19")), "alt_stars"] == 100.0
    assert f.loc[("alpha", pd.Timestamp("2021-04-26")), "alt_stars"] == 120.0  # 05-01 is within that week
    assert f.loc[("alpha", pd.Timestamp("2019-01-21")), "age_days"] == 14


def seed_timeframe(store: Store, timeframe: str, b: pd.DataFrame) -> pd.DataFrame:
    """Store the bars in the timeframe's table, its indicators and signals, the index, alt data and the daily
    closes the index drifts with; return those daily closes."""
    coins = sorted(b["coin_id"].unique())
    store.upsert("coins", pd.DataFrame({"coingecko_id": coins, "symbol": coins, "name": coins}))
    if timeframe == "1h":
        store.upsert("hourly_market_data", b.assign(hour=b["hour"].dt.tz_localize("UTC")))
        built = b.rename(columns={"hour": "date"})
    else:
        store.upsert("weekly_market_data", b.assign(bar_days=7))
        built = b
    daily = daily_closes(built, check_timeframe(timeframe))
    store.upsert("daily_market_data", daily)
    settings = load_settings(database_url="duckdb:///unused.duckdb", min_coverage=0.0, workers=1)
    compute_step(store, settings, workers=1, timeframe=timeframe)
    generate_step(store, settings, timeframe=timeframe)
    c = constituents()
    store.upsert(
        "index_monthly_constituents",
        c.assign(year=c["selection_date"].dt.year, month=c["selection_date"].dt.month, rank=1, market_cap=1.0),
    )
    store.upsert("coin_details_history", alt().assign(source="details"))
    return daily


@pytest.mark.parametrize("timeframe", ["1h", "1w"])
def test_load_equals_build_on_the_same_bars(store: Store, timeframe: str) -> None:
    b = frame_of(timeframe)
    daily = seed_timeframe(store, timeframe, b)
    loaded = load_features(store=store, timeframe=timeframe)
    built = build_features(b, timeframe=timeframe, constituents=constituents(), alt=alt(), index_closes=daily)
    assert list(loaded.columns) == list(built.columns)
    pd.testing.assert_frame_equal(loaded, built, check_dtype=False, rtol=1e-12)
    part = load_features(store=store, timeframe=timeframe, coins=["beta"], start="2021-04-01", end="2021-04-20",
                         columns=["rsi_14", "target_return_7"], horizons=(7,))  # fmt: skip
    same = loaded.loc[loaded["coin_id"].eq("beta"), list(part.columns)]
    same = same.loc[times(same, timeframe).between("2021-04-01", "2021-04-20 23:00")].reset_index(drop=True)
    pd.testing.assert_frame_equal(part, same, check_dtype=False)
    assert part["target_return_7"].notna().all()  # labels at the window's end read later bars


def test_hourly_export_is_keyed_by_hour(duck_store: Store, tmp_path: Path) -> None:
    seed_timeframe(duck_store, "1h", hourly_bars())
    url = f"duckdb:///{tmp_path / 'kallos.duckdb'}"
    expected = load_features(store=duck_store, timeframe="1h", horizons=(1, 24))
    duck_store.close()
    out = tmp_path / "hours"
    args = ["features", "export", "--out", str(out), "--database-url", url, "--timeframe", "1h", "--horizons", "1,24"]
    assert main(args) == 0
    back = pd.read_parquet(out).drop(columns=["year"]).astype({"index_member": "boolean"})
    assert list(back.columns[:2]) == ["coin_id", "hour"] and sorted(p.name for p in out.iterdir())[-1] == "year=2021"
    pd.testing.assert_frame_equal(back, expected, check_dtype=False)
    dictionary = pd.read_csv(out / "_data_dictionary.csv")
    assert list(dictionary["column"]) == list(expected.columns)
    assert main([*args, "--format", "csv", "--out", str(tmp_path / "csv")]) == 0
    assert (tmp_path / "csv/year=2021/part-0.csv").read_text().splitlines()[1].split(",")[1] == "2021-03-20T00:00:00Z"
