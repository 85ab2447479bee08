"""Degenerate windows follow the contract (TA-Lib's 0, the formulas' NaN); bad bars and out-of-range results
fail with DataValidationError naming the problem and, for a panel, the coin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kallos.errors import DataValidationError
from kallos.indicators import compute_indicators, kernels, validate_indicators

from .test_formulas import random_bars


def flat_bars(n: int = 80, price: float = 1.0, volume: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": pd.date_range("2021-01-01", periods=n, freq="D"),
            "open": price,
            "high": price,
            "low": price,
            "close": price,
            "volume": volume,
        }
    )


def test_flat_prices_and_zero_volume() -> None:
    last = compute_indicators(flat_bars()).iloc[-1]
    for name in (
        "rsi_14",
        "stoch_k",
        "stoch_d",
        "willr_14",
        "cci_20",
        "plus_di_14",
        "minus_di_14",
        "adx_14",
        "mfi_14",
    ):
        assert last[name] == 0.0, name  # TA-Lib's convention for a zero denominator
    for name in ("chop_14", "price_bb_diff", "cmf_20", "volume_roc_7", "volatility_ratio"):
        assert np.isnan(last[name]), name  # the formula columns' convention
    assert last["bb_width"] == 0.0 and last["ui_14"] == 0.0 and last["realized_vol_30"] == 0.0
    assert last["atr_14"] == 0.0 and last["obv"] == 0.0


def test_tiny_prices_scale_cleanly() -> None:
    bars = random_bars(300)
    tiny = bars.assign(**{c: bars[c] * 1e-9 for c in ("open", "high", "low", "close")})
    a, b = compute_indicators(bars), compute_indicators(tiny)
    for name in ("rsi_14", "stoch_k", "adx_14", "willr_14", "cci_20", "mfi_14", "cmf_20", "chop_14", "ui_14"):
        np.testing.assert_allclose(b[name], a[name], rtol=1e-9, atol=1e-9, err_msg=name)


def test_unsorted_input_is_sorted() -> None:
    bars = random_bars(120)
    out = compute_indicators(bars.iloc[::-1])
    pd.testing.assert_frame_equal(out, compute_indicators(bars))
    assert out["date"].is_monotonic_increasing


def panel() -> pd.DataFrame:
    return pd.concat([random_bars(60, 1).assign(coin_id="alpha"), random_bars(60, 2).assign(coin_id="beta")])


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.drop(columns=["volume"]), "lack required columns"),
        (lambda f: pd.concat([f, f[(f.coin_id == "beta")].iloc[[5]]]), "duplicate dates"),
        (lambda f: f.assign(close=np.where((f.coin_id == "beta") & (f.index == 7), 0.0, f.close)), "close"),
        (lambda f: f.assign(low=np.where((f.coin_id == "beta") & (f.index == 7), -1.0, f.low)), "low"),
        (
            lambda f: f.assign(high=np.where((f.coin_id == "beta") & (f.index == 7), 1e-3, f.high)),
            "high below low",
        ),
        (
            lambda f: f.assign(volume=np.where((f.coin_id == "beta") & (f.index == 7), -5.0, f.volume)),
            "volume",
        ),
    ],
)
def test_bad_bars_name_problem_and_coin(mutate, message: str) -> None:  # noqa: ANN001
    with pytest.raises(DataValidationError, match=message) as info:
        compute_indicators(mutate(panel()))
    if message != "lack required columns":
        assert info.value.context["coin_id"] == "beta"
        assert "date" in info.value.context


def test_validate_indicators_reports_each_range() -> None:
    out = compute_indicators(panel())
    assert validate_indicators(out) == []
    broken = out.copy()
    broken.loc[broken.index[50], "rsi_14"] = 100.5
    broken.loc[broken.index[70], "willr_14"] = 3.0
    broken.loc[broken.index[80], "bb_lower"] = broken.loc[broken.index[80], "bb_upper"] + 1
    broken.loc[broken.index[90], "atr_14"] = -1.0
    problems = validate_indicators(broken)
    assert len(problems) == 4
    assert any("rsi_14" in p and "alpha" in p for p in problems)
    assert any("willr_14" in p and "beta" in p for p in problems)
    assert any("Bollinger" in p for p in problems)
    assert any("atr_14" in p for p in problems)


def test_compute_raises_when_a_range_check_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    real = kernels.talib_close

    def broken(close: np.ndarray, volume: np.ndarray) -> tuple[np.ndarray, ...]:
        values = list(real(close, volume))
        values[kernels.CLOSE_TALIB.index("rsi_14")] = values[kernels.CLOSE_TALIB.index("rsi_14")] + 200
        return tuple(values)

    monkeypatch.setattr(kernels, "talib_close", broken)
    with pytest.raises(DataValidationError, match="rsi_14 outside"):
        compute_indicators(panel())


def test_every_bad_bar_is_named_in_one_error() -> None:
    bars = panel().reset_index(drop=True)
    bars.loc[(bars.coin_id == "alpha") & (bars.index == 3), "close"] = 0.0
    bars.loc[(bars.coin_id == "beta") & (bars.index == 70), "volume"] = -5.0
    bars.loc[(bars.coin_id == "beta") & (bars.index == 80), "high"] = 1e-3  # below its low
    with pytest.raises(DataValidationError) as info:
        compute_indicators(bars)
    message = str(info.value)
    assert "fails 3 checks" in message
    assert "close (rows=1, coin_id=alpha" in message
    assert "volume (rows=1, coin_id=beta" in message
    assert "high below low (rows=1, coin_id=beta" in message
    assert "close outside" not in message  # the zero close and the inverted candle are each named once
    assert info.value.context["checks"] == 3 and info.value.context["coin_id"] == "alpha"


def test_every_coin_failing_a_check_is_named() -> None:
    bars = panel().reset_index(drop=True)
    bars.loc[[5, 6, 65], "close"] = np.nan  # two rows of alpha, one of beta
    with pytest.raises(DataValidationError) as info:
        compute_indicators(bars)
    assert "rows=2, coin_id=alpha" in str(info.value) and "rows=1, coin_id=beta" in str(info.value)
