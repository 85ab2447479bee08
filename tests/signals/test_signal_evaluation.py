"""Evaluation on hand-built closes: calendar-day horizons, hits, and the coins' unconditional baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kallos.errors import DataValidationError
from kallos.signals import evaluate_signals, forward_returns, parse_horizons

D = pd.Timestamp("2024-03-01")


def d(i: int) -> pd.Timestamp:
    return D + pd.Timedelta(days=i)


def closes(coin: str, values: dict[int, float]) -> pd.DataFrame:
    return pd.DataFrame({"coin_id": coin, "date": [d(i) for i in values], "close": list(values.values())})


def sig(coin: str, i: int, signal: str, direction: int = 1, action: str | None = None) -> dict:
    return {"coin_id": coin, "date": d(i), "signal": signal, "direction": direction, "action": action}


A = closes("a", {0: 100.0, 1: 110.0, 2: 99.0, 3: 99.0, 5: 120.0})  # day 4 is missing


def test_forward_returns_count_calendar_days_and_skip_missing_closes() -> None:
    fwd = forward_returns(A, (1, 2)).set_index("date")
    assert fwd.loc[d(0), "fwd_1"] == pytest.approx(0.10)
    assert fwd.loc[d(3), "fwd_2"] == pytest.approx(120 / 99 - 1)
    assert np.isnan(fwd.loc[d(3), "fwd_1"])  # day 4 not stored: no return, not the next row's
    assert np.isnan(fwd.loc[d(5), "fwd_1"])


def test_report_counts_hits_means_and_medians() -> None:
    signals = pd.DataFrame(
        [
            sig("a", 0, "rsi_oversold"),
            sig("a", 3, "rsi_oversold"),
            sig("a", 1, "composite", 1, "buy"),
            sig("a", 2, "composite", -1, "sell"),
            sig("a", 0, "composite", 0, "hold"),
            sig("a", 3, "composite", 0, "hold"),
        ]
    )
    rep = evaluate_signals(signals, A, (1, 2)).set_index(["signal", "horizon"])
    assert set(rep.index.get_level_values(0)) == {"rsi_oversold", "composite_buy", "composite_sell"}
    r = rep.loc[("rsi_oversold", 1)]
    assert (r["occurrences"], r["count"]) == (2, 1)  # day 3 has no 1-day return
    assert r["hit_rate"] == 1.0 and r["mean_return"] == pytest.approx(0.10)
    r2 = rep.loc[("rsi_oversold", 2)]
    assert r2["count"] == 2
    assert r2["mean_return"] == pytest.approx((0.99 - 1 + 120 / 99 - 1) / 2)
    assert r2["median_return"] == pytest.approx((0.99 - 1 + 120 / 99 - 1) / 2)
    assert r2["hit_rate"] == 0.5
    buy = rep.loc[("composite_buy", 1)]
    assert buy["direction"] == 1 and buy["hit_rate"] == 0.0 and buy["mean_return"] == pytest.approx(-0.1)
    sell = rep.loc[("composite_sell", 1)]
    assert sell["direction"] == -1 and sell["mean_return"] == pytest.approx(0.0) and sell["hit_rate"] == 0.0
    # baseline: coin a's 1-day returns over the evaluated days 0..3 are +0.1, -0.1, 0.0 (day 3 has none)
    assert r["base_mean_return"] == pytest.approx(0.0)
    assert r["base_hit_rate"] == pytest.approx(1 / 3)
    assert sell["base_hit_rate"] == pytest.approx(1 / 3)
    assert r["excess_mean_return"] == pytest.approx(0.10)


def test_baseline_weights_each_coin_by_its_occurrences() -> None:
    b = closes("b", {i: 50.0 * 1.02**i for i in range(6)})  # +2% every day
    prices = pd.concat([A, b])
    signals = pd.DataFrame(
        [sig("a", 0, "golden_cross"), sig("a", 1, "golden_cross"), sig("b", 2, "golden_cross")]
    )
    rep = evaluate_signals(signals, prices, (1,), start=d(0), end=d(3)).iloc[0]
    mean_a = (0.1 - 0.1 + 0.0) / 3
    assert rep["count"] == 3
    assert rep["base_mean_return"] == pytest.approx((2 * mean_a + 0.02) / 3)
    assert rep["mean_return"] == pytest.approx((0.1 - 0.1 + 0.02) / 3)


def test_start_and_end_limit_the_evaluated_days() -> None:
    signals = pd.DataFrame([sig("a", 0, "rsi_oversold"), sig("a", 2, "rsi_oversold")])
    rep = evaluate_signals(signals, A, (1,), start=d(1)).iloc[0]
    assert rep["occurrences"] == 1 and rep["mean_return"] == pytest.approx(0.0)
    assert evaluate_signals(signals, A, (1,), start=d(4)).empty


def test_parse_horizons() -> None:
    assert parse_horizons("1, 7,30,7") == (1, 7, 30)
    assert parse_horizons([3]) == (3,)
    for bad in ("0", "a", "", "1,-2"):
        with pytest.raises(DataValidationError):
            parse_horizons(bad)
