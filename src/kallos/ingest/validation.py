"""Pure checks for daily market rows: frames in, (good rows, quality events) out. No I/O, no clock.

Every deviation becomes one event (decisions.md #7) with an action and a reason code, so nothing is silently
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
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

EVENT_COLUMNS = ["coin_id", "date", "source", "field", "reason", "action", "raw", "detail"]
GOOD_COLUMNS = ["coin_id", "date", "snapped_at", "close", "market_cap", "volume"]
OHLC = ("open", "high", "low")

QUARANTINED = "quarantined"
NULLED = "nulled"
FLOORED = "floored"
DEDUPLICATED = "deduplicated"
FLAGGED = "flagged"

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
    if frame.empty:
        keep = GOOD_COLUMNS + ([*OHLC, "ohlc_source"] if has_ohlc else [])
        empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in keep})
        empty["coin_id"] = empty["coin_id"].astype(object)
        empty["date"] = empty["date"].astype("datetime64[ns]")
        empty["snapped_at"] = empty["snapped_at"].astype("datetime64[ns, UTC]")
        return empty, empty_events()
    events: list[dict[str, Any]] = []
    cols = ["snapped_at", "close", "market_cap", "volume", *(OHLC if has_ohlc else ())]
    work = pd.DataFrame(
        {c: frame[c] if c in frame.columns else pd.Series(np.nan, index=frame.index) for c in cols}
    )
    work = work.reset_index(drop=True)
    original = work.copy()
    work["_pos"] = np.arange(len(work))
    raw_cache: dict[int, str] = {}

    def raw_of(pos: int) -> str:
        if pos not in raw_cache:
            raw_cache[pos] = _raw(original.iloc[pos].to_dict())
        return raw_cache[pos]

    def event(date: Any, field: str, reason: str, action: str, pos: int | None, detail: str = "") -> None:
        events.append(
            {
                "coin_id": coin_id,
                "date": pd.Timestamp(date).normalize(),
                "source": source,
                "field": field,
                "reason": reason,
                "action": action,
                "raw": raw_of(pos) if pos is not None else None,
                "detail": detail,
            }
        )

    def emit(mask: Any, field: str, reason: str, action: str, detail: Any = None) -> None:
        """One event per row of `work` where `mask` holds; `detail(i)` may describe row position i."""
        idx = np.flatnonzero(np.asarray(mask, dtype=bool))
        if idx.size == 0:
            return
        dates = work["date"].to_numpy()[idx]
        positions = work["_pos"].to_numpy()[idx]
        for j, i in enumerate(idx):
            event(dates[j], field, reason, action, int(positions[j]), detail(i) if detail else "")

    for name in ("close", "market_cap", "volume", *(OHLC if has_ohlc else ())):
        work[name] = pd.to_numeric(work[name], errors="coerce").astype("float64")

    # 1. Timestamps: unreadable -> quarantined; off-midnight -> floored to the UTC date.
    ts = to_utc_timestamps(work["snapped_at"])
    for i in np.flatnonzero(ts.isna().to_numpy()):
        event(UNREADABLE_DATE, "row", "unparseable_timestamp", QUARANTINED, int(i))
    work["snapped_at"] = ts
    work = work[ts.notna()].copy()
    floor = work["snapped_at"].dt.floor("D")
    work["date"] = floor.dt.tz_localize(None).astype("datetime64[ns]")
    off = (work["snapped_at"] != floor).to_numpy()
    stamps = work["snapped_at"]
    emit(off, "date", "off_midnight", FLOORED, lambda i: f"snapped at {stamps.iloc[i].isoformat()}")

    # 2. Chronological order (kept stable so "last row wins" keeps its meaning for equal times).
    order = np.argsort(work["snapped_at"].to_numpy(), kind="stable")
    if (np.diff(order) < 0).any():
        emit(work["snapped_at"] < work["snapped_at"].cummax(), "row", "out_of_order", FLAGGED)
        work = work.iloc[order]

    # 3. Critical values: a row without a usable close is quarantined (the others of the batch still load).
    close = work["close"]
    bad_null = close.isna() & ~np.isinf(close)
    bad_inf = np.isinf(close)
    bad_nonpos = close.notna() & ~bad_inf & (close <= 0)
    for mask, reason in (
        (bad_null, "null_close"),
        (bad_inf, "non_finite_close"),
        (bad_nonpos, "non_positive_close"),
    ):
        emit(mask, "row", reason, QUARANTINED)
    quarantined_days = set(work.loc[bad_null | bad_inf | bad_nonpos, "date"])
    work = work[~(bad_null | bad_inf | bad_nonpos)].copy()

    # 4. Duplicates by date: the last row wins, each dropped row is an event.
    dup = work["date"].duplicated(keep="last")
    emit(dup, "row", "duplicate_date", DEDUPLICATED)
    work = work[~dup].copy()

    # 5. Market cap: 0, NaN, negative or infinite are unknown -> NULL (checked only when the source has
    # the column).
    mc = work["market_cap"]
    for mask, reason in (
        ()
        if "market_cap" not in frame.columns
        else (
            (mc == 0, "zero_market_cap"),
            (mc.isna(), "missing_market_cap"),
            (mc < 0, "negative_market_cap"),
            (np.isinf(mc), "non_finite_market_cap"),
        )
    ):
        emit(mask, "market_cap", reason, NULLED)
    work.loc[(mc <= 0) | np.isinf(mc), "market_cap"] = np.nan

    # 6. Volume: negative/infinite -> NULL; zero or missing -> kept, flagged.
    vol = work["volume"]
    for mask, reason, action in (
        ()
        if "volume" not in frame.columns
        else (
            (vol < 0, "negative_volume", NULLED),
            (np.isinf(vol), "non_finite_volume", NULLED),
            (vol == 0, "zero_volume", FLAGGED),
            (vol.isna(), "missing_volume", FLAGGED),
        )
    ):
        emit(mask, "volume", reason, action)
    work.loc[(vol < 0) | np.isinf(vol), "volume"] = np.nan

    # 7. Candles: open/high/low must bracket the chart close; a broken candle is nulled, the close kept.
    if has_ohlc:
        o, h, lo, c = work["open"], work["high"], work["low"], work["close"]
        given = o.notna() | h.notna() | lo.notna()
        incomplete = given & (o.isna() | h.isna() | lo.isna() | np.isinf(o) | np.isinf(h) | np.isinf(lo))
        nonpos = given & ~incomplete & ((o <= 0) | (h <= 0) | (lo <= 0))
        tol = ohlc_rtol * c.abs()
        rel = (
            given
            & ~incomplete
            & ~nonpos
            & ((h < np.maximum(o, c) - tol) | (lo > np.minimum(o, c) + tol) | (h < lo - tol))
        )

        def candle(i: int) -> str:
            r = work.iloc[i]
            return f"open={r['open']} high={r['high']} low={r['low']} close={r['close']}"

        for mask, reason in (
            (incomplete, "incomplete_ohlc"),
            (nonpos, "non_positive_ohlc"),
            (rel, "ohlc_relation"),
        ):
            emit(mask, "ohlc", reason, NULLED, candle)
        broken = incomplete | nonpos | rel
        work.loc[broken, list(OHLC)] = np.nan
        work["ohlc_source"] = pd.Series(
            ["candles" if ok else None for ok in work["open"].notna()], index=work.index, dtype=object
        )

    # 8. Suspicious moves, pegs and missing days, judged in date order across the batch boundary.
    prev = np.concatenate(
        [[np.nan if prev_close is None else float(prev_close)], work["close"].to_numpy()[:-1]]
    )
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):  # a 1e-300 close makes inf: a jump
        ratio = work["close"].to_numpy() / prev
    jump = (ratio > jump_factor) | (ratio < 1.0 / jump_factor)
    emit(
        jump,
        "close",
        "price_jump",
        FLAGGED,
        lambda i: f"x{ratio[i]:.4g} vs the previous close {prev[i]:.10g}",
    )
    if stablecoin:
        closes = work["close"].to_numpy()
        emit(
            np.abs(closes - 1.0) > peg_tolerance,
            "close",
            "off_peg",
            FLAGGED,
            lambda i: f"close {closes[i]:.6g} is more than {peg_tolerance:.0%} from 1",
        )
    known = {pd.Timestamp(d).normalize() for d in known_missing} | quarantined_days
    for day in missing_days(work["date"], prev_date=prev_date):
        if day not in known:
            event(day, "row", "missing_day", FLAGGED, None, "no row for this calendar day at the source")

    good = work.drop(columns=["_pos"]).sort_values("date").reset_index(drop=True)
    good.insert(0, "coin_id", coin_id)
    keep = GOOD_COLUMNS + ([*OHLC, "ohlc_source"] if has_ohlc else [])
    good = good[keep]
    events_frame = pd.DataFrame(events, columns=EVENT_COLUMNS) if events else empty_events()
    if not events_frame.empty:
        events_frame = events_frame.drop_duplicates(
            subset=["coin_id", "date", "source", "field", "reason"], keep="last"
        )
        events_frame = events_frame.sort_values(["date", "field", "reason"]).reset_index(drop=True)
    return good, events_frame


def missing_days(dates: pd.Series | Iterable[Any], *, prev_date: Any = None) -> list[pd.Timestamp]:
    """Calendar days absent between consecutive dates (and after `prev_date`, the last stored day before)."""
    days = sorted({pd.Timestamp(d).normalize() for d in dates})
    if prev_date is not None and not pd.isna(prev_date):
        p = pd.Timestamp(prev_date).normalize()
        days = [p, *[d for d in days if d > p]]
    out: list[pd.Timestamp] = []
    for a, b in zip(days, days[1:], strict=False):
        gap = (b - a).days
        if gap > 1:
            out.extend(a + pd.Timedelta(days=k) for k in range(1, gap))
    return out


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
    """:func:`validate_market_rows` for a sweep of one row per coin (`coin_id` column), vectorized.

    Same rules and reason codes for the rules that apply to one row (a sweep has no duplicates, order or gaps
    within a coin): quarantine of unusable closes, NULL market caps, volume checks, floored timestamps, jumps
    against each coin's previous stored close, stablecoin pegs. Tests check it agrees with the per-coin
    function.
    """
    if frame.empty:
        return validate_market_rows(
            frame.drop(columns=["coin_id"], errors="ignore"), coin_id="", source=source
        )
    work = frame.reset_index(drop=True).copy()
    original = work.copy()
    for c in ("close", "market_cap", "volume"):
        work[c] = pd.to_numeric(work[c], errors="coerce").astype("float64") if c in work else np.nan
    ts = to_utc_timestamps(work["snapped_at"])
    floor = ts.dt.floor("D")
    work["snapped_at"] = ts
    work["date"] = floor.dt.tz_localize(None).astype("datetime64[ns]")
    coins = work["coin_id"].to_numpy()
    dates = work["date"].to_numpy()
    raw_rows = original.drop(columns=["coin_id"])
    events: list[dict[str, Any]] = []

    def emit(mask: Any, field: str, reason: str, action: str, detail: Any = None) -> None:
        for i in np.flatnonzero(np.asarray(mask, dtype=bool)):
            events.append(
                {
                    "coin_id": coins[i],
                    "date": UNREADABLE_DATE if pd.isna(dates[i]) else pd.Timestamp(dates[i]),
                    "source": source,
                    "field": field,
                    "reason": reason,
                    "action": action,
                    "raw": _raw(raw_rows.iloc[i].to_dict()),
                    "detail": detail(i) if detail else "",
                }
            )

    close, mc, vol = work["close"], work["market_cap"], work["volume"]
    unreadable = ts.isna()
    emit(unreadable, "row", "unparseable_timestamp", QUARANTINED)
    emit(
        ~unreadable & (ts != floor),
        "date",
        "off_midnight",
        FLOORED,
        lambda i: f"snapped at {ts.iloc[i].isoformat()}",
    )
    inf = np.isinf(close)
    bad = {
        "null_close": close.isna() & ~inf,
        "non_finite_close": inf,
        "non_positive_close": close.notna() & ~inf & (close <= 0),
    }
    for reason, mask in bad.items():
        emit(mask & ~unreadable, "row", reason, QUARANTINED)
    keep = ~unreadable & ~(bad["null_close"] | bad["non_finite_close"] | bad["non_positive_close"])
    for mask, reason in (
        (mc == 0, "zero_market_cap"),
        (mc.isna(), "missing_market_cap"),
        (mc < 0, "negative_market_cap"),
        (np.isinf(mc), "non_finite_market_cap"),
    ):
        emit(mask & keep, "market_cap", reason, NULLED)
    for mask, reason, action in (
        (vol < 0, "negative_volume", NULLED),
        (np.isinf(vol), "non_finite_volume", NULLED),
        (vol == 0, "zero_volume", FLAGGED),
        (vol.isna(), "missing_volume", FLAGGED),
    ):
        emit(mask & keep, "volume", reason, action)
    prev = work["coin_id"].map(prev_close or {}).astype("float64").to_numpy()
    ratio = close.to_numpy() / prev
    jump = (ratio > jump_factor) | (ratio < 1.0 / jump_factor)
    emit(
        jump & keep,
        "close",
        "price_jump",
        FLAGGED,
        lambda i: f"x{ratio[i]:.4g} vs the previous close {prev[i]:.10g}",
    )
    stable = work["coin_id"].isin(set(stablecoins)).to_numpy()
    closes = close.to_numpy()
    emit(
        stable & (np.abs(closes - 1.0) > peg_tolerance) & keep,
        "close",
        "off_peg",
        FLAGGED,
        lambda i: f"close {closes[i]:.6g} is more than {peg_tolerance:.0%} from 1",
    )
    good = work[keep].copy()
    good.loc[(good["market_cap"] <= 0) | np.isinf(good["market_cap"]), "market_cap"] = np.nan
    good.loc[(good["volume"] < 0) | np.isinf(good["volume"]), "volume"] = np.nan
    good = good[GOOD_COLUMNS].reset_index(drop=True)
    ev = pd.DataFrame(events, columns=EVENT_COLUMNS) if events else empty_events()
    return good, ev
