"""build_index properties: continuity, constant prices, one coin, eligibility edges, errors, options."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from kallos.errors import DataValidationError, IndexConstructionError, InputError
from kallos.index import NoQualifyingSelectionError, build_index

from .index_frames import long_frame, random_market

SHORT = {"n_constituents": 5, "min_history_days": 60, "min_coverage": 0.9}


def test_level_does_not_move_at_a_rebalance() -> None:
    market = random_market(1, n_coins=9, days=500)
    res = build_index(market, **SHORT)
    closes = market.pivot(index="date", columns="coin_id", values="close").ffill()
    levels = res.values.set_index("date")["index_value"]
    sels = sorted(res.constituents["selection_date"].unique())
    assert len(sels) >= 10
    for prev, cur in zip(sels[:-1], sels[1:], strict=True):
        old = res.constituents[res.constituents["selection_date"] == prev]
        # the old basket's value on the rebalance day equals the published level there
        rel = closes.loc[cur, old["coin_id"]].to_numpy() / closes.loc[prev, old["coin_id"]].to_numpy()
        assert levels[cur] == pytest.approx(levels[prev] * float(rel @ old["weight"].to_numpy()), rel=1e-12)


def test_rebalance_with_flat_prices_keeps_the_level() -> None:
    dates = pd.date_range("2021-01-01", "2021-05-31")
    n = len(dates)
    rng = np.random.default_rng(3)
    closes = {f"c{i}": np.full(n, float(i + 1)) for i in range(6)}
    caps = {f"c{i}": rng.uniform(1, 100, n) for i in range(6)}  # rankings and weights change every month
    res = build_index(long_frame(dates, closes, caps), n_constituents=4, min_history_days=20)
    assert len(res.constituents["selection_date"].unique()) >= 4
    assert (res.turnover["turnover"] > 0).all()
    assert (res.values["index_value"] == 1000.0).all()
    assert (res.values["daily_return"] == 0.0).all()
    assert np.isnan(res.metrics["sharpe"])
    assert res.metrics["max_drawdown"] == 0.0
    assert res.metrics["max_drawdown_peak"] is None and res.metrics["max_drawdown_trough"] is None


def test_one_coin_index_reproduces_the_coin() -> None:
    market = random_market(2, n_coins=1, days=300, late_listings=False)
    res = build_index(market, n_constituents=1, max_weight=1.0, min_history_days=30)
    close = market.set_index("date")["close"]
    v = res.values.set_index("date")
    base = res.values["date"].iloc[0]
    np.testing.assert_allclose(v["index_value"], 1000.0 * close[v.index] / close[base], rtol=1e-12)
    np.testing.assert_allclose(
        v["daily_return"].iloc[1:], close.pct_change()[v.index[1:]], rtol=1e-9, atol=1e-15
    )


def test_uniform_price_jump_scales_the_level() -> None:
    market = random_market(4, n_coins=6, days=300, late_listings=False)
    jump_day = pd.Timestamp("2020-08-17")
    bumped = market.copy()
    bumped.loc[bumped["date"] >= jump_day, ["close", "market_cap"]] *= 3.0
    a = build_index(market, **SHORT).values.set_index("date")
    b = build_index(bumped, **SHORT).values.set_index("date")
    ratio = b["index_value"] / a["index_value"]
    np.testing.assert_allclose(ratio[ratio.index < jump_day], 1.0, rtol=1e-12)
    np.testing.assert_allclose(ratio[ratio.index >= jump_day], 3.0, rtol=1e-12)


def test_weights_turnover_and_exclusions() -> None:
    market = random_market(5, n_coins=10, days=600, gaps=0.01)
    res = build_index(market, exclude={"coin-00", "coin-01"}, **SHORT)
    by_date = res.constituents.groupby("selection_date")
    np.testing.assert_allclose(by_date["weight"].sum(), 1.0, atol=1e-12)
    assert by_date["weight"].max().max() <= 0.35 * (1 + 1e-12)
    assert not res.constituents["coin_id"].isin(["coin-00", "coin-01"]).any()
    assert ((res.turnover["turnover"] >= 0) & (res.turnover["turnover"] <= 1)).all()
    assert len(res.fills) > 0
    assert res.metrics["fill_count"] == len(res.fills)
    assert not res.values["index_value"].isna().any()


def _flat(dates: pd.DatetimeIndex, first: dict[str, str], cap: dict[str, float]) -> pd.DataFrame:
    closes, caps = {}, {}
    for coin, start in first.items():
        c = np.where(dates >= pd.Timestamp(start), 1.0, np.nan)
        closes[coin], caps[coin] = c, np.full(len(dates), cap[coin])
    return long_frame(dates, closes, caps)


def test_history_edge_is_inclusive() -> None:
    # selection 2021-03-31 with H = 30: the first valid observation must be on or before 2021-03-01
    dates = pd.date_range("2021-01-01", "2021-04-10")
    first = {
        "a": "2021-01-01",
        "b": "2021-01-01",
        "c": "2021-01-01",
        "edge": "2021-03-01",
        "late": "2021-03-02",
    }
    caps = {"a": 1.0, "b": 2.0, "c": 3.0, "edge": 10.0, "late": 20.0}
    res = build_index(_flat(dates, first, caps), min_history_days=30, min_coverage=0.0, start="2021-03-31")
    chosen = set(res.constituents["coin_id"])
    assert "edge" in chosen and "late" not in chosen


def test_coverage_threshold() -> None:
    dates = pd.date_range("2021-01-01", "2021-02-05")
    n = len(dates)
    closes = {c: np.ones(n) for c in ("a", "b", "c", "holey", "thin")}
    jan = np.asarray(dates.month == 1)
    holes = np.flatnonzero(jan)[-20:]
    closes["holey"][holes[:2]] = np.nan  # 18 of the 20 days in (Jan 11, Jan 31]: 90% -> eligible
    closes["thin"][holes[:3]] = np.nan  # 17 of 20: 85% -> not eligible
    caps = {c: np.full(n, 5.0 if c in ("holey", "thin") else 1.0) for c in closes}
    res = build_index(long_frame(dates, closes, caps), min_history_days=20, min_coverage=0.9)
    chosen = set(res.constituents["coin_id"])
    assert "holey" in chosen and "thin" not in chosen


def test_zero_and_missing_market_caps_are_unknown() -> None:
    dates = pd.date_range("2021-01-01", "2021-02-05")
    n = len(dates)
    closes = {c: np.ones(n) for c in ("a", "b", "c", "zero")}
    caps = {c: np.ones(n) for c in closes}
    caps["zero"] = np.full(n, 50.0)
    caps["zero"][dates == "2021-01-31"] = 0.0
    res = build_index(long_frame(dates, closes, caps), min_history_days=10)
    assert "zero" not in set(res.constituents["coin_id"])


def test_too_few_eligible_coins_names_the_date() -> None:
    dates = pd.date_range("2021-01-01", "2021-04-15")
    first = {"a": "2021-01-01", "b": "2021-01-01", "c": "2021-01-01"}
    market = _flat(dates, first, {"a": 1.0, "b": 2.0, "c": 3.0})
    market = market[~((market["coin_id"] == "c") & (market["date"] > "2021-02-20"))]  # c delisted
    with pytest.raises(IndexConstructionError) as info:
        build_index(market, min_history_days=10)
    assert info.value.context["date"] == "2021-02-28"
    assert "2021-02-28" in str(info.value)
    with pytest.raises(IndexConstructionError) as info:
        build_index(market, min_history_days=10, start="2021-03-05")
    assert info.value.context["date"] == "2021-03-31"


def test_no_qualifying_selection_date() -> None:
    market = random_market(6, n_coins=4, days=200)
    with pytest.raises(NoQualifyingSelectionError):
        build_index(market)  # 1095 days of history needed


def test_delisted_constituent_is_carried_until_it_leaves() -> None:
    dates = pd.date_range("2021-01-01", "2021-04-30")
    n = len(dates)
    closes = {c: np.linspace(1, 2, n) for c in ("a", "b", "c", "d")}
    closes["d"][dates > "2021-02-10"] = np.nan
    caps = {c: np.full(n, v) for c, v in zip(closes, (1.0, 2.0, 3.0, 4.0), strict=True)}
    res = build_index(long_frame(dates, closes, caps), min_history_days=10)
    fills = res.fills[res.fills["coin_id"] == "d"]
    assert fills["date"].min() == pd.Timestamp("2021-02-11")
    assert fills["date"].max() == pd.Timestamp("2021-02-28")
    assert (fills["filled_from"] == pd.Timestamp("2021-02-10")).all()
    assert "d" not in set(res.constituents.loc[res.constituents["selection_date"] >= "2021-02-28", "coin_id"])
    with pytest.raises(IndexConstructionError) as info:
        build_index(long_frame(dates, closes, caps), min_history_days=10, max_fill_days=5)
    assert info.value.context["coin_id"] == "d"


def test_start_rebases_and_end_truncates() -> None:
    market = random_market(7, n_coins=8, days=500)
    full = build_index(market, **SHORT)
    later = build_index(market, start="2020-09-15", end="2021-01-20", **SHORT)
    assert later.base_date == dt.date(2020, 9, 30)
    assert later.values["index_value"].iloc[0] == 1000.0
    assert later.values["date"].iloc[-1] == pd.Timestamp("2021-01-20")
    # same selections and returns over the common span; levels differ by the re-basing factor only
    common = later.values.merge(full.values, on="date", suffixes=("", "_full"))
    np.testing.assert_allclose(
        common["daily_return"].iloc[1:], common["daily_return_full"].iloc[1:], atol=1e-15
    )
    with pytest.raises(InputError):
        build_index(market, start="2021-01-01", end="2020-01-01", **SHORT)


def test_start_accepts_dates_and_strings() -> None:
    market = random_market(7, n_coins=8, days=500)
    a = build_index(market, start=dt.date(2020, 9, 30), **SHORT)
    b = build_index(market, start="2020-09-30", **SHORT)
    pd.testing.assert_frame_equal(a.values, b.values)


def test_rank_buffer_keeps_incumbents_and_lowers_turnover() -> None:
    market = random_market(8, n_coins=12, days=700, late_listings=False)
    plain = build_index(market, n_constituents=5, min_history_days=60)
    buffered = build_index(market, n_constituents=5, min_history_days=60, rank_buffer=3)
    assert buffered.metrics["avg_monthly_turnover"] <= plain.metrics["avg_monthly_turnover"]
    counts = buffered.constituents.groupby("selection_date").size()
    assert (counts == 5).all()
    assert (buffered.constituents["rank"] <= 8).all()
    assert (buffered.constituents["rank"] > 5).any()


def test_quarterly_rebalance() -> None:
    market = random_market(9, n_coins=8, days=500)
    res = build_index(market, rebalance="Q", **SHORT)
    months = set(res.constituents["selection_date"].dt.month)
    assert months <= {3, 6, 9, 12}


def test_reproducible() -> None:
    market = random_market(10, n_coins=8, days=400)
    a, b = build_index(market, **SHORT), build_index(market.sample(frac=1.0, random_state=1), **SHORT)
    pd.testing.assert_frame_equal(a.values, b.values, check_exact=True)
    pd.testing.assert_frame_equal(a.constituents, b.constituents, check_exact=True)
    assert a.metrics == b.metrics


def test_bad_input() -> None:
    market = random_market(11, n_coins=4, days=100)
    with pytest.raises(DataValidationError):
        build_index(pd.concat([market, market.iloc[:1]]), **SHORT)
    with pytest.raises(DataValidationError):
        build_index(market.drop(columns=["market_cap"]), **SHORT)
    with pytest.raises(InputError):
        build_index(market, n_constituents=2)
    with pytest.raises(InputError):
        build_index(market, max_weight=0.0)
