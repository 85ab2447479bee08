"""The NumPy formulas the indicator engine used before its fused kernels (docs/decisions.md#D110), kept as the
benchmark baseline's "same NumPy formulas" (bench/bench_indicators.py): [coins x bars] panels in, panels out."""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

FloatArray = np.ndarray

_SQRT_365 = math.sqrt(365.0)
_TIE_EPSILON = 1e-14


# ---- window helpers on [coins x bars] panels (NaN until the window is full) --------------------------------
def _empty(x: FloatArray) -> FloatArray:
    return np.full(x.shape, np.nan)


def _blocked(x: FloatArray, n: int, accumulate, combine) -> FloatArray:  # noqa: ANN001
    """Window reduction in O(bars) (van Herk / Gil-Werman): split the bars into blocks of n; a window is the
    suffix of one block plus the prefix of the next. Each value depends only on bars within 2n of it, so a
    recomputed tail agrees with a full run to rounding (no drift from where the history starts)."""
    rows, bars = x.shape
    if bars < n:
        return _empty(x)
    blocks = -(-bars // n)
    if blocks * n == bars:
        b = x.reshape(rows, blocks, n)
    else:
        padded = np.full((rows, blocks * n), np.nan)
        padded[:, :bars] = x
        b = padded.reshape(rows, blocks, n)
    prefix = accumulate(b, axis=2)
    suffix = accumulate(b[:, :, ::-1], axis=2)[:, :, ::-1]
    out = prefix  # reused: the block-end values are already right; the rest are overwritten below
    out[:, 0, : n - 1] = np.nan
    if n > 1 and blocks > 1:
        combine(suffix[:, :-1, 1:], prefix[:, 1:, : n - 1], out=out[:, 1:, : n - 1])
    flat = out.reshape(rows, blocks * n)
    return flat if blocks * n == bars else np.ascontiguousarray(flat[:, :bars])


def rolling_sum(x: FloatArray, n: int) -> FloatArray:
    return _blocked(x, n, np.cumsum, np.add)


def rolling_mean(x: FloatArray, n: int) -> FloatArray:
    return rolling_sum(x, n) / n


def rolling_max(x: FloatArray, n: int) -> FloatArray:
    return _blocked(x, n, np.maximum.accumulate, np.maximum)


def rolling_min(x: FloatArray, n: int) -> FloatArray:
    return _blocked(x, n, np.minimum.accumulate, np.minimum)


def _two_pass_std(x: FloatArray, n: int, ddof: int) -> FloatArray:
    out = _empty(x)
    if x.shape[1] >= n:
        w = sliding_window_view(x, n, axis=1)
        dev = w - w.mean(axis=-1)[..., None]
        out[:, n - 1 :] = np.sqrt((dev * dev).sum(axis=-1) / (n - ddof))
    return out


def rolling_std(x: FloatArray, n: int, ddof: int = 1) -> FloatArray:
    """Windowed standard deviation from windowed sums, with a two-pass recompute of the rows where the sums
    cancel (|mean| large against the spread, flat windows), so a flat or trending series is still exact."""
    total = rolling_sum(x, n)
    squares = rolling_sum(x * x, n)
    ss = squares - total * total / n
    with np.errstate(invalid="ignore"):
        suspect = ss <= 1e-6 * squares
    out = np.sqrt(np.maximum(ss, 0.0) / (n - ddof))
    rows = np.flatnonzero(suspect.any(axis=1))
    if rows.size:
        exact = _two_pass_std(x[rows], n, ddof)
        fix = suspect[rows]
        sub = out[rows]
        sub[fix] = exact[fix]
        out[rows] = sub
    return out


def shift(x: FloatArray, k: int) -> FloatArray:
    out = _empty(x)
    if x.shape[1] > k:
        out[:, k:] = x[:, :-k]
    return out


def _safe_divide(num: FloatArray, den: FloatArray) -> FloatArray:
    """num / den, NaN where den is 0 (the contract's rule for the formula columns)."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


# ---- formula indicators (docs/indicators.md) ---------------------------------------------------------------
def true_range(high: FloatArray, low: FloatArray, close: FloatArray) -> FloatArray:
    """TA-Lib TRANGE: max(H-L, |H-C_prev|, |L-C_prev|), first value at bar 1."""
    out = _empty(close)
    if close.shape[1] > 1:
        prev = close[:, :-1]
        h, lo = high[:, 1:], low[:, 1:]
        out[:, 1:] = np.maximum(np.maximum(h - lo, np.abs(prev - h)), np.abs(lo - prev))
    return out


def kst(close: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Pring's KST: ROC 10/15/20/30 (percent) smoothed by SMA 10/10/10/15, weighted 1/2/3/4; signal = SMA9."""

    def roc(k: int) -> FloatArray:
        return 100.0 * (close / shift(close, k) - 1.0)

    line = (
        rolling_mean(roc(10), 10)
        + 2.0 * rolling_mean(roc(15), 10)
        + 3.0 * rolling_mean(roc(20), 10)
        + 4.0 * rolling_mean(roc(30), 15)
    )
    return line, rolling_mean(line, 9)


def cmf(high: FloatArray, low: FloatArray, close: FloatArray, volume: FloatArray, n: int = 20) -> FloatArray:
    """Chaikin money flow: the multiplier is 0 on a bar with H = L, the value NaN where Σvolume is 0."""
    span = high - low
    mfm = np.zeros_like(close)
    np.divide((close - low) - (high - close), span, out=mfm, where=span != 0)
    mfm[np.isnan(span) | np.isnan(close)] = np.nan
    return _safe_divide(rolling_sum(mfm * volume, n), rolling_sum(volume, n))


def ulcer_index(close: FloatArray, n: int = 14) -> FloatArray:
    """sqrt(mean over n bars of (100 (C - M) / M)^2), M = the rolling n-bar max of C at each bar."""
    peak = rolling_max(close, n)
    drawdown = 100.0 * (close - peak) / peak
    return np.sqrt(rolling_mean(drawdown * drawdown, n))


def choppiness(high: FloatArray, low: FloatArray, close: FloatArray, n: int = 14) -> FloatArray:
    """100 log10(sum_n TRANGE / (max_n H - min_n L)) / log10(n); NaN where the n-bar range is 0."""
    rng = rolling_max(high, n) - rolling_min(low, n)
    ratio = _safe_divide(rolling_sum(true_range(high, low, close), n), rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 * np.log10(ratio) / math.log10(n)


def realized_vol(close: FloatArray, n: int = 30) -> FloatArray:
    """Annualised (sqrt 365) sample std of the last n daily log returns."""
    returns = np.log(close / shift(close, 1))
    return rolling_std(returns, n, ddof=1) * _SQRT_365


def mfi(high: FloatArray, low: FloatArray, close: FloatArray, volume: FloatArray, n: int = 14) -> FloatArray:
    """Money flow index with TA-Lib's conventions (first value at bar n; a bar whose typical price equals the
    previous one adds to neither flow; 0 where both flows are 0), summed inside each window rather than with
    TA-Lib's running sums, whose rounding drift depends on where the history starts (it broke incremental =
    full at 1e-12 on real BTC volumes)."""
    tp = (high + low + close) / 3.0
    prev = shift(tp, 1)
    change = tp - prev
    # TA-Lib 0.6's scale-aware tie: a change within 1e-14 of the two prices' magnitude counts as no change
    # (three prices summed in a different order can differ in the last bit and must still tie).
    with np.errstate(invalid="ignore"):
        tie = np.abs(change) <= _TIE_EPSILON * (np.abs(tp) + np.abs(prev))
    flow = tp * volume
    pos = np.where((change > 0) & ~tie, flow, 0.0)
    neg = np.where((change < 0) & ~tie, flow, 0.0)
    undefined = np.isnan(change) | np.isnan(flow)
    pos[undefined] = np.nan
    neg[undefined] = np.nan
    pos_sum, neg_sum = rolling_sum(pos, n), rolling_sum(neg, n)
    total = pos_sum + neg_sum
    out = np.where(total == 0, 0.0, 100.0 * pos_sum / np.where(total == 0, 1.0, total))
    out[np.isnan(total)] = np.nan
    return out


def bb_width(upper: FloatArray, mid: FloatArray, lower: FloatArray) -> FloatArray:
    return _safe_divide(upper - lower, mid)


def close_composites(
    close: FloatArray, volume: FloatArray, cols: dict[str, FloatArray]
) -> dict[str, FloatArray]:
    """Composites that need only close, volume and close-based indicators."""
    return {
        "ema_diff": cols["ema_10"] - cols["ema_50"],
        "rsi_deviation": cols["rsi_14"] - 50.0,
        "price_bb_diff": _safe_divide(close - cols["bb_mid"], cols["bb_upper"] - cols["bb_lower"]),
        "macd_diff": cols["macd_line"] - cols["macd_signal"],
        "price_roc_30": close / shift(close, 30) - 1.0,
        "volume_roc_7": _safe_divide(volume, shift(volume, 7)) - 1.0,
    }


def high_low_composites(cols: dict[str, FloatArray]) -> dict[str, FloatArray]:
    """Composites over the high/low indicators (evaluated on the candle-only sequence)."""
    di_diff = cols["plus_di_14"] - cols["minus_di_14"]
    return {
        "stoch_diff": cols["stoch_k"] - cols["stoch_d"],
        "di_diff": di_diff,
        "volatility_ratio": _safe_divide(cols["atr_14"], rolling_mean(cols["atr_14"], 30)),
        "trend_quality": cols["adx_14"] * np.abs(di_diff) / 100.0,
    }
