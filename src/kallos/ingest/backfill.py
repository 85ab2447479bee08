"""`kallos market backfill`: daily close, market cap and volume (and candles on paid plans) per coin.

A coin's run starts where its watermark stopped (or at `since`, or at the first day CoinGecko has), re-fetches the
holes found in its stored history, and writes everything of the coin in one transaction: killed at any point and
run again, each day is stored exactly once and the database converges to the one a clean run gives.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

from kallos import clock
from kallos.coingecko import plans
from kallos.ingest.archive import attach_archive
from kallos.ingest.market import HistoryFetcher
from kallos.ingest.runner import RunCounts, api_mark, run_per_coin
from kallos.ingest.select import select_coins
from kallos.ingest.state import CoinWrite
from kallos.log import get_logger
from kallos.pipeline.contract import Progress, StepContext, StepOutcome
from kallos.pipeline.progress import as_progress
from kallos.store import Store

log = get_logger("kallos.ingest.backfill")


def plan_name(client: Any, settings: Any) -> str:
    plan = getattr(client, "plan", None)
    return str(getattr(plan, "name", None) or settings.coingecko_plan)


async def backfill(
    store: Store,
    client: Any,
    settings: Any,
    coins: Sequence[str] | None = None,
    top: int | None = None,
    since: dt.date | None = None,
    include_inactive: bool = False,
    progress: bool | Progress = False,
    candles: bool | None = None,
) -> dict[str, Any]:
    """Backfill the chosen coins; returns the step's counts (:meth:`StepOutcome.counts`).

    `progress=True` prints a plain progress line every few seconds on stderr (or pass a Progress reporter).
    """
    ctx = StepContext.direct(store, settings, client=client, progress=as_progress(progress))
    outcome = await backfill_step(
        ctx, coins=coins, top=top, since=since, include_inactive=include_inactive, candles=candles
    )
    return outcome.counts()


async def backfill_step(
    ctx: StepContext,
    *,
    coins: Sequence[str] | None = None,
    top: int | None = None,
    since: dt.date | None = None,
    include_inactive: bool = False,
    candles: bool | None = None,
) -> StepOutcome:
    """The backfill as a step (docs/decisions.md#D37): the chosen coins' history, resumed from the watermarks.

    `candles=None` fetches daily candles where the plan serves them (`ohlc/range` on paid plans); True also asks
    free plans' `/ohlc` (last 30 days, 4-hour candles combined into days); False keeps bars close-only.
    """
    store, client, settings, now = ctx.store, ctx.require_client(), ctx.settings, ctx.now
    started = time.perf_counter()
    counts = RunCounts()
    before = api_mark(client)
    archive = attach_archive(store, client, settings)
    last_final = clock.last_final_day(now)
    plan = plan_name(client, settings)
    want_candles = plans.get_plan(plan).paid if candles is None else candles
    ids, unknown = await select_coins(store, client, coins=coins, top=top, include_inactive=include_inactive)
    for u in unknown:
        counts.failed[u] = "not in the coins table (run `kallos coins sync` first)"
    fetcher = HistoryFetcher.for_run(store, client, plan=plan, now=now, candles=want_candles)
    clamped: list[str] = []

    async def job(coin: str) -> CoinWrite | None:
        window = fetcher.window(coin, last_final=last_final, since=since)
        if window is None:
            return None
        if window.clamped_from is not None:
            clamped.append(coin)
        return await fetcher.fetch(window)

    batch = max(1, settings.concurrency * 4)
    await run_per_coin(
        store,
        ids,
        job,
        counts,
        batch_size=batch,
        progress=ctx.progress,
        label="backfill",
        run_id=ctx.run_id or None,
        after_batch=archive.flush,
    )
    if clamped:
        log.warning(
            "the %s plan only serves the past %d days: history of %d coin(s) clamped "
            "(older days not fetched; "
            "a paid plan can backfill them later)",
            plan,
            plans.DEMO_HISTORY_DAYS,
            len(clamped),
            extra={"coins_clamped": len(clamped), "plan": plan},
        )
    counts.measure_api(client, before)
    counts.extra.update({"clamped": len(clamped), "up_to_date": counts.skipped})
    return counts.finish("backfill finished", started)


__all__ = ["backfill", "backfill_step"]
