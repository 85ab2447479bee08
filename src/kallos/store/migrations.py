"""Versioned migrations: an existing database upgrades in place; `kallos db init` is idempotent.

Each migration runs in one transaction with its row in `schema_migrations`, so a crash leaves either the old or
the new version, never half of one. Add a migration by appending to MIGRATIONS; never edit a released one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from kallos import clock
from kallos.errors import ConfigError
from kallos.log import get_logger
from kallos.store.schema import (
    TABLES,
    TIMEFRAME_TABLES,
    Table,
    create_index_sql,
    create_table_sql,
    month_partitions_sql,
    quote,
    year_partitions_sql,
)

if TYPE_CHECKING:  # migrations act on a store; the store runs them (base.py imports this module)
    from kallos.store.base import Store

log = get_logger(__name__)

MATERIALIZED_VIEWS = ("latest_market_data",)


def _views(store: Store) -> list[str]:
    materialized = "MATERIALIZED VIEW IF NOT EXISTS" if store.backend == "postgresql" else "OR REPLACE VIEW"
    plain = "OR REPLACE VIEW"
    out = [
        f"""CREATE {plain} v_daily_market_data AS
            SELECT c.coingecko_id, c.symbol, d.*
            FROM daily_market_data d JOIN coins c ON c.coin_id = d.coin_id""",
        f"""CREATE {materialized} latest_market_data AS
            SELECT DISTINCT ON (d.coin_id) c.coingecko_id, c.symbol, d.*
            FROM daily_market_data d JOIN coins c ON c.coin_id = d.coin_id
            ORDER BY d.coin_id, d."date" DESC""",
        f"""CREATE {plain} latest_snapshot AS
            SELECT DISTINCT ON (s.coin_id) c.coingecko_id, c.symbol, s.*
            FROM market_snapshots s JOIN coins c ON c.coin_id = s.coin_id
            ORDER BY s.coin_id, s.fetched_at DESC""",
        f"""CREATE {plain} quarantine AS
            SELECT c.coingecko_id, e.*
            FROM data_quality_events e JOIN coins c ON c.coin_id = e.coin_id
            WHERE e.action = 'quarantined'""",
    ]
    if store.backend == "postgresql":
        out.append("CREATE UNIQUE INDEX IF NOT EXISTS idx_latest_market_data_coin ON latest_market_data (coin_id)")
    return out


FIRST_PARTITION_YEAR = 2009  # Bitcoin's genesis; earlier or much later dates land in the DEFAULT partition


def _create(store: Store, table: Table, partitioned: bool) -> None:
    split = partitioned and table.partitionable
    store.execute(create_table_sql(table, partitioned=split))
    if split:
        today = clock.today()
        if table.partition_unit == "month":
            # Monthly partitions are made on demand by the writer (Store.upsert); ten years of them up front
            # would be 360 tables nobody may need. The current month's exists from the start.
            parts = month_partitions_sql(table, (today.year, today.month), (today.year, today.month))
        else:
            parts = year_partitions_sql(table, FIRST_PARTITION_YEAR, today.year + 5)
        for sql in parts:
            store.execute(sql)
    for sql in create_index_sql(table):
        store.execute(sql)


def _initial(store: Store, partitioned: bool) -> None:
    store.execute("CREATE SEQUENCE IF NOT EXISTS coins_coin_id_seq START 1")
    for table in TABLES.values():
        if table not in TIMEFRAME_TABLES:
            _create(store, table, partitioned)
    for sql in _views(store):
        store.execute(sql)


NAMED_INDEX_TABLES = ("index_monthly_constituents", "daily_index_values", "index_turnover")


def _has_column(store: Store, table: str, column: str) -> bool:
    return bool(
        store.scalar(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = :t AND column_name = :c "
            "AND table_schema = current_schema()",
            {"t": table, "c": column},
        )
    )


def _named_indices(store: Store, partitioned: bool) -> None:
    """Key the index tables by `index_name`; existing rows become the `default` index (docs/decisions.md#D62).

    A primary key cannot be altered in place on DuckDB, so a table without the column is copied into the new
    layout, the old one dropped and the copy renamed (the same statements on both backends). The index tables
    are never year-partitioned, so the partitioned layout upgrades the same way.
    """
    for name in NAMED_INDEX_TABLES:
        if _has_column(store, name, "index_name"):
            continue
        table = TABLES[name]
        tmp = replace(table, name=f"{name}__v2")
        old = [c for c in table.column_names if c != "index_name"]
        cols = ", ".join(quote(c) for c in old)
        store.execute(f"DROP TABLE IF EXISTS {tmp.name}")
        store.execute(create_table_sql(tmp))
        store.execute(f"INSERT INTO {tmp.name} (index_name, {cols}) SELECT 'default', {cols} FROM {name}")
        store.execute(f"DROP TABLE {name}")
        store.execute(f"ALTER TABLE {tmp.name} RENAME TO {name}")
        if store.backend == "postgresql":
            store.execute(f"ALTER INDEX IF EXISTS {tmp.name}_pkey RENAME TO {name}_pkey")
    store.execute(create_table_sql(TABLES["index_definitions"]))
    base = store.scalar("""SELECT "value" FROM kallos_state WHERE "key" = 'index_base_date'""")
    store.execute(
        "INSERT INTO index_definitions (index_name, base_date) VALUES ('default', :b) "
        "ON CONFLICT (index_name) DO NOTHING",
        {"b": dt.date.fromisoformat(str(base)) if base else None},
    )


def _create_tables(*names: str) -> Callable[[Store, bool], None]:
    """A migration that adds tables declared after the initial schema (idempotent: a fresh database already has
    them from the initial migration, which creates every declared table)."""

    def apply(store: Store, partitioned: bool) -> None:
        for name in names:
            store.execute(create_table_sql(TABLES[name]))
            for sql in create_index_sql(TABLES[name]):
                store.execute(sql)

    return apply


def _timeframes(store: Store, partitioned: bool) -> None:
    """Hourly and weekly bars, indicators and signals (docs/decisions.md#D80). A database laid out by year gets
    its hourly tables by month and its weekly tables by year, like the daily ones."""
    partitioned = partitioned or is_partitioned(store)
    for table in TIMEFRAME_TABLES:
        _create(store, table, partitioned)


MIGRATIONS: list[tuple[int, str, Callable[[Store, bool], None]]] = [
    (1, "initial schema", _initial),
    (2, "streamed prices: price_ticks, latest_prices", _create_tables("price_ticks", "latest_prices")),
    (3, "named indices", _named_indices),
    (4, "coin_details_history: alternative data over time", _create_tables("coin_details_history")),
    (5, "timeframes: hourly and weekly bars, indicators and signals", _timeframes),
]
LATEST = MIGRATIONS[-1][0]


def current_version(store: Store) -> int:
    exists = store.scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations' "
        "AND table_schema = current_schema()"
    )
    if not exists:
        return 0
    return int(store.scalar("SELECT coalesce(max(version), 0) FROM schema_migrations") or 0)


def is_partitioned(store: Store, table: str = "daily_market_data") -> bool:
    if store.backend != "postgresql":
        return False
    return bool(
        store.scalar(
            "SELECT count(*) FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = :t AND n.nspname = current_schema()",
            {"t": table},
        )
    )


def check_layout(store: Store, partitioned: bool) -> None:
    """Refuse a store whose daily fact tables are not laid out as KALLOS_PG_PARTITION_BY_YEAR says."""
    actual = is_partitioned(store)
    if actual == partitioned:
        return
    have = "range-partitioned by year" if actual else "plain (not partitioned)"
    setting = "true" if partitioned else "false"
    raise ConfigError(
        f"the database's daily fact tables are {have}, but KALLOS_PG_PARTITION_BY_YEAR={setting}; a layout is "
        "chosen when the tables are created and never changed in place. Either unset the setting to keep this "
        "layout, or migrate: `kallos db init "
        f"--{'' if partitioned else 'no-'}partition-by-year --database-url 'postgresql://...?schema=kallos_new'`, "
        "copy every table (`INSERT INTO kallos_new.<table> SELECT * FROM <old schema>.<table>`, then "
        "`SELECT setval('kallos_new.coins_coin_id_seq', (SELECT max(coin_id) FROM kallos_new.coins))`) and point "
        "KALLOS_DATABASE_URL at the new schema (docs/operations.md, \"what happens when...\")",
        setting="KALLOS_PG_PARTITION_BY_YEAR",
    )


def applied_versions(store: Store) -> set[int]:
    return {int(v) for v in store.query("SELECT version FROM schema_migrations")["version"]}


def migrate(store: Store, *, partitioned: bool | None = None) -> int:
    """Apply pending migrations. `partitioned` (PostgreSQL only) range-partitions the daily fact tables by year
    when they are created. An existing store whose layout differs from an explicit `partitioned` is refused with
    the way to migrate (docs/decisions.md#D58); None keeps whatever exists."""
    if partitioned and store.backend != "postgresql":
        raise ConfigError(
            "partitioning by year is a PostgreSQL option; unset KALLOS_PG_PARTITION_BY_YEAR for a DuckDB store",
            setting="KALLOS_PG_PARTITION_BY_YEAR",
        )
    store.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    version = current_version(store)
    if version and partitioned is not None and store.backend == "postgresql":
        check_layout(store, partitioned)
    applied = applied_versions(store) if version else set()
    for number, name, apply in MIGRATIONS:
        if number in applied:  # by set, not by max: a migration missing below the newest one still runs
            continue
        with store.transaction():
            apply(store, bool(partitioned))
            store.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (:v, :n) ON CONFLICT (version) DO NOTHING",
                {"v": number, "n": name},
            )
        log.info("schema migrated", extra={"version": number, "migration": name})
        version = max(version, number)
    return version
