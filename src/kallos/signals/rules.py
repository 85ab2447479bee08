"""The rules: one small function per family, each turning indicator columns into firing days.

Every rule reads day t and, for crossings, day t-1 (the previous stored row of the same coin): nothing later,
so a signal for day t is known at the close of day t. A family returns, aligned with the input rows, when each
of its rules fires with what strength, and on which rows the family had the data to vote at all (its
indicators present); the composite averages the families that could vote.

A degenerate window (the close did not move at all over the family's window, as for a pegged or frozen coin)
fires nothing: TA-Lib returns 0 there (RSI 0, %K 0, ADX 0), which would otherwise read as "deeply oversold".

These pandas expressions are the rules' reference statement. `generate_signals` evaluates the same rules in one
compiled pass (`kallos.signals.kernel`, docs/decisions.md#D119); tests/signals/test_signal_kernel.py checks the
two give the same rows, strengths and scores bit for bit. A change to a rule is made in both.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kallos.signals.config import (
    ADXFilter,
    BollingerRule,
    CrossRule,
    RSIRule,
    SignalConfig,
    StochasticRule,
    VolumeRule,
)

RULE_IDS: tuple[str, ...] = (
    "rsi_oversold",
    "rsi_overbought",
    "macd_cross_up",
    "macd_cross_down",
    "golden_cross",
    "death_cross",
    "bb_breakout_up",
    "bb_breakout_down",
    "bb_reentry_up",
    "bb_reentry_down",
    "stoch_cross_up",
    "stoch_cross_down",
    "volume_confirmed",
)

# Rows (including day t) over which a zero close range makes a family's indicators meaningless: the
# look-back of the indicator the family reads (RSI 14, MACD slow EMA 26, EMA 50, Bollinger 20, stochastic 14,
# CMF 20).
FLAT_WINDOWS: dict[str, int] = {
    "rsi": 14,
    "macd": 26,
    "ema_cross": 50,
    "bollinger": 20,
    "stochastic": 14,
    "volume": 20,
}

# The indicator columns each family reads (besides close).
FAMILY_COLUMNS: dict[str, tuple[str, ...]] = {
    "rsi": ("rsi_14",),
    "macd": ("macd_line", "macd_signal"),
    "ema_cross": ("ema_10", "ema_50"),
    "bollinger": ("bb_upper", "bb_mid", "bb_lower"),
    "stochastic": ("stoch_k", "stoch_d"),
    "volume": ("volume_roc_7", "cmf_20"),
}
ADX_COLUMN = "adx_14"


@dataclass(frozen=True)
class Firing:
    """One rule's outcome on every row: where it fires, its direction, its strength there."""

    rule: str
    direction: int
    fires: pd.Series
    strength: pd.Series


@dataclass(frozen=True)
class FamilyResult:
    family: str
    available: pd.Series
    """Rows where the family's inputs exist, so it votes in the composite (possibly with 0)."""
    firings: list[Firing] = field(default_factory=list)


class Context:
    """The frame of one or more coins, sorted by (coin_id, date), with each coin's previous row at hand.

    Per-coin look-backs are vectorised over the whole frame (docs/decisions.md#D111): a row's coin starts at
    `coin_start[row]`, and the previous row belongs to the same coin unless the row starts its coin.
    """

    def __init__(self, frame: pd.DataFrame, codes: np.ndarray | None = None) -> None:
        """`codes`: the rows' coin codes when the caller has them (any labelling that differs between coins)."""
        self.frame = frame
        n = len(frame)
        if codes is None:
            codes, _ = pd.factorize(frame["coin_id"], sort=False)
        self._first = np.ones(n, dtype=bool)  # True where a row starts its coin
        if n > 1:
            self._first[1:] = codes[1:] != codes[:-1]
        rows = np.arange(n)
        self._coin_start = np.maximum.accumulate(np.where(self._first, rows, 0)) if n else rows
        self._prev: dict[str, pd.Series] = {}
        self._cols: dict[str, pd.Series] = {}
        self._flat: dict[int, pd.Series] = {}
        self._run_start: np.ndarray | None = None

    def col(self, name: str) -> pd.Series:
        if name not in self._cols:
            self._cols[name] = self.frame[name].astype("float64")
        return self._cols[name]

    def prev(self, name: str) -> pd.Series:
        """The column's value on the coin's previous stored row (NaN on its first row)."""
        if name not in self._prev:
            values = self.frame[name].to_numpy(dtype="float64")
            shifted = np.empty_like(values)
            if len(values):
                shifted[1:] = values[:-1]
                shifted[self._first] = np.nan
            self._prev[name] = pd.Series(shifted, index=self.frame.index)
        return self._prev[name]

    def flat(self, window: int) -> pd.Series:
        """True where the close range over the last `window` rows (fewer at the start of history) is zero.

        That is: the run of equal closes the row ends began at or before the window's first row (or at the
        coin's first row). One pass for every window: the run starts are computed once.
        """
        if window not in self._flat:
            n = len(self.frame)
            rows = np.arange(n)
            if self._run_start is None:
                close = self.frame["close"].to_numpy(dtype="float64")
                breaks = self._first.copy()
                if n > 1:
                    breaks[1:] |= close[1:] != close[:-1]
                self._run_start = np.maximum.accumulate(np.where(breaks, rows, 0)) if n else rows
            flat = (self._run_start == self._coin_start) | (self._run_start <= rows - window + 1)
            self._flat[window] = pd.Series(flat, index=self.frame.index)
        return self._flat[window]


def _ramp(x: pd.Series, full: float) -> pd.Series:
    return (x / full).clip(lower=0.0, upper=1.0).fillna(0.0)


def _live(ctx: Context, family: str, series: pd.Series) -> pd.Series:
    """A condition, minus NaN comparisons (already False) and degenerate windows."""
    return series.fillna(False).astype(bool) & ~ctx.flat(FLAT_WINDOWS[family])


def rsi_rules(ctx: Context, p: RSIRule) -> FamilyResult:
    rsi = ctx.col("rsi_14")
    oversold = _live(ctx, "rsi", rsi < p.oversold)
    overbought = _live(ctx, "rsi", rsi > p.overbought)
    return FamilyResult(
        "rsi",
        rsi.notna(),
        [
            Firing("rsi_oversold", +1, oversold, _ramp(p.oversold - rsi, p.full_strength_distance)),
            Firing("rsi_overbought", -1, overbought, _ramp(rsi - p.overbought, p.full_strength_distance)),
        ],
    )


def _cross(ctx: Context, family: str, fast: str, slow: str, p: CrossRule, ids: tuple[str, str]) -> FamilyResult:
    """`fast` crossing `slow`: up when the spread goes from <= 0 to > 0, down from >= 0 to < 0.

    Strength: the day's change of the spread as a fraction of the close, over `full_strength`: a decisive
    cross is a large one-day swing of the spread, a drift across zero is weak.
    """
    spread = ctx.col(fast) - ctx.col(slow)
    prev_spread = ctx.prev(fast) - ctx.prev(slow)
    available = spread.notna() & prev_spread.notna()
    up = _live(ctx, family, (prev_spread <= 0) & (spread > 0))
    down = _live(ctx, family, (prev_spread >= 0) & (spread < 0))
    strength = _ramp((spread - prev_spread).abs() / ctx.col("close"), p.full_strength)
    return FamilyResult(family, available, [Firing(ids[0], +1, up, strength), Firing(ids[1], -1, down, strength)])


def macd_rules(ctx: Context, p: CrossRule) -> FamilyResult:
    return _cross(ctx, "macd", "macd_line", "macd_signal", p, ("macd_cross_up", "macd_cross_down"))


def ema_cross_rules(ctx: Context, p: CrossRule) -> FamilyResult:
    return _cross(ctx, "ema_cross", "ema_10", "ema_50", p, ("golden_cross", "death_cross"))


def bollinger_rules(ctx: Context, p: BollingerRule) -> FamilyResult:
    """Breakout: the close leaves the band (was inside or on it yesterday). Re-entry: it comes back inside.

    Up/down name the price's move: `bb_breakout_up` closes above the upper band (+1, momentum),
    `bb_reentry_down` falls back inside from above (-1), `bb_reentry_up` climbs back inside from below (+1),
    `bb_breakout_down` closes below the lower band (-1). Strength: distance from the crossed band, in band
    widths.
    """
    close, prev_close = ctx.col("close"), ctx.prev("close")
    upper, lower = ctx.col("bb_upper"), ctx.col("bb_lower")
    prev_upper, prev_lower = ctx.prev("bb_upper"), ctx.prev("bb_lower")
    width = upper - lower
    available = upper.notna() & lower.notna() & prev_upper.notna() & prev_lower.notna() & prev_close.notna()
    ok = width > 0
    firings: list[Firing] = []
    if p.breakouts:
        firings.append(
            Firing(
                "bb_breakout_up",
                +1,
                _live(ctx, "bollinger", ok & (prev_close <= prev_upper) & (close > upper)),
                _ramp((close - upper) / width, p.full_strength),
            )
        )
        firings.append(
            Firing(
                "bb_breakout_down",
                -1,
                _live(ctx, "bollinger", ok & (prev_close >= prev_lower) & (close < lower)),
                _ramp((lower - close) / width, p.full_strength),
            )
        )
    if p.reentries:
        firings.append(
            Firing(
                "bb_reentry_up",
                +1,
                _live(ctx, "bollinger", ok & (prev_close < prev_lower) & (close >= lower)),
                _ramp((close - lower) / width, p.full_strength),
            )
        )
        firings.append(
            Firing(
                "bb_reentry_down",
                -1,
                _live(ctx, "bollinger", ok & (prev_close > prev_upper) & (close <= upper)),
                _ramp((upper - close) / width, p.full_strength),
            )
        )
    return FamilyResult("bollinger", available, firings)


def stochastic_rules(ctx: Context, p: StochasticRule) -> FamilyResult:
    """%K crossing %D where %D sits in an extreme zone: up below `oversold`, down above `overbought`.

    Strength: how deep %D is in its zone (the zone's full depth = 1).
    """
    k, d = ctx.col("stoch_k"), ctx.col("stoch_d")
    pk, pd_ = ctx.prev("stoch_k"), ctx.prev("stoch_d")
    available = k.notna() & d.notna() & pk.notna() & pd_.notna()
    up = _live(ctx, "stochastic", (pk <= pd_) & (k > d) & (d < p.oversold))
    down = _live(ctx, "stochastic", (pk >= pd_) & (k < d) & (d > p.overbought))
    return FamilyResult(
        "stochastic",
        available,
        [
            Firing("stoch_cross_up", +1, up, _ramp(p.oversold - d, p.oversold)),
            Firing("stoch_cross_down", -1, down, _ramp(d - p.overbought, 100.0 - p.overbought)),
        ],
    )


def volume_rules(ctx: Context, p: VolumeRule) -> FamilyResult:
    """The day's price move is backed by volume: volume up on the week and money flow on the move's side.

    Direction is the sign of the day's close change; CMF must agree in sign and reach `min_cmf`.
    """
    close, prev_close = ctx.col("close"), ctx.prev("close")
    move = np.sign(close - prev_close)
    vroc, cmf = ctx.col("volume_roc_7"), ctx.col("cmf_20")
    has_cmf = cmf.notna()
    cmf_ok = (np.sign(cmf) == move) & (cmf.abs() >= p.min_cmf)
    if not p.require_cmf:
        cmf_ok = cmf_ok | ~has_cmf
    available = vroc.notna() & prev_close.notna() & (has_cmf | (not p.require_cmf))
    base = (vroc >= p.min_volume_roc) & cmf_ok
    strength = _ramp(vroc, p.full_strength_volume_roc)
    fires = _live(ctx, "volume", base & (move != 0))
    # One rule id, two directions: split so each Firing has a fixed direction.
    return FamilyResult(
        "volume",
        available,
        [
            Firing("volume_confirmed", +1, fires & (move > 0), strength),
            Firing("volume_confirmed", -1, fires & (move < 0), strength),
        ],
    )


FAMILY_FUNCTIONS: dict[str, Callable[[Context, Any], FamilyResult]] = {
    "rsi": rsi_rules,
    "macd": macd_rules,
    "ema_cross": ema_cross_rules,
    "bollinger": bollinger_rules,
    "stochastic": stochastic_rules,
    "volume": volume_rules,
}


def adx_gate(ctx: Context, f: ADXFilter) -> pd.Series:
    """True where gated (trend) rules may fire: a trend strong enough, or no ADX and `when_missing=allow`."""
    if not f.enabled:
        return pd.Series(True, index=ctx.frame.index)
    adx = ctx.col(ADX_COLUMN) if ADX_COLUMN in ctx.frame else pd.Series(np.nan, index=ctx.frame.index)
    strong = (adx >= f.min_adx).fillna(False).astype(bool)
    if f.when_missing == "allow":
        strong = strong | adx.isna()
    return strong


def required_columns(config: SignalConfig) -> list[str]:
    cols = ["coin_id", "date", "close"]
    for fam in FAMILY_FUNCTIONS:
        if getattr(config.rules, fam).enabled:
            cols.extend(FAMILY_COLUMNS[fam])
    if config.adx_filter.enabled:
        cols.append(ADX_COLUMN)
    return list(dict.fromkeys(cols))


def run_rules(ctx: Context, config: SignalConfig) -> list[FamilyResult]:
    """Every enabled family, with the ADX filter applied to the gated ones."""
    gate = adx_gate(ctx, config.adx_filter)
    gated = set(config.adx_filter.gated_rules) if config.adx_filter.enabled else set()
    results = []
    for fam, fn in FAMILY_FUNCTIONS.items():
        params = getattr(config.rules, fam)
        if not params.enabled:
            continue
        res = fn(ctx, params)
        if fam in gated:
            res = FamilyResult(
                res.family,
                res.available,
                [Firing(f.rule, f.direction, f.fires & gate, f.strength) for f in res.firings],
            )
        results.append(res)
    return results
