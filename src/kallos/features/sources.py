"""What `load_features` reads from the store, one small function per source.

Index membership is read through `read_index_constituents` alone, so a change of the index tables (named
indices) changes one function (docs/decisions.md#D73).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd

from kallos.errors import InputError
from kallos.index.definition import DEFAULT_NAME
from kallos.indicators.contract import OUTPUT_COLUMNS
from kallos.store import Store
from kallos.store.schema import ALT_DATA_COLUMNS, quote


def _where(
    coins: Sequence[int] | None, start: dt.date | None, end: dt.date | None, date_col: str = 't."date"'
) -> tuple[str, dict[str, Any]]:
    """SQL conditions on the integer `coin_id` (inlined: they are ints from the coins table) and the date."""
    parts: list[str] = ["1 = 1"]
    params: dict[str, Any] = {}
    if coins is not None:
        parts.append(f"t.coin_id IN ({', '.join(str(int(c)) for c in coins)})" if coins else "1 = 0")
    if start is not None:
        parts.append(f"{date_col} >= :start")
        params["start"] = start
    if end is not None:
        parts.append(f"{date_col} <= :end")
        params["end"] = end
    return " AND ".join(parts), params


def _read(
    store: Store,
    table: str,
    columns: Sequence[str],
    coins: Sequence[int] | None,
    start: dt.date | None,
    end: dt.date | None,
) -> pd.DataFrame:
    """Rows keyed by the integer coin id (no join, no string per row: `load_features` names the coins last)."""
    cond, params = _where(coins, start, end)
    cols = ", ".join(f"t.{quote(c)}" for c in columns)
    return store.query_bulk(f'SELECT t.coin_id, t."date", {cols} FROM {table} t WHERE {cond}', params)


def resolve_coins(store: Store, coins: Sequence[str] | None, top: int | None, end: dt.date | None) -> list[str] | None:
    """`coins` (CoinGecko ids) checked against the store, or the `top` coins by market cap on the last stored
    day on or before `end`, or None (every coin with bars)."""
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
    cond, params = _where(None, None, end, 'd."date"')
    day = store.scalar(f'SELECT MAX(d."date") FROM daily_market_data d WHERE {cond}', params)
    if day is None:
        return []
    ranked = store.query(
        "SELECT c.coingecko_id AS coin_id FROM daily_market_data d JOIN coins c ON c.coin_id = d.coin_id "
        'WHERE d."date" = :day AND d.market_cap IS NOT NULL ORDER BY d.market_cap DESC, c.coingecko_id LIMIT :n',
        {"day": day, "n": top},
    )
    return list(ranked["coin_id"])


def read_bars(store: Store, coins: Sequence[int] | None, start: dt.date | None, end: dt.date | None) -> pd.DataFrame:
    fields = ["open", "high", "low", "close", "volume", "market_cap"]
    return _read(store, "daily_market_data", fields, coins, start, end)


def read_indicators(
    store: Store, coins: Sequence[int] | None, start: dt.date | None, end: dt.date | None
) -> pd.DataFrame:
    return _read(store, "daily_technical_indicators", ["ohlc_source", *OUTPUT_COLUMNS], coins, start, end)


def read_signals(store: Store, coins: Sequence[int] | None, start: dt.date | None, end: dt.date | None) -> pd.DataFrame:
    return _read(
        store, "trading_signals", ["signal", "direction", "strength", "composite_score", "action"], coins, start, end
    )


def read_caps(store: Store, start: dt.date | None, end: dt.date | None) -> pd.DataFrame:
    """Every stored coin's market cap per day: the universe `market_cap_rank` ranks in."""
    return _read(store, "daily_market_data", ["market_cap"], None, start, end)


def read_first_bars(store: Store, coins: Sequence[int] | None) -> pd.Series:
    cond, params = _where(coins, None, None)
    frame = store.query(
        f'SELECT t.coin_id, MIN(t."date") AS first_date FROM daily_market_data t WHERE {cond} GROUP BY t.coin_id',
        params,
    )
    return pd.Series(pd.to_datetime(frame["first_date"]).to_numpy(), index=frame["coin_id"].to_numpy())


def read_index_constituents(store: Store, end: dt.date | None = None, index_name: str = DEFAULT_NAME) -> pd.DataFrame:
    """The named index's target weights per selection date on or before `end`: selection_date, coin_id (the
    integer id), weight."""
    cond, params = _where(None, None, end, "t.selection_date")
    return store.query(
        "SELECT t.selection_date, t.coin_id, t.weight FROM index_monthly_constituents t "
        f"WHERE t.index_name = :index_name AND {cond}",
        {**params, "index_name": index_name},
    )


def read_alt(store: Store, coins: Sequence[int] | None, end: dt.date | None) -> pd.DataFrame:
    return _read(store, "coin_details_history", list(ALT_DATA_COLUMNS), coins, None, end)
