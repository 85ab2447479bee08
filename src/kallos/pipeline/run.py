"""`kallos run` (the seed's daily workflow) and the demo's backfill run, as ordered lists of steps.

Daily: universe (Mondays, or when the last sync is older than 7 days) -> coin details (when stale) -> market
data update -> indicators -> signals -> index (when a month has ended that is not built). Backfill (the demo,
a first load): universe -> details -> backfill -> indicators -> signals -> index. Each step is idempotent and
resumable on its own (watermarks, upserts), so a rerun after a crash picks up where the data says it stopped.
The whole run holds the pipeline lock and is recorded in the run ledger.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from kallos import clock
from kallos.log import get_logger
from kallos.pipeline import schedule
from kallos.pipeline.ledger import Ledger, close_interrupted, last_success, new_run_id
from kallos.pipeline.lock import pipeline_lock
from kallos.pipeline.runner import Reporter, RunSummary, Step, call, run_status, run_steps
from kallos.settings import Settings
from kallos.store import Store, open_store

log = get_logger(__name__)

STEP_NAMES = ("universe", "details", "market", "indicators", "signals", "index")
BACKFILL_STEP_NAMES = ("universe", "details", "backfill", "indicators", "signals", "index")


@dataclass
class RunOptions:
    mode: str = "daily"
    """`daily` (the cron run) or `backfill` (a first load: the demo)."""
    coins: list[str] | None = None
    top: int | None = None
    since: dt.date | None = None
    include_inactive: bool = False
    full: bool = False
    """Recompute indicators and signals from the first bar."""
    force: bool = False
    """Run the scheduled steps (universe, index) even when they are not due."""
    progress: bool = False
    details_max_age_days: int = 30


def _last_date(store: Store, table: str, column: str = "date") -> dt.date | None:
    value = store.scalar(f'SELECT max("{column}") FROM {table}')
    if value is None:
        return None
    return pd.Timestamp(value).date()


def _api_counts(client: Any, before: tuple[int, int]) -> dict[str, int]:
    stats = client.stats
    return {"api_calls": stats.calls - before[0], "api_credits": stats.credits - before[1]}


def _with_api(client: Any, fn: Callable[[], Any]) -> Callable[[], Any]:
    """Wrap an async ingest step so its counts carry the API calls and credits it used."""

    async def wrapped() -> dict[str, Any]:
        before = (client.stats.calls, client.stats.credits)
        try:
            counts = dict(await fn() or {})
        finally:
            delta = _api_counts(client, before)
            log.debug("api usage", extra=delta)
        counts.update(delta)
        return counts

    return wrapped


def build_steps(
    store: Store, client: Any, settings: Settings, options: RunOptions, run_id: str
) -> list[Step]:
    """The ordered steps of one run, with the schedule's verdict on the periodic ones."""
    steps: list[Step] = []

    # --- universe: weekly -----------------------------------------------------------------------------------
    has_coins = bool(store.scalar("SELECT count(*) FROM coins"))
    if options.mode == "daily" and not options.force:
        due, reason = schedule.universe_due(
            clock.today(), last_success(store, "universe"), has_coins=has_coins
        )
    else:
        due, reason = True, "backfill"

    async def universe() -> dict[str, Any]:
        from kallos.ingest.universe import sync_universe

        return await sync_universe(store, client, settings)

    steps.append(
        Step("universe", _with_api(client, universe), skip_reason=None if due else f"not due: {reason}")
    )

    # --- coin details: when stale (the ingest step decides per coin from details_updated_at) ----------------
    async def details() -> dict[str, Any]:
        from kallos.ingest.details import refresh_details

        coins, top = options.coins, options.top
        if options.mode == "daily" and coins is None and top is None:
            # The daily run follows the tracked coins (those with market data), not all 15,000 listed ones.
            from kallos.ingest.select import tracked_coins

            coins = tracked_coins(store)
            if not coins:
                return {"status": "skipped", "reason": "no coins tracked yet (backfill some first)"}
        return await refresh_details(
            store, client, settings, coins=coins, top=top, max_age_days=options.details_max_age_days
        )

    steps.append(Step("details", _with_api(client, details)))

    # --- market data ----------------------------------------------------------------------------------------
    if options.mode == "backfill":

        async def market() -> dict[str, Any]:
            from kallos.ingest.backfill import backfill

            return await backfill(
                store,
                client,
                settings,
                coins=options.coins,
                top=options.top,
                since=options.since,
                include_inactive=options.include_inactive,
                progress=options.progress,
            )

        market_name = "backfill"
    else:

        async def market() -> dict[str, Any]:
            from kallos.ingest.update import daily_update

            counts = await daily_update(store, client, settings, progress=options.progress)
            if counts.get("status") == "skipped" and not counts.get("reason"):
                counts["reason"] = "no coins tracked yet: start with `kallos market backfill --top N`"
            return counts

        market_name = "market"
    steps.append(Step(market_name, _with_api(client, market)))

    # --- analytics ------------------------------------------------------------------------------------------
    def indicators() -> dict[str, Any]:
        from kallos.indicators.step import compute_step

        return compute_step(store, settings, coins=options.coins, full=options.full)

    def signals() -> dict[str, Any]:
        from kallos.signals.step import generate_step

        return call(generate_step, store, settings, coins=options.coins, full=options.full, run_id=run_id)

    steps.append(Step("indicators", indicators, requires=(market_name,)))
    steps.append(Step("signals", signals, requires=("indicators",)))

    # --- index: every month that has ended and is not built yet ---------------------------------------------
    def index() -> dict[str, Any]:
        from kallos.index.step import build_step

        if options.mode == "daily" and not options.force:
            due, why = schedule.index_due(
                _last_date(store, "daily_market_data"), _last_date(store, "daily_index_values")
            )
            if not due:
                return {"status": "skipped", "reason": f"not due: {why}"}
        return call(build_step, store, settings, run_id=run_id)

    steps.append(Step("index", index, requires=(market_name,)))
    return steps


async def _run_async(
    store: Store, settings: Settings, options: RunOptions, ledger: Ledger, reporter: Reporter | None
) -> tuple[list[Any], dict[str, Any]]:
    from kallos.coingecko.client import CoinGeckoClient

    client = CoinGeckoClient.from_settings(settings)
    async with client:
        steps = build_steps(store, client, settings, options, ledger.run_id)
        results = await run_steps(steps, ledger, reporter)
        return results, client.stats.as_dict()


def run_pipeline(
    settings: Settings,
    options: RunOptions | None = None,
    *,
    command: str = "run",
    reporter: Reporter | None = None,
    store: Store | None = None,
) -> RunSummary:
    """Take the lock, record the run, run the steps; return the summary (its `exit_code` says how it went).

    Errors before any step can start (the lock, the database, a configuration error) are raised, after the run
    is recorded as failed where the ledger is reachable.
    """
    options = options or RunOptions()
    run_id = new_run_id()
    t0 = time.perf_counter()
    with pipeline_lock(settings.database_url, run_id=run_id):
        own = store is None
        st = store if store is not None else open_store(settings.database_url, partitioned=settings.partition_request)
        try:
            st.init()
            ledger = Ledger(st, command, run_id)
            ledger.start_run()
            interrupted = close_interrupted(st, run_id)
            if interrupted:
                log.warning("closed %d run(s) left running by a process that died", interrupted)
            log.info("run started", extra={"run_id": run_id, "command": command, "mode": options.mode})
            try:
                results, api = asyncio.run(_run_async(st, settings, options, ledger, reporter))
            except BaseException as exc:
                ledger.finish_run("failed", {"duration_seconds": round(time.perf_counter() - t0, 3)}, exc)
                raise
            summary = RunSummary(run_id, command, run_status(results), results, time.perf_counter() - t0, api)
            ledger.finish_run(summary.status, summary.as_counts(), _run_error(summary))
            log.info("run finished", extra={"run_id": run_id, "status": summary.status, **summary.totals()})
            return summary
        finally:
            if own:
                st.close()


def _run_error(summary: RunSummary) -> str | None:
    bad = [s for s in summary.steps if s.status in ("failed", "partial")]
    if not bad:
        return None
    return "; ".join(f"{s.name}: {s.error or s.status}" for s in bad)[:4000]
