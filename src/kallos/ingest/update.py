"""`kallos market update`: refresh every tracked coin from `/coins/markets`, fill gaps with targeted charts.

One `/coins/markets` sweep (250 ids per call: ⌈N/250⌉ calls) gives every tracked active coin's current price, cap
and volume. They go to `market_snapshots` (provisional). With `KALLOS_DAILY_CLOSE_SOURCE=markets`, a sweep taken
inside the close window of day D (00:00 to `close_window_minutes` after) is also stored as day D's final bar
(`close_source=markets`, its real timestamp kept), unless D already has a chart close (docs/decisions.md#D5).

A `market_chart/range` call is made only for coins whose watermark shows missing final days (or whose stored
history has holes): in markets mode that is a real gap, in chart mode it is every coin with a new final day (the
calls that finish days, reported as `chart_calls`). A final day is never overwritten by a provisional value:
provisional points only ever go to `market_snapshots`.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pandas as pd

from kallos import clock
from kallos.coingecko import plans
from kallos.ingest import frames
from kallos.ingest.archive import attach_archive
from kallos.ingest.backfill import plan_name
from kallos.ingest.market import HistoryFetcher, check_api_clock, midnight
from kallos.ingest.runner import RunCounts, api_mark, quarantined, run_per_coin
from kallos.ingest.select import tracked_coins
from kallos.ingest.state import (
    CHART,
    CoinWrite,
    Watermark,
    previous_bars,
    read_watermarks,
    write_coins,
)
from kallos.ingest.validation import QUARANTINED, validate_sweep
from kallos.log import get_logger
from kallos.pipeline.contract import Progress, StepContext, StepOutcome
from kallos.pipeline.progress import as_progress
from kallos.store import Store

log = get_logger("kallos.ingest.update")
MARKETS_SOURCE = "coins/markets"


def in_close_window(now: dt.datetime, minutes: int) -> bool:
    return now - midnight(now.date()) < dt.timedelta(minutes=minutes)


NOTHING_TRACKED = "no coins tracked yet: start with `kallos market backfill --top N`"


async def daily_update(
    store: Store, client: Any, settings: Any, progress: bool | Progress = False
) -> dict[str, Any]:
    """Refresh every tracked coin; returns the step's counts (:meth:`StepOutcome.counts`)."""
    ctx = StepContext.direct(store, settings, client=client, progress=as_progress(progress))
    return (await update_step(ctx)).counts()


async def update_step(ctx: StepContext) -> StepOutcome:
    """The daily update as a step (docs/decisions.md#D37)."""
    store, client, settings, now = ctx.store, ctx.require_client(), ctx.settings, ctx.now
    started = time.perf_counter()
    counts = RunCounts()
    before = api_mark(client)
    archive = attach_archive(store, client, settings)
    last_final = clock.last_final_day(now)
    plan = plan_name(client, settings)
    mode = settings.effective_close_source
    if settings.universe_top:  # new entrants of the configured universe first (docs/decisions.md#D56)
        from kallos.ingest.entrants import backfill_entrants

        entrants, done = await backfill_entrants(ctx, last_final=last_final)
        counts.extra.update(entrants)
        if done is not None:
            counts.rows_written += done.rows_written
            counts.rows_quarantined += done.rows_quarantined
            events = done.extra.get("events", 0)
            counts.events += events if isinstance(events, int) else 0
            counts.failed.update(done.failures)
    tracked = tracked_coins(store, active_only=True)
    if not tracked:
        log.warning("no tracked coins: run `kallos market backfill --coins ... | --top N` first")
        return counts.outcome(status="skipped", reason=NOTHING_TRACKED)

    # 1. One sweep for all tracked coins.
    markets_calls0 = client.stats.by_endpoint.get("/coins/markets", 0)
    rows = await client.coins_markets(ids=tracked)
    check_api_clock(client, now)  # before anything of the sweep is stored (docs/decisions.md#D55)
    markets_calls = client.stats.by_endpoint.get("/coins/markets", 0) - markets_calls0
    sweep = frames.markets_frame(rows, now)
    sweep = sweep[sweep["coin_id"].isin(set(tracked))]
    with store.transaction():
        store.upsert("market_snapshots", frames.snapshots_from_markets(sweep))
        if not sweep.empty:
            store.upsert(
                "coins",
                pd.DataFrame(
                    {
                        "coingecko_id": sweep["coin_id"],
                        "symbol": sweep["symbol"],
                        "name": sweep["name"],
                        "market_cap_rank": sweep["market_cap_rank"],
                        "last_seen": now,
                    }
                ),
            )
    not_listed = sorted(set(tracked) - set(sweep["coin_id"]))
    if not_listed:
        log.warning(
            "%d tracked coin(s) missing from /coins/markets (delisted?)",
            len(not_listed),
            extra={"coins_missing": not_listed[:20]},
        )

    # 2. Gap fills: targeted charts where the watermark (or a hole) says final days are missing.
    close_day = (
        now.date() if mode == "markets" and in_close_window(now, settings.close_window_minutes) else None
    )
    # Inside the close window, day D comes from the sweep: charts only fill the days before it.
    fill_through = min(last_final, close_day - dt.timedelta(days=1)) if close_day else last_final
    fetcher = HistoryFetcher.for_run(
        store, client, plan=plan, now=now, candles=plans.get_plan(plan).paid, coins=tracked
    )
    gap_coins: list[str] = []

    async def fill(coin: str) -> CoinWrite | None:
        window = fetcher.window(coin, last_final=fill_through)
        if window is None:
            return None
        gap_coins.append(coin)
        return await fetcher.fetch(window)

    chart_calls0 = client.stats.by_endpoint.get("/coins/{id}/market_chart/range", 0)
    await run_per_coin(
        store,
        tracked,
        fill,
        counts,
        batch_size=max(1, settings.concurrency * 4),
        progress=ctx.progress,
        label="update",
        run_id=ctx.run_id or None,
        after_batch=archive.flush,
    )
    chart_calls = client.stats.by_endpoint.get("/coins/{id}/market_chart/range", 0) - chart_calls0

    # 3. Markets mode inside the close window: the sweep is day D's final value where D has no chart close.
    finals = 0
    if close_day is not None and not sweep.empty:
        finals = _store_markets_closes(store, sweep, close_day, counts, fetcher.stable)
    counts.coins = len(set(tracked) - set(counts.failed))
    counts.measure_api(client, before)
    counts.extra.update(
        {
            "mode": mode,
            "markets_calls": markets_calls,
            "chart_calls": chart_calls,
            "gap_fills": len(gap_coins) if mode == "markets" else 0,
            "markets_closes": finals,
            "not_listed": len(not_listed),
        }
    )
    return counts.finish("daily update finished", started)


def _store_markets_closes(
    store: Store, sweep: pd.DataFrame, day: dt.date, counts: RunCounts, stable: set[str]
) -> int:
    """Write day `day`'s final bars from the sweep for coins whose day has no chart close yet."""
    existing = store.read("daily_market_data", start=day, end=day, columns=["date", "close_source"])
    # The first close-window sweep makes day D final; later sweeps and provisional values never replace it.
    has_chart = set(existing["coin_id"])
    stamp_day = pd.to_datetime(sweep["snapped_at"], utc=True).dt.date
    todo = sweep[~sweep["coin_id"].isin(has_chart) & (stamp_day == day).to_numpy()]
    if todo.empty:
        return 0
    wms = read_watermarks(store, CHART, list(todo["coin_id"]))
    prev = {c: close for c, (_, close) in previous_bars(store, day).items()}
    good_all, events_all = validate_sweep(
        todo[["coin_id", "snapped_at", "close", "market_cap", "volume"]],
        source=MARKETS_SOURCE,
        prev_close=prev,
        stablecoins=stable,
    )
    good_by = dict(tuple(good_all.groupby("coin_id", sort=False)))
    events_by = dict(tuple(events_all.groupby("coin_id", sort=False))) if not events_all.empty else {}
    writes = []
    for coin in todo["coin_id"]:
        wm = wms.get(coin) or Watermark(coin, CHART)
        good = good_by.get(coin, good_all.iloc[0:0])
        events = events_by.get(coin, events_all.iloc[0:0])
        if wm.last_date is not None and wm.last_date >= day - dt.timedelta(days=1) and not good.empty:
            wm.last_date = max(wm.last_date, day)
        if not events.empty:
            wm.missing |= {
                d.date() for d in pd.to_datetime(events.loc[events["action"] == QUARANTINED, "date"])
            }
        writes.append(CoinWrite(coin, good.assign(close_source="markets"), events, watermarks=[wm]))
    n = 0
    for start in range(0, len(writes), 250):
        chunk = writes[start : start + 250]
        done = write_coins(store, chunk)
        for w in chunk:
            rows, n_events = done[w.coin_id]
            counts.rows_written += rows
            counts.rows_quarantined += quarantined(w)
            counts.events += n_events
            n += len(w.bars)
    return n
