"""New entrants of the configured universe: the daily run backfills them, a budget of API calls at a time.

With `KALLOS_UNIVERSE_TOP=N` the universe is today's top N by market cap. A coin that enters it has no history
yet, and the daily update only refreshes coins already stored, so the daily run backfills the entrants itself:
in rank order, as many as the planner prices within `KALLOS_ENTRANT_CALLS_PER_RUN` API calls (at least one per
run, so a coin costlier than the budget still gets in), and the rest on the next runs (docs/decisions.md#D56).
Coins that leave the top N stay tracked: their history is kept and still updated.
"""

from __future__ import annotations

import datetime as dt
import math

from kallos.coingecko import plans
from kallos.ingest.backfill import backfill_step, plan_name
from kallos.ingest.market import HistoryFetcher, check_api_clock, expected_calls
from kallos.ingest.select import tracked_coins
from kallos.ingest.universe import ensure_coins
from kallos.log import get_logger
from kallos.pipeline.contract import StepContext, StepOutcome

log = get_logger("kallos.ingest.entrants")


def within_budget(costs: list[tuple[str, int]], budget: int) -> list[str]:
    """The coins (in the given order) whose summed cost fits `budget`; the first always fits unless budget is 0."""
    chosen: list[str] = []
    spent = 0
    for coin, cost in costs:
        if budget <= 0 or (chosen and spent + cost > budget):
            break
        chosen.append(coin)
        spent += cost
    return chosen


async def backfill_entrants(ctx: StepContext, *, last_final: dt.date) -> tuple[dict[str, int], StepOutcome | None]:
    """Backfill today's top-N coins that have no history yet, within the run's call budget.

    Returns the counts for the step's `extra` and the backfill's outcome (None when nothing was backfilled)."""
    store, client, settings, now = ctx.store, ctx.require_client(), ctx.settings, ctx.now
    top = settings.universe_top or 0
    per_page = min(plans.MARKETS_MAX_PER_PAGE, top)
    rows = (await client.coins_markets(per_page=per_page, pages=math.ceil(top / per_page)))[:top]
    check_api_clock(client, now)
    ensure_coins(store, rows, now)
    tracked = set(tracked_coins(store))
    entrants = [r.id for r in rows if r.id not in tracked]
    out: dict[str, int] = {"universe_top": top, "entrants": len(entrants), "entrants_backfilled": 0}
    if not entrants:
        out["entrants_pending"] = 0
        return out, None
    plan = plan_name(client, settings)
    candles = plans.get_plan(plan).paid
    fetcher = HistoryFetcher.for_run(store, client, plan=plan, now=now, candles=candles, coins=entrants)
    costs = []
    for coin in entrants:
        window = fetcher.window(coin, last_final=last_final)
        if window is not None:
            costs.append((coin, sum(expected_calls(window, plan, candles).values())))
    chosen = within_budget(costs, settings.entrant_calls_per_run)
    pending = [c for c, _ in costs if c not in chosen]
    out.update(
        {
            "entrants_pending": len(pending),
            "entrant_calls_planned": sum(cost for c, cost in costs if c in chosen),
        }
    )
    if pending:
        log.info(
            "%d new coin(s) of the top %d wait for the next runs (KALLOS_ENTRANT_CALLS_PER_RUN=%d)",
            len(pending),
            top,
            settings.entrant_calls_per_run,
            extra={"entrants_pending": pending[:20]},
        )
    if not chosen:
        return out, None
    outcome = await backfill_step(ctx, coins=chosen)
    out["entrants_backfilled"] = len(chosen) - len(outcome.failures)
    return out, outcome
