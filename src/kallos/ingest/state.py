"""What ingestion reads from and writes to the store: watermarks, dirty marks and one coin's bars, atomically.

A coin's market write (bars, quality events, snapshots, its watermark and the downstream dirty marks of
docs/decisions.md#D33) is one transaction, so a run killed at any point leaves each coin either as before or fully
written, and the next run starts where the watermark says.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kallos.store import Store

CHART = "market_chart"
OHLC = "ohlc"
DOWNSTREAM = ("indicators", "signals", "weekly_bars")  # weekly bars: docs/decisions.md#D84
BAR_VALUE_COLUMNS = (
    "close",
    "market_cap",
    "volume",
    "snapped_at",
    "close_source",
    "open",
    "high",
    "low",
    "ohlc_source",
)


@dataclass
class Watermark:
    coin_id: str
    series: str
    first_date: dt.date | None = None
    last_date: dt.date | None = None
    missing: set[dt.date] = field(default_factory=set)
    state: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "coin_id": self.coin_id,
            "series": self.series,
            "first_date": self.first_date,
            "last_date": self.last_date,
            "missing_dates": json.dumps(sorted(d.isoformat() for d in self.missing)),
            "state": json.dumps(self.state, sort_keys=True, default=str),
        }


def _date(v: Any) -> dt.date | None:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    return pd.Timestamp(v).date()


def read_watermarks(store: Store, series: str, coins: Sequence[str] | None = None) -> dict[str, Watermark]:
    frame = store.query(
        "SELECT c.coingecko_id AS coin_id, w.first_date, w.last_date, w.missing_dates, w.state "
        "FROM ingestion_watermarks w JOIN coins c ON c.coin_id = w.coin_id WHERE w.series = :s",
        {"s": series},
    )
    wanted = set(coins) if coins is not None else None
    out: dict[str, Watermark] = {}
    for r in frame.itertuples(index=False):
        if wanted is not None and r.coin_id not in wanted:
            continue
        missing_text = r.missing_dates if isinstance(r.missing_dates, str) else "[]"
        state_text = r.state if isinstance(r.state, str) else "{}"
        missing = {dt.date.fromisoformat(x) for x in json.loads(missing_text)}
        out[r.coin_id] = Watermark(
            r.coin_id, series, _date(r.first_date), _date(r.last_date), missing, json.loads(state_text)
        )
    return out


def mark_dirty(
    store: Store, earliest: Mapping[str, dt.date], series: Sequence[str] = DOWNSTREAM, *, indices: bool = True
) -> None:
    """dirty_from = least(existing, earliest changed date) for the indicator and signal steps
    (docs/decisions.md#D33). `series` names the downstream watermarks (the hourly ones for hourly bars,
    docs/decisions.md#D83); `indices=False` for bars the index does not read (hourly and weekly ones).
    """
    if not earliest:
        return
    coins = list(earliest)
    names = ", ".join(f"'{s}'" for s in series)
    existing = store.query(
        "SELECT c.coingecko_id AS coin_id, w.series, w.dirty_from FROM ingestion_watermarks w "
        f"JOIN coins c ON c.coin_id = w.coin_id WHERE w.series IN ({names})"
        + (
            " AND c.coingecko_id IN (" + ", ".join(f":c{i}" for i in range(len(coins))) + ")"
            if len(coins) < 500
            else ""
        ),
        {f"c{i}": c for i, c in enumerate(coins)} if len(coins) < 500 else None,
    )
    have = {(r.coin_id, r.series): _date(r.dirty_from) for r in existing.itertuples(index=False)}
    rows = []
    for coin, day in earliest.items():
        for name in series:
            old = have.get((coin, name))
            rows.append({"coin_id": coin, "series": name, "dirty_from": min(day, old) if old else day})
    store.upsert("ingestion_watermarks", pd.DataFrame(rows))
    if indices:
        mark_indices_dirty(store, min(earliest.values()))


def mark_indices_dirty(store: Store, day: dt.date) -> None:
    """Every index is rebuilt from the month of `day` on, in the same transaction as the write that changed it
    (docs/decisions.md#D61)."""
    store.execute(
        "UPDATE index_definitions SET dirty_from = :d WHERE dirty_from IS NULL OR dirty_from > :d", {"d": day}
    )


def previous_bar(store: Store, coin_id: str, before: dt.date) -> tuple[dt.date | None, float | None]:
    """The stored bar just before `before` (for jump and gap checks across the batch boundary)."""
    frame = store.query(
        'SELECT d."date", d."close" FROM daily_market_data d JOIN coins c ON c.coin_id = d.coin_id '
        'WHERE c.coingecko_id = :c AND d."date" < :b ORDER BY d."date" DESC LIMIT 1',
        {"c": coin_id, "b": before},
    )
    if frame.empty:
        return None, None
    return _date(frame["date"].iloc[0]), float(frame["close"].iloc[0])


def previous_bars(store: Store, before: dt.date) -> dict[str, tuple[dt.date, float]]:
    """Each coin's last stored bar before `before` (one query for all coins)."""
    frame = store.query(
        'SELECT c.coingecko_id AS coin_id, d."date", d."close" FROM daily_market_data d '
        "JOIN coins c ON c.coin_id = d.coin_id "
        'JOIN (SELECT coin_id, max("date") AS last_day FROM daily_market_data WHERE "date" < :b '
        "GROUP BY coin_id) x "
        'ON x.coin_id = d.coin_id AND x.last_day = d."date"',
        {"b": before},
    )
    return {r.coin_id: (pd.Timestamp(r.date).date(), float(r.close)) for r in frame.itertuples(index=False)}


def stored_dates(store: Store, coin_id: str) -> list[dt.date]:
    frame = store.query(
        'SELECT d."date" FROM daily_market_data d JOIN coins c ON c.coin_id = d.coin_id '
        'WHERE c.coingecko_id = :c ORDER BY d."date"',
        {"c": coin_id},
    )
    return [d.date() for d in pd.to_datetime(frame["date"])]


def coverage_counts(store: Store) -> pd.DataFrame:
    """Per coin: stored rows, first and last stored date (one aggregate query)."""
    return store.query(
        'SELECT c.coingecko_id AS coin_id, count(*) AS n_rows, min(d."date") AS first_stored, '
        'max(d."date") AS last_stored FROM daily_market_data d JOIN coins c ON c.coin_id = d.coin_id '
        "GROUP BY c.coingecko_id"
    )


def coins_with_holes(
    store: Store, watermarks: Mapping[str, Watermark], spans: pd.DataFrame | None = None
) -> set[str]:
    """Coins with fewer stored rows than days from their first to their last row (minus known missing).

    `spans` is :func:`coverage_counts` when the caller has it already."""
    out = set()
    for r in (coverage_counts(store) if spans is None else spans).itertuples(index=False):
        first, last = _date(r.first_stored), _date(r.last_stored)
        if first is None or last is None:
            continue
        wm = watermarks.get(r.coin_id)
        known = sum(1 for d in wm.missing if first <= d <= last) if wm else 0
        if int(r.n_rows) < (last - first).days + 1 - known:
            out.add(r.coin_id)
    return out


def holes(dates: Iterable[dt.date], missing: set[dt.date]) -> list[dt.date]:
    """Days between the first and last stored day that are neither stored nor confirmed missing."""
    ds = sorted(set(dates))
    if len(ds) < 2:
        return []
    have = set(ds)
    out = []
    day = ds[0]
    while day < ds[-1]:
        day += dt.timedelta(days=1)
        if day not in have and day not in missing:
            out.append(day)
    return out


def stablecoins(store: Store) -> set[str]:
    frame = store.query(
        "SELECT DISTINCT c.coingecko_id AS coin_id FROM coin_categories k "
        "JOIN coins c ON c.coin_id = k.coin_id "
        "WHERE k.category_id IN ('stablecoins', 'usd-stablecoin')"
    )
    return set(frame["coin_id"])


def _same(a: pd.Series, b: pd.Series) -> np.ndarray:
    if pd.api.types.is_float_dtype(a) or pd.api.types.is_float_dtype(b):
        x = pd.to_numeric(a, errors="coerce").to_numpy(dtype="float64")
        y = pd.to_numeric(b, errors="coerce").to_numpy(dtype="float64")
        return (x == y) | (np.isnan(x) & np.isnan(y))
    if isinstance(a.dtype, pd.DatetimeTZDtype) or isinstance(b.dtype, pd.DatetimeTZDtype):
        x = pd.to_datetime(a, utc=True)
        y = pd.to_datetime(b, utc=True)
        return ((x == y) | (x.isna() & y.isna())).to_numpy()
    x = a.astype(object).where(a.notna(), None)
    y = b.astype(object).where(b.notna(), None)
    return np.array([p == q for p, q in zip(x, y, strict=True)], dtype=bool)


def changed_rows(store: Store, bars: pd.DataFrame) -> pd.DataFrame:
    """The rows of `bars` (several coins) that are new or differ from the stored ones in the columns it
    carries.
    """
    if bars.empty:
        return bars
    lo, hi = bars["date"].min(), bars["date"].max()
    cols = [c for c in BAR_VALUE_COLUMNS if c in bars.columns]
    coins = list(bars["coin_id"].unique())
    stored = store.read("daily_market_data", coins=coins, start=lo, end=hi, columns=["date", *cols])
    if stored.empty:
        return bars
    merged = bars.merge(stored, on=["coin_id", "date"], how="left", suffixes=("", "_old"), indicator=True)
    same = np.array(merged["_merge"] == "both", dtype=bool)
    for c in cols:
        same &= _same(merged[c], merged[f"{c}_old"])
    return bars[~same]


@dataclass
class CoinWrite:
    """Everything one coin's fetch produced, written atomically by :func:`write_coins`."""

    coin_id: str
    bars: pd.DataFrame
    events: pd.DataFrame
    snapshots: pd.DataFrame | None = None
    watermarks: list[Watermark] = field(default_factory=list)
    coin_updates: pd.DataFrame | None = None


def _concat(frames: list[pd.DataFrame | None]) -> pd.DataFrame:
    kept = [f for f in frames if f is not None and not f.empty]
    if not kept:
        return pd.DataFrame()
    return kept[0] if len(kept) == 1 else pd.concat(kept, ignore_index=True)


def write_coins(
    store: Store, writes: Sequence[CoinWrite], run_id: str | None = None
) -> dict[str, tuple[int, int]]:
    """Write whole coins (bars, events, snapshots, watermarks, dirty marks) in one transaction.

    Returns per coin (rows inserted or changed, events). A coin is never split across transactions, so a run
    killed at any point leaves each coin as before or fully written.
    """
    if not writes:
        return {}
    bars_in = _concat([w.bars for w in writes])
    bars = changed_rows(store, bars_in) if not bars_in.empty else bars_in
    events = _concat([w.events for w in writes])
    if run_id is not None and not events.empty:
        events = events.assign(run_id=run_id)
    snapshots = _concat([w.snapshots for w in writes])
    coin_updates = _concat([w.coin_updates for w in writes])
    marks = [m.row() for w in writes for m in w.watermarks]
    with store.transaction():
        if not coin_updates.empty:
            store.upsert("coins", coin_updates)
        if not bars.empty:
            store.upsert("daily_market_data", bars)
        if not events.empty:
            store.upsert("data_quality_events", events)
        if not snapshots.empty:
            store.upsert("market_snapshots", snapshots)
        if marks:
            store.upsert("ingestion_watermarks", pd.DataFrame(marks))
        if not bars.empty:
            earliest = bars.groupby("coin_id")["date"].min()
            mark_dirty(store, {c: pd.Timestamp(d).date() for c, d in earliest.items()})
    rows = bars.groupby("coin_id").size().to_dict() if not bars.empty else {}
    return {w.coin_id: (int(rows.get(w.coin_id, 0)), len(w.events)) for w in writes}


def write_coin(store: Store, w: CoinWrite, run_id: str | None = None) -> tuple[int, int]:
    return write_coins(store, [w], run_id)[w.coin_id]
