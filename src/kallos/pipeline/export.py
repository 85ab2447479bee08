"""`kallos export`: one table to Parquet or CSV for downstream research, coin ids as CoinGecko ids."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from kallos.errors import InputError
from kallos.files import write_atomically
from kallos.log import get_logger
from kallos.store import Store
from kallos.store.schema import TABLES, quote

log = get_logger(__name__)

FORMATS = ("parquet", "csv")

# The views `kallos export` can write besides the tables: (coin column, date column) of each (D76).
VIEWS: dict[str, tuple[str, str]] = {
    "v_daily_market_data": ("coingecko_id", "date"),
    "latest_market_data": ("coingecko_id", "date"),
    "latest_snapshot": ("coingecko_id", "fetched_at"),
    "quarantine": ("coingecko_id", "date"),
}


def export_table(
    store: Store,
    table: str,
    *,
    fmt: str = "parquet",
    since: dt.date | None = None,
    output: Path | str | None = None,
    until: dt.date | None = None,
    coins: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
    force: bool = False,
    timeframe: str | None = None,
) -> dict[str, Any]:
    """Write `table` or view (rows of `coins` between `since` and `until` by its date column, `columns` only)
    to `output`; return the path and row count (`rows` 0 is reported, and logged as a warning).

    `output` "-" writes CSV to stdout. The default file name is `<table>.<format>` in the working directory.
    `timeframe` (1h, 1d, 1w) swaps a bar, indicator or signal table for that timeframe's (docs/timeframes.md).
    The file is written whole or not at all, never onto the database, and replaces an existing file only with
    `force` (docs/decisions.md#D51).
    """
    target = _Target(output, force, store.files())
    if table not in TABLES and table not in VIEWS:
        known = ", ".join(sorted([*TABLES, *VIEWS]))
        raise InputError(f"unknown table or view {table!r}; known: {known}", table=table)
    if timeframe is not None:
        from kallos.timeframes import table_for

        table = table_for(table, timeframe)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; use parquet or csv", input="--format")
    if table in VIEWS:
        frame = _read_view(store, table, since=since, until=until, coins=coins, columns=columns)
        return _write(frame, table, fmt, target, list(frame.columns))
    t = TABLES[table]
    if (since is not None or until is not None) and not t.date_column:
        raise InputError(f"table {table} has no date column, so --since/--until cannot filter it", table=table)
    if coins is not None and not (t.coin_keyed or table == "coins"):
        raise InputError(f"table {table} has no coin column, so --coins cannot filter it", table=table)
    if columns is not None:
        unknown = [c for c in columns if c not in t.column_names]
        if unknown:
            raise InputError(f"table {table} has no columns {unknown}", table=table, input="--columns")
    frame = store.read(table, start=since, end=until, coins=coins, columns=columns)
    if table == "coins":
        frame = frame.drop(columns=["coin_id"], errors="ignore")  # the surrogate; coingecko_id is the identity
    return _write(frame, table, fmt, target, t.column_names)


def _read_view(
    store: Store,
    view: str,
    *,
    since: dt.date | None,
    until: dt.date | None,
    coins: Sequence[str] | None,
    columns: Sequence[str] | None,
) -> pd.DataFrame:
    coin_col, date_col = VIEWS[view]
    names = list(store.query(f"SELECT * FROM {view} LIMIT 0").columns)
    if columns is not None:
        unknown = [c for c in columns if c not in names]
        if unknown:
            raise InputError(f"view {view} has no columns {unknown}", table=view, input="--columns")
    where: list[str] = []
    params: dict[str, Any] = {}
    day = f"CAST({quote(date_col)} AS DATE)"
    if since is not None:
        where.append(f"{day} >= :since")
        params["since"] = since
    if until is not None:
        where.append(f"{day} <= :until")
        params["until"] = until
    if coins is not None:
        keys = [f"k{i}" for i in range(len(coins))]
        where.append(f"{coin_col} IN ({', '.join(':' + k for k in keys)})" if keys else "1 = 0")
        params.update(dict(zip(keys, coins, strict=True)))
    select = ", ".join(quote(c) for c in columns) if columns is not None else "*"
    sql = f"SELECT {select} FROM {view}" + (f" WHERE {' AND '.join(where)}" if where else "")
    return store.query(sql + f" ORDER BY {coin_col}, {quote(date_col)}", params)


@dataclass(frozen=True)
class _Target:
    output: Path | str | None
    force: bool
    protected: list[str]


def _write(frame: pd.DataFrame, table: str, fmt: str, target: _Target, columns: list[str]) -> dict[str, Any]:
    output = target.output
    if frame.empty:
        log.warning("export wrote 0 rows", extra={"table": table})
    if output == "-":
        if fmt != "csv":
            raise InputError("only CSV can be written to stdout (-o -)", input="--output")
        frame.to_csv(sys.stdout, index=False, date_format="%Y-%m-%d")
        return {"table": table, "rows": len(frame), "path": "-", "format": fmt}
    path = Path(output) if output else Path(f"{table}.{fmt}")

    def write(tmp: Path) -> None:
        if fmt == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            _csv_frame(frame, columns).to_csv(tmp, index=False)

    write_atomically(path, write, force=target.force, protected=target.protected)
    return {"table": table, "rows": len(frame), "path": str(path), "format": fmt}


def _csv_frame(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Dates as YYYY-MM-DD, timestamps as ISO 8601 UTC, so the CSV reads back the same in any tool."""
    out = frame.copy()
    for name in out.columns:
        col = out[name]
        if pd.api.types.is_datetime64_any_dtype(col):
            if getattr(col.dt, "tz", None) is not None:
                out[name] = col.map(lambda v: v.isoformat() if pd.notna(v) else None)
            else:
                out[name] = col.dt.strftime("%Y-%m-%d")
    return out
