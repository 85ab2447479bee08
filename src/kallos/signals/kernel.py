"""The rules of `kallos.signals.rules` as one numba pass over the frame (docs/decisions.md#D119).

`rules.py` states each rule as a few pandas expressions; evaluated that way a chunk of rows cost ~300 Series
operations, and `generate_signals` ran at half the indicator engine's rows/s. Here one compiled loop walks the
rows (sorted by coin and date) once, keeps each coin's previous row and the start of the current run of equal
closes at hand, and evaluates every rule, the ADX gate and the composite on each row with the same arithmetic,
in the same order, as the pandas expressions (so the strengths and scores are bit-identical; the tests compare
the two). A second pass writes the output rows already ordered by (row, signal name): no sort.

Slots: each rule firing has a fixed slot (its family's order, then its order within the family, as the votes
are summed); `volume_confirmed` has two (up and down).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from kallos.signals.config import SignalConfig
from kallos.signals.rules import ADX_COLUMN, FAMILY_COLUMNS, FLAT_WINDOWS

__all__ = ["SLOT_RULES", "evaluate"]

# (rule id, direction) per slot.
SLOT_RULES: tuple[tuple[str, int], ...] = (
    ("rsi_oversold", +1),
    ("rsi_overbought", -1),
    ("macd_cross_up", +1),
    ("macd_cross_down", -1),
    ("golden_cross", +1),
    ("death_cross", -1),
    ("bb_breakout_up", +1),
    ("bb_breakout_down", -1),
    ("bb_reentry_up", +1),
    ("bb_reentry_down", -1),
    ("stoch_cross_up", +1),
    ("stoch_cross_down", -1),
    ("volume_confirmed", +1),
    ("volume_confirmed", -1),
)
N_SLOTS = len(SLOT_RULES)
COMPOSITE_SLOT = N_SLOTS
_FAMILIES = ("rsi", "macd", "ema_cross", "bollinger", "stochastic", "volume")
_FAMILY_SLOTS = {"rsi": (0, 2), "macd": (2, 4), "ema_cross": (4, 6), "bollinger": (6, 10), "stochastic": (10, 12),
                 "volume": (12, 14)}  # fmt: skip
_NAN = math.nan


@njit(cache=True, inline="always", error_model="numpy")
def _ramp(x: float, full: float) -> float:
    """rules._ramp on one value: (x / full) clipped to [0, 1], NaN -> 0."""
    v = x / full
    v = 0.0 if v != v else v
    v = 0.0 if v < 0.0 else v
    return 1.0 if v > 1.0 else v


@njit(cache=True, inline="always", error_model="numpy")
def _sign(x: float) -> float:
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return x  # 0.0, -0.0 or NaN, as np.sign


@njit(cache=True, inline="always", error_model="numpy")
def _cross(
    fast: np.ndarray, slow: np.ndarray, i: int, first: bool, close: float, live: bool, full: float,
    allowed: bool, slot: int, fires: np.ndarray, strength: np.ndarray,
) -> bool:  # fmt: skip
    """rules._cross on row i: the up/down firings into `slot`, `slot + 1`; returns the availability.
    `allowed`: False where the ADX gate blocks this (gated) family."""
    spread = fast[i] - slow[i]
    prev_spread = _NAN if first else fast[i - 1] - slow[i - 1]
    fires[slot] = (prev_spread <= 0) & (spread > 0) & live & allowed
    fires[slot + 1] = (prev_spread >= 0) & (spread < 0) & live & allowed
    if fires[slot] | fires[slot + 1]:  # strengths are read only where a rule fires (divisions are slow)
        st = _ramp(abs(spread - prev_spread) / close, full)
        strength[slot] = st
        strength[slot + 1] = st
    return (spread == spread) & (prev_spread == prev_spread)


@njit(cache=True, inline="always", error_model="numpy")
def _row(
    i: int, first: bool, flat: np.ndarray, cols: tuple[np.ndarray, ...], p: np.ndarray, on: np.ndarray,
    fires: np.ndarray, strength: np.ndarray, avail: np.ndarray,
) -> None:  # fmt: skip
    """Every slot's firing and strength on row `i`, and each family's availability.

    cols (a tuple of arrays): close, rsi, macd_line, macd_signal, ema_10, ema_50, bb_upper, bb_lower, stoch_k,
    stoch_d, volume_roc_7, cmf_20, adx (empty for columns not read). `flat[f]`: family f's window is flat on
    this row. `on` (booleans): families enabled (6), Bollinger breakouts, re-entries, volume require_cmf, ADX
    filter enabled, ADX when_missing=allow, gated families (6), ADX column present.
    """
    close = cols[0][i]
    prev_close = _NAN if first else cols[0][i - 1]
    for s in range(fires.shape[0]):
        fires[s] = False
        strength[s] = 0.0
    # ADX gate
    gate = True
    if on[9]:
        adx = cols[12][i] if on[17] else _NAN
        gate = (adx >= p[17]) | (on[10] & (adx != adx))
    # RSI
    if on[0]:
        rsi = cols[1][i]
        avail[0] = rsi == rsi
        fires[0] = (rsi < p[0]) & (not flat[0])
        fires[1] = (rsi > p[1]) & (not flat[0])
        if fires[0]:
            strength[0] = _ramp(p[0] - rsi, p[2])
        if fires[1]:
            strength[1] = _ramp(rsi - p[1], p[2])
        if on[11]:
            fires[0] &= gate
            fires[1] &= gate
    # MACD and EMA crosses
    if on[1]:
        allowed = gate | (not on[12])
        avail[1] = _cross(cols[2], cols[3], i, first, close, not flat[1], p[3], allowed, 2, fires, strength)
    if on[2]:
        allowed = gate | (not on[13])
        avail[2] = _cross(cols[4], cols[5], i, first, close, not flat[2], p[4], allowed, 4, fires, strength)
    # Bollinger
    if on[3]:
        upper, lower = cols[6][i], cols[7][i]
        prev_upper = _NAN if first else cols[6][i - 1]
        prev_lower = _NAN if first else cols[7][i - 1]
        width = upper - lower
        avail[3] = (
            (upper == upper) & (lower == lower) & (prev_upper == prev_upper) & (prev_lower == prev_lower)
            & (prev_close == prev_close)
        )  # fmt: skip
        ok = (width > 0) & (not flat[3])
        if on[6]:
            fires[6] = ok & (prev_close <= prev_upper) & (close > upper)
            if fires[6]:
                strength[6] = _ramp((close - upper) / width, p[5])
            fires[7] = ok & (prev_close >= prev_lower) & (close < lower)
            if fires[7]:
                strength[7] = _ramp((lower - close) / width, p[5])
        if on[7]:
            fires[8] = ok & (prev_close < prev_lower) & (close >= lower)
            if fires[8]:
                strength[8] = _ramp((close - lower) / width, p[5])
            fires[9] = ok & (prev_close > prev_upper) & (close <= upper)
            if fires[9]:
                strength[9] = _ramp((upper - close) / width, p[5])
        if on[14]:
            for s in range(6, 10):
                fires[s] &= gate
    # Stochastic
    if on[4]:
        k, d = cols[8][i], cols[9][i]
        pk = _NAN if first else cols[8][i - 1]
        pd_ = _NAN if first else cols[9][i - 1]
        avail[4] = (k == k) & (d == d) & (pk == pk) & (pd_ == pd_)
        live = not flat[4]
        fires[10] = (pk <= pd_) & (k > d) & (d < p[6]) & live
        fires[11] = (pk >= pd_) & (k < d) & (d > p[7]) & live
        if fires[10]:
            strength[10] = _ramp(p[6] - d, p[6])
        if fires[11]:
            strength[11] = _ramp(d - p[7], 100.0 - p[7])
        if on[15]:
            fires[10] &= gate
            fires[11] &= gate
    # Volume
    if on[5]:
        move = _sign(close - prev_close)
        vroc, cmf = cols[10][i], cols[11][i]
        has_cmf = cmf == cmf
        cmf_ok = (_sign(cmf) == move) & (abs(cmf) >= p[9])
        if not on[8]:
            cmf_ok |= not has_cmf
        avail[5] = (vroc == vroc) & (prev_close == prev_close) & (has_cmf | (not on[8]))
        base = (vroc >= p[8]) & cmf_ok
        fire = base & (move != 0) & (not flat[5])  # NaN != 0 holds, as in pandas
        fires[12] = fire & (move > 0)
        fires[13] = fire & (move < 0)
        if fire:
            st = _ramp(vroc, p[10])
            strength[12] = st
            strength[13] = st
        if on[16]:
            fires[12] &= gate
            fires[13] &= gate


@njit(cache=True, error_model="numpy")
def _pass(
    codes: np.ndarray, cols: tuple[np.ndarray, ...], p: np.ndarray, on: np.ndarray, windows: np.ndarray,
    weights: np.ndarray, directions: np.ndarray, lo: np.ndarray, emit: np.ndarray, emit_rank: np.ndarray,
    mask: np.ndarray, score: np.ndarray, out_row: np.ndarray, out_rank: np.ndarray, out_dir: np.ndarray,
    out_strength: np.ndarray, out_score: np.ndarray, out_action: np.ndarray, write: bool,
) -> int:  # fmt: skip
    """First pass (`write` False): every row's composite score and the number of output rows. Second pass:
    the output rows in (row, signal name) order. Returns the number of output rows."""
    n = codes.shape[0]
    n_slots = directions.shape[0]
    fires = np.zeros(n_slots, dtype=np.bool_)
    strength = np.zeros(n_slots)
    avail = np.zeros(6, dtype=np.bool_)
    flat = np.zeros(6, dtype=np.bool_)
    coin_start = 0
    run_start = 0
    k = 0
    for i in range(n):
        first = i == 0 or codes[i] != codes[i - 1]
        if first:
            coin_start = i
            run_start = i
        elif cols[0][i] != cols[0][i - 1]:
            run_start = i
        for f in range(6):
            flat[f] = run_start == coin_start or run_start <= i - windows[f] + 1
            avail[f] = False
        if write and mask[i] == 0:
            fires[:] = False  # no rule fires on this row: only its composite row is written
        else:
            _row(i, first, flat, cols, p, on, fires, strength, avail)
        if not write:
            num = 0.0
            den = 0.0
            for f in range(6):
                if not on[f] or weights[f] == 0:
                    continue
                vote = 0.0
                for s in range(lo[f], lo[f + 1]):
                    if f == 3 and ((s < 8 and not on[6]) or (s >= 8 and not on[7])):
                        continue  # Bollinger's breakouts or re-entries switched off: not among its firings
                    vote += directions[s] * (strength[s] if fires[s] else 0.0)
                vote = min(max(vote, -1.0), 1.0)
                num += weights[f] * (vote if avail[f] else 0.0)
                den += weights[f] * (1.0 if avail[f] else 0.0)
            sc = num / den if den > 0 else 0.0
            if sc != sc:
                sc = 0.0
            score[i] = min(max(sc, -1.0), 1.0)
            m = 0
            for s in range(n_slots):
                if fires[s]:
                    m += 1
            mask[i] = m
            k += m + 1
            continue
        for e in range(emit.shape[0]):
            s = emit[e]
            if s == n_slots:
                sc = score[i]
                out_row[k] = i
                out_rank[k] = emit_rank[e]
                out_dir[k] = int(_sign(sc)) if sc == sc else 0
                out_strength[k] = abs(sc)
                out_score[k] = sc
                out_action[k] = 0 if sc >= p[11] else (2 if sc <= p[12] else 1)
                k += 1
            elif mask[i] and fires[s]:
                out_row[k] = i
                out_rank[k] = emit_rank[e]
                out_dir[k] = directions[s]
                out_strength[k] = strength[s]
                out_score[k] = _NAN
                out_action[k] = -1
                k += 1
    return k


def _column(frame, name: str) -> np.ndarray:  # noqa: ANN001
    """A float64 column without a copy when it is one (missing values as NaN)."""
    values = frame[name].to_numpy()
    if values.dtype != np.float64:
        values = frame[name].to_numpy(dtype="float64", na_value=np.nan)
    return _readonly(np.ascontiguousarray(values))


def _readonly(values: np.ndarray) -> np.ndarray:
    """A read-only view: copy-on-write frames give read-only arrays, and numba types a tuple of arrays only
    when they all agree (one compiled signature)."""
    view = values.view()
    view.flags.writeable = False
    return view


def evaluate(
    frame, codes: np.ndarray, config: SignalConfig, names: list[str]  # noqa: ANN001
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Output rows of `generate_signals` for a frame sorted by (coin_id, date): (input row, rank of the signal
    name in `names`, direction, strength, composite score (NaN on rule rows), action code (-1 on rule rows)),
    ordered by (input row, name rank)."""
    n = len(frame)
    rules, adx_filter = config.rules, config.adx_filter
    enabled = {fam: bool(getattr(rules, fam).enabled) for fam in _FAMILIES}
    unread = _readonly(np.zeros(0))
    cols = [_column(frame, "close")] + [unread] * 12
    rows = {"rsi_14": 1, "macd_line": 2, "macd_signal": 3, "ema_10": 4, "ema_50": 5, "bb_upper": 6,
            "bb_lower": 7, "stoch_k": 8, "stoch_d": 9, "volume_roc_7": 10, "cmf_20": 11}  # fmt: skip
    for fam in _FAMILIES:
        if enabled[fam]:
            for name in FAMILY_COLUMNS[fam]:
                if name in rows:
                    cols[rows[name]] = _column(frame, name)
    adx_present = ADX_COLUMN in frame.columns
    if adx_filter.enabled and adx_present:
        cols[12] = _column(frame, ADX_COLUMN)
    # bb_mid is required by the Bollinger family (FAMILY_COLUMNS) but no rule reads it.
    gated = set(adx_filter.gated_rules) if adx_filter.enabled else set()
    r, b, s, v, c = rules.rsi, rules.bollinger, rules.stochastic, rules.volume, config.composite
    p = np.array(
        [r.oversold, r.overbought, r.full_strength_distance, rules.macd.full_strength, rules.ema_cross.full_strength,
         b.full_strength, s.oversold, s.overbought, v.min_volume_roc, v.min_cmf, v.full_strength_volume_roc,
         c.buy_threshold, c.sell_threshold, 0.0, 0.0, 0.0, 0.0, adx_filter.min_adx],
        dtype=np.float64,
    )  # fmt: skip
    on = np.array(
        [enabled[fam] for fam in _FAMILIES]
        + [bool(b.breakouts), bool(b.reentries), bool(v.require_cmf), bool(adx_filter.enabled),
           adx_filter.when_missing == "allow"]
        + [fam in gated for fam in _FAMILIES]
        + [adx_present],  # absent: NaN everywhere, the gate follows when_missing
        dtype=np.bool_,
    )  # fmt: skip
    windows = np.array([FLAT_WINDOWS[fam] for fam in _FAMILIES], dtype=np.int64)
    weights = np.array([float(getattr(rules, fam).weight) for fam in _FAMILIES])
    directions = np.array([d for _, d in SLOT_RULES], dtype=np.int64)
    lo = np.array([_FAMILY_SLOTS[fam][0] for fam in _FAMILIES] + [N_SLOTS], dtype=np.int64)
    rank = {name: i for i, name in enumerate(names)}
    slot_names = [name for name, _ in SLOT_RULES] + ["composite"]
    emit = np.array(sorted(range(N_SLOTS + 1), key=lambda slot: (rank[slot_names[slot]], slot)), dtype=np.int64)
    emit_rank = np.array([rank[slot_names[slot]] for slot in emit], dtype=np.int64)
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    mask = np.zeros(n, dtype=np.int64)
    score = np.zeros(n)
    none_i, none_f = np.zeros(0, dtype=np.int64), np.zeros(0)
    cols_t = tuple(cols)
    total = _pass(codes, cols_t, p, on, windows, weights, directions, lo, emit, emit_rank, mask, score,
                  none_i, none_i, none_i, none_f, none_f, none_i, False)  # fmt: skip
    out_row = np.empty(total, dtype=np.int64)
    out_rank = np.empty(total, dtype=np.int64)
    out_dir = np.empty(total, dtype=np.int64)
    out_strength = np.empty(total)
    out_score = np.empty(total)
    out_action = np.empty(total, dtype=np.int64)
    _pass(codes, cols_t, p, on, windows, weights, directions, lo, emit, emit_rank, mask, score,
          out_row, out_rank, out_dir, out_strength, out_score, out_action, True)  # fmt: skip
    return out_row, out_rank, out_dir, out_strength, out_score, out_action
