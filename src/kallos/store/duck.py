"""The embedded default store: one DuckDB file, no server.

DuckDB opens a file in one process at a time (docs/decisions.md#D13); threads of that process share it through cursors.
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

from kallos.errors import ConfigError, StoreBusyError, StoreError
from kallos.store.base import Store, _typed, _wrap, arrow_frame, named_params
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


DUCKDB_MAGIC = b"DUCK"
"""Bytes 8-11 of every DuckDB database file."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _checked_file(path: Path, *, create: bool = True) -> Path:
    """docs/decisions.md#D53: refuse, without touching it, a path that is not a DuckDB database file.

    DuckDB would happily write its header into an empty file and fail with a traceback on a directory or a
    foreign file; Kallos names the file and leaves it as it is. A missing file is created (its folder too)."""
    if path.is_dir():
        raise StoreError(
            f"the database path {path} is a directory; point KALLOS_DATABASE_URL at a file inside it, "
            f"e.g. duckdb:///{path / 'kallos.duckdb'}",
            path=str(path),
        )
    if path.exists():
        try:
            with open(path, "rb") as fh:
                head = fh.read(12)
        except OSError as exc:
            raise StoreError(f"cannot read the database file {path}: {exc.strerror}", path=str(path)) from None
        if len(head) == 0:
            raise StoreError(
                f"the database file {path} is empty, so it is not a DuckDB database (left untouched); delete it "
                "to start a new store, or point KALLOS_DATABASE_URL at the right file",
                path=str(path),
            )
        if head[8:12] != DUCKDB_MAGIC:
            raise StoreError(
                f"the file {path} is not a DuckDB database (left untouched); point KALLOS_DATABASE_URL at the "
                "Kallos database, or at a new file name to start a new store",
                path=str(path),
            )
        return path
    if not create:
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"cannot create the folder of the database file {path}: {exc.strerror}; set KALLOS_DATABASE_URL to "
            "a writable place",
            path=str(path),
        ) from None
    return path


def _kind(type_code: Any) -> str:
    name = str(type_code).upper()
    if name.startswith("TIMESTAMP WITH TIME ZONE") or name == "TIMESTAMPTZ":
        return "ts"
    return _KINDS.get(name, "other")


LOCK_WAIT_SECONDS = 3.0
"""How long opening waits for another process to let go of the file: the price stream holds it only for the few
milliseconds of a flush (docs/decisions.md#D104), the dashboard for one request (docs/decisions.md#D92), and a
command should not fail on that. A read-only open (the dashboard) does not wait: it shows its last known state."""


def _connect_waiting(
    path: str, *, read_only: bool = False, wait: float = LOCK_WAIT_SECONDS
) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + wait
    while True:
        try:
            return duckdb.connect(path, read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


class DuckDBStore(Store):
    backend = "duckdb"
    driver_errors = (duckdb.Error,)

    def __init__(self, url: str, *, read_only: bool = False, busy_wait_seconds: float | None = None) -> None:
        super().__init__(url)
        path = duckdb_path(url)
        if path != ":memory:":
            path = str(_checked_file(Path(path).expanduser(), create=not read_only))
        self.read_only = read_only
        wait = (0.0 if read_only else LOCK_WAIT_SECONDS) if busy_wait_seconds is None else busy_wait_seconds
        try:
            self._con = _connect_waiting(path, read_only=read_only, wait=wait)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreBusyError(
                    "the embedded database is open in another process (a DuckDB file allows one process at a "
                    "time); wait for the running job or use PostgreSQL for concurrent access",
                    path=path,
                ) from None
            raise StoreError(
                f"cannot open the database file {path}: {_first_line(exc)}; check that its folder is writable "
                "(a read-only or full filesystem cannot hold the store) or set KALLOS_DATABASE_URL elsewhere",
                path=path,
            ) from None
        except duckdb.Error as exc:
            raise StoreError(
                f"cannot open the database file {path}: {_first_line(exc)}", path=path
            ) from None
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
            try:
                cur.rollback()
            except duckdb.Error:
                # A failed COMMIT (a full disk) has already ended the transaction: the error worth reporting is
                # the commit's ("No space left on device"), not "cannot rollback" (docs/decisions.md#D53).
                pass
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

    def query_bulk(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        return arrow_frame(self.query_arrow(sql, params))

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        rel = self._cursor().sql(named_params(sql, "dollar"), params=dict(params or {}))
        return rel.to_arrow_table()

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

    def files(self) -> list[str]:
        return [] if self.path == ":memory:" else [self.path, f"{self.path}.wal"]

    def refresh_views(self) -> None:
        return None

    def close(self) -> None:
        try:
            self._con.close()
        except duckdb.Error:
            pass
