"""The formula columns (docs/indicators.md) as fused numba kernels over concatenated coin segments.

A frame sorted by coin and date is a set of segments: coin i owns rows `starts[i] .. starts[i] + lengths[i]`.
One kernel call walks every segment once and writes each formula column straight into its row of the output
block `values[column, row]` (docs/decisions.md#D110): no panel, no temporaries per column, no per-coin Python.

Every window quantity (sums, maxima, the realized-volatility mean and deviation) is computed directly over the
bars inside its window, in the same order each time, so a value depends only on the bars within its windows: a
recomputed tail is bit-identical to a full run (incremental = full), which running sums would not give.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kallos.indicators.contract import OUTPUT_COLUMNS

__all__ = ["COLUMN_INDEX", "close_formulas", "high_low_formulas", "range_violations"]

COLUMN_INDEX: dict[str, int] = {name: i for i, name in enumerate(OUTPUT_COLUMNS)}
_C = COLUMN_INDEX
_SQRT_365 = math.sqrt(365.0)
_LOG10_14 = math.log10(14.0)
_TIE_EPSILON = 1e-14
_NAN = math.nan

# Column numbers as module constants: numba freezes globals at compile time.
EMA_10, EMA_50, RSI_14 = _C["ema_10"], _C["ema_50"], _C["rsi_14"]
MACD_LINE, MACD_SIGNAL = _C["macd_line"], _C["macd_signal"]
BB_UPPER, BB_MID, BB_LOWER, BB_WIDTH = _C["bb_upper"], _C["bb_mid"], _C["bb_lower"], _C["bb_width"]
KST, KST_SIGNAL, UI_14, RV_30 = _C["kst"], _C["kst_signal"], _C["ui_14"], _C["realized_vol_30"]
EMA_DIFF, RSI_DEV, PRICE_BB, MACD_DIFF = _C["ema_diff"], _C["rsi_deviation"], _C["price_bb_diff"], _C["macd_diff"]
PRICE_ROC_30, VOLUME_ROC_7 = _C["price_roc_30"], _C["volume_roc_7"]
PLUS_DI, MINUS_DI, ADX_14, ATR_14 = _C["plus_di_14"], _C["minus_di_14"], _C["adx_14"], _C["atr_14"]
STOCH_K, STOCH_D = _C["stoch_k"], _C["stoch_d"]
MFI_14, CMF_20, CHOP_14 = _C["mfi_14"], _C["cmf_20"], _C["chop_14"]
STOCH_DIFF, DI_DIFF, VOL_RATIO, TREND_Q = (
    _C["stoch_diff"], _C["di_diff"], _C["volatility_ratio"], _C["trend_quality"]
)  # fmt: skip


@njit(cache=True, inline="always", error_model="numpy", nogil=True)
def _wsum(x: np.ndarray, t: int, n: int) -> float:
    """Sum of x[t-n+1 .. t] (NaN when t < n-1 or any term is NaN), always summed oldest first."""
    if t < n - 1:
        return _NAN
    s = 0.0
    for j in range(t - n + 1, t + 1):
        s += x[j]
    return s


@njit(cache=True, inline="always", error_model="numpy", nogil=True)
def _safe_div(num: float, den: float) -> float:
    """num / den, NaN where den is 0 (the contract's rule for the formula columns)."""
    if den == 0.0:
        return _NAN
    return num / den


@njit(cache=True, error_model="numpy", nogil=True)
def close_formulas(
    close: np.ndarray, volume: np.ndarray, starts: np.ndarray, lengths: np.ndarray, values: np.ndarray
) -> None:
    """KST, UI, realized volatility, `bb_width` and the close composites, for every segment.

    Reads the TA-Lib columns already written in `values` (EMA, RSI, MACD, Bollinger).
    """
    width = 0
    for i in range(lengths.size):
        width = max(width, lengths[i])
    roc10 = np.empty(width)
    roc15 = np.empty(width)
    roc20 = np.empty(width)
    roc30 = np.empty(width)
    line = np.empty(width)
    dd2 = np.empty(width)
    ret = np.empty(width)
    for i in range(lengths.size):
        s, n = starts[i], lengths[i]
        c = close[s : s + n]
        v = volume[s : s + n]
        for t in range(n):
            roc10[t] = 100.0 * (c[t] / c[t - 10] - 1.0) if t >= 10 else _NAN
            roc15[t] = 100.0 * (c[t] / c[t - 15] - 1.0) if t >= 15 else _NAN
            roc20[t] = 100.0 * (c[t] / c[t - 20] - 1.0) if t >= 20 else _NAN
            roc30[t] = 100.0 * (c[t] / c[t - 30] - 1.0) if t >= 30 else _NAN
            ret[t] = math.log(c[t] / c[t - 1]) if t >= 1 else _NAN
            if t >= 13:
                peak = c[t - 13]
                for j in range(t - 12, t + 1):
                    peak = max(peak, c[j])
                d = 100.0 * (c[t] - peak) / peak
                dd2[t] = d * d
            else:
                dd2[t] = _NAN
        for t in range(n):
            r = s + t
            # The four KST window sums as independent chains in one loop, each still summed oldest first (the
            # same values as _wsum, bit for bit), so the CPU overlaps their additions.
            if t >= 14:
                s30 = 0.0
                for j in range(t - 14, t - 9):
                    s30 += roc30[j]
                s10 = s15 = s20 = 0.0
                for j in range(t - 9, t + 1):
                    s10 += roc10[j]
                    s15 += roc15[j]
                    s20 += roc20[j]
                    s30 += roc30[j]
                line[t] = s10 / 10.0 + 2.0 * (s15 / 10.0) + 3.0 * (s20 / 10.0) + 4.0 * (s30 / 15.0)
            else:
                line[t] = _NAN
            values[KST, r] = line[t]
            values[KST_SIGNAL, r] = _wsum(line, t, 9) / 9.0
            values[UI_14, r] = math.sqrt(_wsum(dd2, t, 14) / 14.0)
            if t >= 30:
                mean = _wsum(ret, t, 30) / 30.0
                ss = 0.0
                for j in range(t - 29, t + 1):
                    ss += (ret[j] - mean) * (ret[j] - mean)
                values[RV_30, r] = math.sqrt(ss / 29.0) * _SQRT_365
            else:
                values[RV_30, r] = _NAN
            upper, mid, lower = values[BB_UPPER, r], values[BB_MID, r], values[BB_LOWER, r]
            values[BB_WIDTH, r] = _safe_div(upper - lower, mid)
            values[EMA_DIFF, r] = values[EMA_10, r] - values[EMA_50, r]
            values[RSI_DEV, r] = values[RSI_14, r] - 50.0
            values[PRICE_BB, r] = _safe_div(c[t] - mid, upper - lower)
            values[MACD_DIFF, r] = values[MACD_LINE, r] - values[MACD_SIGNAL, r]
            values[PRICE_ROC_30, r] = c[t] / c[t - 30] - 1.0 if t >= 30 else _NAN
            values[VOLUME_ROC_7, r] = _safe_div(v[t], v[t - 7]) - 1.0 if t >= 7 else _NAN


@njit(cache=True, error_model="numpy", nogil=True)
def high_low_formulas(
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    rows: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    values: np.ndarray,
) -> None:
    """MFI, CMF, CHOP and the high/low composites over each coin's candle bars taken as consecutive bars.

    Segment i is `rows[starts[i] .. starts[i] + lengths[i]]`: the output rows of the coin's candle bars. Reads
    the TA-Lib high/low columns already written in `values` (±DI, ADX, ATR, STOCH).
    """
    width = 0
    for i in range(lengths.size):
        width = max(width, lengths[i])
    pos = np.empty(width)
    neg = np.empty(width)
    mfv = np.empty(width)
    vol = np.empty(width)
    tr = np.empty(width)
    atr = np.empty(width)
    for i in range(lengths.size):
        s, n = starts[i], lengths[i]
        seg = rows[s : s + n]
        prev_tp = _NAN
        for t in range(n):
            r = seg[t]
            h, lo, c, v = high[r], low[r], close[r], volume[r]
            tp = (h + lo + c) / 3.0
            change = tp - prev_tp
            flow = tp * v
            if math.isnan(change) or math.isnan(flow):
                pos[t] = _NAN
                neg[t] = _NAN
            else:
                # TA-Lib 0.6's scale-aware tie: a change within 1e-14 of the prices' magnitude is no change.
                tie = abs(change) <= _TIE_EPSILON * (abs(tp) + abs(prev_tp))
                pos[t] = flow if (change > 0 and not tie) else 0.0
                neg[t] = flow if (change < 0 and not tie) else 0.0
            prev_tp = tp
            span = h - lo
            if math.isnan(span) or math.isnan(c):
                mfv[t] = _NAN
            else:
                mfv[t] = (((c - lo) - (h - c)) / span if span != 0.0 else 0.0) * v
            vol[t] = v
            if t >= 1:
                pc = close[seg[t - 1]]
                tr[t] = max(max(h - lo, abs(pc - h)), abs(lo - pc))
                if math.isnan(h - lo) or math.isnan(pc):
                    tr[t] = _NAN
            else:
                tr[t] = _NAN
            atr[t] = values[ATR_14, r]
        for t in range(n):
            r = seg[t]
            p, q = _wsum(pos, t, 14), _wsum(neg, t, 14)
            total = p + q
            if math.isnan(total):
                values[MFI_14, r] = _NAN
            elif total == 0.0:
                values[MFI_14, r] = 0.0
            else:
                values[MFI_14, r] = 100.0 * p / total
            values[CMF_20, r] = _safe_div(_wsum(mfv, t, 20), _wsum(vol, t, 20))
            if t >= 13:
                hi = high[seg[t - 13]]
                lo_ = low[seg[t - 13]]
                for j in range(t - 12, t + 1):
                    hi = max(hi, high[seg[j]])
                    lo_ = min(lo_, low[seg[j]])
                ratio = _safe_div(_wsum(tr, t, 14), hi - lo_)
                values[CHOP_14, r] = 100.0 * np.log10(ratio) / _LOG10_14
            else:
                values[CHOP_14, r] = _NAN
            di = values[PLUS_DI, r] - values[MINUS_DI, r]
            values[DI_DIFF, r] = di
            values[STOCH_DIFF, r] = values[STOCH_K, r] - values[STOCH_D, r]
            values[VOL_RATIO, r] = _safe_div(atr[t], _wsum(atr, t, 30) / 30.0)
            values[TREND_Q, r] = values[ADX_14, r] * abs(di) / 100.0


@njit(cache=True, error_model="numpy", nogil=True)
def range_violations(values: np.ndarray, bounds: np.ndarray, atol: float) -> np.ndarray:
    """Rows outside each column's [lo, hi] (NaN bound = open), and Bollinger bands out of order: one pass.

    `bounds[k] = (column, lo, hi)`; the last count is the Bollinger order check. NaN values pass.
    """
    counts = np.zeros(bounds.shape[0] + 1, dtype=np.int64)
    n = values.shape[1]
    for k in range(bounds.shape[0]):
        col, lo, hi = int(bounds[k, 0]), bounds[k, 1], bounds[k, 2]
        bad = 0
        for r in range(n):
            x = values[col, r]
            if x < lo - atol or x > hi + atol:
                bad += 1
        counts[k] = bad
    bad = 0
    for r in range(n):
        lower, mid, upper = values[BB_LOWER, r], values[BB_MID, r], values[BB_UPPER, r]
        if lower > mid or mid > upper:
            bad += 1
    counts[bounds.shape[0]] = bad
    return counts
