"""`kallos index build|report`: the crypto index from the store, its metrics and charts (docs/index.md)."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path
from typing import Any

import typer
from rich.table import Table as RichTable

from kallos.cli.common import (
    DB_OPTION,
    NOW_OPTION,
    console,
    err_console,
    open_settings_store,
    parse_date,
    setup,
)

START_OPTION = typer.Option(None, "--start", help="First month to write (YYYY-MM-DD: its whole month).")
END_OPTION = typer.Option(None, "--end", help="Last month to write (YYYY-MM-DD: its whole month).")
OUTPUT_OPTION = typer.Option(Path("reports"), "--output-dir", "-o", help="Where to write PNG and HTML.")

index = typer.Typer(help="Build the market-cap-weighted crypto index and report on it.", no_args_is_help=True)


@index.command("build")
def build(
    start: str | None = START_OPTION,
    end: str | None = END_OPTION,
    database_url: str | None = DB_OPTION,
    now: str | None = NOW_OPTION,
) -> None:
    """Rebuild the index from its base date and write the months that changed (idempotent)."""
    from kallos.cli.coins import run_step
    from kallos.index.step import index_step

    start_d, end_d = parse_date(start, "--start"), parse_date(end, "--end")
    if start_d and end_d and start_d > end_d:
        raise typer.BadParameter("--start is after --end", param_hint="--start")
    settings = setup(now=now, database_url=database_url)
    outcome = run_step(
        settings, "index build", partial(index_step, start=start_d, end=end_d), name="index", api=False
    )
    if outcome.status == "skipped":
        err_console.print(f"[yellow]index skipped:[/yellow] {outcome.reason or ''}")
        return
    result = outcome.extra
    console.print(
        f"index built from {result['base_date']} through {result['through']}: "
        f"{result['months_written']} month(s) of constituents, {result['value_rows']} daily value(s), "
        f"{result['turnover_rows']} turnover row(s) written; {result['fills']} filled close(s)"
    )


def _show(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:.3f}" if "sharpe" in key else f"{value * 100:.2f}%"
    return str(value)


@index.command("report")
def report(
    output_dir: Path = OUTPUT_OPTION,
    database_url: str | None = DB_OPTION,
    now: str | None = NOW_OPTION,
) -> None:
    """Print the metrics; write the level with drawdown and the weights over time as PNG and HTML."""
    from kallos.index.step import report_step

    settings = setup(now=now, database_url=database_url)
    with open_settings_store(settings) as store:
        store.init()
        out = report_step(store, output_dir)
    table = RichTable(
        "metric", "value", title=f"Kallos index {out['base_date']:%Y-%m-%d} .. {out['through']:%Y-%m-%d}"
    )
    for key, value in out["metrics"].items():
        table.add_row(key, _show(key, value))
    console.print(table)
    for path in out["paths"].values():
        console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(index, name="index")
