"""Pure checks for daily market rows: frames in, (good rows, quality events) out. No I/O, no clock.

Every deviation becomes one event (docs/decisions.md#D7) with an action and a reason code, so nothing is silently
changed or dropped::

    quarantined   row not loaded         unparseable_timestamp, null_close, non_positive_close, non_finite_close
    nulled        value stored as NULL   zero_market_cap, missing_market_cap, negative_market_cap,
                                         non_finite_market_cap, negative_volume, non_finite_volume,
                                         ohlc_relation, non_positive_ohlc, incomplete_ohlc
    floored       timestamp -> its date  off_midnight
    deduplicated  earlier row dropped    duplicate_date (the last row of the batch wins)
    flagged       kept but suspicious    price_jump (one-day move above x3 or below x1/3), off_peg (stablecoin
                                         more than 5% from 1), zero_volume, missing_volume, missing_day (a
                                         calendar day absent between two rows), out_of_order

Events are keyed by (coin, date, source, field, reason); their `raw` is the input row as JSON so a rerun writes the
same event again (idempotent upsert) and a reader can see what arrived.

The rules are declared once, in :mod:`kallos.ingest.rules` (docs/decisions.md#D44). The two validations here apply
that table; they differ only where their input does:

    validate_market_rows  one coin's batch: sorts it (out_of_order), drops duplicate dates (the last row wins),
                          checks candles when the batch has them, judges jumps against the previous row and
                          lists missing calendar days; events sorted and one per (date, field, reason)
    validate_sweep        one row per coin (a /coins/markets sweep): no order, duplicates, gaps or candles;
                          jumps against each coin's stored previous close; events in rule order
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Collection, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from kallos.ingest.rules import (
    DEDUPLICATED,
    FLAGGED,
    FLOORED,
    MISSING_DAY,
    NULLED,
    OHLC,
    QUARANTINED,
    SERIES_RULES,
    EventKind,
    Limits,
    Rule,
    rules_for,
)

__all__ = [
    "DEDUPLICATED",
    "EVENT_COLUMNS",
    "FLAGGED",
    "FLOORED",
    "GOOD_COLUMNS",
    "NULLED",
    "OHLC",
    "QUARANTINED",
    "UNREADABLE_DATE",
    "empty_events",
    "missing_days",
    "summarize_events",
    "to_utc_timestamps",
    "validate_market_rows",
    "validate_sweep",
]

EVENT_COLUMNS = ["coin_id", "date", "source", "field", "reason", "action", "raw", "detail"]
GOOD_COLUMNS = ["coin_id", "date", "snapped_at", "close", "market_cap", "volume"]


# Sentinel day for rows whose timestamp cannot be read (the event table needs a date; it is never a real day).
UNREADABLE_DATE = pd.Timestamp("1970-01-01")


def empty_events() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype="datetime64[ns]" if c == "date" else object) for c in EVENT_COLUMNS}
    )


def _raw(row: dict[str, Any]) -> str:
    def clean(v: Any) -> Any:
        if isinstance(v, pd.Timestamp | dt.datetime):
            return v.isoformat()
        if isinstance(v, dt.date):
            return v.isoformat()
        if isinstance(v, float | np.floating):
            f = float(v)
            return None if math.isnan(f) else (str(f) if math.isinf(f) else f)
        if isinstance(v, np.integer):
            return int(v)
        return v

    return json.dumps({k: clean(v) for k, v in row.items()}, sort_keys=True, default=str)


def to_utc_timestamps(values: pd.Series) -> pd.Series:
    """Timestamps of any common form (aware/naive datetimes, ISO or CSV text, epoch ms) as tz-aware UTC; NaT
    if unreadable.
    """
    if pd.api.types.is_numeric_dtype(values):
        return pd.to_datetime(values, unit="ms", utc=True, errors="coerce")
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.tz_localize("UTC")
    text = values.astype("string").str.replace(r"\s*UTC$", "+00:00", regex=True)
    return pd.to_datetime(text, utc=True, errors="coerce", format="mixed")


class _EventLog:
    """The events of one validation, gathered as column arrays; each input row's `raw` JSON is made once, and only
    for rows that have an event."""

    def __init__(self, source: str, raw_rows: pd.DataFrame) -> None:
        self.source = source
        self.raw_rows = raw_rows
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, rows: pd.DataFrame, kind: Rule | EventKind, hits: np.ndarray, details: list[str] | None) -> None:
        dates = rows["date"].to_numpy()[hits]
        self._append(
            kind,
            rows["coin_id"].to_numpy()[hits],
            np.where(np.isnat(dates), UNREADABLE_DATE.to_datetime64(), dates),
            rows["_pos"].to_numpy()[hits],
            details if details is not None else [""] * hits.size,
        )

    def add_days(self, coin_id: str, days: pd.DatetimeIndex, kind: EventKind, detail: str) -> None:
        """Events about days without a row (so with no `raw`)."""
        n = len(days)
        if n:
            coins = np.full(n, coin_id, dtype=object)
            self._append(kind, coins, days.to_numpy(dtype="datetime64[ns]"), np.full(n, -1), [detail] * n)

    def _append(
        self, kind: Rule | EventKind, coins: np.ndarray, dates: np.ndarray, positions: np.ndarray, details: list[str]
    ) -> None:
        n = positions.size
        self.parts.append(
            {
                "coin_id": coins,
                "date": dates,
                "field": np.full(n, kind.field, dtype=object),
                "reason": np.full(n, kind.reason, dtype=object),
                "action": np.full(n, kind.action, dtype=object),
                "_pos": positions,
                "detail": np.array(details, dtype=object),
            }
        )

    def judge(self, rows: pd.DataFrame, rule: Rule, limits: Limits) -> npt.NDArray[np.bool_]:
        """Where `rule` holds on `rows`, with one event per hit."""
        mask = np.asarray(rule.check(rows, limits), dtype=bool)
        hits = np.flatnonzero(mask)
        if hits.size:
            self.add(rows, rule, hits, rule.detail(rows, limits, hits) if rule.detail else None)
        return mask

    def frame(self) -> pd.DataFrame:
        if not self.parts:
            return empty_events()
        columns = {name: np.concatenate([p[name] for p in self.parts]) for name in self.parts[0]}
        positions = columns.pop("_pos")
        rows = np.unique(positions[positions >= 0])
        # One take for all rows with an event (not a Series per row); to_numpy() gives each row the values
        # (and the common dtype) that `iloc[row]` gives it, so `raw` is the same text either way.
        names = list(self.raw_rows.columns)
        values = self.raw_rows.iloc[rows].to_numpy()
        raw = {int(p): _raw(dict(zip(names, row, strict=True))) for p, row in zip(rows, values, strict=True)}
        columns["raw"] = np.array([raw.get(int(p)) for p in positions], dtype=object)
        columns["source"] = np.full(positions.size, self.source, dtype=object)
        return pd.DataFrame(columns)[EVENT_COLUMNS]


def _prepare(original: pd.DataFrame, coin_ids: Any, columns: Collection[str]) -> pd.DataFrame:
    """The rows the rules read: `coin_id`, `_pos` (the row of `original`), `snapped_at` as UTC timestamps (NaT if
    unreadable), `date` (its naive UTC day) and the value columns as float64 (NaN where absent or unreadable)."""
    ts = to_utc_timestamps(original["snapped_at"])
    # The UTC day: NumPy floors datetimes when it converts them to days (NaT stays NaT).
    day = ts.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]").astype("datetime64[ns]")
    data: dict[str, Any] = {
        "coin_id": coin_ids,
        "_pos": np.arange(len(original)),
        "snapped_at": ts,
        "date": pd.Series(day, index=original.index),
    }
    for name in ("close", "market_cap", "volume", *(OHLC if all(c in columns for c in OHLC) else ())):
        data[name] = pd.to_numeric(original[name], errors="coerce").astype("float64") if name in original else np.nan
    return pd.DataFrame(data, index=original.index)  # one frame, not a column inserted at a time


def _apply_stage(
    rows: pd.DataFrame, stage: str, columns: Collection[str], limits: Limits, log: _EventLog
) -> tuple[pd.DataFrame, npt.NDArray[np.bool_]]:
    """Judge every rule of `stage` on the same rows, then act: quarantined rows leave, nulled values become NaN.

    Returns the remaining rows and which of the given rows were quarantined."""
    quarantined = np.zeros(len(rows), dtype=bool)
    nulled: dict[str, npt.NDArray[np.bool_]] = {}
    for rule in rules_for(stage, columns):
        mask = log.judge(rows, rule, limits)
        if rule.action == QUARANTINED:
            quarantined |= mask
        for name in rule.nulls:
            nulled[name] = nulled[name] | mask if name in nulled else mask
    for name, mask in nulled.items():
        if mask.any():
            rows[name] = np.where(mask, np.nan, rows[name].to_numpy(dtype="float64"))
    return (rows[~quarantined].copy() if quarantined.any() else rows), quarantined


def validate_market_rows(
    frame: pd.DataFrame,
    *,
    coin_id: str,
    source: str,
    prev_close: float | None = None,
    prev_date: dt.date | pd.Timestamp | None = None,
    stablecoin: bool = False,
    jump_factor: float = 3.0,
    peg_tolerance: float = 0.05,
    ohlc_rtol: float = 1e-9,
    known_missing: Iterable[dt.date | pd.Timestamp] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check one coin's batch of daily rows; return the loadable rows (one per date) and the events.

    `frame` has `snapped_at` (the real timestamp of the close, any readable form), `close`, and optionally
    `market_cap`, `volume`, `open`, `high`, `low` (a candle: checked against the *chart* close, whose value is
    kept). `prev_close`/`prev_date` are the stored row just before the batch, so jumps and missing days are seen
    across batch boundaries and a batch split differently yields the same events. `known_missing` days (already
    confirmed missing) are not flagged again.

    The good frame has `coin_id, date, snapped_at, close, market_cap, volume` (+ `open, high, low, ohlc_source`
    when candles were given), sorted by date; `date` is a naive midnight datetime64.
    """
    has_ohlc = all(c in frame.columns for c in OHLC)
    keep = GOOD_COLUMNS + ([*OHLC, "ohlc_source"] if has_ohlc else [])
    if frame.empty:
        empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in keep})
        empty["coin_id"] = empty["coin_id"].astype(object)
        empty["date"] = empty["date"].astype("datetime64[ns]")
        empty["snapped_at"] = empty["snapped_at"].astype("datetime64[ns, UTC]")
        return empty, empty_events()
    limits = Limits(jump_factor=jump_factor, peg_tolerance=peg_tolerance, ohlc_rtol=ohlc_rtol)
    columns = set(frame.columns)
    raw_columns = ["snapped_at", "close", "market_cap", "volume", *(OHLC if has_ohlc else ())]
    original = pd.DataFrame(
        {c: frame[c] if c in columns else pd.Series(np.nan, index=frame.index) for c in raw_columns}
    ).reset_index(drop=True)
    log = _EventLog(source, original)
    rows = _prepare(original, coin_id, columns)

    rows, _ = _apply_stage(rows, "timestamp", columns, limits, log)
    # A series has an order: sort it by time (stable, so "the last row wins" keeps its meaning for equal times).
    if log.judge(rows, SERIES_RULES["out_of_order"], limits).any():
        rows = rows.iloc[np.argsort(rows["snapped_at"].to_numpy(), kind="stable")]
    before = rows
    rows, quarantined = _apply_stage(rows, "close", columns, limits, log)
    quarantined_days = before["date"].to_numpy()[quarantined]
    # A series can repeat a date: the last row wins.
    rows = rows[~log.judge(rows, SERIES_RULES["duplicate_date"], limits)].copy()
    # A jump is judged against the row before (the stored one for the first row of the batch).
    closes = rows["close"].to_numpy()
    rows["prev_close"] = np.concatenate([[np.nan if prev_close is None else float(prev_close)], closes])[:-1]
    rows["stablecoin"] = stablecoin
    rows, _ = _apply_stage(rows, "values", columns, limits, log)
    if has_ohlc:
        ohlc_source = np.full(len(rows), None, dtype=object)
        ohlc_source[rows["open"].notna().to_numpy()] = "candles"
        rows["ohlc_source"] = pd.Series(ohlc_source, index=rows.index, dtype=object)
    # A series can miss calendar days (those already known, or whose rows were quarantined, are not news).
    known = _day_index(known_missing).append(pd.DatetimeIndex(quarantined_days))
    days = _missing_day_index(rows["date"], prev_date).difference(known)
    log.add_days(coin_id, days, MISSING_DAY, "no row for this calendar day at the source")

    # One row per date remains; the rows are usually in date order already (a sort would give the same order).
    good = (rows if rows["date"].is_monotonic_increasing else rows.sort_values("date"))[keep].reset_index(drop=True)
    events = log.frame()
    if not events.empty:  # the store keeps one event per (coin, date, source, field, reason): the last
        events = events.drop_duplicates(subset=["coin_id", "date", "source", "field", "reason"], keep="last")
        events = events.sort_values(["date", "field", "reason"]).reset_index(drop=True)
    return good, events


def missing_days(dates: pd.Series | Iterable[Any], *, prev_date: Any = None) -> list[pd.Timestamp]:
    """Calendar days absent between consecutive dates (and after `prev_date`, the last stored day before)."""
    return list(_missing_day_index(dates, prev_date))


def _day_index(values: pd.Series | Iterable[Any]) -> pd.DatetimeIndex:
    """`values` (dates, datetimes, timestamps) as their days, in one vectorised conversion; unreadable ones dropped."""
    if not isinstance(values, pd.Series | pd.Index | np.ndarray):
        values = list(values)
    days = pd.DatetimeIndex(pd.to_datetime(values))
    return days[days.notna()].normalize()


def _missing_day_index(dates: pd.Series | Iterable[Any], prev_date: Any) -> pd.DatetimeIndex:
    """:func:`missing_days` as an index: the calendar from the first day (or `prev_date`) to the last, minus the
    days present (whole-array operations: a coin's history has thousands of days)."""
    days = _day_index(dates)
    if prev_date is not None and not pd.isna(prev_date):
        p = pd.Timestamp(prev_date).normalize()
        days = days[days > p].append(pd.DatetimeIndex([p]))
    days = days.unique().sort_values()
    if len(days) < 2:
        return days[:0]
    if days.tz is None:  # whole days of equal length: the gaps between consecutive days, in integers
        step = int(np.timedelta64(1, "D").astype(f"timedelta64[{days.unit}]").astype(np.int64))
        values = days.asi8
        gap = np.flatnonzero(np.diff(values) > step)
        absent = [np.arange(values[i] + step, values[i + 1], step) for i in gap]
        out = np.concatenate(absent) if absent else np.empty(0, dtype=np.int64)
        return pd.DatetimeIndex(out.view(f"datetime64[{days.unit}]"))
    return pd.date_range(days[0], days[-1], freq="D", unit=days.unit).difference(days)


def summarize_events(events: pd.DataFrame) -> dict[str, int]:
    """Counts per action (for logs and run counts)."""
    if events.empty:
        return {}
    return {str(k): int(v) for k, v in events["action"].value_counts().sort_index().items()}


def validate_sweep(
    frame: pd.DataFrame,
    *,
    source: str,
    prev_close: dict[str, float] | None = None,
    stablecoins: Iterable[str] = (),
    jump_factor: float = 3.0,
    peg_tolerance: float = 0.05,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`validate_market_rows` for a sweep of one row per coin (`coin_id` column), in one pass.

    The same rule table: quarantine of unusable timestamps and closes, NULL market caps, volume checks, floored
    timestamps, jumps against each coin's previous stored close, stablecoin pegs. A sweep has no order,
    duplicates, gaps or candles within a coin, so the series rules do not apply. Good rows keep the input order.
    """
    if frame.empty:
        return validate_market_rows(frame.drop(columns=["coin_id"], errors="ignore"), coin_id="", source=source)
    limits = Limits(jump_factor=jump_factor, peg_tolerance=peg_tolerance)
    columns = set(frame.columns) - set(OHLC)  # a markets row carries no candle
    original = frame.reset_index(drop=True)
    log = _EventLog(source, original.drop(columns=["coin_id"]))
    rows = _prepare(original, original["coin_id"].to_numpy(), columns)

    rows, _ = _apply_stage(rows, "timestamp", columns, limits, log)
    rows, _ = _apply_stage(rows, "close", columns, limits, log)
    rows["prev_close"] = rows["coin_id"].map(prev_close or {}).astype("float64")
    rows["stablecoin"] = rows["coin_id"].isin(set(stablecoins))
    rows, _ = _apply_stage(rows, "values", columns, limits, log)
    return rows[GOOD_COLUMNS].reset_index(drop=True), log.frame()
