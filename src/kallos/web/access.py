"""How the dashboard reads the store without ever blocking or touching a run (docs/decisions.md#D92).

DuckDB: a file is open in one process at a time for writing, so each request opens it read-only, reads, and
closes it at once (milliseconds; a starting run retries its own open meanwhile). While a run holds the file the
open fails at once, and the page shows the last state it read, marked "store busy". PostgreSQL: one pool for
the server's life, every session `default_transaction_read_only`, each page read inside one transaction (one
consistent snapshot). The dashboard never creates or migrates tables.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from kallos import clock
from kallos.errors import StoreBusyError, StoreError
from kallos.log import get_logger
from kallos.store import Store, open_store
from kallos.web.data import schema_ready

log = get_logger(__name__)

CACHE_PAGES = 256
"""Last answers kept for "store busy" (one per page and parameters; the least recently read go first)."""

State = Literal["ok", "busy", "no_store", "no_schema"]


@dataclass(frozen=True)
class Answer:
    state: State
    data: Any = None
    as_of: dt.datetime | None = None
    """When `data` was read (older than now when the store is busy and this is the last known state)."""

    @property
    def stale(self) -> bool:
        return self.state == "busy"


class StoreReader:
    """Runs page functions against the store, read-only, caching each page's last answer."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.backend = "duckdb" if database_url.startswith("duckdb://") else "postgresql"
        self._pg: Store | None = None
        self._pg_lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[Any, dt.datetime]] = OrderedDict()
        self._cache_lock = threading.Lock()

    def _duck_path(self) -> Path | None:
        from kallos.store.duck import duckdb_path

        path = duckdb_path(self.url)
        return None if path == ":memory:" else Path(path).expanduser()

    def _postgres(self) -> Store:
        with self._pg_lock:
            if self._pg is None:
                self._pg = open_store(self.url, read_only=True)
            return self._pg

    def _run(self, fn: Callable[[Store], Any]) -> tuple[State, Any]:
        if self.backend == "duckdb":
            path = self._duck_path()
            if path is None or not path.exists():
                return "no_store", None
            store = open_store(self.url, read_only=True)
            try:
                return ("ok", fn(store)) if schema_ready(store) else ("no_schema", None)
            finally:
                store.close()
        store = self._postgres()
        with store.transaction():
            return ("ok", fn(store)) if schema_ready(store) else ("no_schema", None)

    def read(self, key: str, fn: Callable[[Store], Any]) -> Answer:
        """`fn(store)` now, or the last answer under `key` when a run holds the store."""
        try:
            state, data = self._run(fn)
        except StoreBusyError:
            with self._cache_lock:
                cached = self._cache.get(key)
            log.debug("store busy; serving the last known state", extra={"page": key})
            return Answer("busy", cached[0], cached[1]) if cached else Answer("busy")
        now = clock.utcnow()
        if state == "ok":
            with self._cache_lock:
                self._cache[key] = (data, now)
                self._cache.move_to_end(key)
                while len(self._cache) > CACHE_PAGES:
                    self._cache.popitem(last=False)
        return Answer(state, data, now)

    def close(self) -> None:
        with self._pg_lock:
            if self._pg is not None:
                try:
                    self._pg.close()
                except StoreError:
                    pass
                self._pg = None
