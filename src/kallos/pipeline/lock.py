"""The pipeline lock: two overlapping cron runs cannot both write.

PostgreSQL: a session-level advisory lock (`pg_try_advisory_lock`) taken on a dedicated connection that lives
as long as the run; the server releases it if the process dies. The key is derived from the schema, so tests
in their own schemas do not block each other. DuckDB: a `filelock` lock file next to the database file
(`<file>.pipeline.lock`, flock-based, released by the kernel if the process dies), taken *before* the database
is opened, so the second run gets this clear message instead of DuckDB's file-busy error. In both cases the
second run raises :class:`~kallos.errors.LockHeldError` (exit 5) at once; it never waits.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kallos import clock
from kallos.errors import LockHeldError, StoreError
from kallos.log import get_logger
from kallos.store import redact_url

log = get_logger(__name__)


def lock_file_for(url: str) -> Path | None:
    """Where the lock of an embedded store lives (None for an in-memory DuckDB)."""
    from kallos.store.duck import duckdb_path

    path = duckdb_path(url)
    if path == ":memory:":
        return None
    return Path(path).expanduser().with_name(Path(path).name + ".pipeline.lock")


def advisory_key(schema: str | None) -> int:
    """A signed 64-bit key for `pg_try_advisory_lock`, one per schema."""
    digest = hashlib.sha256(f"kallos.pipeline:{schema or 'public'}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _holder_text(info: dict[str, Any]) -> str:
    parts = [f"{k}={info[k]}" for k in ("run_id", "pid", "host", "since") if info.get(k)]
    return f" (held by {', '.join(parts)})" if parts else ""


@contextmanager
def pipeline_lock(url: str, *, run_id: str | None = None) -> Iterator[None]:
    """Hold the pipeline lock of the database `url` for the body; LockHeldError if someone has it."""
    if url.startswith("duckdb://"):
        with _file_lock(url, run_id) as held:
            yield held
    else:
        with _advisory_lock(url, run_id) as held:
            yield held


@contextmanager
def _file_lock(url: str, run_id: str | None) -> Iterator[None]:
    from filelock import FileLock, Timeout

    path = lock_file_for(url)
    if path is None:
        yield None
        return
    owner = path.with_name(path.name + ".owner")
    lock = FileLock(str(path), timeout=0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:
        info: dict[str, Any] = {}
        try:
            info = json.loads(owner.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
        raise LockHeldError(
            f"another kallos run is writing to this database{_holder_text(info)}; "
            "this run exits without writing. "
            "Wait for it to finish: the lock is released automatically when that process ends",
            lock_file=str(path),
        ) from None
    except OSError as exc:
        # after Timeout (an OSError too): a folder that cannot exist, a read-only or full filesystem (D53)
        raise StoreError(
            f"cannot create the lock file {path} beside the database: {exc.strerror or exc}; the database's folder "
            "must be writable (set KALLOS_DATABASE_URL to a writable place)",
            path=str(path),
        ) from None
    try:
        owner.write_text(
            json.dumps(
                {
                    "run_id": run_id,
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": clock.utcnow().isoformat(),
                }
            ),
            encoding="utf-8",
        )
        log.debug("pipeline lock taken", extra={"lock_file": str(path), "run_id": run_id})
        yield None
    finally:
        try:
            owner.unlink(missing_ok=True)
        finally:
            lock.release()


@contextmanager
def _advisory_lock(url: str, run_id: str | None) -> Iterator[None]:
    import psycopg

    from kallos.store.postgres import conninfo_from_url

    conninfo, schema = conninfo_from_url(url)
    key = advisory_key(schema)
    app_name = f"kallos-lock {run_id or ''}".strip()[:63]
    try:
        conn = psycopg.connect(conninfo, autocommit=True, application_name=app_name, connect_timeout=10)
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(
            f"cannot connect to PostgreSQL at {redact_url(url)} to take the pipeline lock: {first}"
        ) from None
    try:
        got = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
        if not (got and got[0]):
            holder = _pg_holder(conn, key)
            raise LockHeldError(
                f"another kallos run holds the pipeline lock of this database{_holder_text(holder)}; "
                "this run exits without writing",
                advisory_key=key,
                schema=schema,
            )
        log.debug("pipeline lock taken", extra={"advisory_key": key, "run_id": run_id})
        try:
            yield None
        finally:
            try:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            except psycopg.Error:  # the connection is closed below anyway, which releases the lock
                pass
    finally:
        conn.close()


def _pg_holder(conn: Any, key: int) -> dict[str, Any]:
    """Who holds the advisory lock (its backend pid, application name and since when), best effort."""
    classid, objid = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF
    try:
        row = conn.execute(
            "SELECT a.pid, a.application_name, a.backend_start FROM pg_locks l JOIN pg_stat_activity a "
            "ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s::bigint::oid "
            "AND l.objid = %s::bigint::oid LIMIT 1",
            (classid, objid),
        ).fetchone()
    except Exception:  # noqa: BLE001 - only decorates the message
        return {}
    if not row:
        return {}
    app = str(row[1] or "")
    return {
        "run_id": app.removeprefix("kallos-lock ").strip() or None,
        "pid": row[0],
        "since": row[2].isoformat() if row[2] else None,
    }


def is_locked(url: str) -> bool:
    """True when a run holds the lock right now (used by `kallos status`); never blocks."""
    try:
        with pipeline_lock(url):
            return False
    except LockHeldError:
        return True
