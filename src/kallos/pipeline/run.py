"""`kallos run` (the seed's daily workflow) and the demo's backfill run, as ordered lists of steps.

Daily: universe (Mondays, or when the last sync is older than 7 days) -> coin details (when stale) -> market
data update -> indicators -> signals -> index (each index with a new final day or a changed input). Backfill (the demo,
a first load): universe -> details -> backfill -> indicators -> signals -> index. Each step is idempotent and
resumable on its own (watermarks, upserts), so a rerun after a crash picks up where the data says it stopped.
The whole run holds the pipeline lock and is recorded in the run ledger.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from kallos import clock
from kallos.log import get_logger
from kallos.pipeline import schedule
from kallos.pipeline.contract import NullProgress, Progress, StepContext, StepFn, StepOutcome
from kallos.pipeline.ledger import Ledger, close_interrupted, last_success, new_run_id
from kallos.pipeline.lock import pipeline_lock
from kallos.pipeline.progress import as_progress
from kallos.pipeline.runner import Reporter, RunSummary, Step, StepResult, run_status, run_steps
from kallos.settings import Settings
from kallos.store import Store, open_store

log = get_logger(__name__)

STEP_NAMES = (
    "universe", "details", "market", "indicators", "signals", "index",
    "hourly", "weekly", "indicators_1h", "signals_1h", "indicators_1w", "signals_1w",
)  # fmt: skip
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


def build_steps(store: Store, settings: Settings, options: RunOptions) -> list[Step]:
    """The ordered steps of one run, with the schedule's verdict on the periodic ones."""
    from kallos.index.step import index_step
    from kallos.indicators.step import indicators_step
    from kallos.ingest.backfill import backfill_step
    from kallos.ingest.details import details_step
    from kallos.ingest.universe import universe_step
    from kallos.ingest.update import update_step
    from kallos.signals.step import signals_step

    steps: list[Step] = []

    # --- universe: weekly -----------------------------------------------------------------------------------
    has_coins = bool(store.scalar("SELECT count(*) FROM coins"))
    if options.mode == "daily" and not options.force:
        due, reason = schedule.universe_due(
            clock.today(), last_success(store, "universe"), has_coins=has_coins
        )
    else:
        due, reason = True, "backfill"
    steps.append(Step("universe", universe_step, skip_reason=None if due else f"not due: {reason}"))

    # --- coin details: when stale (the ingest step decides per coin from details_updated_at) ----------------
    async def details(ctx: StepContext) -> StepOutcome:
        coins, top = options.coins, options.top
        if options.mode == "daily" and coins is None and top is None:
            # The daily run follows the tracked coins (those with market data), not all 15,000 listed ones.
            from kallos.ingest.select import tracked_coins

            coins = tracked_coins(ctx.store)
            if not coins:
                return StepOutcome.skipped("no coins tracked yet (backfill some first)")
        return await details_step(ctx, coins=coins, top=top, max_age_days=options.details_max_age_days)

    steps.append(Step("details", details))

    # --- market data ----------------------------------------------------------------------------------------
    market_name = "backfill" if options.mode == "backfill" else "market"
    if options.mode == "backfill":
        market: StepFn = partial(
            backfill_step,
            coins=options.coins,
            top=options.top,
            since=options.since,
            include_inactive=options.include_inactive,
        )
    else:
        market = update_step
    steps.append(Step(market_name, market))

    # --- analytics ------------------------------------------------------------------------------------------
    steps.append(
        Step(
            "indicators",
            partial(indicators_step, coins=options.coins, full=options.full),
            requires=(market_name,),
        )
    )
    steps.append(
        Step("signals", partial(signals_step, coins=options.coins, full=options.full), requires=("indicators",))
    )

    # --- index: every index with a new final day or a changed input (docs/decisions.md#D61) ---------------
    steps.append(
        Step(
            "index",
            partial(index_step, only_due=options.mode == "daily" and not options.force),
            requires=(market_name,),
        )
    )

    # --- other timeframes (daily run): hourly bars of the hourly universe, weekly bars, their analytics -------
    if options.mode == "daily":
        from kallos.ingest.hourly import hourly_update_step
        from kallos.ingest.weekly import weekly_bars_step

        steps.append(Step("hourly", hourly_update_step))
        steps.append(Step("weekly", weekly_bars_step(coins=options.coins), requires=(market_name,)))
        for tf, source in (("1h", "hourly"), ("1w", "weekly")):
            steps.append(
                Step(
                    f"indicators_{tf}",
                    partial(indicators_step, coins=options.coins, full=options.full, timeframe=tf),
                    requires=(source,),
                )
            )
            steps.append(
                Step(
                    f"signals_{tf}",
                    partial(signals_step, coins=options.coins, full=options.full, timeframe=tf),
                    requires=(f"indicators_{tf}",),
                )
            )
    return steps


async def _run_async(
    ctx: StepContext, steps: Callable[[Store], list[Step]], ledger: Ledger, reporter: Reporter | None, *, api: bool
) -> tuple[list[StepResult], dict[str, Any]]:
    if not api:
        return await run_steps(steps(ctx.store), ledger, ctx, reporter), {}
    from kallos.coingecko.client import CoinGeckoClient

    client = CoinGeckoClient.from_settings(ctx.settings)
    async with client:
        ctx = replace(ctx, client=client)
        results = await run_steps(steps(ctx.store), ledger, ctx, reporter)
        usage = client.stats.as_dict()
        key = await _key_usage(client)
        if key:
            usage["key"] = key
        return results, usage


async def _key_usage(client: Any) -> dict[str, Any] | None:
    """On paid plans, the key's monthly credits left from `/key`, for the ledger and the metrics (D94)."""
    if not client.plan.paid:
        return None
    try:
        info = await client.key_info()
    except Exception as exc:  # noqa: BLE001 - usage figures only decorate the run; never fail it for them
        log.warning("could not read the key's credit usage from /key: %s", exc)
        return None
    return {
        "plan": info.plan,
        "monthly_credits": info.api_key_monthly_call_credit or info.monthly_call_credit,
        "credits_used": info.api_key_current_total_monthly_calls or info.current_total_monthly_calls,
        "credits_left": info.current_remaining_monthly_calls,
    }


def run_pipeline(
    settings: Settings,
    options: RunOptions | None = None,
    *,
    command: str = "run",
    reporter: Reporter | None = None,
    store: Store | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Take the lock, record the run, run the steps; return the summary (its `exit_code` says how it went).

    Errors before any step can start (the lock, the database, a configuration error) are raised, after the run
    is recorded as failed where the ledger is reachable. A bug in a step is recorded and raised
    (docs/decisions.md#D39).
    """
    options = options or RunOptions()
    if progress is None:
        progress = as_progress(options.progress)
    return run_ledgered(
        settings,
        command,
        lambda st: build_steps(st, settings, options),
        api=True,
        reporter=reporter,
        store=store,
        progress=progress,
        log_extra={"mode": options.mode},
    )


def run_single_step(
    settings: Settings,
    command: str,
    step: StepFn,
    *,
    name: str | None = None,
    api: bool = False,
    progress: Progress | None = None,
    store: Store | None = None,
) -> StepResult:
    """Run one step the way `kallos run` runs its steps (docs/decisions.md#D38).

    The pipeline lock is held (LockHeldError, exit 5, when another run has it), the run and its one step are
    recorded in the ledger under `command` (e.g. `market backfill`), and `api=True` gives the step a CoinGecko
    client. Returns the step's result; an exception the step raised is raised again after the ledger is
    written, so the command keeps its own error message and exit code.
    """
    summary = run_ledgered(
        settings,
        command,
        lambda _st: [Step(name or command.split()[-1], step)],
        api=api,
        store=store,
        progress=progress or NullProgress(),
    )
    (result,) = summary.steps
    if result.exception is not None:
        raise result.exception
    return result


def run_ledgered(
    settings: Settings,
    command: str,
    steps: Callable[[Store], list[Step]],
    *,
    api: bool,
    reporter: Reporter | None = None,
    store: Store | None = None,
    progress: Progress | None = None,
    log_extra: dict[str, Any] | None = None,
) -> RunSummary:
    """The frame every write runs in: the lock, the store, the ledger's run row, then `steps(store)`."""
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
            log.info("run started", extra={"run_id": run_id, "command": command, **(log_extra or {})})
            ctx = StepContext(
                store=st,
                settings=settings,
                run_id=run_id,
                now=clock.utcnow(),
                progress=progress or NullProgress(),
            )
            try:
                results, api_stats = asyncio.run(_run_async(ctx, steps, ledger, reporter, api=api))
            except BaseException as exc:
                ledger.finish_run("failed", {"duration_seconds": round(time.perf_counter() - t0, 3)}, exc)
                raise
            summary = RunSummary(
                run_id, command, run_status(results), results, time.perf_counter() - t0, api_stats
            )
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
