"""`kallos signals generate|evaluate`: trading signals from the stored indicators, and how they did."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, SupportsFloat

import typer
from rich import box
from rich.table import Table as RichTable

from kallos.cli.common import (
    DB_OPTION,
    NOW_OPTION,
    TIMEFRAME_OPTION,
    console,
    open_settings_store,
    parse_coins,
    parse_date,
    setup,
)
from kallos.errors import InputError
from kallos.files import write_atomically

if TYPE_CHECKING:
    import pandas as pd

CONFIG_OPTION = typer.Option(
    None, "--config", help="A signal_generation.json; overrides KALLOS_SIGNAL_CONFIG.", dir_okay=False
)
OUTPUT_OPTION = typer.Option(None, "--output", help="Also write the report to FILE.csv or FILE.parquet.")

signals = typer.Typer(help="Trading signals from the stored indicators.", no_args_is_help=True)


@signals.command("generate")
def generate(
    coins: str | None = typer.Option(None, "--coins", help="Comma-separated CoinGecko ids (default: all)."),
    full: bool = typer.Option(False, "--full", help="Recompute every day, replacing the stored rows."),
    config: Path | None = CONFIG_OPTION,
    timeframe: str = TIMEFRAME_OPTION,
    now: str | None = NOW_OPTION,
    database_url: str | None = DB_OPTION,
) -> None:
    """Compute rule and composite signals for new (or changed) bars of a timeframe and store them."""
    from kallos.cli.coins import run_step
    from kallos.signals.step import resolve_config, signals_step

    settings = setup(now=now, database_url=database_url)
    cfg = resolve_config(settings, config)  # a bad file fails before the database is opened
    step = partial(signals_step, coins=parse_coins(coins), full=full, config=cfg, timeframe=timeframe)
    name = "signals" if timeframe == "1d" else f"signals_{timeframe}"
    c = run_step(settings, "signals generate", step, name=name, api=False).extra
    console.print(
        f"signals ({timeframe}): {c['coins']} coin(s) computed ({c['full']} full, {c['incremental']} incremental), "
        f"{c['up_to_date']} up to date; {c['rule_rows']} rule rows, {c['composite_rows']} composite "
        f"rows written (config {c['config_hash']})"
    )
    if c.get("no_indicators"):
        console.print(f"{c['no_indicators']} requested coin(s) have no stored indicators")


def _fmt(value: object, pct: bool = False) -> str:
    import pandas as pd

    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "-"
    if pct and isinstance(value, SupportsFloat):  # a str passes through as it is
        return f"{float(value):+.2%}"
    return f"{value}"


def render_report(report: pd.DataFrame) -> RichTable:
    """The report as a table that fits 80 columns: short stacked headings, one space between columns."""
    import pandas as pd

    table = RichTable(
        title="Signal evaluation (forward returns over calendar days)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=0,
    )
    for name in ("signal", "dir", "h", "n", "hit\nrate", "mean", "median", "coin\nmean", "coin\nhit", "excess"):
        table.add_column(name, justify="left" if name == "signal" else "right", no_wrap=True)
    for r in report.itertuples(index=False):
        table.add_row(
            str(r.signal),
            f"{int(r.direction):+d}",
            f"{int(r.horizon)}d",
            f"{int(r.count)}",
            "-" if pd.isna(r.hit_rate) else f"{r.hit_rate:.1%}",
            _fmt(r.mean_return, True),
            _fmt(r.median_return, True),
            _fmt(r.base_mean_return, True),
            "-" if pd.isna(r.base_hit_rate) else f"{r.base_hit_rate:.1%}",
            _fmt(r.excess_mean_return, True),
        )
    return table


def write_report(report: pd.DataFrame, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise InputError("the report file must end in .csv or .parquet", file=str(path))

    def write(tmp: Path) -> None:
        if suffix == ".csv":
            report.to_csv(tmp, index=False)
        else:
            report.to_parquet(tmp, index=False)

    write_atomically(path, write)


@signals.command("evaluate")
def evaluate(
    horizons: str = typer.Option(
        "1,7,30", "--horizons", help="Forward horizons in calendar days, e.g. 1,7,30."
    ),
    output: Path | None = OUTPUT_OPTION,
    coins: str | None = typer.Option(None, "--coins", help="Comma-separated CoinGecko ids (default: all)."),
    start: str | None = typer.Option(None, "--start", help="First signal day evaluated (YYYY-MM-DD)."),
    end: str | None = typer.Option(None, "--end", help="Last signal day evaluated (YYYY-MM-DD)."),
    now: str | None = NOW_OPTION,
    database_url: str | None = DB_OPTION,
) -> None:
    """Count, hit rate, mean and median forward return of each stored signal, next to its coins' average."""
    from kallos.signals.evaluation import parse_horizons
    from kallos.signals.step import evaluate_step

    hs = parse_horizons(horizons)
    start_d, end_d = parse_date(start, "--start"), parse_date(end, "--end")
    if start_d and end_d and start_d > end_d:
        raise typer.BadParameter(f"--start {start_d} is after --end {end_d}", param_hint="--start")
    if output is not None and output.suffix.lower() not in (".csv", ".parquet"):
        raise InputError("the report file must end in .csv or .parquet", file=str(output))
    settings = setup(now=now, database_url=database_url)
    with open_settings_store(settings) as store:
        store.init()
        report = evaluate_step(
            store,
            hs,
            coins=parse_coins(coins),
            start=start_d,
            end=end_d,
            settings=settings,
        )
    console.print(render_report(report))
    if output is not None:
        write_report(report, output)
        console.print(f"report written to {output}")


def register(app: typer.Typer) -> None:
    app.add_typer(signals, name="signals")
