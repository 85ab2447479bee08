"""Storage: one interface (:class:`Store`) over PostgreSQL (production) and DuckDB (embedded default).

store = open_store("duckdb:///kallos.duckdb")   # or "postgresql://user@host:5432/db"
store.init()                                    # create or upgrade the schema, idempotent
store.upsert("daily_market_data", frame)        # idempotent bulk upsert by (coin_id, date)
store.read("daily_market_data", coins=["bitcoin"], start="2024-01-01")
"""

from __future__ import annotations

from kallos.errors import ConfigError
from kallos.store.base import Store, redact_url
from kallos.store.schema import TABLES

__all__ = ["TABLES", "Store", "open_store", "redact_url"]


def open_store(
    url: str, *, schema: str | None = None, read_only: bool = False, partitioned: bool | None = None
) -> Store:
    """Open the store a `KALLOS_DATABASE_URL` names (`schema` selects a PostgreSQL schema, e.g. for tests).

    `read_only` (the dashboard): DuckDB opens the file read-only and raises StoreBusyError at once while a run
    holds it; PostgreSQL runs every transaction read-only (docs/decisions.md#D92). `partitioned` is the layout
    the user asked for (KALLOS_PG_PARTITION_BY_YEAR when set, else None): every `init()` of this store creates
    it, or refuses a store whose layout differs (docs/decisions.md#D58)."""
    store: Store
    if url.startswith("duckdb://"):
        from kallos.store.duck import DuckDBStore

        store = DuckDBStore(url, read_only=read_only)
    elif url.startswith(("postgresql://", "postgres://", "postgresql+")):
        from kallos.store.postgres import PostgresStore

        store = PostgresStore(url, schema=schema, read_only=read_only)
    else:
        raise ConfigError(
            f"unsupported database URL {redact_url(url)!r}; use duckdb:///path.duckdb or "
            "postgresql://user@host:port/db",
            setting="KALLOS_DATABASE_URL",
        )
    store.layout = partitioned
    return store
