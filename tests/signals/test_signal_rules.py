"""Each rule fires on the day built for it, and on no other; edge cases that must not fire."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kallos.errors import DataValidationError
from kallos.signals import RULE_IDS, SignalConfig, generate_signals, parse_signal_config

from .signal_frames import calm_frame, day, set_values


def rule_rows(frame: pd.DataFrame, config: SignalConfig | None = None) -> pd.DataFrame:
    out = generate_signals(frame, config)
    return out.loc[out["signal"] != "composite"].reset_index(drop=True)


def fired(frame: pd.DataFrame, rule: str, config: SignalConfig | None = None) -> list[pd.Timestamp]:
    rows = rule_rows(frame, config)
    return list(rows.loc[rows["signal"] == rule, "date"])


def test_calm_frame_fires_nothing() -> None:
    assert rule_rows(calm_frame()).empty


def test_rsi_oversold_and_overbought_fire_on_their_days() -> None:
    f = calm_frame()
    set_values(f, 40, rsi_14=20.0)
    set_values(f, 50, rsi_14=85.0)
    rows = rule_rows(f)
    assert list(zip(rows["signal"], rows["date"], rows["direction"], strict=True)) == [
        ("rsi_oversold", day(40), 1),
        ("rsi_overbought", day(50), -1),
    ]
    assert rows["strength"].tolist() == pytest.approx([10 / 15, 1.0])


def test_rsi_at_the_threshold_or_missing_does_not_fire() -> None:
    f = calm_frame()
    set_values(f, 40, rsi_14=30.0)
    set_values(f, 41, rsi_14=70.0)
    set_values(f, 42, rsi_14=np.nan)
    assert rule_rows(f).empty


def test_rsi_thresholds_come_from_the_config() -> None:
    f = calm_frame()
    set_values(f, 40, rsi_14=35.0)
    assert fired(f, "rsi_oversold") == []
    cfg = parse_signal_config({"rules": {"rsi": {"oversold": 40}}})
    assert fired(f, "rsi_oversold", cfg) == [day(40)]


def test_rsi_in_a_flat_window_fires_nothing_but_one_move_inside_the_window_is_enough() -> None:
    f = calm_frame()
    # TA-Lib gives RSI 0 on flat prices; 14 equal closes ending on day 40 make that window degenerate.
    f.loc[(f["date"] >= day(27)) & (f["date"] <= day(40)), "close"] = 100.0
    set_values(f, 40, rsi_14=0.0)
    assert fired(f, "rsi_oversold") == []
    set_values(f, 27, close=100.5)  # the window of day 40 is days 27..40: no longer flat
    assert fired(f, "rsi_oversold") == [day(40)]


def test_macd_crosses_fire_on_the_crossing_day_only() -> None:
    f = calm_frame()
    f.loc[f["date"] >= day(30), "macd_line"] = 0.0  # spread 0.5 -> -0.5 on day 30
    f.loc[f["date"] >= day(45), "macd_line"] = 1.0  # back up on day 45
    rows = rule_rows(f)
    assert list(zip(rows["signal"], rows["date"], rows["direction"], strict=True)) == [
        ("macd_cross_down", day(30), -1),
        ("macd_cross_up", day(45), 1),
    ]
    assert rows["strength"].tolist() == [1.0, 1.0]  # a 1% swing of the spread, above full_strength 0.5%


def test_a_cross_that_touches_zero_fires_once_on_the_day_it_goes_through() -> None:
    f = calm_frame()
    set_values(f, 30, macd_line=0.5)  # spread exactly 0
    f.loc[f["date"] >= day(31), "macd_line"] = 0.0  # spread -0.5
    assert fired(f, "macd_cross_down") == [day(31)]
    assert fired(f, "macd_cross_up") == []


def test_golden_and_death_cross_and_graded_strength() -> None:
    f = calm_frame()
    set_values(f, 34, ema_10=100.2)
    f.loc[f["date"] >= day(35), "ema_10"] = 99.95  # spread 0.2 -> -0.05: a death cross on day 35
    f.loc[f["date"] >= day(60), "ema_10"] = 100.5  # golden cross on day 60
    rows = rule_rows(f)
    assert list(zip(rows["signal"], rows["date"], strict=True)) == [
        ("death_cross", day(35)),
        ("golden_cross", day(60)),
    ]
    close35 = float(f.loc[f["date"] == day(35), "close"].iloc[0])
    assert rows["strength"].iloc[0] == pytest.approx(0.25 / close35 / 0.005)
    assert 0 < rows["strength"].iloc[0] < 1


@pytest.mark.parametrize(
    "adx, when_missing, fires",
    [(10.0, "allow", False), (20.0, "allow", True), (np.nan, "allow", True), (np.nan, "block", False)],
)
def test_adx_filter_gates_trend_rules(adx: float, when_missing: str, fires: bool) -> None:
    f = calm_frame()
    f.loc[f["date"] >= day(30), "macd_line"] = 0.0
    f.loc[f["date"] >= day(30), "ema_10"] = 99.0
    set_values(f, 30, adx_14=adx, rsi_14=20.0)
    cfg = parse_signal_config({"adx_filter": {"when_missing": when_missing}})
    rows = rule_rows(f, cfg)
    got = set(rows.loc[rows["date"] == day(30), "signal"])
    trend = {"macd_cross_down", "death_cross"}
    assert (trend <= got) is fires and (got & trend == set()) is (not fires)
    assert "rsi_oversold" in got  # not a trend rule: never gated


def test_adx_filter_disabled_or_extended_to_bollinger() -> None:
    f = calm_frame()
    f.loc[f["date"] >= day(30), "macd_line"] = 0.0
    set_values(f, 30, adx_14=5.0)
    set_values(f, 40, close=112.0, adx_14=5.0)
    assert fired(f, "macd_cross_down") == []
    assert fired(f, "bb_breakout_up") == [day(40)]
    off = parse_signal_config({"adx_filter": {"enabled": False}})
    assert fired(f, "macd_cross_down", off) == [day(30)]
    bb = parse_signal_config({"adx_filter": {"gated_rules": ["bollinger"]}})
    assert fired(f, "bb_breakout_up", bb) == []
    assert fired(f, "macd_cross_down", bb) == [day(30)]


def test_bollinger_breakouts_and_reentries() -> None:
    f = calm_frame()
    set_values(f, 40, close=112.0)  # above the upper band (110)
    set_values(f, 60, close=85.0)  # below the lower band (90)
    rows = rule_rows(f)
    assert list(zip(rows["signal"], rows["date"], rows["direction"], strict=True)) == [
        ("bb_breakout_up", day(40), 1),
        ("bb_reentry_down", day(41), -1),
        ("bb_breakout_down", day(60), -1),
        ("bb_reentry_up", day(61), 1),
    ]
    assert rows["strength"].iloc[0] == pytest.approx((112 - 110) / 20 / 0.25)
    assert rows["strength"].iloc[2] == pytest.approx((90 - 85) / 20 / 0.25)


def test_bollinger_close_on_the_band_is_not_a_breakout_and_parts_can_be_switched_off() -> None:
    f = calm_frame()
    set_values(f, 40, close=110.0)
    assert rule_rows(f).empty
    set_values(f, 40, close=112.0)
    no_breakouts = parse_signal_config({"rules": {"bollinger": {"breakouts": False}}})
    assert set(rule_rows(f, no_breakouts)["signal"]) == {"bb_reentry_down"}


def test_bollinger_staying_outside_fires_once() -> None:
    f = calm_frame()
    f.loc[(f["date"] >= day(40)) & (f["date"] <= day(44)), "close"] = 115.0
    assert fired(f, "bb_breakout_up") == [day(40)]
    assert fired(f, "bb_reentry_down") == [day(45)]


def test_stochastic_crosses_fire_only_in_the_extreme_zones() -> None:
    f = calm_frame()
    set_values(f, 29, stoch_k=10.0, stoch_d=15.0)
    set_values(f, 30, stoch_k=18.0, stoch_d=14.0)  # %K over %D with %D below 20
    set_values(f, 49, stoch_k=92.0, stoch_d=88.0)
    set_values(f, 50, stoch_k=84.0, stoch_d=87.0)  # %K under %D with %D above 80
    set_values(f, 69, stoch_k=30.0, stoch_d=35.0)
    set_values(f, 70, stoch_k=40.0, stoch_d=36.0)  # a cross outside the zones: nothing
    rows = rule_rows(f)
    assert list(zip(rows["signal"], rows["date"], rows["direction"], strict=True)) == [
        ("stoch_cross_up", day(30), 1),
        ("stoch_cross_down", day(50), -1),
    ]
    assert rows["strength"].tolist() == pytest.approx([(20 - 14) / 20, (87 - 80) / 20])


def test_volume_confirmation_needs_rising_volume_and_money_flow_on_the_move_side() -> None:
    f = calm_frame()
    c44 = float(f.loc[f["date"] == day(44), "close"].iloc[0])
    set_values(f, 45, close=c44 + 2.0, volume_roc_7=0.6, cmf_20=0.1)  # up day, volume +60%, CMF positive
    set_values(f, 55, volume_roc_7=0.6, cmf_20=-0.1)
    c55 = float(f.loc[f["date"] == day(55), "close"].iloc[0])
    c54 = float(f.loc[f["date"] == day(54), "close"].iloc[0])
    expected_55 = c55 < c54  # day 55 only confirms if it is a down day
    set_values(f, 65, volume_roc_7=0.1, cmf_20=0.3)  # volume not up enough
    rows = rule_rows(f)
    got = list(zip(rows["signal"], rows["date"], rows["direction"], strict=True))
    assert ("volume_confirmed", day(45), 1) in got
    assert (("volume_confirmed", day(55), -1) in got) is expected_55
    assert all(d != day(65) for _, d, _ in got)
    assert rows.loc[rows["date"] == day(45), "strength"].iloc[0] == pytest.approx(0.6)


def test_volume_confirmation_against_the_money_flow_or_without_cmf() -> None:
    f = calm_frame()
    c44 = float(f.loc[f["date"] == day(44), "close"].iloc[0])
    set_values(f, 45, close=c44 + 2.0, volume_roc_7=0.6, cmf_20=-0.1)  # up day, money flowing out
    assert fired(f, "volume_confirmed") == []
    set_values(f, 45, cmf_20=np.nan)  # close-only coin: no CMF
    assert fired(f, "volume_confirmed") == []
    lenient = parse_signal_config({"rules": {"volume": {"require_cmf": False}}})
    assert fired(f, "volume_confirmed", lenient) == [day(45)]


def test_a_flat_coin_with_talib_zeros_fires_nothing() -> None:
    f = calm_frame()
    f["close"] = 1.0
    for col in ("rsi_14", "stoch_k", "stoch_d", "adx_14", "macd_line", "macd_signal"):
        f[col] = 0.0
    f["ema_10"] = f["ema_50"] = f["bb_upper"] = f["bb_mid"] = f["bb_lower"] = 1.0
    f["volume_roc_7"] = 5.0
    f["cmf_20"] = 0.5
    out = generate_signals(f)
    assert set(out["signal"]) == {"composite"}
    assert (out["composite_score"] == 0).all() and (out["action"] == "hold").all()


def test_a_disabled_family_writes_no_rows() -> None:
    f = calm_frame()
    set_values(f, 40, rsi_14=20.0)
    cfg = parse_signal_config({"rules": {"rsi": {"enabled": False}}})
    assert rule_rows(f, cfg).empty


def test_rule_ids_are_the_decided_ones() -> None:
    f = calm_frame()
    set_values(f, 40, rsi_14=20.0)
    assert set(rule_rows(f)["signal"]) <= set(RULE_IDS)
    assert len(RULE_IDS) == 13


def test_previous_row_is_the_previous_stored_bar_not_the_previous_calendar_day() -> None:
    f = calm_frame()
    f.loc[f["date"] >= day(30), "macd_line"] = 0.0
    f = f.loc[f["date"] != day(29)]  # a missing day: day 30's previous row is day 28
    assert fired(f, "macd_cross_down") == [day(30)]


def test_bad_frames_are_rejected_with_context() -> None:
    f = calm_frame()
    with pytest.raises(DataValidationError, match="lacks columns") as exc:
        generate_signals(f.drop(columns=["stoch_k"]))
    assert exc.value.context["columns"] == ["stoch_k"]
    with pytest.raises(DataValidationError, match="duplicate"):
        generate_signals(pd.concat([f, f.iloc[[3]]]))
    # a family switched off needs no columns
    cfg = parse_signal_config({"rules": {"stochastic": {"enabled": False}}})
    assert not generate_signals(f.drop(columns=["stoch_k", "stoch_d"]), cfg).empty


def test_every_problem_of_the_frame_is_named_in_one_error() -> None:
    f = calm_frame()
    broken = pd.concat([f, f.iloc[[3]]]).drop(columns=["stoch_k"])
    broken.loc[broken.index[10], "close"] = np.nan
    with pytest.raises(DataValidationError, match="fails 3 checks") as exc:
        generate_signals(broken)
    message = str(exc.value)
    assert "lacks columns" in message and "duplicate" in message and "close is missing" in message
