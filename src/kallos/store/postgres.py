"""The production store: PostgreSQL through psycopg 3 and a small connection pool.

Bulk writes COPY in binary format (docs/decisions.md#D112) straight into the table when the batch cannot meet a
stored row, else into a temporary stage and run one `INSERT ... SELECT ... ON CONFLICT DO
UPDATE ... WHERE ... IS DISTINCT FROM EXCLUDED ...` (unchanged rows cost no write). Staged rows are merged in key
order so overlapping concurrent writers lock rows in the same order; a deadlock or serialization failure that
still happens is retried.
"""

from __future__ import annotations

import io
import queue
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute
import pyarrow.csv as pacsv
from psycopg import errors as pgerrors
from psycopg_pool import ConnectionPool, PoolTimeout

from kallos.errors import StoreError, StoreUnavailableError
from kallos.store import pgbinary
from kallos.store.base import Store, _wrap, arrow_frame, named_params, redact_url
from kallos.store.schema import Table, quote

_KINDS = {
    1082: "date",
    1184: "ts",
    1114: "ts",
    700: "float",
    701: "float",
    1700: "float",
    20: "int",
    21: "int",
    23: "int",
}
_COPY_BATCH_ROWS = 20_000  # rows encoded at a time: buffers of a few MB, reused from the heap (fresh pages cost)
_ARROW_READ = {"date": pa.date32(), "ts": pa.timestamp("us", tz="UTC"), "float": pa.float64(), "int": pa.int64()}
"""Arrow types of the CSV columns `query_bulk` parses, by the result's column kind."""
_RETRYABLE = (pgerrors.DeadlockDetected, pgerrors.SerializationFailure)
POOL_TIMEOUT_SECONDS = 15.0
"""How long a command waits for a pooled connection before calling the database lost."""


def conninfo_from_url(url: str) -> tuple[str, str | None]:
    """Accept `postgresql://`, `postgres://` and `postgresql+driver://`; pull out our own `?schema=` option."""
    parts = urlsplit(url)
    scheme = "postgresql"
    query = dict(parse_qsl(parts.query))
    schema = query.pop("schema", None)
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(query), parts.fragment)), schema


class PostgresStore(Store):
    backend = "postgresql"
    driver_errors = (psycopg.Error,)

    def __init__(self, url: str, *, schema: str | None = None, max_size: int = 8, read_only: bool = False) -> None:
        super().__init__(url)
        conninfo, url_schema = conninfo_from_url(url)
        self.schema = schema or url_schema
        self.read_only = read_only
        kwargs: dict[str, Any] = {"autocommit": False}
        options = []
        if self.schema:
            options.append(f"-c search_path={self.schema}")
        if read_only:
            # Every transaction of this store is READ ONLY: a write fails in the server (the dashboard).
            options.append("-c default_transaction_read_only=on")
        if options:
            kwargs["options"] = " ".join(options)
        self._local = threading.local()
        self._conninfo, self._kwargs = conninfo, kwargs
        self._lost = False
        try:
            psycopg.connect(conninfo, connect_timeout=10, **kwargs).close()  # fail fast with the driver's reason
            self._pool = ConnectionPool(
                conninfo, min_size=1, max_size=max_size, kwargs=kwargs, open=False, timeout=POOL_TIMEOUT_SECONDS
            )
            self._pool.open(wait=True, timeout=10)
        except Exception as exc:  # noqa: BLE001 - connection problems of any kind get one clear message
            raise StoreError(
                f"cannot connect to PostgreSQL at {redact_url(url)}: {str(exc).splitlines()[0] if str(exc) else exc}",
            ) from None

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        """A lost connection (server down, network cut, pool unable to reconnect) stops the command with one
        clear error instead of a driver traceback; the transaction in flight was rolled back by the server."""
        try:
            yield
        except (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout) as exc:
            self._lost = True
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreUnavailableError(
                f"lost the connection to PostgreSQL at {redact_url(self.url)}: {first}; every batch is one "
                "transaction, so nothing is half-written: rerun the command when the server is back (it resumes "
                "where the stored data ends)",
            ) from None

    @contextmanager
    def _pooled(self) -> Iterator[psycopg.Connection]:
        """A pooled connection. Once the server was lost, a direct connection probes it first: a server that
        refuses fails the next write at once (the run's ledger record, the lock's release) instead of waiting
        `POOL_TIMEOUT_SECONDS` each for a pool that cannot reconnect (docs/decisions.md#D53)."""
        if self._lost:
            psycopg.connect(self._conninfo, connect_timeout=3, **self._kwargs).close()
            self._pool.check()  # the server is back: drop the connections the loss broke
            self._lost = False
        with self._pool.connection() as conn:
            yield conn

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection]:
        tx = getattr(self._local, "tx", None)
        if tx is not None:
            with self._reachable():
                yield tx
            return
        with self._reachable(), self._pooled() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if getattr(self._local, "tx", None) is not None:
            yield
            return
        # outer block: inner writes become savepoints
        with self._reachable(), self._pooled() as conn, conn.transaction():
            self._local.tx = conn
            try:
                yield
            finally:
                self._local.tx = None

    def _fetch(self, sql: str, params: Mapping[str, Any] | None) -> tuple[list[str], list[str], list[tuple]]:
        with self._conn() as conn, conn.cursor() as cur:
            cur.execute(named_params(sql, "pyformat") if params else sql, dict(params or {}) or None)
            desc = cur.description or []
            rows = cur.fetchall() if desc else []
            return [d.name for d in desc], [_KINDS.get(d.type_code, "other") for d in desc], rows

    def query_bulk(self, sql: str, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """COPY the result out as CSV and parse it with Arrow: about 10x faster than fetching tuples for a
        million-row read. PostgreSQL prints doubles in their shortest exact form and Arrow parses them correctly
        rounded, so values round-trip bit for bit; NULL (unquoted empty) and '' (quoted) stay apart."""
        return arrow_frame(self.query_arrow(sql, params))

    def query_arrow(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        text = named_params(sql, "pyformat") if params else sql
        args = dict(params or {}) or None
        with self._conn() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT * FROM ({text}) q LIMIT 0", args)
            desc = cur.description or []
            names = [d.name for d in desc]
            kinds = {d.name: _KINDS.get(d.type_code, "other") for d in desc}
            buf = io.BytesIO()
            with cur.copy(f"COPY ({text}) TO STDOUT (FORMAT CSV)", args) as copy:
                for block in copy:
                    buf.write(block)
        types = {n: _ARROW_READ.get(kinds[n], pa.string()) for n in names}
        if not buf.getbuffer().nbytes:
            return pa.table({n: pa.array([], type=t) for n, t in types.items()})
        return pacsv.read_csv(
            io.BytesIO(buf.getvalue()),
            read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 24),
            convert_options=pacsv.ConvertOptions(
                column_types=types, strings_can_be_null=True, quoted_strings_can_be_null=False
            ),
        )

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        with _wrap(None, self.driver_errors), self._conn() as conn, conn.cursor() as cur:
            cur.execute(named_params(sql, "pyformat") if params else sql, dict(params or {}) or None)
            return max(cur.rowcount, 0)

    def _write(self, fn) -> int:  # type: ignore[no-untyped-def]
        if getattr(self._local, "tx", None) is not None:
            with self._reachable(), self._local.tx.transaction():
                return fn(self._local.tx)
        for attempt in range(8):
            try:
                with self._reachable(), self._pooled() as conn, conn.transaction():
                    return fn(conn)
            except _RETRYABLE:
                if attempt == 7:
                    raise
                time.sleep(0.02 * 2**attempt)
        raise AssertionError("unreachable")

    @staticmethod
    def _copy(conn: psycopg.Connection, target: str, data: pa.Table) -> None:
        """Stream `data` into `target` in COPY's binary format (docs/decisions.md#D112): each double travels as
        its 8 bytes, which the server stores without parsing. Types the encoder does not know go as CSV written
        by Arrow (exact float round-trip, NULL vs '' kept apart)."""
        if pgbinary.supported(data.schema):
            _copy_binary(conn, data.column_names, [(target, _chunks([(0, data.num_rows)], data))])
            return
        names = ", ".join(quote(c) for c in data.column_names)
        with conn.cursor() as cur, cur.copy(f"COPY {target} ({names}) FROM STDIN (FORMAT CSV)") as copy:
            for batch in data.to_batches(max_chunksize=100_000):
                buf = io.BytesIO()
                pacsv.write_csv(batch, buf, pacsv.WriteOptions(include_header=False))
                copy.write(buf.getbuffer())

    @staticmethod
    def _partitions(conn: psycopg.Connection, table: Table) -> frozenset[str]:
        """The names of `table`'s partitions in the current schema (empty when it is a plain table). Read per
        batch, inside its transaction, so a partition created or detached meanwhile is seen."""
        if not table.partitionable:
            return frozenset()
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
            "WHERE p.relname = %s AND n.nspname = current_schema()",
            (table.name,),
        ).fetchall()
        return frozenset(r[0] for r in rows)

    def _copy_fresh(self, conn: psycopg.Connection, table: Table, data: pa.Table) -> None:
        """COPY a batch that cannot conflict. In the partitioned layout, each year's (hourly tables: month's)
        rows go straight into that partition, one COPY each (docs/decisions.md#D122): the server skips tuple
        routing and each COPY fills one table and its indexes. Rows of a period without its own partition go
        through the parent (PostgreSQL routes them to the DEFAULT partition); the server checks a partition's
        bounds on every row written into it, so a row can never land in the wrong one."""
        parts = self._partitions(conn, table)
        if not parts or table.date_column is None or not pgbinary.supported(data.schema):
            self._copy(conn, table.name, data)
            return
        codes, names = _periods(table, data.column(table.date_column))
        # Runs of rows of one period (a batch is ordered by coin, then date: one run per coin and year), grouped
        # by period without moving any data: each partition's chunks are zero-copy slices of the batch.
        cuts = np.flatnonzero(np.diff(codes)) + 1
        starts = [0, *cuts.tolist()]
        ends = [*starts[1:], data.num_rows]
        runs: dict[int, list[tuple[int, int]]] = {}
        for start, end in zip(starts, ends, strict=True):
            runs.setdefault(int(codes[start]), []).append((start, end))
        plan = []
        for code in sorted(runs):
            name = names[code]
            plan.append((name if name in parts else table.name, _chunks(runs[code], data)))
        _copy_binary(conn, data.column_names, plan)

    def _stage(self, conn: psycopg.Connection, table: Table, data: pa.Table) -> str:
        name = f"_stage_{uuid.uuid4().hex[:12]}"
        cols = ", ".join(f"{quote(c)} {table.column(c).type}" for c in data.column_names)
        conn.execute(f"CREATE TEMP TABLE {name} ({cols})")
        self._copy(conn, name, data)
        return name

    @staticmethod
    def _nothing_stored(conn: psycopg.Connection, table: Table, data: pa.Table) -> bool:
        """True when no stored row can share a key with the batch: a pure insert. Checked for tables keyed by
        coin and date (and possibly more, as `trading_signals`' signal): no stored row of the batch's coins in
        its date range."""
        date = table.date_column
        if "coin_id" not in table.key or date is None or date not in table.key:
            return False
        coins = pa.compute.unique(data.column("coin_id")).to_pylist()
        lo, hi = pa.compute.min_max(data.column(date)).values()
        row = conn.execute(
            f"SELECT EXISTS (SELECT 1 FROM {table.name} WHERE coin_id = ANY(%s) AND {quote(date)} BETWEEN %s AND %s)",
            (coins, lo.as_py(), hi.as_py()),
        ).fetchone()
        return not (row and row[0])

    def _merge(self, table: Table, data: pa.Table, preserve: Sequence[str]) -> int:
        def run(conn: psycopg.Connection) -> int:
            if self._nothing_stored(conn, table, data):
                # Fresh history (a backfill of new coins): COPY straight into the table, 2-3x faster than the merge.
                # A concurrent writer may insert the same keys meanwhile: then fall back to the merge below.
                try:
                    with conn.transaction():
                        self._copy_fresh(conn, table, data)
                    return data.num_rows
                except pgerrors.UniqueViolation:
                    pass
            stage = self._stage(conn, table, data)
            with conn.cursor() as cur:
                cur.execute(self.merge_sql(table, stage, data.column_names, preserve))
                n = max(cur.rowcount, 0)
                cur.execute(f"DROP TABLE {stage}")
            return n

        return self._write(run)

    def _replace(self, table: Table, data: pa.Table, where: Mapping[str, Any]) -> int:
        def run(conn: psycopg.Connection) -> int:
            with conn.cursor() as cur:
                params = {f"w_{k}": v for k, v in where.items()}
                sql = self.delete_sql(table, where)
                cur.execute(named_params(sql, "pyformat") if params else sql, params or None)
            if data.num_rows == 0:
                return 0
            stage = self._stage(conn, table, data)
            cols = ", ".join(quote(c) for c in data.column_names)
            with conn.cursor() as cur:
                cur.execute(f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {stage}")
                cur.execute(f"DROP TABLE {stage}")
            return data.num_rows

        return self._write(run)

    def refresh_views(self) -> None:
        from kallos.store.migrations import MATERIALIZED_VIEWS

        for view in MATERIALIZED_VIEWS:
            self.execute(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {view}")

    def close(self) -> None:
        self._pool.close()


def _periods(table: Table, column: pa.ChunkedArray) -> tuple[np.ndarray, dict[int, str]]:
    """Each row's partition period as a small integer code, and each code's partition name: the calendar year
    of a DATE (`<table>_y2024`), the UTC month of a timestamp (`<table>_m202401`), as schema.py names them."""
    if table.partition_unit == "month":
        stamps = column.cast(pa.int64()).to_numpy().astype("datetime64[us]")
        months = stamps.astype("datetime64[M]").astype(np.int64)
        first = int(months.min())
        codes = months - first
        names = {
            int(c): f"{table.name}_m{(first + c) // 12 + 1970}{(first + c) % 12 + 1:02d}" for c in np.unique(codes)
        }
        return codes, names
    days = column.cast(pa.int32()).to_numpy().astype("datetime64[D]")
    years = days.astype("datetime64[Y]").astype(np.int64)
    first = int(years.min())
    codes = years - first
    return codes, {int(c): f"{table.name}_y{first + c + 1970}" for c in np.unique(codes)}


def _chunks(runs: Sequence[tuple[int, int]], data: pa.Table) -> Iterator[pa.Table]:
    """The rows of `runs` ((start, end) row ranges of `data`, in order) as tables of about _COPY_BATCH_ROWS rows
    each, built from zero-copy slices."""
    pending: list[pa.Table] = []
    size = 0
    for start, end in runs:
        while start < end:
            take = min(end - start, _COPY_BATCH_ROWS - size)
            pending.append(data.slice(start, take))
            size += take
            start += take
            if size == _COPY_BATCH_ROWS:
                yield pa.concat_tables(pending)
                pending, size = [], 0
    if pending:
        yield pa.concat_tables(pending)


_END = object()


def _copy_binary(
    conn: psycopg.Connection, columns: Sequence[str], plan: Iterable[tuple[str, Iterator[pa.Table]]]
) -> None:
    """One binary COPY per (target, chunks) of `plan`, in order. A thread encodes the chunks (the numba kernel
    releases the GIL) while this thread sends the previous ones and waits for the server, so the server is
    not left idle while the client encodes (docs/decisions.md#D122). At most a few encoded chunks wait in
    between: memory stays at a few chunks, whatever the batch."""
    plan = list(plan)
    ready: queue.Queue[Any] = queue.Queue(maxsize=3)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def encode() -> None:
        try:
            for _, chunks in plan:
                for chunk in chunks:
                    if not put(pgbinary.encode_rows(chunk)):
                        return
                if not put(_END):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the sending thread, which raises it
            put(exc)

    names = ", ".join(quote(c) for c in columns)
    worker = threading.Thread(target=encode, name="kallos-copy-encode", daemon=True)
    worker.start()
    try:
        for target, _ in plan:
            first = ready.get()
            if isinstance(first, BaseException):
                raise first
            with conn.cursor() as cur, cur.copy(f"COPY {target} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(pgbinary.SIGNATURE)
                item = first
                while item is not _END:
                    if isinstance(item, BaseException):
                        raise item
                    copy.write(item.data)
                    item = ready.get()
                copy.write(pgbinary.TRAILER)
    finally:
        stop.set()
        worker.join()
