"""What every command shares: settings, logging, the clock and the store, set up once per invocation."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from kallos import clock
from kallos.log import configure_logging, register_secret

if TYPE_CHECKING:  # heavy modules load when a command runs, not for --help (docs/decisions.md#D113)
    from kallos.settings import Settings
    from kallos.store import Store

console = Console(stderr=False)
err_console = Console(stderr=True)


def setup(now: str | None = None, **overrides: Any) -> Settings:
    """Load settings (with CLI overrides), configure logging and pin the clock."""
    from kallos.settings import load_settings

    clean = {k: v for k, v in overrides.items() if v is not None}
    if now is not None:
        clean["now"] = now
    settings = load_settings(**clean)
    register_secret(settings.api_key)
    configure_logging(fmt=settings.log_format, level=settings.log_level, file=settings.log_file)
    clock.set_now(settings.now)
    return settings


@contextmanager
def open_settings_store(settings: Settings) -> Iterator[Store]:
    from kallos.store import open_store

    store = open_store(settings.database_url, partitioned=settings.partition_request)
    try:
        yield store
    finally:
        store.close()


def plain_json(value: Any) -> Any:
    """`value` with JSON's types only: NaN -> null, NumPy scalars -> numbers, dates and times -> ISO 8601."""
    import numpy as np
    import pandas as pd

    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NaT:
        return None
    if isinstance(value, dt.date):  # datetime and pd.Timestamp included
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    """One JSON document on stdout, never wrapped or coloured (rich would fold long lines at the terminal width)."""
    typer.echo(json.dumps(plain_json(value), default=str, indent=2))


def print_json_lines(rows: Iterable[Any]) -> None:
    """One compact JSON object per line (for `jq -c`, `grep` and line-based tools)."""
    for row in rows:
        typer.echo(json.dumps(plain_json(row), default=str))


def parse_coins(value: str | None) -> list[str] | None:
    """`--coins a,b,c` -> ["a", "b", "c"] (CoinGecko ids, stripped, order kept, duplicates dropped)."""
    if not value:
        return None
    seen: dict[str, None] = {}
    for part in value.split(","):
        part = part.strip()
        if part:
            seen[part] = None
    return list(seen)


def parse_date(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO date (YYYY-MM-DD)", param_hint=option) from None


NOW_OPTION = typer.Option(None, "--now", help="Pretend it is this UTC time (ISO 8601); overrides KALLOS_NOW.")
DB_OPTION = typer.Option(None, "--database-url", help="Overrides KALLOS_DATABASE_URL.")


def _timeframe(value: str | None) -> str:
    from kallos.errors import TimeframeError
    from kallos.timeframes import parse_timeframe

    try:
        return parse_timeframe(value)
    except TimeframeError as exc:
        raise typer.BadParameter(exc.message) from None


TIMEFRAME_OPTION = typer.Option(
    "1d", "--timeframe", "-t", callback=_timeframe, help="Bars: 1h (hourly), 1d (daily) or 1w (weekly)."
)
