"""`kallos features export`: model-ready features to year-partitioned Parquet or CSV (docs/features.md)."""

from __future__ import annotations

import typer

from kallos.cli.common import DB_OPTION, NOW_OPTION, err_console, parse_coins, parse_date, setup

features_app = typer.Typer(help="Model-ready feature frames (docs/features.md).", no_args_is_help=True)


@features_app.command("export")
def export(
    out: str = typer.Option(
        ..., "--out", help="Directory to write (year=YYYY/part-0.<format> + _data_dictionary.csv)."
    ),
    fmt: str = typer.Option("parquet", "--format", "-f", help="parquet or csv."),
    coins: str | None = typer.Option(None, "--coins", help="Comma-separated CoinGecko ids."),
    top: int | None = typer.Option(None, "--top", min=1, help="The N largest stored coins by cap at --until."),
    since: str | None = typer.Option(None, "--since", help="First day (YYYY-MM-DD)."),
    until: str | None = typer.Option(None, "--until", help="Last day (YYYY-MM-DD); labels still read later bars."),
    timeframe: str = typer.Option("1d", "--timeframe", help="Bar length: 1h, 1d or 1w (1h rows are keyed by `hour`)."),
    naming: str = typer.Option("kallos", "--naming", help="kallos or pandas-ta column names."),
    horizons: str = typer.Option("1,7,30", "--horizons", help="Label horizons in bars, comma-separated."),
    force: bool = typer.Option(False, "--force", help="Replace an existing, non-empty --out directory."),
    database_url: str | None = DB_OPTION,
    now: str | None = NOW_OPTION,
) -> None:
    """Write the feature frame (bars, indicators, signals, rank, age, index, alternative data, labels)."""
    from kallos.cli.pipeline import _open_for_reading
    from kallos.features import load_features
    from kallos.features.export import FORMATS, write_features
    from kallos.signals.evaluation import parse_horizons

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise typer.BadParameter("use parquet or csv", param_hint="--format")
    if coins and top:
        raise typer.BadParameter("give either --coins or --top", param_hint="--coins")
    hs = parse_horizons(horizons)
    first, last = parse_date(since, "--since"), parse_date(until, "--until")
    settings = setup(now=now, database_url=database_url)
    store = _open_for_reading(settings)
    try:
        frame = load_features(
            store=store,
            coins=parse_coins(coins),
            top=top,
            start=first,
            end=last,
            timeframe=timeframe,
            naming=naming,
            horizons=hs,
        )
    finally:
        store.close()
    result = write_features(frame, out, fmt=fmt, horizons=hs, naming=naming, force=force, timeframe=timeframe)
    if not result["rows"]:
        err_console.print("[yellow]warning:[/] 0 rows matched; the export holds only the data dictionary")
    err_console.print(
        f"wrote {result['rows']:,} feature rows in {result['files']} file(s) to {result['path']} ({fmt}) "
        "and _data_dictionary.csv"
    )


def register(app: typer.Typer) -> None:
    app.add_typer(features_app, name="features")
