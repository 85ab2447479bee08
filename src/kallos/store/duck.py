"""The embedded default store: one DuckDB file, no server.

DuckDB opens a file in one process at a time (decisions.md #13); threads of that process share it through cursors.
Writes register the staged Arrow table and run the shared merge statement, so both backends execute the same SQL.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from kallos.errors import ConfigError, StoreBusyError
from kallos.store.base import Store, _typed, _wrap, named_params
from kallos.store.schema import Table

_KINDS = {"DATE": "date", "DOUBLE": "float", "FLOAT": "float", "BIGINT": "int", "INTEGER": "int", "SMALLINT": "int"}


def duckdb_path(url: str) -> str:
    """`duckdb:///rel.duckdb` -> `rel.duckdb`, `duckdb:////abs.duckdb` -> `/abs.duckdb` (SQLAlchemy's rule)."""
    if not url.startswith("duckdb:///"):
        raise ConfigError(f"not a DuckDB URL: {url}", setting="KALLOS_DATABASE_URL")
    path = url[len("duckdb:///") :]
    if not path:
        raise ConfigError("a DuckDB URL needs a file path", setting="KALLOS_DATABASE_URL")
    return path


def _kind(type_code: Any) -> str:
    name = str(type_code).upper()
    if name.startswith("TIMESTAMP WITH TIME ZONE") or name == "TIMESTAMPTZ":
        return "ts"
    return _KINDS.get(name, "other")


LOCK_WAIT_SECONDS = 3.0
"""How long opening waits for another process to let go of the file: the price stream holds it only for the few
milliseconds of a flush (docs/decisions.md#D104), and a command should not fail on that."""


def _connect_waiting(path: str) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            return duckdb.connect(path)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


class DuckDBStore(Store):
    backend = "duckdb"
    driver_errors = (duckdb.Error,)

    def __init__(self, url: str) -> None:
        super().__init__(url)
        path = duckdb_path(url)
        if path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
            path = str(Path(path).expanduser())
        try:
            self._con = _connect_waiting(path)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreBusyError(
                    "the embedded database is open in another process (a DuckDB file allows one process at a "
                    "time); wait for the running job or use PostgreSQL for concurrent access",
                    path=path,
                ) from None
            raise
        self._con.execute("SET TimeZone = 'UTC'")
        self._local = threading.local()
        self.path = path

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cur = getattr(self._local, "tx", None)
        if cur is not None:
            return cur
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._con.cursor()
            cur.execute("SET TimeZone = 'UTC'")
            self._local.cursor = cur
        return cur

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if getattr(self._local, "tx", None) is not None:
            yield
            return
        cur = self._con.cursor()
        cur.execute("SET TimeZone = 'UTC'")
        cur.begin()
        self._local.tx = cur
        try:
            yield
            cur.commit()
        except BaseException:
            cur.rollback()
            raise
        finally:
            self._local.tx = None
            cur.close()

    def _fetch(self, sql: str, params: Mapping[str, Any] | None) -> tuple[list[str], list[str], list[tuple]]:
        cur = self._cursor().execute(named_params(sql, "dollar"), dict(params or {}))
        desc = cur.description or []
        return [d[0] for d in desc], [_kind(d[1]) for d in desc], cur.fetchall()

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        cur = self._cursor().execute(named_params(sql, "dollar"), dict(params or {}))
        kinds = {d[0]: _kind(d[1]) for d in (cur.description or [])}
        frame = cur.df()
        for name, kind in kinds.items():  # DuckDB hands back tz-aware values in the session zone: make them UTC
            if kind == "ts" and name in frame.columns:
                frame[name] = pd.to_datetime(frame[name], utc=True)
        return _typed(frame, kinds)

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        with _wrap(None, self.driver_errors):
            cur = self._cursor().execute(named_params(sql, "dollar"), dict(params or {}))
        try:
            row = cur.fetchone()
            return int(row[0]) if row and isinstance(row[0], int) else 0
        except duckdb.Error:
            return 0

    def _write(self, fn) -> int:  # type: ignore[no-untyped-def]
        """Run `fn(cursor)` atomically; retry write-write conflicts between threads of this process."""
        if getattr(self._local, "tx", None) is not None:
            return fn(self._local.tx)
        for attempt in range(20):
            try:
                with self.transaction():
                    return fn(self._local.tx)
            except duckdb.TransactionException:
                if attempt == 19:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def _merge(self, table: Table, data: pa.Table, preserve: Sequence[str]) -> int:
        name = f"_stage_{uuid.uuid4().hex[:12]}"
        sql = self.merge_sql(table, name, data.column_names, preserve)

        def run(cur: duckdb.DuckDBPyConnection) -> int:
            cur.register(name, data)
            try:
                row = cur.execute(sql).fetchone()
                return int(row[0]) if row else 0
            finally:
                cur.unregister(name)

        return self._write(run)

    def _replace(self, table: Table, data: pa.Table, where: Mapping[str, Any]) -> int:
        name = f"_stage_{uuid.uuid4().hex[:12]}"
        cols = ", ".join(f'"{c}"' for c in data.column_names)
        delete = named_params(self.delete_sql(table, where), "dollar")
        params = {f"w_{k}": v for k, v in where.items()}

        def run(cur: duckdb.DuckDBPyConnection) -> int:
            cur.execute(delete, params)
            if data.num_rows == 0:
                return 0
            cur.register(name, data)
            try:
                cur.execute(f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {name}")
            finally:
                cur.unregister(name)
            return data.num_rows

        return self._write(run)

    def refresh_views(self) -> None:
        return None

    def close(self) -> None:
        try:
            self._con.close()
        except duckdb.Error:
            pass
