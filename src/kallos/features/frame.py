"""The one assembly path of the feature frame, shared by `build_features` (bars in) and `load_features` (store).

Every join is point in time: a row at day t takes the bar, indicators and signals of day t, the market-cap rank
among the coins' caps of day t, the index basket chosen on or before t drifted to t, and the last alternative-data
snapshot dated on or before t. Only the `target_*` labels read later bars (docs/decisions.md#D70).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kallos.errors import InputError
from kallos.features.naming import apply_naming, kallos_name
from kallos.indicators.contract import OUTPUT_COLUMNS
from kallos.signals.rules import RULE_IDS
from kallos.store.schema import ALT_DATA_COLUMNS

KEY = ("coin_id", "date")
BAR_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "market_cap")
SIGNAL_FEATURES: tuple[str, ...] = tuple(f"signal_{r}" for r in RULE_IDS) + ("composite_score", "signal_action")
CONTEXT_FEATURES: tuple[str, ...] = ("market_cap_rank", "age_days", "index_member", "index_weight")
ALT_FEATURES: tuple[str, ...] = ("alt_as_of", *(f"alt_{c}" for c in ALT_DATA_COLUMNS))

TIMEFRAMES: dict[str, int] = {"1d": 1}
"""Accepted timeframes and their bar length in days (docs/decisions.md#D77)."""


def check_timeframe(timeframe: str) -> int:
    if timeframe not in TIMEFRAMES:
        raise InputError(
            f"timeframe {timeframe!r} is not available; accepted: {', '.join(TIMEFRAMES)}", input="timeframe"
        )
    return TIMEFRAMES[timeframe]


def check_horizons(horizons: Sequence[int]) -> tuple[int, ...]:
    out = tuple(dict.fromkeys(int(h) for h in horizons))
    if not out or any(h < 1 for h in out):
        raise InputError(f"horizons must be positive bar counts, got {list(horizons)}", input="horizons")
    return out


def label_columns(horizons: Sequence[int]) -> list[str]:
    return [f"target_return_{h}" for h in horizons] + [f"target_log_return_{h}" for h in horizons]


def feature_columns(horizons: Sequence[int]) -> list[str]:
    """Every column of the frame in order, under Kallos names."""
    return [
        *KEY,
        *BAR_FIELDS,
        "ohlc_source",
        *OUTPUT_COLUMNS,
        *SIGNAL_FEATURES,
        *CONTEXT_FEATURES,
        *ALT_FEATURES,
        *label_columns(horizons),
    ]


@dataclass
class Inputs:
    """What one frame is assembled from; every frame has `coin_id` (CoinGecko id) and `date` (naive day)."""

    bars: pd.DataFrame
    """coin_id, date and BAR_FIELDS: every final bar known, including those after `end` (labels read them)."""
    indicators: pd.DataFrame
    """coin_id, date, ohlc_source and the indicator contract's columns."""
    signals: pd.DataFrame
    """The `trading_signals` shape: coin_id, date, signal, direction, strength, composite_score, action."""
    caps: pd.DataFrame
    """coin_id, date, market_cap of every coin ranked (the universe the rank is taken in)."""
    first_bar: pd.Series
    """coin_id -> the day of the coin's first bar."""
    constituents: pd.DataFrame | None = None
    """selection_date, coin_id, weight: the index's target weights (None: the index columns are unknown)."""
    member_closes: pd.DataFrame | None = None
    """coin_id, date, close of every constituent (to drift the weights)."""
    alt: pd.DataFrame | None = None
    """coin_id, date and ALT_DATA_COLUMNS: alternative-data snapshots."""
    coin_order: Sequence[object] | None = None
    """The coins in output order (default: sorted); `load_features` passes its integer ids in name order."""


def _days(dates: pd.Series | pd.Index) -> np.ndarray:
    return np.asarray(pd.to_datetime(dates).to_numpy(dtype="datetime64[D]").astype(np.int64))


class _Keys:
    """Row keys (coin, day) as one int64, so every join is a hash lookup rather than a frame merge."""

    def __init__(self, coins: pd.Index) -> None:
        self.coins = coins

    def of(self, coin_ids: pd.Series, dates: pd.Series, shift_days: int = 0) -> np.ndarray:
        code = self.coins.get_indexer(pd.Index(coin_ids)).astype(np.int64)
        day = _days(dates) + shift_days
        return np.where(code >= 0, (code << 32) + day, -1)

    def lookup(self, base: np.ndarray, coin_ids: pd.Series, dates: pd.Series) -> np.ndarray:
        """Position in (coin_ids, dates) of each base key, -1 where absent."""
        return _positions(pd.Index(self.of(coin_ids, dates)), base)


def _positions(keys: pd.Index, wanted: np.ndarray) -> np.ndarray:
    """Where each wanted key sits in `keys` (unique: every source has one row per coin and day), -1 if absent."""
    return np.where(wanted >= 0, keys.get_indexer(wanted), -1)


def _take(values: np.ndarray, pos: np.ndarray, fill: object = np.nan) -> np.ndarray:
    """values[pos], with `fill` where pos is -1."""
    if not len(values):
        values = np.array([fill], dtype="float64" if values.dtype.kind in "fiu" else object)
        pos = np.full(len(pos), -1)
    if values.dtype.kind in "fiu":
        out = np.asarray(values, dtype="float64")[np.maximum(pos, 0)]
        out[pos < 0] = np.nan
        return out
    out = np.asarray(values, dtype=object)[np.maximum(pos, 0)]
    out[pos < 0] = fill
    return out


def signal_wide(signals: pd.DataFrame) -> pd.DataFrame:
    """One row per (coin, day) that has a composite row: each rule's signed strength (0 where it did not fire),
    the composite score and its action."""
    comp = signals.loc[signals["signal"] == "composite"]
    out = pd.DataFrame(
        {
            "coin_id": comp["coin_id"].to_numpy(),
            "date": comp["date"].to_numpy(),
            "composite_score": comp["composite_score"].to_numpy(dtype="float64"),
            "signal_action": comp["action"].to_numpy(dtype=object),
        }
    )
    rules = signals.loc[signals["signal"] != "composite"]
    if out.empty:
        return out.assign(**{f"signal_{r}": pd.Series(dtype="float64") for r in RULE_IDS})
    keys = _Keys(pd.Index(pd.unique(out["coin_id"])))
    base = keys.of(out["coin_id"], out["date"])
    for rule in RULE_IDS:
        fired = rules.loc[rules["signal"] == rule]
        pos = keys.lookup(base, fired["coin_id"], fired["date"])
        value = fired["direction"].to_numpy(dtype="float64") * fired["strength"].to_numpy(dtype="float64")
        col = _take(value, pos)
        col[pos < 0] = 0.0
        out[f"signal_{rule}"] = col
    return out


def drifted_weights(constituents: pd.DataFrame, closes: pd.DataFrame) -> pd.DataFrame:
    """Each day's index weights as known at that day's close: the basket chosen at the last selection date s on
    or before t, its target weights drifted with the closes (carried forward over gaps) from s to t,
    w_i,t = w_i P_i,t / P_i,s / Σ_j w_j P_j,t / P_j,s (docs/decisions.md#D73). Returns date, coin_id, weight."""
    if constituents.empty or closes.empty:
        return pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]"), "coin_id": [], "weight": []})
    cons = constituents.assign(selection_date=pd.to_datetime(constituents["selection_date"]))
    wide = closes.pivot(index="date", columns="coin_id", values="close")
    last_day = wide.index.max()
    grid = pd.date_range(min(wide.index.min(), cons["selection_date"].min()), last_day, freq="D")
    wide = wide.reindex(grid).ffill()
    prices = wide.to_numpy(dtype="float64")
    column = pd.Index(wide.columns)
    selections = pd.DatetimeIndex(sorted(cons["selection_date"].unique()))
    starts = grid.get_indexer(selections)
    parts = []
    for i, (s, row) in enumerate(zip(selections, starts, strict=True)):
        if s > last_day:
            break
        stop = starts[i + 1] if i + 1 < len(starts) and starts[i + 1] >= 0 else len(grid)
        basket = cons.loc[cons["selection_date"] == s]
        cols = column.get_indexer(basket["coin_id"])
        have = cols >= 0
        members, cols = basket["coin_id"].to_numpy()[have], cols[have]
        w = basket["weight"].to_numpy(dtype="float64")[have]
        raw = w * prices[row:stop, cols] / prices[row, cols]
        weights = raw / raw.sum(axis=1, keepdims=True)
        days = grid[row:stop]
        parts.append(
            pd.DataFrame(
                {
                    "date": np.repeat(days.to_numpy(), len(members)),
                    "coin_id": np.tile(members, len(days)),
                    "weight": weights.ravel(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else drifted_weights(cons.iloc[:0], closes.iloc[:0])


def market_cap_rank(caps: pd.DataFrame) -> pd.Series:
    """Rank 1 = the largest cap among the coins with a cap that day (ties share the best rank; no cap: NaN)."""
    return caps.groupby("date", sort=False)["market_cap"].rank(method="min", ascending=False)


def assemble(
    inputs: Inputs,
    *,
    horizons: Sequence[int],
    naming: str,
    step_days: int = 1,
    start: dt.date | None = None,
    end: dt.date | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The feature frame: one row per bar in [start, end], sorted by coin (in `coin_order`) and date."""
    bars = inputs.bars
    order = inputs.coin_order if inputs.coin_order is not None else sorted(pd.unique(bars["coin_id"]))
    keys = _Keys(pd.Index(order))
    bar_keys = keys.of(bars["coin_id"], bars["date"])
    day = _days(bars["date"])
    keep = np.ones(len(bars), dtype=bool)
    if start is not None:
        keep &= day >= _days(pd.Series([pd.Timestamp(start)]))[0]
    if end is not None:
        keep &= day <= _days(pd.Series([pd.Timestamp(end)]))[0]
    picked = np.flatnonzero(keep)
    picked = picked[np.argsort(bar_keys[picked], kind="stable")]
    base = bar_keys[picked]
    rows = pd.DataFrame(
        {
            "coin_id": bars["coin_id"].to_numpy()[picked],
            "date": bars["date"].to_numpy(dtype="datetime64[ns]")[picked],
            "close": bars["close"].to_numpy(dtype="float64")[picked],
        },
        copy=False,
    )
    out: dict[str, object] = {"coin_id": rows["coin_id"].to_numpy(), "date": rows["date"].to_numpy()}
    for name in BAR_FIELDS:
        out[name] = bars[name].to_numpy(dtype="float64")[picked] if name in bars else np.full(len(rows), np.nan)

    ind = inputs.indicators
    pos = keys.lookup(base, ind["coin_id"], ind["date"])
    out["ohlc_source"] = _take(ind["ohlc_source"].to_numpy(dtype=object), pos, None)
    for name in OUTPUT_COLUMNS:
        out[name] = _take(ind[name].to_numpy(dtype="float64"), pos)

    sig = signal_wide(inputs.signals)
    pos = keys.lookup(base, sig["coin_id"], sig["date"])
    for name in SIGNAL_FEATURES:
        fill = None if name == "signal_action" else np.nan
        out[name] = _take(sig[name].to_numpy(), pos, fill)

    caps = inputs.caps.reset_index(drop=True)
    cap_keys = _Keys(pd.Index(pd.unique(caps["coin_id"])))
    pos = cap_keys.lookup(cap_keys.of(rows["coin_id"], rows["date"]), caps["coin_id"], caps["date"])
    out["market_cap_rank"] = _take(market_cap_rank(caps).to_numpy(dtype="float64"), pos)
    first = pd.Index(inputs.first_bar.index).get_indexer(rows["coin_id"])
    first_day = _take(_days(pd.Series(inputs.first_bar.to_numpy())), first)
    out["age_days"] = _days(rows["date"]) - first_day

    member = pd.array(np.full(len(rows), pd.NA), dtype="boolean")
    weight = np.full(len(rows), np.nan)
    if inputs.constituents is not None and inputs.member_closes is not None and not inputs.constituents.empty:
        drift = drifted_weights(inputs.constituents, inputs.member_closes)
        pos = keys.lookup(base, drift["coin_id"], drift["date"])
        started = rows["date"].to_numpy() >= pd.Timestamp(inputs.constituents["selection_date"].min()).to_datetime64()
        weight = np.where(started, 0.0, np.nan)
        weight[pos >= 0] = drift["weight"].to_numpy()[pos[pos >= 0]]
        member = pd.array(np.where(started, pos >= 0, False), dtype="boolean")
        member[~started] = pd.NA
    out["index_member"] = member
    out["index_weight"] = weight

    out.update(_as_of(keys, base, inputs.alt))
    out.update(_labels(rows["close"].to_numpy(), bars, bar_keys, base, check_horizons(horizons), step_days))
    frame = pd.DataFrame(out, copy=False)  # one block per column: consolidating 100 columns would copy them all
    if columns is not None:
        wanted = [kallos_name(c) for c in columns]
        unknown = [c for c, k in zip(columns, wanted, strict=True) if k not in frame.columns]
        if unknown:
            raise InputError(f"unknown feature columns {unknown}; see docs/features.md", input="columns")
        frame = frame.loc[:, [*KEY, *[c for c in dict.fromkeys(wanted) if c not in KEY]]]
    return apply_naming(frame, naming)


def _as_of(keys: _Keys, base: np.ndarray, alt: pd.DataFrame | None) -> dict[str, object]:
    """The last snapshot dated on or before each row's day, per coin (NaN before a coin's first snapshot)."""
    n = len(base)
    out: dict[str, object] = {"alt_as_of": np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")}
    out.update({f"alt_{c}": np.full(n, np.nan) for c in ALT_DATA_COLUMNS})
    if alt is None or alt.empty or not n:
        return out
    alt = alt.reindex(columns=["coin_id", "date", *ALT_DATA_COLUMNS])
    alt_keys = keys.of(alt["coin_id"], alt["date"])
    order = np.argsort(alt_keys, kind="stable")
    alt_keys = alt_keys[order]
    pos = np.searchsorted(alt_keys, base, side="right") - 1  # the last snapshot key <= (coin, t)
    same = (pos >= 0) & (base >= 0) & (alt_keys[np.maximum(pos, 0)] >> 32 == base >> 32)
    pos = np.where(same, order[np.maximum(pos, 0)], -1)
    as_of = pd.to_datetime(alt["date"]).to_numpy(dtype="datetime64[ns]")[np.maximum(pos, 0)]
    out["alt_as_of"] = np.where(pos >= 0, as_of, np.datetime64("NaT"))
    out.update({f"alt_{c}": _take(alt[c].to_numpy(dtype="float64"), pos) for c in ALT_DATA_COLUMNS})
    return out


def _labels(
    close: np.ndarray,
    bars: pd.DataFrame,
    bar_keys: np.ndarray,
    base: np.ndarray,
    horizons: Sequence[int],
    step_days: int,
) -> dict[str, np.ndarray]:
    """close[t+h] / close[t] − 1 and its log, NaN where the bar h steps later is not a stored final bar."""
    later = bars["close"].to_numpy(dtype="float64")
    known = pd.Index(bar_keys)
    ratios = {}
    for h in horizons:
        pos = _positions(known, np.where(base >= 0, base + h * step_days, -1))
        ratios[h] = _take(later, pos) / close
    out = {f"target_return_{h}": r - 1.0 for h, r in ratios.items()}
    out.update({f"target_log_return_{h}": np.log(r) for h, r in ratios.items()})
    return out
