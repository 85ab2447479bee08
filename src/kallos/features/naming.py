"""Column naming: Kallos's own names, or pandas-ta's for the indicators pandas-ta computes the same way.

Much model code downstream (the seed's GRU models included) was written against `df.ta`, so `naming="pandas-ta"`
renames an indicator only where pandas-ta's default call has the same definition and parameters; the others keep
their Kallos name (docs/features.md has the table, docs/decisions.md#D72 the rule).
"""

from __future__ import annotations

import pandas as pd

from kallos.errors import InputError

NAMINGS: tuple[str, ...] = ("kallos", "pandas-ta")

# Kallos column -> the name pandas-ta (and pandas-ta-classic) gives the same indicator, with the `df.ta` call that
# produces it. bb_width (pandas-ta's BBB is in percent), the Keltner channel (pandas-ta's ATR length is 20, ours
# 10), adxr_14 and realized_vol_30 have no pandas-ta twin and keep their names.
PANDAS_TA: dict[str, tuple[str, str]] = {
    "ema_10": ("EMA_10", "ema(length=10)"),
    "ema_50": ("EMA_50", "ema(length=50)"),
    "sma_20": ("SMA_20", "sma(length=20)"),
    "sma_50": ("SMA_50", "sma(length=50)"),
    "sma_200": ("SMA_200", "sma(length=200)"),
    "rsi_14": ("RSI_14", "rsi(length=14)"),
    "macd_line": ("MACD_12_26_9", "macd()"),
    "macd_signal": ("MACDs_12_26_9", "macd()"),
    "macd_histogram": ("MACDh_12_26_9", "macd()"),
    "adx_14": ("ADX_14", "adx(length=14)"),
    "plus_di_14": ("DMP_14", "adx(length=14)"),
    "minus_di_14": ("DMN_14", "adx(length=14)"),
    "atr_14": ("ATRr_14", "atr(length=14)"),
    "natr_14": ("NATR_14", "natr(length=14)"),
    "bb_lower": ("BBL_20_2.0", "bbands(length=20, std=2)"),
    "bb_mid": ("BBM_20_2.0", "bbands(length=20, std=2)"),
    "bb_upper": ("BBU_20_2.0", "bbands(length=20, std=2)"),
    "stoch_k": ("STOCHk_14_3_3", "stoch()"),
    "stoch_d": ("STOCHd_14_3_3", "stoch()"),
    "willr_14": ("WILLR_14", "willr(length=14)"),
    "cci_20": ("CCI_20_0.015", "cci(length=20)"),
    "roc_10": ("ROC_10", "roc(length=10)"),
    "kst": ("KST_10_15_20_30_10_10_10_15", "kst()"),
    "kst_signal": ("KSTs_9", "kst()"),
    "mfi_14": ("MFI_14", "mfi(length=14)"),
    "cmf_20": ("CMF_20", "cmf(length=20)"),
    "obv": ("OBV", "obv()"),
    "ui_14": ("UI_14", "ui(length=14)"),
    "chop_14": ("CHOP_14_1_100", "chop(length=14)"),
}


def check_naming(naming: str) -> str:
    if naming not in NAMINGS:
        raise InputError(f"unknown naming {naming!r}; use one of: {', '.join(NAMINGS)}", input="naming")
    return naming


def column_name(column: str, naming: str) -> str:
    """The name `column` (a Kallos name) has under `naming`."""
    if check_naming(naming) == "pandas-ta" and column in PANDAS_TA:
        return PANDAS_TA[column][0]
    return column


def kallos_name(column: str) -> str:
    """The Kallos name of a column given under either naming (for `columns=` selections)."""
    for ours, (theirs, _) in PANDAS_TA.items():
        if column == theirs:
            return ours
    return column


def apply_naming(frame: pd.DataFrame, naming: str) -> pd.DataFrame:
    if check_naming(naming) == "kallos":
        return frame
    return frame.rename(columns={c: PANDAS_TA[c][0] for c in frame.columns if c in PANDAS_TA})
