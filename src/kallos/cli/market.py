"""`kallos market backfill|update|gaps` and `kallos plan backfill` (docs/ingestion.md)."""

from __future__ import annotations

import asyncio
import math
from functools import partial
from typing import Any

import typer
from rich.console import Console
from rich.table import Table as RichTable

from kallos.cli.coins import COINS_OPTION, TOP_OPTION, finish, run_step
from kallos.cli.common import (
    DB_OPTION,
    NOW_OPTION,
    TIMEFRAME_OPTION,
    console,
    open_settings_store,
    parse_coins,
    parse_date,
    print_json,
    print_json_lines,
    setup,
)
from kallos.cli.progress import progress_for

market = typer.Typer(help="Daily market data: backfill, daily update, coverage.", no_args_is_help=True)
plan_app = typer.Typer(help="Dry runs: what a command costs on the configured plan.", no_args_is_help=True)

SINCE_OPTION = typer.Option(None, "--since", help="First day to load (YYYY-MM-DD); default: all history.")
INACTIVE_OPTION = typer.Option(
    False, "--include-inactive", help="Also backfill delisted coins (no survivorship)."
)
PROGRESS_OPTION = typer.Option(
    None,
    "--progress/--no-progress",
    help="Progress: a bar on a terminal, else a plain line every few seconds (default: on).",
)


@market.command("backfill")
def backfill_cmd(
    coins: str | None = COINS_OPTION,
    top: int | None = TOP_OPTION,
    since: str | None = SINCE_OPTION,
    include_inactive: bool = INACTIVE_OPTION,
    progress: bool | None = PROGRESS_OPTION,
    timeframe: str = TIMEFRAME_OPTION,
    database_url: str | None = DB_OPTION,
    now: str | None = NOW_OPTION,
) -> None:
    """Load daily close, market cap and volume (and candles on paid plans), resuming from the watermarks.

    `--timeframe 1h` loads hourly bars (docs/timeframes.md); `--timeframe 1w` builds weekly bars from the stored
    final daily bars (no API call).
    """
    from kallos.ingest.backfill import backfill_step

    if coins and top:
        raise typer.BadParameter("give either --coins or --top", param_hint="--coins")
    since_d = parse_date(since, "--since")
    settings = setup(now=now, database_url=database_url)
    if timeframe == "1h":
        from kallos.ingest.hourly import hourly_backfill_step

        step_1h = hourly_backfill_step(coins=parse_coins(coins), top=top, since=since_d)
        out = run_step(
            settings, "market backfill --timeframe 1h", step_1h, name="hourly", progress=progress_for(progress)
        )
        finish(out, "hourly backfill")
        return
    if timeframe == "1w":
        from kallos.ingest.weekly import weekly_bars_step

        step_1w = weekly_bars_step(coins=parse_coins(coins))
        finish(run_step(settings, "market backfill --timeframe 1w", step_1w, name="weekly", api=False), "weekly bars")
        return
    step = partial(
        backfill_step, coins=parse_coins(coins), top=top, since=since_d, include_inactive=include_inactive
    )
    outcome = run_step(settings, "market backfill", step, name="backfill", progress=progress_for(progress))
    finish(outcome, "backfill")


@market.command("update")
def update_cmd(
    progress: bool | None = PROGRESS_OPTION,
    database_url: str | None = DB_OPTION,
    now: str | None = NOW_OPTION,
) -> None:
    """Refresh every tracked coin from /coins/markets; fill the gaps the watermarks show."""
    from kallos.ingest.update import update_step

    settings = setup(now=now, database_url=database_url)
    outcome = run_step(settings, "market update", update_step, name="market", progress=progress_for(progress))
    finish(outcome, "update")


@market.command("gaps")
def gaps_cmd(
    coins: str | None = COINS_OPTION,
    only_gaps: bool = typer.Option(False, "--only-gaps", help="Only coins with holes or behind."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
    database_url: str | None = DB_OPTION,
    now: str | None = NOW_OPTION,
) -> None:
    """Coverage per coin: stored span, rows, days missing at the source, holes to re-fetch, days behind."""
    from kallos import clock
    from kallos.ingest.coverage import coverage_report

    settings = setup(now=now, database_url=database_url)
    with open_settings_store(settings) as store:
        store.init()
        report = coverage_report(store, last_final=clock.last_final_day(), coins=parse_coins(coins))
    if only_gaps:
        report = report[(report["holes"] > 0) | (report["behind_days"].fillna(0) > 0)]
    if as_json:
        print_json_lines(report.to_dict("records"))
        return
    headers = {
        "checked_through": "checked",
        "confirmed_missing": "missing",
        "span_days": "span",
        "behind_days": "behind",
    }
    table = RichTable(*(headers.get(c, c) for c in report.columns), box=None, pad_edge=False)
    for row in report.itertuples(index=False):
        table.add_row(*("-" if v is None or v != v else str(v) for v in row))
    Console(width=max(console.width, 150)).print(table)  # a report: never squeeze it to 80 columns
    console.print(f"{len(report)} coin(s); {int((report['holes'] > 0).sum())} with holes to re-fetch")


@plan_app.command("backfill")
def plan_backfill(
    coins: str | None = COINS_OPTION,
    top: int | None = TOP_OPTION,
    since: str | None = SINCE_OPTION,
    include_inactive: bool = INACTIVE_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the estimate as JSON."),
    timeframe: str = TIMEFRAME_OPTION,
    database_url: str | None = DB_OPTION,
    now: str | None = NOW_OPTION,
) -> None:
    """How many calls and credits a backfill costs on the configured plan, and how long it takes.

    Nothing is written. `--top N` asks `/coins/markets` for today's top N (the calls the backfill itself makes), and
    on the pro plan without KALLOS_RATE_LIMIT_PER_MINUTE `/key` says the rate; no other call is made.
    """
    from kallos import clock
    from kallos.ingest.coverage import estimate_backfill

    if coins and top:
        raise typer.BadParameter("give either --coins or --top", param_hint="--coins")
    since_d = parse_date(since, "--since")
    settings = setup(now=now, database_url=database_url)
    if timeframe == "1w":
        console.print("weekly bars are built from stored daily bars: 0 calls, 0 credits")
        return
    if timeframe == "1h":
        from kallos.ingest.hourly import estimate_hourly

        with open_settings_store(settings) as store:
            store.init()
            est = estimate_hourly(
                store, settings, now=clock.utcnow(), coins=parse_coins(coins), top=top, since=since_d
            )
    else:
        top_ids, rate = asyncio.run(_listing(settings, top))
        with open_settings_store(settings) as store:
            store.init()
            est = estimate_backfill(
                store,
                settings,
                now=clock.utcnow(),
                last_final=clock.last_final_day(),
                coins=parse_coins(coins),
                top=top,
                since=since_d,
                include_inactive=include_inactive,
                rate_per_minute=rate,
                top_ids=top_ids,
            )
    if as_json:
        print_json(est)
        return
    console.print(
        f"plan {est['plan']}: {est['coins_to_fetch']} of {est['coins']} coin(s) to fetch"
        + (f" (the API lists {est['listed']} coins, fewer than --top {top})" if top and est["listed"] < top else "")
        + ", "
        f"{est['calls']:,} call(s), {est['credits']:,} credit(s), about {est['minutes']:.1f} min "
        f"at {est['rate_per_minute']:g} calls/min"
    )
    for endpoint, n in est["by_endpoint"].items():
        console.print(f"  {endpoint}: {n:,}")
    if est["clamped"]:
        console.print(
            f"  {est['clamped']} coin(s) limited to the past {est['history_days']} days on this plan"
        )


async def _listing(settings: Any, top: int | None) -> tuple[list[str] | None, float | None]:
    """Today's top N as the API lists them (None without --top) and the rate the client would use
    (docs/decisions.md#D56). Only asks the API what the backfill itself would ask first."""
    from kallos.coingecko import CoinGeckoClient, plans

    needs_key_rate = settings.rate_limit_per_minute is None and plans.get_plan(settings.coingecko_plan).paid
    if not top and not needs_key_rate:
        return None, None
    async with CoinGeckoClient.from_settings(settings) as client:
        rate = await client.effective_rate()
        if not top:
            return None, rate
        per_page = min(plans.MARKETS_MAX_PER_PAGE, top)
        rows = await client.coins_markets(per_page=per_page, pages=math.ceil(top / per_page))
        return list(dict.fromkeys(r.id for r in rows))[:top], rate


@plan_app.command("daily")
def plan_daily(
    as_json: bool = typer.Option(False, "--json", help="Print the estimate as JSON."),
    database_url: str | None = DB_OPTION,
    now: str | None = NOW_OPTION,
) -> None:
    """What the next daily run's market step costs in calls (and the hourly step beside it), coin by coin.

    Nothing is written and no market data is asked: it prices each tracked coin's window from its watermarks and
    the exact-close universe from the ranks of the last sweep (docs/decisions.md#D117, D121); on the pro plan
    without KALLOS_RATE_LIMIT_PER_MINUTE `/key` says the rate. Run it at the time the cron job runs (`--now`):
    inside the close window the sweep finishes the day of the coins outside the universe.
    """
    import datetime as dt

    from kallos import clock
    from kallos.ingest.update import estimate_daily

    settings = setup(now=now, database_url=database_url)
    _, rate = asyncio.run(_listing(settings, None))
    when = clock.utcnow()
    with open_settings_store(settings) as store:
        store.init()
        est = estimate_daily(store, settings, now=when, rate_per_minute=rate)
        if settings.hourly_universe > 0:
            from kallos.ingest.hourly import DAILY_RUN_FIRST_DAYS, estimate_hourly

            first = (when - dt.timedelta(days=DAILY_RUN_FIRST_DAYS)).date()
            hourly = estimate_hourly(store, settings, now=when, coins=None, top=None, since=first)
            est["hourly"] = {k: hourly[k] for k in ("coins", "coins_to_fetch", "calls", "by_endpoint")}
    if as_json:
        print_json(est)
        return
    mode = est["mode"] + (f", exact-close universe {est['exact_coins']:,} coin(s)" if est["mode"] == "mixed" else "")
    console.print(
        f"plan {est['plan']}, close source {mode}: market step {est['calls']:,} call(s) for {est['coins']:,} "
        f"tracked coin(s) = {est['calls_per_coin_day']:.3f} calls per coin per day, {est['credits']:,} credit(s), "
        f"about {est['minutes']:.1f} min at {est['rate_per_minute']:g} calls/min"
    )
    for endpoint, n in est["by_endpoint"].items():
        console.print(f"  {endpoint}: {n:,}")
    console.print(
        f"  {est['coins_to_fetch']:,} coin(s) to fetch: {est['gap_fills']:,} gap fill(s), "
        f"{est['exact_entries']:,} entering the exact universe; {est['sweep_closes']:,} close(s) from the sweep"
        + ("" if est["close_window"] else " (outside the close window: none, the day comes from charts)")
    )
    console.print(
        f"  a steady day: {est['steady_calls']:,} call(s); every coin on charts (KALLOS_DAILY_CLOSE_SOURCE=chart): "
        f"{est['chart_mode_calls']:,}"
    )
    if est["entrant_calls_max"]:
        console.print(f"  plus up to {est['entrant_calls_max']:,} call(s) for new entrants of KALLOS_UNIVERSE_TOP")
    if "hourly" in est:
        h = est["hourly"]
        console.print(f"  hourly step: {h['calls']:,} call(s) for {h['coins_to_fetch']:,} of {h['coins']:,} coin(s)")


@plan_app.command("details-history")
def plan_details_history(
    coins: str | None = COINS_OPTION,
    top: int | None = typer.Option(None, "--top", min=1, help="The N best stored market_cap_rank coins."),
    since: str = typer.Option(..., "--since", help="First day to backfill (YYYY-MM-DD)."),
    as_json: bool = typer.Option(False, "--json", help="Print the estimate as JSON."),
    database_url: str | None = DB_OPTION,
    now: str | None = NOW_OPTION,
) -> None:
    """What `kallos coins details --history` costs: one /coins/{id}/history call per coin and missing day."""
    from kallos import clock
    from kallos.ingest.alt_backfill import plan_history, resolve

    since_d = parse_date(since, "--since")
    assert since_d is not None
    settings = setup(now=now, database_url=database_url)
    with open_settings_store(settings) as store:
        store.init()
        ids = resolve(store, parse_coins(coins), top)
        plan = plan_history(store, settings.coingecko_plan, coins=ids, since=since_d, now=clock.utcnow())
    est = plan.estimate(settings.effective_rate_limit)
    if as_json:
        print_json(est)
        return
    console.print(
        f"plan {est['plan']}: {est['coins']} coin(s) with missing days {est['first_day']} .. {est['last_day']}, "
        f"{est['calls']:,} call(s), {est['credits']:,} credit(s), about {est['minutes']:.1f} min "
        f"at {est['rate_per_minute']:g} calls/min"
    )
    if est["clamped"]:
        console.print(f"  limited to the past {plans_history_days(est['plan'])} days on this plan")


def plans_history_days(plan: str) -> int | None:
    from kallos.coingecko import plans

    return plans.get_plan(plan).history_days


def register(app: typer.Typer) -> None:
    app.add_typer(market, name="market")
    app.add_typer(plan_app, name="plan")
