"""`kallos index build|report`: the crypto index from the store, its metrics and charts (docs/index.md)."""

from __future__ import annotations

import math
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

NAME_OPTION = typer.Option(
    None, "--name", "-n", help="The index to build (default: every index). Options below define or change it."
)
CONSTITUENTS_OPTION = typer.Option(None, "--constituents", min=1, help="Number of constituents (default 20).")
CAP_OPTION = typer.Option(None, "--cap", min=0.0, max=1.0, help="Maximum weight per coin (default 0.35).")
REBALANCE_OPTION = typer.Option(None, "--rebalance", help="monthly (default) or quarterly.")
BUFFER_OPTION = typer.Option(None, "--rank-buffer", min=0, help="Incumbents ranked within N + buffer stay.")
HISTORY_OPTION = typer.Option(None, "--min-history", min=0, help="Days of history required (default 1095).")
COVERAGE_OPTION = typer.Option(None, "--min-coverage", min=0.0, max=1.0, help="Share of days with data (0.9).")
COST_OPTION = typer.Option(None, "--cost-bps", min=0.0, help="Costs per unit of one-way turnover, in bps.")
EXCLUDE_OPTION = typer.Option(
    None, "--exclude-categories", help="Comma-separated: 'default' (shipped rules) and/or CoinGecko category ids."
)
RF_OPTION = typer.Option(None, "--risk-free", help="Annual risk-free rate for the Sharpe ratio (0.04 = 4%).")

index = typer.Typer(help="Build the market-cap-weighted crypto indices and report on them.", no_args_is_help=True)


def _check_definition(name: str, options: dict[str, Any]) -> None:
    """Refuse a bad name or option before anything runs (exit 2); docs/decisions.md#D62."""
    from kallos.errors import InputError
    from kallos.index.definition import DEFAULT_NAME, IndexDefinition, check_name

    given = {k: v for k, v in options.items() if v is not None}
    try:
        check_name(name)
        if name == DEFAULT_NAME and given:
            raise typer.BadParameter(
                "the default index is configured by the KALLOS_INDEX_* settings; "
                "give another --name to define a variant",
                param_hint="--name",
            )
        if given:
            IndexDefinition(name=name, **given)
    except InputError as exc:
        raise typer.BadParameter(str(exc), param_hint="--name") from None


def _define(store: Any, name: str, options: dict[str, Any]) -> None:
    """Define or update the named index ``name`` from the command-line options (docs/decisions.md#D62)."""
    from kallos.index.definition import DEFAULT_NAME, IndexDefinition
    from kallos.index.step import read_definitions, save_definition

    given = {k: v for k, v in options.items() if v is not None}
    if name == DEFAULT_NAME:
        return
    stored = read_definitions(store)
    if name in stored.index and stored.at[name, "params"]:
        definition = IndexDefinition.from_params(name, stored.at[name, "params"]).with_options(**given)
    elif given:
        definition = IndexDefinition(name=name, **given)
    else:
        return  # not defined and nothing to define it with: the build names the problem
    save_definition(store, definition)


@index.command("build")
def build(
    name: str | None = NAME_OPTION,
    constituents: int | None = CONSTITUENTS_OPTION,
    cap: float | None = CAP_OPTION,
    rebalance: str | None = REBALANCE_OPTION,
    rank_buffer: int | None = BUFFER_OPTION,
    min_history: int | None = HISTORY_OPTION,
    min_coverage: float | None = COVERAGE_OPTION,
    cost_bps: float | None = COST_OPTION,
    exclude_categories: str | None = EXCLUDE_OPTION,
    risk_free: float | None = RF_OPTION,
    start: str | None = START_OPTION,
    end: str | None = END_OPTION,
    database_url: str | None = DB_OPTION,
    now: str | None = NOW_OPTION,
) -> None:
    """Rebuild the indices from their base dates through the last final day; write what changed (idempotent)."""
    from kallos.cli.coins import run_step
    from kallos.index.step import index_step
    from kallos.pipeline.contract import StepContext, StepOutcome

    options = {
        "n_constituents": constituents,
        "max_weight": cap,
        "rebalance": rebalance,
        "rank_buffer": rank_buffer,
        "min_history_days": min_history,
        "min_coverage": min_coverage,
        "cost_bps": cost_bps,
        "excluded_categories": exclude_categories,
        "risk_free": risk_free,
    }
    if name is None and any(v is not None for v in options.values()):
        raise typer.BadParameter("methodology options need --name (the index they define)", param_hint="--name")
    start_d, end_d = parse_date(start, "--start"), parse_date(end, "--end")
    if start_d and end_d and start_d > end_d:
        raise typer.BadParameter("--start is after --end", param_hint="--start")
    settings = setup(now=now, database_url=database_url)
    if name is not None:
        _check_definition(name, options)

    def step(ctx: StepContext) -> StepOutcome:
        if name is not None:
            _define(ctx.store, name, options)
        return index_step(ctx, names=[name] if name else None, start=start_d, end=end_d)

    outcome = run_step(settings, "index build", step, name="index", api=False)
    extra = outcome.extra
    names = sorted({k.split(".", 1)[0] for k in extra if k.endswith(".status")})
    for n in names:
        if extra[f"{n}.status"] != "success":
            err_console.print(f"[yellow]index {n} {extra[n + '.status']}:[/yellow] {extra.get(n + '.reason', '')}")
            continue
        console.print(f"index {n} built from {extra[n + '.base_date']} through {extra[n + '.through']}")
    if outcome.status == "skipped" and not names:
        err_console.print(f"[yellow]index skipped:[/yellow] {outcome.reason or ''}")
    if outcome.status in ("success", "partial"):
        console.print(
            f"{extra['months_written']} month(s) of constituents, {extra['value_rows']} daily value(s), "
            f"{extra['turnover_rows']} turnover row(s) written; {extra['fills']} filled close(s)"
        )
    if outcome.status == "partial":
        from kallos.errors import PartialFailure

        raise PartialFailure(f"some indices failed: {outcome.reason}")


@index.command("list")
def list_cmd(database_url: str | None = DB_OPTION, now: str | None = NOW_OPTION) -> None:
    """The indices defined: name, methodology, base date, how far they are built."""
    from kallos.index.step import list_indices

    settings = setup(now=now, database_url=database_url)
    with open_settings_store(settings) as store:
        store.init()
        frame = list_indices(store, settings)
    table = RichTable("name", "methodology", "base date", "built through", "days", "rebuild from", title="Indices")
    for r in frame.itertuples(index=False):
        table.add_row(
            r.index_name,
            r.methodology,
            _show("", r.base_date),
            _show("", r.built_through),
            str(r.days_stored),
            _show("", r.dirty_from),
        )
    console.print(table)


def _show(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        ratio = "sharpe" in key or key in ("information_ratio", "beta")
        return f"{value:.3f}" if ratio else f"{value * 100:.2f}%"
    return str(value)


@index.command("report")
def report(
    name: str = typer.Option("default", "--name", "-n", help="The index to report on."),
    start: str | None = typer.Option(None, "--start", help="First day of the metrics window (YYYY-MM-DD)."),
    end: str | None = typer.Option(None, "--end", help="Last day of the metrics window (YYYY-MM-DD)."),
    output_dir: Path = OUTPUT_OPTION,
    database_url: str | None = DB_OPTION,
    now: str | None = NOW_OPTION,
) -> None:
    """Print the metrics beside the benchmarks'; write the charts (PNG) and a self-contained HTML report."""
    from kallos.index.step import report_step

    start_d, end_d = parse_date(start, "--start"), parse_date(end, "--end")
    if start_d and end_d and start_d >= end_d:
        raise typer.BadParameter("--start must be before --end", param_hint="--start")
    settings = setup(now=now, database_url=database_url)
    with open_settings_store(settings) as store:
        store.init()
        out = report_step(store, settings, output_dir, name=name, start=start_d, end=end_d)
    lo, hi = out["window"]
    comparison = out["comparison"]
    table = RichTable("metric", *map(str, comparison.columns), title=f"Index {name}, {lo} .. {hi}")
    for key, row in zip(comparison.index, comparison.to_numpy(), strict=True):
        table.add_row(str(key), *(_show(str(key), v) for v in row))
    console.print(table)
    for path in out["paths"].values():
        console.print(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(index, name="index")
