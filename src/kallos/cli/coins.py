"""`kallos coins sync|details`: the coin universe and its details (docs/ingestion.md)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

import typer

from kallos.cli.common import DB_OPTION, NOW_OPTION, console, parse_coins, parse_date, setup
from kallos.errors import PartialFailure
from kallos.pipeline.contract import Progress, StepFn, StepOutcome

if TYPE_CHECKING:
    from kallos.settings import Settings

coins_app = typer.Typer(help="Load the coin universe and coin details from CoinGecko.", no_args_is_help=True)

COINS_OPTION = typer.Option(None, "--coins", help="Comma-separated CoinGecko ids (bitcoin,ethereum).")
TOP_OPTION = typer.Option(
    None, "--top", min=1, help="Today's top N by market cap (⌈N/250⌉ /coins/markets calls)."
)


def run_step(
    settings: Settings,
    command: str,
    step: StepFn,
    *,
    name: str,
    api: bool = True,
    progress: Progress | None = None,
) -> StepOutcome:
    """Run one step under the pipeline lock, recorded in the ledger as `command` (docs/decisions.md#D38)."""
    from kallos.pipeline.run import run_single_step

    return run_single_step(settings, command, step, name=name, api=api, progress=progress).outcome


def finish(outcome: StepOutcome, what: str) -> None:
    """Print the counts; a partial result exits 3 naming the failed coins."""
    shown = {k: v for k, v in outcome.counts().items() if k != "failed"}
    console.print(f"{what}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    failed = dict(outcome.failures)
    if failed:
        first = "; ".join(f"{c}: {m}" for c, m in list(failed.items())[:5])
        raise PartialFailure(f"{len(failed)} coin(s) failed ({first})", failures=failed)


@coins_app.command("sync")
def sync(database_url: str | None = DB_OPTION, now: str | None = NOW_OPTION) -> None:
    """Load /coins/list (active and inactive) into `coins`; sweep the exclusion categories."""
    from kallos.ingest.universe import universe_step

    settings = setup(now=now, database_url=database_url)
    finish(run_step(settings, "coins sync", universe_step, name="universe"), "coins synced")


@coins_app.command("details")
def details(
    coins: str | None = COINS_OPTION,
    top: int | None = TOP_OPTION,
    max_age_days: int = typer.Option(30, "--max-age-days", min=0, help="Refresh details older than this."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many coins per run."),
    include_inactive: bool = typer.Option(False, "--include-inactive", help="Also delisted coins."),
    history: bool = typer.Option(
        False, "--history", help="Backfill coin_details_history from /coins/{id}/history (with --since)."
    ),
    since: str | None = typer.Option(None, "--since", help="With --history: the first day (YYYY-MM-DD)."),
    database_url: str | None = DB_OPTION,
    now: str | None = NOW_OPTION,
) -> None:
    """Load description, links, genesis date, categories, platforms and metrics for stale coins; each refresh
    also records the day's metrics in coin_details_history. With --history --since DATE, backfill earlier days
    (one call per coin and day: price it first with `kallos plan details-history`)."""
    from kallos.ingest.details import details_step

    if coins and top:
        raise typer.BadParameter("give either --coins or --top", param_hint="--coins")
    if history != (since is not None):
        raise typer.BadParameter("--history and --since go together", param_hint="--history")
    settings = setup(now=now, database_url=database_url)
    if history:
        from kallos.ingest.alt_backfill import details_history_step

        backfill = partial(details_history_step, coins=parse_coins(coins), top=top, since=parse_date(since, "--since"))
        finish(
            run_step(settings, "coins details --history", backfill, name="details_history"),
            "details history backfilled",
        )
        return
    step = partial(
        details_step,
        coins=parse_coins(coins),
        top=top,
        max_age_days=max_age_days,
        limit=limit,
        include_inactive=include_inactive,
    )
    finish(run_step(settings, "coins details", step, name="details"), "details refreshed")


def register(app: typer.Typer) -> None:
    app.add_typer(coins_app, name="coins")
