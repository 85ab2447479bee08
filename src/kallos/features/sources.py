"""What `load_features` reads from the store, one small function per source.

Index membership is read through `read_index_constituents` alone, so a change of the index tables (named
indices) changes one function (docs/decisions.md#D73). Every reader takes the timeframe's spec
(`kallos.timeframes.SPECS`) and returns its time column as `date`, naive UTC (the hour on 1h), and reads only
the columns it is given (`load_features` asks for the ones the `columns=` selection needs).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow as pa

from kallos.errors import InputError
from kallos.index.definition import DEFAULT_NAME
from kallos.store import Store
from kallos.store.schema import ALT_DATA_COLUMNS, quote
from kallos.timeframes import SPECS, TimeframeSpec

DAILY = SPECS["1d"]


def _where(
    coins: Sequence[int] | None,
    start: dt.date | None,
    end: dt.date | None,
    time_col: str = "date",
    alias: str = "t",
) -> tuple[str, dict[str, Any]]:
    """SQL conditions on the integer `coin_id` (inlined: they are ints from the coins table) and the days
    [start, end] (on an hourly `hour` column: from start 00:00 to before end + 1 day, UTC)."""
    parts: list[str] = ["1 = 1"]
    params: dict[str, Any] = {}
    col = f"{alias}.{quote(time_col)}"
    if coins is not None:
        parts.append(f"{alias}.coin_id IN ({', '.join(str(int(c)) for c in coins)})" if coins else "1 = 0")
    hourly = time_col == "hour"
    if start is not None:
        parts.append(f"{col} >= :start")
        params["start"] = _bound(start) if hourly else start
    if end is not None:
        if hourly:
            parts.append(f"{col} < :end")
            params["end"] = _bound(end + dt.timedelta(days=1))
        else:
            parts.append(f"{col} <= :end")
            params["end"] = end
    return " AND ".join(parts), params


def _bound(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def _naive(frame: pd.DataFrame, column: str = "date") -> pd.DataFrame:
    """The time column as naive UTC datetime64[ns] (hourly tables hold TIMESTAMPTZ)."""
    values = frame[column]
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        frame[column] = pd.DatetimeIndex(values).tz_convert("UTC").tz_localize(None).as_unit("ns")
    elif values.dtype.kind != "M":
        frame[column] = pd.to_datetime(values, utc=True).dt.tz_localize(None).astype("datetime64[ns]")
    return frame


def _read(
    store: Store,
    table: str,
    columns: Sequence[str],
    coins: Sequence[int] | None,
    start: dt.date | None,
    end: dt.date | None,
    time_col: str = "date",
    extra: str = "",
    arrow: bool = False,
) -> Any:
    """Rows keyed by the integer coin id (no join, no string per row: `load_features` names the coins last).
    `arrow`: the Arrow table as read (its time column a date or a naive UTC timestamp), for the large sources:
    `kallos.features.frame` places its columns straight into the output."""
    cond, params = _where(coins, start, end, time_col)
    cols = "".join(f", {c if ' AS ' in c else 't.' + quote(c)}" for c in columns)
    sql = f'SELECT t.coin_id, t.{quote(time_col)} AS "date"{cols} FROM {table} t WHERE {cond}{extra}'
    if not arrow:
        return _naive(store.query_bulk(sql, params))
    result = store.query_arrow(sql, params)
    when = result.column("date")
    if pa.types.is_timestamp(when.type) and when.type.tz is not None:
        result = result.set_column(1, "date", when.cast(pa.timestamp(when.type.unit)))  # naive UTC
    return result


def resolve_coins(
    store: Store, coins: Sequence[str] | None, top: int | None, end: dt.date | None, spec: TimeframeSpec = DAILY
) -> list[str] | None:
    """`coins` (CoinGecko ids) checked against the store, or the `top` coins by market cap on the last stored
    day on or before `end` among the coins with bars of the timeframe, or None (every coin with bars)."""
    if coins is not None and top is not None:
        raise InputError("give either coins or top, not both", input="coins")
    if coins is not None:
        wanted = list(dict.fromkeys(coins))
        known = set(store.coin_map())
        unknown = [c for c in wanted if c not in known]
        if unknown:
            raise InputError(f"coins not in the store: {', '.join(unknown[:10])}", input="coins", coins=unknown)
        return wanted
    if top is None:
        return None
    if top < 1:
        raise InputError("top must be at least 1", input="top")
    cond, params = _where(None, None, end, alias="d")
    day = store.scalar(f'SELECT MAX(d."date") FROM daily_market_data d WHERE {cond}', params)
    if day is None:
        return []
    has_bars = "" if spec.name == "1d" else f"AND d.coin_id IN (SELECT DISTINCT coin_id FROM {spec.market_table}) "
    ranked = store.query(
        "SELECT c.coingecko_id AS coin_id FROM daily_market_data d JOIN coins c ON c.coin_id = d.coin_id "
        f'WHERE d."date" = :day AND d.market_cap IS NOT NULL {has_bars}'
        "ORDER BY d.market_cap DESC, c.coingecko_id LIMIT :n",
        {"day": day, "n": top},
    )
    return list(ranked["coin_id"])


def read_bars(
    store: Store,
    coins: Sequence[int] | None,
    start: dt.date | None,
    end: dt.date | None,
    spec: TimeframeSpec = DAILY,
    fields: Sequence[str] = ("open", "high", "low", "close", "volume", "market_cap"),
    arrow: bool = False,
) -> Any:
    return _read(store, spec.market_table, fields, coins, start, end, spec.time_column, arrow=arrow)


def read_indicators(
    store: Store,
    coins: Sequence[int] | None,
    start: dt.date | None,
    end: dt.date | None,
    spec: TimeframeSpec = DAILY,
    columns: Sequence[str] = (),
) -> pa.Table:
    return _read(store, spec.indicator_table, columns, coins, start, end, spec.time_column, arrow=True)


def read_composites(
    store: Store, coins: Sequence[int] | None, start: dt.date | None, end: dt.date | None, spec: TimeframeSpec = DAILY
) -> pa.Table:
    """coin_id, date, composite_score, action: the composite row of every bar with signals."""
    return _read(
        store, spec.signal_table, ["composite_score", "action"], coins, start, end, spec.time_column,
        " AND t.signal = 'composite'", arrow=True,
    )  # fmt: skip


def read_rules(
    store: Store, coins: Sequence[int] | None, start: dt.date | None, end: dt.date | None, spec: TimeframeSpec = DAILY
) -> pd.DataFrame:
    """coin_id, date, signal, value = direction x strength: the rule rows (the bars where a rule fired)."""
    return _read(
        store, spec.signal_table, ["signal", "t.direction * t.strength AS value"], coins, start, end,
        spec.time_column, " AND t.signal <> 'composite'",
    )  # fmt: skip


def read_caps(store: Store, start: dt.date | None, end: dt.date | None, spec: TimeframeSpec = DAILY) -> pd.DataFrame:
    """Every stored coin's market cap per bar: the universe `market_cap_rank` ranks in."""
    return _read(store, spec.market_table, ["market_cap"], None, start, end, spec.time_column)


def read_first_bars(store: Store, coins: Sequence[int] | None, spec: TimeframeSpec = DAILY) -> pd.Series:
    cond, params = _where(coins, None, None)
    frame = store.query(
        f"SELECT t.coin_id, MIN(t.{quote(spec.time_column)}) AS first_date FROM {spec.market_table} t "
        f"WHERE {cond} GROUP BY t.coin_id",
        params,
    )
    frame = _naive(frame, "first_date")
    return pd.Series(frame["first_date"].to_numpy(), index=frame["coin_id"].to_numpy())


def read_index_constituents(store: Store, end: dt.date | None = None, index_name: str = DEFAULT_NAME) -> pd.DataFrame:
    """The named index's target weights per selection date on or before `end`: selection_date, coin_id (the
    integer id), weight."""
    cond, params = _where(None, None, end, "selection_date")
    return store.query(
        "SELECT t.selection_date, t.coin_id, t.weight FROM index_monthly_constituents t "
        f"WHERE t.index_name = :index_name AND {cond}",
        {**params, "index_name": index_name},
    )


def read_alt(store: Store, coins: Sequence[int] | None, end: dt.date | None) -> pd.DataFrame:
    return _read(store, "coin_details_history", list(ALT_DATA_COLUMNS), coins, None, end)
