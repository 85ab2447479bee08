"""Benchmarks, relative measures, attribution and the report, against hand-computed cases (D63-D65)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kallos.cli.main import main
from kallos.index import build_index
from kallos.index.analysis import monthly_table, rolling_volatility, top_movers, yearly_contributions
from kallos.index.benchmarks import benchmark_values, buy_and_hold, compare, relative_metrics
from kallos.index.report import OTHER, OTHER_COLOUR, coin_colours
from kallos.store import open_store

from .index_frames import long_frame, random_market

# Three coins from the base date 2024-01-31 to 2024-03-02; "bitcoin" is the large one.
DATES = pd.date_range("2024-01-31", "2024-03-02", freq="D")
SUPPLY = {"alpha": 10.0, "bitcoin": 15.0, "gamma": 20.0}
HAND = {"n_constituents": 3, "max_weight": 0.5, "min_history_days": 0, "min_coverage": 0.0}


def hand_market() -> pd.DataFrame:
    n = len(DATES)
    feb15, feb29 = DATES.get_loc(pd.Timestamp("2024-02-15")), DATES.get_loc(pd.Timestamp("2024-02-29"))
    alpha = np.full(n, 10.0)
    alpha[feb15:] = 12.0
    alpha[-1] = 6.0  # 2024-03-02
    btc = np.full(n, 20.0)
    btc[feb29 + 1 :] = 25.0  # March
    gamma = np.full(n, 5.0)
    gamma[feb29:] = 4.5
    closes = {"alpha": alpha, "bitcoin": btc, "gamma": gamma}
    return long_frame(DATES, closes, {c: v * SUPPLY[c] for c, v in closes.items()})


def test_capped_index_and_its_attribution_by_hand() -> None:
    res = build_index(hand_market(), **HAND)
    # 2024-01-31 caps 100/300/100: bitcoin capped at .5, the rest shared 1:1
    # 2024-02-29 caps 120/300/90: bitcoin capped, the rest shared 120:90
    feb = {"alpha": 0.25 * 0.2, "bitcoin": 0.5 * 0.0, "gamma": 0.25 * -0.1}
    w_a, w_g = 0.5 * 120 / 210, 0.5 * 90 / 210
    mar = {"alpha": w_a * -0.5, "bitcoin": 0.5 * 0.25, "gamma": w_g * 0.0}
    level = res.values.set_index("date")["index_value"]
    assert level["2024-02-29"] == pytest.approx(1000 * (1 + sum(feb.values())), rel=1e-14)
    assert level["2024-03-02"] == pytest.approx(1025 * (1 + sum(mar.values())), rel=1e-14)

    a = res.attribution
    assert len(a) == 6
    for start, expected in (("2024-01-31", feb), ("2024-02-29", mar)):
        part = a.loc[a["period_start"] == start].set_index("coin_id")
        for coin, c in expected.items():
            assert part.at[coin, "contribution"] == pytest.approx(c, abs=1e-15)
    feb_part = a.loc[a["period_start"] == "2024-01-31"].set_index("coin_id")
    assert feb_part.at["alpha", "start_weight"] == pytest.approx(0.25)
    assert feb_part.at["alpha", "period_return"] == pytest.approx(0.2)

    yearly = yearly_contributions(a, res.values).set_index("coin_id")["contribution"]
    assert yearly["alpha"] == pytest.approx(feb["alpha"] + mar["alpha"] * 1.025, abs=1e-15)
    assert yearly.sum() == pytest.approx(level["2024-03-02"] / 1000 - 1, abs=1e-12)
    movers = top_movers(yearly.reset_index().assign(year=2024), "year")
    assert list(movers.loc[movers["kind"] == "contributor", "coin_id"]) == ["bitcoin"]
    assert list(movers.loc[movers["kind"] == "detractor", "coin_id"]) == ["alpha", "gamma"]  # worst first

    table = monthly_table(res.values)
    assert table.at[2024, 2] == pytest.approx(0.025, rel=1e-12)
    assert table.at[2024, 3] == pytest.approx(sum(mar.values()), rel=1e-12)
    assert math.isnan(table.at[2024, 1]) or table.at[2024, 1] == 0.0
    assert table.at[2024, "year"] == pytest.approx(level["2024-03-02"] / 1000 - 1, rel=1e-12)


def test_benchmarks_by_hand() -> None:
    market = hand_market()
    series = benchmark_values(
        market, exclude=(), base_date="2024-01-31", end="2024-03-02", build_kwargs={**HAND, "rebalance": "M"}
    )
    ends = {name: s.set_index("date")["index_value"] for name, s in series.items()}
    btc = ends["bitcoin buy-and-hold"]
    assert btc["2024-02-29"] == 1000.0 and btc["2024-03-02"] == pytest.approx(1250.0, rel=1e-15)
    ew = ends["equal-weight top 3"]
    assert ew["2024-02-29"] == pytest.approx(1000 * (1 + (0.2 + 0 - 0.1) / 3), rel=1e-14)
    assert ew["2024-03-02"] == pytest.approx(ew["2024-02-29"] * (1 + (-0.5 + 0.25 + 0) / 3), rel=1e-14)
    mc = ends["market-cap top 3 (uncapped)"]
    assert mc["2024-02-29"] == pytest.approx(1000 * (1 + 0.2 * 0.2 + 0.6 * 0 + 0.2 * -0.1), rel=1e-14)
    assert mc["2024-03-02"] == pytest.approx(mc["2024-02-29"] * (1 + 15 / 510), rel=1e-14)
    assert all(list(s["date"]) == list(DATES) for s in series.values())  # the same days


def test_buy_and_hold_carries_missing_closes() -> None:
    m = long_frame(
        pd.date_range("2024-01-01", periods=4),
        {"bitcoin": [10.0, np.nan, 12.0, 9.0]},
        {"bitcoin": [1.0, 1.0, 1.0, 1.0]},
    )
    out = buy_and_hold(m, pd.date_range("2024-01-01", periods=4))
    assert out is not None
    np.testing.assert_allclose(out["index_value"], [1000, 1000, 1200, 900])
    assert buy_and_hold(m, pd.date_range("2023-12-31", periods=2)) is None  # no close on the first day


def test_relative_metrics_by_hand() -> None:
    r = np.array([0.01, -0.02, 0.04])
    b = np.array([0.02, -0.01, 0.01])
    m = relative_metrics(r, b)
    # active = (-1, -1, 3)/100: mean 1/300, std sqrt(48)/300; beta = cov/var = 54/42
    assert m["tracking_error"] == pytest.approx(math.sqrt(48) / 300 * math.sqrt(365), rel=1e-12)
    assert m["information_ratio"] == pytest.approx(math.sqrt(365) / math.sqrt(48), rel=1e-12)
    assert m["beta"] == pytest.approx(9 / 7, rel=1e-12)
    same = relative_metrics(b, b)
    assert same["tracking_error"] == 0 and math.isnan(same["information_ratio"]) and same["beta"] == pytest.approx(1)


def test_compare_aligns_and_rebases() -> None:
    days = pd.date_range("2024-01-01", periods=5)
    a = pd.DataFrame({"date": days, "index_value": [100, 110, 99, 120, 130.0], "daily_return": 0.0})
    b = pd.DataFrame({"date": days[1:], "index_value": [50, 55, 50, 60.0], "daily_return": 0.0})
    table = compare({"a": a, "bitcoin buy-and-hold": b})
    assert table.at["total_return", "a"] == pytest.approx(130 / 110 - 1)
    assert table.at["total_return", "bitcoin buy-and-hold"] == pytest.approx(0.2)
    assert table.at["beta", "bitcoin buy-and-hold"] == pytest.approx(1.0)
    ra = np.array([99 / 110, 120 / 99, 130 / 120]) - 1
    rb = np.array([55 / 50, 50 / 55, 60 / 50]) - 1
    assert table.at["beta", "a"] == pytest.approx(relative_metrics(ra, rb)["beta"], rel=1e-12)


@pytest.mark.shared_data
def test_contributions_sum_to_every_period_return_on_real_data() -> None:
    from kallos.index import EXCLUDED_COIN_IDS

    from .test_index_real_data import load_real_market

    market, stable = load_real_market()
    for rebalance in ("M", "Q"):
        res = build_index(market, exclude=stable | set(EXCLUDED_COIN_IDS), rebalance=rebalance)
        level = res.values.set_index("date")["index_value"]
        sums = res.attribution.groupby(["period_start", "period_end"])["contribution"].sum()
        for (start, end), total in sums.items():
            assert total == pytest.approx(level[end] / level[start] - 1, abs=1e-12)
        years = yearly_contributions(res.attribution, res.values).groupby("year")["contribution"].sum()
        for year, total in years.items():
            inside = level[level.index.year == year]
            before = level[level.index < inside.index[0]]
            first = before.iloc[-1] if len(before) else inside.iloc[0]
            assert total == pytest.approx(inside.iloc[-1] / first - 1, abs=1e-12)
        if rebalance == "Q":  # quarterly holdings are still attributed month by month
            months = pd.to_datetime(res.attribution["period_end"]).dt.to_period("M")
            assert months.nunique() == len(res.values["date"].dt.to_period("M").unique()) - 1


def test_rolling_volatility() -> None:
    rng = np.random.default_rng(1)
    ret = np.concatenate([[0.0], rng.normal(0, 0.02, 200)])
    values = pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=201),
            "index_value": 1000 * np.cumprod(1 + ret),
            "daily_return": ret,
        }
    )
    vol = rolling_volatility(values)
    assert vol.iloc[:89].isna().all()
    assert vol.iloc[89] == pytest.approx(np.std(ret[1:91], ddof=1) * math.sqrt(365), rel=1e-12)
    assert vol.iloc[-1] == pytest.approx(np.std(ret[-90:], ddof=1) * math.sqrt(365), rel=1e-12)


def test_every_coin_has_its_own_colour_and_other_is_grey() -> None:
    coins = [f"coin-{i}" for i in range(80)]
    colours = coin_colours(coins)
    assert len({colours[c] for c in coins}) == 80
    assert colours[OTHER] == OTHER_COLOUR and OTHER_COLOUR not in {colours[c] for c in coins}
    assert coin_colours(coins[:3])["coin-0"] == colours["coin-0"]  # stable: the same coin, the same colour


@pytest.mark.slow
def test_report_has_every_section(tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path / 'r.duckdb'}"
    s = open_store(url)
    s.init()
    market = random_market(5, n_coins=12, start="2019-01-01", days=1400, late_listings=False)
    market.loc[market["coin_id"] == "coin-00", "coin_id"] = "bitcoin"
    ids = sorted(set(market["coin_id"]))
    s.upsert("coins", pd.DataFrame({"coingecko_id": ids, "symbol": ids, "name": ids}))
    s.upsert("daily_market_data", market)
    s.close()
    db = ["--database-url", url, "--now", "2026-01-01T00:00:00"]
    assert main(["index", "build", *db]) == 0
    out = tmp_path / "out"
    assert main(["index", "report", "--start", "2022-03-01", "--end", "2022-09-30", "-o", str(out), *db]) == 0
    html = (out / "index_report.html").read_text(encoding="utf-8")
    for anchor in ('id="benchmarks"', 'id="monthly-returns"', 'id="movers-by-year"', 'id="movers-by-month"'):
        assert anchor in html
    for text in ("bitcoin buy-and-hold", "equal-weight top 20", "market-cap top 20 (uncapped)", "tracking error",
                 "information ratio", "beta", "Rolling 90-day volatility", "2022-03-01 to 2022-09-30"):
        assert text in html
    for png in ("level", "weights", "benchmarks", "volatility", "turnover", "contributions"):
        assert (out / f"index_{png}.png").read_bytes()[:4] == b"\x89PNG"
    assert "<script" not in html and "https://" not in html
    assert html.count("data:image/png;base64,") == 6
    assert main(["index", "report", "--start", "2022-09-30", "--end", "2022-03-01", *db]) == 2
