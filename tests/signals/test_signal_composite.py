"""The composite score and action, and the no-look-ahead property of the whole computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kallos.signals import generate_signals, parse_signal_config

from .signal_frames import calm_frame, day, realistic_frame, set_values

DEFAULT_WEIGHTS = 1.0 + 1.0 + 1.5 + 1.0 + 1.0 + 0.5  # rsi, macd, ema_cross, bollinger, stochastic, volume


def composite(frame: pd.DataFrame, config=None) -> pd.DataFrame:
    out = generate_signals(frame, config)
    return out.loc[out["signal"] == "composite"].set_index("date")


def test_every_input_row_gets_exactly_one_composite_row() -> None:
    f = pd.concat([realistic_frame(120, "a", 1), realistic_frame(90, "b", 2)])
    out = generate_signals(f)
    comp = out.loc[out["signal"] == "composite"]
    assert len(comp) == len(f)
    assert not comp.duplicated(["coin_id", "date"]).any()
    assert comp["composite_score"].between(-1, 1).all()
    assert comp["strength"].between(0, 1).all()
    assert (comp["direction"] == np.sign(comp["composite_score"])).all()
    rules = out.loc[out["signal"] != "composite"]
    assert rules["strength"].between(0, 1).all() and rules["direction"].isin([1, -1]).all()
    assert rules["composite_score"].isna().all() and rules["action"].isna().all()


def test_score_is_the_weighted_mean_of_the_families_that_can_vote() -> None:
    f = calm_frame()
    set_values(f, 40, rsi_14=20.0)  # strength 10/15
    set_values(f, 50, rsi_14=10.0)  # strength 1
    comp = composite(f)
    assert comp.loc[day(40), "composite_score"] == pytest.approx((10 / 15) / DEFAULT_WEIGHTS)
    assert comp.loc[day(40), "action"] == "hold"  # 0.111 < 0.15
    assert comp.loc[day(50), "composite_score"] == pytest.approx(1 / DEFAULT_WEIGHTS)
    assert comp.loc[day(50), "action"] == "buy"  # 0.167 >= 0.15
    assert comp.drop([day(40), day(50)])["composite_score"].eq(0).all()


def test_families_without_data_do_not_dilute_the_score() -> None:
    f = calm_frame()
    f[["stoch_k", "stoch_d", "adx_14", "cmf_20"]] = np.nan  # a close-only coin: no high/low indicators
    set_values(f, 50, rsi_14=10.0)
    comp = composite(f)
    # rsi 1 + macd 1 + ema 1.5 + bollinger 1 vote; stochastic and volume (CMF required) cannot.
    assert comp.loc[day(50), "composite_score"] == pytest.approx(1 / 4.5)


def test_opposite_signals_offset_and_a_family_vote_is_clipped() -> None:
    f = calm_frame()
    f.loc[f["date"] >= day(30), "macd_line"] = 0.0  # macd_cross_down, strength 1
    set_values(f, 30, rsi_14=10.0)  # rsi_oversold, strength 1
    assert composite(f).loc[day(30), "composite_score"] == pytest.approx(0.0)
    g = calm_frame()
    # A close jumping from below the lower band to above the upper one fires a breakout up and a re-entry up
    # together: the Bollinger vote is clipped to 1.
    set_values(g, 39, close=80.0)
    set_values(g, 40, close=125.0)
    comp = composite(g)
    out = generate_signals(g)
    assert set(out.loc[(out["date"] == day(40)) & (out["signal"] != "composite"), "signal"]) == {
        "bb_breakout_up",
        "bb_reentry_up",
    }
    assert comp.loc[day(40), "composite_score"] == pytest.approx(1.0 / DEFAULT_WEIGHTS)


def test_thresholds_and_weights_come_from_the_config() -> None:
    f = calm_frame()
    set_values(f, 40, rsi_14=20.0)
    set_values(f, 50, rsi_14=85.0)
    cfg = parse_signal_config({"composite": {"buy_threshold": 0.1, "sell_threshold": -0.1}})
    comp = composite(f, cfg)
    assert comp.loc[day(40), "action"] == "buy" and comp.loc[day(50), "action"] == "sell"
    only_rsi = parse_signal_config(
        {"rules": {k: {"weight": 0} for k in ("macd", "ema_cross", "bollinger", "stochastic", "volume")}}
    )
    comp = composite(f, only_rsi)
    assert comp.loc[day(40), "composite_score"] == pytest.approx(10 / 15)
    assert comp.loc[day(50), "composite_score"] == pytest.approx(-1.0)
    assert comp.loc[day(50), "action"] == "sell"


def test_no_family_can_vote_gives_a_zero_hold_row() -> None:
    f = calm_frame(5)
    for col in f.columns[3:]:
        f[col] = np.nan
    comp = composite(f)
    assert len(comp) == 5 and (comp["composite_score"] == 0).all() and (comp["action"] == "hold").all()


@pytest.mark.parametrize("cut", [30, 61, 120, 199, 258])
def test_no_look_ahead_corrupting_every_later_row_changes_nothing_up_to_t(cut: int) -> None:
    f = pd.concat([realistic_frame(260, "walk", 3), realistic_frame(260, "other", 4)], ignore_index=True)
    baseline = generate_signals(f)
    rng = np.random.default_rng(cut)
    bad = f.copy()
    later = bad["date"] > day(cut)
    numeric = [c for c in bad.columns if c not in ("coin_id", "date")]
    noise = rng.normal(0, 1e3, size=(int(later.sum()), len(numeric)))
    bad.loc[later, numeric] = np.abs(noise)
    bad.loc[later & (rng.random(len(bad)) < 0.2), "rsi_14"] = np.nan
    corrupted = generate_signals(bad)
    keep = lambda x: x.loc[x["date"] <= day(cut)].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(keep(baseline), keep(corrupted))
    assert (
        not baseline.loc[baseline["date"] > day(cut)]
        .reset_index(drop=True)
        .equals(corrupted.loc[corrupted["date"] > day(cut)].reset_index(drop=True))
        or cut == 258
    )


def test_coins_do_not_leak_into_each_other_and_input_order_does_not_matter() -> None:
    a, b = realistic_frame(150, "a", 5), realistic_frame(150, "b", 6)
    together = generate_signals(pd.concat([a, b]).sample(frac=1.0, random_state=1))
    apart = pd.concat([generate_signals(a), generate_signals(b)], ignore_index=True)
    pd.testing.assert_frame_equal(together.reset_index(drop=True), apart.reset_index(drop=True))


def test_the_realistic_walk_exercises_most_rules() -> None:
    out = generate_signals(realistic_frame(400, "w", 11))
    fired = set(out["signal"]) - {"composite"}
    assert len(fired) >= 10  # a sanity check that the fixtures used above are not vacuous


@pytest.mark.parametrize("cut", [80, 150])
def test_no_look_ahead_a_flat_future_does_not_silence_day_t(cut: int) -> None:
    f = realistic_frame(220, "walk", 9)
    set_values(f, cut, rsi_14=5.0)  # rsi_oversold on day t
    baseline = generate_signals(f)
    bad = f.copy()
    later = bad["date"] > day(cut)
    bad.loc[later, "close"] = float(f.loc[f["date"] == day(cut), "close"].iloc[0])
    bad.loc[later, ["rsi_14", "stoch_k", "stoch_d", "adx_14"]] = 0.0
    corrupted = generate_signals(bad)
    keep = lambda x: x.loc[x["date"] <= day(cut)].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(keep(baseline), keep(corrupted))
    assert ((keep(corrupted)["signal"] == "rsi_oversold") & (keep(corrupted)["date"] == day(cut))).any()
