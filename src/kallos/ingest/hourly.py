"""Hourly bars: which hours a coin needs, the calls the plan's rules require, and one coin's atomic write.

`market_chart/range` answers a span of 2 to 90 days with hourly points on every plan (a longer span flips to
daily, a one-day span ending now to 5-minutely), so hours are fetched in windows of at most 90 days and never
shorter than two. Each point belongs to the UTC hour it falls in (floor); several points in one hour keep the
last and record a `deduplicated` quality event; an hour without a point stays a gap (docs/decisions.md#D82).
Paid plans add hourly candles from `/ohlc/range?interval=hourly` (at most 31 days a call); a candle closing at T
gives the open/high/low of hour T, whose close is the chart point of T, as daily candles do for days.

The watermark (coin, `market_chart_1h`) holds the last stored hour in its state; a coin's bars, events, watermark
and the dirty marks of the hourly indicators and signals are written in one transaction, so a run killed anywhere
and rerun stores every hour exactly once (docs/decisions.md#D83).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kallos.coingecko import plans
from kallos.coingecko.arrays import CandleArrays, ChartArrays
from kallos.errors import KallosError, PlanLimitError
from kallos.ingest import frames
from kallos.ingest.state import Watermark, mark_dirty, read_watermarks
from kallos.ingest.validation import DEDUPLICATED, EVENT_COLUMNS, NULLED, QUARANTINED
from kallos.log import get_logger
from kallos.pipeline.contract import StepContext, StepOutcome, outcome_status
from kallos.store import Store

log = get_logger("kallos.ingest.hourly")

CHART_1H = "market_chart_1h"
OHLC_1H = "ohlc_1h"
DOWNSTREAM_1H = ("indicators_1h", "signals_1h")
SOURCE = "market_chart/range@1h"
CANDLE_SOURCE = "ohlc/range@1h"
HOUR = dt.timedelta(hours=1)
HOURLY_DATA_START = dt.datetime(2018, 1, 30, tzinfo=dt.UTC)
"""CoinGecko has hourly points from this day on (docs/decisions.md#D82)."""
OHLC_HOURLY_START = dt.datetime(2018, 2, 9, tzinfo=dt.UTC)
MAX_WINDOW = plans.CHART_HOURLY_MAX_SPAN  # 90 days: one day more and the answer is daily
MIN_WINDOW = dt.timedelta(days=2)  # one day ending now would be 5-minutely
BAR_COLUMNS = ["coin_id", "hour", "close", "market_cap", "volume", "snapped_at", "close_source"]


DAILY_RUN_FIRST_DAYS = 90
"""How far back the daily run loads a coin that enters the hourly universe: one chart window (90 days of hours),
enough warm-up for the hourly indicators, at about 4 calls on paid plans and 1 on demo."""


def floor_hour(t: dt.datetime) -> dt.datetime:
    t = t.astimezone(dt.UTC)
    return t.replace(minute=0, second=0, microsecond=0)


def last_final_hour(now: dt.datetime) -> dt.datetime:
    """The newest hour that is over: the current hour's point is provisional (it is the trailing "now")."""
    return floor_hour(now) - HOUR


def history_floor(plan: str, now: dt.datetime) -> dt.datetime:
    """The oldest hour the plan serves: 365 days back (a day of margin) on demo/public, 2018-01-30 on paid."""
    floor = plans.earliest_allowed(plan, now)
    if floor is None:
        return HOURLY_DATA_START
    return max(HOURLY_DATA_START, floor_hour(floor + plans.DAY))


def check_since(plan: str, since: dt.date | None, now: dt.datetime) -> None:
    """Refuse an hourly start the plan cannot serve, naming the limit (the daily backfill clamps instead)."""
    if since is None:
        return
    floor = history_floor(plan, now)
    start = dt.datetime(since.year, since.month, since.day, tzinfo=dt.UTC)
    if start < floor:
        days = plans.get_plan(plan).history_days
        limit = (
            f"the {plan} plan serves hourly data for the past {days} days only (from {floor:%Y-%m-%d})"
            if days is not None
            else f"CoinGecko has hourly data from {HOURLY_DATA_START:%Y-%m-%d} only"
        )
        raise PlanLimitError(
            f"--since {since.isoformat()} is beyond the hourly history: {limit}",
            endpoint="/coins/{id}/market_chart/range",
            plan=plan,
            history_days=days,
        )


@dataclass(frozen=True)
class HourWindow:
    coin_id: str
    start: dt.datetime
    """First hour wanted (inclusive)."""
    end: dt.datetime
    """Last final hour wanted (inclusive)."""


def plan_hours(
    coin: str, wm: Watermark | None, *, plan: str, now: dt.datetime, since: dt.date | None
) -> HourWindow | None:
    """The hours one coin needs, or None when its watermark says it is current."""
    floor = history_floor(plan, now)
    end = last_final_hour(now)
    last = wm.state.get("last_hour") if wm else None
    if last:
        start = pd.Timestamp(last).to_pydatetime() + HOUR
        first = wm.state.get("first_hour") if wm else None
        if since is not None and first and pd.Timestamp(since, tz="UTC") < pd.Timestamp(first):
            start = dt.datetime(since.year, since.month, since.day, tzinfo=dt.UTC)
    elif since is not None:
        start = dt.datetime(since.year, since.month, since.day, tzinfo=dt.UTC)
    else:
        start = floor
    start = max(start, floor)
    return HourWindow(coin, start, end) if start <= end else None


def chart_windows(w: HourWindow, floor: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """[from, to] request spans of 2..90 days covering the window's hours (to = the hour after the last)."""
    out = []
    for a, b in plans.chunk_range(w.start, w.end + HOUR, MAX_WINDOW):
        if b - a < MIN_WINDOW:
            a = max(b - MIN_WINDOW, floor)
        out.append((a, b))
    return out


def candle_windows(w: HourWindow) -> list[tuple[dt.datetime, dt.datetime]]:
    start = max(w.start, OHLC_HOURLY_START)
    if start > w.end:
        return []
    return list(plans.chunk_range(start, w.end + HOUR, plans.OHLC_RANGE_MAX_SPAN["hourly"]))


def expected_calls(w: HourWindow, plan: str, floor: dt.datetime) -> dict[str, int]:
    out = {"/coins/{id}/market_chart/range": len(chart_windows(w, floor))}
    if plans.get_plan(plan).paid:
        out["/coins/{id}/ohlc/range"] = len(candle_windows(w))
    return out


# --- pure: points -> hourly bars ----------------------------------------------------------------------------


def _events(coin: str, rows: pd.DataFrame, field: str, reason: str, action: str, source: str) -> pd.DataFrame:
    """One event per coin, day and reason (the events table is keyed by day), listing the hours concerned."""
    if rows.empty:
        return pd.DataFrame(columns=EVENT_COLUMNS)
    day = rows["hour"].dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    out = []
    for d, g in rows.groupby(day, sort=True):
        hours = sorted({f"{h:%H}" for h in g["hour"]})
        out.append(
            {
                "coin_id": coin,
                "date": d,
                "source": source,
                "field": field,
                "reason": reason,
                "action": action,
                "raw": json.dumps(
                    [
                        [str(t), None if pd.isna(v) else float(v)]
                        for t, v in zip(g["snapped_at"], g["close"], strict=True)
                    ]
                ),
                "detail": f"{len(g)} point(s) in hour(s) {','.join(hours)} UTC",
            }
        )
    return pd.DataFrame(out, columns=EVENT_COLUMNS)


def hourly_bars(coin: str, chart: pd.DataFrame, w: HourWindow) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Chart points -> one bar per hour of the window (last point of an hour wins) and the quality events."""
    pts = chart.dropna(subset=["snapped_at"]).drop_duplicates(subset=["snapped_at"], keep="last")
    pts = pts.sort_values("snapped_at", kind="stable").reset_index(drop=True)
    pts["hour"] = pts["snapped_at"].dt.floor("h")
    lo, hi = pd.Timestamp(w.start), pd.Timestamp(w.end)
    pts = pts[(pts["hour"] >= lo) & (pts["hour"] <= hi)].reset_index(drop=True)
    dup = pts.duplicated(subset=["hour"], keep="last")
    events = [_events(coin, pts[dup], "hour", "several_points_in_hour", DEDUPLICATED, SOURCE)]
    bars = pts[~dup].reset_index(drop=True)
    bad = ~(bars["close"].to_numpy(dtype="float64") > 0) | np.isinf(bars["close"].to_numpy(dtype="float64"))
    events.append(_events(coin, bars[bad], "close", "non_positive_close", QUARANTINED, SOURCE))
    bars = bars[~bad].reset_index(drop=True)
    for col in ("market_cap", "volume"):
        v = bars[col].to_numpy(dtype="float64")
        zero_cap = (v <= 0) if col == "market_cap" else (v < 0)
        unknown = zero_cap | ~np.isfinite(v)
        flagged = zero_cap & np.isfinite(v)
        if flagged.any():
            events.append(_events(coin, bars[flagged], col, f"non_positive_{col}", NULLED, SOURCE))
        bars[col] = np.where(unknown, np.nan, v)
    bars = bars.assign(coin_id=coin, close_source="chart")[BAR_COLUMNS]
    kept = [e for e in events if not e.empty]
    return bars, (pd.concat(kept, ignore_index=True) if kept else pd.DataFrame(columns=EVENT_COLUMNS))


def attach_hourly_candles(bars: pd.DataFrame, candles: pd.DataFrame) -> pd.DataFrame:
    """Open/high/low of the candle closing in each bar's hour (close stays the chart's); others stay NULL."""
    if candles.empty or bars.empty:
        return bars.assign(open=np.nan, high=np.nan, low=np.nan, ohlc_source=None)
    c = candles.assign(hour=candles["snapped_at"].dt.floor("h")).drop_duplicates("hour", keep="last")
    merged = bars.merge(c[["hour", "open", "high", "low"]], on="hour", how="left")
    ok = merged[["open", "high", "low"]].notna().all(axis=1)
    # A candle whose range does not hold the hour's close (the chart point is a few minutes later) is widened to
    # it: high/low are bounds of the traded path, and the close is a point on it.
    merged["high"] = np.where(ok, np.fmax(merged["high"], merged["close"]), np.nan)
    merged["low"] = np.where(ok, np.fmin(merged["low"], merged["close"]), np.nan)
    merged["open"] = merged["open"].where(ok)
    merged["ohlc_source"] = pd.Series("candles", index=merged.index).where(ok)
    return merged


# --- one coin: fetch, then write atomically -----------------------------------------------------------------


@dataclass
class HourlyWrite:
    coin_id: str
    bars: pd.DataFrame
    events: pd.DataFrame
    watermarks: list[Watermark]
    quarantined: int = 0


async def fetch_hours(
    client: Any, w: HourWindow, *, plan: str, floor: dt.datetime, wm: Watermark | None
) -> HourlyWrite:
    parts = [
        frames.chart_frame(await client.market_chart_range_arrays(w.coin_id, a, b)) for a, b in chart_windows(w, floor)
    ]
    chart = pd.concat(parts, ignore_index=True) if parts else frames.chart_frame(ChartArrays.empty())
    bars, events = hourly_bars(w.coin_id, chart, w)
    marks = []
    if plans.get_plan(plan).paid:
        got = [await client.ohlc_range_arrays(w.coin_id, a, b, "hourly") for a, b in candle_windows(w)]
        bars = attach_hourly_candles(bars, frames.candles_frame(CandleArrays.concat(got)))
        marks.append(Watermark(w.coin_id, OHLC_1H, state={"last_hour": w.end.isoformat()}))
    old = wm or Watermark(w.coin_id, CHART_1H)
    state = dict(old.state)
    first = state.get("first_hour")
    if not bars.empty:
        got_first = bars["hour"].min().isoformat()
        state["first_hour"] = min(first, got_first) if first else got_first
    state["last_hour"] = max(filter(None, [state.get("last_hour"), w.end.isoformat()]))
    state["checked_from"] = min(filter(None, [state.get("checked_from"), w.start.isoformat()]))
    first_day = pd.Timestamp(state["first_hour"]).date() if state.get("first_hour") else None
    marks.insert(0, Watermark(w.coin_id, CHART_1H, first_day, pd.Timestamp(state["last_hour"]).date(), set(), state))
    quarantined = int(events.loc[events["action"] == QUARANTINED, "detail"].str.extract(r"^(\d+)")[0].astype(int).sum())
    return HourlyWrite(w.coin_id, bars, events, marks, quarantined)


def write_hours(store: Store, hw: HourlyWrite, run_id: str | None = None) -> int:
    """Bars, events, watermarks and the hourly dirty marks of one coin in one transaction; rows changed."""
    events = hw.events.assign(run_id=run_id) if run_id and not hw.events.empty else hw.events
    with store.transaction():
        rows = store.upsert("hourly_market_data", hw.bars) if not hw.bars.empty else 0
        if not events.empty:
            store.upsert("data_quality_events", events)
        store.upsert("ingestion_watermarks", pd.DataFrame([m.row() for m in hw.watermarks]))
        if rows:
            first = pd.Timestamp(hw.bars["hour"].min()).date()
            mark_dirty(store, {hw.coin_id: first}, series=DOWNSTREAM_1H, indices=False)
    return rows


# --- the steps ----------------------------------------------------------------------------------------------


async def sync_hours(
    ctx: StepContext,
    coins: Sequence[str],
    *,
    since: dt.date | None = None,
    unknown: Sequence[str] = (),
    new_since: dt.date | None = None,
) -> StepOutcome:
    """Bring the hourly bars of `coins` up to the last final hour (resuming from their watermarks). `new_since` is
    where a coin with no hourly bars yet starts when `since` is not given (the daily run's bounded first load)."""
    client = ctx.require_client()
    plan = str(getattr(client.plan, "name", ctx.settings.coingecko_plan))
    check_since(plan, since, ctx.now)
    floor = history_floor(plan, ctx.now)
    wms = read_watermarks(ctx.store, CHART_1H, list(coins))
    calls0, credits0 = client.stats.calls, client.stats.credits
    failures = {u: "not in the coins table (run `kallos coins sync` first)" for u in unknown}
    ok = rows = events = quarantined = up_to_date = 0
    windows = [
        plan_hours(c, wms.get(c), plan=plan, now=ctx.now, since=since if _has_hours(wms.get(c)) else since or new_since)
        for c in coins
    ]
    todo = [w for w in windows if w is not None]
    up_to_date = len(windows) - len(todo)
    ctx.progress.start("hourly bars", total=len(todo))
    batch = max(1, ctx.settings.concurrency * 4)
    try:
        for i in range(0, len(todo), batch):
            tasks = [
                asyncio.ensure_future(_tagged(w, fetch_hours(client, w, plan=plan, floor=floor, wm=wms.get(w.coin_id))))
                for w in todo[i : i + batch]
            ]
            for next_done in asyncio.as_completed(tasks):
                w, result = await next_done
                if isinstance(result, BaseException):
                    if not isinstance(result, KallosError | ValueError | KeyError):
                        raise result
                    failures[w.coin_id] = str(result)
                    log.warning("coin failed: %s", result, extra={"coin_id": w.coin_id})
                else:
                    try:
                        rows += write_hours(ctx.store, result, ctx.run_id)
                    except KallosError as exc:
                        failures[w.coin_id] = str(exc)
                        continue
                    ok += 1
                    events += len(result.events)
                    quarantined += result.quarantined
                ctx.progress.advance()
    finally:
        ctx.progress.finish()
    calls, credits = client.stats.calls - calls0, client.stats.credits - credits0
    coins_ok = ok + up_to_date
    log.info(
        "hourly bars stored",
        extra={"coins": coins_ok, "rows_written": rows, "events": events, "failed": len(failures), "api_calls": calls},
    )
    return StepOutcome(
        status=outcome_status(failures=failures, coins_ok=coins_ok),
        coins_ok=coins_ok,
        rows_written=rows,
        rows_quarantined=quarantined,
        failures=failures,
        api_calls=calls,
        api_credits=credits,
        extra={"events": events, "up_to_date": up_to_date, "plan": plan},
    )


def _has_hours(wm: Watermark | None) -> bool:
    return bool(wm and wm.state.get("last_hour"))


async def _tagged(w: HourWindow, coro: Any) -> tuple[HourWindow, Any]:
    try:
        return w, await coro
    except Exception as exc:  # noqa: BLE001 - a per-coin failure is recorded by the caller
        return w, exc


def hourly_backfill_step(
    coins: Sequence[str] | None = None, top: int | None = None, since: dt.date | None = None
) -> Any:
    """`kallos market backfill --timeframe 1h` as a contract step: `(ctx) -> StepOutcome`."""

    async def step(ctx: StepContext) -> StepOutcome:
        from kallos.ingest.select import select_coins

        client = ctx.require_client()
        check_since(str(getattr(client.plan, "name", ctx.settings.coingecko_plan)), since, ctx.now)
        ids, unknown = await select_coins(ctx.store, client, coins=coins, top=top)
        return await sync_hours(ctx, ids, since=since, unknown=unknown)

    return step


def hourly_universe(store: Store, size: int) -> list[str]:
    """The coins the daily run keeps hourly: the default index's latest month's constituents by rank, topped up by
    market cap rank when the index has fewer (or none yet)."""
    if size <= 0:
        return []
    picked = list(
        store.query(
            "SELECT c.coingecko_id FROM index_monthly_constituents i JOIN coins c ON c.coin_id = i.coin_id "
            "WHERE i.index_name = 'default' AND (i.year * 12 + i.month) = "
            "(SELECT max(year * 12 + month) FROM index_monthly_constituents WHERE index_name = 'default') "
            "ORDER BY i.rank LIMIT :n",
            {"n": size},
        )["coingecko_id"]
    )
    if len(picked) < size:
        more = store.query(
            "SELECT coingecko_id FROM coins WHERE market_cap_rank IS NOT NULL "
            "AND coalesce(status, 'active') = 'active' ORDER BY market_cap_rank LIMIT :n",
            {"n": size * 2},
        )["coingecko_id"]
        picked += [c for c in more if c not in picked][: size - len(picked)]
    return picked


async def hourly_update_step(ctx: StepContext) -> StepOutcome:
    """The daily run's hourly step: keep `KALLOS_HOURLY_UNIVERSE` coins current (0 turns it off)."""
    size = ctx.settings.hourly_universe
    if size <= 0:
        return StepOutcome.skipped("hourly bars are off (KALLOS_HOURLY_UNIVERSE=0)")
    coins = hourly_universe(ctx.store, size)
    if not coins:
        return StepOutcome.skipped("no coins to keep hourly yet (no index and no ranked coins)")
    # A coin new to the universe gets its last DAILY_RUN_FIRST_DAYS days here; its whole history is the explicit
    # `kallos market backfill --timeframe 1h` (a daily run stays a small, predictable cost: docs/decisions.md#D83).
    first = (ctx.now - dt.timedelta(days=DAILY_RUN_FIRST_DAYS)).date()
    return await sync_hours(ctx, coins, new_since=first)


def estimate_hourly(
    store: Store,
    settings: Any,
    *,
    now: dt.datetime,
    coins: Sequence[str] | None,
    top: int | None,
    since: dt.date | None,
) -> dict[str, Any]:
    """`kallos plan backfill --timeframe 1h`: calls, credits and minutes (no API call); refuses what the plan
    cannot serve, naming the limit."""
    plan = settings.coingecko_plan
    check_since(plan, since, now)
    floor = history_floor(plan, now)
    wms = read_watermarks(store, CHART_1H)
    ids = list(dict.fromkeys(coins)) if coins else ([] if top else hourly_universe(store, settings.hourly_universe))
    by_endpoint: dict[str, int] = {}
    if top:
        by_endpoint["/coins/markets"] = math.ceil(top / min(top, plans.MARKETS_MAX_PER_PAGE))
        ids = [f"top-{i}" for i in range(top)]
    windows = [w for c in ids if (w := plan_hours(c, wms.get(c), plan=plan, now=now, since=since)) is not None]
    for w in windows:
        for k, v in expected_calls(w, plan, floor).items():
            by_endpoint[k] = by_endpoint.get(k, 0) + v
    calls = sum(by_endpoint.values())
    rate = settings.effective_rate_limit
    return {
        "plan": plan,
        "timeframe": "1h",
        "coins": len(ids),
        "coins_to_fetch": len(windows),
        "calls": calls,
        "credits": calls * plans.credits_for(200),
        "by_endpoint": by_endpoint,
        "rate_per_minute": rate,
        "minutes": round(plans.minutes_for(calls, rate), 2),
        "history_from": floor.date().isoformat(),
        "candles": plans.get_plan(plan).paid,
        "clamped": 0,
        "history_days": plans.get_plan(plan).history_days,
    }
