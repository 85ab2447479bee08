"""`kallos db init|status`: create or upgrade the schema, show its version and row counts."""

from __future__ import annotations

import typer
from rich.table import Table as RichTable

from kallos.cli.common import DB_OPTION, console, open_settings_store, setup

db = typer.Typer(help="Create, upgrade and inspect the database.", no_args_is_help=True)


@db.command("init")
def init(
    database_url: str | None = DB_OPTION,
    partition_by_year: bool = typer.Option(
        None,
        "--partition-by-year/--no-partition-by-year",
        help="PostgreSQL: range-partition the daily fact tables by year (when first created). "
        "Default: KALLOS_PG_PARTITION_BY_YEAR.",
    ),
) -> None:
    """Create or upgrade the schema (safe to run again; never while a run writes: exit 5)."""
    from kallos.pipeline.lock import pipeline_lock

    settings = setup(database_url=database_url, pg_partition_by_year=partition_by_year)
    # A migration under a running pipeline would change tables beneath its writes (docs/decisions.md#D38).
    with pipeline_lock(settings.database_url), open_settings_store(settings) as store:
        version = store.init()
        info = store.status()
        layout = ", daily facts partitioned by year" if info["partitioned"] else ""
        console.print(f"database ready: {info['url']} (schema version {version}{layout})")


@db.command("status")
def status(database_url: str | None = DB_OPTION) -> None:
    """Show the backend, schema version and row counts."""
    settings = setup(database_url=database_url)
    with open_settings_store(settings) as store:
        info = store.status()
    layout = "  layout: partitioned by year" if info.get("partitioned") else ""
    console.print(f"backend: {info['backend']}  url: {info['url']}  schema version: {info['version']}{layout}")
    if not info["version"]:
        console.print("the schema is not created yet: run `kallos db init`")
        return
    table = RichTable("table", "rows")
    for name, count in info["tables"].items():
        table.add_row(name, f"{count:,}")
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(db, name="db")
