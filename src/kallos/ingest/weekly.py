"""Weekly bars from the stored final daily bars, incrementally (no API call).

Per coin the watermark (coin, `weekly_bars`) holds the last stored week's Monday (`last_date`) and the earliest
daily date changed since (`dirty_from`, set by daily ingestion with the indicator marks). A run rebuilds the weeks
from the earlier of the two with :func:`kallos.timeframes.resample` and upserts them (equal rows are not
rewritten), so incremental equals a full rebuild; only weeks whose Sunday is final are stored
(docs/decisions.md#D84).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd

from kallos import clock
from kallos.ingest.state import mark_dirty
from kallos.log import get_logger
from kallos.pipeline.contract import StepContext, StepOutcome
from kallos.timeframes import resample

log = get_logger("kallos.ingest.weekly")

SERIES = "weekly_bars"
DOWNSTREAM_1W = ("indicators_1w", "signals_1w")
BATCH_COINS = 200
_COLUMNS = ["date", "open", "high", "low", "close", "volume", "market_cap"]


def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def _starts(ctx: StepContext, coins: Sequence[str] | None, full: bool) -> dict[str, dt.date | None]:
    """coin -> first Monday to rebuild (None: from its first bar)."""
    stored = ctx.store.query(
        "SELECT DISTINCT c.coingecko_id AS coin_id FROM daily_market_data d JOIN coins c ON c.coin_id = d.coin_id"
    )["coin_id"]
    ids = [c for c in stored if coins is None or c in set(coins)]
    marks = ctx.store.query(
        "SELECT c.coingecko_id AS coin_id, w.last_date, w.dirty_from FROM ingestion_watermarks w "
        "JOIN coins c ON c.coin_id = w.coin_id WHERE w.series = :s",
        {"s": SERIES},
    ).set_index("coin_id")
    out: dict[str, dt.date | None] = {}
    for coin in sorted(ids):
        if full or coin not in marks.index or pd.isna(marks.at[coin, "last_date"]):
            out[coin] = None
            continue
        start = pd.Timestamp(marks.at[coin, "last_date"]).date() + dt.timedelta(days=7)
        dirty = marks.at[coin, "dirty_from"]
        if pd.notna(dirty):
            start = min(start, _monday(pd.Timestamp(dirty).date()))
        out[coin] = start
    return out


def build_weeks(ctx: StepContext, coins: Sequence[str] | None = None, *, full: bool = False) -> StepOutcome:
    final_through = clock.last_final_day(ctx.now)
    starts = _starts(ctx, coins, full)
    rows = built = 0
    ids = list(starts)
    ctx.progress.start("weekly bars", total=len(ids))
    try:
        for i in range(0, len(ids), BATCH_COINS):
            batch = ids[i : i + BATCH_COINS]
            known = [starts[c] for c in batch if starts[c] is not None]
            lo = None if any(starts[c] is None for c in batch) else min(known)  # type: ignore[type-var]
            daily = ctx.store.read("daily_market_data", coins=batch, start=lo, columns=["coin_id", *_COLUMNS])
            first_wanted = daily["coin_id"].map(lambda c: starts.get(c) or dt.date.min)
            daily = daily[daily["date"].dt.date >= first_wanted]
            weeks = resample(daily, "1w", final_through=final_through)
            marks = []
            changed: dict[str, dt.date] = {}
            with ctx.store.transaction():
                if not weeks.empty:
                    rows += ctx.store.upsert("weekly_market_data", weeks)
                for coin, g in weeks.groupby("coin_id", sort=False):
                    changed[str(coin)] = pd.Timestamp(g["date"].min()).date()
                    marks.append({"coin_id": coin, "series": SERIES, "last_date": g["date"].max(), "dirty_from": None})
                if marks:
                    ctx.store.upsert("ingestion_watermarks", pd.DataFrame(marks))
                    mark_dirty(ctx.store, changed, series=DOWNSTREAM_1W, indices=False)
            built += len(batch)
            ctx.progress.advance(len(batch))
    finally:
        ctx.progress.finish()
    log.info("weekly bars built", extra={"coins": built, "rows_written": rows})
    return StepOutcome(coins_ok=built, rows_written=rows, extra={"final_through": final_through.isoformat()})


def weekly_bars_step(coins: Sequence[str] | None = None, full: bool = False) -> Any:
    """The contract step `(ctx) -> StepOutcome` that builds weekly bars."""

    def step(ctx: StepContext) -> StepOutcome:
        return build_weeks(ctx, coins, full=full)

    return step
