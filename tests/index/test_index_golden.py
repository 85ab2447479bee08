"""A hand-computed index: 4 coins, 2 rebalances, the 35% cap binding twice, a fill, a tie (to 1e-10).

Selection 2024-01-31 (top 3 of alpha 600, beta 200, gamma 150, delta 50): alpha is capped at 35%, the 65% left
split 200:150 gives beta 37.14%, capped too, so gamma gets 30%.
Feb 1: alpha +10%           R = 0.35 * 0.10                        L = 1035
Feb 2: gamma -20%           V = 0.385 + 0.35 + 0.24 = 0.975       L = 975
Feb 3: beta +50%            V = 0.385 + 0.525 + 0.24 = 1.15       L = 1150
       (then flat to Feb 29; beta's Feb 10 close is missing and carried forward)
Selection 2024-02-29 (delta 500, alpha 300, beta 100, gamma 100: beta wins the tie on its id): delta is
capped at 35%, alpha 0.65 * 3/4 = 48.75% is capped, beta gets 30%. Drifted weights before the trade:
alpha 0.385/1.15 (under its new target), beta 0.525/1.15 (over), gamma 0.24/1.15; one-way turnover
= ½ (0.0175/1.15 + 0.18/1.15 + 0.24/1.15 + 0.35) = 0.3652... (0.35 if measured against the old targets).
Mar 1: delta +100%, beta -50%  R = 0.35 - 0.15 = 0.20               L = 1380
Mar 2: alpha +100%             R = 0.35 / 1.2                      L = 1150 * 1.55 = 1782.5
"""

from __future__ import annotations

import datetime as dt
import math
import statistics

import numpy as np
import pandas as pd
import pytest

from kallos.index import build_index

DATES = pd.date_range("2024-01-29", "2024-03-02", freq="D")
TURNOVER = 0.5 * (0.4375 / 1.15 + 0.35)
RETURNS = [0.035, -0.06 / 1.035, 0.175 / 0.975] + [0.0] * 26 + [0.2, 0.35 / 1.2]


def _series(default: float, changes: dict[str, float]) -> list[float]:
    out, value = [], default
    for d in DATES:
        value = changes.get(d.strftime("%Y-%m-%d"), value)
        out.append(value)
    return out


def golden_market() -> pd.DataFrame:
    closes = {
        "alpha": _series(10.0, {"2024-02-01": 11.0, "2024-03-02": 22.0}),
        "beta": _series(20.0, {"2024-02-03": 30.0, "2024-03-01": 15.0}),
        "gamma": _series(5.0, {"2024-02-02": 4.0}),
        "delta": _series(1.0, {"2024-03-01": 2.0}),
    }
    caps = {
        "alpha": _series(600.0, {"2024-02-29": 300.0}),
        "beta": _series(200.0, {"2024-02-29": 100.0}),
        "gamma": _series(150.0, {"2024-02-29": 100.0}),
        "delta": _series(50.0, {"2024-02-29": 500.0}),
    }
    rows = []
    for coin in closes:
        for d, c, m in zip(DATES, closes[coin], caps[coin], strict=True):
            if coin == "beta" and d == pd.Timestamp("2024-02-10"):
                continue
            rows.append((coin, d, c, m))
    return pd.DataFrame(rows, columns=["coin_id", "date", "close", "market_cap"])


@pytest.fixture(scope="module")
def result():
    return build_index(golden_market(), n_constituents=3, min_history_days=2, min_coverage=1.0)


def expected_levels() -> dict[str, float]:
    out = {"2024-01-31": 1000.0, "2024-02-01": 1035.0, "2024-02-02": 975.0}
    for day in pd.date_range("2024-02-03", "2024-02-29"):
        out[day.strftime("%Y-%m-%d")] = 1150.0
    out["2024-03-01"] = 1380.0
    out["2024-03-02"] = 1782.5
    return out


def test_levels_and_returns(result) -> None:
    levels = expected_levels()
    got = dict(zip(result.values["date"].dt.strftime("%Y-%m-%d"), result.values["index_value"], strict=True))
    assert list(got) == list(levels)
    for day, level in levels.items():
        assert got[day] == pytest.approx(level, rel=1e-10, abs=0), day
    returns = result.values["daily_return"].to_numpy()
    assert returns[0] == 0.0
    assert returns[1] == pytest.approx(0.035, abs=1e-10)
    assert returns[2] == pytest.approx(-0.06 / 1.035, abs=1e-10)
    assert returns[3] == pytest.approx(0.175 / 0.975, abs=1e-10)
    assert returns[-2] == pytest.approx(0.20, abs=1e-10)
    assert returns[-1] == pytest.approx(0.35 / 1.2, abs=1e-10)


def test_constituents_weights_and_ranks(result) -> None:
    c = result.constituents
    first = c[c["selection_date"] == "2024-01-31"]
    second = c[c["selection_date"] == "2024-02-29"]
    assert first["coin_id"].tolist() == ["alpha", "beta", "gamma"]
    assert first["rank"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(first["weight"], [0.35, 0.35, 0.30], rtol=0, atol=1e-10)
    np.testing.assert_allclose(first["market_cap"], [600, 200, 150])
    assert second["coin_id"].tolist() == ["delta", "alpha", "beta"]
    assert second["rank"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(second["weight"], [0.35, 0.35, 0.30], rtol=0, atol=1e-10)


def test_turnover_fills_and_metrics(result) -> None:
    assert result.turnover["selection_date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-02-29"]
    assert result.turnover["turnover"].iloc[0] == pytest.approx(TURNOVER, abs=1e-10)
    assert result.fills[["coin_id"]].to_dict("records") == [{"coin_id": "beta"}]
    assert result.fills["date"].iloc[0] == pd.Timestamp("2024-02-10")
    assert result.fills["close"].iloc[0] == 30.0
    assert result.fills["filled_from"].iloc[0] == pd.Timestamp("2024-02-09")

    m = result.metrics
    assert result.base_date == dt.date(2024, 1, 31)
    assert m["total_return"] == pytest.approx(0.7825, abs=1e-10)
    assert m["annualized_return"] == pytest.approx(1.7825 ** (365 / 31) - 1, rel=1e-10)
    rets = RETURNS
    assert m["volatility"] == pytest.approx(statistics.stdev(rets) * math.sqrt(365), rel=1e-10)
    assert m["sharpe"] == pytest.approx(
        statistics.mean(rets) / statistics.stdev(rets) * math.sqrt(365), rel=1e-10
    )
    assert m["max_drawdown"] == pytest.approx(975 / 1035 - 1, abs=1e-10)
    assert m["max_drawdown_peak"] == dt.date(2024, 2, 1)
    assert m["max_drawdown_trough"] == dt.date(2024, 2, 2)
    assert m["avg_monthly_turnover"] == pytest.approx(TURNOVER, abs=1e-10)


def test_risk_free_rate_enters_the_sharpe_ratio() -> None:
    rf = 0.05
    res = build_index(golden_market(), n_constituents=3, min_history_days=2, min_coverage=1.0, risk_free=rf)
    rets = np.array(RETURNS)
    excess = rets - ((1 + rf) ** (1 / 365) - 1)
    assert res.metrics["sharpe"] == pytest.approx(
        excess.mean() / excess.std(ddof=1) * math.sqrt(365), rel=1e-10
    )


def test_costs_give_a_net_series_charged_at_the_rebalance() -> None:
    res = build_index(golden_market(), n_constituents=3, min_history_days=2, min_coverage=1.0, cost_bps=100)
    v = res.values.set_index(res.values["date"].dt.strftime("%Y-%m-%d"))
    assert v.loc["2024-02-28", "net_index_value"] == pytest.approx(1150.0, rel=1e-12)
    assert v.loc["2024-02-29", "net_index_value"] == pytest.approx(1150.0 * (1 - 0.01 * TURNOVER), rel=1e-12)
    assert v.loc["2024-03-02", "net_index_value"] == pytest.approx(1782.5 * (1 - 0.01 * TURNOVER), rel=1e-12)
    np.testing.assert_allclose(v["index_value"], list(expected_levels().values()), rtol=1e-12)
