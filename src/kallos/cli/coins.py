"""`kallos coins sync|details`: the coin universe and its details (docs/ingestion.md)."""

from __future__ import annotations

import asyncio
from typing import Any

import typer

from kallos.cli.common import DB_OPTION, NOW_OPTION, console, open_settings_store, parse_coins, setup
from kallos.errors import PartialFailure

coins_app = typer.Typer(help="Load the coin universe and coin details from CoinGecko.", no_args_is_help=True)

COINS_OPTION = typer.Option(None, "--coins", help="Comma-separated CoinGecko ids (bitcoin,ethereum).")
TOP_OPTION = typer.Option(
    None, "--top", min=1, help="Today's top N by market cap (⌈N/250⌉ /coins/markets calls)."
)


def run_step(fn: Any, settings: Any, **kwargs: Any) -> dict[str, Any]:
    """Open the store and the client, run one ingestion coroutine, close both."""
    from kallos.coingecko import CoinGeckoClient

    async def go() -> dict[str, Any]:
        with open_settings_store(settings) as store:
            store.init()
            async with CoinGeckoClient.from_settings(settings) as client:
                result = await fn(store, client, settings, **kwargs)
                result.setdefault("api_credits", client.stats.credits)
                return result

    return asyncio.run(go())


def finish(result: dict[str, Any], what: str) -> None:
    """Print the counts; a partial result exits 3 naming the failed coins."""
    shown = {k: v for k, v in result.items() if k != "failed"}
    console.print(f"{what}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    failed = result.get("failed") or {}
    if failed:
        first = "; ".join(f"{c}: {m}" for c, m in list(failed.items())[:5])
        raise PartialFailure(f"{len(failed)} coin(s) failed ({first})", failures=failed)


@coins_app.command("sync")
def sync(database_url: str | None = DB_OPTION, now: str | None = NOW_OPTION) -> None:
    """Load /coins/list (active and inactive) into `coins`; sweep the exclusion categories."""
    from kallos.ingest.universe import sync_universe

    settings = setup(now=now, database_url=database_url)
    finish(run_step(sync_universe, settings), "coins synced")


@coins_app.command("details")
def details(
    coins: str | None = COINS_OPTION,
    top: int | None = TOP_OPTION,
    max_age_days: int = typer.Option(30, "--max-age-days", min=0, help="Refresh details older than this."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="At most this many coins per run."),
    include_inactive: bool = typer.Option(False, "--include-inactive", help="Also delisted coins."),
    database_url: str | None = DB_OPTION,
    now: str | None = NOW_OPTION,
) -> None:
    """Load description, links, genesis date, categories, platforms and metrics for stale coins."""
    from kallos.ingest.details import refresh_details

    if coins and top:
        raise typer.BadParameter("give either --coins or --top", param_hint="--coins")
    settings = setup(now=now, database_url=database_url)
    result = run_step(
        refresh_details,
        settings,
        coins=parse_coins(coins),
        top=top,
        max_age_days=max_age_days,
        limit=limit,
        include_inactive=include_inactive,
    )
    finish(result, "details refreshed")


def register(app: typer.Typer) -> None:
    app.add_typer(coins_app, name="coins")
