"""`kallos export`: one table to Parquet or CSV for downstream research, coin ids as CoinGecko ids."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from kallos.errors import InputError
from kallos.store import Store
from kallos.store.schema import TABLES

FORMATS = ("parquet", "csv")


def export_table(
    store: Store,
    table: str,
    *,
    fmt: str = "parquet",
    since: dt.date | None = None,
    output: Path | str | None = None,
    timeframe: str | None = None,
) -> dict[str, Any]:
    """Write `table` (rows on or after `since` by its date column) to `output`; return the path and row count.

    `output` "-" writes CSV to stdout. The default file name is `<table>.<format>` in the working directory.
    `timeframe` (1h, 1d, 1w) swaps a bar, indicator or signal table for that timeframe's (docs/timeframes.md).
    """
    if table not in TABLES:
        raise InputError(f"unknown table {table!r}; tables: {', '.join(sorted(TABLES))}", table=table)
    if timeframe is not None:
        from kallos.timeframes import table_for

        table = table_for(table, timeframe)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; use parquet or csv", input="--format")
    t = TABLES[table]
    if since is not None and not t.date_column:
        raise InputError(f"table {table} has no date column, so --since cannot filter it", table=table)
    frame = store.read(table, start=since)
    if table == "coins":
        frame = frame.drop(
            columns=["coin_id"], errors="ignore"
        )  # the surrogate; coingecko_id is the identity
    if output == "-":
        if fmt != "csv":
            raise InputError("only CSV can be written to stdout (-o -)", input="--output")
        frame.to_csv(sys.stdout, index=False, date_format="%Y-%m-%d")
        return {"table": table, "rows": len(frame), "path": "-", "format": fmt}
    path = Path(output) if output else Path(f"{table}.{fmt}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        frame.to_parquet(path, index=False)
    else:
        _csv_frame(frame, t.column_names).to_csv(path, index=False)
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
