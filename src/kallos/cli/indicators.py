"""`kallos indicators compute|file`: the step over the store, and the pure engine over a researcher's file."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from kallos.cli.coins import run_step
from kallos.cli.common import DB_OPTION, NOW_OPTION, TIMEFRAME_OPTION, console, err_console, parse_coins, setup
from kallos.errors import InputError, PartialFailure
from kallos.files import write_atomically

if TYPE_CHECKING:
    import pandas as pd

indicators = typer.Typer(help="Technical indicators (docs/indicators.md).", no_args_is_help=True)

_FORMATS = (".csv", ".parquet")


@indicators.command("compute")
def compute(
    coins: str | None = typer.Option(None, "--coins", help="Comma-separated CoinGecko ids (default: all)."),
    full: bool = typer.Option(False, "--full", help="Recompute every coin from its first bar."),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="Worker processes (default: KALLOS_WORKERS, else CPU count - 1)."
    ),
    min_coverage: float | None = typer.Option(
        None,
        "--min-coverage",
        min=0.0,
        max=1.0,
        help="Coverage a coin needs (default: KALLOS_MIN_COVERAGE, 0.9).",
    ),
    close_only_approx: bool | None = typer.Option(
        None,
        "--close-only-approx/--no-close-only-approx",
        help="Approximate high/low for close-only bars (rows then say ohlc_source=close_only_approx).",
    ),
    timeframe: str = TIMEFRAME_OPTION,
    now: str | None = NOW_OPTION,
    database_url: str | None = DB_OPTION,
) -> None:
    """Compute indicators for coins with enough history and upsert the timeframe's indicator table
    (daily_technical_indicators, hourly_technical_indicators or weekly_technical_indicators)."""
    from kallos.indicators.step import indicators_step

    settings = setup(
        now=now,
        database_url=database_url,
        min_coverage=min_coverage,
        close_only_approx=close_only_approx,
        workers=workers,
    )
    step = partial(indicators_step, coins=parse_coins(coins), full=full, timeframe=timeframe)
    name = "indicators" if timeframe == "1d" else f"indicators_{timeframe}"
    outcome = run_step(settings, "indicators compute", step, name=name, api=False)
    x = outcome.extra
    computed = int(x["full"] or 0) + int(x["incremental"] or 0)  # type: ignore[arg-type]
    console.print(
        f"indicators ({timeframe}): {computed} coin(s) computed ({x['full']} full, "
        f"{x['incremental']} incremental), {x['up_to_date']} up to date, "
        f"{x['below_coverage']} below coverage; {outcome.rows_written} rows written"
    )
    unknown = x.get("unknown_coins") or ()
    if unknown:
        err_console.print(f"no stored bars for: {', '.join(unknown)}")  # type: ignore[arg-type]
    if outcome.failures:
        for coin, reason in outcome.failures.items():
            err_console.print(f"{coin}: {reason}")
        raise PartialFailure(
            f"indicators failed for {len(outcome.failures)} coin(s)", failures=outcome.failures
        )


def read_bars(path: Path) -> pd.DataFrame:
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise InputError("the input file must end in .csv or .parquet", file=str(path))
    if not path.is_file():
        raise InputError("input file not found", file=str(path))
    try:
        return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the input file: {exc}", file=str(path)) from None


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise InputError("the output file must end in .csv or .parquet", file=str(path))

    def write(tmp: Path) -> None:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False, date_format="%Y-%m-%d")
        else:
            frame.to_parquet(tmp, index=False)

    write_atomically(path, write, option="-o")


@indicators.command("file")
def file(
    source: Path = typer.Argument(
        ..., help="Bars: date, open, high, low, close, volume [, coin_id] (.csv/.parquet)."
    ),
    output: Path = typer.Option(
        ..., "-o", "--output", help="Where to write the indicators (.csv or .parquet)."
    ),
    close_only_approx: bool = typer.Option(
        False, "--close-only-approx", help="Approximate high/low where a bar has none."
    ),
) -> None:
    """Compute every indicator for a researcher's own bar file (no database involved)."""
    from kallos.indicators import compute_indicators

    setup()
    if output.suffix.lower() not in _FORMATS:
        raise InputError("the output file must end in .csv or .parquet", file=str(output))
    bars = read_bars(source)
    try:
        result = compute_indicators(bars, close_only_approx=close_only_approx)
    except InputError as exc:
        exc.context.setdefault("file", str(source))
        raise
    write_frame(result, output)
    coins = result["coin_id"].nunique() if "coin_id" in result.columns else 1
    console.print(f"indicators: {len(result)} rows for {coins} coin(s) written to {output}")


def register(app: typer.Typer) -> None:
    app.add_typer(indicators, name="indicators")
