"""The one assembly path of the feature frame, shared by `build_features` (bars in) and `load_features` (store).

Every join is point in time: a row at bar t takes the bar, indicators and signals of bar t, the market-cap rank
among the coins' caps at t, the index basket known at t drifted to t, and the last alternative-data snapshot known
at t. Only the `target_*` labels read later bars (docs/decisions.md#D70, #D79 for the timeframes).

Speed (docs/decisions.md#D124): every source is aligned to the output rows by a merge of sorted int64
(coin, time) keys, and a source whose keys already equal the output's (same rows, same order) is used as it is,
without a gather; per-day ranks are one sort of the whole cap column, not a group-by.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from kallos.errors import InputError
from kallos.features.naming import column_name, kallos_name
from kallos.indicators.contract import OUTPUT_COLUMNS
from kallos.signals.rules import RULE_IDS
from kallos.store.schema import ALT_DATA_COLUMNS

KEY = ("coin_id", "date")
_LOW = 0xFFFFFFFF  # the time part of a (coin << 32) + time key
BAR_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "market_cap")
SIGNAL_FEATURES: tuple[str, ...] = tuple(f"signal_{r}" for r in RULE_IDS) + ("composite_score", "signal_action")
CONTEXT_FEATURES: tuple[str, ...] = ("market_cap_rank", "age_days", "index_member", "index_weight")
ALT_FEATURES: tuple[str, ...] = ("alt_as_of", *(f"alt_{c}" for c in ALT_DATA_COLUMNS))


@dataclass(frozen=True)
class FeatureTimeframe:
    """How the feature frame of one timeframe is keyed and how far apart its bars are (docs/decisions.md#D79)."""

    name: str
    key: str
    """The output's time column: `hour` (a UTC timestamp) for 1h, `date` for 1d and 1w (a week's Monday)."""
    unit: str
    """NumPy unit of the integer time keys: "h" or "D"."""
    step: int
    """Bar length in `unit`s (7 for weeks): labels look `h * step` units ahead."""
    close_days: int
    """Days from a bar's day to the day whose daily data (index, alternative data) is known at its close: 6 for a
    week (its Sunday), 0 otherwise (an hour of day D joins day D's 00:00 values)."""


TIMEFRAMES: dict[str, FeatureTimeframe] = {
    "1h": FeatureTimeframe("1h", "hour", "h", 1, 0),
    "1d": FeatureTimeframe("1d", "date", "D", 1, 0),
    "1w": FeatureTimeframe("1w", "date", "D", 7, 6),
}
"""Accepted timeframes (docs/decisions.md#D77, #D79)."""


def check_timeframe(timeframe: str) -> FeatureTimeframe:
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


def feature_columns(horizons: Sequence[int], timeframe: str = "1d") -> list[str]:
    """Every column of the frame in order, under Kallos names (the time key is `hour` on 1h, else `date`)."""
    return [
        "coin_id",
        check_timeframe(timeframe).key,
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
    """What one frame is assembled from; every frame has `coin_id` and `date` (naive UTC datetime64: the bar's
    day, a week's Monday, or the hour on 1h)."""

    bars: pd.DataFrame | pa.Table
    """coin_id, date and BAR_FIELDS: every final bar known, including those after `end` (labels read them)."""
    indicators: pd.DataFrame | pa.Table | Future[pa.Table] | None
    """coin_id, date, ohlc_source and the indicator contract's columns (None: not asked for)."""
    signals: pd.DataFrame | None
    """The `trading_signals` shape: coin_id, date, signal, direction, strength, composite_score, action; or None
    when `composites` and `rules` are given instead (or the signal columns are not asked for)."""
    caps: pd.DataFrame | None
    """coin_id, date, market_cap of every coin ranked (the universe the rank is taken in); None: the bars."""
    first_bar: pd.Series
    """coin_id -> the time of the coin's first bar."""
    constituents: pd.DataFrame | None = None
    """selection_date, coin_id, weight: the index's target weights (None: the index columns are unknown)."""
    member_closes: pd.DataFrame | None = None
    """coin_id, date, close: daily closes of every constituent (to drift the weights; the index is daily)."""
    alt: pd.DataFrame | None = None
    """coin_id, date and ALT_DATA_COLUMNS: alternative-data snapshots (dated by day)."""
    coin_order: Sequence[object] | None = None
    """The coins in output order (default: sorted); `load_features` passes its integer ids in name order."""
    coin_labels: Sequence[str] | None = None
    """What `coin_id` shows for each coin of `coin_order` (default: the ids themselves)."""
    composites: pd.DataFrame | pa.Table | Future[pa.Table] | None = None
    """coin_id, date, composite_score, action: the composite signal rows (instead of `signals`)."""
    rules: pd.DataFrame | Future[pd.DataFrame] | None = None
    """coin_id, date, signal, value (direction x strength): the rule rows (instead of `signals`)."""


def _ticks(dates: pd.Series | pd.Index | np.ndarray, unit: str) -> np.ndarray:
    """Naive datetimes as int64 counts of `unit` ("D" or "h") since the epoch."""
    values = np.asarray(dates)
    if values.dtype.kind != "M":
        values = pd.to_datetime(pd.Series(values)).to_numpy(dtype="datetime64[ns]")
    return values.astype(f"datetime64[{unit}]").astype(np.int64)


def _is_sorted(keys: np.ndarray) -> bool:
    """Strictly increasing (sorted and unique)."""
    return len(keys) < 2 or bool(np.all(keys[1:] > keys[:-1]))


class _Coins:
    """Coin ids -> their position in the output order (-1: not an output coin)."""

    def __init__(self, order: Sequence[object]) -> None:
        self.order = pd.Index(order)
        values = self.order.to_numpy()
        self.lut: np.ndarray | None = None
        if len(values) and values.dtype.kind in "iu" and values.min() >= 0 and values.max() < 50 * len(values) + 1024:
            self.lut = np.full(int(values.max()) + 1, -1, dtype=np.int64)  # integer store ids: an array lookup
            self.lut[values] = np.arange(len(values))

    def codes(self, coin_ids: pd.Series | np.ndarray) -> np.ndarray:
        ids = np.asarray(coin_ids)
        if self.lut is not None and ids.dtype.kind in "iu":
            inside = (ids >= 0) & (ids < len(self.lut))
            return np.where(inside, self.lut[np.where(inside, ids, 0)], -1)
        return np.asarray(self.order.get_indexer(pd.Index(ids, dtype=object)), dtype=np.int64)

    def keys(self, coin_ids: pd.Series | np.ndarray, ticks: np.ndarray) -> np.ndarray:
        """(coin, time) as one int64, -1 for coins not in the output."""
        code = self.codes(coin_ids)
        return np.where(code >= 0, (code << 32) + ticks, -1)


class _Aligned:
    """Where each output row's key sits in a source; `pos` None when the source's rows are the output's.
    `injective`: no two output rows share a source row (an exact key match), so a column can be scattered from
    the source's Arrow chunks straight into the output instead of concatenated first and gathered."""

    def __init__(self, pos: np.ndarray | None, injective: bool = True) -> None:
        self.pos = pos
        self.injective = injective
        self.missing: np.ndarray = np.zeros(0, dtype=bool) if pos is None else pos < 0
        self.any_missing = bool(self.missing.any())
        self.clipped: np.ndarray = np.zeros(0, dtype=np.int64)
        if pos is not None:
            self.clipped = np.maximum(pos, 0) if self.any_missing else pos
        self._dest: np.ndarray | None = None

    def take(self, values: np.ndarray, fill: object = np.nan) -> np.ndarray:
        """values at each output row, `fill` where the source has no row."""
        if self.pos is None:
            return values
        if not len(values):
            return np.full(len(self.pos), fill)
        out = values.take(self.clipped)
        if self.any_missing:
            out[self.missing] = fill
        return out

    def dest(self, rows: int) -> tuple[np.ndarray, bool]:
        """The output row of each of the source's `rows` rows (-1: not output), and whether every one is."""
        pos = self.pos
        assert pos is not None
        if self._dest is None:
            found = ~self.missing
            self._dest = np.full(rows, -1, dtype=np.int64)
            self._dest[pos[found]] = np.flatnonzero(found)
        return self._dest, bool(len(self._dest) == len(pos) and not self.any_missing)


Frame: TypeAlias = pd.DataFrame | pa.Table
"""A source: a frame (`build_features`) or the Arrow table a store read returns (`load_features`)."""


def _resolve(source: Any) -> Any:
    """A source, or the result of the background read (a `Future`) that `load_features` passes for it."""
    return source.result() if isinstance(source, Future) else source


def _has(src: Frame, name: str) -> bool:
    return name in (src.column_names if isinstance(src, pa.Table) else src.columns)


def _raw(src: Frame, name: str) -> np.ndarray:
    """A whole column as NumPy (an Arrow column's chunks concatenated)."""
    if isinstance(src, pa.Table):
        return np.asarray(src.column(name).to_numpy())
    return np.asarray(src[name].to_numpy())


def _floats(src: Frame, name: str, aligned: _Aligned) -> np.ndarray:
    """A numeric column at the output rows as float64 (NaN where NULL or the source has no row)."""
    if not isinstance(src, pa.Table):
        return aligned.take(src[name].to_numpy(dtype="float64"))
    col = src.column(name)
    if col.type != pa.float64():
        col = col.cast(pa.float64())
    if aligned.pos is None:
        return np.asarray(col.to_numpy())
    if not aligned.injective or not len(col):
        return aligned.take(np.asarray(col.to_numpy()))
    dest, every = aligned.dest(len(col))
    out = np.empty(len(aligned.pos))
    lo = 0
    for chunk in col.chunks:  # each chunk is viewed (no NULLs) or converted once, and placed: one copy
        hi = lo + len(chunk)
        piece = chunk.to_numpy(zero_copy_only=False)
        d = dest[lo:hi]
        if every:
            out[d] = piece
        else:
            used = d >= 0
            out[d[used]] = piece[used]
        lo = hi
    if aligned.any_missing:
        out[aligned.missing] = np.nan
    return out


def _align(base: np.ndarray, keys: np.ndarray, unique_base: bool = True) -> _Aligned:
    """Align a source with keys `keys` (unique per coin and time) to the output keys `base` (sorted; unique
    unless `unique_base` is False, as when hours look up their day)."""
    if len(keys) == len(base) and np.array_equal(keys, base):
        return _Aligned(None)
    if not len(keys):
        return _Aligned(np.full(len(base), -1, dtype=np.int64))
    order = None if _is_sorted(keys) else np.argsort(keys, kind="stable")
    ordered = keys if order is None else keys[order]
    at = np.minimum(np.searchsorted(ordered, base), len(ordered) - 1)
    hit = (ordered[at] == base) & (base >= 0)
    found = at if order is None else order[at]
    return _Aligned(np.where(hit, found, -1), injective=unique_base)


def _text(uniques: Sequence[object], codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """pandas' `str` column of uniques[codes] (missing where the code is -1), made by one Arrow take: the same
    column pandas builds from an object array of strings, without looking at a Python string per row."""
    if not all(isinstance(u, str) or u is None for u in uniques):  # not text (e.g. integer ids): as they are
        table = np.array([*uniques, None], dtype=object)
        return pd.array(table[np.where(codes < 0, len(uniques), codes)])
    values = pa.array(list(uniques), type=pa.large_string())
    picked = pc.take(values, pa.array(codes, mask=codes < 0)) if len(codes) else pa.array([], pa.large_string())
    return pd.array(picked, dtype="str")


def _strings(src: Frame, name: str, aligned: _Aligned) -> pd.api.extensions.ExtensionArray:
    """A string column at the output rows (missing where NULL or the source has no row), built from the distinct
    values (a few) rather than one Python string per row of the source."""
    if isinstance(src, pa.Table):
        encoded = pc.dictionary_encode(src.column(name).combine_chunks())
        uniques: list[object] = encoded.dictionary.to_pylist()
        codes = np.asarray(pc.fill_null(encoded.indices, -1).to_numpy(), dtype=np.int64)
    else:
        factor, found = pd.factorize(pd.Series(src[name]), use_na_sentinel=True)
        codes, uniques = np.asarray(factor, dtype=np.int64), list(found)
    if aligned.pos is None:
        return _text(uniques, codes)
    if not len(codes):
        return _text([], np.full(len(aligned.pos), -1, dtype=np.int64))
    picked = codes.take(aligned.clipped)
    if aligned.any_missing:
        picked[aligned.missing] = -1
    return _text(uniques, picked)


def drifted_weights(constituents: pd.DataFrame, closes: pd.DataFrame) -> pd.DataFrame:
    """Each day's index weights as known at that day's close: the basket chosen at the last selection date s on
    or before t, its target weights drifted with the closes (carried forward over gaps) from s to t,
    w_i,t = w_i P_i,t / P_i,s / Σ_j w_j P_j,t / P_j,s (docs/decisions.md#D73). Returns date, coin_id, weight."""
    if constituents.empty or closes.empty:
        return pd.DataFrame({"date": pd.Series(dtype="datetime64[ns]"), "coin_id": [], "weight": []})
    cons = constituents.assign(selection_date=pd.to_datetime(constituents["selection_date"]))
    codes, uniques = pd.factorize(closes["coin_id"].to_numpy())
    day = _ticks(closes["date"], "D")
    first = min(int(day.min()), int(_ticks(cons["selection_date"], "D").min()))
    last_day = pd.Timestamp(np.datetime64(int(day.max()), "D"))
    grid = pd.date_range(pd.Timestamp(np.datetime64(first, "D")), last_day, freq="D")
    prices = np.full((len(grid), len(uniques)), np.nan)  # day x coin, closes carried forward over gaps
    prices[day - first, codes] = closes["close"].to_numpy(dtype="float64")
    known = np.where(np.isnan(prices), 0, np.arange(len(grid))[:, None])
    np.maximum.accumulate(known, axis=0, out=known)
    prices = np.take_along_axis(prices, known, axis=0)
    column = pd.Index(uniques)
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


def rank_by_time(ticks: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Rank 1 = the largest cap among the rows with the same time (ties share the best rank; no cap: NaN), by one
    sort of (time, -cap) rather than a group-by per day."""
    n = len(cap)
    if not n:
        return np.empty(0)
    span = int(ticks.max() - ticks.min()) if n else 0
    if span < 1 << 16:  # days of a few decades: a stable radix sort on 16-bit times after one sort on the caps
        order = np.argsort(-cap)  # NaN caps sort last; equal caps share a rank, so their order does not matter
        order = order[np.argsort((ticks - ticks.min()).astype(np.uint16)[order], kind="stable")]
    else:
        order = np.lexsort((-cap, ticks))  # NaN caps sort last within their time
    t, c = ticks[order], cap[order]
    idx = np.arange(n)
    new_time = np.empty(n, dtype=bool)
    new_time[0] = True
    np.not_equal(t[1:], t[:-1], out=new_time[1:])
    new_value = new_time.copy()
    new_value[1:] |= c[1:] != c[:-1]
    time_start = np.maximum.accumulate(np.where(new_time, idx, 0))
    value_start = np.maximum.accumulate(np.where(new_value, idx, 0))
    rank = (value_start - time_start + 1).astype("float64")
    rank[np.isnan(c)] = np.nan
    out = np.empty(n)
    out[order] = rank
    return out


def split_signals(signals: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The `trading_signals` shape as (composite rows, rule rows with value = direction x strength)."""
    is_comp = np.asarray(signals["signal"] == "composite", dtype=bool)
    comp = signals.loc[is_comp, ["coin_id", "date", "composite_score", "action"]]
    rules = signals.loc[~is_comp, ["coin_id", "date", "signal"]].assign(
        value=signals.loc[~is_comp, "direction"].to_numpy(dtype="float64")
        * signals.loc[~is_comp, "strength"].to_numpy(dtype="float64")
    )
    return comp, rules


def wanted_columns(columns: Sequence[str] | None, horizons: Sequence[int], tf: FeatureTimeframe) -> list[str]:
    """The Kallos names of the non-key columns to build, in frame order; unknown names are an input error."""
    every = feature_columns(horizons, tf.name)[2:]
    if columns is None:
        return every
    asked = [kallos_name(c) for c in columns]
    known = {*every, *KEY, tf.key}
    unknown = [c for c, k in zip(columns, asked, strict=True) if k not in known]
    if unknown:
        raise InputError(f"unknown feature columns {unknown}; see docs/features.md", input="columns")
    return [c for c in dict.fromkeys(asked) if c not in {*KEY, tf.key}]


def assemble(
    inputs: Inputs,
    *,
    horizons: Sequence[int],
    naming: str,
    timeframe: str = "1d",
    start: dt.date | None = None,
    end: dt.date | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The feature frame: one row per bar with its day in [start, end], sorted by coin (in `coin_order`) and time."""
    tf = check_timeframe(timeframe)
    horizons = check_horizons(horizons)
    wanted = wanted_columns(columns, horizons, tf)
    need = set(wanted)
    bars = inputs.bars
    order = inputs.coin_order if inputs.coin_order is not None else sorted(pd.unique(_raw(bars, "coin_id")))
    coins = _Coins(order)
    bar_dates = _raw(bars, "date")
    all_keys = coins.keys(_raw(bars, "coin_id"), _ticks(bar_dates, tf.unit))
    sort: np.ndarray | None = None  # bars in key order (None: they already are)
    if not _is_sorted(all_keys) or (len(all_keys) and all_keys[0] < 0):
        sort = np.argsort(all_keys, kind="stable")
        sort = sort[all_keys[sort] >= 0]
        all_keys = all_keys[sort]
    day = (all_keys & _LOW) // (24 if tf.unit == "h" else 1)
    keep = np.ones(len(all_keys), dtype=bool)
    if start is not None:
        keep &= day >= np.datetime64(pd.Timestamp(start).date(), "D").astype(np.int64)
    if end is not None:
        keep &= day <= np.datetime64(pd.Timestamp(end).date(), "D").astype(np.int64)
    every = bool(keep.all())
    rows = None if every else np.flatnonzero(keep)  # output rows among the sorted bars
    if rows is None:
        picked = sort  # positions in `bars` of the output rows (None: the bars are the output rows, in order)
    else:
        picked = rows if sort is None else sort[rows]
    base = all_keys if rows is None else all_keys[rows]
    n = len(base)

    at_rows = _Aligned(picked)

    def bar_column(name: str) -> np.ndarray:
        return _floats(bars, name, at_rows) if _has(bars, name) else np.full(n, np.nan)

    code = base >> 32
    labels = list(inputs.coin_labels if inputs.coin_labels is not None else order)
    dates = bar_dates.astype("datetime64[ns]")
    out: dict[str, object] = {"coin_id": _text(labels, code), "date": dates if picked is None else dates.take(picked)}
    for name in BAR_FIELDS:
        if name in need:
            out[name] = bar_column(name)

    if "market_cap_rank" in need:
        if inputs.caps is None:  # the bars are every coin: rank among them
            cap = _floats(bars, "market_cap", _Aligned(None))
            rank = rank_by_time(_ticks(bar_dates, tf.unit), cap)
            out["market_cap_rank"] = rank if picked is None else rank.take(picked)
        else:
            caps = inputs.caps
            cap_ticks = _ticks(caps["date"], tf.unit)
            rank = rank_by_time(cap_ticks, caps["market_cap"].to_numpy(dtype="float64"))
            out["market_cap_rank"] = _align(base, coins.keys(caps["coin_id"].to_numpy(), cap_ticks)).take(rank)
    if "age_days" in need:
        first_codes = coins.codes(inputs.first_bar.index.to_numpy())
        known = first_codes >= 0
        first_of_code = np.full(len(order), np.nan)  # the hour of each output coin's first bar
        first_of_code[first_codes[known]] = _ticks(inputs.first_bar.to_numpy(), "h")[known]
        bar_hour = (base & _LOW) * (24 if tf.unit == "D" else 1)
        out["age_days"] = (bar_hour - first_of_code[code]) / 24.0

    as_of_day = (base & _LOW) // (24 if tf.unit == "h" else 1) + tf.close_days  # the daily data known at t
    day_keys = (code << 32) + as_of_day
    if need & {"index_member", "index_weight"}:
        member, weight = _index_columns(inputs, coins, day_keys, as_of_day)
        if "index_member" in need:
            out["index_member"] = member
        if "index_weight" in need:
            out["index_weight"] = weight
    if need & set(ALT_FEATURES):
        out.update({k: v for k, v in _as_of(coins, day_keys, inputs.alt).items() if k in need})
    if need & set(label_columns(horizons)):
        close = _floats(bars, "close", _Aligned(sort))
        out.update({k: v for k, v in _labels(close, all_keys, rows, horizons, tf).items() if k in need})
    # The indicators and signals last: `load_features` reads them in the background meanwhile.
    ind = _resolve(inputs.indicators)
    if need & {"ohlc_source", *OUTPUT_COLUMNS} and ind is not None:
        aligned = _align(base, coins.keys(_raw(ind, "coin_id"), _ticks(_raw(ind, "date"), tf.unit)))
        if "ohlc_source" in need:
            out["ohlc_source"] = _strings(ind, "ohlc_source", aligned)
        for name in OUTPUT_COLUMNS:
            if name in need:
                out[name] = _floats(ind, name, aligned)
    else:
        out.update({c: np.full(n, np.nan) for c in OUTPUT_COLUMNS if c in need})
        if "ohlc_source" in need:
            out["ohlc_source"] = _text([], np.full(n, -1, dtype=np.int64))

    if need & set(SIGNAL_FEATURES):
        out.update(_signal_columns(inputs, coins, base, tf, need))

    frame = pd.DataFrame(
        {column_name(c, naming) if c not in KEY else c: out[c] for c in ["coin_id", "date", *wanted]}, copy=False
    )  # one block per column: consolidating 100 columns would copy them all
    if tf.key != "date":
        frame = frame.rename(columns={"date": tf.key})
        frame[tf.key] = pd.DatetimeIndex(frame[tf.key]).tz_localize("UTC")
    return frame


def _signal_columns(
    inputs: Inputs, coins: _Coins, base: np.ndarray, tf: FeatureTimeframe, need: set[str]
) -> dict[str, object]:
    """Each rule's signed strength (0 on bars with a composite row where it did not fire, NaN where no signals were
    computed), the composite score and its action."""
    n = len(base)
    if inputs.composites is not None and inputs.rules is not None:  # read by `load_features`
        comp, rules = _resolve(inputs.composites), _resolve(inputs.rules)
    elif inputs.signals is not None:
        comp, rules = split_signals(inputs.signals)
    else:
        comp = rules = None
    out: dict[str, object] = {}
    if comp is None or rules is None or not len(comp):
        out.update({f"signal_{r}": np.full(n, np.nan) for r in RULE_IDS})
        out["composite_score"] = np.full(n, np.nan)
        out["signal_action"] = _text([], np.full(n, -1, dtype=np.int64))
        return out
    aligned = _align(base, coins.keys(_raw(comp, "coin_id"), _ticks(_raw(comp, "date"), tf.unit)))
    out["composite_score"] = _floats(comp, "composite_score", aligned)
    if "signal_action" in need:
        out["signal_action"] = _strings(comp, "action", aligned)
    rule_names = [f"signal_{r}" for r in RULE_IDS]
    if not need & set(rule_names):
        return out
    has_comp = np.ones(n, dtype=bool) if aligned.pos is None else ~aligned.missing
    zero = np.where(has_comp, 0.0, np.nan)
    keys = coins.keys(rules["coin_id"].to_numpy(), _ticks(rules["date"], tf.unit))
    if n:  # each rule row's output row (a scatter: rule rows are few, output rows many)
        at = np.minimum(np.searchsorted(base, keys), n - 1)
        hit = (keys >= 0) & (base[at] == keys) & has_comp[at]
    else:
        at, hit = np.zeros(len(keys), dtype=np.int64), np.zeros(len(keys), dtype=bool)
    values = rules["value"].to_numpy(dtype="float64")
    names = np.asarray(rules["signal"].to_numpy(dtype=object))
    for rule, name in zip(RULE_IDS, rule_names, strict=True):
        col = zero.copy()
        fired = hit & (names == rule)
        col[at[fired]] = values[fired]
        out[name] = col
    return out


def _index_columns(
    inputs: Inputs, coins: _Coins, day_keys: np.ndarray, as_of_day: np.ndarray
) -> tuple[pd.api.extensions.ExtensionArray, np.ndarray]:
    """`index_member` and `index_weight` of the daily index state of each row's as-of day (docs/decisions.md#D73,
    #D79): the basket chosen on or before that day, drifted with daily closes to it; the last state known when
    the daily closes end earlier."""
    n = len(day_keys)
    member = pd.array(np.full(n, pd.NA), dtype="boolean")
    weight = np.full(n, np.nan)
    cons = inputs.constituents
    if cons is None or inputs.member_closes is None or cons.empty:
        return member, weight
    drift = drifted_weights(cons, inputs.member_closes)
    first_selection = _ticks(pd.Series([pd.Timestamp(cons["selection_date"].min())]), "D")[0]
    started = as_of_day >= first_selection
    if len(drift):
        last_day = _ticks(drift["date"], "D").max()
        code = day_keys >> 32
        keys = np.where(code >= 0, (code << 32) + np.minimum(as_of_day, last_day), -1)
        aligned = _align(keys, coins.keys(drift["coin_id"].to_numpy(), _ticks(drift["date"], "D")), False)
        found = np.ones(n, dtype=bool) if aligned.pos is None else ~aligned.missing
        weight = np.where(started, 0.0, np.nan)
        weight[found] = aligned.take(drift["weight"].to_numpy(dtype="float64"))[found]
    else:
        found = np.zeros(n, dtype=bool)
        weight = np.where(started, 0.0, np.nan)
    member = pd.array(np.where(started, found, False), dtype="boolean")
    member[~started] = pd.NA
    return member, weight


def _as_of(coins: _Coins, day_keys: np.ndarray, alt: pd.DataFrame | None) -> dict[str, object]:
    """The last snapshot dated on or before each row's as-of day, per coin (NaN before a coin's first snapshot)."""
    n = len(day_keys)
    if alt is None or alt.empty or not n:
        out: dict[str, object] = {"alt_as_of": np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")}
        out.update({f"alt_{c}": np.full(n, np.nan) for c in ALT_DATA_COLUMNS})
        return out
    alt = alt.reindex(columns=["coin_id", "date", *ALT_DATA_COLUMNS])
    alt_keys = coins.keys(alt["coin_id"].to_numpy(), _ticks(alt["date"], "D"))
    order = None if _is_sorted(alt_keys) else np.argsort(alt_keys, kind="stable")
    if order is not None:
        alt_keys = alt_keys[order]
    pos = np.searchsorted(alt_keys, day_keys, side="right") - 1  # the last snapshot key <= (coin, day)
    same = (pos >= 0) & (day_keys >= 0) & (alt_keys[np.maximum(pos, 0)] >> 32 == day_keys >> 32)
    pos = np.where(same, pos if order is None else order[np.maximum(pos, 0)], -1)
    aligned = _Aligned(pos, injective=False)
    as_of = pd.to_datetime(alt["date"]).to_numpy(dtype="datetime64[ns]")
    out = {"alt_as_of": np.where(pos >= 0, as_of[aligned.clipped], np.datetime64("NaT"))}
    out.update({f"alt_{c}": aligned.take(alt[c].to_numpy(dtype="float64")) for c in ALT_DATA_COLUMNS})
    return out


def _labels(
    close: np.ndarray,
    all_keys: np.ndarray,
    rows: np.ndarray | None,
    horizons: Sequence[int],
    tf: FeatureTimeframe,
) -> dict[str, np.ndarray]:
    """close[t+h] / close[t] − 1 and its log, NaN where the bar h bars later is not a stored final bar.

    `close` and `all_keys` are every bar in key order; the bar h bars later is usually h rows further (no hole),
    which is checked for every row at once, and looked up by a search only where it is not."""
    total = len(all_keys)
    base = all_keys if rows is None else all_keys[rows]
    now = close if rows is None else close.take(rows)
    at_row = np.arange(total) if rows is None else rows
    n = len(base)
    ratios = {}
    for h in horizons:
        target = base + h * tf.step
        guess = np.minimum(at_row + h, max(total - 1, 0))
        ok = all_keys[guess] == target if total else np.zeros(n, dtype=bool)
        pos = np.where(ok, guess, -1)
        miss = np.flatnonzero(~ok)
        if len(miss) and total:
            at = np.minimum(np.searchsorted(all_keys, target[miss]), total - 1)
            pos[miss] = np.where(all_keys[at] == target[miss], at, -1)
        ratios[h] = _Aligned(pos).take(close) / now
    out = {f"target_return_{h}": r - 1.0 for h, r in ratios.items()}
    out.update({f"target_log_return_{h}": np.log(r) for h, r in ratios.items()})
    return out
