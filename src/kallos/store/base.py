"""What both backends share: frame checks, coin-id mapping, SQL text, reads.

A write goes through one path on both backends: check the frame against the table (unknown columns, missing key
or NOT NULL columns, unparseable or non-finite numbers: every problem names table, column, row key and value),
de-duplicate by key (last row wins, docs/decisions.md#D12), map CoinGecko ids to the integer surrogate (unknown
coins are an error), then hand an Arrow table to the backend's one set-based merge. So a bad batch fails before the
database is touched and the table stays as it was.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from kallos.errors import SchemaMismatchError, StoreError, StoreWriteError, UnknownCoinError
from kallos.log import get_logger
from kallos.store.migrations import current_version, is_partitioned, migrate
from kallos.store.schema import (
    BIGINT,
    BOOL,
    DATE,
    DOUBLE,
    INTEGER,
    SMALLINT,
    TABLES,
    TEXT,
    TS,
    Table,
    quote,
)

log = get_logger(__name__)

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_INT_TYPES = {BIGINT: "int64", INTEGER: "int32", SMALLINT: "int16"}
_ARROW = {
    DOUBLE: pa.float64(),
    BIGINT: pa.int64(),
    INTEGER: pa.int32(),
    SMALLINT: pa.int16(),
    TEXT: pa.string(),
    DATE: pa.date32(),
    TS: pa.timestamp("us", tz="UTC"),
    BOOL: pa.bool_(),
}

_BULK_KINDS = {DOUBLE: "float", BIGINT: "int", INTEGER: "int", SMALLINT: "int", DATE: "date", TS: "ts", TEXT: "text"}
"""Column types `read` can take through `query_bulk` (Arrow), by the kind `_typed` gives them; others (BOOLEAN)
go through `query`."""


FORWARD_ONLY = frozenset({"last_seen"})
"""Columns that never move backwards (docs/decisions.md#D57): a run with a wrong clock cannot age a coin."""


def table_def(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise SchemaMismatchError(f"unknown table {name!r}; known: {', '.join(sorted(TABLES))}", table=name) from None


def named_params(sql: str, style: str) -> str:
    """Rewrite `:name` placeholders for the driver (`%(name)s` for psycopg, `$name` for DuckDB)."""
    if style == "pyformat":
        return _PARAM.sub(r"%(\1)s", sql.replace("%", "%%"))
    return _PARAM.sub(r"$\1", sql)


class Store(ABC):
    """One storage interface over PostgreSQL and DuckDB; see docs/data-model.md for the tables."""

    backend: str = ""
    driver_errors: tuple[type[Exception], ...] = ()
    """The database driver's error classes: a write failing with one of them is "write rejected" (D39)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.layout: bool | None = None
        """The partitioning the user asked for (None: keep what exists); see `init`."""
        self._coin_ids: dict[str, int] = {}
        self._coin_lock = threading.Lock()

    # ---- backend primitives -------------------------------------------------------------------------------
    @abstractmethod
    def _fetch(self, sql: str, params: Mapping[str, Any] | None) -> tuple[list[str], list[str], list[tuple]]:
        """Run a query; return column names, their kinds ('date', 'ts', 'float', 'int', 'other') and rows."""

    @abstractmethod
    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        """Run a statement (named `:params`); return the affected row count where the driver knows it."""

    @abstractmethod
    def _merge(self, table: Table, data: pa.Table, preserve: Sequence[str]) -> int:
        """Stage `data` and merge it into `table` in one set-based statement; return rows inserted or changed."""

    @abstractmethod
    def _replace(self, table: Table, data: pa.Table, where: Mapping[str, Any]) -> int:
        """Delete the rows matching `where`, insert `data`, atomically."""

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group the writes inside into one atomic unit (nested uses join the outer one)."""

    @abstractmethod
    def close(self) -> None: ...

    def files(self) -> list[str]:
        """The files this store keeps its data in (none for a server): an export must never write onto them."""
        return []

    @abstractmethod
    def refresh_views(self) -> None:
        """Refresh materialized views (PostgreSQL); a no-op where views are computed on read."""

    # ---- public API -------------------------------------------------------------------------------------
    def init(self, *, partitioned: bool | None = None) -> int:
        """Create or upgrade the schema in place (idempotent); return the schema version.

        `partitioned=True` (PostgreSQL) creates the daily fact tables range-partitioned by year; an existing
        store of the other layout is refused with the way to migrate. None uses the layout the store was opened
        with (`open_store(partitioned=...)`), and when that is None too, keeps whatever exists."""
        return migrate(self, partitioned=self.layout if partitioned is None else partitioned)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        names, kinds, rows = self._fetch(sql, params)
        frame = pd.DataFrame.from_records(rows, columns=names) if rows else pd.DataFrame(columns=names)
        return _typed(frame, dict(zip(names, kinds, strict=True)))

    def query_bulk(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """`query` for large results (millions of rows): read through Arrow without a Python object per value
        (DuckDB natively, PostgreSQL through `COPY ... TO STDOUT`), one unconsolidated column each (no copy of the
        whole result into one block). Dates come back as naive datetime64, NULL numbers as NaN."""
        return self.query(sql, params)

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """`query_bulk` as the Arrow table itself (its chunks as the driver made them), for readers that place
        the values straight into their own arrays (`kallos.features`: one copy per column instead of two)."""
        return pa.Table.from_pandas(self.query_bulk(sql, params), preserve_index=False)

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        _, _, rows = self._fetch(sql, params)
        return rows[0][0] if rows else None

    def coin_map(self, refresh: bool = False) -> dict[str, int]:
        """CoinGecko id -> integer `coins.coin_id` (cached; refreshed on a miss)."""
        with self._coin_lock:
            if refresh or not self._coin_ids:
                _, _, rows = self._fetch("SELECT coingecko_id, coin_id FROM coins", None)
                self._coin_ids = {r[0]: int(r[1]) for r in rows}
            return dict(self._coin_ids)

    def upsert(self, table: str, frame: pd.DataFrame, *, preserve: Sequence[str] = ()) -> int:
        """Insert or update `frame` by the table's key; only the frame's columns are written.

        Rows whose values equal the stored ones are skipped (no write, no WAL). `preserve` columns keep an existing
        non-NULL value (e.g. `first_seen`). Returns rows inserted or changed.
        """
        t = table_def(table)
        data = self._prepare(t, frame, for_replace=False)
        if data.num_rows == 0:
            return 0
        unknown = [c for c in preserve if c not in data.column_names or c in t.key]
        if unknown:
            raise SchemaMismatchError(f"preserve names columns not written: {unknown}", table=table)
        with _wrap(table, self.driver_errors):
            if t.partition_unit == "month":
                self._ensure_month_partitions(t, data)
            return self._merge(t, data, preserve)

    def _ensure_month_partitions(self, t: Table, data: pa.Table) -> None:
        """Create the monthly partitions a batch of an hourly table needs (PostgreSQL, partitioned layout)."""
        if self.backend != "postgresql" or not t.date_column or data.num_rows == 0:
            return
        from kallos.store.migrations import is_partitioned
        from kallos.store.schema import month_partitions_sql

        made = self.__dict__.setdefault("_months_made", {})
        if t.name not in made:
            made[t.name] = set() if is_partitioned(self, t.name) else None
        if made[t.name] is None:
            return
        stamps = pd.to_datetime(data.column(t.date_column).to_pandas(), utc=True)
        for month in sorted(set(zip(stamps.dt.year, stamps.dt.month, strict=True))):
            if month not in made[t.name]:
                for sql in month_partitions_sql(t, month, month)[:-1]:
                    self.execute(sql)
                made[t.name].add(month)

    def replace(self, table: str, frame: pd.DataFrame, *, where: Mapping[str, Any]) -> int:
        """Delete the rows matching `where` (column -> value, coin ids as CoinGecko ids) and insert `frame`."""
        t = table_def(table)
        bad = [c for c in where if c not in t.column_names]
        if bad:
            raise SchemaMismatchError(f"replace filter names unknown columns {bad}", table=table)
        data = self._prepare(t, frame, for_replace=True)
        cond = dict(where)
        if t.coin_keyed and "coin_id" in cond:
            cond["coin_id"] = self._map_coins(t, pd.Series([cond["coin_id"]])).iloc[0]
        with _wrap(table, self.driver_errors):
            return self._replace(t, data, cond)

    def read(
        self,
        table: str,
        *,
        coins: Sequence[str] | None = None,
        start: dt.date | str | None = None,
        end: dt.date | str | None = None,
        columns: Sequence[str] | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> pd.DataFrame:
        """Rows of `table` for some coins and an inclusive date range, sorted by key, coin ids as CoinGecko ids.

        `where` adds equality filters on other columns (e.g. `{"index_name": "default"}`)."""
        t = table_def(table)
        wanted = list(columns) if columns else [c for c in t.column_names if not (t.coin_keyed and c == "coin_id")]
        bad = [c for c in wanted if c not in t.column_names and c != "coin_id"]
        if bad:
            raise SchemaMismatchError(f"unknown columns {bad}", table=table)
        select: list[str] = []
        conds: list[str] = []
        params: dict[str, Any] = {}
        if t.coin_keyed:
            select.append("c.coingecko_id AS coin_id")
            src = f"{t.name} t JOIN coins c ON c.coin_id = t.coin_id"
        else:
            src = f"{t.name} t"
        select += [f"t.{quote(c)}" for c in wanted if not (t.coin_keyed and c == "coin_id")]
        if coins is not None:
            coins = list(coins)
            if not coins:
                return pd.DataFrame(columns=["coin_id", *[c for c in wanted if c != "coin_id"]])
            col = "c.coingecko_id" if t.coin_keyed else ("t.coingecko_id" if t.name == "coins" else None)
            if col is None:
                raise SchemaMismatchError("this table has no coins to filter on", table=table)
            conds.append(f"{col} IN ({', '.join(f':c{i}' for i in range(len(coins)))})")
            params.update({f"c{i}": c for i, c in enumerate(coins)})
        for i, (column, value) in enumerate((where or {}).items()):
            if column not in t.column_names or (t.coin_keyed and column == "coin_id"):
                raise SchemaMismatchError(f"read filter names an unknown column {column!r}", table=table)
            conds.append(f"t.{quote(column)} = :w{i}")
            params[f"w{i}"] = value
        if (start is not None or end is not None) and not t.date_column:
            raise SchemaMismatchError("this table has no date column to filter on", table=table)
        if start is not None:
            conds.append(f"t.{quote(t.date_column)} >= :start")  # type: ignore[arg-type]
            params["start"] = _bound(t, start)
        if end is not None:
            conds.append(f"t.{quote(t.date_column)} <= :end")  # type: ignore[arg-type]
            params["end"] = _bound(t, end)
        order = ", ".join("c.coingecko_id" if (t.coin_keyed and k == "coin_id") else f"t.{quote(k)}" for k in t.key)
        sql = f"SELECT {', '.join(select)} FROM {src}"
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        sql += f" ORDER BY {order}"
        kinds = {c: t.column(c).type for c in wanted if not (t.coin_keyed and c == "coin_id")}
        if all(kind in _BULK_KINDS for kind in kinds.values()):
            # Through Arrow, without a Python object per value (docs/decisions.md#D123): the indicator step's
            # read of a batch's bars was a third of its time. Same dtypes as `query` (checked in tests/store).
            frame = self.query_bulk(sql, params)
            if not frame.empty:
                for c, kind in kinds.items():
                    if kind == TEXT and frame[c].isna().all():  # as the row path gives it: objects, all None
                        frame[c] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
                return _typed(frame, {c: _BULK_KINDS[k] for c, k in kinds.items()})
        return self.query(sql, params)

    def status(self) -> dict[str, Any]:
        counts = {}
        version = current_version(self)
        if version:
            for name in TABLES:
                counts[name] = int(self.scalar(f"SELECT count(*) FROM {name}") or 0)
        partitioned = bool(version) and is_partitioned(self)
        return {
            "backend": self.backend,
            "url": redact_url(self.url),
            "version": version,
            "partitioned": partitioned,
            "tables": counts,
        }

    # ---- frame preparation --------------------------------------------------------------------------------
    def _prepare(self, t: Table, frame: pd.DataFrame, *, for_replace: bool) -> pa.Table:
        if not isinstance(frame, pd.DataFrame):
            frame = pa.table(frame).to_pandas() if isinstance(frame, pa.Table) else pd.DataFrame(frame)
        cols = list(frame.columns)
        unknown = [c for c in cols if c not in t.column_names]
        if unknown:
            raise SchemaMismatchError(f"columns not in table {t.name}: {unknown}", table=t.name)
        filled_by_db = [c for c in cols if c in t.audit]
        if filled_by_db:
            raise SchemaMismatchError(f"columns filled by the database cannot be written: {filled_by_db}", table=t.name)
        literal_keys = {
            c.name: c.default[1:-1]
            for c in t.columns
            if c.name in t.key and c.name not in cols and c.default and c.default.startswith("'")
        }
        if literal_keys:
            # a key column with a constant default (index_name = 'default') may be left out of the frame
            frame = frame.assign(**literal_keys)
            cols = list(frame.columns)
        missing = [k for k in t.key if k not in cols]
        required = [c.name for c in t.columns if not c.nullable and not c.default and c.name not in t.audit]
        missing += [c for c in required if c not in cols and c not in missing]
        if missing:
            raise SchemaMismatchError(f"missing required columns {missing}", table=t.name)
        if frame.empty:
            return pa.table({c: pa.array([], type=_ARROW[t.column(c).type]) for c in cols})
        frame = frame.reset_index(drop=True)
        out: dict[str, pd.Series] = {}
        for name in cols:
            out[name] = _convert(t, name, frame[name], frame)
        for name in required:
            nulls = out[name].isna()
            if nulls.any():
                i = int(np.flatnonzero(nulls.to_numpy())[0])
                raise StoreWriteError(
                    f"NULL in NOT NULL column {name}", table=t.name, column=name, row=_row_key(t, frame, i)
                )
        # Columns stay separate Series (no DataFrame: it would copy every column into one block).
        dup = pd.DataFrame({k: out[k] for k in t.key}).duplicated(keep="last").to_numpy()
        if dup.any():
            keep = ~dup
            out = {name: s[keep] for name, s in out.items()}
            log.info(
                "duplicate keys in batch resolved, last row wins",
                extra={"table": t.name, "duplicates": int(dup.sum())},
            )
        if t.coin_keyed:
            out["coin_id"] = self._map_coins(t, out["coin_id"])
        return pa.table({c: _arrow(out[c], t.column(c).type) for c in cols})

    def _map_coins(self, t: Table, ids: pd.Series) -> pd.Series:
        mapping = self.coin_map()
        unique = set(ids.unique())
        missing = unique - mapping.keys()
        if missing:
            mapping = self.coin_map(refresh=True)
            missing = unique - mapping.keys()
        if missing:
            shown = sorted(map(str, missing))
            raise UnknownCoinError(
                f"{len(shown)} coin(s) not in the coins table (run `kallos coins sync` first): "
                f"{', '.join(shown[:10])}{' ...' if len(shown) > 10 else ''}",
                table=t.name,
                coins=shown[:50],
            )
        known = pd.Index(list(mapping))
        surrogate = np.fromiter(mapping.values(), dtype="int64", count=len(mapping))
        return pd.Series(surrogate[known.get_indexer(ids)], index=ids.index)

    # ---- SQL text shared by both backends -------------------------------------------------------------------
    @staticmethod
    def merge_sql(t: Table, source: str, columns: Sequence[str], preserve: Sequence[str]) -> str:
        cols = ", ".join(quote(c) for c in columns)
        keys = ", ".join(quote(k) for k in t.key)
        values = [c for c in columns if c not in t.key]
        insert = f"INSERT INTO {t.name} AS t ({cols}) SELECT {cols} FROM {source} ORDER BY {keys}"
        if not values:
            return insert + f" ON CONFLICT ({keys}) DO NOTHING"
        sets = []
        for c in values:
            q = quote(c)
            if c in preserve:
                sets.append(f"{q} = COALESCE(t.{q}, EXCLUDED.{q})")
            elif c in FORWARD_ONLY:
                sets.append(f"{q} = GREATEST(t.{q}, EXCLUDED.{q})")
            else:
                sets.append(f"{q} = EXCLUDED.{q}")
        if "updated_at" in t.audit:
            sets.append("updated_at = now()")
        changed = " OR ".join(
            f"(t.{quote(c)} IS NULL OR EXCLUDED.{quote(c)} > t.{quote(c)})"
            if c in FORWARD_ONLY
            else f"t.{quote(c)} IS DISTINCT FROM EXCLUDED.{quote(c)}"
            for c in values
            if c not in preserve
        )
        preserved = " OR ".join(f"(t.{quote(c)} IS NULL AND EXCLUDED.{quote(c)} IS NOT NULL)" for c in preserve)
        cond = " OR ".join(x for x in (changed, preserved) if x)
        return f"{insert} ON CONFLICT ({keys}) DO UPDATE SET {', '.join(sets)} WHERE {cond}"

    @staticmethod
    def delete_sql(t: Table, where: Mapping[str, Any]) -> str:
        if not where:
            return f"DELETE FROM {t.name}"
        return f"DELETE FROM {t.name} WHERE " + " AND ".join(f"{quote(c)} = :w_{c}" for c in where)


@contextmanager
def _wrap(table: str | None, driver_errors: tuple[type[Exception], ...]) -> Iterator[None]:
    """The database's errors become StoreWriteError naming the table; anything else (ours, or a bug) passes
    through unchanged (docs/decisions.md#D39)."""
    try:
        yield
    except StoreError:
        raise
    except driver_errors as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreWriteError(f"write rejected, table unchanged: {first_line}", table=table) from exc


def _row_key(t: Table, frame: pd.DataFrame, i: int) -> dict[str, Any]:
    return {k: frame[k].iloc[i] for k in t.key if k in frame.columns}


def _convert(t: Table, name: str, s: pd.Series, frame: pd.DataFrame) -> pd.Series:
    kind = t.column(name).type
    if name == "coin_id" and t.coin_keyed:
        if s.isna().any():
            raise StoreWriteError("NULL coin_id", table=t.name, column=name)
        return s.astype(str)
    try:
        if kind == DOUBLE and s.dtype == np.float64:
            # The usual case (indicator columns): already doubles, only infinities can be wrong. One pass
            # instead of converting and comparing null masks (docs/decisions.md#D122).
            out = s
            bad = np.isinf(s.to_numpy())
        elif kind == DOUBLE:
            out = pd.to_numeric(s, errors="coerce").astype("float64")
            bad = (out.isna() & s.notna()) | np.isinf(out)
        elif kind in _INT_TYPES:
            num = pd.to_numeric(s, errors="coerce")
            bad = (num.isna() & s.notna()) | (num.notna() & (num != num.round()))
            out = num.astype("Int64")
        elif kind == DATE:
            out = _to_dates(s)
            bad = out.isna() & s.notna()
        elif kind == TS:
            out = pd.to_datetime(s, utc=True, errors="coerce")
            bad = out.isna() & s.notna()
        elif kind == BOOL:
            out = s.astype("boolean")
            bad = pd.Series(False, index=s.index)
        elif s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) not in ("string", "empty"):
            out = s.map(_as_text, na_action="ignore").astype(object).where(s.notna(), None)
        elif s.dtype == object:  # strings already (the usual case): no per-row Python
            out = s
            bad = pd.Series(False, index=s.index)
        else:
            out = s.astype("string") if not pd.api.types.is_string_dtype(s) else s
            bad = pd.Series(False, index=s.index)
    except (TypeError, ValueError) as exc:
        raise StoreWriteError(f"column {name} cannot be read as {kind}: {exc}", table=t.name, column=name) from None
    if bool(np.asarray(bad).any()):
        i = int(np.flatnonzero(np.asarray(bad))[0])
        raise StoreWriteError(
            f"bad value {s.iloc[i]!r} in column {name} ({kind})",
            table=t.name,
            column=name,
            row=_row_key(t, frame, i),
        )
    return out


def _to_dates(s: pd.Series) -> pd.Series:
    if s.dtype == object and len(s) and isinstance(s.dropna().iloc[0] if s.notna().any() else None, dt.date):
        s = pd.to_datetime(s, errors="coerce")
    out = pd.to_datetime(s, errors="coerce")
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    out = out.astype("datetime64[ns]")
    ns = out.to_numpy().view("int64")
    off = pd.Series(out.notna().to_numpy() & (ns % 86_400_000_000_000 != 0), index=out.index)
    if off.any():
        i = int(np.flatnonzero(off.to_numpy())[0])
        raise ValueError(f"{s.iloc[i]!r} is not a calendar date (has a time of day)")
    return out.astype("datetime64[ns]")


def _arrow(s: pd.Series, kind: str) -> pa.Array:
    if kind == DATE:
        return pa.array(s.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]"), type=pa.date32(), from_pandas=True)
    if kind == TS:
        return pa.array(s.dt.tz_convert("UTC"), type=_ARROW[TS], from_pandas=True)
    return pa.array(s, type=_ARROW[kind], from_pandas=True)


def _as_text(v: Any) -> str:
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True, default=str)
    return str(v)


def _bound(t: Table, v: dt.date | str | pd.Timestamp) -> Any:
    """A read's range bound: a day for DATE columns; a UTC instant for timestamp columns (hourly tables), where
    a bare date means its 00:00 UTC (never the session's time zone)."""
    if t.date_column and t.column(t.date_column).type == TS:
        ts = pd.Timestamp(v)
        return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()
    return _as_date(v)


def _as_date(v: dt.date | str | pd.Timestamp) -> dt.date:
    if isinstance(v, pd.Timestamp):
        return v.date()
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    return dt.date.fromisoformat(str(v)[:10])


def _typed(frame: pd.DataFrame, kinds: Mapping[str, str]) -> pd.DataFrame:
    """Give both backends' results the same dtypes: naive datetime64 days, UTC timestamps, float NaN for NULL."""
    for name, kind in kinds.items():
        if name not in frame.columns:
            continue
        col = frame[name]
        if kind == "date":
            frame[name] = pd.to_datetime(col).astype("datetime64[ns]")
        elif kind == "ts":
            frame[name] = pd.to_datetime(col, utc=True).astype("datetime64[ns, UTC]")
        elif kind == "float":
            frame[name] = pd.to_numeric(col).astype("float64")
        elif kind == "int":
            frame[name] = pd.to_numeric(col).astype("Int64") if col.isna().any() else col.astype("int64")
    return frame


def arrow_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as a frame of separate columns (no consolidation copy): dates as datetime64[ns], integer
    and float columns as NumPy (NULL -> NaN), strings as pandas strings."""
    columns: dict[str, Any] = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        kind = col.type
        if pa.types.is_date(kind):
            columns[name] = col.cast(pa.timestamp("ns")).to_numpy()
        elif pa.types.is_timestamp(kind):
            columns[name] = pd.to_datetime(col.to_numpy(), utc=kind.tz is not None)
        elif pa.types.is_integer(kind) and col.null_count == 0:
            columns[name] = col.to_numpy()
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            columns[name] = col.cast(pa.float64()).to_numpy()
        else:  # strings stay Arrow-backed (pandas' str dtype): no Python object per value
            columns[name] = col.to_pandas()
    return pd.DataFrame(columns, copy=False)


def redact_url(url: str) -> str:
    """Hide a password in a database URL."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
