"""`kallos run | status | demo | export`: the daily pipeline, its ledger, the offline demo and exports.

Exit codes (docs/operations.md): 0 success, 3 partial failure, 4 failure, 5 another run holds the lock.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable
from rich.text import Text

from kallos.cli.common import (
    DB_OPTION,
    NOW_OPTION,
    _timeframe,
    console,
    err_console,
    parse_coins,
    parse_date,
    print_json,
    setup,
)
from kallos.cli.progress import progress_for
from kallos.errors import LockHeldError, PartialFailure, StepFailed, StoreBusyError

if TYPE_CHECKING:
    import pandas as pd

    from kallos.pipeline.runner import RunSummary, StepResult

DEMO_DIR = Path("kallos-demo")
DEMO_DIR_OPTION = typer.Option(DEMO_DIR, "--output-dir", "-o", help="Where the database and report go.")
_STYLE = {"success": "green", "partial": "yellow", "failed": "red", "skipped": "dim", "running": "cyan"}


def _styled(status: str) -> str:
    return f"[{_STYLE.get(status, 'white')}]{status}[/]"


def _nested_live_supported() -> bool:
    """Rich allows a live display inside another only in recent versions (the backfill shows its own bar)."""
    from rich.live import Live

    return hasattr(Live(), "_nested")


class LineReporter:
    """One line per step (cron logs read well); with `bar=True` also a progress bar over the steps."""

    def __init__(self, total: int, bar: bool = False, out: Any = None) -> None:
        self.progress: Progress | None = None
        self.console = out or console  # `--json` keeps stdout for the JSON: the step lines go to stderr
        if bar and _nested_live_supported():
            # stderr, like the backfill's own coin bar: one console, so rich nests the two live displays
            self.console = err_console
            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed}/{task.total} steps"),
                TimeElapsedColumn(), console=console, transient=False,
            )  # fmt: skip
            self.task = self.progress.add_task("pipeline", total=total)

    def __enter__(self) -> LineReporter:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def step_started(self, name: str) -> None:
        if self.progress is not None:
            self.progress.update(self.task, description=f"pipeline: {name}")
        else:
            self.console.print(f"[bold]>[/] {name} ...")

    def step_finished(self, result: StepResult) -> None:
        note = result.error or result.outcome.reason or ""
        pad = " " * max(0, 8 - len(result.status))
        line = (
            f"  {_styled(result.status)}{pad} {result.name:<11} {result.duration_seconds:7.2f} s"
            f"  {result.outcome.rows_written:>9,} rows"
        )
        if note:
            line += f"  [dim]{str(note)[:160]}[/]"
        self.console.print(line)
        if self.progress is not None:
            self.progress.advance(self.task)


def print_summary(summary: RunSummary) -> None:
    table = RichTable(
        title=f"run {summary.run_id}: {_styled(summary.status)}", title_justify="left", box=box.SIMPLE_HEAD
    )
    # Short headings: the table fits an 80-column terminal or log (quarantined rows, API calls, failed coins).
    for col in ("step", "status", "sec", "rows", "quarant.", "calls", "credits", "failed"):
        table.add_column(col, justify="left" if col in ("step", "status") else "right", no_wrap=True)
    for s in summary.steps:
        o = s.outcome
        table.add_row(
            s.name, _styled(s.status), f"{s.duration_seconds:.2f}", f"{o.rows_written:,}",
            f"{o.rows_quarantined:,}", f"{o.api_calls:,}", f"{o.api_credits:,}", f"{o.coins_failed:,}",
        )  # fmt: skip
    console.print(table)
    t = summary.totals()
    per_coin = t.get("calls_per_coin_day")
    console.print(
        f"coins updated {t['coins_updated']:,} · rows written {t['rows_written']:,} · rows quarantined "
        f"{t['rows_quarantined']:,} · API calls {t['api_calls']:,} · credits {t['api_credits']:,} · "
        + (f"market calls per coin per day {per_coin:.3f} · " if per_coin is not None else "")
        + f"{t['duration_seconds']:.1f} s"
    )


def _raise_for(summary: RunSummary) -> None:
    """Turn the run's status into the documented exit code (main() maps the error)."""
    if summary.status == "partial":
        failures: dict[str, str] = {}
        for s in summary.steps:
            failures.update({f"{s.name}:{k}": v for k, v in s.failed.items()})
            if s.status == "failed":
                failures[s.name] = s.error or "failed"
        bad = [s.name for s in summary.steps if s.status in ("partial", "failed")]
        raise PartialFailure(
            f"run {summary.run_id} finished with failures in: {', '.join(bad)}", failures=failures
        )
    if summary.status == "failed":
        errors = "; ".join(f"{s.name}: {s.error}" for s in summary.steps if s.status == "failed")
        raise StepFailed(f"run {summary.run_id} failed: {errors}", run_id=summary.run_id)


def run(
    full: bool = typer.Option(
        False, "--full", help="Recompute indicators and signals from each coin's first bar."
    ),
    force: bool = typer.Option(
        False, "--force", help="Run the universe sync and the index build even if not due."
    ),
    metrics_file: Path | None = typer.Option(
        None, "--metrics-file", help="After the run, write Prometheus metrics here (node_exporter textfile "
        "collector; written atomically).", dir_okay=False,
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the run summary as JSON on stdout (steps, totals, calls per coin per day)."
    ),
    database_url: str | None = DB_OPTION,
    now: str | None = NOW_OPTION,
) -> None:
    """The daily workflow: universe (weekly), details (stale), market data, indicators, signals, index (month
    ends)."""
    from kallos.pipeline.run import STEP_NAMES, RunOptions, run_pipeline

    settings = setup(now=now, database_url=database_url)
    from kallos.signals.step import resolve_config

    resolve_config(settings)  # a bad signal config is a configuration error (78) before anything runs
    try:
        with LineReporter(len(STEP_NAMES), out=err_console if as_json else None) as reporter:
            summary = run_pipeline(
                settings,
                RunOptions(mode="daily", full=full, force=force),
                reporter=reporter,
                progress=progress_for(None),
            )
    finally:
        if metrics_file is not None:
            _write_metrics(settings, metrics_file)
    if as_json:
        print_json(summary.as_json())
    else:
        print_summary(summary)
    _raise_for(summary)


def _write_metrics(settings: Any, path: Path) -> None:
    """The same metrics /metrics serves, for cron users without a server (also after a failed run)."""
    from kallos.errors import KallosError
    from kallos.pipeline.metrics import write_metrics_file
    from kallos.store import open_store

    try:
        store = open_store(settings.database_url)
        try:
            write_metrics_file(store, path)
        finally:
            store.close()
    except (KallosError, OSError) as exc:
        err_console.print(f"[yellow]could not write the metrics file {path}[/]: {exc}")


def _open_for_reading(settings: Any) -> Any:
    """Open the store; on a DuckDB file held by a running pipeline, say so (docs/decisions.md#D13) and exit 5."""
    from kallos.pipeline.lock import is_locked
    from kallos.store import open_store

    try:
        store = open_store(settings.database_url, partitioned=settings.partition_request)
    except StoreBusyError as exc:
        if is_locked(settings.database_url):
            raise LockHeldError(
                "the store is busy: a kallos run is writing to it (an embedded DuckDB file allows "
                "one process at a "
                "time); try again when the run finishes, or use PostgreSQL to watch runs live",
                path=exc.context.get("path"),
            ) from None
        raise
    store.init()
    return store


def _when(value: Any) -> str:
    import pandas as pd

    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "-"
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        return ts.strftime("%Y-%m-%d %H:%M:%S")
    return ts.strftime("%Y-%m-%d")


def _table(title: str) -> RichTable:
    return RichTable(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)


def _short(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON objects (ISO timestamps, null for NaN), the ledger's `counts` JSON text decoded."""
    from kallos.pipeline.status import counts_of

    if frame.empty:
        return []
    rows: list[dict[str, Any]] = json.loads(frame.to_json(orient="records", date_format="iso"))
    if "counts" in frame.columns:
        for row, raw in zip(rows, frame["counts"], strict=True):
            row["counts"] = counts_of(raw) if raw is not None else None
    return rows


def status(
    limit: int = typer.Option(10, "--limit", "-n", min=1, help="How many runs to show."),
    as_json: bool = typer.Option(False, "--json", help="Print the status as JSON."),
    database_url: str | None = DB_OPTION,
    now: str | None = NOW_OPTION,
) -> None:
    """The last runs, the freshness of each table and the coverage of the market data."""
    import pandas as pd

    from kallos.pipeline.status import counts_of, status_report
    from kallos.pipeline.telemetry import complete, human_bytes, of_counts, status_text

    settings = setup(now=now, database_url=database_url)
    store = _open_for_reading(settings)
    try:
        rep = status_report(store, min_coverage=settings.min_coverage, limit=limit)
    finally:
        store.close()
    if as_json:
        # The ledger keeps counts as JSON text: decoded here, so scripts get objects, not strings in strings.
        out = {
            "runs": _records(rep.runs),
            "last_run_steps": _records(rep.last_run_steps),
            "freshness": _records(rep.freshness),
            "coverage": rep.coverage,
        }
        print_json(out)
        return
    if rep.runs.empty:
        console.print("no runs recorded yet: `kallos run` (or `kallos demo` to try everything offline)")
    else:
        # Narrow columns (the run id holds the UTC start time), errors below: readable at 80 columns.
        runs = _table("last runs")
        runs.add_column("run", no_wrap=True)
        runs.add_column("command")
        runs.add_column("status", no_wrap=True)
        runs.add_column("sec", justify="right", no_wrap=True)
        runs.add_column("rows", justify="right", no_wrap=True)
        errors = []
        for r in rep.runs.itertuples(index=False):
            c = counts_of(r.counts)
            secs = c.get("duration_seconds")  # measured; the ledger's times follow a pinned clock (--now)
            if not isinstance(secs, int | float):
                secs = (
                    (pd.Timestamp(r.finished_at) - pd.Timestamp(r.started_at)).total_seconds()
                    if pd.notna(r.finished_at)
                    else None
                )
            runs.add_row(
                str(r.run_id), str(r.command), _styled(str(r.status)), f"{secs:.1f}" if secs is not None else "-",
                f"{int(c.get('rows_written') or 0):,}" if c else "-",
            )  # fmt: skip
            if isinstance(r.error, str) and r.error:
                errors.append(f"  {r.run_id}: {_short(r.error)}")
        console.print(runs)
        for line in errors:
            console.print(line, highlight=False, markup=False)
    if len(rep.last_run_steps):
        steps = _table(f"steps of {rep.runs['run_id'].iloc[0]}")
        steps.add_column("step", no_wrap=True)
        steps.add_column("status", no_wrap=True)
        steps.add_column("sec", justify="right", no_wrap=True)
        steps.add_column("rows", justify="right", no_wrap=True)
        steps.add_column("note", overflow="fold", ratio=1)
        for s in rep.last_run_steps.itertuples(index=False):
            c = counts_of(s.counts)
            secs = c.get("duration_seconds")
            note = s.error if isinstance(s.error, str) and s.error else c.get("reason") or ""
            steps.add_row(
                str(s.step), _styled(str(s.status)), f"{secs:.2f}" if isinstance(secs, (int, float)) else "-",
                f"{int(c.get('rows_written') or 0):,}", Text(_short(str(note))),
            )  # fmt: skip
        console.print(steps)
        # The run telemetry (docs/decisions.md#D90), a second table so both fit an 80-column log.
        tele = _table("telemetry")
        tele.add_column("step", no_wrap=True)
        tele.add_column("requests", overflow="fold")
        for col in ("credits", "retries", "429s", "wait s", "received", "quarant."):
            tele.add_column(col, justify="right", no_wrap=True)
        for s in rep.last_run_steps.itertuples(index=False):
            c = counts_of(s.counts)
            t = complete(of_counts(c))
            tele.add_row(
                str(s.step), status_text(t["requests_by_status"]), f"{t['credits']:,}", f"{t['retries']:,}",
                f"{t['rate_limited']:,}", f"{t['rate_limit_wait_seconds']:.1f}", human_bytes(t["bytes_received"]),
                f"{int(c.get('rows_quarantined') or 0):,}",
            )  # fmt: skip
        console.print(tele)
    fresh = _table("freshness")
    fresh.add_column("table", no_wrap=True)
    for col in ("rows", "latest", "age (days)"):
        fresh.add_column(col, justify="left" if col == "latest" else "right", no_wrap=True)
    for f in rep.freshness.itertuples(index=False):
        age = "-" if f.age_days is None or pd.isna(f.age_days) else str(int(f.age_days))
        fresh.add_row(str(f.table), f"{int(f.rows):,}", _when(f.latest), age)
    console.print(fresh)
    cov = rep.coverage
    mean = f"{cov['mean_coverage']:.1%}" if cov["mean_coverage"] is not None else "-"
    console.print(
        f"coverage: {cov['coins']:,} coins ({cov['active_coins']:,} active), "
        f"{cov['coins_with_market_data']:,} with "
        f"market data ({cov['first_date'] or '-'} .. {cov['last_date'] or '-'}), "
        f"{cov['coins_meeting_min_coverage']:,} at or above KALLOS_MIN_COVERAGE={cov['min_coverage']:.0%}, "
        f"mean {mean}; {cov['coins_with_indicators']:,} with indicators"
    )


def demo(
    output_dir: Path = DEMO_DIR_OPTION,
    coins: int = typer.Option(50, "--coins", min=3, hidden=True, help="Simulated coins (tests use fewer)."),
    start: str = typer.Option("2018-01-01", "--start", hidden=True, help="First simulated day."),
    end: str = typer.Option("2025-06-30", "--end", hidden=True, help="Last simulated day."),
    seed: int = typer.Option(7, "--seed", hidden=True),
) -> None:
    """Try everything offline: a fake CoinGecko, a simulated market, the whole pipeline, an HTML report."""
    from kallos.pipeline.demo import DemoMarket, run_demo
    from kallos.pipeline.run import BACKFILL_STEP_NAMES

    parse_date(start, "--start"), parse_date(end, "--end")
    # The demo builds its own settings (its database, the fake server, its clock); here only logging is set
    # up,
    # quieter than usual so the progress bars and the summary stay readable (KALLOS_LOG_LEVEL still wins).
    overrides = {} if os.environ.get("KALLOS_LOG_LEVEL") else {"log_level": "WARNING"}
    setup(**overrides)
    market = DemoMarket(seed=seed, n_coins=coins, start=start, end=end)
    console.print(
        f"[bold]Kallos demo[/]: fake CoinGecko (pro plan) on 127.0.0.1 serving a simulated market of "
        f"{coins} coins "
        f"({start} .. {end}); database and report in {output_dir}/"
    )
    with LineReporter(len(BACKFILL_STEP_NAMES), bar=True) as reporter:
        result = run_demo(output_dir, market=market, reporter=reporter, progress=progress_for(None))
    print_summary(result.summary)
    if result.metrics:
        table = RichTable(title="index metrics", title_justify="left")
        table.add_column("metric")
        table.add_column("value", justify="right")
        pct = {"total_return", "annualized_return", "volatility", "max_drawdown", "avg_monthly_turnover"}
        for key, value in result.metrics.items():
            if isinstance(value, float):
                shown = f"{value:.2%}" if key in pct else f"{value:.3f}"
            else:
                shown = str(value) if value is not None else "-"
            table.add_row(key.replace("_", " "), shown)
        console.print(table)
    else:
        err_console.print("[yellow]the index was not built[/yellow] (see the index step above)")
    console.print(f"report: [bold]{result.report.resolve()}[/]")
    console.print(
        f"database: {result.database_url}  (try: KALLOS_DATABASE_URL={result.database_url} kallos status)"
    )
    _raise_for(result.summary)


def export(
    table: str = typer.Argument(
        ..., help="Table or view, e.g. daily_market_data, daily_technical_indicators, v_daily_market_data."
    ),
    fmt: str = typer.Option("parquet", "--format", "-f", help="parquet or csv."),
    since: str | None = typer.Option(None, "--since", help="Only rows on or after this date (YYYY-MM-DD)."),
    until: str | None = typer.Option(None, "--until", help="Only rows on or before this date (YYYY-MM-DD)."),
    coins: str | None = typer.Option(None, "--coins", help="Only these CoinGecko ids (comma-separated)."),
    columns: str | None = typer.Option(None, "--columns", help="Only these columns (comma-separated)."),
    output: str | None = typer.Option(
        None, "--output", "-o", help="File to write (default <table>.<format>; - = stdout, CSV)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace the output file if it exists."),
    timeframe: str | None = typer.Option(
        None,
        "--timeframe",
        "-t",
        callback=lambda v: None if v is None else _timeframe(v),
        help="1h, 1d or 1w: the daily table named is swapped for that timeframe's (hourly_market_data ...).",
    ),
    database_url: str | None = DB_OPTION,
    now: str | None = NOW_OPTION,
) -> None:
    """Export one table or view for downstream research (coin ids as CoinGecko ids); warns on 0 rows."""
    from kallos.pipeline.export import FORMATS, VIEWS, export_table
    from kallos.store.schema import TABLES

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise typer.BadParameter("use parquet or csv", param_hint="--format")
    if table not in TABLES and table not in VIEWS:
        known = ", ".join(sorted([*TABLES, *VIEWS]))
        raise typer.BadParameter(f"unknown table or view; known: {known}", param_hint="TABLE")
    if timeframe is not None:
        from kallos.timeframes import table_for

        table = table_for(table, timeframe)
    since_d, until_d = parse_date(since, "--since"), parse_date(until, "--until")
    if (since_d is not None or until_d is not None) and table in TABLES and not TABLES[table].date_column:
        raise typer.BadParameter(f"table {table} has no date column to filter on", param_hint="--since/--until")
    if output == "-" and fmt != "csv":
        raise typer.BadParameter("only CSV can go to stdout", param_hint="--output")
    settings = setup(now=now, database_url=database_url)
    store = _open_for_reading(settings)
    try:
        out = export_table(
            store,
            table,
            fmt=fmt,
            since=since_d,
            until=until_d,
            coins=parse_coins(coins),
            columns=parse_coins(columns),
            output=output,
            force=force,
        )
    except BrokenPipeError:
        # `kallos export -o - | head`: the reader has all it wanted; that is success, not a crash
        # (docs/decisions.md#D51). Point stdout at /dev/null so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    finally:
        store.close()
    if not out["rows"]:
        err_console.print(f"[yellow]warning:[/] 0 rows of {table} matched the filters")
    if out["path"] != "-":
        err_console.print(f"wrote {out['rows']:,} rows of {table} to {out['path']} ({fmt})")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("status")(status)
    app.command("demo")(demo)
    app.command("export")(export)
